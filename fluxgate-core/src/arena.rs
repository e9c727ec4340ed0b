//! Header values written per request without an allocation each.
//!
//! [`HeaderValue::from_bytes`] copies its bytes into a buffer of their own: an allocation and,
//! when the value is dropped, a free, for every value a layer writes per request (a request id,
//! a `RateLimit` field). [`header_value`] copies them instead into a block this thread shares
//! between many values (4 KiB, allocated when the last one is full) and hands out a
//! reference-counted slice of it: a copy and a reference count per value, one allocation per
//! block. A block is freed when the last value cut from it is dropped, so this suits values
//! that live as long as a request; a value kept for long (a cache) should have its own buffer.
//!
//! ```
//! use fluxgate_core::arena::header_value;
//!
//! let value = header_value(b"\"per-ip\";r=41;t=1").unwrap();
//! assert_eq!(value, "\"per-ip\";r=41;t=1");
//! assert!(header_value(b"line\nbreak").is_err());
//! ```

use std::cell::RefCell;

use bytes::BytesMut;
use http::HeaderValue;
use http::header::InvalidHeaderValue;

/// The size of a thread's block.
const BLOCK: usize = 4096;

thread_local! {
    /// This thread's block: what is left of it after the values already cut from it.
    static BLOCK_LEFT: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// `bytes` as a header value, in this thread's shared block (see [the module docs](self)); a
/// value longer than a quarter of a block gets a buffer of its own.
///
/// # Errors
///
/// The bytes are not a valid header value (a control character other than tab, or `DEL`).
///
/// ```
/// use fluxgate_core::arena::header_value;
///
/// let a = header_value(b"0123456789abcdef").unwrap();
/// let b = header_value(b"fedcba9876543210").unwrap();
/// assert_eq!((a.as_bytes(), b.as_bytes()), (&b"0123456789abcdef"[..], &b"fedcba9876543210"[..]));
/// ```
pub fn header_value(bytes: &[u8]) -> Result<HeaderValue, InvalidHeaderValue> {
    if bytes.len() > BLOCK / 4 {
        return HeaderValue::from_bytes(bytes);
    }
    BLOCK_LEFT.with_borrow_mut(|left| {
        if left.capacity() < bytes.len() {
            *left = BytesMut::with_capacity(BLOCK);
        }
        left.extend_from_slice(bytes);
        HeaderValue::from_maybe_shared(left.split().freeze())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fill_blocks_and_outlive_them() {
        let values: Vec<HeaderValue> = (0..1000)
            .map(|i| header_value(format!("value-{i}").as_bytes()).unwrap())
            .collect();
        for (i, value) in values.iter().enumerate() {
            assert_eq!(value, format!("value-{i}").as_str());
        }
        let long = "x".repeat(BLOCK);
        assert_eq!(header_value(long.as_bytes()).unwrap(), long.as_str());
        assert!(header_value(b"a\rb").is_err());
        // A refused value leaves nothing behind in the block.
        assert_eq!(header_value(b"after").unwrap(), "after");
    }
}
