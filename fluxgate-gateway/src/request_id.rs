//! Request ids: the `x-request-id` a client sent, or a new one.
//!
//! The gateway keeps a client's `x-request-id` when it is 1 to [`MAX_LEN`] visible ASCII
//! characters, and otherwise (absent, empty, too long, other bytes) replaces it with a new id:
//! 32 hex digits, a random prefix drawn once per process then a counter, so ids are unique within
//! a process and, with overwhelming probability, across replicas. The id goes upstream in the
//! request, back to the client in the response, and into the access log and the request's span.
//!
//! ```
//! use fluxgate_gateway::request_id::{RequestId, X_REQUEST_ID};
//! use http::HeaderMap;
//!
//! let mut headers = HeaderMap::new();
//! let generated = RequestId::from_headers(&mut headers);
//! assert_eq!(generated.as_str().len(), 32);
//! assert_eq!(headers[X_REQUEST_ID], generated.as_str());
//!
//! headers.insert(X_REQUEST_ID, "abc-123".parse().unwrap());
//! assert_eq!(RequestId::from_headers(&mut headers).as_str(), "abc-123");
//! ```

use std::cell::Cell;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue};

/// The header: `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client id kept, in bytes.
pub const MAX_LEN: usize = 128;

/// The random half of generated ids, drawn once per process, and its 16 hex digits.
static PREFIX: LazyLock<(u64, [u8; 16])> = LazyLock::new(|| {
    let prefix = RandomState::new().hash_one(std::process::id());
    let mut text = [0u8; 16];
    hex(&mut text, prefix);
    (prefix, text)
});

/// The counting half of generated ids: handed to threads in blocks of [`BLOCK`], which each
/// counts through on its own (one shared counter written by every serving thread per request
/// would move its cache line between the cores for every id).
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// How many ids a thread takes from [`COUNTER`] at a time.
const BLOCK: u64 = 1 << 12;

thread_local! {
    /// This thread's next id and the end of its block.
    static NEXT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A number no other call in this process gets.
fn next_number() -> u64 {
    NEXT.with(|next| {
        let (mut n, mut end) = next.get();
        if n == end {
            n = COUNTER.fetch_add(BLOCK, Ordering::Relaxed);
            end = n.wrapping_add(BLOCK);
        }
        next.set((n.wrapping_add(1), end));
        n
    })
}

/// One request's id (cheap to clone: a header value).
#[derive(Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// A new id (its text in a block this thread shares between ids: no allocation per id,
    /// see [`fluxgate_core::arena`]).
    #[must_use]
    pub fn generate() -> Self {
        let n = next_number();
        let mut text = [0u8; 32];
        text[..16].copy_from_slice(&PREFIX.1);
        hex(&mut text[16..], n);
        // Hex digits are always a valid header value.
        Self(
            fluxgate_core::arena::header_value(&text)
                .unwrap_or_else(|_| HeaderValue::from_static("0")),
        )
    }

    /// The id of a request with `headers`: the client's when valid, otherwise a new one, which
    /// then replaces the client's in `headers` (so the upstream gets the id that is logged).
    pub fn from_headers(headers: &mut HeaderMap) -> Self {
        let mut values = headers.get_all(X_REQUEST_ID).iter();
        if let (Some(value), None) = (values.next(), values.next())
            && is_valid(value)
        {
            return Self(value.clone());
        }
        let id = Self::generate();
        headers.insert(X_REQUEST_ID, id.0.clone());
        id
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only valid (visible ASCII) values are ever kept.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value.
    #[must_use]
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// Whether a client's id is kept: 1 to [`MAX_LEN`] visible ASCII characters.
/// Writes `value` as lowercase hex digits, most significant first, over the whole of `out` (16
/// bytes for a full `u64`).
fn hex(out: &mut [u8], value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut rest = value;
    for digit in out.iter_mut().rev() {
        *digit = DIGITS[(rest & 0xf) as usize];
        rest >>= 4;
    }
}

fn is_valid(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(u8::is_ascii_graphic)
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_the_prefix_then_the_counter_in_hex() {
        let id = RequestId::generate();
        let expected = format!("{:016x}", PREFIX.0);
        assert_eq!(id.as_str()[..16], expected);
        assert!(
            id.as_str()[16..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let mut out = [0u8; 16];
        hex(&mut out, 0x0123_4567_89ab_cdef);
        assert_eq!(&out, b"0123456789abcdef");
    }

    #[test]
    fn generated_ids_differ() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str()[..16], b.as_str()[..16]);
    }

    #[test]
    fn ids_made_on_several_threads_are_all_distinct() {
        // More than a block per thread, so that each takes a second one.
        let per_thread = usize::try_from(BLOCK).unwrap() + 100;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    (0..per_thread)
                        .map(|_| RequestId::generate().as_str().to_owned())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut ids = std::collections::HashSet::new();
        for thread in threads {
            ids.extend(thread.join().unwrap());
        }
        assert_eq!(ids.len(), 4 * per_thread);
    }

    #[test]
    fn invalid_or_repeated_client_ids_are_replaced() {
        for bad in ["", "has space", &"x".repeat(MAX_LEN + 1)] {
            let mut headers = HeaderMap::new();
            headers.insert(X_REQUEST_ID, bad.parse().unwrap());
            let id = RequestId::from_headers(&mut headers);
            assert_eq!(id.as_str().len(), 32, "{bad:?}");
            assert_eq!(headers.get_all(X_REQUEST_ID).iter().count(), 1);
        }
        let mut headers = HeaderMap::new();
        headers.append(X_REQUEST_ID, "a".parse().unwrap());
        headers.append(X_REQUEST_ID, "b".parse().unwrap());
        let id = RequestId::from_headers(&mut headers);
        assert_eq!(headers.get_all(X_REQUEST_ID).iter().count(), 1);
        assert_eq!(headers[X_REQUEST_ID], id.as_str());
    }
}
