//! An HTTP/1.1 and h2c server for any tower service, with graceful shutdown.
//!
//! [`serve`] runs the accept loop on a bound listener until a shutdown future completes, then
//! stops accepting, asks every connection to finish its in-flight requests and waits for them (at
//! most [`ServerConfig::drain_timeout`]). [`spawn`] binds, spawns that loop and hands back a
//! [`ServerHandle`] with the bound address (bind to port 0 to get an ephemeral one).
//! [`spawn_workers`] does the same on one thread per worker, each a current-thread runtime that
//! serves the connections one acceptor hands it (the worker with the fewest open connections
//! gets the next): thread-per-core serving.
//!
//! Each request gets the connection's peer as a [`PeerAddr`] extension before the service sees it,
//! and a [`RequestBody`].
//!
//! Two paths serve a connection:
//! - **the own HTTP/1.1 path** ([`ServerConfig::own_http1`], on by default) reads a plain
//!   connection's requests without a body or with a `Content-Length` body of at most 64 KiB
//!   that came whole with the head, calls the service and writes the responses in the
//!   connection's own task, without hyper's dispatcher: one read and one write per request when
//!   the response is ready. The first request with a chunked or larger body or one still on its
//!   way, `Expect`, `Upgrade` or `CONNECT`, a target that is not a path, an HTTP/2 preface, or a
//!   head that is malformed or over the limits hands the connection to hyper, with the bytes
//!   read so far replayed, for the rest of its life;
//! - **hyper-util's auto builder** serves the rest (HTTP/1.1 with bodies, HTTP/2 prior
//!   knowledge (h2c), TLS with ALPN `h2` or `http/1.1`), and every connection when the own path
//!   is off.
//!
//! Both answer alike: the same framing (`Content-Length`, chunked with trailers, or until the
//! close for an HTTP/1.0 client), keep-alive rules (`Connection: close`, HTTP/1.0's
//! `keep-alive`), a `Date` when the service gave none, and the connection closed when a body
//! fails or does not match its length.
//!
//! Limits (both paths enforce them before the service is called):
//! - HTTP/1.1: the request head may use at most [`ServerConfig::max_header_bytes`] of read buffer
//!   and carry at most [`ServerConfig::max_headers`] headers (hyper answers `431` or closes the
//!   connection), and must arrive within [`ServerConfig::header_read_timeout`] (a connection
//!   whose head is late is closed without an answer, within a tenth of the timeout, at most 1s,
//!   after it: one coarse timer per connection, swept by one task per server loop, not a tokio
//!   timer per request);
//! - HTTP/2: the header list is limited to [`ServerConfig::max_header_bytes`].
//!
//! On shutdown, idle connections close at once; a request in flight is answered, with
//! `Connection: close`, and its connection then closes.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), fluxgate_gateway::server::ServerError> {
//! use fluxgate_gateway::server::{ServerConfig, spawn};
//! use fluxgate_gateway::proxy::{Proxy, ProxyConfig, proxy_client};
//!
//! let proxy = Proxy::new(proxy_client(), "http://127.0.0.1:3000".parse().unwrap(), ProxyConfig::default());
//! let server = spawn("127.0.0.1:0".parse().unwrap(), proxy, ServerConfig::default()).await?;
//! println!("listening on {}", server.local_addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fluxgate_core::key::PeerAddr;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::Service;
use tower::util::{Oneshot, ServiceExt};

use crate::proxy::BoxError;

mod body;
mod drain;
mod h1;
mod head_timer;
mod incoming;
mod workers;

use drain::{Drain, Watcher};
use head_timer::HeadTimers;
use incoming::{Connections, Open};

pub use body::RequestBody;
pub use workers::{spawn_workers, worker_index};

/// A tower service the server runs: cloned per connection, its futures sent between threads.
pub trait HttpService<B>:
    Service<
        Request<RequestBody>,
        Response = Response<B>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S, B> HttpService<B> for S where
    S: Service<
            Request<RequestBody>,
            Response = Response<B>,
            Error: Into<BoxError>,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// A response body the server sends.
pub trait ResponseBody:
    http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> ResponseBody for B where
    B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static
{
}

/// Connection limits and shutdown timing; `ServerConfig::default()` is described on each field.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest request head in bytes (HTTP/1.1 read buffer, HTTP/2 header list); default 64 KiB.
    pub max_header_bytes: u32,
    /// Most headers in an HTTP/1.1 request; default 100.
    pub max_headers: usize,
    /// How long a client has to send an HTTP/1.1 request head, from the connection's start or the
    /// end of the previous response (so it also closes an idle keep-alive connection); default
    /// 30s.
    pub header_read_timeout: Duration,
    /// How long shutdown waits for open connections to finish; default 10s.
    pub drain_timeout: Duration,
    /// TLS for every connection (ALPN `h2` or `http/1.1`), or none (plain HTTP/1.1 and h2c);
    /// default none.
    pub tls: Option<crate::tls::TlsAcceptor>,
    /// Serve plain HTTP/1.1 requests without a body or with a small one on the server's own path
    /// instead of hyper's (see the [module docs](self)); default on.
    pub own_http1: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            tls: None,
            own_http1: true,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A running server: its address, and the way to stop it.
///
/// Dropping the handle also starts a graceful shutdown (the server task goes on draining).
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The address the server is bound to.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish and waits for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Err(error) = (&mut self.task).await {
            tracing::warn!(%error, "server task failed");
        }
    }
}

/// Binds `addr` and spawns [`serve`] on the tokio runtime.
///
/// # Errors
///
/// [`ServerError::Bind`] when the address cannot be bound.
pub async fn spawn<S, B>(
    addr: SocketAddr,
    service: S,
    config: ServerConfig,
) -> Result<ServerHandle, ServerError>
where
    S: HttpService<B>,
    B: ResponseBody,
{
    let bind_error = |source| ServerError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    let (shutdown, signal) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, service, config, async move {
        // A dropped sender is a shutdown request too.
        let _ = signal.await;
    }));
    Ok(ServerHandle {
        local_addr,
        shutdown: Some(shutdown),
        task,
    })
}

/// Serves `service` on `listener` until `shutdown` completes, then drains the connections.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) where
    S: HttpService<B>,
    B: ResponseBody,
{
    serve_incoming(Connections::Listener(listener), service, config, shutdown).await;
}

/// [`serve`] over any source of connections: until `shutdown` completes or no more connections
/// can come, then drains them.
async fn serve_incoming<S, B>(
    mut incoming: Connections,
    service: S,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) where
    S: HttpService<B>,
    B: ResponseBody,
{
    let builder = Arc::new(connection_builder(&config));
    let head_timers = HeadTimers::start(config.header_read_timeout);
    let limits = h1::Limits {
        max_head: usize::try_from(config.max_header_bytes).unwrap_or(usize::MAX),
        max_headers: config.max_headers,
        header_read_timeout: config.header_read_timeout,
    };
    let drain = Drain::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = incoming.next() => match accepted {
                Some(Ok((stream, peer, open))) => {
                    let _ = stream.set_nodelay(true);
                    let timer = head_timers.connection();
                    let watcher = drain.watcher();
                    if let Some(tls) = &config.tls {
                        let mut builder = (*builder).clone();
                        builder.http1().timer(timer);
                        let service = WithPeer { inner: service.clone(), peer };
                        serve_tls(tls.clone(), stream, peer, builder, service, watcher, open);
                    } else if config.own_http1 {
                        let conn = h1::Conn {
                            stream,
                            peer,
                            service: service.clone(),
                            timer,
                            watcher,
                            limits,
                            builder: Arc::clone(&builder),
                        };
                        tokio::spawn(async move {
                            let _open = open;
                            h1::serve(conn).await;
                        });
                    } else {
                        let mut builder = (*builder).clone();
                        builder.http1().timer(timer);
                        let service = WithPeer { inner: service.clone(), peer };
                        tokio::spawn(async move {
                            let _open = open;
                            let connection = builder.serve_connection(TokioIo::new(stream), service);
                            if let Err(error) = watcher.watch(connection, |c| c.graceful_shutdown()).await {
                                tracing::debug!(%peer, %error, "connection ended with an error");
                            }
                        });
                    }
                }
                None => break,
                Some(Err(error)) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(incoming);
    head_timers.drain();
    tokio::select! {
        () = drain.shutdown() => tracing::debug!("all connections closed"),
        () = tokio::time::sleep(config.drain_timeout) => {
            tracing::warn!(timeout = ?config.drain_timeout, "connections still open after the drain timeout");
        }
    }
}

/// The number of headers hyper takes in a request head when no limit is set.
const HYPER_MAX_HEADERS: usize = 100;

/// The hyper connection builder with the limits of `config`. Each connection sets its own
/// HTTP/1.1 timer ([`HeadTimers::connection`]), which the header-read timeout runs on.
fn connection_builder(config: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(
            usize::try_from(config.max_header_bytes)
                .unwrap_or(usize::MAX)
                .max(8192),
        );
    // hyper's own limit is 100 headers, kept in a stack array; a limit set explicitly, even to
    // 100, makes it fill a vector of that many slots for every request head it parses.
    if config.max_headers != HYPER_MAX_HEADERS {
        builder.http1().max_headers(config.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(config.max_header_bytes);
    builder
}

/// A hyper service that adds the peer's address to each request and calls a tower service.
#[derive(Debug, Clone)]
struct WithPeer<S> {
    inner: S,
    peer: SocketAddr,
}

impl<S> hyper::service::Service<Request<Incoming>> for WithPeer<S>
where
    S: Service<Request<RequestBody>> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Oneshot<S, Request<RequestBody>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let mut request = request.map(RequestBody::from);
        request.extensions_mut().insert(PeerAddr(self.peer));
        self.inner.clone().oneshot(request)
    }
}

/// Spawns the TLS handshake of an accepted connection, then serves it as ALPN chose.
fn serve_tls<S, B>(
    tls: crate::tls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    builder: auto::Builder<TokioExecutor>,
    service: WithPeer<S>,
    watcher: Watcher,
    open: Open,
) where
    S: HttpService<B>,
    B: ResponseBody,
{
    tokio::spawn(async move {
        let _open = open;
        let Some(stream) = tls.accept(stream, peer).await else {
            return;
        };
        let service = crate::tls::MarkTls(service);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        if let Err(error) = watcher.watch(connection, |c| c.graceful_shutdown()).await {
            tracing::debug!(%peer, %error, "TLS connection ended with an error");
        }
    });
}
