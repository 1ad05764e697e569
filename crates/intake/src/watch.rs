//! WatchTickets: replay the history after a cursor, then follow new events live.
//!
//! The history table (the source of truth) drives every stream, so a client resuming from
//! a cursor gets exactly the events after it, with no gap and no repeat. The live part is
//! read once per process, not once per stream: [`WatchHub`] reads each new batch of events
//! (all properties) and hands the same batch to every open stream, which keeps the events
//! its caller may see and asked for (property, department, assignee). The database work
//! grows with the events, not with streams × events. The hub wakes at once on commits of
//! this process (the store's commit signal) and on every ticket event on the bus (this
//! replica's own exclusive queue, so events written by other replicas and workers arrive
//! live); a slow poll covers a broker outage. It reads nothing while no stream is open.
//!
//! A stream replays its own history (with its own filters) when it starts from a cursor,
//! and again when it falls behind the hub's buffer (a slow client): the history has what
//! it missed.
//!
//! A quiet stream sends a heartbeat (an item with no event, carrying the current cursor)
//! every `watch_heartbeat`: HTTP/2 PINGs keep a native connection alive, but a browser's
//! gRPC-Web stream often crosses HTTP/1.1 proxies and load balancers that cut a response
//! idle for 60 s, and only bytes in the body keep those open.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use propdesk_domain::{Actor, Department, Operation, Role, Violations};
use propdesk_events::HistoryEvent;
use propdesk_proto::v1 as pb;
use propdesk_store::{EventCursor, Store, StoreError};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Mutex, Notify, broadcast, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::IntakeState;
use crate::convert::{event_to_wire, optional_enum};
use crate::error::{ApiError, ApiResult};

const BATCH: u64 = 500;
const QUICK_LOOK: std::time::Duration = std::time::Duration::from_millis(25);
const QUICK_LOOKS: u32 = 8;
/// Batches the hub keeps for streams that are busy sending; one further behind replays
/// from the history.
const HUB_BATCHES: usize = 1024;

pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::TicketEvent, Status>> + Send + 'static>>;

/// One event as the hub hands it to every stream: what streams filter on, and the event
/// already in its wire form.
struct LiveEvent {
    cursor: EventCursor,
    property_id: String,
    department: Option<Department>,
    assignee_id: Option<String>,
    wire: pb::TicketEvent,
}

impl LiveEvent {
    fn of(cursor: EventCursor, event: &HistoryEvent) -> LiveEvent {
        LiveEvent {
            cursor,
            property_id: event.property_id.clone(),
            department: event.department,
            assignee_id: event.assignee_id.clone(),
            wire: event_to_wire(event),
        }
    }
}

type Batch = Arc<[LiveEvent]>;

/// The live events of this process, read once and shared by every WatchTickets stream.
pub struct WatchHub {
    live: broadcast::Sender<Batch>,
    /// The cursor of the last event handed out; `None` while no stream is open. Held while
    /// a batch is read and sent, so a stream subscribing sees every batch after the head
    /// it is given.
    head: Mutex<Option<EventCursor>>,
    reading: AtomicBool,
    streams_arrived: Notify,
}

impl Default for WatchHub {
    fn default() -> WatchHub {
        WatchHub {
            live: broadcast::channel(HUB_BATCHES).0,
            head: Mutex::new(None),
            reading: AtomicBool::new(false),
            streams_arrived: Notify::new(),
        }
    }
}

impl WatchHub {
    /// A receiver of every batch after the cursor returned (the newest settled event when
    /// the hub was idle). Starts the hub's reader on first use.
    async fn subscribe(
        &self,
        state: &Arc<IntakeState>,
    ) -> Result<(broadcast::Receiver<Batch>, EventCursor), StoreError> {
        if !self.reading.swap(true, Ordering::AcqRel) {
            tokio::spawn(read_for_everyone(state.clone()));
        }
        let mut head = self.head.lock().await;
        let cursor = head_or_newest(&mut head, &state.store).await?;
        let receiver = self.live.subscribe();
        self.streams_arrived.notify_one();
        Ok((receiver, cursor))
    }
}

/// The hub's head; when the hub was idle, the newest settled event (nothing before it is
/// live any more).
async fn head_or_newest(head: &mut Option<EventCursor>, store: &Store) -> Result<EventCursor, StoreError> {
    match *head {
        Some(cursor) => Ok(cursor),
        None => Ok(*head.insert(store.last_event_cursor().await?)),
    }
}

/// The hub's reader: while any stream is open, reads the events after the head whenever
/// something may have committed, and hands each batch to all streams.
async fn read_for_everyone(state: Arc<IntakeState>) {
    let hub = &state.watch_hub;
    loop {
        while hub.live.receiver_count() == 0 {
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = hub.streams_arrived.notified() => {}
            }
        }
        let mut changes = state.store.subscribe_commits();
        let mut bus_events = state.subscribe_bus_events();
        let mut quick_looks = QUICK_LOOKS;
        loop {
            let full = {
                let mut head = hub.head.lock().await;
                if hub.live.receiver_count() == 0 {
                    *head = None;
                    break;
                }
                let read = match head_or_newest(&mut head, &state.store).await {
                    Ok(from) => state.store.events_after(from, None, None, None, BATCH).await,
                    Err(err) => Err(err),
                };
                match read {
                    Ok(events) => {
                        let full = events.len() as u64 == BATCH;
                        if let Some((last, _)) = events.last() {
                            *head = Some(*last);
                            let batch: Batch = events.iter().map(|(at, event)| LiveEvent::of(*at, event)).collect();
                            let _ = hub.live.send(batch);
                        }
                        full
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "watch streams cannot read new events; trying again");
                        false
                    }
                }
            };
            if full {
                continue;
            }
            // A wake-up can come before its event is readable (PostgreSQL: an older
            // transaction still running); look again shortly a few times after each.
            let wait = if quick_looks > 0 { QUICK_LOOK } else { state.watch_poll };
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = changes.changed() => quick_looks = QUICK_LOOKS,
                _ = bus_events.changed() => quick_looks = QUICK_LOOKS,
                _ = tokio::time::sleep(wait) => quick_looks = quick_looks.saturating_sub(1),
            }
        }
    }
}

/// A heartbeat: no event (type UNSPECIFIED, no id), only the cursor the stream stands at,
/// which a client may resume from.
fn heartbeat(cursor: EventCursor) -> pb::TicketEvent {
    pb::TicketEvent { cursor: cursor.to_string(), ..Default::default() }
}

/// What one stream shows: its caller's properties (`None`: all, for an admin) narrowed by
/// the request.
struct Filter {
    properties: Option<Vec<String>>,
    department: Option<Department>,
    assignee_id: Option<String>,
}

impl Filter {
    fn shows(&self, event: &LiveEvent) -> bool {
        self.properties.as_ref().is_none_or(|ids| ids.contains(&event.property_id))
            && self.department.is_none_or(|department| event.department == Some(department))
            && self.assignee_id.as_ref().is_none_or(|id| event.assignee_id.as_ref() == Some(id))
    }
}

/// Sends the history after `cursor` that `filter` shows, up to the newest settled event;
/// returns the cursor it reached, or `None` when the client went away.
async fn replay(
    state: &IntakeState,
    filter: &Filter,
    mut cursor: EventCursor,
    sender: &mpsc::Sender<Result<pb::TicketEvent, Status>>,
) -> Result<Option<EventCursor>, StoreError> {
    loop {
        let batch = state
            .store
            .events_after(cursor, filter.properties.as_deref(), filter.department, filter.assignee_id.as_deref(), BATCH)
            .await?;
        let full = batch.len() as u64 == BATCH;
        for (at, event) in batch {
            cursor = at;
            if sender.send(Ok(event_to_wire(&event))).await.is_err() {
                return Ok(None);
            }
        }
        if !full {
            return Ok(Some(cursor));
        }
    }
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
    let filter = Filter { properties, department, assignee_id };
    let (mut live, head) = state.watch_hub.subscribe(&state).await?;
    // From a cursor: its history first. Without one: live from the hub's head.
    let mut behind = after.is_some();
    let mut cursor = after.unwrap_or(head);

    let (sender, receiver) = mpsc::channel(256);
    let mut last_sent = tokio::time::Instant::now();
    tokio::spawn(async move {
        loop {
            if behind {
                match replay(&state, &filter, cursor, &sender).await {
                    Ok(Some(reached)) => cursor = reached,
                    Ok(None) => return,
                    Err(err) => {
                        let _ = sender.send(Err(Status::from(ApiError::from(err)))).await;
                        return;
                    }
                }
                behind = false;
                last_sent = tokio::time::Instant::now();
            }
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = sender.closed() => return,
                received = live.recv() => match received {
                    Ok(batch) => {
                        for event in batch.iter() {
                            if event.cursor <= cursor {
                                continue; // replayed already
                            }
                            cursor = event.cursor;
                            if filter.shows(event) {
                                if sender.send(Ok(event.wire.clone())).await.is_err() {
                                    return; // the client went away
                                }
                                last_sent = tokio::time::Instant::now();
                            }
                        }
                    }
                    // Too slow for the hub's buffer: what it dropped is in the history.
                    Err(RecvError::Lagged(_)) => behind = true,
                    Err(RecvError::Closed) => return,
                },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn live(property: &str, department: Option<Department>, assignee: Option<&str>) -> LiveEvent {
        LiveEvent {
            cursor: EventCursor { tx_id: 1, id: 1 },
            property_id: property.to_owned(),
            department,
            assignee_id: assignee.map(str::to_owned),
            wire: pb::TicketEvent::default(),
        }
    }

    #[test]
    fn a_stream_shows_only_its_callers_properties_narrowed_by_its_request() {
        let admin = Filter { properties: None, department: None, assignee_id: None };
        let agent = Filter { properties: Some(vec!["p1".into(), "p2".into()]), department: None, assignee_id: None };
        let plumbers = Filter {
            properties: Some(vec!["p1".into()]),
            department: Some(Department::Engineering),
            assignee_id: None,
        };
        let mine = Filter { properties: Some(vec!["p1".into()]), department: None, assignee_id: Some("s1".into()) };

        let logged = live("p1", None, None);
        let routed = live("p1", Some(Department::Engineering), Some("s1"));
        let elsewhere = live("p3", Some(Department::Engineering), Some("s1"));

        assert!(admin.shows(&logged) && admin.shows(&elsewhere));
        assert!(agent.shows(&logged) && agent.shows(&routed) && !agent.shows(&elsewhere));
        assert!(!plumbers.shows(&logged) && plumbers.shows(&routed) && !plumbers.shows(&elsewhere));
        assert!(!mine.shows(&logged) && mine.shows(&routed) && !mine.shows(&elsewhere));
    }
}
