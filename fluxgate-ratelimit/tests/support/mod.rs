//! Shared helpers: a no-op inner service and request builders.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fluxgate_core::key::PeerAddr;
use fluxgate_ratelimit::{RateLimit, RateLimitLayer};
use http::{Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};

pub(crate) type Inner = tower::util::BoxCloneSyncService<Request<()>, Response<String>, Infallible>;

/// An inner service counting its calls.
pub(crate) fn inner(calls: Arc<AtomicUsize>) -> Inner {
    Inner::new(service_fn(move |_req: Request<()>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new("ok".to_owned())) }
    }))
}

pub(crate) fn service(layer: &RateLimitLayer) -> (RateLimit<Inner>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    (layer.layer(inner(Arc::clone(&calls))), calls)
}

pub(crate) fn from(peer: &str) -> Request<()> {
    let mut request = Request::new(());
    request
        .extensions_mut()
        .insert(PeerAddr(peer.parse().unwrap()));
    request
}

pub(crate) fn with_header(peer: &str, name: &str, value: &[u8]) -> Request<()> {
    let mut request = from(peer);
    request.headers_mut().append(
        http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
        http::HeaderValue::from_bytes(value).unwrap(),
    );
    request
}

pub(crate) async fn send(service: &mut RateLimit<Inner>, request: Request<()>) -> Response<String> {
    service.ready().await.unwrap().call(request).await.unwrap()
}

pub(crate) async fn status(service: &mut RateLimit<Inner>, request: Request<()>) -> u16 {
    send(service, request).await.status().as_u16()
}
