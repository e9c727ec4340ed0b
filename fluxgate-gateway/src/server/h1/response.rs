//! Responses written by the own HTTP/1.1 path: the head, then the body framed by its length,
//! chunked, or until the connection closes (RFC 9112 section 6).

use std::fmt::Write as _;
use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;

use bytes::{Buf, BufMut, BytesMut};
use http::header::{self, HeaderMap};
use http::{HeaderValue, Response, StatusCode, Version};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::date;
use crate::proxy::BoxError;
use crate::server::ResponseBody;

/// Data frames at least this large are written from the frame, not copied into the buffer.
const DIRECT: usize = 16 * 1024;

/// The buffer is written out once it holds this much, even while frames keep coming.
const FLUSH_AT: usize = 64 * 1024;

/// What the response answers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Exchange {
    /// The request's version.
    pub(super) version: Version,
    /// The request was a `HEAD`: the response has no body.
    pub(super) head_request: bool,
    /// The client and the server let the connection carry another request.
    pub(super) keep_alive: bool,
}

/// How the body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body: a response to `HEAD`, a `1xx`, `204` or `304`.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client, and no length known).
    UntilClose,
}

/// Writes `response` on `stream` through `out` (left empty); returns whether the connection
/// may carry another request: not after `Connection: close` (the client's or the service's), a
/// body delimited by the close, a body that failed or did not match its `Content-Length`, or a
/// write that failed.
pub(super) async fn write<B: ResponseBody>(
    stream: &mut TcpStream,
    out: &mut BytesMut,
    response: Response<B>,
    exchange: Exchange,
) -> bool {
    let (parts, body) = response.into_parts();
    let status = parts.status;
    let seen = Seen::scan(&parts.headers);
    let mut keep_alive = exchange.keep_alive && !seen.close;
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let declared = seen.length.ok().flatten();
    let (framing, added) = if bodiless {
        (Framing::None, None)
    } else if exchange.head_request {
        // The length the body would have had, as a `GET` would get it.
        let known = declared
            .is_none()
            .then(|| body.size_hint().exact())
            .flatten();
        (Framing::None, known.map(Added::Length))
    } else if let Some(length) = declared {
        (Framing::Length(length), None)
    } else if let Some(length) = body.size_hint().exact() {
        (Framing::Length(length), Some(Added::Length(length)))
    } else if exchange.version == Version::HTTP_11 {
        (Framing::Chunked, Some(Added::Chunked))
    } else {
        keep_alive = false;
        (Framing::UntilClose, None)
    };
    // The service's `Content-Length` goes out as it is, unless it is unusable (the body is then
    // framed by what it knows) or the status forbids one.
    let keep_length = match status {
        StatusCode::NOT_MODIFIED => true,
        _ if bodiless => false,
        _ => declared.is_some() || (exchange.head_request && seen.length.is_ok()),
    };
    put_status(out, status);
    for (name, value) in &parts.headers {
        if name == header::CONNECTION {
            put_connection_options(out, value);
            continue;
        }
        let skip =
            name == header::TRANSFER_ENCODING || (name == header::CONTENT_LENGTH && !keep_length);
        if !skip {
            put_header(out, name.as_str(), value);
        }
    }
    match added {
        Some(Added::Length(length)) => {
            // Writing to a `BytesMut` cannot fail.
            let _ = write!(out, "content-length: {length}\r\n");
        }
        Some(Added::Chunked) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        None => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if exchange.version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    if !seen.date {
        out.extend_from_slice(b"date: ");
        date::put(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if framing == Framing::None {
        return flush(stream, out).await && keep_alive;
    }
    match write_body(stream, out, body, framing).await {
        Ok(complete) => keep_alive && complete,
        Err(()) => false,
    }
}

/// A framing header the server adds.
#[derive(Debug, Clone, Copy)]
enum Added {
    Length(u64),
    Chunked,
}

/// Writes the body's frames as `framing` delimits them: `Ok(true)` when the body ended as its
/// framing says, `Ok(false)` when the connection must close after it (its length did not match
/// or it failed), `Err` when a write failed.
async fn write_body<B: ResponseBody>(
    stream: &mut TcpStream,
    out: &mut BytesMut,
    body: B,
    framing: Framing,
) -> Result<bool, ()> {
    let mut body = pin!(body);
    let mut left = match framing {
        Framing::Length(length) => length,
        _ => u64::MAX,
    };
    let mut trailers = None;
    loop {
        // A frame that is ready goes in the same write as what the buffer holds.
        let ready = poll_fn(|cx| Poll::Ready(poll_frame(body.as_mut(), cx))).await;
        let frame = match ready {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !flush(stream, out).await {
                    return Err(());
                }
                poll_fn(|cx| poll_frame(body.as_mut(), cx)).await
            }
        };
        let frame = match frame {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(error)) => {
                tracing::debug!(%error, "the response body failed: closing the connection");
                // What came before it goes out; the missing end tells the client.
                let _ = flush(stream, out).await;
                return Ok(false);
            }
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                trailers = frame.into_trailers().ok();
                continue;
            }
        };
        let len = data.remaining();
        if len == 0 {
            continue;
        }
        if framing == Framing::Length(0) || (len as u64) > left {
            tracing::debug!(
                "the response body is longer than its Content-Length: closing the connection"
            );
            let _ = flush(stream, out).await;
            return Ok(false);
        }
        left -= len as u64;
        if framing == Framing::Chunked {
            let _ = write!(out, "{len:x}\r\n");
        }
        if len >= DIRECT {
            if !flush(stream, out).await || stream.write_all_buf(&mut data).await.is_err() {
                return Err(());
            }
        } else {
            out.put(data);
        }
        if framing == Framing::Chunked {
            out.extend_from_slice(b"\r\n");
        }
        if out.len() >= FLUSH_AT && !flush(stream, out).await {
            return Err(());
        }
    }
    let complete = match framing {
        Framing::Length(_) => left == 0,
        Framing::Chunked => {
            out.extend_from_slice(b"0\r\n");
            for (name, value) in trailers.iter().flatten() {
                put_header(out, name.as_str(), value);
            }
            out.extend_from_slice(b"\r\n");
            true
        }
        Framing::UntilClose | Framing::None => true,
    };
    if !complete {
        tracing::debug!(
            "the response body is shorter than its Content-Length: closing the connection"
        );
    }
    if flush(stream, out).await {
        Ok(complete)
    } else {
        Err(())
    }
}

/// The body's next frame, its error boxed (so that no error type lives across a write).
fn poll_frame<B: ResponseBody>(
    body: std::pin::Pin<&mut B>,
    cx: &mut std::task::Context<'_>,
) -> Poll<Option<Result<http_body::Frame<B::Data>, BoxError>>> {
    body.poll_frame(cx)
        .map(|frame| frame.map(|frame| frame.map_err(Into::into)))
}

/// Writes and clears `out`; false when the write failed.
async fn flush(stream: &mut TcpStream, out: &mut BytesMut) -> bool {
    if out.is_empty() {
        return true;
    }
    let written = stream.write_all(out).await;
    out.clear();
    written.is_ok()
}

fn put_status(out: &mut BytesMut, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn put_header(out: &mut BytesMut, name: &str, value: &HeaderValue) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The options of a service's `Connection` line other than `close` and `keep-alive` (the
/// server writes those itself, as it decides): the headers the service named as hop-by-hop stay
/// named so, as hyper's server would send them. Nothing when only those two are there.
fn put_connection_options(out: &mut BytesMut, value: &HeaderValue) {
    let mut first = true;
    for token in super::elements(value.as_bytes()) {
        let ours =
            token.eq_ignore_ascii_case(b"close") || token.eq_ignore_ascii_case(b"keep-alive");
        if ours || token.is_empty() {
            continue;
        }
        out.extend_from_slice(if first { b"connection: " } else { b", " });
        out.extend_from_slice(token);
        first = false;
    }
    if !first {
        out.extend_from_slice(b"\r\n");
    }
}

/// What the service's headers say about the framing and the connection, read in one pass.
#[derive(Debug)]
struct Seen {
    /// The `Content-Length`: none, one number (every value the same), or unusable (`Err`).
    length: Result<Option<u64>, ()>,
    /// `Connection: close`.
    close: bool,
    /// A `Date` is there.
    date: bool,
}

impl Seen {
    fn scan(headers: &HeaderMap) -> Self {
        let mut seen = Self {
            length: Ok(None),
            close: false,
            date: false,
        };
        for (name, value) in headers {
            if name == header::CONTENT_LENGTH {
                seen.length = seen
                    .length
                    .and_then(|length| add_length(length, value.as_bytes()));
            } else if name == header::CONNECTION {
                seen.close |= super::elements(value.as_bytes())
                    .any(|token| token.eq_ignore_ascii_case(b"close"));
            } else if name == header::DATE {
                seen.date = true;
            }
        }
        seen
    }
}

/// `length` with the values of one `Content-Length` line: `Err` when one is not a number or
/// they differ.
fn add_length(mut length: Option<u64>, line: &[u8]) -> Result<Option<u64>, ()> {
    for part in super::elements(line) {
        let number = super::decimal(part).ok_or(())?;
        if length.is_some_and(|seen| seen != number) {
            return Err(());
        }
        length = Some(number);
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths_are_one_number_or_unusable() {
        let mut headers = HeaderMap::new();
        assert_eq!(Seen::scan(&headers).length, Ok(None));
        headers.append(header::CONTENT_LENGTH, HeaderValue::from_static("42"));
        assert_eq!(Seen::scan(&headers).length, Ok(Some(42)));
        headers.append(header::CONTENT_LENGTH, HeaderValue::from_static("42, 42"));
        assert_eq!(Seen::scan(&headers).length, Ok(Some(42)));
        for bad in ["41", "", "4 2", "-1", "+4", "18446744073709551616", "0x10"] {
            let mut with = headers.clone();
            with.append(header::CONTENT_LENGTH, HeaderValue::from_static(bad));
            assert_eq!(Seen::scan(&with).length, Err(()), "{bad:?}");
        }
        assert_eq!(
            add_length(None, b"18446744073709551615"),
            Ok(Some(u64::MAX))
        );
    }

    #[test]
    fn connection_close_and_date_are_seen() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Close"),
        );
        headers.insert(
            header::DATE,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        let seen = Seen::scan(&headers);
        assert!(seen.close && seen.date);
        let seen = Seen::scan(&HeaderMap::new());
        assert!(!seen.close && !seen.date);
    }
}
