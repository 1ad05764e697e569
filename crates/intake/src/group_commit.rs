//! Group commit for CreateTicket: concurrent creates wait in one queue, and each of a few
//! writers takes everything waiting (up to a batch) and writes it in one transaction.
//! Alone, a create is written at once in a batch of one; under load, batches grow by
//! themselves, and one commit (one WAL flush) serves many tickets.

use std::sync::Arc;

use propdesk_store::{Created, NewTicket, Store, StoreError};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Tickets written in one transaction at most.
const MAX_BATCH: usize = 64;
/// Creates waiting for a writer at most; past this, callers wait to enqueue.
const QUEUE: usize = 4_096;
/// What the writer tasks are called in errors.
const WRITER: &str = "ticket writer";

struct Pending {
    ticket: NewTicket,
    reply: oneshot::Sender<Result<Created, StoreError>>,
}

pub struct GroupCommit {
    queue: mpsc::Sender<Pending>,
}

impl GroupCommit {
    /// Starts `writers` writer tasks; they end when this is dropped and the queue is empty.
    pub fn start(store: Store, writers: usize) -> GroupCommit {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_batches(store.clone(), waiting.clone()));
        }
        GroupCommit { queue }
    }

    /// Creates the ticket in the next batch; the outcome is the same as
    /// [`Store::create_tickets`]'s for it.
    pub async fn create(&self, ticket: NewTicket) -> Result<Created, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send(Pending { ticket, reply }).await.map_err(|_| StoreError::Stopped(WRITER))?;
        outcome.await.map_err(|_| StoreError::Stopped(WRITER))?
    }
}

async fn write_batches(store: Store, waiting: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    loop {
        let batch = {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match waiting.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            batch
        };
        metrics::histogram!("propdesk_create_batch_size").record(batch.len() as f64);
        let tickets: Vec<NewTicket> = batch.iter().map(|p| p.ticket.clone()).collect();
        match store.create_tickets(tickets).await {
            Ok(outcomes) if outcomes.len() == batch.len() => {
                for (pending, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = pending.reply.send(Ok(outcome));
                }
            }
            // One bad ticket must not fail the others: write them one by one, each with
            // its own outcome.
            _ => {
                for pending in batch {
                    let outcome = store
                        .create_tickets(vec![pending.ticket])
                        .await
                        .and_then(|mut one| one.pop().ok_or(StoreError::Vanished("a created ticket's outcome")));
                    let _ = pending.reply.send(outcome);
                }
            }
        }
    }
}
