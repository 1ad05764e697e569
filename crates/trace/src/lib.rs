//! The trace a piece of work belongs to, as a W3C `traceparent`
//! (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`). Intake takes it from the
//! caller's `traceparent` header, or starts one; it rides with each outbox message to the
//! bus (header `traceparent`) and into the worker that handles it, whose own messages carry
//! it on. Logs show the trace id, so one resident's request can be followed across
//! processes. With an OpenTelemetry layer installed (`trace.otlp_endpoint`), the spans that
//! [`enter`] starts are exported under the same ids.

use std::fmt;
use std::future::Future;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// One W3C trace context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub parent_id: u64,
    pub flags: u8,
}

/// The header (gRPC metadata and AMQP message header) that carries it.
pub const HEADER: &str = "traceparent";

tokio::task_local! {
    static CURRENT: TraceParent;
}

impl TraceParent {
    /// A new trace, sampled.
    pub fn start() -> TraceParent {
        let random = uuid::Uuid::new_v4().as_u128();
        TraceParent { trace_id: random.max(1), parent_id: span_id(), flags: 1 }
    }

    /// Reads a `traceparent` value; `None` when it is not a valid version-00 context.
    pub fn parse(header: &str) -> Option<TraceParent> {
        let mut parts = header.trim().split('-');
        let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || version != "00" || trace.len() != 32 || parent.len() != 16 || flags.len() != 2 {
            return None;
        }
        let hex = |text: &str| text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !(hex(trace) && hex(parent) && hex(flags)) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let parent_id = u64::from_str_radix(parent, 16).ok()?;
        // All-zero ids are invalid by the specification.
        if trace_id == 0 || parent_id == 0 {
            return None;
        }
        Some(TraceParent { trace_id, parent_id, flags: u8::from_str_radix(flags, 16).ok()? })
    }

    /// The same trace, with a new span of ours as the parent of what follows.
    pub fn child(self) -> TraceParent {
        TraceParent { parent_id: span_id(), ..self }
    }

    /// The trace id as 32 lowercase hex digits (what logs show).
    pub fn trace_id_hex(self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// Runs `work` with this as the current trace.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    /// The trace of the work running now, if any.
    pub fn current() -> Option<TraceParent> {
        CURRENT.try_with(|trace| *trace).ok()
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{:032x}-{:016x}-{:02x}", self.trace_id, self.parent_id, self.flags)
    }
}

/// Starts `span` as the next hop of a trace: under `parent` (the caller's or the message's
/// context), or as a new trace. Returns the trace the work inside it belongs to: with an
/// OpenTelemetry layer, the exported span's own ids (so what it sends names a real parent);
/// without one, a new span id of ours.
pub fn enter(span: &tracing::Span, parent: Option<TraceParent>) -> TraceParent {
    if let Some(parent) = parent {
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id.to_be_bytes()),
            SpanId::from_bytes(parent.parent_id.to_be_bytes()),
            TraceFlags::new(parent.flags),
            true,
            TraceState::default(),
        );
        // Fails only without an OpenTelemetry layer: nothing to parent then.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    let exported = span.context().span().span_context().clone();
    if exported.is_valid() {
        return TraceParent {
            trace_id: u128::from_be_bytes(exported.trace_id().to_bytes()),
            parent_id: u64::from_be_bytes(exported.span_id().to_bytes()),
            flags: exported.trace_flags().to_u8(),
        };
    }
    parent.map_or_else(TraceParent::start, TraceParent::child)
}

fn span_id() -> u64 {
    (uuid::Uuid::new_v4().as_u128() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_and_bad_ones_are_refused() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(header).expect("valid");
        assert_eq!(parsed.to_string(), header);
        assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = parsed.child();
        assert_eq!((child.trace_id, child.flags), (parsed.trace_id, parsed.flags));
        assert_ne!(child.parent_id, parsed.parent_id);
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        assert!(TraceParent::parse(&TraceParent::start().to_string()).is_some());
    }

    #[test]
    fn without_an_exporter_a_span_continues_the_parent_trace_with_an_id_of_its_own() {
        let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        let entered = enter(&tracing::info_span!("work"), Some(parent));
        assert_eq!((entered.trace_id, entered.flags), (parent.trace_id, parent.flags));
        assert_ne!(entered.parent_id, parent.parent_id);
        let fresh = enter(&tracing::info_span!("work"), None);
        assert_ne!(fresh.trace_id, parent.trace_id);
    }

    #[tokio::test]
    async fn the_current_trace_is_the_scope_s() {
        assert_eq!(TraceParent::current(), None);
        let trace = TraceParent::start();
        let inside = trace.scope(async { TraceParent::current() }).await;
        assert_eq!(inside, Some(trace));
    }
}
