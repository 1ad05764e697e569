//! The load driver: open loop (a target rate, latency measured from each request's
//! scheduled start, so a stalled server cannot hide its queue) or closed loop (a fixed
//! number of callers, each sending its next request when the last one returns).
//! Latencies go into HDR histograms; requests scheduled during the warm-up are sent but
//! not counted.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// Requests per second, whether or not earlier ones have returned.
    Open { rate: f64 },
    /// Callers, each with one request in flight.
    Closed { concurrency: usize },
}

#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    pub pace: Pace,
    pub warmup: Duration,
    /// The measured window, after the warm-up.
    pub duration: Duration,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p95: ms(histogram.value_at_quantile(0.95)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }

    /// From latencies in microseconds (e.g. read back from recorded timestamps).
    pub fn of_micros(values: impl IntoIterator<Item = i64>) -> Percentiles {
        let mut histogram = new_histogram();
        for value in values {
            // A negative span can only be clock noise between two writers: count it as 0.
            let _ = histogram.record(value.max(0) as u64);
        }
        Percentiles::of(&histogram)
    }
}

/// What one run measured (the warm-up excluded).
#[derive(Debug, Clone, Serialize)]
pub struct LoadOutcome {
    pub pace: Pace,
    /// Successful calls in the measured window.
    pub ok: u64,
    pub failed: u64,
    /// Seconds from the end of the warm-up to the last measured completion.
    pub seconds: f64,
    /// Successful calls per second over the window.
    pub throughput: f64,
    pub latency_ms: Percentiles,
    /// The first error seen, to say why calls failed.
    pub first_error: Option<String>,
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 10 min at 3 significant figures; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

/// Shared by every caller of one run.
struct Tally {
    histogram: Mutex<Histogram<u64>>,
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    last_done: Mutex<Option<Instant>>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            histogram: Mutex::new(new_histogram()),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            last_done: Mutex::new(None),
        }
    }

    fn record(&self, started: Instant, outcome: Result<(), String>) {
        let done = Instant::now();
        match outcome {
            Ok(()) => {
                let micros = done.duration_since(started).as_micros().min(u128::from(u64::MAX)) as u64;
                if let Ok(mut histogram) = self.histogram.lock() {
                    histogram.saturating_record(micros.max(1));
                }
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert(error);
                }
            }
        }
        if let Ok(mut last) = self.last_done.lock() {
            *last = Some(last.map_or(done, |at| at.max(done)));
        }
    }

    fn outcome(&self, pace: Pace, measured_from: Instant) -> LoadOutcome {
        let ok = self.ok.load(Ordering::Relaxed);
        let last = self.last_done.lock().ok().and_then(|at| *at).unwrap_or(measured_from);
        let seconds = last.saturating_duration_since(measured_from).as_secs_f64().max(1e-9);
        let latency_ms = self.histogram.lock().map(|h| Percentiles::of(&h)).unwrap_or_default();
        LoadOutcome {
            pace,
            ok,
            failed: self.failed.load(Ordering::Relaxed),
            seconds,
            throughput: ok as f64 / seconds,
            latency_ms,
            first_error: self.first_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

/// Open-loop requests in flight at most; past this the server is hopelessly behind and
/// the run reports failures instead of eating memory.
const MAX_IN_FLIGHT: usize = 20_000;

/// Runs `call(n)` for n = 0, 1, 2, ... as `spec` says and measures it.
pub async fn drive<F, Fut>(spec: LoadSpec, call: F) -> LoadOutcome
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let call = Arc::new(call);
    let tally = Arc::new(Tally::new());
    let started = Instant::now();
    let measured_from = started + spec.warmup;
    let end = measured_from + spec.duration;
    match spec.pace {
        Pace::Open { rate } => {
            let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
            let mut tasks = tokio::task::JoinSet::new();
            for n in 0u64.. {
                let scheduled = started + interval.mul_f64(n as f64);
                if scheduled >= end {
                    break;
                }
                tokio::time::sleep_until(scheduled.into()).await;
                let measured = scheduled >= measured_from;
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    if measured {
                        tally.record(scheduled, Err("too many requests in flight: the server fell behind".into()));
                    }
                    continue;
                };
                let (call, tally) = (call.clone(), tally.clone());
                tasks.spawn(async move {
                    let outcome = call(n).await;
                    if measured {
                        tally.record(scheduled, outcome);
                    }
                    drop(permit);
                });
                // Reap finished tasks so the set does not grow with the run.
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        }
        Pace::Closed { concurrency } => {
            let next = Arc::new(AtomicU64::new(0));
            let mut callers = tokio::task::JoinSet::new();
            for _ in 0..concurrency.max(1) {
                let (call, tally, next) = (call.clone(), tally.clone(), next.clone());
                callers.spawn(async move {
                    loop {
                        let sent = Instant::now();
                        if sent >= end {
                            break;
                        }
                        let outcome = call(next.fetch_add(1, Ordering::Relaxed)).await;
                        if sent >= measured_from {
                            tally.record(sent, outcome);
                        }
                    }
                });
            }
            while callers.join_next().await.is_some() {}
        }
    }
    tally.outcome(spec.pace, measured_from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pace: Pace) -> LoadSpec {
        LoadSpec { pace, warmup: Duration::from_millis(200), duration: Duration::from_millis(600) }
    }

    #[tokio::test]
    async fn open_loop_holds_its_rate_and_leaves_the_warm_up_out() {
        let outcome = drive(spec(Pace::Open { rate: 500.0 }), |_| async { Ok(()) }).await;
        // 0.6 s at 500/s is 300 measured calls; the 100 warm-up calls are not counted.
        assert!((280..=301).contains(&outcome.ok), "{outcome:?}");
        assert_eq!(outcome.failed, 0);
    }

    #[tokio::test]
    async fn open_loop_latency_counts_the_queue_behind_a_slow_server() {
        // One call at a time, each 20 ms, offered 100/s: the backlog grows, and latency
        // from the scheduled start shows it.
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        let outcome = drive(spec(Pace::Open { rate: 100.0 }), move |_| {
            let gate = gate.clone();
            async move {
                let _one = gate.lock().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(())
            }
        })
        .await;
        assert!(outcome.latency_ms.p99 > 200.0, "{outcome:?}");
    }

    #[tokio::test]
    async fn closed_loop_throughput_is_concurrency_over_latency_and_failures_are_named() {
        let outcome = drive(spec(Pace::Closed { concurrency: 4 }), |n| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if n % 10 == 0 { Err(format!("call {n} refused")) } else { Ok(()) }
        })
        .await;
        // 4 callers × 100 calls/s, 9 in 10 succeeding: about 360/s.
        assert!((250.0..=400.0).contains(&outcome.throughput), "{outcome:?}");
        assert!(outcome.failed > 0);
        assert!(outcome.first_error.as_deref().is_some_and(|e| e.ends_with("refused")));
        assert!(outcome.latency_ms.p50 >= 10.0, "{outcome:?}");
    }

    #[test]
    fn percentiles_of_recorded_micros() {
        let p = Percentiles::of_micros((1..=1000).map(|ms| ms * 1000));
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
    }
}
