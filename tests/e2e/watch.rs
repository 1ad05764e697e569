//! WatchTickets: live events, and resuming from a cursor with no gap and no repeat.

use std::time::Duration;

use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use tokio_stream::StreamExt;

use crate::helpers::{App, authed};

crate::on_both_backends!(
    a_watch_cut_and_resumed_across_1000_events_misses_none_and_repeats_none,
    a_resumed_watch_misses_nothing_and_repeats_nothing,
);

async fn next_event(stream: &mut tonic::Streaming<pb::TicketEvent>) -> pb::TicketEvent {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event within 5 s")
        .expect("stream open")
        .expect("event")
}

async fn a_resumed_watch_misses_nothing_and_repeats_nothing(backend: Backend) {
    let mut app = App::start(backend).await;
    let agent = app.world.agent.clone();
    let request = pb::WatchTicketsRequest { property_id: app.world.property_id.clone(), ..Default::default() };
    let mut stream = app.tickets.watch_tickets(authed(&agent, request.clone())).await.unwrap().into_inner();
    let first = app.create(app.new_ticket("plumbing", "one")).await;
    let event = next_event(&mut stream).await;
    assert_eq!((event.ticket_id.as_str(), event.r#type), (first.id.as_str(), pb::TicketEventType::Created as i32));
    let cursor = event.cursor.clone();
    drop(stream);

    // While nobody watches: three more events.
    let second = app.create(app.new_ticket("plumbing", "two")).await;
    app.tickets.add_note(authed(&agent, App::action(&first, "called back"))).await.unwrap();
    let third = app.create(app.new_ticket("rubbish", "three")).await;

    let resumed = pb::WatchTicketsRequest { after_cursor: cursor, ..request };
    let mut stream = app.tickets.watch_tickets(authed(&agent, resumed)).await.unwrap().into_inner();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let e = next_event(&mut stream).await;
        seen.push((e.ticket_id, e.r#type));
    }
    use pb::TicketEventType as E;
    assert_eq!(
        seen,
        [(second.id, E::Created as i32), (first.id.clone(), E::NoteAdded as i32), (third.id, E::Created as i32)]
    );
    // And live again afterwards, with nothing repeated in between.
    let fourth = app.create(app.new_ticket("plumbing", "four")).await;
    let e = next_event(&mut stream).await;
    assert_eq!(e.ticket_id, fourth.id);

    // SIGTERM ends open streams cleanly and the process exits promptly.
    let took = app.server.terminate();
    assert!(took < Duration::from_secs(5), "SIGTERM with an open stream took {took:?}");
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("the stream ends");
    assert!(!matches!(end, Some(Ok(_))), "no event after shutdown: {end:?}");
}

/// 1,000 events (500 tickets logged on one intake replica, each dispatched by the worker),
/// watched on a second replica: cut after 300 and resumed from the last cursor, the two
/// streams together hold every event exactly once, in cursor order. The second replica's
/// poll is set to a minute, so the events can only arrive live through its bus queue.
async fn a_watch_cut_and_resumed_across_1000_events_misses_none_and_repeats_none(backend: Backend) {
    use std::collections::HashSet;

    use propdesk_proto::v1::ticket_service_client::TicketServiceClient;

    use crate::helpers::Server;

    let app = App::start(backend).await;
    let _dispatch = app.start_dispatch().await;
    let mut env = app.env.clone();
    env.push(("PROPDESK__INTAKE__WATCH_POLL_MS", "60000".to_owned()));
    let watcher_replica = Server::start(&["intake"], &env, None).await;
    let mut watcher = TicketServiceClient::new(watcher_replica.channel().await);
    let agent = app.world.agent.clone();
    let request = pb::WatchTicketsRequest { property_id: app.world.property_id.clone(), ..Default::default() };
    let mut stream = watcher.watch_tickets(authed(&agent, request.clone())).await.expect("watch").into_inner();

    const TICKETS: usize = 500;
    let mut lanes = Vec::new();
    for lane in 0..4 {
        let mut client = app.tickets.clone();
        let template = app.new_ticket("plumbing", "kitchen tap drips");
        let agent = agent.clone();
        lanes.push(tokio::spawn(async move {
            for n in (lane..TICKETS).step_by(4) {
                let request = crate::helpers::pb_create(&template, n);
                client.create_ticket(authed(&agent, request)).await.expect("create");
            }
        }));
    }

    let mut seen: Vec<pb::TicketEvent> = Vec::new();
    while seen.len() < 300 {
        seen.push(next_event(&mut stream).await);
    }
    let cursor = seen.last().expect("events").cursor.clone();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resumed = pb::WatchTicketsRequest { after_cursor: cursor, ..request };
    let mut stream = watcher.watch_tickets(authed(&agent, resumed)).await.expect("resume").into_inner();
    while seen.len() < 2 * TICKETS {
        seen.push(next_event(&mut stream).await);
    }
    for lane in lanes {
        lane.await.expect("creator");
    }
    // Nothing more arrives: no repeats hiding behind the count.
    let extra = tokio::time::timeout(Duration::from_millis(700), stream.next()).await;
    assert!(extra.is_err(), "an event beyond the 1,000: {extra:?}");

    let ids: HashSet<&str> = seen.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), 2 * TICKETS, "no event twice");
    let parse = |c: &str| {
        let (tx, id) = c.split_once('.').expect("cursor");
        (tx.parse::<i64>().expect("tx"), id.parse::<i64>().expect("id"))
    };
    assert!(seen.windows(2).all(|w| parse(&w[0].cursor) < parse(&w[1].cursor)), "in cursor order");
    let created = seen.iter().filter(|e| e.r#type == pb::TicketEventType::Created as i32).count();
    let dispatched = seen.iter().filter(|e| e.r#type == pb::TicketEventType::Dispatched as i32).count();
    assert_eq!((created, dispatched), (TICKETS, TICKETS), "every ticket's two events");
}
