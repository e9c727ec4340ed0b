//! The Redis key of one limit and one client key.
//!
//! `PREFIX:{IDENTITY|KEY}:PARAMS`, where `IDENTITY` is the limit's identity
//! (`namespace/policy/limit/key source/algorithm`), `KEY` is `b:` and the key's bytes, `ip:` and
//! the address, or `shared`, and `PARAMS` is the quota (`w<window us>:<limit>` or
//! `g<interval us>:<burst>`). The braces are a Redis Cluster hash tag: one client key's counters
//! of one limit live in one slot. Bytes outside printable ASCII, `%`, `{` and `}` are written as
//! `%XX`, so the tag always ends at our `}` and keys stay printable.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::super::KeyRef;

/// The part before the client key: `PREFIX:{IDENTITY|`.
pub(crate) fn limiter_prefix(prefix: &str, identity: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + identity.len() + 4);
    out.push_str(prefix);
    out.push_str(":{");
    escape(identity.as_bytes(), &mut out);
    out.push('|');
    out
}

/// The whole key of `key` under a limiter's prefix and quota suffix.
pub(crate) fn key_name(limiter_prefix: &str, key: KeyRef<'_>, params: &str) -> String {
    let mut out = String::with_capacity(limiter_prefix.len() + params.len() + 48);
    out.push_str(limiter_prefix);
    match key {
        KeyRef::Bytes(bytes) => {
            out.push_str("b:");
            escape(bytes, &mut out);
        }
        KeyRef::Ip(IpAddr::V4(ip)) => {
            let _ = write!(out, "ip:{ip}");
        }
        KeyRef::Ip(IpAddr::V6(ip)) => {
            let _ = write!(out, "ip:{ip}");
        }
        _ => out.push_str("shared"),
    }
    out.push_str("}:");
    out.push_str(params);
    out
}

fn escape(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if (0x21..0x7f).contains(&b) && !matches!(b, b'%' | b'{' | b'}') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tag_per_limit_and_key() {
        let prefix = limiter_prefix("fg", "shop/edge/limit-0/ip/sliding-window");
        let name = key_name(&prefix, KeyRef::Bytes(b"a}b{ c"), "w1000:5");
        assert_eq!(
            name,
            "fg:{shop/edge/limit-0/ip/sliding-window|b:a%7Db%7B%20c}:w1000:5"
        );
        let ip = key_name(&prefix, KeyRef::Ip("::1".parse().unwrap()), "g1:1");
        assert!(ip.ends_with("|ip:::1}:g1:1"));
        assert!(key_name(&prefix, KeyRef::Shared, "x").contains("|shared}"));
    }
}
