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

/// The caller's trace context, if it sent a valid one.
fn caller_trace<B>(request: &http::Request<B>) -> Option<TraceParent> {
    request.headers().get(propdesk_trace::HEADER).and_then(|value| value.to_str().ok()).and_then(TraceParent::parse)
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

/// A trailers-only error answered by the gRPC layer itself (no handler ran) gets the
/// ErrorInfo every propdesk error carries.
fn give_error_info(headers: &mut http::HeaderMap) {
    let Some(status) = tonic::Status::from_header_map(headers) else { return };
    if let Some(enriched) = crate::error::with_error_info(&status)
        && let Err(failed) = enriched.add_header(headers)
    {
        tracing::warn!(code = ?failed.code(), "could not add error details to a status");
    }
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
        let span = tracing::info_span!("grpc", method = %method, trace_id = tracing::field::Empty);
        let trace = propdesk_trace::enter(&span, caller_trace(&request));
        span.record("trace_id", trace.trace_id_hex());
        let started = Instant::now();
        let response = trace.scope(self.inner.call(request)).instrument(span);
        Box::pin(async move {
            let mut response = response.await;
            if let Ok(response) = &mut response {
                give_error_info(response.headers_mut());
            }
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
    fn the_caller_s_trace_is_read_from_its_header() {
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut request = http::Request::new(());
        request.headers_mut().insert("traceparent", http::HeaderValue::from_static(caller));
        assert_eq!(
            caller_trace(&request).map(TraceParent::trace_id_hex).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        request.headers_mut().insert("traceparent", http::HeaderValue::from_static("garbage"));
        assert_eq!(caller_trace(&request), None);
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
