//! The store suite: every test runs once on SQLite and once on PostgreSQL.

use chrono::{DateTime, TimeDelta, Utc};
use propdesk_domain::aggregate::{CallbackRecord, CategoryCode, IncidentLink, Milestones, Reporter, RequestKey, Route};
use propdesk_domain::ladder::{Alarm, Clock, Recipient, Rung};
use propdesk_domain::search::Query;
use propdesk_domain::{
    By, Channel, Deadlines, Department, EventType, Lifecycle, Priority, Recorded, Role, Satisfaction, Ticket,
    TicketFacts, TicketKind, TicketState,
};
use propdesk_events::HistoryEvent;
use propdesk_store::entity::{building, property};
use propdesk_store::{Change, Created, NewTicket, Store, StoreError, TicketFilter, now};
use propdesk_testkit::{Backend, TestDatabase};
use sea_orm::ConnectionTrait;

use propdesk_testkit::on_both_backends;

on_both_backends!(
    migrations_are_idempotent,
    create_is_idempotent_on_the_request_id,
    a_create_batch_writes_each_new_ticket_once_with_its_events,
    a_stale_version_is_refused_and_writes_nothing,
    several_tickets_saved_together_are_all_written_or_none,
    pages_are_newest_first_and_stable,
    overdue_filter_finds_missed_unmet_deadlines,
    history_is_ordered_and_watchable_by_cursor,
    duplicate_directory_names_conflict,
    times_round_trip_exactly,
    concurrent_relay_passes_never_share_a_row,
    a_process_s_own_messages_reach_its_relay_without_a_claim_and_others_wait_for_their_lease,
    alarm_sync_adds_moves_and_clears_but_never_replans_a_fired_step,
    alarm_sync_of_several_tickets_keeps_each_ticket_s_outcome,
    a_delivery_is_claimed_once_retried_then_dead_and_replayable,
    report_counts_cover_the_property_period_and_department,
    clock_stats_pick_nearest_rank_percentiles_and_count_met_deadlines,
    callback_coverage_ratings_reopenings_and_escalations_are_counted,
    the_desk_migration_indexes_the_tickets_already_stored,
    a_word_in_thousands_of_tickets_ranks_the_newest_matches_and_a_rare_one_is_found_anywhere,
);

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A P3 plumbing repair logged at `created_at`, whose clocks run 2, 24 and 72 hours.
fn facts(property_id: &str, request_id: &str, created_at: DateTime<Utc>) -> TicketFacts {
    TicketFacts {
        id: new_id(),
        version: 1,
        property_id: property_id.to_owned(),
        building_id: None,
        unit_id: None,
        unit_label: None,
        location: "stairwell B2".into(),
        resident_id: None,
        reporter: Reporter { name: "张三".into(), phone: "13812345678".into() },
        kind: TicketKind::Repair,
        channel: Channel::Phone,
        category: CategoryCode::new("plumbing"),
        department: None,
        priority: Priority::P3,
        lifecycle: Lifecycle::new(),
        title: "leak".into(),
        description: "water on the stairs".into(),
        first_contact_agent_id: "agent-1".into(),
        assignee_id: None,
        escalation_level: 0,
        incident: IncidentLink::None,
        repeat_fault: false,
        request: RequestKey { request_id: request_id.to_owned(), fingerprint: "f".into() },
        times: Milestones::at(created_at),
        deadlines: Deadlines {
            acknowledge_by: Some(created_at + TimeDelta::hours(2)),
            on_site_by: Some(created_at + TimeDelta::hours(24)),
            resolve_by: Some(created_at + TimeDelta::hours(72)),
            ..Deadlines::default()
        },
        promised_reply_at: None,
        callback: None,
        clock_cycle: 0,
        duplicate_of: None,
        interim_measure: None,
        urgency_rule: None,
        case: None,
        referred_by: None,
        unsatisfied_callbacks: 0,
        review: None,
        delay_cause: None,
    }
}

fn ticket(property_id: &str, request_id: &str, created_at: DateTime<Utc>) -> Ticket {
    Ticket::restore(facts(property_id, request_id, created_at)).unwrap()
}

fn in_state(state: TicketState, t: TicketFacts) -> TicketFacts {
    TicketFacts { lifecycle: Lifecycle { state, held_from: None }, ..t }
}

/// A ticket to create, from a ticket or its facts.
struct Seeded(Ticket);

impl From<Ticket> for Seeded {
    fn from(t: Ticket) -> Seeded {
        Seeded(t)
    }
}

impl From<TicketFacts> for Seeded {
    fn from(t: TicketFacts) -> Seeded {
        Seeded(Ticket::restore(t).unwrap())
    }
}

fn agent() -> By {
    By::staff("agent-1", Role::Agent)
}

fn created(at: DateTime<Utc>) -> Recorded {
    Recorded::new(EventType::Created, None, None, TicketState::New, agent(), String::new(), at)
}

fn new_ticket(t: Ticket) -> NewTicket {
    let events = vec![created(t.times.created_at)];
    NewTicket { ticket: t, events, trace_parent: None }
}

/// Saves one changed ticket.
async fn save(store: &Store, ticket: Ticket, events: Vec<Recorded>) -> Result<Ticket, StoreError> {
    Ok(store.save(vec![Change { ticket, events }]).await?.remove(0))
}

fn route() -> Route {
    Route {
        department: Department::Engineering,
        assignee_id: None,
        repeat: None,
        incident_id: None,
        note: String::new(),
    }
}

async fn fresh(backend: Backend) -> (TestDatabase, Store) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    (db, store)
}

async fn create(store: &Store, t: impl Into<Seeded>) -> Ticket {
    match store.create_tickets(vec![new_ticket(t.into().0)]).await.unwrap().pop() {
        Some(Created::New(t)) => t,
        other => panic!("expected a new ticket, got {other:?}"),
    }
}

async fn migrations_are_idempotent(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    store.migrate().await.expect("second migrate is a no-op");
    assert!(store.list_tickets(&TicketFilter { limit: 10, ..Default::default() }).await.unwrap().is_empty());
}

async fn create_is_idempotent_on_the_request_id(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let first = create(&store, ticket("p1", "req-1", now())).await;
    let retry = store.create_tickets(vec![new_ticket(ticket("p1", "req-1", now()))]).await.unwrap().pop();
    match retry {
        Some(Created::Existing(existing)) => assert_eq!(existing.id, first.id),
        other => panic!("a retry created a second ticket: {other:?}"),
    }
    let all = store.list_tickets(&TicketFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(store.history(&first.id).await.unwrap().len(), 1);
    assert_eq!(store.outbox_len().await.unwrap(), 1);
}

/// A batch of creates, with a request repeated inside it and one logged before: only the
/// new tickets are written, each with its events, messages and search entry. Without a
/// standard reply, PostgreSQL writes the batch in one statement; with one (its use is
/// counted), in a transaction: both ways are checked.
async fn a_create_batch_writes_each_new_ticket_once_with_its_events(backend: Backend) {
    use propdesk_domain::follow_up::ReplyMethod;
    use propdesk_domain::replies::{ReplySent, StandardReplyRef};
    let (_db, store) = fresh(backend).await;
    for (round, standard) in [(1, None), (2, Some(StandardReplyRef { id: "reply-1".into(), version: 1 }))] {
        let earlier = create(&store, ticket("p1", &format!("req-{round}-earlier"), now())).await;
        let outbox_before = store.outbox_len().await.unwrap();
        let titled = |request: &str, title: &str| {
            let t = Ticket::restore(TicketFacts { title: title.into(), ..facts("p1", request, now()) }).unwrap();
            let mut new = new_ticket(t);
            let mut answered = created(now());
            answered.reply = Some(ReplySent { method: ReplyMethod::PhoneCall, standard: standard.clone() });
            new.events.push(answered);
            new
        };
        let batch = vec![
            titled(&format!("req-{round}-a"), &format!("faucet{round}")),
            titled(&format!("req-{round}-b"), &format!("boiler{round}")),
            titled(&format!("req-{round}-a"), &format!("faucet{round}")),
            titled(&format!("req-{round}-earlier"), "leak"),
        ];
        let ids: Vec<String> = batch.iter().map(|new| new.ticket.id.clone()).collect();
        let outcomes = store.create_tickets(batch).await.unwrap();
        let outcome_ids: Vec<(bool, String)> = outcomes
            .iter()
            .map(|outcome| match outcome {
                Created::New(t) => (true, t.id.clone()),
                Created::Existing(t) => (false, t.id.clone()),
            })
            .collect();
        assert_eq!(
            outcome_ids,
            [(true, ids[0].clone()), (true, ids[1].clone()), (false, ids[0].clone()), (false, earlier.id.clone())],
            "round {round}"
        );
        for id in &ids[..2] {
            let history = store.history(id).await.unwrap();
            assert_eq!(history.len(), 2, "round {round}: each event of a new ticket, once");
            assert!(history.iter().all(|event| !event.cursor.is_empty()), "history events have their cursor");
        }
        for id in &ids[2..] {
            assert!(store.get_ticket(id).await.unwrap().is_none(), "round {round}: a repeat is not written");
            assert!(store.history(id).await.unwrap().is_empty(), "round {round}: nor its events");
        }
        assert_eq!(store.outbox_len().await.unwrap(), outbox_before + 4, "round {round}: one message per event");
        let all = TicketFilter { limit: 10, ..Default::default() };
        assert_eq!(found(&store, &format!("boiler{round}"), &all).await, [ids[1].clone()], "round {round}");
        assert_eq!(found(&store, &format!("faucet{round}"), &all).await, [ids[0].clone()], "round {round}");
    }
}

async fn a_stale_version_is_refused_and_writes_nothing(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let created = create(&store, ticket("p1", "req-1", now())).await;
    let mut dispatched = created.clone();
    let events = dispatched.dispatch(route(), agent(), now()).unwrap();
    let saved = save(&store, dispatched, events).await.unwrap();
    assert_eq!(saved.version, 2, "one save, one version");

    let mut stale = created.clone();
    let events = stale.cancel(agent(), "dup".into(), now()).unwrap();
    let err = save(&store, stale, events).await.unwrap_err();
    assert!(matches!(err, StoreError::StaleVersion { current: 2 }), "{err:?}");

    let stored = store.get_ticket(&created.id).await.unwrap().unwrap();
    assert_eq!((stored.state(), stored.version), (TicketState::Dispatched, 2));
    assert_eq!(store.history(&created.id).await.unwrap().len(), 2);
    assert_eq!(store.outbox_len().await.unwrap(), 2);
}

/// Tickets saved together (a dispatch batch): all rows, events and messages, each ticket
/// at its next version; when one of them changed meanwhile, none of them is written.
async fn several_tickets_saved_together_are_all_written_or_none(backend: Backend) {
    use propdesk_store::tickets::{Unsaved, save_all};
    let (_db, store) = fresh(backend).await;
    let first = create(&store, ticket("p1", "req-1", now())).await;
    let second = create(&store, ticket("p1", "req-2", now())).await;
    let dispatched = |t: &Ticket| {
        let mut t = t.clone();
        let events = t.dispatch(route(), agent(), now()).unwrap();
        Unsaved { ticket: t, events: events.into(), trace_parent: None }
    };
    let txn = store.begin().await.unwrap();
    let saved = save_all(&txn, vec![dispatched(&first), dispatched(&second)]).await.unwrap();
    store.commit(txn).await.unwrap();
    assert_eq!(saved.iter().map(|t| t.version).collect::<Vec<_>>(), [2, 2]);
    for t in [&first, &second] {
        let stored = store.get_ticket(&t.id).await.unwrap().unwrap();
        assert_eq!((stored.state(), stored.version), (TicketState::Dispatched, 2));
        assert_eq!(store.history(&t.id).await.unwrap().len(), 2, "created and dispatched");
    }
    assert_eq!(store.outbox_len().await.unwrap(), 4);

    // The first moved on meanwhile: the third's change is not written either.
    let third = create(&store, ticket("p1", "req-3", now())).await;
    let txn = store.begin().await.unwrap();
    let err = save_all(&txn, vec![dispatched(&third), dispatched(&first)]).await.unwrap_err();
    drop(txn);
    assert!(matches!(err, StoreError::StaleVersion { current: 2 }), "{err:?}");
    let stored = store.get_ticket(&third.id).await.unwrap().unwrap();
    assert_eq!((stored.state(), stored.version), (TicketState::New, 1));
    assert_eq!(store.history(&third.id).await.unwrap().len(), 1);
    assert_eq!(store.outbox_len().await.unwrap(), 5, "only the third's creation");
}

async fn pages_are_newest_first_and_stable(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            create(&store, ticket(if i % 2 == 0 { "p1" } else { "p2" }, &format!("req-{i}"), now())).await.id.clone(),
        );
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut filter = TicketFilter { limit: 3, ..Default::default() };
    loop {
        let page = store.list_tickets(&filter).await.unwrap();
        seen.extend(page.iter().map(|t| t.id.clone()));
        if page.len() < 3 {
            break;
        }
        filter.before_id = page.last().map(|t| t.id.clone());
    }
    assert_eq!(seen, ids);

    let only_p2 = TicketFilter { property_ids: Some(vec!["p2".into()]), limit: 50, ..Default::default() };
    assert_eq!(store.list_tickets(&only_p2).await.unwrap().len(), 3);
}

async fn overdue_filter_finds_missed_unmet_deadlines(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let long_ago = now() - TimeDelta::hours(3);
    let late = create(&store, ticket("p1", "late", long_ago)).await;
    let mut met = facts("p1", "met", long_ago);
    met.times.accepted_at = Some(long_ago + TimeDelta::minutes(5));
    create(&store, Ticket::restore(met).unwrap()).await;
    create(&store, ticket("p1", "fresh", now())).await;

    let overdue = TicketFilter { overdue_at: Some(now()), limit: 50, ..Default::default() };
    let found = store.list_tickets(&overdue).await.unwrap();
    let found: Vec<&str> = found.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(found, vec![late.id.as_str()]);
}

async fn history_is_ordered_and_watchable_by_cursor(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let a = create(&store, ticket("p1", "a", now())).await;
    let start = settled_cursor(&store, &a.id).await;
    let b = create(&store, ticket("p2", "b", now())).await;
    let mut noted = a.clone();
    let events = noted.add_note(agent(), "called".into(), now());
    save(&store, noted, events).await.unwrap();

    let after = settled_events_after(&store, start, 2).await;
    assert_eq!(after.iter().map(|(_, e)| e.ticket_id.as_str()).collect::<Vec<_>>(), [b.id.as_str(), a.id.as_str()]);
    let p1_only = store.events_after(start, Some(&["p1".to_owned()]), None, None, 100).await.unwrap();
    assert_eq!(p1_only.len(), 1);
    assert_eq!(p1_only[0].1.ticket_version, 2);
    assert_eq!((p1_only[0].1.event_type, p1_only[0].1.note.as_str()), (EventType::NoteAdded, "called"));
    assert_eq!(store.last_event_cursor().await.unwrap(), after[1].0);
}

/// On PostgreSQL an event becomes watchable once every older transaction on the server
/// has ended; other tests' transactions can hold that back for a moment.
async fn settled_events_after(
    store: &Store,
    start: propdesk_store::EventCursor,
    expected: usize,
) -> Vec<(propdesk_store::EventCursor, HistoryEvent)> {
    for _ in 0..600 {
        let events = store.events_after(start, None, None, None, 100).await.unwrap();
        if events.len() >= expected {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("fewer than {expected} events became watchable");
}

/// The watch cursor once the newest event of `ticket_id` is watchable.
async fn settled_cursor(store: &Store, ticket_id: &str) -> propdesk_store::EventCursor {
    let newest = propdesk_store::EventCursor::parse(&store.history(ticket_id).await.unwrap().last().unwrap().cursor)
        .expect("a cursor");
    for _ in 0..600 {
        let cursor = store.last_event_cursor().await.unwrap();
        if cursor >= newest {
            return cursor;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the events of {ticket_id} never became watchable");
}

/// Two transactions take event ids 1 and 2; the second commits first. A watcher must not
/// see event 2 before event 1 is committed, or its cursor would step past event 1.
#[tokio::test]
async fn postgres_watchers_never_step_past_an_event_still_being_committed() {
    let (_db, store) = fresh(Backend::Postgres).await;
    let first = create(&store, ticket("p1", "a", now())).await;
    let second = create(&store, ticket("p1", "b", now())).await;
    let start = settled_cursor(&store, &second.id).await;

    let slow = store.begin().await.unwrap();
    let mut first_noted = first.clone();
    let events = first_noted.add_note(agent(), "slow".into(), now());
    propdesk_store::tickets::save(&slow, first_noted, &events).await.unwrap();

    let mut second_noted = second.clone();
    let events = second_noted.add_note(agent(), "quick".into(), now());
    save(&store, second_noted, events).await.unwrap();
    let visible = store.events_after(start, None, None, None, 100).await.unwrap();
    assert!(visible.is_empty(), "an event was shown while an older transaction was still open: {visible:?}");

    store.commit(slow).await.unwrap();
    // The horizon is server-wide: other databases' transactions may hold it back briefly.
    let mut visible = Vec::new();
    for _ in 0..100 {
        visible = store
            .events_after(start, None, None, None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.ticket_id)
            .collect();
        if !visible.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(visible, [first.id.clone(), second.id.clone()], "in commit-safe order, nothing skipped");
}

async fn duplicate_directory_names_conflict(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let at = now();
    let property = store
        .insert(property::Model {
            id: new_id(),
            name: "Sunny Gardens".into(),
            address: "1 Road".into(),
            created_at: at,
            updated_at: at,
            contact_retention_days: None,
        })
        .await
        .unwrap();
    let building = |name: &str| building::Model { id: new_id(), property_id: property.id.clone(), name: name.into() };
    store.insert(building("2")).await.unwrap();
    let err = store.insert(building("2")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let page = propdesk_store::Page { after: None, limit: 10 };
    assert_eq!(store.list_buildings(&property.id, &page).await.unwrap().len(), 1);
}

async fn times_round_trip_exactly(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let created = create(&store, ticket("p1", "t", now())).await;
    let read = store.get_ticket(&created.id).await.unwrap().unwrap();
    assert_eq!(read.times.created_at, created.times.created_at);
    assert_eq!(read.deadlines.acknowledge_by, created.deadlines.acknowledge_by);
    assert_eq!(read.facts(), created.facts(), "every fact round-trips");
}

async fn concurrent_relay_passes_never_share_a_row(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    for i in 0..120 {
        create(&store, ticket("p1", &format!("req-{i}"), now())).await;
    }
    // A second store on the same database stands for another process.
    let other = Store::connect(&_db.url, 5).await.unwrap();
    let published = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut passes = Vec::new();
    for relay in [store.clone(), other.clone(), store.clone(), other] {
        let published = published.clone();
        passes.push(tokio::spawn(async move {
            let mut total = 0;
            loop {
                let published = published.clone();
                let pass = relay
                    .relay_outbox(25, |rows| async move {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        let mut seen = published.lock().unwrap();
                        seen.extend(rows.iter().map(|r| r.message_id.clone()));
                        vec![true; rows.len()]
                    })
                    .await;
                match pass {
                    Ok(0) => break,
                    Ok(published) => total += published,
                    // SQLite may report a busy writer under this contention: try again.
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                }
            }
            total
        }));
    }
    let mut total = 0;
    for pass in passes {
        total += pass.await.unwrap();
    }
    let mut ids = published.lock().unwrap().clone();
    assert_eq!(total, 120);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 120, "a row was published twice");
    assert_eq!(store.outbox_len().await.unwrap(), 0);
}

/// Messages a process commits while its relay takes them are handed over in memory, only
/// those of tickets actually written (a repeated request hands nothing); another process
/// cannot claim them while their lease holds, but takes them once it lapses (the process
/// died before publishing them).
async fn a_process_s_own_messages_reach_its_relay_without_a_claim_and_others_wait_for_their_lease(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let other = Store::connect(&_db.url, 5).await.unwrap();
    store.hand_outbox_to_relay(true);
    let first = create(&store, ticket("p1", "req-1", now())).await;
    // A retry of the same request writes nothing, so hands nothing over.
    store.create_tickets(vec![new_ticket(ticket("p1", "req-1", now()))]).await.unwrap();
    let mut changed = first.clone();
    let events = changed.add_note(agent(), "seen".into(), now());
    save(&store, changed, events).await.unwrap();

    let claimed_elsewhere = other.relay_outbox(100, |rows| async move { vec![true; rows.len()] }).await.unwrap();
    assert_eq!(claimed_elsewhere, 0, "another relay took rows leased to this process");
    let handed = store.take_handed(100).await.unwrap().expect("this process's messages, handed over");
    let kinds: Vec<&str> = handed.messages.iter().map(|m| m.routing_key.as_str()).collect();
    assert_eq!(kinds.len(), 2, "the create and the note, once each: {kinds:?}");
    assert!(store.take_handed(100).await.unwrap().is_none(), "handed over once");
    let pass = store.publish_claimed(handed, |rows| async move { vec![true; rows.len()] }).await.unwrap();
    assert_eq!((pass.sent.len(), pass.failed), (2, 0));
    assert_eq!(store.outbox_len().await.unwrap(), 2, "kept until deleted");
    store.delete_published(&pass.sent).await.unwrap();
    assert_eq!(store.outbox_len().await.unwrap(), 0);

    // Its relay comes late to a message (SQLite's writer was busy, say): the claim is
    // renewed and the relay still publishes it, unless another relay took it once the
    // lease lapsed.
    create(&store, ticket("p1", "req-late", now())).await;
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let late = store.take_handed(100).await.unwrap().expect("a late message, still this relay's");
    assert_eq!(late.messages.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let renewed = other.relay_outbox(100, |rows| async move { vec![true; rows.len()] }).await.unwrap();
    assert_eq!(renewed, 0, "the renewed claim holds past the first lease");
    let pass = store.publish_claimed(late, |rows| async move { vec![true; rows.len()] }).await.unwrap();
    store.delete_published(&pass.sent).await.unwrap();
    assert_eq!(pass.sent.len(), 1);
    create(&store, ticket("p1", "req-taken", now())).await;
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    let taken = other.relay_outbox(100, |rows| async move { vec![true; rows.len()] }).await.unwrap();
    assert_eq!(taken, 1, "the lapsed claim is taken by another relay");
    assert!(store.take_handed(100).await.unwrap().is_none(), "not published by this relay too");
    assert_eq!(store.outbox_len().await.unwrap(), 0);

    // This process dies holding a message it never published: it waits out the lease.
    create(&store, ticket("p1", "req-2", now())).await;
    drop(store);
    assert_eq!(other.relay_outbox(100, |rows| async move { vec![true; rows.len()] }).await.unwrap(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    let published = other.relay_outbox(100, |rows| async move { vec![true; rows.len()] }).await.unwrap();
    assert_eq!(published, 1, "the lapsed claim is taken by another relay");
    assert_eq!(other.outbox_len().await.unwrap(), 0);
}

fn planned(clock: Clock, rung: Rung, fire_at: DateTime<Utc>) -> Alarm {
    Alarm { clock, rung, deadline: fire_at, fire_at, level: 1, recipients: vec![Recipient::Supervisor] }
}

async fn alarm_sync_adds_moves_and_clears_but_never_replans_a_fired_step(backend: Backend) {
    use propdesk_store::alarms::{due_alarms_of, mark_fired, sync_alarms};
    use propdesk_store::work::lock_ticket;
    let (_db, store) = fresh(backend).await;
    let t0 = now();
    let t = create(&store, ticket("p-1", "r-1", t0)).await;
    let sync = async |plan: Vec<Alarm>, cycle: i32| {
        let txn = store.begin().await.unwrap();
        lock_ticket(&txn, &t.id).await.unwrap().expect("ticket");
        let outcome = sync_alarms(&txn, &t.id, cycle, &plan).await.unwrap();
        store.commit(txn).await.unwrap();
        outcome
    };
    let first = sync(
        vec![
            planned(Clock::Acknowledge, Rung::Breach, t0),
            planned(Clock::Resolve, Rung::Breach, t0 + TimeDelta::hours(1)),
        ],
        0,
    )
    .await;
    assert_eq!((first.inserted, first.next_fire_at), (2, Some(t0)));
    // The same plan again changes nothing; a moved deadline moves its alarm.
    let same = sync(
        vec![
            planned(Clock::Acknowledge, Rung::Breach, t0),
            planned(Clock::Resolve, Rung::Breach, t0 + TimeDelta::hours(1)),
        ],
        0,
    )
    .await;
    assert_eq!((same.inserted, same.moved, same.removed), (0, 0, 0));
    let moved = sync(
        vec![
            planned(Clock::Acknowledge, Rung::Breach, t0),
            planned(Clock::Resolve, Rung::Breach, t0 + TimeDelta::hours(2)),
        ],
        0,
    )
    .await;
    assert_eq!(moved.moved, 1);
    assert_eq!(store.next_alarm_at().await.unwrap(), Some(t0));

    // Fire the acknowledge breach; planning it again (same cycle) does not re-arm it.
    let txn = store.begin().await.unwrap();
    let due = due_alarms_of(&txn, &t.id, t0 + TimeDelta::seconds(1)).await.unwrap();
    assert_eq!(due.len(), 1);
    mark_fired(&txn, &[due[0].id], t0 + TimeDelta::seconds(1)).await.unwrap();
    store.commit(txn).await.unwrap();
    let again = sync(
        vec![
            planned(Clock::Acknowledge, Rung::Breach, t0),
            planned(Clock::Resolve, Rung::Breach, t0 + TimeDelta::hours(2)),
        ],
        0,
    )
    .await;
    assert_eq!((again.inserted, again.next_fire_at), (0, Some(t0 + TimeDelta::hours(2))));
    assert!(store.tickets_with_due_alarms(t0 + TimeDelta::minutes(5), 10).await.unwrap().is_empty());

    // The clock is met: its pending alarm goes; the fired one stays on record.
    let cleared = sync(vec![], 0).await;
    assert_eq!(cleared.removed, 1);
    let rows = store.alarms_of(&t.id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].pending && rows[0].fired_at.is_some());
    // A new cycle (reopened) plans the same step afresh.
    let reopened = sync(vec![planned(Clock::Acknowledge, Rung::Breach, t0 + TimeDelta::hours(3))], 1).await;
    assert_eq!(reopened.inserted, 1);
    assert_eq!(store.pending_alarms().await.unwrap(), 1);
}

async fn alarm_sync_of_several_tickets_keeps_each_ticket_s_outcome(backend: Backend) {
    use propdesk_store::alarms::{AlarmPlan, sync_alarms_of};
    use propdesk_store::work::lock_tickets;
    let (_db, store) = fresh(backend).await;
    let t0 = now();
    let a = create(&store, ticket("p-1", "r-a", t0)).await;
    let b = create(&store, ticket("p-1", "r-b", t0)).await;
    let c = create(&store, ticket("p-1", "r-c", t0)).await;
    let sync = async |plans: &[AlarmPlan<'_>]| {
        let txn = store.begin().await.unwrap();
        let ids: Vec<&str> = plans.iter().map(|p| p.ticket_id).collect();
        assert_eq!(lock_tickets(&txn, &ids).await.unwrap().len(), ids.len());
        let outcomes = sync_alarms_of(&txn, plans).await.unwrap();
        store.commit(txn).await.unwrap();
        outcomes
    };
    let a_plan = vec![
        planned(Clock::Acknowledge, Rung::Breach, t0),
        planned(Clock::Resolve, Rung::Breach, t0 + TimeDelta::hours(1)),
    ];
    let b_plan = vec![planned(Clock::Acknowledge, Rung::Breach, t0 + TimeDelta::minutes(5))];
    let first = sync(&[
        AlarmPlan { ticket_id: &a.id, cycle: 0, planned: &a_plan },
        AlarmPlan { ticket_id: &b.id, cycle: 0, planned: &b_plan },
        AlarmPlan { ticket_id: &c.id, cycle: 0, planned: &[] },
    ])
    .await;
    let summary: Vec<_> = first.iter().map(|s| (s.inserted, s.moved, s.removed, s.next_fire_at)).collect();
    assert_eq!(summary, vec![(2, 0, 0, Some(t0)), (1, 0, 0, Some(t0 + TimeDelta::minutes(5))), (0, 0, 0, None)]);

    // Next batch: a's resolve deadline moves, b's clock is met, c gets its first alarm.
    let a_moved = vec![
        planned(Clock::Acknowledge, Rung::Breach, t0),
        planned(Clock::Resolve, Rung::Breach, t0 + TimeDelta::hours(2)),
    ];
    let c_plan = vec![planned(Clock::Resolve, Rung::Reminder, t0 + TimeDelta::hours(3))];
    let second = sync(&[
        AlarmPlan { ticket_id: &a.id, cycle: 0, planned: &a_moved },
        AlarmPlan { ticket_id: &b.id, cycle: 0, planned: &[] },
        AlarmPlan { ticket_id: &c.id, cycle: 0, planned: &c_plan },
    ])
    .await;
    let summary: Vec<_> = second.iter().map(|s| (s.inserted, s.moved, s.removed, s.next_fire_at)).collect();
    assert_eq!(summary, vec![(0, 1, 0, Some(t0)), (0, 0, 1, None), (1, 0, 0, Some(t0 + TimeDelta::hours(3)))]);
    let resolve_of_a: Vec<_> =
        store.alarms_of(&a.id).await.unwrap().into_iter().filter(|r| r.clock == "resolve").map(|r| r.fire_at).collect();
    assert_eq!(resolve_of_a, vec![t0 + TimeDelta::hours(2)]);
    assert!(store.alarms_of(&b.id).await.unwrap().is_empty());
    assert_eq!(store.pending_alarms().await.unwrap(), 3);
}

async fn a_delivery_is_claimed_once_retried_then_dead_and_replayable(backend: Backend) {
    use propdesk_domain::follow_up::DeliveryState;
    use propdesk_store::deliveries::{Attempt, NewNotification, insert_notifications};
    let (_db, store) = fresh(backend).await;
    let t0 = now();
    let row = NewNotification {
        id: new_id(),
        ticket_id: None,
        property_id: "p-1".into(),
        recipient_id: Some("s-1".into()),
        recipient_role: Recipient::Supervisor,
        subject: "escalation.breach".into(),
        sink: "webhook".into(),
        target: "http://127.0.0.1:9/hook".into(),
        body: "{}".into(),
        delivered: false,
        at: t0,
    };
    insert_notifications(store.connection(), vec![row.clone()]).await.unwrap();
    let pending = store.get_delivery(&row.id).await.unwrap().unwrap();
    assert_eq!(
        (pending.state(), pending.attempts, pending.recipient_role.as_str()),
        (Some(DeliveryState::Pending), 0, "supervisor")
    );
    let lease = TimeDelta::seconds(30);
    let (a, b) = tokio::join!(store.claim_deliveries(t0, lease, 10), store.claim_deliveries(t0, lease, 10));
    assert_eq!(a.unwrap().len() + b.unwrap().len(), 1, "two claimers never share a delivery");
    assert!(store.claim_deliveries(t0, lease, 10).await.unwrap().is_empty(), "claimed until the lease ends");

    let retry_at = t0 + TimeDelta::seconds(2);
    store.record_attempt(&row.id, Attempt::Failed { error: "503".into(), retry_at: Some(retry_at) }, t0).await.unwrap();
    assert!(store.claim_deliveries(t0, lease, 10).await.unwrap().is_empty(), "not before its retry time");
    assert_eq!(store.next_delivery_at().await.unwrap(), Some(retry_at));
    let claimed = store.claim_deliveries(retry_at, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    store.record_attempt(&row.id, Attempt::Failed { error: "503".into(), retry_at: None }, retry_at).await.unwrap();
    let dead = store.get_delivery(&row.id).await.unwrap().unwrap();
    assert_eq!((dead.state(), dead.attempts), (Some(DeliveryState::Dead), 2));
    assert!(store.claim_deliveries(retry_at + TimeDelta::hours(1), lease, 10).await.unwrap().is_empty());

    let replayed = store.replay_delivery(&row.id, retry_at).await.unwrap();
    assert_eq!(
        (replayed.state(), replayed.attempts, replayed.id.as_str()),
        (Some(DeliveryState::Pending), 0, row.id.as_str())
    );
    let claimed = store.claim_deliveries(retry_at, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    store.record_attempt(&row.id, Attempt::Delivered, retry_at).await.unwrap();
    assert_eq!(store.get_delivery(&row.id).await.unwrap().unwrap().state(), Some(DeliveryState::Delivered));
}

async fn report_counts_cover_the_property_period_and_department(backend: Backend) {
    use chrono::TimeZone;
    use propdesk_store::reports::ReportScope;
    let (_db, store) = fresh(backend).await;
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let at = |day: i64| start + TimeDelta::days(day);
    let engineering = |t: TicketFacts| TicketFacts {
        department: Some(Department::Engineering),
        ..in_state(TicketState::Dispatched, t)
    };
    let incident = TicketFacts { incident: IncidentLink::IsIncident, ..engineering(facts("p-1", "incident", at(3))) };
    let incident = create(&store, incident).await;
    let linked = |t: TicketFacts| TicketFacts { incident: IncidentLink::LinkedTo(incident.id.clone()), ..t };
    let complaint = |t: TicketFacts| TicketFacts {
        kind: TicketKind::Complaint,
        channel: Channel::Letter,
        category: CategoryCode::new("fee_dispute"),
        department: Some(Department::CustomerService),
        ..t
    };
    let november = [
        linked(engineering(facts("p-1", "r1", at(3)))),
        linked(engineering(facts("p-1", "r2", at(3)))),
        TicketFacts { repeat_fault: true, ..engineering(facts("p-1", "r3", at(20))) },
        complaint(facts("p-1", "r4", at(5))),
        complaint(facts("p-1", "r5", end - TimeDelta::microseconds(1))),
        TicketFacts {
            kind: TicketKind::Enquiry,
            channel: Channel::App,
            category: CategoryCode::new("general_enquiry"),
            ..facts("p-1", "r6", at(0))
        },
    ];
    for t in november {
        create(&store, t).await;
    }
    // Outside the scope: October, December, another property.
    create(&store, engineering(facts("p-1", "october", start - TimeDelta::microseconds(1)))).await;
    create(&store, engineering(facts("p-1", "december", end))).await;
    create(&store, engineering(facts("p-2", "elsewhere", at(4)))).await;

    let scope = ReportScope { property_id: "p-1".into(), start, end, department: None };
    let pairs = |rows: Vec<(String, i64)>| rows.into_iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>();
    // Overdue now: every open request logged with a 2-hour acknowledge clock long ago.
    let now = end + TimeDelta::days(30);
    let figures = store.request_figures(&scope, now).await.unwrap();
    assert_eq!(pairs(figures.by_kind), ["repair=3", "complaint=2", "enquiry=1"]);
    assert_eq!(pairs(figures.by_channel), ["phone=3", "letter=2", "app=1"]);
    assert_eq!(pairs(figures.by_category), ["plumbing=3", "fee_dispute=2", "general_enquiry=1"]);
    assert_eq!(pairs(figures.by_department), ["engineering=3", "customer_service=2", "unrouted=1"]);
    assert_eq!((figures.repeat_faults, figures.incidents, figures.incident_tickets), (1, 1, 2));
    let engineering_only = ReportScope { department: Some(Department::Engineering), ..scope.clone() };
    assert_eq!(pairs(store.request_figures(&engineering_only, now).await.unwrap().by_kind), ["repair=3"]);
    let previous = ReportScope { start: start - TimeDelta::days(30), end: start, ..scope.clone() };
    assert_eq!(pairs(store.categories(&previous).await.unwrap()), ["plumbing=1"]);

    let overdue = pairs(store.overdue_open_by_department("p-1", None, now).await.unwrap());
    // The two linked reports are not overdue themselves: their incident is, in their place.
    assert_eq!(overdue, ["engineering=4", "customer_service=2", "unrouted=1"]);
    let overdue = pairs(store.overdue_open_by_department("p-1", Some(Department::CustomerService), now).await.unwrap());
    assert_eq!(overdue, ["customer_service=2"]);
}

async fn clock_stats_pick_nearest_rank_percentiles_and_count_met_deadlines(backend: Backend) {
    use chrono::TimeZone;
    use propdesk_store::reports::{ReportClock, ReportScope};
    let (_db, store) = fresh(backend).await;
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let logged = start + TimeDelta::days(2);
    // Acknowledged after 60, 120, 180, 240 and 600 s, against a 300 s deadline; the first
    // three by technician t-1, the others by t-2.
    for (n, secs) in [600, 60, 240, 120, 180].into_iter().enumerate() {
        let mut t = in_state(TicketState::Accepted, facts("p-1", &format!("r{n}"), logged));
        t.times.accepted_at = Some(logged + TimeDelta::seconds(secs));
        t.deadlines.acknowledge_by = Some(logged + TimeDelta::seconds(300));
        t.assignee_id = Some(if n < 3 { "t-1" } else { "t-2" }.into());
        create(&store, t).await;
    }
    // Not acknowledged: one past its deadline (missed), one still in time (undecided).
    let now = logged + TimeDelta::hours(1);
    let acknowledge_by = |at: DateTime<Utc>, mut t: TicketFacts| {
        t.deadlines.acknowledge_by = Some(at);
        t
    };
    create(&store, acknowledge_by(now - TimeDelta::minutes(1), facts("p-1", "missed", logged))).await;
    create(&store, acknowledge_by(now + TimeDelta::minutes(1), facts("p-1", "running", logged))).await;

    // Cancelled before its deadline passed: the clock stopped, nothing was missed.
    let cancelled = in_state(TicketState::Cancelled, facts("p-1", "cancelled", logged));
    create(&store, acknowledge_by(now - TimeDelta::minutes(1), cancelled)).await;

    let scope = ReportScope { property_id: "p-1".into(), start, end, department: None };
    let figures = store.request_figures(&scope, now).await.unwrap();
    let [acknowledge, on_site, _] = figures.clocks;
    assert_eq!((acknowledge.measured, acknowledge.decided, acknowledge.met), (5, 6, 4));
    // Nearest rank of 5 sorted values: the median is the 3rd (180 s), p90 the 5th (600 s).
    let close = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 0.001);
    let picked = store.clock_percentiles(&scope, ReportClock::Acknowledge).await.unwrap();
    assert!(close(picked.median_secs, 180.0), "{picked:?}");
    assert!(close(picked.p90_secs, 600.0), "{picked:?}");
    assert_eq!(on_site.measured, 0);
    let nothing = store.clock_percentiles(&scope, ReportClock::OnSite).await.unwrap();
    assert_eq!((nothing.median_secs, nothing.p90_secs), (None, None));
    // The late acknowledgement and the one never made are the breaches.
    assert_eq!(figures.breached_by_department, [("unrouted".to_owned(), 2)]);

    // Per person: t-1 took 600, 60 and 240 s (median 240, one late); t-2 120 and 180 s
    // (median of two: the first, 120).
    let people = store.staff_counts(&scope, now).await.unwrap();
    let summary: Vec<_> = people.iter().map(|p| (p.staff_id.as_str(), p.handled, p.met, p.decided)).collect();
    assert_eq!(summary, [("t-1", 3, 2, 3), ("t-2", 2, 2, 2)]);
    assert!(close(people[0].median_acknowledge_secs, 240.0), "{people:?}");
    assert!(close(people[1].median_acknowledge_secs, 120.0), "{people:?}");
    assert_eq!(people[0].median_on_site_secs, None, "nobody reached the site");
}

async fn callback_coverage_ratings_reopenings_and_escalations_are_counted(backend: Backend) {
    use chrono::TimeZone;
    use propdesk_store::alarms::{mark_fired, sync_alarms};
    use propdesk_store::reports::ReportScope;
    use propdesk_store::work::lock_ticket;
    let (_db, store) = fresh(backend).await;
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let logged = start + TimeDelta::days(1);
    let due = logged + TimeDelta::days(3);
    let now = logged + TimeDelta::days(10);
    let done = |request: &str, state: TicketState| {
        let mut t = in_state(state, facts("p-1", request, logged));
        t.times.dispatched_at = Some(logged);
        t.times.resolved_at = Some(logged + TimeDelta::days(1));
        t.deadlines.callback_by = Some(due);
        t
    };
    let called_back = |satisfaction: Satisfaction, at: DateTime<Utc>, t: TicketFacts| TicketFacts {
        callback: Some(CallbackRecord {
            satisfaction,
            comment: String::new(),
            recorded_by: "agent-1".into(),
            recorded_at: at,
        }),
        ..t
    };
    let on_time = create(
        &store,
        called_back(Satisfaction::Satisfied, due - TimeDelta::hours(1), done("on-time", TicketState::Closed)),
    )
    .await;
    // Called back late, unsatisfied, reopened for rework.
    let mut reworked =
        called_back(Satisfaction::Unsatisfied, due + TimeDelta::hours(1), done("reworked", TicketState::Reopened));
    reworked.times.resolved_at = None;
    reworked.clock_cycle = 1;
    let reopened = Recorded {
        event_type: EventType::Reopened,
        cause: Some(propdesk_domain::Cause::CallbackUnsatisfied),
        from: Some(TicketState::Resolved),
        to: TicketState::Reopened,
        ..created(logged)
    };
    let reworked = NewTicket {
        ticket: Ticket::restore(reworked).unwrap(),
        events: vec![created(logged), reopened],
        trace_parent: None,
    };
    store.create_tickets(vec![reworked]).await.unwrap();
    let missing = create(&store, done("missing", TicketState::Resolved)).await;
    let mut working = in_state(TicketState::Dispatched, facts("p-1", "working", logged));
    working.times.dispatched_at = Some(logged);
    create(&store, working).await;
    create(&store, facts("p-1", "new", logged)).await;

    let scope = ReportScope { property_id: "p-1".into(), start, end, department: None };
    let stats = store.request_figures(&scope, now).await.unwrap().callbacks;
    assert_eq!((stats.dispatched, stats.called_back, stats.late), (4, 2, 2));
    assert_eq!(stats.ratings, [("satisfied".to_owned(), 1), ("unsatisfied".to_owned(), 1)]);
    assert_eq!((stats.resolved, stats.reopened), (3, 1));

    // Ladder steps: two breaches and one overdue fired in November; one fired in December
    // and one still pending do not count.
    let fire = async |t: &Ticket, steps: &[(Rung, i32, DateTime<Utc>)], pending: bool| {
        let plan: Vec<_> = steps
            .iter()
            .map(|(rung, level, at)| Alarm { level: *level, ..planned(Clock::Acknowledge, *rung, *at) })
            .collect();
        let txn = store.begin().await.unwrap();
        lock_ticket(&txn, &t.id).await.unwrap();
        sync_alarms(&txn, &t.id, 0, &plan).await.unwrap();
        store.commit(txn).await.unwrap();
        let txn = store.begin().await.unwrap();
        if !pending {
            for alarm in store.alarms_of(&t.id).await.unwrap_or_default() {
                let at = steps.iter().find(|(rung, _, _)| rung.code() == alarm.rung).map(|s| s.2).unwrap();
                mark_fired(&txn, &[alarm.id], at).await.unwrap();
            }
        }
        store.commit(txn).await.unwrap();
    };
    fire(&on_time, &[(Rung::Breach, 1, logged), (Rung::Overdue, 2, logged + TimeDelta::hours(1))], false).await;
    fire(&missing, &[(Rung::Breach, 1, logged), (Rung::Overdue, 2, end + TimeDelta::hours(1))], false).await;
    let dispatched_only = TicketFilter { states: vec![TicketState::Dispatched], limit: 5, ..Default::default() };
    let working = store.list_tickets(&dispatched_only).await.unwrap().remove(0);
    fire(&working, &[(Rung::Breach, 1, logged)], true).await;
    let levels = store.escalations_by_level(&scope).await.unwrap();
    assert_eq!(levels, [("1".to_owned(), 2), ("2".to_owned(), 1)]);
}

/// Advisory keys (PostgreSQL): one held key makes another transaction wait for the
/// commit, and transactions that take overlapping keys given in opposite orders never
/// deadlock (the deadlock detector would fail one of them).
#[tokio::test]
async fn keys_serialize_transactions_and_never_deadlock() {
    use propdesk_store::work::lock_keys;
    use std::time::Duration;
    let (_db, store) = fresh(Backend::Postgres).await;
    let keys = ["incident/b-1/lift", "incident/b-2/plumbing", "incident/b-3/power"];

    let holder = store.begin().await.unwrap();
    lock_keys(&holder, &keys[..2]).await.unwrap();
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            let txn = store.begin().await.unwrap();
            lock_keys(&txn, &[keys[2], keys[1]]).await.unwrap();
            store.commit(txn).await.unwrap();
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "a held key was taken by a second transaction");
    store.commit(holder).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter got its keys after the commit")
        .unwrap();

    for round in 0..20 {
        let take = |order: Vec<&'static str>| {
            let store = store.clone();
            tokio::spawn(async move {
                let txn = store.begin().await?;
                lock_keys(&txn, &order).await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
                store.commit(txn).await
            })
        };
        let forward = take(keys.to_vec());
        let backward = take(keys.iter().rev().copied().collect());
        for task in [forward, backward] {
            task.await.unwrap().unwrap_or_else(|err| panic!("round {round}: {err}"));
        }
    }
}

/// A word in thousands of tickets ranks only the newest [`SEARCH_WINDOW`] of them (on
/// PostgreSQL the statistics say it is common, so nothing counts its matches first); a
/// word in one old ticket is found however far back it lies.
async fn a_word_in_thousands_of_tickets_ranks_the_newest_matches_and_a_rare_one_is_found_anywhere(backend: Backend) {
    use propdesk_store::search::SEARCH_WINDOW;
    let (_db, store) = fresh(backend).await;
    let titled = |n: usize, title: &str| {
        new_ticket(
            Ticket::restore(TicketFacts { title: title.into(), ..facts("p1", &format!("req-{n}"), now()) }).unwrap(),
        )
    };
    let common = 3 * SEARCH_WINDOW as usize + 500;
    let mut logged = vec![titled(0, "燃气 漏气")];
    logged.extend((1..=common).map(|n| titled(n, "电梯 停了")));
    // Matches the word three times: the best match, if it is among the newest.
    logged.push(titled(common + 1, "电梯 电梯 电梯"));
    let ids: Vec<String> = logged.iter().map(|new| new.ticket.id.clone()).collect();
    for batch in logged.chunks(500) {
        store.create_tickets(batch.to_vec()).await.unwrap();
    }
    if backend == Backend::Postgres {
        store.connection().execute_unprepared("ANALYZE ticket_search").await.unwrap();
    }

    let page = TicketFilter { limit: 5, ..Default::default() };
    let newest_first: Vec<String> = ids[1..=common].iter().rev().take(4).cloned().collect();
    let mut expected = vec![ids[common + 1].clone()];
    expected.extend(newest_first);
    assert_eq!(found(&store, "电梯", &page).await, expected, "best match, then the newest");
    assert_eq!(found(&store, "燃气", &page).await, [ids[0].clone()], "the oldest ticket, alone in its word");
}

fn search(text: &str) -> Query {
    let mut violations = propdesk_domain::Violations::new();
    Query::parse(&mut violations, "query", text).expect("a valid query")
}

async fn found(store: &Store, text: &str, filter: &TicketFilter) -> Vec<String> {
    store.search_tickets(&search(text), filter, 0).await.unwrap().into_iter().map(|t| t.id.clone()).collect()
}

/// Tickets stored before the search index and phone keys existed are indexed by the
/// migration that adds them, with the notes staff wrote.
async fn the_desk_migration_indexes_the_tickets_already_stored(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let leak = Ticket::restore(TicketFacts {
        description: "厨房漏水很严重".into(),
        reporter: Reporter { name: "张三".into(), phone: "+86 138-1234-5678".into() },
        ..facts("p1", "req-1", now())
    })
    .unwrap();
    let leak = create(&store, leak).await;
    let mut noted = leak.clone();
    let note = noted.add_note(agent(), "更换了阀门".into(), now());
    save(&store, noted, note).await.unwrap();
    let mut system = store.get_ticket(&leak.id).await.unwrap().unwrap();
    let by_system =
        system.dispatch(Route { note: "自动派单".into(), ..route() }, By::System("dispatch"), now()).unwrap();
    save(&store, system, by_system).await.unwrap();
    let lift = create(
        &store,
        Ticket::restore(TicketFacts { description: "3号楼电梯停了".into(), ..facts("p1", "req-2", now()) }).unwrap(),
    )
    .await;

    let resident = propdesk_store::entity::resident::NewResident {
        id: new_id(),
        property_id: "p1".into(),
        unit_id: new_id(),
        name: "李四".into(),
        phone: "+86 139-0000-1111".into(),
        language: propdesk_domain::replies::DEFAULT_LANGUAGE.to_owned(),
    };
    store.insert(propdesk_store::entity::resident::Model::new(resident, now())).await.unwrap();

    // Back to the schema before the migration, the rows kept.
    let db = store.connection();
    let mut undo = vec![
        "DROP INDEX tickets_phone",
        "DROP INDEX tickets_unit_id",
        "DROP INDEX tickets_resident_id",
        "DROP TABLE ticket_search",
        "ALTER TABLE tickets DROP COLUMN reporter_phone_key",
        "DROP INDEX residents_phone",
        "DROP INDEX residents_name",
        "DROP INDEX follow_ups_owner_due",
        "ALTER TABLE residents DROP COLUMN phone_key",
        "DELETE FROM seaql_migrations WHERE version = 'm0012_desk_lookups'",
    ];
    if backend == Backend::Sqlite {
        undo.push("DROP TABLE ticket_search_docs");
    }
    // Personal data as it was stored then: in clear.
    undo.push("UPDATE tickets SET reporter_name = '张三', reporter_phone = '13812345678'");
    undo.push("UPDATE residents SET name = '李四', phone = '+86 139-0000-1111'");
    for sql in undo {
        db.execute_unprepared(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    store.migrate().await.expect("the migration runs on existing tickets");
    // As `propdesk migrate` does next: what was in clear is sealed, and indexed blind.
    let resealed = store.reseal_personal_data(1).await.expect("sealed");
    assert_eq!(resealed, propdesk_store::rekey::Resealed { tickets: 2, residents: 1 });
    let in_clear = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT (SELECT count(*) FROM tickets WHERE reporter_phone LIKE '%1381234%' OR reporter_phone_key LIKE '%1381234%') \
             + (SELECT count(*) FROM residents WHERE phone LIKE '%139%' OR name = '李四' OR phone_key LIKE '%1390000%')",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(in_clear.try_get_by_index::<i64>(0).unwrap(), 0, "nothing left in clear");

    let all = TicketFilter { limit: 10, ..Default::default() };
    assert_eq!(found(&store, "漏水", &all).await, [leak.id.as_str()]);
    assert_eq!(found(&store, "阀门", &all).await, [leak.id.as_str()], "staff notes are indexed");
    assert!(found(&store, "派单", &all).await.is_empty(), "system notes are not");
    assert_eq!(found(&store, "电梯", &all).await, [lift.id.as_str()]);
    let by_phone = TicketFilter { phone_key: Some("13812345678".into()), ..all.clone() };
    let ids: Vec<String> = store.list_tickets(&by_phone).await.unwrap().into_iter().map(|t| t.id.clone()).collect();
    assert_eq!(ids, [lift.id.clone(), leak.id.clone()]);

    let by_phone = propdesk_store::ResidentFilter {
        property_id: "p1".into(),
        phone_key: Some("13900001111".into()),
        ..Default::default()
    };
    let residents = store.list_residents(&by_phone, &propdesk_store::Page { after: None, limit: 10 }).await.unwrap();
    assert_eq!(residents.len(), 1, "residents get their phone key too");

    // New writes keep appending to the migrated entries.
    let mut again = store.get_ticket(&lift.id).await.unwrap().unwrap();
    let note = again.add_note(agent(), "已通知电梯公司".into(), now());
    save(&store, again, note).await.unwrap();
    assert_eq!(found(&store, "电梯公司", &all).await, [lift.id.as_str()]);
    assert_eq!(found(&store, "3号楼 电梯", &all).await, [lift.id.as_str()]);
    let elsewhere = TicketFilter { property_ids: Some(vec!["p2".into()]), ..all };
    assert!(found(&store, "电梯", &elsewhere).await.is_empty());
}
