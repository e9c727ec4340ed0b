//! Request heads written and response heads read by the proxy's own HTTP/1.1 exchange.

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};

use super::Http1Error;

/// The largest response head (status line and header lines) taken from an upstream.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// The most header lines a response head may have (hyper's client default).
pub(crate) const MAX_HEADERS: usize = 100;

/// Room left in a response's header map for the headers the layers on the way back add (a
/// gateway's `RateLimit-Policy`, `RateLimit` and `X-Request-Id`), so that they do not grow it.
const RESPONSE_ROOM: usize = 4;

/// How a response's body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: a response to `HEAD`, a `204` or a `304`.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// A final response head read from an upstream.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) response: Response<()>,
    pub(crate) framing: Framing,
    /// Whether the connection may carry another request once this response's body has ended.
    pub(crate) keep_alive: bool,
}

/// Where a header's name and value lie in the head (offsets and lengths; a head is at most
/// [`MAX_HEAD`] bytes).
#[derive(Clone, Copy, Default)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

impl Span {
    fn of(base: usize, name: &[u8], value: &[u8]) -> Self {
        let at = |part: &[u8]| {
            let offset = part.as_ptr().addr() - base;
            (offset as u32, part.len() as u32)
        };
        Self {
            name: at(name),
            value: at(value),
        }
    }
}

/// How many header spans are kept on the stack; a head with more takes a vector.
const INLINE_SPANS: usize = 24;

/// The part `(offset, length)` of the head.
fn range((offset, len): (u32, u32)) -> std::ops::Range<usize> {
    offset as usize..offset as usize + len as usize
}

/// Reads one final response head from the front of `buf`, skipping interim (`1xx`) heads, and
/// leaves what follows it (the start of the body) in `buf`. `Ok(None)`: the head is not complete
/// yet. `head_request`: the request was a `HEAD`, so the response has no body.
pub(crate) fn parse_response(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<Head>, Http1Error> {
    loop {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let status = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut parsed,
            buf,
            &mut slots,
        );
        let len = match status {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Err(Http1Error::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(error) => return Err(Http1Error::Malformed(error)),
        };
        if len > MAX_HEAD {
            return Err(Http1Error::HeadTooLarge);
        }
        let code = parsed.code.unwrap_or(0);
        let status = StatusCode::from_u16(code).map_err(|_| Http1Error::Invalid("status code"))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Http1Error::Invalid(
                "101 Switching Protocols to a request without Upgrade",
            ));
        }
        if status.is_informational() {
            // 100 Continue, 103 Early Hints: the final head follows.
            buf.advance(len);
            continue;
        }
        let version = match parsed.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        // The spans outlive the parse (which borrows the buffer) to cut the values out of the
        // frozen head without copying them.
        let base = buf.as_ptr().addr();
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
        let mut headers = HeaderMap::with_capacity(count + RESPONSE_ROOM);
        let mut framing = Framer::default();
        for span in &*spans {
            let name = HeaderName::from_bytes(&head[range(span.name)])
                .map_err(|_| Http1Error::Invalid("header name"))?;
            let value = HeaderValue::from_maybe_shared(head.slice(range(span.value)))
                .map_err(|_| Http1Error::Invalid("header value"))?;
            framing.see(&name, &value)?;
            headers.append(name, value);
        }
        let (framing, keep_alive) = framing.decide(version, status, head_request)?;
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        return Ok(Some(Head {
            response,
            framing,
            keep_alive,
        }));
    }
}

/// What a response's headers say about its framing and its connection.
#[derive(Debug, Default)]
struct Framer {
    content_length: Option<u64>,
    transfer_encoding: bool,
    chunked_last: bool,
    close: bool,
    keep_alive: bool,
}

impl Framer {
    fn see(&mut self, name: &HeaderName, value: &HeaderValue) -> Result<(), Http1Error> {
        if name == http::header::CONTENT_LENGTH {
            for part in value.as_bytes().split(|&b| b == b',') {
                let length = parse_length(part.trim_ascii())?;
                if self.content_length.is_some_and(|seen| seen != length) {
                    return Err(Http1Error::Invalid("conflicting Content-Length values"));
                }
                self.content_length = Some(length);
            }
        } else if name == http::header::TRANSFER_ENCODING {
            self.transfer_encoding = true;
            // Only the last coding of the last line decides: `chunked` must be the final one.
            if let Some(last) = value.as_bytes().split(|&b| b == b',').next_back() {
                self.chunked_last = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            }
        } else if name == http::header::CONNECTION {
            for token in value.as_bytes().split(|&b| b == b',') {
                let token = token.trim_ascii();
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        Ok(())
    }

    fn decide(
        self,
        version: Version,
        status: StatusCode,
        head_request: bool,
    ) -> Result<(Framing, bool), Http1Error> {
        let mut keep_alive = if version == Version::HTTP_10 {
            self.keep_alive && !self.close
        } else {
            !self.close
        };
        let framing = if head_request
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            Framing::Empty
        } else if self.transfer_encoding {
            if version == Version::HTTP_10 {
                return Err(Http1Error::Invalid(
                    "Transfer-Encoding in an HTTP/1.0 response",
                ));
            }
            // Both headers: Transfer-Encoding wins and the connection is not reused (RFC 9112
            // section 6.3, item 3).
            keep_alive &= self.content_length.is_none();
            if self.chunked_last {
                Framing::Chunked
            } else {
                Framing::UntilClose
            }
        } else if let Some(length) = self.content_length {
            Framing::Length(length)
        } else {
            Framing::UntilClose
        };
        Ok((framing, keep_alive && framing != Framing::UntilClose))
    }
}

/// A `Content-Length` value: decimal digits only, no sign, within `u64`.
pub(crate) fn parse_length(digits: &[u8]) -> Result<u64, Http1Error> {
    const INVALID: Http1Error = Http1Error::Invalid("Content-Length is not a decimal length");
    if digits.is_empty() {
        return Err(INVALID);
    }
    digits.iter().try_fold(0u64, |sum, &b| {
        if !b.is_ascii_digit() {
            return Err(INVALID);
        }
        sum.checked_mul(10)
            .and_then(|sum| sum.checked_add(u64::from(b - b'0')))
            .ok_or(INVALID)
    })
}

/// Whether the proxy's own exchange can carry a request without a body that has this `method`
/// and these `headers`: not a `CONNECT`, and no `Content-Length` that promises a body (requests
/// with a body go through hyper's client).
pub(crate) fn carries(method: &Method, headers: &HeaderMap) -> bool {
    method != Method::CONNECT
        && headers
            .get(http::header::CONTENT_LENGTH)
            .is_none_or(|length| length.as_bytes() == b"0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, head_request: bool) -> Result<Option<Head>, Http1Error> {
        parse_response(&mut BytesMut::from(text), head_request)
    }

    fn framing(text: &str) -> (Framing, bool) {
        let head = parse(text, false).unwrap().unwrap();
        (head.framing, head.keep_alive)
    }

    #[test]
    fn a_response_head_gives_status_headers_and_leaves_the_body_in_the_buffer() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello",
        );
        let head = parse_response(&mut buf, false).unwrap().unwrap();
        assert_eq!(head.response.status(), StatusCode::CREATED);
        assert_eq!(head.response.version(), Version::HTTP_11);
        let values: Vec<_> = head.response.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!((head.framing, head.keep_alive), (Framing::Length(5), true));
        assert_eq!(&buf[..], b"hello");
    }

    #[test]
    fn a_head_with_more_headers_than_kept_on_the_stack_keeps_them_all() {
        let lines: String = (0..MAX_HEADERS - 1)
            .map(|i| format!("x-{i}: v{i}\r\n"))
            .collect();
        let head = parse(
            &format!("HTTP/1.1 200 OK\r\n{lines}Content-Length: 0\r\n\r\n"),
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.response.headers().len(), MAX_HEADERS);
        assert_eq!(head.response.headers()["x-98"], "v98");
        assert_eq!(head.framing, Framing::Length(0));
    }

    #[test]
    fn an_incomplete_head_asks_for_more_and_an_endless_one_is_refused() {
        assert!(
            parse("HTTP/1.1 200 OK\r\nContent-Le", false)
                .unwrap()
                .is_none()
        );
        let endless = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(matches!(
            parse(&endless, false),
            Err(Http1Error::HeadTooLarge)
        ));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        let many = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert!(matches!(
            parse(&many, false),
            Err(Http1Error::Malformed(httparse::Error::TooManyHeaders))
        ));
    }

    #[test]
    fn interim_heads_are_skipped() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        );
        let head = parse_response(&mut buf, false).unwrap().unwrap();
        assert_eq!(head.response.status(), StatusCode::OK);
        assert!(head.response.headers().get("link").is_none());
        assert!(buf.is_empty());
    }

    #[test]
    fn the_framing_follows_rfc_9112() {
        let ok = "HTTP/1.1 200 OK\r\n";
        assert_eq!(
            framing(&format!("{ok}Content-Length: 12\r\n\r\n")),
            (Framing::Length(12), true)
        );
        assert_eq!(
            framing(&format!("{ok}Content-Length: 3, 3\r\n\r\n")),
            (Framing::Length(3), true)
        );
        assert_eq!(
            framing(&format!("{ok}Transfer-Encoding: chunked\r\n\r\n")),
            (Framing::Chunked, true)
        );
        assert_eq!(
            framing(&format!("{ok}Transfer-Encoding: gzip, Chunked\r\n\r\n")),
            (Framing::Chunked, true)
        );
        // Transfer-Encoding wins over Content-Length, and the connection is not reused.
        assert_eq!(
            framing(&format!(
                "{ok}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            )),
            (Framing::Chunked, false)
        );
        assert_eq!(
            framing(&format!("{ok}Transfer-Encoding: gzip\r\n\r\n")),
            (Framing::UntilClose, false)
        );
        assert_eq!(framing(&format!("{ok}\r\n")), (Framing::UntilClose, false));
        assert_eq!(
            framing(&format!(
                "{ok}Content-Length: 3\r\nConnection: close\r\n\r\n"
            )),
            (Framing::Length(3), false)
        );
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"),
            (Framing::Empty, true)
        );
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\n\r\n"),
            (Framing::Empty, true)
        );
        let head = parse(&format!("{ok}Content-Length: 9\r\n\r\n"), true)
            .unwrap()
            .unwrap();
        assert_eq!((head.framing, head.keep_alive), (Framing::Empty, true));
        // HTTP/1.0 keeps the connection only when asked to.
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"),
            (Framing::Length(1), false)
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n"),
            (Framing::Length(1), true)
        );
    }

    #[test]
    fn bad_framing_is_an_error_not_a_guess() {
        let ok = "HTTP/1.1 200 OK\r\n";
        for bad in [
            format!("{ok}Content-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            format!("{ok}Content-Length: 3, 4\r\n\r\n"),
            format!("{ok}Content-Length: +3\r\n\r\n"),
            format!("{ok}Content-Length: \r\n\r\n"),
            format!("{ok}Content-Length: 99999999999999999999999\r\n\r\n"),
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned(),
            "HTTP/1.1 101 Switching Protocols\r\n\r\n".to_owned(),
        ] {
            assert!(
                matches!(parse(&bad, false), Err(Http1Error::Invalid(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse("HTTP/1.1 2x0 OK\r\n\r\n", false),
            Err(Http1Error::Malformed(_))
        ));
        assert!(matches!(
            parse("SMTP ready\r\n\r\n", false),
            Err(Http1Error::Malformed(_))
        ));
    }

    #[test]
    fn only_requests_without_a_promised_length_are_carried() {
        let headers = |length: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            if let Some(length) = length {
                headers.insert("content-length", HeaderValue::from_static(length));
            }
            headers
        };
        assert!(carries(&Method::GET, &headers(None)));
        assert!(carries(&Method::POST, &headers(Some("0"))));
        assert!(!carries(&Method::POST, &headers(Some("4"))));
        assert!(!carries(&Method::CONNECT, &headers(None)));
    }
}
