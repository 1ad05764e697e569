//! Request metrics of the gRPC server: `propdesk_grpc_requests_total{method, code}` and
//! `propdesk_grpc_request_duration_seconds{method}` (to the response headers: for a stream,
//! the time to open it).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::http;
use tower::{Layer, Service};

/// Wraps every service of the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
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

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for GrpcMetrics<S>
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
        let started = Instant::now();
        let response = self.inner.call(request);
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
    fn the_status_is_read_from_the_headers_or_is_ok() {
        let ok = http::Response::new(());
        assert_eq!(status_of(&ok), tonic::Code::Ok);
        let mut refused = http::Response::new(());
        refused.headers_mut().insert("grpc-status", http::HeaderValue::from_static("3"));
        assert_eq!(status_of(&refused), tonic::Code::InvalidArgument);
    }
}
