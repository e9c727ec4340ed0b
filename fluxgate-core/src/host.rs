//! Checking a `Host` header without building a URI from it.
//!
//! A proxy checks every request's `Host` before forwarding it. [`http::uri::Authority`] can do
//! that, but it copies the value into a new buffer to parse it (an allocation and a free per
//! request, for a check whose result is a yes or no). [`is_host`] checks the same bytes in
//! place, with the grammar of RFC 9110 §7.2 (`Host = uri-host [ ":" port ]`, the host and port
//! of RFC 3986 §3.2.2-3.2.3), and is at least as strict as `Authority`: the port must be digits,
//! an IP literal must be an IPv6 address or an `IPvFuture`, and a percent-encoded name is refused
//! (as `Authority` refuses it: DNS names, punycode included, never carry one).
//!
//! ```
//! use fluxgate_core::host::is_host;
//!
//! assert!(is_host(b"shop.example:8080"));
//! assert!(is_host(b"[::1]:443"));
//! assert!(!is_host(b"user@evil.example"));
//! assert!(!is_host(b"shop.example:http"));
//! ```

use std::net::Ipv6Addr;

/// Whether `value` is a valid `Host`: a host (a registered name or IPv4 address of unreserved
/// characters and sub-delimiters, or an IP literal in brackets), then optionally `:` and a port
/// of digits (possibly empty, as RFC 3986 allows). An empty host, userinfo (`@`), a percent
/// sign, a path, spaces and other bytes outside the grammar are refused.
///
/// ```
/// use fluxgate_core::host::is_host;
///
/// assert!(is_host(b"127.0.0.1"));
/// assert!(is_host(b"xn--bcher-kva.example:"));
/// assert!(!is_host(b""));
/// assert!(!is_host(b"a.example/x"));
/// assert!(!is_host(b"[::1"));
/// ```
#[must_use]
pub fn is_host(value: &[u8]) -> bool {
    if let Some(literal) = value.strip_prefix(b"[") {
        let Some(end) = literal.iter().position(|&b| b == b']') else {
            return false;
        };
        return is_ip_literal(&literal[..end]) && is_port(&literal[end + 1..]);
    }
    // A registered name or IPv4 address, in one pass: it has no `:`, so the first one starts
    // the port.
    match value.iter().position(|&b| !NAME[usize::from(b)]) {
        None => !value.is_empty(),
        Some(end) => end > 0 && is_port(&value[end..]),
    }
}

/// Nothing, or `:` and digits (RFC 3986's `port = *DIGIT`).
fn is_port(rest: &[u8]) -> bool {
    match rest {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// RFC 3986's `unreserved / sub-delims` (one table lookup per byte).
const NAME: [bool; 256] = {
    let mut table = [false; 256];
    let allowed = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=";
    let mut i = 0;
    while i < allowed.len() {
        table[allowed[i] as usize] = true;
        i += 1;
    }
    table
};

/// What lies between the brackets: `IPv6address / IPvFuture`.
fn is_ip_literal(literal: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = literal {
        // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, address) = (&rest[..dot], &rest[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !address.is_empty()
            && address.iter().all(|&b| b == b':' || NAME[usize::from(b)]);
    }
    std::str::from_utf8(literal).is_ok_and(|text| text.parse::<Ipv6Addr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_every_kind() {
        for good in [
            "a",
            "shop.example",
            "shop.example:8080",
            "shop.example:",
            "127.0.0.1:19203",
            "[::1]",
            "[::1]:80",
            "[2001:db8::7]:8443",
            "[v1.fe80::a+en1]",
            "under_score.example",
            "sub-delims!$&'()*+,;=.example",
        ] {
            assert!(is_host(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            ":80",
            "u:p@a.example",
            "user@a.example",
            "a.example/x",
            "a.example?q",
            "a example",
            "a.example:80:81",
            "a.example:http",
            "a.example:-1",
            "%",
            "caf%C3%A9.example",
            "caf%zz.example",
            "[::1",
            "[]",
            "[::1]x",
            "[::1]:80x",
            "[not-an-address]",
            "[v.x]",
            "[v1.]",
            "[vg.x]",
            "caf\u{e9}.example",
            "a\tb",
        ] {
            assert!(!is_host(bad.as_bytes()), "{bad:?}");
        }
    }

    /// Whatever `is_host` takes, `http`'s `Authority` takes too (`is_host` is the stricter).
    #[test]
    fn accepted_hosts_are_authorities() {
        for host in [
            "shop.example:8080",
            "[::1]:80",
            "[v1.fe80::a+en1]",
            "under_score.example",
            "sub-delims!$&'()*+,;=.example",
        ] {
            assert!(
                http::uri::Authority::try_from(host.as_bytes()).is_ok(),
                "{host}"
            );
        }
    }
}
