//! [`Proxy`]: the forwarding service.

use std::any::Any;
use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use fluxgate_balance::RetryableRequest;
use http::header::{HOST, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Extensions, Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use tower_service::Service;

use crate::clients::{ProxyClient, proxy_client};
use crate::future::{GiveBack, PooledSend, ResponseFuture};
use crate::h1::whole::Taken;
use crate::h1::{self, Outgoing, request::Target};
use crate::headers::{self, Hop};
use crate::pool::Http1Pool;
use crate::upstream::Upstream;
use crate::{BoxError, ProxyBody, ProxyConfig, grpc, text_response};

/// A reverse proxy to one [`Upstream`]; see the [crate docs](crate).
///
/// Always ready: the pooled client opens connections on demand, so this service gives no
/// backpressure of its own. A clone costs one reference count.
///
/// ```
/// use fluxgate_proxy::{Proxy, ProxyConfig, proxy_client};
///
/// let upstream = "http://127.0.0.1:3000/api".parse().unwrap();
/// let proxy = Proxy::new(proxy_client(), upstream, ProxyConfig::default());
/// assert_eq!(proxy.upstream().path_prefix(), "/api");
/// ```
#[derive(Debug, Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The client of threads outside the serving workers, then each worker's.
    clients: Box<[ProxyClient]>,
    /// With [`ProxyConfig::http1_pool`] and a plain `http://` upstream: the proxy's own
    /// connections, one pool per entry of `clients`.
    pools: Box<[Arc<Http1Pool>]>,
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
    /// ([`ProxyClients::each_for_upstream`](crate::ProxyClients::each_for_upstream) gives such a
    /// list). An empty list is one default client.
    ///
    /// ```
    /// use fluxgate_proxy::{Proxy, ProxyClients, ProxyConfig, UpstreamSpec};
    ///
    /// let spec: UpstreamSpec = "http://127.0.0.1:3000".parse().unwrap();
    /// let clients = ProxyClients::system().workers(2).each_for_upstream(&spec);
    /// let _proxy = Proxy::per_worker(clients, spec.upstream, ProxyConfig::default());
    /// ```
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
        let pools = if config.http1_pool && !upstream.is_tls() {
            let authority = upstream.authority();
            clients
                .iter()
                .map(|_| Http1Pool::new(authority.clone()))
                .collect()
        } else {
            Box::default()
        };
        Self {
            inner: Arc::new(Inner {
                clients: clients.into_boxed_slice(),
                pools,
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

    /// How this proxy forwards.
    #[must_use]
    pub fn config(&self) -> &ProxyConfig {
        &self.inner.config
    }

    /// The own connection pool of the current thread's serving worker, if the proxy uses them.
    fn pool(&self) -> Option<&Arc<Http1Pool>> {
        let pools = &self.inner.pools;
        let worker = crate::worker::worker_index();
        pools.get(worker).or_else(|| pools.first())
    }

    /// The client of the current thread's serving worker.
    fn client(&self) -> &ProxyClient {
        let clients = &self.inner.clients;
        let worker = crate::worker::worker_index();
        clients.get(worker).unwrap_or(&clients[0])
    }

    /// Checks that a request with this head can be forwarded, or says why not; gives its path
    /// and query and the `Host` it asked for (its `Host` header, else its URI's authority).
    fn check(
        parts: &http::request::Parts,
    ) -> Result<(&PathAndQuery, Option<Cow<'_, HeaderValue>>), &'static str> {
        if parts.method == Method::CONNECT {
            return Err("CONNECT is not supported");
        }
        let Some(path_and_query) = parts.uri.path_and_query() else {
            return Err("the request target has no path");
        };
        let host = match parts.headers.get(HOST) {
            Some(host) => {
                if !fluxgate_core::host::is_host(host.as_bytes()) {
                    return Err("invalid Host header");
                }
                Some(Cow::Borrowed(host))
            }
            None => parts
                .uri
                .authority()
                .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
                .map(Cow::Owned),
        };
        Ok((path_and_query, host))
    }

    /// This hop, for a client request with `extensions` that asked for `host`.
    fn hop<'a>(extensions: &Extensions, host: Option<&'a HeaderValue>) -> Hop<'a> {
        Hop {
            // An IPv4 client of a dual-stack listener is `::ffff:a.b.c.d`: write `a.b.c.d`.
            peer: fluxgate_core::key::peer_addr(extensions).map(|peer| peer.ip().to_canonical()),
            host,
            tls: extensions.get::<crate::tls::ClientTls>().is_some(),
        }
    }

    /// The `Host` sent upstream for a client that asked for `host`.
    fn upstream_host<'a>(&'a self, host: Option<&'a HeaderValue>) -> &'a HeaderValue {
        match host {
            Some(host) if self.inner.config.preserve_host => host,
            _ => &self.inner.host,
        }
    }

    /// Rewrites a client request into the upstream request, or says why it cannot be forwarded.
    /// `extensions` are the client request's (they say who the client is); `parts` has none.
    fn prepare(
        &self,
        mut parts: http::request::Parts,
        extensions: &Extensions,
        body: ProxyBody,
    ) -> Result<Request<ProxyBody>, &'static str> {
        let (path_and_query, host) = Self::check(&parts)?;
        let upstream = &self.inner.upstream;
        let uri = if self.inner.pools.is_empty() {
            upstream.join_path(path_and_query)
        } else {
            // The proxy's own HTTP/1.1 connections take the request target in origin form.
            upstream.origin_form(path_and_query)
        };
        let uri = uri.map_err(|_| "invalid request target")?;
        // The client's map is changed below: the `Host` it asked for is kept apart.
        let host = host.map(Cow::into_owned);
        let hop = Self::hop(extensions, host.as_ref());
        // gRPC needs `TE: trailers` upstream; other requests lose `TE` with the hop-by-hop headers.
        let trailers = grpc::is_grpc(&parts.headers) && headers::wants_trailers(&parts.headers);
        headers::remove_hop_by_hop(&mut parts.headers);
        if trailers {
            parts
                .headers
                .insert(http::header::TE, HeaderValue::from_static("trailers"));
        }
        headers::add_x_forwarded(&mut parts.headers, &hop);
        if self.inner.config.forwarded {
            headers::append_forwarded(&mut parts.headers, &hop);
        }
        let host = self.upstream_host(host.as_ref()).clone();
        parts.headers.insert(HOST, host);
        parts.uri = uri;
        // The client decides the upstream's version (HTTP/1.1, or HTTP/2 by prior knowledge or
        // ALPN), whatever the client used; hyper takes HTTP/1.1 requests on both.
        parts.version = Version::HTTP_11;
        Ok(Request::from_parts(parts, body))
    }

    /// The upstream head of a request for the own exchange, with its whole `body` (empty: none)
    /// behind it: the rewrite of [`prepare`](Self::prepare), written from the client's head
    /// without changing it. `grpc`: whether the request is gRPC ([`grpc::is_grpc`], already asked
    /// by the caller).
    fn outgoing(
        &self,
        parts: &http::request::Parts,
        grpc: bool,
        body: &[u8],
    ) -> Result<Outgoing, &'static str> {
        let (path_and_query, host) = Self::check(parts)?;
        let target = Target {
            method: &parts.method,
            prefix: self.inner.upstream.path_prefix(),
            path_and_query,
            host: self.upstream_host(host.as_deref()),
            hop: Self::hop(&parts.extensions, host.as_deref()),
            forwarded: self.inner.config.forwarded,
            trailers: grpc && headers::wants_trailers(&parts.headers),
        };
        Ok(Outgoing::new(&target, &parts.headers, body))
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
        let grpc = grpc::is_grpc(request.headers());
        let timeout = if grpc {
            // No deadline without grpc-timeout: tokio's timeout takes Duration::MAX as never.
            grpc::timeout(request.headers()).unwrap_or(Duration::MAX)
        } else {
            self.inner.config.timeout
        };
        // A request without a body can be given back to the balancer if the upstream fails
        // (fluxgate_balance::RetryableRequest): keep it as the client sent it, in its own type
        // (what a `Retry` around the balancer takes back). The own exchange writes the upstream
        // head from it; hyper's clients get a copy of its head with an empty body. The copy has
        // no extensions: they stay with the request given back (hyper's client reads none that a
        // proxied request carries), rather than being cloned.
        let (mut parts, body) = request.into_parts();
        let bodiless = http_body::Body::is_end_stream(&body);
        if bodiless
            && let Some(pool) = self.pool()
            && h1::head::carries(&parts.method, &parts.headers)
        {
            let pool = Arc::clone(pool);
            let authority = self.inner.upstream.authority().clone();
            return match self.outgoing(&parts, grpc, &[]) {
                Ok(outgoing) => {
                    let send: PooledSend = Box::pin(pool.exchange(outgoing, timeout));
                    let request = Request::from_parts(parts, body);
                    ResponseFuture::exchange(send, authority, timeout)
                        .with_retry(Some(give_back(request)))
                }
                Err(reason) => refuse(reason),
            };
        }
        let prepared = if bodiless {
            let head = head_without_extensions(&parts);
            self.prepare(head, &parts.extensions, ProxyBody::default())
                .map(|upstream| (upstream, Some(give_back(Request::from_parts(parts, body)))))
        } else {
            let mut body = into_proxy_body(body);
            // A small body already in memory goes up with its head on the own exchange.
            if let Some(pool) = self.pool()
                && let Some(length) =
                    h1::whole::length(&parts.method, &parts.headers, &body.size_hint())
            {
                match h1::whole::take(body, length) {
                    Taken::Whole(bytes) => {
                        let pool = Arc::clone(pool);
                        let authority = self.inner.upstream.authority().clone();
                        return match self.outgoing(&parts, grpc, &bytes) {
                            Ok(outgoing) => {
                                let send: PooledSend = Box::pin(pool.exchange(outgoing, timeout));
                                let request = Request::from_parts(parts, bytes);
                                ResponseFuture::exchange(send, authority, timeout)
                                    .with_retry(Some(give_back_whole(request)))
                            }
                            Err(reason) => refuse(reason),
                        };
                    }
                    Taken::Rest(rest) => body = rest,
                }
            }
            let extensions = std::mem::take(&mut parts.extensions);
            self.prepare(parts, &extensions, body).map(|mut upstream| {
                *upstream.extensions_mut() = extensions;
                (upstream, None)
            })
        };
        let authority = self.inner.upstream.authority().clone();
        match prepared {
            Ok((request, retry)) => match self.pool() {
                Some(pool) => {
                    let send: PooledSend = Box::pin(Arc::clone(pool).send(request));
                    ResponseFuture::pooled(tokio::time::timeout(timeout, send), authority, timeout)
                        .with_retry(retry)
                }
                None => ResponseFuture::forward(
                    tokio::time::timeout(timeout, self.client().request(request)),
                    authority,
                    timeout,
                )
                .with_retry(retry),
            },
            Err(reason) => refuse(reason),
        }
    }
}

/// The `400` of a request the proxy cannot forward.
fn refuse(reason: &'static str) -> ResponseFuture {
    tracing::debug!(reason, "refusing a request it cannot forward");
    ResponseFuture::ready(text_response(StatusCode::BAD_REQUEST, reason))
}

/// Gives `request` (without a body) back to the balancer when the upstream fails, as it came:
/// sent (`true`) or not.
fn give_back<B: Send + 'static>(request: Request<B>) -> GiveBack {
    Box::new(move |sent| retryable(sent, request))
}

/// `request` as a [`RetryableRequest`], sent or not.
fn retryable<R: Send + 'static>(sent: bool, request: R) -> RetryableRequest {
    if sent {
        RetryableRequest::sent(request)
    } else {
        RetryableRequest::not_sent(request)
    }
}

/// Gives a request whose whole body went up on the own exchange back to the balancer when the
/// upstream fails, as a `Request<ProxyBody>` of the same bytes (what the gateway's balancer
/// takes), so that a `Retry` can send a `POST` whose connection was refused to another endpoint.
/// The body is boxed only then, not per request.
fn give_back_whole(request: Request<Bytes>) -> GiveBack {
    Box::new(move |sent| {
        let request = request.map(|bytes| {
            Full::new(bytes)
                .map_err(|never| -> BoxError { match never {} })
                .boxed_unsync()
        });
        retryable(sent, request)
    })
}

/// A copy of the request head `parts` without its extensions, its header map made with room
/// for the headers the proxy adds (a clone would be as full as the client's, and grow again).
fn head_without_extensions(parts: &http::request::Parts) -> http::request::Parts {
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + headers::ADDED);
    // Every value of a name, in order.
    for (name, value) in &parts.headers {
        headers.append(name.clone(), value.clone());
    }
    let mut head = Request::new(());
    *head.method_mut() = parts.method.clone();
    *head.uri_mut() = parts.uri.clone();
    *head.version_mut() = parts.version;
    *head.headers_mut() = headers;
    head.into_parts().0
}

/// The body as a [`ProxyBody`]: as it is when it already is one (a gateway that boxed it), else
/// boxed once.
fn into_proxy_body<B>(body: B) -> ProxyBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut slot = Some(body);
    let already = (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<ProxyBody>>()
        .and_then(Option::take);
    match (already, slot) {
        (Some(body), _) => body,
        (None, Some(body)) => body.map_err(Into::into).boxed_unsync(),
        (None, None) => ProxyBody::default(),
    }
}
