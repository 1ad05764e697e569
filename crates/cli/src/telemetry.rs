//! Logging setup: human-readable by default, JSON for production (`log.format = "json"`).
//! `RUST_LOG`, when set, overrides `log.filter`. Metrics: a Prometheus endpoint when
//! `metrics.listen` is set.

use std::net::SocketAddr;

use tracing_subscriber::EnvFilter;

use crate::settings::{LogSettings, MetricsSettings};

/// Bucket bounds of every histogram, in seconds: doubling from 1 ms.
const LATENCY_BUCKETS: [f64; 17] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384, 32.768,
    65.536,
];

/// Starts the Prometheus endpoint, if configured. Must run inside the runtime.
pub fn init_metrics(settings: &MetricsSettings) -> Result<(), String> {
    if settings.listen.is_empty() {
        return Ok(());
    }
    let listen: SocketAddr = settings.listen.parse().map_err(|e| format!("metrics.listen: {e}"))?;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(listen)
        // Histograms (not summaries), so replicas aggregate: 1 ms to about 65 s.
        .set_buckets(&LATENCY_BUCKETS)
        .map_err(|e| format!("metrics buckets: {e}"))?
        .install()
        .map_err(|e| format!("metrics.listen {listen}: {e}"))
}

pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if settings.format == "json" {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}
