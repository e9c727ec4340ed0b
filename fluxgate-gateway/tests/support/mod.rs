//! Shared helpers of the integration tests: real servers and a real client on loopback.
#![allow(dead_code, unreachable_pub)]

use fluxgate_gateway::server::RequestBody;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use fluxgate_gateway::proxy::{Proxy, ProxyBody, ProxyClient, ProxyConfig, proxy_client};
use fluxgate_gateway::server::{ServerConfig, ServerHandle, spawn};
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::sync::mpsc;
use tower::Service;

pub mod gateway;

/// Every await of a test is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test after [`LIMIT`].
pub async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("the test step took too long")
}

/// Loopback, any free port.
pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Starts a server for `service` on a loopback ephemeral port.
pub async fn serve<S, B>(service: S) -> ServerHandle
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    spawn(loopback(), service, ServerConfig::default())
        .await
        .unwrap()
}

/// Starts a proxy to `upstream` (a base URL) and returns its server.
pub async fn proxy_to(upstream: &str, config: ProxyConfig) -> ServerHandle {
    let proxy = Proxy::new(proxy_client(), upstream.parse().unwrap(), config);
    serve(proxy).await
}

/// A client for the tests (the same pooled client type the proxy uses).
pub fn client() -> ProxyClient {
    proxy_client()
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body fed chunk by chunk through the returned sender; it ends when the sender is dropped.
pub fn channel_body() -> (mpsc::Sender<Bytes>, ProxyBody) {
    let (sender, mut receiver) = mpsc::channel::<Bytes>(4);
    let stream = futures::stream::poll_fn(move |cx| {
        receiver
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok::<_, Infallible>(Frame::data(chunk))))
    });
    let body = StreamBody::new(stream)
        .map_err(|never| match never {})
        .boxed_unsync();
    (sender, body)
}

/// Reads the whole body of `response` as text.
pub async fn text(response: Response<Incoming>) -> String {
    let bytes = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// An upstream that answers every request with a description of it:
/// `METHOD URI\n`, one `name: value\n` line per header, a blank line, then the request body.
pub async fn echo_upstream() -> ServerHandle {
    serve(tower::service_fn(
        |request: Request<RequestBody>| async move {
            let mut text = format!("{} {}\n", request.method(), request.uri());
            for (name, value) in request.headers() {
                text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
            }
            text.push('\n');
            let body = request.into_body().collect().await?.to_bytes();
            let mut response = Response::new(full([Bytes::from(text), body].concat()));
            response
                .headers_mut()
                .insert("x-upstream", "echo".parse().unwrap());
            Ok::<_, hyper::Error>(response)
        },
    ))
    .await
}

/// The header lines of an echo answer, lower-cased names, in order.
pub fn echoed_headers(echo: &str) -> Vec<(String, String)> {
    echo.lines()
        .skip(1)
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// The value of header `name` in an echo answer.
pub fn echoed(echo: &str, name: &str) -> Option<String> {
    echoed_headers(echo)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value)
}
