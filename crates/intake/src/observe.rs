//! What every gRPC call gets on its way through: a trace context (the caller's W3C
//! `traceparent`, or a new trace) that its logs show and its outbox messages carry to the
//! workers, and the request metrics `propdesk_grpc_requests_total{method, code}` and
//! `propdesk_grpc_request_duration_seconds{method}` (to the response headers: for a stream,
//! the time to open it).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use propdesk_trace::TraceParent;
use tonic::codegen::http;
use tower::{Layer, Service};
use tracing::Instrument;

/// Wraps every service of the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observed { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Observed<S> {
    inner: S,
}

/// The call's trace: a span of ours under the caller's, or a new trace.
fn trace_of<B>(request: &http::Request<B>) -> TraceParent {
    request
        .headers()
        .get(propdesk_trace::HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(TraceParent::parse)
        .map_or_else(TraceParent::start, TraceParent::child)
}

/// The status of a response: `grpc-status` in the headers (a trailers-only response, which
/// is how tonic answers an error), or OK (sent in the trailers).
fn status_of<B>(response: &http::Response<B>) -> tonic::Code {
    response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from)
}

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for Observed<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let trace = trace_of(&request);
        let span = tracing::info_span!("grpc", method = %method, trace_id = %trace.trace_id_hex());
        let started = Instant::now();
        let response = trace.scope(self.inner.call(request)).instrument(span);
        Box::pin(async move {
            let response = response.await;
            let code = response.as_ref().map_or(tonic::Code::Unknown, status_of);
            // A path we do not serve is not a method: one label for all of them, so a
            // caller cannot grow the series without bound.
            let method = if code == tonic::Code::Unimplemented { "unknown".to_owned() } else { method };
            let code = format!("{code:?}");
            metrics::counter!("propdesk_grpc_requests_total", "method" => method.clone(), "code" => code).increment(1);
            metrics::histogram!("propdesk_grpc_request_duration_seconds", "method" => method)
                .record(started.elapsed().as_secs_f64());
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_continues_the_caller_s_trace_or_starts_one() {
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut request = http::Request::new(());
        request.headers_mut().insert("traceparent", http::HeaderValue::from_static(caller));
        let continued = trace_of(&request);
        assert_eq!(continued.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(continued.parent_id, 0x00f0_67aa_0ba9_02b7, "a span of ours");
        let fresh = trace_of(&http::Request::new(()));
        assert_ne!(fresh.trace_id, continued.trace_id);
    }

    #[test]
    fn the_status_is_read_from_the_headers_or_is_ok() {
        let ok = http::Response::new(());
        assert_eq!(status_of(&ok), tonic::Code::Ok);
        let mut refused = http::Response::new(());
        refused.headers_mut().insert("grpc-status", http::HeaderValue::from_static("3"));
        assert_eq!(status_of(&refused), tonic::Code::InvalidArgument);
    }
}
