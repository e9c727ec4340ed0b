//! The proxy's own HTTP/1.1 exchange with an upstream, for requests without a body or with a
//! small one already in memory.
//!
//! hyper's client connection runs as a task of its own: a request reaches it through a channel
//! (a wake of that task), which writes it, reads the response head and hands it back through
//! another channel (a wake of the caller). About 13,000 instructions per proxied request went
//! there in the `fluxgate` gateway (`benches/e2e/PROFILE.md`). Here the request's own task does
//! the exchange on a pooled [`Conn`]: it writes the head with one `write`, reads and parses the
//! response head with `httparse`, and the response body reads the rest from the same socket; at
//! the body's end the connection goes back to its pool.
//!
//! The upstream head is written from the client's request head ([`request::write_head`]), which
//! stays as it came for a retry elsewhere. Requests without a body take it (`GET`, `HEAD`,
//! `DELETE`, ...: [`head::carries`]), and so do requests whose `Content-Length` body of at most
//! 64 KiB is all in memory already ([`whole`]: the small `POST` the gateway's server read with
//! its head), written behind the head in the same `write`. A body still on its way must be
//! streamed up while the response may already come down, which hyper's client does and this
//! exchange leaves to it. What is checked, against RFC 9112:
//! - the response head: at most [`head::MAX_HEAD`] bytes and [`head::MAX_HEADERS`] lines,
//!   parsed by `httparse`; interim `1xx` heads are skipped; a `101` is an error (the proxy never
//!   asks for an upgrade);
//! - the framing (section 6.3): no body for `HEAD`, `204` and `304`; `Transfer-Encoding` ending
//!   in `chunked` decoded (trailers included), wins over `Content-Length`, and then the
//!   connection is not reused; `Content-Length` must be decimal, and repeated values must agree;
//!   without either, the body lasts until the upstream closes, and the connection is not reused;
//! - reuse: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`,
//!   never when bytes follow the response's end.
//!
//! Each failure is an [`Http1Error`]: before the response head it becomes the proxy's `502`;
//! after it, the response body ends with it.

mod body;
mod chunked;
mod decode;
mod drive;
pub(crate) mod head;
pub(crate) mod request;
pub(crate) mod whole;

use std::future::Future;
use std::task::{Context, Poll, Waker};

use std::sync::Weak;

use bytes::BytesMut;
use fluxgate_core::clock::Stamp;
use fluxgate_core::deadline::Deadline;
use http::{Method, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) use body::Http1Body;
pub use drive::read_response;
use head::Head;

use crate::pool::Http1Pool;

/// How much a connection's read buffer holds at least before each read.
const READ_CHUNK: usize = 8 * 1024;

/// Why the proxy's own HTTP/1.1 exchange with an upstream failed.
///
/// Before the response head, it is logged at `debug` and the client gets a `502`; after it,
/// the response body ends with it (as a [`BoxError`](crate::BoxError), to downcast).
///
/// ```
/// use fluxgate_proxy::Http1Error;
///
/// let error = Http1Error::Invalid("conflicting Content-Length values");
/// assert_eq!(error.to_string(), "invalid response from the upstream: conflicting Content-Length values");
/// assert!(!Http1Error::HeadTooLarge.to_string().is_empty());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Http1Error {
    /// Reading from or writing to the upstream connection failed.
    #[error("upstream connection: {0}")]
    Io(#[from] std::io::Error),
    /// The upstream closed the connection before a complete response head.
    #[error("the upstream closed the connection before a complete response head")]
    ClosedBeforeHead,
    /// The upstream closed the connection before the end of a response body.
    #[error("the upstream closed the connection before the end of the response body")]
    ClosedInBody,
    /// The response head is larger than 64 KiB.
    #[error("the upstream's response head is larger than 64 KiB")]
    HeadTooLarge,
    /// The response head or the trailer section is not HTTP/1.1 (`httparse`'s reason; more
    /// than 100 header lines is `TooManyHeaders`).
    #[error("malformed response from the upstream: {0}")]
    Malformed(httparse::Error),
    /// The response is well-formed but cannot be taken as it is (which part, in the text).
    #[error("invalid response from the upstream: {0}")]
    Invalid(&'static str),
    /// The response head did not come within the proxy's timeout (the client gets a `504`).
    #[error("no response head from the upstream within the timeout")]
    TimedOut,
}

/// An HTTP/1.1 connection to an upstream, with what has been read and not used yet.
#[derive(Debug)]
pub(crate) struct Conn {
    io: TcpStream,
    buf: BytesMut,
    /// Bounds each exchange, from the request's start to its response head: a coarse deadline
    /// swept by the pool's task (see `fluxgate_core::deadline`), not a tokio timer per request.
    deadline: Deadline,
}

/// A failed exchange, and whether the request may have reached the upstream.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) error: Http1Error,
    pub(crate) sent: bool,
}

impl Conn {
    pub(crate) fn new(io: TcpStream, deadline: Deadline) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            deadline,
        }
    }

    /// Whether an idle connection can take a request: nothing arrived on it since its last
    /// response (a close, a reset or stray bytes would have). tokio's readiness says so without
    /// a system call; only when it says readable is the socket read, once.
    pub(crate) fn is_idle(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        if !self.buf.is_empty() {
            return false;
        }
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // A read that filled the buffer leaves the readiness set: see what is there.
            Poll::Ready(Ok(())) => matches!(
                self.io.try_read(&mut [0; 1]),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock
            ),
        }
    }

    /// Writes `request_head` (with the request's whole body behind it, if any) and reads the
    /// response head, by
    /// `deadline` (the sweeper wakes it within a tick after).
    pub(crate) async fn exchange(
        &mut self,
        request_head: &[u8],
        head_request: bool,
        deadline: Stamp,
    ) -> Result<Head, Failed> {
        self.deadline.arm_at(deadline);
        let result = self.exchange_armed(request_head, head_request).await;
        self.deadline.disarm();
        result
    }

    async fn exchange_armed(
        &mut self,
        request_head: &[u8],
        head_request: bool,
    ) -> Result<Head, Failed> {
        let written = by(&self.deadline, self.io.write_all(request_head)).await;
        if let Err(error) = written.and_then(|written| written.map_err(Http1Error::from)) {
            // Nothing is known to have been taken: a closed connection refuses the first write.
            return Err(Failed { error, sent: false });
        }
        let sent = |error| Failed { error, sent: true };
        loop {
            if !self.buf.is_empty()
                && let Some(head) =
                    head::parse_response(&mut self.buf, head_request).map_err(sent)?
            {
                return Ok(head);
            }
            self.buf.reserve(READ_CHUNK);
            match by(&self.deadline, self.io.read_buf(&mut self.buf))
                .await
                .map_err(sent)?
            {
                Ok(0) => return Err(sent(Http1Error::ClosedBeforeHead)),
                Ok(_) => {}
                Err(error) => return Err(sent(error.into())),
            }
        }
    }

    /// Reads more into the buffer: `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        self.buf.reserve(READ_CHUNK);
        std::pin::pin!(self.io.read_buf(&mut self.buf)).poll(cx)
    }
}

/// `future`'s output, or [`Http1Error::TimedOut`] once `deadline` has passed.
async fn by<F: Future>(deadline: &Deadline, future: F) -> Result<F::Output, Http1Error> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        deadline.poll(cx, false).map(|_| Err(Http1Error::TimedOut))
    })
    .await
}

/// What a request needs of the exchange: its upstream head and whole body, written once, and
/// whether it is a `HEAD`.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The head, and the body (if any) behind it.
    pub(crate) head: Vec<u8>,
    pub(crate) head_request: bool,
}

impl Outgoing {
    /// The upstream head of a request, written from the client's `headers` as `target` says
    /// ([`request::write_head`]), with its whole `body` behind it (empty: none).
    pub(crate) fn new(
        target: &request::Target<'_>,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Self {
        let mut head = Vec::with_capacity(512 + body.len());
        request::write_head(target, headers, &mut head);
        head.extend_from_slice(body);
        Self {
            head,
            head_request: target.method == Method::HEAD,
        }
    }
}

/// The response of a finished head, its body reading the rest from `conn`, which goes back to
/// `pool` when the body has ended and the connection can carry another request.
pub(crate) fn response(head: Head, conn: Conn, pool: Weak<Http1Pool>) -> Response<Http1Body> {
    let Head {
        response,
        framing,
        keep_alive,
    } = head;
    let body = Http1Body::new(conn, framing, keep_alive, pool);
    response.map(|()| body)
}
