//! The proxy's own HTTP/1.1 connections to a plain `http://` upstream
//! ([`ProxyConfig::http1_pool`](crate::ProxyConfig::http1_pool)).
//!
//! hyper-util's pooled client serves any host: every checkout and every return hashes and
//! compares the (scheme, authority) key, and each request's future is boxed and moved through
//! a connect-or-checkout race. A [`Proxy`](crate::Proxy) speaks to one upstream, so its pool is
//! two stacks of idle connections and nothing more, one pool per serving worker, the most
//! recently used connection first (its buffers are warm), idle connections closed after 90s:
//! the connections of the proxy's own exchange ([`crate::h1`]) for requests without a body or
//! with a small one already in memory, and hyper's HTTP/1 client connections
//! (`hyper::client::conn::http1`) for requests whose body streams.
//!
//! A connection goes back to the pool when its response body has been read to the end; a body
//! dropped before that closes it (the rest of the response would be read into the next one).
//! A request that a reused connection could not take (the upstream closed it while idle) is
//! sent again on another connection: hyper gives it back unsent, and the own exchange knows
//! that nothing was written.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use fluxgate_core::clock::Stamp;
use fluxgate_core::deadline::Sweeper;
use http::uri::Authority;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::h1::{self, Conn, Failed, Http1Error, Outgoing};
use crate::{BoxError, ProxyBody};

/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How many idle connections one pool keeps at most (the oldest are closed first).
const MAX_IDLE: usize = 1024;
/// How long connecting may take (as the pooled client's connector).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request did not get a response head.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made: the request was not sent.
    Connect(std::io::Error),
    /// The connection failed; `sent` when the request may have reached the upstream.
    Request { error: hyper::Error, sent: bool },
    /// The proxy's own exchange failed; `sent` when the request may have reached the upstream.
    Exchange { error: Http1Error, sent: bool },
}

impl SendError {
    /// Whether the request may have reached the upstream.
    pub(crate) fn sent(&self) -> bool {
        matches!(
            self,
            Self::Request { sent: true, .. } | Self::Exchange { sent: true, .. }
        )
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(error) => write!(f, "connecting: {error}"),
            Self::Exchange { error, .. } => write!(f, "{error}"),
            Self::Request { error, .. } => {
                write!(f, "{error}")?;
                let mut source = std::error::Error::source(error);
                while let Some(inner) = source {
                    write!(f, ": {inner}")?;
                    source = inner.source();
                }
                Ok(())
            }
        }
    }
}

/// An idle connection and since when it is idle.
struct Idle<T> {
    conn: T,
    since: Stamp,
}

/// Idle connections of one kind, the most recently used last.
type Stack<T> = Mutex<VecDeque<Idle<T>>>;

/// Idle HTTP/1.1 connections to one upstream, of one serving worker: the proxy's own exchange's
/// (requests without a body or with a whole one) and hyper's client connections (requests whose
/// body streams).
pub(crate) struct Http1Pool {
    authority: Authority,
    conns: Stack<Conn>,
    senders: Stack<SendRequest<ProxyBody>>,
    /// Sweeps the deadlines of the own exchange's connections; started with the first one.
    sweeper: OnceLock<Sweeper>,
}

impl std::fmt::Debug for Http1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http1Pool")
            .field("authority", &self.authority)
            .field(
                "idle",
                &(lock(&self.conns).len() + lock(&self.senders).len()),
            )
            .finish()
    }
}

fn lock<T>(stack: &Stack<T>) -> MutexGuard<'_, VecDeque<Idle<T>>> {
    stack.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The most recently used idle connection of `stack` that is `usable` and not expired.
fn checkout<T>(stack: &Stack<T>, usable: impl Fn(&T) -> bool) -> Option<T> {
    let now = Stamp::now();
    let mut idle = lock(stack);
    while let Some(Idle { conn, since }) = idle.pop_back() {
        if now.saturating_since(since) < IDLE_TIMEOUT && usable(&conn) {
            return Some(conn);
        }
    }
    None
}

/// Gives a connection whose exchange ended back to `stack` (closing the oldest beyond the
/// bounds).
fn put<T>(stack: &Stack<T>, conn: T) {
    let now = Stamp::now();
    let mut idle = lock(stack);
    while idle
        .front()
        .is_some_and(|i| idle.len() >= MAX_IDLE || now.saturating_since(i.since) >= IDLE_TIMEOUT)
    {
        idle.pop_front();
    }
    idle.push_back(Idle { conn, since: now });
}

impl Http1Pool {
    pub(crate) fn new(authority: Authority) -> Arc<Self> {
        Arc::new(Self {
            authority,
            conns: Mutex::default(),
            senders: Mutex::default(),
            sweeper: OnceLock::new(),
        })
    }

    /// Gives a hyper connection whose exchange ended back.
    fn put(&self, sender: SendRequest<ProxyBody>) {
        if !sender.is_closed() {
            put(&self.senders, sender);
        }
    }

    /// Gives a connection of the own exchange whose response has ended back.
    pub(crate) fn put_conn(&self, conn: Conn) {
        put(&self.conns, conn);
    }

    /// A kept connection failed: the upstream closed it, restarted or died, and the other idle
    /// connections to it are likely gone too (their closes may not have been read yet). They
    /// are closed, so that the next requests (a retry first) connect afresh, where a refused
    /// connection is known not to have sent anything.
    fn suspect(&self) {
        lock(&self.conns).clear();
        lock(&self.senders).clear();
    }

    async fn connect_tcp(&self) -> Result<TcpStream, SendError> {
        let host = self.authority.host();
        // An IPv6 literal comes bracketed in the authority.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = self.authority.port_u16().unwrap_or(80);
        let connecting = TcpStream::connect((host, port));
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(SendError::Connect(error)),
            Err(_) => {
                let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
                return Err(SendError::Connect(timed_out));
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn connect(&self) -> Result<SendRequest<ProxyBody>, SendError> {
        let stream = self.connect_tcp().await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| SendError::Request { error, sent: false })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    /// The own exchange of a request without a body or with a whole one, whose upstream head
    /// (and body) is `outgoing`, over an idle connection or a new one.
    pub(crate) async fn exchange(
        self: Arc<Self>,
        outgoing: Outgoing,
        timeout: Duration,
    ) -> Result<Response<ProxyBody>, SendError> {
        // A stamp, read once: the exchange's deadline is a number (`Duration::MAX`, no
        // deadline, saturates to the far end of the clock).
        let deadline = Stamp::now() + timeout;
        loop {
            let (mut conn, reused) = match checkout(&self.conns, Conn::is_idle) {
                Some(conn) => (conn, true),
                None => {
                    let left = deadline.saturating_since(Stamp::now());
                    let connecting = tokio::time::timeout(left, self.connect_tcp());
                    let Ok(stream) = connecting.await else {
                        let error = Http1Error::TimedOut;
                        return Err(SendError::Exchange { error, sent: false });
                    };
                    let sweeper =
                        (self.sweeper).get_or_init(|| Sweeper::start(Sweeper::tick_for(timeout)));
                    (Conn::new(stream?, sweeper.deadline()), false)
                }
            };
            match conn
                .exchange(&outgoing.head, outgoing.head_request, deadline)
                .await
            {
                Ok(head) => {
                    let response = h1::response(head, conn, Arc::downgrade(&self));
                    return Ok(response.map(http_body_util::BodyExt::boxed_unsync));
                }
                Err(Failed { error, sent }) => {
                    if reused {
                        self.suspect();
                        // Closed before it took the request: another connection gets it.
                        if !sent {
                            continue;
                        }
                    }
                    return Err(SendError::Exchange { error, sent });
                }
            }
        }
    }

    /// Sends `request` (in origin form) over an idle hyper client connection or a new one.
    pub(crate) async fn send(
        self: Arc<Self>,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, SendError> {
        loop {
            let (mut sender, reused) = match checkout(&self.senders, |s| !s.is_closed()) {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            if let Err(error) = std::future::poll_fn(|cx| sender.poll_ready(cx)).await {
                if reused {
                    self.suspect();
                    continue;
                }
                return Err(SendError::Request { error, sent: false });
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.watch(sender, response)),
                Err(mut failed) => {
                    if reused {
                        self.suspect();
                    }
                    match failed.take_message() {
                        // Closed before it took the request: another connection gets it.
                        Some(unsent) if reused => request = unsent,
                        unsent => {
                            let sent = unsent.is_none();
                            let error = failed.into_error();
                            return Err(SendError::Request { error, sent });
                        }
                    }
                }
            }
        }
    }

    /// The response, its body giving the connection back at its end.
    fn watch(
        self: &Arc<Self>,
        sender: SendRequest<ProxyBody>,
        response: Response<Incoming>,
    ) -> Response<ProxyBody> {
        let (parts, body) = response.into_parts();
        let body = if body.is_end_stream() {
            self.put(sender);
            Returning { body, back: None }
        } else {
            Returning {
                body,
                back: Some((sender, Arc::downgrade(self))),
            }
        };
        Response::from_parts(parts, http_body_util::BodyExt::boxed_unsync(body))
    }
}

pin_project_lite::pin_project! {
    /// A response body that gives its connection back to the pool once read to the end.
    struct Returning {
        #[pin]
        body: Incoming,
        back: Option<(SendRequest<ProxyBody>, Weak<Http1Pool>)>,
    }
}

impl Body for Returning {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let frame = ready!(this.body.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(_)) if !this.body.is_end_stream() => {}
            // The end, or trailers: the exchange is over.
            Some(Ok(_)) | None => {
                if let Some((sender, pool)) = this.back.take()
                    && let Some(pool) = pool.upgrade()
                {
                    pool.put(sender);
                }
            }
            // A broken body: the connection is not reused.
            Some(Err(_)) => *this.back = None,
        }
        Poll::Ready(frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
