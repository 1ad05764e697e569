//! Logging setup: human-readable by default, JSON for production (`log.format = "json"`).
//! `RUST_LOG`, when set, overrides `log.filter`. Traces: exported over OTLP/HTTP when
//! `trace.otlp_endpoint` is set. Metrics: a Prometheus endpoint when `metrics.listen` is set.

use std::net::SocketAddr;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::settings::{LogSettings, MetricsSettings, TraceSettings};

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
        // Tickets per group-commit transaction.
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("propdesk_create_batch_size".into()),
            &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
        )
        .map_err(|e| format!("metrics buckets: {e}"))?
        .install()
        .map_err(|e| format!("metrics.listen {listen}: {e}"))
}

/// Exports spans while it lives; dropping it flushes what is left (outside the runtime: the
/// exporter's HTTP client blocks).
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("propdesk: flushing traces: {err}");
        }
    }
}

/// Logs to stderr and, with `trace.otlp_endpoint`, exports spans as `service`. Call before
/// the async runtime starts.
pub fn init(log: &LogSettings, trace: &TraceSettings, service: &'static str) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let output = if log.format == "json" {
        tracing_subscriber::fmt::layer().json().with_current_span(true).with_writer(std::io::stderr).boxed()
    } else {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed()
    };
    // The log filter is the log's own: spans are exported at info whatever the log shows.
    let output = output.with_filter(filter);
    let mut provider = None;
    let exported = if trace.otlp_endpoint.is_empty() {
        None
    } else {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(trace.otlp_endpoint.clone())
            .build()
            .map_err(|e| format!("trace.otlp_endpoint: {e}"))?;
        let resource = opentelemetry_sdk::Resource::builder().with_service_name(service).build();
        let built = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(built.tracer("propdesk"))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
        provider = Some(built);
        Some(layer)
    };
    tracing_subscriber::registry().with(output).with(exported).init();
    Ok(Telemetry { tracer: provider })
}
