//! The bearer token check of the mutating endpoints.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

/// Whether `headers` carry `Authorization: Bearer <expected>`; always true without a token.
///
/// The scheme is matched without regard to case (`bearer`, `BEARER`), as RFC 9110 says of
/// authentication schemes; the token is compared in constant time.
pub(super) fn authorized(expected: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim());
    constant_time_eq(given.as_bytes(), expected.as_bytes())
}

/// Compares in a time that depends on the lengths only, never on where the bytes differ.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    given.ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
        assert!(authorized(None, &HeaderMap::new()));
        assert!(!authorized(Some("t"), &HeaderMap::new()));
        assert!(authorized(Some("t"), &with("Bearer t")));
        assert!(!authorized(Some("u"), &with("Bearer t")));
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for value in ["bearer t", "BEARER t", "BeArEr   t", "Bearer t "] {
            assert!(authorized(Some("t"), &with(value)), "{value}");
        }
        for value in ["Basic t", "Bearert", "t", "Bearer"] {
            assert!(!authorized(Some("t"), &with(value)), "{value}");
        }
    }
}
