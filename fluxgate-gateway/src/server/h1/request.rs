//! Request heads read by the server's own HTTP/1.1 path, and the test that decides which of them
//! it serves itself.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};

use crate::server::RequestBody;

/// How many header slots the parse keeps on the stack (hyper's default limit); a server that
/// allows more takes a vector.
const INLINE_HEADERS: usize = 100;

/// Room left in a request's header map for the headers the layers add (a gateway's
/// `X-Request-Id`), so that they do not grow it.
const REQUEST_ROOM: usize = 2;

/// The largest request body the own path serves, when it arrived whole with its head; a larger
/// one, one still on its way, or a chunked one is hyper's to stream.
pub(super) const MAX_BODY: u64 = 64 * 1024;

/// A request head the own path serves.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) request: Request<RequestBody>,
    /// Whether the client lets the connection carry another request after this one.
    pub(super) keep_alive: bool,
    /// The length of the body that follows the head in the buffer (at most [`MAX_BODY`]).
    pub(super) body: usize,
}

/// What the front of the read buffer holds.
#[derive(Debug)]
// Moved once per request; boxing it would allocate per request.
#[allow(clippy::large_enum_variant)]
pub(super) enum Parsed {
    /// A request the own path serves; its head is taken off the buffer.
    Request(Head),
    /// Not a whole head yet.
    Partial,
    /// A request for hyper: a chunked body, one over [`MAX_BODY`] or not all in the buffer, an
    /// upgrade, `Expect`, a
    /// target that is not a path, or a head that is malformed or over the limits (hyper answers
    /// `400` or `431` for those). The buffer is left as it was, to be replayed to hyper.
    Hyper,
}

/// Where a header's name and value lie in the head.
#[derive(Clone, Copy, Default)]
struct Span {
    name: (usize, usize),
    value: (usize, usize),
}

impl Span {
    fn of(base: usize, name: &[u8], value: &[u8]) -> Self {
        Self {
            name: at(base, name),
            value: at(base, value),
        }
    }
}

/// Where `part`, a slice of the buffer that starts at address `base`, lies in it (a slice from
/// elsewhere gives a span that [`part`] refuses).
fn at(base: usize, part: &[u8]) -> (usize, usize) {
    (part.as_ptr().addr().wrapping_sub(base), part.len())
}

/// The part `(offset, length)` of `head`, when it lies in it.
fn part(head: &Bytes, (offset, len): (usize, usize)) -> Option<Bytes> {
    let end = offset.checked_add(len)?;
    (end <= head.len()).then(|| head.slice(offset..end))
}

/// How many spans are kept on the stack; a head with more takes a vector.
const INLINE_SPANS: usize = 32;

/// Reads the request head at the front of `buf`: at most `max_head` bytes and `max_headers`
/// header lines, or it is hyper's.
pub(super) fn parse(buf: &mut BytesMut, max_head: usize, max_headers: usize) -> Parsed {
    let mut inline = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; INLINE_HEADERS];
    let mut spilled = Vec::new();
    let slots = if max_headers <= INLINE_HEADERS {
        &mut inline[..max_headers]
    } else {
        spilled.resize_with(max_headers, MaybeUninit::uninit);
        &mut spilled[..]
    };
    let mut parsed = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut parsed,
        buf,
        slots,
    ) {
        Ok(httparse::Status::Complete(len)) if len <= max_head => len,
        Ok(httparse::Status::Complete(_)) => return Parsed::Hyper,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => return Parsed::Hyper,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Hyper,
    };
    let (Some(method), Some(path), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Parsed::Hyper;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Hyper;
    };
    if method == Method::CONNECT || !path.starts_with('/') {
        return Parsed::Hyper;
    }
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let base = buf.as_ptr().addr();
    let target = at(base, path.as_bytes());
    let count = parsed.headers.len();
    let mut inline = [Span::default(); INLINE_SPANS];
    let mut spilled = Vec::new();
    let spans = if count <= INLINE_SPANS {
        &mut inline[..count]
    } else {
        spilled.resize(count, Span::default());
        &mut spilled[..]
    };
    for (span, header) in spans.iter_mut().zip(parsed.headers.iter()) {
        *span = Span::of(base, header.name.as_bytes(), header.value);
    }
    let head = buf.split_to(len).freeze();
    let built = build(&head, target, spans, method, version);
    // A body is served here only when it is all in the buffer already: waiting for it would
    // keep a service that answers before reading a body (a refusal) from answering.
    let arrived = |(_, connection): &(Request<RequestBody>, Connection)| {
        usize::try_from(connection.length.unwrap_or(0)).is_ok_and(|length| length <= buf.len())
    };
    let Some((request, connection)) = built.filter(arrived) else {
        // A request for hyper after all: it gets the head back, whole, in front of the rest.
        let mut whole = BytesMut::with_capacity(head.len() + buf.len());
        whole.extend_from_slice(&head);
        whole.extend_from_slice(buf);
        *buf = whole;
        return Parsed::Hyper;
    };
    let keep_alive = match version {
        Version::HTTP_10 => connection.keep_alive && !connection.close,
        _ => !connection.close,
    };
    let body = usize::try_from(connection.length.unwrap_or(0)).unwrap_or(usize::MAX);
    Parsed::Request(Head {
        request,
        keep_alive,
        body,
    })
}

/// The request, its target and values cut out of `head` without a copy; `None` for a request
/// for hyper.
fn build(
    head: &Bytes,
    target: (usize, usize),
    spans: &[Span],
    method: Method,
    version: Version,
) -> Option<(Request<RequestBody>, Connection)> {
    let uri = Uri::from_maybe_shared(part(head, target)?).ok()?;
    let mut headers = HeaderMap::with_capacity(spans.len() + REQUEST_ROOM);
    let mut connection = Connection::default();
    for span in spans {
        let name = HeaderName::from_bytes(&part(head, span.name)?).ok()?;
        let value = part(head, span.value)?;
        if !connection.allows(&name, &value) {
            return None;
        }
        let value = HeaderValue::from_maybe_shared(value).ok()?;
        headers.append(name, value);
    }
    let mut request = Request::new(RequestBody::empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Some((request, connection))
}

/// What a request's headers say about its connection, and whether the own path serves it.
#[derive(Debug, Default)]
struct Connection {
    close: bool,
    keep_alive: bool,
    /// The body's `Content-Length`.
    length: Option<u64>,
}

impl Connection {
    /// Notes `name: value`; false when the request is one for hyper.
    fn allows(&mut self, name: &HeaderName, value: &[u8]) -> bool {
        if name == header::CONTENT_LENGTH {
            // One plain decimal length, small enough to read whole; any other (a list, a
            // repeated header, a sign) is hyper's to judge.
            let Some(length) = super::decimal(value).filter(|_| self.length.is_none()) else {
                return false;
            };
            self.length = Some(length);
            return length <= MAX_BODY;
        }
        if name == header::TRANSFER_ENCODING || name == header::EXPECT || name == header::UPGRADE {
            return false;
        }
        if name == header::CONNECTION {
            for token in super::elements(value) {
                if token.eq_ignore_ascii_case(b"upgrade") {
                    return false;
                }
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], max_headers: usize) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(input);
        let parsed = parse(&mut buf, 64 * 1024, max_headers);
        (parsed, buf)
    }

    #[test]
    fn bodiless_requests_are_served_and_the_rest_left_in_the_buffer() {
        let input = b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\ncontent-length: 0\r\n\r\nGET /next";
        let (parsed, rest) = parse_all(input, 100);
        let Parsed::Request(head) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(&rest[..], b"GET /next");
        assert!(head.keep_alive);
        let request = head.request;
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/a?b=c");
        assert_eq!(request.version(), Version::HTTP_11);
        assert_eq!(request.headers()["host"], "x");
        let twos: Vec<_> = request.headers().get_all("x-two").iter().collect();
        assert_eq!(twos, ["1", "2"]);
    }

    #[test]
    fn small_bodies_are_served_only_when_they_came_whole() {
        let mut big = b"PUT /p HTTP/1.1\r\nContent-Length: 65536\r\n\r\n".to_vec();
        big.resize(big.len() + 65_536, b'x');
        let served: [(&[u8], usize); 3] = [
            (b"POST /p HTTP/1.1\r\ncontent-length: 3\r\n\r\nabcGET", 3),
            (&big, 65_536),
            (b"GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n", 0),
        ];
        for (input, length) in served {
            let (Parsed::Request(head), rest) = parse_all(input, 100) else {
                panic!("not served: {input:?}")
            };
            assert_eq!(head.body, length, "{input:?}");
            // The body stays in the buffer, for the connection to take.
            assert!(input.ends_with(&rest), "{input:?}");
        }
        // Still on its way: hyper's, with the buffer whole.
        let input = b"POST /p HTTP/1.1\r\ncontent-length: 4\r\n\r\nabc";
        let (parsed, rest) = parse_all(input, 100);
        assert!(matches!(parsed, Parsed::Hyper), "{parsed:?}");
        assert_eq!(&rest[..], input);
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection() {
        for (input, keep) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], true),
            (b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nx:\r\ny: \r\nconnection:\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n", true),
            (
                b"GET / HTTP/1.0\r\nconnection: keep-alive, close\r\n\r\n",
                false,
            ),
        ] {
            let (Parsed::Request(head), _) = parse_all(input, 100) else {
                panic!("not served: {input:?}")
            };
            assert_eq!(head.keep_alive, keep, "{input:?}");
        }
    }

    #[test]
    fn requests_for_hyper_leave_the_buffer_whole() {
        for input in [
            &b"POST / HTTP/1.1\r\ncontent-length: 65537\r\n\r\nabc"[..],
            b"POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\ncontent-length: +3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\ncontent-length: 3, 3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\ncontent-length: 0003000\r\n\r\nabc",
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\ncontent-length: 0\r\ncontent-length: 0, 0\r\n\r\n",
            b"GET / HTTP/1.1\r\nexpect: 100-continue\r\n\r\n",
            b"GET /chat HTTP/1.1\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
            b"GET / HTTP/1.1\r\nconnection: keep-alive, Upgrade\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nx: \x01\r\n\r\n",
        ] {
            let (parsed, rest) = parse_all(input, 100);
            assert!(matches!(parsed, Parsed::Hyper), "{input:?}: {parsed:?}");
            assert_eq!(&rest[..], input, "the buffer changed");
        }
        // Over the size limit, whole or not: hyper answers 431.
        let input = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n";
        let mut buf = BytesMut::from(&input[..]);
        assert!(matches!(
            parse(&mut buf, input.len() - 1, 100),
            Parsed::Hyper
        ));
        assert!(matches!(parse(&mut buf, 10, 100), Parsed::Hyper));
        assert_eq!(&buf[..], input);
        assert!(matches!(
            parse(&mut buf, input.len(), 100),
            Parsed::Request(_)
        ));
        // Too many headers: hyper answers 431.
        let input = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
        assert!(matches!(parse_all(input, 2).0, Parsed::Hyper));
        assert!(matches!(parse_all(input, 3).0, Parsed::Request(_)));
    }

    #[test]
    fn a_head_in_pieces_is_partial_until_whole() {
        let input = b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n";
        for end in 0..input.len() {
            let (parsed, rest) = parse_all(&input[..end], 100);
            assert!(matches!(parsed, Parsed::Partial), "{end}: {parsed:?}");
            assert_eq!(&rest[..], &input[..end]);
        }
        assert!(matches!(parse_all(input, 100).0, Parsed::Request(_)));
    }

    /// Mutated and random heads: no panic, and the buffer is either whole (hyper, partial) or
    /// the input less exactly the head taken.
    #[test]
    fn random_heads_never_panic_and_never_lose_bytes() {
        let seeds: [&[u8]; 4] = [
            b"GET /a HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\nrest",
            b"HEAD / HTTP/1.0\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
            b"POST /p HTTP/1.1\r\ncontent-length: 2\r\n\r\nab",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let mut input = seeds[round % seeds.len()].to_vec();
            if round % 5 == 4 {
                input = (0..next() % 64).map(|_| next() as u8).collect();
            } else {
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % (input.len() + 1);
                    match next() % 3 {
                        0 if at < input.len() => input[at] = next() as u8,
                        1 => input.insert(at, b"\r\n:, \x00"[(next() % 6) as usize]),
                        _ if at < input.len() => {
                            input.remove(at);
                        }
                        _ => {}
                    }
                }
            }
            let (parsed, rest) = parse_all(&input, 8);
            match parsed {
                Parsed::Request(_) => assert!(input.ends_with(&rest), "{input:?}"),
                Parsed::Partial | Parsed::Hyper => assert_eq!(&rest[..], &input[..]),
            }
        }
    }
}
