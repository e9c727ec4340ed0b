//! A streaming HTTP reverse proxy to one upstream, as a tower [`Service`].
//!
//! [`Proxy`] forwards each request to its [`Upstream`] over a shared, pooled hyper-util
//! [`Client`](hyper_util::client::legacy::Client) and streams both bodies (trailers included) through without buffering them. Use
//! one `Proxy` per upstream endpoint and put a selector (FluxGate's
//! [`Balance`](fluxgate_balance::Balance), as the gateway's `stack` does) in front. The client
//! decides the protocol: [`ProxyClients::for_upstream`] gives the one an
//! [`UpstreamSpec`](crate::upstream::UpstreamSpec) asks for (HTTP/1.1, h2c, or TLS with ALPN).
//!
//! What it does to a request:
//! - the URI becomes the upstream's scheme and authority, the upstream's path prefix, then the
//!   request's own path and query;
//! - the client's `Host` is kept ([`ProxyConfig::preserve_host`], on by default; when the request
//!   has no `Host`, as in HTTP/2, the authority of its URI is used); with `preserve_host(false)`
//!   the upstream's authority is sent instead;
//! - hop-by-hop headers (`Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
//!   `Transfer-Encoding`, `Upgrade`, `Proxy-Authenticate`, `Proxy-Authorization` and every header
//!   named in `Connection`) are removed, from the request and from the response;
//! - `TE: trailers` is kept for gRPC requests (gRPC servers need it; the proxy passes
//!   trailers through);
//! - the peer's IP (from the [`PeerAddr`] extension the server inserts) is appended to
//!   `X-Forwarded-For`; `X-Forwarded-Proto` (`http`, or `https` with the
//!   [`ClientTls`](crate::tls::ClientTls) extension) and `X-Forwarded-Host` are set when absent.
//!
//! gRPC requests (`content-type: application/grpc*`) are not bound by [`ProxyConfig::timeout`]:
//! a call lasts as long as its client wants (a stream may wait long for its first message).
//! A `grpc-timeout` header is their deadline for the response headers instead (and goes on
//! upstream, so that the upstream enforces it on the rest of the call).
//!
//! What it answers itself, never failing the `Service` call (`Error = Infallible`):
//! - `400 Bad Request` for a request it cannot forward: `CONNECT`, a target without a path, a
//!   `Host` that is not a valid authority;
//! - `502 Bad Gateway` when the upstream refuses the connection, or closes or resets it before
//!   sending response headers; a request without a body is given back with it, as a
//!   [`RetryableRequest`](fluxgate_balance::RetryableRequest) in the response's extensions (not
//!   sent when the connection was refused), for the balancer's retry on another endpoint;
//! - `504 Gateway Timeout` when no response headers arrived within [`ProxyConfig::timeout`]
//!   (connecting included), or within the `grpc-timeout` of a gRPC request.
//!
//! Once the response headers have been passed on, an upstream error can no longer become a
//! status: the response body ends with that error, which makes hyper's server abort the
//! response (HTTP/1.1 closes the connection before the final chunk, HTTP/2 resets the stream), so
//! the client sees a truncated response rather than a complete one.
//!
//! # Example
//!
//! ```no_run
//! use fluxgate_proxy::{Proxy, ProxyConfig, proxy_client};
//! use std::time::Duration;
//!
//! let client = proxy_client();
//! let upstream = "http://127.0.0.1:3000".parse().unwrap();
//! let config = ProxyConfig::default().timeout(Duration::from_secs(5));
//! let proxy = Proxy::new(client, upstream, config);
//! # let _ = proxy;
//! ```
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod clients;
mod future;
pub mod grpc;
mod headers;
pub mod tls;
pub mod upstream;
pub mod worker;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use fluxgate_core::key::PeerAddr;
use http::header::{HOST, HeaderValue};
use http::uri::Authority;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tower_service::Service;

pub use self::clients::{ProxyClient, ProxyClients, proxy_client};
pub use self::future::ResponseFuture;
use crate::upstream::Upstream;

/// The boxed error of a streamed body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of proxied requests and of every response of the proxy.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// How a [`Proxy`] forwards; `ProxyConfig::default()` is a 15s timeout and the client's `Host`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// How long the upstream has to answer with response headers, connecting included (not
    /// for gRPC requests: their `grpc-timeout`, if any, is their deadline).
    pub timeout: Duration,
    /// Whether the client's `Host` header is sent upstream (otherwise the upstream's authority).
    pub preserve_host: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            preserve_host: true,
        }
    }
}

impl ProxyConfig {
    /// Sets [`ProxyConfig::timeout`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`ProxyConfig::preserve_host`].
    #[must_use]
    pub fn preserve_host(mut self, preserve: bool) -> Self {
        self.preserve_host = preserve;
        self
    }
}

/// A reverse proxy to one [`Upstream`]; see the [module docs](self).
///
/// Always ready: the pooled client opens connections on demand, so this service gives no
/// backpressure of its own. A clone costs one reference count.
#[derive(Debug, Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The client of threads outside the serving workers, then each worker's.
    clients: Box<[ProxyClient]>,
    upstream: Upstream,
    host: HeaderValue,
    config: ProxyConfig,
}

impl Proxy {
    /// A proxy to `upstream` over `client`.
    #[must_use]
    pub fn new(client: ProxyClient, upstream: Upstream, config: ProxyConfig) -> Self {
        Self::per_worker(vec![client], upstream, config)
    }

    /// A proxy to `upstream` that sends through `clients[i]` on serving worker `i`
    /// ([`worker_index`](crate::worker::worker_index); `clients[0]` elsewhere), so that each
    /// worker of thread-per-core serving keeps its own upstream connections
    /// ([`ProxyClients::each_for_upstream`] gives such a list). An empty list is one default
    /// client.
    #[must_use]
    pub fn per_worker(
        mut clients: Vec<ProxyClient>,
        upstream: Upstream,
        config: ProxyConfig,
    ) -> Self {
        if clients.is_empty() {
            clients.push(proxy_client());
        }
        let host = HeaderValue::from_str(upstream.authority().as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Self {
            inner: Arc::new(Inner {
                clients: clients.into_boxed_slice(),
                upstream,
                host,
                config,
            }),
        }
    }

    /// The upstream this proxy forwards to.
    #[must_use]
    pub fn upstream(&self) -> &Upstream {
        &self.inner.upstream
    }

    /// The client of the current thread's serving worker.
    fn client(&self) -> &ProxyClient {
        let clients = &self.inner.clients;
        let worker = crate::worker::worker_index();
        clients.get(worker).unwrap_or(&clients[0])
    }

    /// Rewrites a client request into the upstream request, or says why it cannot be forwarded.
    fn prepare<B>(&self, request: Request<B>) -> Result<Request<ProxyBody>, &'static str>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = request.into_parts();
        if parts.method == Method::CONNECT {
            return Err("CONNECT is not supported");
        }
        let Some(path_and_query) = parts.uri.path_and_query() else {
            return Err("the request target has no path");
        };
        let host = match parts.headers.get(HOST) {
            Some(host) => {
                Authority::try_from(host.as_bytes()).map_err(|_| "invalid Host header")?;
                Some(host.clone())
            }
            None => parts
                .uri
                .authority()
                .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok()),
        };
        let uri = self
            .inner
            .upstream
            .join(path_and_query.as_str())
            .map_err(|_| "invalid request target")?;
        let peer = parts.extensions.get::<PeerAddr>().map(|peer| peer.0.ip());
        let tls = parts.extensions.get::<crate::tls::ClientTls>().is_some();
        // gRPC needs `TE: trailers` upstream; other requests lose `TE` with the hop-by-hop headers.
        let trailers = grpc::is_grpc(&parts.headers) && headers::wants_trailers(&parts.headers);
        headers::remove_hop_by_hop(&mut parts.headers);
        if trailers {
            parts
                .headers
                .insert(http::header::TE, HeaderValue::from_static("trailers"));
        }
        headers::add_forwarded(&mut parts.headers, peer, host.as_ref(), tls);
        match host {
            Some(host) if self.inner.config.preserve_host => parts.headers.insert(HOST, host),
            _ => parts.headers.insert(HOST, self.inner.host.clone()),
        };
        parts.uri = uri;
        // The client decides the upstream's version (HTTP/1.1, or HTTP/2 by prior knowledge or
        // ALPN), whatever the client used; hyper takes HTTP/1.1 requests on both.
        parts.version = Version::HTTP_11;
        let body = body.map_err(Into::into).boxed_unsync();
        Ok(Request::from_parts(parts, body))
    }
}

impl<B> Service<Request<B>> for Proxy
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let timeout = if grpc::is_grpc(request.headers()) {
            // No deadline without grpc-timeout: tokio's timeout takes Duration::MAX as never.
            grpc::timeout(request.headers()).unwrap_or(Duration::MAX)
        } else {
            self.inner.config.timeout
        };
        // A request without a body can be given back to the balancer if the upstream fails
        // (fluxgate_balance::RetryableRequest): keep its parts as the client sent them.
        let (parts, body) = request.into_parts();
        let retry = http_body::Body::is_end_stream(&body).then(|| parts.clone());
        let request = Request::from_parts(parts, body);
        match self.prepare(request) {
            Ok(request) => ResponseFuture::forward(
                tokio::time::timeout(timeout, self.client().request(request)),
                self.inner.upstream.authority().clone(),
                timeout,
            )
            .with_retry(retry),
            Err(reason) => {
                tracing::debug!(reason, "refusing a request it cannot forward");
                ResponseFuture::ready(text_response(StatusCode::BAD_REQUEST, reason))
            }
        }
    }
}

/// A small `text/plain` response, `<status>: <detail>`, as the proxy answers its `400`, `502`
/// and `504`.
///
/// ```
/// let response = fluxgate_proxy::text_response(http::StatusCode::BAD_GATEWAY, "no upstream");
/// assert_eq!(response.status(), 502);
/// ```
#[must_use]
pub fn text_response(status: StatusCode, detail: &str) -> Response<ProxyBody> {
    let text = format!("{status}: {detail}\n");
    let body = http_body_util::Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
