//! WatchTickets: replay the history after a cursor, then follow new events live.
//!
//! The stream is driven by the history table (the source of truth), so a client resuming
//! from a cursor gets exactly the events after it, with no gap and no repeat. It wakes at
//! once on commits of this process (the store's commit signal) and on every ticket event
//! on the bus (this replica's own exclusive queue, so events written by other replicas and
//! workers arrive live); a slow poll covers a broker outage.
//!
//! A quiet stream sends a heartbeat (an item with no event, carrying the current cursor)
//! every `watch_heartbeat`: HTTP/2 PINGs keep a native connection alive, but a browser's
//! gRPC-Web stream often crosses HTTP/1.1 proxies and load balancers that cut a response
//! idle for 60 s, and only bytes in the body keep those open.

use std::pin::Pin;
use std::sync::Arc;

use propdesk_domain::{Actor, Department, Operation, Role, Violations};
use propdesk_proto::v1 as pb;
use propdesk_store::EventCursor;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::IntakeState;
use crate::convert::{event_to_wire, optional_enum};
use crate::error::{ApiError, ApiResult};

const BATCH: u64 = 500;
const QUICK_LOOK: std::time::Duration = std::time::Duration::from_millis(25);
const QUICK_LOOKS: u32 = 8;

pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::TicketEvent, Status>> + Send + 'static>>;

/// A heartbeat: no event (type UNSPECIFIED, no id), only the cursor the stream stands at,
/// which a client may resume from.
fn heartbeat(cursor: EventCursor) -> pb::TicketEvent {
    pb::TicketEvent { cursor: cursor.to_string(), ..Default::default() }
}

pub async fn open(state: Arc<IntakeState>, actor: &Actor, request: pb::WatchTicketsRequest) -> ApiResult<EventStream> {
    let mut v = Violations::new();
    let property_id = v.optional_id("property_id", &request.property_id);
    let department = optional_enum::<Department>(&mut v, "department", request.department);
    let assignee_id = v.optional_id("assignee_id", &request.assignee_id);
    let after = match request.after_cursor.as_str() {
        "" => None,
        cursor => {
            let parsed = EventCursor::parse(cursor);
            if parsed.is_none() {
                v.add("after_cursor", "is not a cursor returned by this API");
            }
            parsed
        }
    };
    v.into_result()?;
    let properties = match property_id {
        Some(id) => {
            actor.authorize(&id, Operation::ReadTickets, false)?;
            Some(vec![id])
        }
        None if actor.role == Role::Admin => None,
        None => Some(actor.properties.clone()),
    };
    let mut cursor = match after {
        Some(cursor) => cursor,
        None => state.store.last_event_cursor().await?,
    };

    let (sender, receiver) = mpsc::channel(256);
    let mut changes = state.store.subscribe_commits();
    let mut bus_events = state.subscribe_bus_events();
    let mut quick_looks = 0u32;
    let mut last_sent = tokio::time::Instant::now();
    tokio::spawn(async move {
        loop {
            let batch = state
                .store
                .events_after(cursor, properties.as_deref(), department, assignee_id.as_deref(), BATCH)
                .await;
            let batch = match batch {
                Ok(batch) => batch,
                Err(err) => {
                    let _ = sender.send(Err(Status::from(ApiError::from(err)))).await;
                    return;
                }
            };
            let full = batch.len() as u64 == BATCH;
            for (at, event) in batch {
                cursor = at;
                if sender.send(Ok(event_to_wire(&event))).await.is_err() {
                    return; // the client went away
                }
                last_sent = tokio::time::Instant::now();
            }
            if full {
                continue;
            }
            // A wake-up can come before its event is readable (PostgreSQL: an older
            // transaction still running); look again shortly a few times after each.
            let wait = if quick_looks > 0 { QUICK_LOOK } else { state.watch_poll };
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = sender.closed() => return,
                _ = changes.changed() => quick_looks = QUICK_LOOKS,
                _ = bus_events.changed() => quick_looks = QUICK_LOOKS,
                _ = tokio::time::sleep(wait) => quick_looks = quick_looks.saturating_sub(1),
                _ = tokio::time::sleep_until(last_sent + state.watch_heartbeat) => {
                    if sender.send(Ok(heartbeat(cursor))).await.is_err() {
                        return;
                    }
                    last_sent = tokio::time::Instant::now();
                }
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(receiver)))
}
