//! A streaming HTTP reverse proxy to one upstream, as a tower [`Service`](tower_service::Service):
//! the forwarding service behind a balancer, in an axum app or any hyper server.
//!
//! [`Proxy`] forwards each request to its [`Upstream`] over a shared, pooled hyper-util
//! [`Client`](hyper_util::client::legacy::Client) and streams both bodies (trailers included)
//! through without buffering them. Use one `Proxy` per upstream endpoint and put a selector in
//! front (FluxGate's [`Balance`](fluxgate_balance::Balance): a `Proxy` never fails its call, and
//! its `502` gives a bodiless request back for the balancer's retry on another endpoint, and a
//! small one whose body was in memory). The
//! client decides the protocol: [`ProxyClients::for_upstream`] gives the one an
//! [`UpstreamSpec`] asks for (HTTP/1.1, h2c, or TLS with ALPN).
//!
//! With [`ProxyConfig::http1_pool`], a plain `http://` upstream that speaks HTTP/1.1 is reached
//! over the proxy's own connections instead, in one small pool per upstream (and per serving
//! worker), with none of the pooled client's per-request work for serving any host (hashing and
//! comparing the pool key, a boxed connect-or-checkout race). A request without a body (`GET`,
//! `HEAD`, `DELETE`, ...) is exchanged by the proxy itself on the caller's task: its head is
//! written with one `write`, the response head is parsed with `httparse` (at most 64 KiB and 100
//! header lines; interim `1xx` heads skipped), and the response body is read from the same socket
//! as it is framed (`Content-Length`, chunked with its trailers, or until the upstream closes; RFC
//! 9112 section 6.3), with no task and no channel between the caller and the connection. So is a
//! request whose `Content-Length` body of at most 64 KiB is all in memory already (its first
//! frame ready and whole, as a `Full` body or the gateway's small `POST`), written behind its head.
//! A request whose body is still on its way goes over hyper's HTTP/1 client connections. In the
//! `fluxgate` gateway the pool takes about 8,000 instructions off each proxied request, and the
//! own exchange about 12,000 more (`benches/e2e/PROFILE.md`); the gateway turns it on for its
//! HTTP/1.1 upstreams.
//! Connections are reused most recently used first, closed after 90 seconds idle, when a response
//! body is dropped before its end, when the upstream says `Connection: close` (or answers in
//! HTTP/1.0 without keep-alive, or without a length), and when bytes follow a response's end; a
//! request that a reused connection could not take (the upstream had closed it) is sent again on
//! another. A malformed response is an [`Http1Error`]: a `502` before the response head, the
//! body's error after it.
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
//! - the client's IP is appended to `X-Forwarded-For`; `X-Forwarded-Proto` (`http`, or `https`
//!   with the [`ClientTls`] extension) and `X-Forwarded-Host` are set when absent;
//! - with [`ProxyConfig::forwarded`] (off by default), a `for=…;proto=…;host=…` element is
//!   appended to the RFC 7239 `Forwarded` header as well (`X-Forwarded-For` is still written).
//!
//! The client's address comes from the request's extensions
//! ([`fluxgate_core::key::peer_addr`]): the [`PeerAddr`](fluxgate_core::key::PeerAddr) a hyper
//! accept loop inserts, else axum's `ConnectInfo<SocketAddr>` (feature `axum`: serve with
//! `into_make_service_with_connect_info::<SocketAddr>()`), else a tonic server's
//! `TcpConnectInfo` (feature `tonic`). Without any of them, `X-Forwarded-For` is left as the
//! client sent it and a `Forwarded` element says `for=unknown`.
//!
//! gRPC requests (`content-type: application/grpc*`) are not bound by [`ProxyConfig::timeout`]:
//! a call lasts as long as its client wants (a stream may wait long for its first message).
//! A `grpc-timeout` header is their deadline for the response headers instead (and goes on
//! upstream, so that the upstream enforces it on the rest of the call).
//!
//! What it answers itself, never failing the `Service` call (`Error = Infallible`, so it needs
//! no `HandleErrorLayer` in axum):
//! - `400 Bad Request` for a request it cannot forward: `CONNECT`, a target without a path, a
//!   `Host` that is not a valid authority;
//! - `502 Bad Gateway` when the upstream refuses the connection (nothing listening), or closes or
//!   resets it before sending response headers; a request without a body is given back with it,
//!   as it came (a `Request<B>` of the caller's body type), in a
//!   [`RetryableRequest`](fluxgate_balance::RetryableRequest) in the response's extensions
//!   (marked not sent when the connection was refused), for a
//!   [`Retry`](fluxgate_balance::Retry) around the balancer to send it to another endpoint; so
//!   is a request whose small body went up whole on the own exchange, as a
//!   `Request<ProxyBody>` of the same bytes (what the gateway's balancer takes);
//! - `504 Gateway Timeout` when no response headers arrived within [`ProxyConfig::timeout`]
//!   (15 seconds by default, connecting and the TLS handshake included; the TCP connect alone is
//!   also bounded by 10 seconds), or within the `grpc-timeout` of a gRPC request.
//!
//! Once the response headers have been passed on, an upstream error can no longer become a
//! status: the response body ends with that error, which makes hyper's server abort the
//! response (HTTP/1.1 closes the connection before the final chunk, HTTP/2 resets the stream), so
//! the client sees a truncated response rather than a complete one. The body is not bound by the
//! timeout: a long download or a slow stream goes on as long as the upstream sends.
//!
//! For thread-per-core serving, [`Proxy::per_worker`] keeps one client (one connection pool)
//! per serving worker, picked with [`worker::worker_index`], which the server sets on each of
//! its threads with [`worker::set_worker_index`].
//!
//! # Example
//!
//! ```no_run
//! use fluxgate_proxy::{Proxy, ProxyConfig, proxy_client};
//! use std::time::Duration;
//!
//! let client = proxy_client();
//! let upstream = "http://127.0.0.1:3000".parse().unwrap();
//! let config = ProxyConfig::default().timeout(Duration::from_secs(5)).forwarded(true);
//! let proxy = Proxy::new(client, upstream, config);
//! # let _ = proxy;
//! ```
//!
//! Behind a balancer in an axum app: see the `fluxgate` README's "A gateway on axum".
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod clients;
mod config;
mod future;
pub mod grpc;
mod h1;
mod headers;
mod pool;
mod service;
pub mod tls;
pub mod upstream;
pub mod worker;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

pub use self::clients::{ProxyClient, ProxyClients, proxy_client};
pub use self::config::ProxyConfig;
pub use self::future::ResponseFuture;
pub use self::h1::Http1Error;
#[doc(hidden)]
pub use self::h1::read_response as __read_upstream_response;
pub use self::service::Proxy;
pub use self::tls::ClientTls;
pub use self::upstream::{Upstream, UpstreamSpec};

/// The boxed error type, [`fluxgate_core::BoxError`] (the same type as `tower::BoxError`).
pub use fluxgate_core::BoxError;

/// The body type of proxied requests and of every response of the proxy.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

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
