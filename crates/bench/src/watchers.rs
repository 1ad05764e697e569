//! Many screens watching: WatchTickets streams held open by the suite, each counting the
//! events it receives and how long after they occurred.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use propdesk_proto::v1 as pb;
use propdesk_proto::v1::ticket_service_client::TicketServiceClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::BenchError;
use crate::load::Percentiles;

/// What one stream saw of the events that occurred inside the window.
struct Seen {
    events: u64,
    /// Receipt − `occurred_at`, µs.
    delays: Histogram<u64>,
}

/// Open streams; [`Watchers::finish`] closes them and sums up.
pub struct Watchers {
    streams: Vec<JoinHandle<Result<Seen, String>>>,
    stop: watch::Sender<bool>,
    /// Only events that occurred in [from, to) count.
    window: watch::Sender<(DateTime<Utc>, DateTime<Utc>)>,
}

/// What all streams saw.
pub struct Watched {
    pub streams: usize,
    /// Streams that received exactly `expected` events of the window.
    pub complete: usize,
    pub fewest: u64,
    pub most: u64,
    pub delay_ms: Percentiles,
    pub failures: Vec<String>,
}

impl Watchers {
    /// Opens `count` streams over `connections` HTTP/2 connections to `url`, each as the
    /// bearer of `token`, and returns once every one has its response headers.
    pub async fn open(url: &str, token: &str, count: usize, connections: usize) -> Result<Watchers, BenchError> {
        let mut channels = Vec::with_capacity(connections.max(1));
        for _ in 0..connections.max(1) {
            channels.push(Endpoint::from_shared(url.to_owned())?.tcp_nodelay(true).connect().await?);
        }
        let bearer: MetadataValue<_> =
            format!("Bearer {token}").parse().map_err(|_| BenchError::Setup("the token is not ASCII".into()))?;
        let (stop, _) = watch::channel(false);
        let far = DateTime::<Utc>::MAX_UTC;
        let (window, _) = watch::channel((far, far));
        let mut streams = Vec::with_capacity(count);
        for n in 0..count {
            let channel: Channel = channels[n % channels.len()].clone();
            let mut request = Request::new(pb::WatchTicketsRequest::default());
            request.metadata_mut().insert("authorization", bearer.clone());
            let stream = TicketServiceClient::new(channel).watch_tickets(request).await?.into_inner();
            streams.push(tokio::spawn(follow(stream, stop.subscribe(), window.subscribe())));
        }
        Ok(Watchers { streams, stop, window })
    }

    /// From now on, count the events that occurred in [from, to).
    pub fn count_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) {
        self.window.send_replace((from, to));
    }

    /// Closes every stream and sums up against the `expected` events of the window.
    pub async fn finish(self, expected: u64) -> Result<Watched, BenchError> {
        self.stop.send_replace(true);
        let count = self.streams.len();
        let mut delays = Histogram::<u64>::new(3).map_err(|e| BenchError::Setup(e.to_string()))?;
        let (mut complete, mut fewest, mut most, mut failures) = (0, u64::MAX, 0, Vec::new());
        for stream in self.streams {
            match stream.await {
                Ok(Ok(seen)) => {
                    complete += usize::from(seen.events == expected);
                    fewest = fewest.min(seen.events);
                    most = most.max(seen.events);
                    let _ = delays.add(&seen.delays);
                }
                Ok(Err(failure)) => failures.push(failure),
                Err(join) => failures.push(join.to_string()),
            }
        }
        Ok(Watched {
            streams: count,
            complete,
            fewest: if fewest == u64::MAX { 0 } else { fewest },
            most,
            delay_ms: Percentiles::of(&delays),
            failures,
        })
    }
}

async fn follow(
    mut stream: tonic::Streaming<pb::TicketEvent>,
    mut stop: watch::Receiver<bool>,
    window: watch::Receiver<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<Seen, String> {
    let mut seen = Seen { events: 0, delays: Histogram::<u64>::new(3).map_err(|e| e.to_string())? };
    loop {
        let message = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return Ok(seen),
            message = stream.message() => message,
        };
        let event = match message {
            Ok(Some(event)) => event,
            Ok(None) => return Err("the server ended a stream".into()),
            Err(status) => return Err(format!("a stream failed: {status}")),
        };
        let received = Utc::now();
        // Heartbeats carry no event.
        let Some(at) = event.occurred_at.filter(|_| !event.event_id.is_empty()) else { continue };
        let Some(occurred) = DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap_or(0)) else {
            continue;
        };
        let (from, to) = *window.borrow();
        if occurred >= from && occurred < to {
            seen.events += 1;
            let delay = (received - occurred).num_microseconds().unwrap_or(i64::MAX).max(0) as u64;
            let _ = seen.delays.record(delay.min(Duration::from_secs(3600).as_micros() as u64));
        }
    }
}
