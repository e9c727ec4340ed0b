//! What a proxy needs of gRPC: telling gRPC requests, their `grpc-timeout`, and turning its
//! own HTTP refusals into trailers-only gRPC answers.
//!
//! # Example
//!
//! ```
//! use fluxgate_proxy::{grpc, text_response};
//! use http::StatusCode;
//!
//! let answer = grpc::refusal_as_grpc(text_response(StatusCode::BAD_GATEWAY, "down"));
//! assert_eq!(answer.status(), StatusCode::OK);
//! assert_eq!(answer.headers()["grpc-status"], "14");
//! assert!(grpc::is_grpc(answer.headers()));
//! ```

use std::time::Duration;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty};

use crate::ProxyBody;

/// Whether a request or response is gRPC (`content-type: application/grpc` or `application/grpc+…`).
#[must_use]
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The `grpc-timeout` of a request: 1 to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`);
/// `None` when absent or malformed.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("grpc-timeout", http::HeaderValue::from_static("250m"));
/// let deadline = fluxgate_proxy::grpc::timeout(&headers);
/// assert_eq!(deadline, Some(std::time::Duration::from_millis(250)));
/// ```
#[must_use]
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The gRPC code for an HTTP status the gateway (or an upstream without gRPC) answered:
/// the gRPC spec's mapping, except that `429` is `RESOURCE_EXHAUSTED` and `504` (no answer
/// within the deadline) is `DEADLINE_EXCEEDED`.
fn code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "13",       // INTERNAL
        401 => "16",       // UNAUTHENTICATED
        403 => "7",        // PERMISSION_DENIED
        404 => "12",       // UNIMPLEMENTED
        429 => "8",        // RESOURCE_EXHAUSTED
        502 | 503 => "14", // UNAVAILABLE
        504 => "4",        // DEADLINE_EXCEEDED
        _ => "2",          // UNKNOWN
    }
}

/// For a gRPC request: a non-2xx answer without `grpc-status` (the gateway's `502`, `503`,
/// `504`, ...) becomes a trailers-only gRPC answer (HTTP 200, `grpc-status` and `grpc-message`
/// in the headers, no body); gRPC answers pass unchanged.
#[must_use]
pub fn refusal_as_grpc(response: Response<ProxyBody>) -> Response<ProxyBody> {
    let status = response.status();
    if status.is_success() || response.headers().contains_key("grpc-status") {
        return response;
    }
    let (mut parts, _body) = response.into_parts();
    parts.status = StatusCode::OK;
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    parts
        .headers
        .insert("grpc-status", HeaderValue::from_static(code(status)));
    // "502 Bad Gateway": ASCII without `%`, so no percent-encoding is needed.
    let message = format!("gateway: HTTP {status}");
    if let Ok(message) = HeaderValue::from_str(&message) {
        parts.headers.insert("grpc-message", message);
    }
    let body = Empty::new().map_err(|never| match never {}).boxed_unsync();
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(timeout: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-timeout", HeaderValue::from_static(timeout));
        headers
    }

    #[test]
    fn parses_grpc_timeouts() {
        assert_eq!(timeout(&headers("1S")), Some(Duration::from_secs(1)));
        assert_eq!(timeout(&headers("250m")), Some(Duration::from_millis(250)));
        assert_eq!(timeout(&headers("2H")), Some(Duration::from_secs(7200)));
        assert_eq!(
            timeout(&headers("99999999n")),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "S", "123456789S", "1s", "-1S", "1.5S"] {
            assert_eq!(timeout(&headers(bad)), None, "{bad}");
        }
        assert_eq!(timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn refusals_become_trailers_only() {
        let refusal = crate::text_response(StatusCode::GATEWAY_TIMEOUT, "late");
        let grpc = refusal_as_grpc(refusal);
        assert_eq!(grpc.status(), StatusCode::OK);
        assert_eq!(grpc.headers()["grpc-status"], "4");
        assert_eq!(grpc.headers()[CONTENT_TYPE], "application/grpc");
        assert!(http_body::Body::is_end_stream(grpc.body()));
        let unavailable = Response::builder()
            .status(503)
            .body(ProxyBody::default())
            .unwrap();
        assert_eq!(refusal_as_grpc(unavailable).headers()["grpc-status"], "14");
        let ok = Response::new(ProxyBody::default());
        assert!(!refusal_as_grpc(ok).headers().contains_key("grpc-status"));
    }
}
