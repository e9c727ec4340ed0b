//! The `Date` header the server adds to responses that have none, formatted once a second per
//! thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// The IMF-fixdate of the current second, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
struct Cached {
    second: u64,
    text: String,
}

thread_local! {
    static CACHED: RefCell<Cached> = const {
        RefCell::new(Cached { second: u64::MAX, text: String::new() })
    };
}

/// Appends the current `Date` value to `out`.
pub(super) fn put(out: &mut bytes::BytesMut) {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    CACHED.with_borrow_mut(|cached| {
        if cached.second != second {
            cached.second = second;
            cached.text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(cached.text.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_date_is_an_imf_fixdate_of_now() {
        let mut out = bytes::BytesMut::new();
        super::put(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(text.len(), 29, "{text}");
        assert!(text.ends_with(" GMT"), "{text}");
        let parsed = httpdate::parse_http_date(text).unwrap();
        let skew = std::time::SystemTime::now().duration_since(parsed).unwrap();
        assert!(skew < std::time::Duration::from_secs(5), "{text}");
    }
}
