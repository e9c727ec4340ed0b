//! How a response or an error counts for the health of the upstream that produced it.
//!
//! Every layer that learns from traffic (outlier detection, adaptive weights, canary analysis)
//! needs the same answer to "did the upstream do its job?". This module gives it once:
//!
//! - [`classify_status`]: an HTTP status; 5xx is a failure, 429 and 503 are overload, everything
//!   else (4xx included: the upstream answered a bad request correctly) is a success;
//! - [`classify_grpc_status`]: the `grpc-status` of a trailers-only response or of the trailers,
//!   mapped as the table at [`GrpcCode::outcome`] says;
//! - [`classify_response`]: an [`http::Response`], gRPC or not;
//! - [`classify_error`]: an error instead of a response, a timeout or a transport error.
//!
//! # Example
//!
//! ```
//! use fluxgate_core::outcome::{classify_response, Cause, GrpcCode, Outcome};
//!
//! let http = http::Response::builder().status(502).body(()).unwrap();
//! assert_eq!(classify_response(&http).map(|c| c.outcome), Some(Outcome::Failure));
//!
//! let grpc = http::Response::builder()
//!     .header("content-type", "application/grpc+proto")
//!     .header("grpc-status", "8")
//!     .body(())
//!     .unwrap();
//! let class = classify_response(&grpc).unwrap();
//! assert_eq!(class.outcome, Outcome::Overload);
//! assert_eq!(class.cause, Cause::Grpc(GrpcCode::ResourceExhausted));
//! ```

mod body;
mod grpc;

use std::error::Error;
use std::io;

use http::{HeaderMap, Response, StatusCode, header};

pub use body::{ObservedBody, OutcomeObserver, observe_response};
pub use grpc::GrpcCode;

/// Whether the upstream did its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The upstream answered (a client error such as 404 is still a success for its health).
    Success,
    /// The upstream failed: a server error, a timeout, a broken connection.
    Failure,
    /// The upstream shed load: HTTP 429 or 503, gRPC `UNAVAILABLE` or `RESOURCE_EXHAUSTED`.
    Overload,
}

/// What an [`Outcome`] was decided from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// An HTTP response's status.
    Http(StatusCode),
    /// A gRPC status code.
    Grpc(GrpcCode),
    /// The request timed out (a [`tokio::time::error::Elapsed`] or an [`io::ErrorKind::TimedOut`]).
    Timeout,
    /// Any other error; the kind of the first [`io::Error`] in its source chain, if there is one.
    Transport(Option<io::ErrorKind>),
}

/// An [`Outcome`] and its [`Cause`].
///
/// ```
/// use fluxgate_core::outcome::{classify_status, Cause, Outcome};
///
/// let class = classify_status(http::StatusCode::NOT_FOUND);
/// assert_eq!(class.outcome, Outcome::Success);
/// assert_eq!(class.cause, Cause::Http(http::StatusCode::NOT_FOUND));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Classification {
    /// Whether the upstream did its job.
    pub outcome: Outcome,
    /// What that was decided from.
    pub cause: Cause,
}

impl From<Classification> for Outcome {
    fn from(class: Classification) -> Self {
        class.outcome
    }
}

/// Classifies an HTTP status: 429 and 503 are [`Outcome::Overload`], other 5xx are
/// [`Outcome::Failure`], everything else (1xx-4xx) is [`Outcome::Success`].
///
/// ```
/// use fluxgate_core::outcome::{classify_status, Outcome};
/// use http::StatusCode;
///
/// assert_eq!(classify_status(StatusCode::TOO_MANY_REQUESTS).outcome, Outcome::Overload);
/// assert_eq!(classify_status(StatusCode::SERVICE_UNAVAILABLE).outcome, Outcome::Overload);
/// assert_eq!(classify_status(StatusCode::GATEWAY_TIMEOUT).outcome, Outcome::Failure);
/// assert_eq!(classify_status(StatusCode::FORBIDDEN).outcome, Outcome::Success);
/// ```
#[must_use]
#[inline]
pub fn classify_status(status: StatusCode) -> Classification {
    let outcome = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Outcome::Overload,
        s if s.is_server_error() => Outcome::Failure,
        _ => Outcome::Success,
    };
    Classification {
        outcome,
        cause: Cause::Http(status),
    }
}

/// Classifies a gRPC status code as the table at [`GrpcCode::outcome`] says.
///
/// ```
/// use fluxgate_core::outcome::{classify_grpc, GrpcCode, Outcome};
/// assert_eq!(classify_grpc(GrpcCode::Unavailable).outcome, Outcome::Overload);
/// ```
#[must_use]
pub fn classify_grpc(code: GrpcCode) -> Classification {
    Classification {
        outcome: code.outcome(),
        cause: Cause::Grpc(code),
    }
}

/// Classifies the `grpc-status` of a header map: the headers of a trailers-only response, or the
/// trailers at the end of a gRPC body. `None` when there is no `grpc-status`.
///
/// ```
/// use fluxgate_core::outcome::{classify_grpc_status, Outcome};
///
/// let mut trailers = http::HeaderMap::new();
/// assert_eq!(classify_grpc_status(&trailers), None);
/// trailers.insert("grpc-status", http::HeaderValue::from_static("13"));
/// assert_eq!(classify_grpc_status(&trailers).unwrap().outcome, Outcome::Failure);
/// ```
#[must_use]
pub fn classify_grpc_status(headers: &HeaderMap) -> Option<Classification> {
    let value = headers.get("grpc-status")?;
    Some(classify_grpc(GrpcCode::from_header_value(value.as_bytes())))
}

/// Whether a response is gRPC: its `content-type` starts with `application/grpc`.
///
/// ```
/// let response = http::Response::builder()
///     .header("content-type", "application/grpc-web")
///     .body(())
///     .unwrap();
/// assert!(fluxgate_core::outcome::is_grpc(response.headers()));
/// ```
#[must_use]
#[inline]
pub fn is_grpc(headers: &HeaderMap) -> bool {
    // An empty map answers without hashing the name.
    !headers.is_empty()
        && headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"))
}

/// Classifies a response from its head.
///
/// - not gRPC: by its status ([`classify_status`]);
/// - gRPC with an HTTP status other than 200: by that status (the call failed before gRPC);
/// - gRPC with a `grpc-status` header (a trailers-only response): by that code;
/// - gRPC without one: `None`, the status comes in the trailers; classify them with
///   [`classify_grpc_status`] when the body ends. A body that ends without trailers is a
///   failure by the gRPC spec; that is the caller's to record.
///
/// ```
/// use fluxgate_core::outcome::classify_response;
///
/// let streaming = http::Response::builder()
///     .header("content-type", "application/grpc")
///     .body(())
///     .unwrap();
/// assert_eq!(classify_response(&streaming), None);
/// ```
#[must_use]
pub fn classify_response<B>(response: &Response<B>) -> Option<Classification> {
    let headers = response.headers();
    if !is_grpc(headers) || response.status() != StatusCode::OK {
        return Some(classify_status(response.status()));
    }
    classify_grpc_status(headers)
}

/// Classifies an error returned instead of a response.
///
/// It is a [`Cause::Timeout`] when a [`tokio::time::error::Elapsed`] or an [`io::Error`] of kind
/// [`io::ErrorKind::TimedOut`] is anywhere in its [`source`](Error::source) chain, the error
/// itself included; otherwise [`Cause::Transport`]. Both are [`Outcome::Failure`]. Errors of other
/// timeout types (such as tower's `Elapsed`) are transport errors unless they wrap one of these.
///
/// ```
/// use std::io;
/// use fluxgate_core::outcome::{classify_error, Cause, Outcome};
///
/// let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
/// let class = classify_error(&refused);
/// assert_eq!(class.outcome, Outcome::Failure);
/// assert_eq!(class.cause, Cause::Transport(Some(io::ErrorKind::ConnectionRefused)));
///
/// let timed_out = io::Error::new(io::ErrorKind::Other, io::Error::from(io::ErrorKind::TimedOut));
/// assert_eq!(classify_error(&timed_out).cause, Cause::Timeout);
/// ```
#[must_use]
pub fn classify_error(error: &(dyn Error + 'static)) -> Classification {
    let mut io_kind = None;
    let mut next = Some(error);
    while let Some(err) = next {
        if err.is::<tokio::time::error::Elapsed>() {
            return failure(Cause::Timeout);
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::TimedOut {
                return failure(Cause::Timeout);
            }
            io_kind = io_kind.or(Some(io.kind()));
            // An `io::Error`'s `source()` skips the error it wraps; look at that one too.
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
                continue;
            }
        }
        next = err.source();
    }
    failure(Cause::Transport(io_kind))
}

fn failure(cause: Cause) -> Classification {
    Classification {
        outcome: Outcome::Failure,
        cause,
    }
}

#[cfg(test)]
mod tests;
