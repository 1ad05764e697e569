//! WatchTickets: live events, and resuming from a cursor with no gap and no repeat.

use std::time::Duration;

use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use tokio_stream::StreamExt;

use crate::helpers::{App, authed};

crate::on_both_backends!(a_resumed_watch_misses_nothing_and_repeats_nothing);

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
