//! The head of the request sent upstream, written straight from the client's request head.
//!
//! The proxy's rewrite of a request's headers (`Proxy::prepare`: hop-by-hop headers removed,
//! `TE: trailers` for gRPC, `X-Forwarded-*`, `Forwarded`, `Host`) changes a few entries of the
//! client's map. For the own exchange the upstream head is bytes, so the same rewrite is written
//! as those bytes while the client's map is read, without a copy of it (the client's request stays
//! as it came, for a retry elsewhere) and without a change to it. A test checks that both give
//! the same header lines.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;

use crate::headers::{
    Hop, HopByHop, IpText, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO,
    write_forwarded_element,
};

/// What a request's upstream head is made of, besides the client's headers.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    pub(crate) method: &'a http::Method,
    /// The upstream's path prefix (empty, or `/…` without a trailing slash).
    pub(crate) prefix: &'a str,
    pub(crate) path_and_query: &'a PathAndQuery,
    /// The `Host` to send.
    pub(crate) host: &'a HeaderValue,
    pub(crate) hop: Hop<'a>,
    /// Whether to append a `Forwarded` element.
    pub(crate) forwarded: bool,
    /// Whether to send `TE: trailers` (a gRPC request that asked for them).
    pub(crate) trailers: bool,
}

/// Writes the upstream head of a request whose client sent `headers`, as
/// [`Target`] says, into `out`.
pub(crate) fn write_head(target: &Target<'_>, headers: &HeaderMap, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(target.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.prefix.as_bytes());
    out.extend_from_slice(target.path_and_query.as_str().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let hop = &target.hop;
    let dropped = HopByHop::of(headers);
    let kept = |name: &HeaderName| dropped.as_ref().is_none_or(|d| !d.contains(name));
    // Written after the loop: `Host`, and the lists this hop appends to.
    let later = |name: &HeaderName| {
        name == header::HOST
            || (hop.peer.is_some() && name == X_FORWARDED_FOR)
            || (target.forwarded && name == header::FORWARDED)
    };
    let (mut proto_sent, mut host_sent) = (false, false);
    for (name, value) in headers {
        if later(name) || !kept(name) {
            continue;
        }
        proto_sent |= name == X_FORWARDED_PROTO;
        host_sent |= name == X_FORWARDED_HOST;
        line(out, name, &[value.as_bytes()]);
    }
    line(out, &header::HOST, &[target.host.as_bytes()]);
    if target.trailers {
        line(out, &header::TE, &[b"trailers"]);
    }
    if let Some(peer) = hop.peer {
        let peer = IpText::new(peer);
        list(
            out,
            &X_FORWARDED_FOR,
            headers,
            kept(&X_FORWARDED_FOR),
            |out| {
                out.extend_from_slice(peer.as_bytes());
            },
        );
    }
    if !proto_sent {
        line(out, &X_FORWARDED_PROTO, &[hop.proto().as_bytes()]);
    }
    if let Some(host) = hop.host
        && !host_sent
    {
        line(out, &X_FORWARDED_HOST, &[host.as_bytes()]);
    }
    if target.forwarded {
        let name = &header::FORWARDED;
        list(out, name, headers, kept(name), |out| {
            write_forwarded_element(hop, out);
        });
    }
    out.extend_from_slice(b"\r\n");
}

/// One header line, its value written in `parts`.
fn line(out: &mut Vec<u8>, name: &HeaderName, parts: &[&[u8]]) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    parts.iter().for_each(|part| out.extend_from_slice(part));
    out.extend_from_slice(b"\r\n");
}

/// The comma-separated list `name`: the client's values (when `kept`), then what `item` writes,
/// on one line.
fn list(
    out: &mut Vec<u8>,
    name: &HeaderName,
    headers: &HeaderMap,
    kept: bool,
    item: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    if kept {
        for value in headers.get_all(name) {
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b", ");
        }
    }
    item(out);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    use http::Method;

    use super::*;
    use crate::headers::{add_x_forwarded, append_forwarded, remove_hop_by_hop};

    /// Each header's values, in order, by name.
    type Lines = BTreeMap<String, Vec<String>>;

    /// The lines of a written head after its request line.
    fn written(head: &[u8]) -> (String, Lines) {
        let text = std::str::from_utf8(head).unwrap();
        let (request_line, rest) = text.split_once("\r\n").unwrap();
        let mut lines = Lines::new();
        for line in rest.strip_suffix("\r\n\r\n").unwrap_or("").split("\r\n") {
            if let Some((name, value)) = line.split_once(": ") {
                lines
                    .entry(name.to_owned())
                    .or_default()
                    .push(value.to_owned());
            }
        }
        (request_line.to_owned(), lines)
    }

    /// The lines `Proxy::prepare`'s rewrite of the map leaves.
    fn rewritten(headers: &HeaderMap, target: &Target<'_>) -> Lines {
        let mut map = headers.clone();
        remove_hop_by_hop(&mut map);
        if target.trailers {
            map.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        add_x_forwarded(&mut map, &target.hop);
        if target.forwarded {
            append_forwarded(&mut map, &target.hop);
        }
        map.insert(header::HOST, target.host.clone());
        let mut lines = Lines::new();
        for (name, value) in &map {
            let value = value.to_str().unwrap().to_owned();
            lines
                .entry(name.as_str().to_owned())
                .or_default()
                .push(value);
        }
        lines
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            headers.append(name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_written_head_has_the_lines_of_the_rewritten_map() {
        let clients = [
            map(&[("host", "shop.example"), ("accept", "*/*")]),
            map(&[
                ("host", "shop.example:8080"),
                ("x-forwarded-for", "192.0.2.1"),
                ("x-forwarded-for", "192.0.2.2"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "front.example"),
                ("forwarded", "for=192.0.2.1"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
            ]),
            map(&[
                ("connection", "keep-alive, X-Secret, x-forwarded-for"),
                ("keep-alive", "timeout=5"),
                ("x-secret", "1"),
                ("x-forwarded-for", "198.51.100.7"),
                ("te", "trailers"),
                ("upgrade", "websocket"),
                ("proxy-authorization", "Basic x"),
                ("content-type", "application/grpc"),
            ]),
            map(&[
                ("connection", "x-forwarded-proto, forwarded"),
                ("x-forwarded-proto", "https"),
                ("forwarded", "for=a"),
            ]),
            map(&[]),
        ];
        let host = HeaderValue::from_static("upstream.internal:9000");
        let client_host = HeaderValue::from_static("shop.example");
        let peers: [Option<IpAddr>; 3] = [
            Some([10, 0, 0, 9].into()),
            Some("2001:db8::17".parse().unwrap()),
            None,
        ];
        let path = PathAndQuery::from_static("/cart?item=7");
        for (i, client) in clients.iter().enumerate() {
            for peer in peers {
                for (forwarded, trailers, tls) in [(false, false, false), (true, true, true)] {
                    let target = Target {
                        method: &Method::DELETE,
                        prefix: "/api",
                        path_and_query: &path,
                        host: &host,
                        hop: Hop {
                            peer,
                            host: (i != 4).then_some(&client_host),
                            tls,
                        },
                        forwarded,
                        trailers,
                    };
                    let mut out = b"stale".to_vec();
                    write_head(&target, client, &mut out);
                    let (request_line, lines) = written(&out);
                    assert_eq!(request_line, "DELETE /api/cart?item=7 HTTP/1.1");
                    assert_eq!(
                        lines,
                        rewritten(client, &target),
                        "client {i}, peer {peer:?}, forwarded {forwarded}"
                    );
                }
            }
        }
    }
}
