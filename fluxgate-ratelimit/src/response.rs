//! The answers the HTTP variant gives: 429, gRPC `RESOURCE_EXHAUSTED`, 400, and the
//! RateLimit header fields of draft-ietf-httpapi-ratelimit-headers-10.

use std::sync::OnceLock;
use std::time::Duration;

use http::header::{CONTENT_TYPE, InvalidHeaderValue, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};

use crate::quota::ceil_secs;

/// `RateLimit-Policy`: the quota policy (`"name";q=…;w=…`).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`: the current state (`"name";r=…;t=…`).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The RateLimit fields of one response.
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    pub(crate) policy: HeaderValue,
    pub(crate) state: HeaderValue,
}

impl Fields {
    /// The fields of a limit (`states` its cache of `RateLimit` values) with `remaining`
    /// requests left and its window reset in `reset`.
    pub(crate) fn new(
        policy: &HeaderValue,
        states: &StateCache,
        remaining: u32,
        reset: Duration,
    ) -> Self {
        Self {
            policy: policy.clone(),
            state: states.get(remaining, ceil_secs(reset)),
        }
    }

    pub(crate) fn apply(self, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_POLICY, self.policy);
        headers.insert(RATELIMIT, self.state);
    }
}

/// `RateLimit` values kept for reuse: the most common ones (few requests left, a reset within
/// a couple of seconds) formatted once each, the others formatted per response.
const CACHED_REMAINING: u32 = 512;
const CACHED_RESETS: u64 = 2;

/// The `RateLimit` values of one limit, formatted once per distinct small value (`remaining`
/// under 512, a reset of 1 or 2 seconds: the table, 1024 values, is allocated on first use)
/// and per response otherwise: a cached value costs a reference count, not a format and an
/// allocation.
#[derive(Debug)]
pub(crate) struct StateCache {
    /// `"name";r=`: the limit's quoted name (a structured-field string) and the first key.
    prefix: Box<[u8]>,
    table: OnceLock<Box<[OnceLock<HeaderValue>]>>,
}

impl StateCache {
    pub(crate) fn new(sf_name: String) -> Self {
        let mut prefix = sf_name.into_bytes();
        prefix.extend_from_slice(b";r=");
        Self {
            prefix: prefix.into_boxed_slice(),
            table: OnceLock::new(),
        }
    }

    /// `"name";r=REMAINING;t=RESET`.
    pub(crate) fn get(&self, remaining: u32, reset_secs: u64) -> HeaderValue {
        if remaining >= CACHED_REMAINING || !(1..=CACHED_RESETS).contains(&reset_secs) {
            // Lives as long as the response: in the thread's shared block.
            return self.format(remaining, reset_secs, fluxgate_core::arena::header_value);
        }
        let table = self.table.get_or_init(|| {
            let len = (CACHED_REMAINING as usize) * (CACHED_RESETS as usize);
            (0..len).map(|_| OnceLock::new()).collect()
        });
        let at = (reset_secs as usize - 1) * CACHED_REMAINING as usize + remaining as usize;
        match table.get(at) {
            Some(slot) => slot
                // Kept for the limit's life: in a buffer of its own.
                .get_or_init(|| self.format(remaining, reset_secs, HeaderValue::from_bytes))
                .clone(),
            None => self.format(remaining, reset_secs, fluxgate_core::arena::header_value),
        }
    }

    /// Writes the value without `fmt` (this runs per admitted response when `remaining` is
    /// large): the prefix, then the two numbers' digits, made a value by `value`.
    fn format(
        &self,
        remaining: u32,
        reset_secs: u64,
        value: fn(&[u8]) -> Result<HeaderValue, InvalidHeaderValue>,
    ) -> HeaderValue {
        let mut buf = [0u8; 320];
        let value = write_state(&mut buf, &self.prefix, remaining, reset_secs)
            .and_then(|end| value(buf.get(..end)?).ok());
        value.unwrap_or_else(|| HeaderValue::from_static("\"limit\";r=0;t=1"))
    }
}

/// `PREFIX REMAINING;t=RESET` into `buf`; the length, or `None` when it does not fit.
fn write_state(buf: &mut [u8], prefix: &[u8], remaining: u32, reset_secs: u64) -> Option<usize> {
    let at = push_bytes(buf, 0, prefix)?;
    let at = push_decimal(buf, at, u64::from(remaining))?;
    let at = push_bytes(buf, at, b";t=")?;
    push_decimal(buf, at, reset_secs)
}

/// Copies `bytes` into `buf` at `at`; the end, or `None` when it does not fit.
fn push_bytes(buf: &mut [u8], at: usize, bytes: &[u8]) -> Option<usize> {
    let end = at.checked_add(bytes.len())?;
    buf.get_mut(at..end)?.copy_from_slice(bytes);
    Some(end)
}

/// Writes `n` in decimal into `buf` at `at`; the end, or `None` when it does not fit.
fn push_decimal(buf: &mut [u8], at: usize, mut n: u64) -> Option<usize> {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + u8::try_from(n % 10).unwrap_or_default();
        n /= 10;
        if n == 0 {
            break;
        }
    }
    push_bytes(buf, at, &digits[i..])
}

/// Whether a request is gRPC (`content-type: application/grpc` or `application/grpc+…`).
pub(crate) fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// gRPC's server pushback (milliseconds), which gRPC retry policies honour.
pub(crate) const GRPC_RETRY_PUSHBACK_MS: HeaderName =
    HeaderName::from_static("grpc-retry-pushback-ms");

/// `d` in whole milliseconds, rounded up.
pub(crate) fn ceil_millis(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// The refusal: 429 with `Retry-After`, or a trailers-only gRPC response with status 8 (and
/// `grpc-retry-pushback-ms`).
pub(crate) fn refused<B: Default>(
    grpc: bool,
    retry_after: Duration,
    fields: Fields,
) -> Response<B> {
    let mut response = Response::new(B::default());
    let headers = response.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from(ceil_secs(retry_after)));
    fields.apply(headers);
    if grpc {
        // gRPC's retry pushback: a client whose retry policy covers RESOURCE_EXHAUSTED waits this.
        headers.insert(
            GRPC_RETRY_PUSHBACK_MS,
            HeaderValue::from(ceil_millis(retry_after)),
        );
        grpc_status(&mut response, "8", "rate limited");
    } else {
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    }
    response
}

/// A rejected request (missing or oversized key): `status`, or gRPC `UNAUTHENTICATED` (16) for a
/// 401 and `INVALID_ARGUMENT` (3) otherwise.
pub(crate) fn rejected<B: Default>(
    grpc: bool,
    status: StatusCode,
    message: &'static str,
) -> Response<B> {
    let mut response = Response::new(B::default());
    if grpc {
        let code = if status == StatusCode::UNAUTHORIZED {
            "16"
        } else {
            "3"
        };
        grpc_status(&mut response, code, message);
    } else {
        *response.status_mut() = status;
    }
    response
}

/// Makes `response` a trailers-only gRPC response: HTTP 200 with the status in the headers.
fn grpc_status<B>(response: &mut Response<B>, code: &'static str, message: &'static str) {
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from_static(code));
    // The messages are ASCII without `%`, so they need no percent-encoding.
    headers.insert("grpc-message", HeaderValue::from_static(message));
}

#[cfg(test)]
mod tests {
    use super::StateCache;

    #[test]
    fn cached_and_formatted_values_read_the_same() {
        let states = StateCache::new("\"per-client\"".to_owned());
        let cases = [
            (0, 1),
            (7, 1),
            (511, 2),
            (512, 1),
            (3, 3),
            (100_000, 60),
            (u32::MAX, u64::MAX),
            (10, 0),
        ];
        for (remaining, reset) in cases {
            let first = states.get(remaining, reset);
            assert_eq!(
                first.to_str().unwrap(),
                format!("\"per-client\";r={remaining};t={reset}")
            );
            assert_eq!(states.get(remaining, reset), first, "the same value again");
        }
    }
}
