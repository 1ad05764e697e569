//! Browsers: gRPC-Web (tonic-web, over HTTP/1.1 or HTTP/2 on the gRPC port) and the CORS
//! rules that say which web pages may call.

use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName};
use http::{HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers a page may send: the token, the gRPC-Web framing, the client's name and
/// a caller's trace.
const ALLOWED_HEADERS: [&str; 5] = ["x-grpc-web", "x-user-agent", "traceparent", "grpc-timeout", "connect-timeout-ms"];
/// Response headers a page may read: the status and its details (gRPC-Web sends them as
/// headers when there is no body).
const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];
/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);

/// An allowed origin: exact (`https://desk.example.com`) or with any port
/// (`http://localhost:*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    /// The origin up to the port (`http://localhost`) when any port goes; else the origin.
    stem: String,
    any_port: bool,
}

impl OriginPattern {
    /// `scheme://host[:port]` or `scheme://host:*`; anything else (a path, a bare host,
    /// a wildcard host) is refused with the reason.
    pub fn parse(raw: &str) -> Result<OriginPattern, String> {
        let (stem, any_port) = match raw.strip_suffix(":*") {
            Some(stem) => (stem, true),
            None => (raw, false),
        };
        let Some((scheme, host)) = stem.split_once("://") else {
            return Err(format!("`{raw}` is not an origin (scheme://host[:port])"));
        };
        if !matches!(scheme, "http" | "https") || host.is_empty() || host.contains(['/', '*', '?', '#']) {
            return Err(format!("`{raw}` is not an origin (scheme://host[:port], or scheme://host:* for any port)"));
        }
        Ok(OriginPattern { stem: stem.to_ascii_lowercase(), any_port })
    }

    pub fn matches(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        if !self.any_port {
            return origin == self.stem;
        }
        origin.strip_prefix(&self.stem).is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix(':')
                    .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        })
    }
}

/// The CORS layer for `allowed` origins (none: no page may call; clients that are not
/// browsers send no Origin and are not affected).
pub fn cors(allowed: Vec<OriginPattern>) -> CorsLayer {
    let headers = ALLOWED_HEADERS.iter().map(|h| HeaderName::from_static(h)).chain([AUTHORIZATION, CONTENT_TYPE]);
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin.to_str().is_ok_and(|origin| allowed.iter().any(|pattern| pattern.matches(origin)))
        }))
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(headers.collect::<Vec<_>>())
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(PREFLIGHT_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_or_on_any_port() {
        let any = OriginPattern::parse("http://localhost:*").unwrap();
        assert!(any.matches("http://localhost:5173"));
        assert!(any.matches("http://LOCALHOST:80"));
        assert!(any.matches("http://localhost"));
        assert!(!any.matches("http://localhost.evil.com:5173"));
        assert!(!any.matches("https://localhost:5173"));
        assert!(!any.matches("http://localhost:"));
        let exact = OriginPattern::parse("https://desk.example.com").unwrap();
        assert!(exact.matches("https://desk.example.com"));
        assert!(!exact.matches("https://desk.example.com:8443"));
        assert!(!exact.matches("https://desk.example.com.evil.org"));
        for bad in ["desk.example.com", "https://*.example.com", "ftp://x", "https://x/path", "https://"] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
