//! The server's own HTTP/1.1 path: a connection's requests without a body, or with a small one,
//! are read, served and answered by the connection's task itself, without hyper's dispatcher.
//!
//! The path reads request heads with `httparse` (within the server's head size, header count
//! and header-read timeout), builds each request with its values cut out of the read buffer
//! without a copy, calls the service and writes the response: the head in one buffer with the
//! first frames of the body that are ready, then the body framed by its `Content-Length`,
//! chunked (with its trailers), or, to an HTTP/1.0 client when no length is known, until the
//! connection closes. Requests come one after another on a keep-alive connection, pipelined
//! ones included.
//!
//! A request with a `Content-Length` body of at most 64 KiB ([`request::MAX_BODY`]) that came
//! whole with its head (the common small `POST`) is served too, its body a
//! [`RequestBody::full`]. The path never waits for a body: a service may answer before reading
//! one (a refusal), so a body still on its way is hyper's to stream.
//!
//! Everything else is hyper's: the first request whose body is chunked, larger, or not all
//! there, or whose `Content-Length` is not one plain number, `Expect`, `Upgrade`, `CONNECT`, a
//! target that is not a path, an HTTP/2 prior-knowledge preface, or a head that is malformed or
//! over the limits (hyper answers those with its `400` or `431`). The connection is then
//! handed to hyper's connection builder, with the bytes already read replayed in front of the
//! socket, for the rest of its life.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use fluxgate_core::key::PeerAddr;
use http::Method;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

use super::drain::Watcher;
use super::head_timer::{HeadTimer, Woken};
use super::{HttpService, RequestBody, ResponseBody, WithPeer};
use crate::proxy::BoxError;

mod date;
mod request;
mod response;
mod rewind;

use request::{Head, Parsed};
use response::Exchange;

/// The elements of a comma-separated header value (`Connection`, `Content-Length`), trimmed.
fn elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// `digits` as a decimal number: one or more ASCII digits (no sign, no space), and no overflow.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |number, &digit| {
        if !digit.is_ascii_digit() {
            return None;
        }
        number.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// The HTTP/2 prior-knowledge preface (RFC 9113 section 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The read buffer's size, and the least room a read is given.
const READ_SIZE: usize = 8 * 1024;
const MIN_READ: usize = 2 * 1024;

/// The server's limits on request heads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_head: usize,
    pub(super) max_headers: usize,
    pub(super) header_read_timeout: Duration,
}

/// An accepted connection and what serving it takes.
pub(super) struct Conn<S> {
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) service: S,
    pub(super) timer: HeadTimer,
    pub(super) watcher: Watcher,
    pub(super) limits: Limits,
    /// hyper's connection builder, for a connection handed over.
    pub(super) builder: Arc<auto::Builder<TokioExecutor>>,
}

/// What the connection holds next.
// Moved once per request; boxing it would allocate per request.
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(Head),
    Hyper,
    Close,
}

/// Serves `conn` until the client closes it, it is drained, or a response ends it.
pub(super) async fn serve<S, B>(conn: Conn<S>)
where
    S: HttpService<B>,
    B: ResponseBody,
{
    let Conn {
        mut stream,
        peer,
        mut service,
        timer,
        watcher,
        limits,
        builder,
    } = conn;
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut out = BytesMut::with_capacity(READ_SIZE);
    let mut first = true;
    loop {
        let Head {
            mut request,
            keep_alive,
            ..
        } = match next_head(&mut stream, &mut buf, &timer, &limits, first).await {
            Next::Head(head) => head,
            Next::Hyper => {
                let io = TokioIo::new(rewind::Rewind::new(buf.freeze(), stream));
                let mut builder = (*builder).clone();
                builder.http1().timer(timer);
                let service = WithPeer {
                    inner: service,
                    peer,
                };
                let connection = builder.serve_connection(io, service);
                if let Err(error) = watcher.watch(connection, |c| c.graceful_shutdown()).await {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            Next::Close => return,
        };
        first = false;
        let exchange = Exchange {
            version: request.version(),
            head_request: request.method() == Method::HEAD,
            keep_alive,
        };
        request.extensions_mut().insert(PeerAddr(peer));
        // Errors boxed at once: no service error type lives across an await.
        let ready: Result<&mut S, BoxError> = service.ready().await.map_err(Into::into);
        let response = match ready {
            Ok(ready) => ready.call(request).await.map_err(Into::into),
            Err(error) => Err(error),
        };
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(%peer, %error, "the service failed: closing the connection");
                return;
            }
        };
        let exchange = Exchange {
            keep_alive: exchange.keep_alive && !timer.is_draining(),
            ..exchange
        };
        if !response::write(&mut stream, &mut out, response, exchange).await {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Reads until `buf` starts with a whole request head (`first`: the connection's first, which
/// may be an HTTP/2 preface instead). Arms the connection's timer while it waits; an idle
/// connection also closes when the server drains.
async fn next_head(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    timer: &HeadTimer,
    limits: &Limits,
    first: bool,
) -> Next {
    let mut armed = false;
    loop {
        if !buf.is_empty() {
            let preface = first && PREFACE.starts_with(&buf[..buf.len().min(PREFACE.len())]);
            if preface {
                if buf.len() >= PREFACE.len() {
                    return Next::Hyper;
                }
            } else {
                match request::parse(buf, limits.max_head, limits.max_headers) {
                    Parsed::Request(mut head) => {
                        if head.body > 0 {
                            let body = RequestBody::full(buf.split_to(head.body).freeze());
                            *head.request.body_mut() = body;
                        }
                        if armed {
                            timer.disarm();
                        }
                        return Next::Head(head);
                    }
                    Parsed::Hyper => return Next::Hyper,
                    Parsed::Partial => {}
                }
            }
        }
        if !armed {
            timer.arm(limits.header_read_timeout);
            armed = true;
        }
        let idle = buf.is_empty();
        buf.reserve(MIN_READ);
        if !read_more(stream, buf, timer, idle).await {
            return Next::Close;
        }
    }
}

/// One read into `buf`, beside the connection's timer; false when the connection is to close:
/// the end of the stream, a read error, the armed deadline passed, or (`idle`) the server
/// drains.
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    timer: &HeadTimer,
    idle: bool,
) -> bool {
    let mut read = pin!(stream.read_buf(buf));
    let read = poll_fn(|cx| {
        if let Poll::Ready(read) = read.as_mut().poll(cx) {
            return Poll::Ready(Ok(read));
        }
        timer.poll_woken(cx, idle).map(Err)
    })
    .await;
    match read {
        Ok(Ok(0)) => false,
        Ok(Ok(_)) => true,
        Ok(Err(error)) => {
            tracing::debug!(%error, "reading a request failed: closing the connection");
            false
        }
        Err(Woken::Passed) => {
            tracing::debug!("a request head or body is late: closing the connection");
            false
        }
        // Signalled: the server drains.
        Err(_) => false,
    }
}
