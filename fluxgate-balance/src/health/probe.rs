//! Built-in probes over the caller's HTTP client: HTTP `GET path` and the gRPC health protocol.

use std::fmt;
use std::future::poll_fn;
use std::marker::PhantomData;

use bytes::{Buf, Bytes};
use fluxgate_core::policy::HealthCheck;
use http::{Method, Request, Response, header};
use http_body::Body;
use http_body_util::BodyExt;
use tower_service::Service;

use super::{Probe, ProbeFuture};

/// An HTTP health probe: `GET {key}{healthCheck.path}` through the caller's client; healthy when
/// the status is one of `healthCheck.expectedStatuses`.
///
/// The key is the endpoint's base URL (`http://10.0.0.7:8080`), so `K: AsRef<str>`. The client
/// is any `Service<http::Request<B>>` with a default body, such as a hyper-util client.
///
/// ```
/// use fluxgate_balance::health::HttpProbe;
///
/// let client = tower::service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// });
/// let _probe: HttpProbe<_, ()> = HttpProbe::new(client);
/// ```
pub struct HttpProbe<C, B> {
    client: C,
    _body: PhantomData<fn() -> B>,
}

impl<C, B> HttpProbe<C, B> {
    /// A probe sending its requests, with body `B`, through `client`.
    pub fn new(client: C) -> Self {
        Self {
            client,
            _body: PhantomData,
        }
    }
}

impl<C: Clone, B> Clone for HttpProbe<C, B> {
    fn clone(&self) -> Self {
        Self::new(self.client.clone())
    }
}

impl<C: fmt::Debug, B> fmt::Debug for HttpProbe<C, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpProbe")
            .field("client", &self.client)
            .finish()
    }
}

impl<K, C, B, RB> Probe<K> for HttpProbe<C, B>
where
    K: AsRef<str>,
    C: Service<Request<B>, Response = Response<RB>> + Clone + Send + Sync + 'static,
    C::Future: Send,
    B: Default + Send + 'static,
{
    fn probe(&self, key: &K, check: &HealthCheck) -> ProbeFuture {
        let uri = format!("{}{}", key.as_ref().trim_end_matches('/'), check.path);
        let request = Request::get(uri).body(B::default());
        let expected = check.expected_statuses.clone();
        let mut client = self.client.clone();
        Box::pin(async move {
            let Ok(request) = request else {
                return false;
            };
            if poll_fn(|cx| client.poll_ready(cx)).await.is_err() {
                return false;
            }
            match client.call(request).await {
                Ok(response) => expected.contains(&response.status().as_u16()),
                Err(_) => false,
            }
        })
    }
}

/// A gRPC health probe: `grpc.health.v1.Health/Check` through the caller's HTTP/2 client;
/// healthy when the answer is `SERVING`.
///
/// The key is the endpoint's base URL (`http://10.0.0.7:50051`). The client must speak HTTP/2
/// (for hyper-util, a client built with `http2_only(true)`); its request body must be buildable
/// from [`Bytes`] (`http_body_util::Full<Bytes>`, for instance).
///
/// ```
/// use fluxgate_balance::health::GrpcProbe;
///
/// let client = tower::service_fn(|_req: http::Request<http_body_util::Full<bytes::Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// });
/// let _probe: GrpcProbe<_, http_body_util::Full<bytes::Bytes>> =
///     GrpcProbe::new(client).service("my.package.MyService");
/// ```
pub struct GrpcProbe<C, B> {
    client: C,
    request: Bytes,
    _body: PhantomData<fn() -> B>,
}

impl<C: Clone, B> Clone for GrpcProbe<C, B> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            request: self.request.clone(),
            _body: PhantomData,
        }
    }
}

impl<C: fmt::Debug, B> fmt::Debug for GrpcProbe<C, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcProbe")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl<C, B> GrpcProbe<C, B> {
    /// A probe of the server's overall health (the empty service name) through `client`.
    pub fn new(client: C) -> Self {
        Self {
            client,
            request: frame(""),
            _body: PhantomData,
        }
    }

    /// Probes the health of the named service instead.
    #[must_use]
    pub fn service(mut self, name: &str) -> Self {
        self.request = frame(name);
        self
    }
}

/// A length-prefixed gRPC message holding `HealthCheckRequest { service: name }`.
fn frame(name: &str) -> Bytes {
    let mut message = Vec::with_capacity(name.len() + 8);
    if !name.is_empty() {
        message.push(0x0A); // field 1, length-delimited
        let mut len = name.len();
        while len >= 0x80 {
            message.push((len as u8) | 0x80);
            len >>= 7;
        }
        message.push(len as u8);
        message.extend_from_slice(name.as_bytes());
    }
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap_or(0).to_be_bytes());
    framed.extend_from_slice(&message);
    Bytes::from(framed)
}

/// Whether a `HealthCheckResponse` message (after the 5-byte prefix) says `SERVING` (1).
fn is_serving(mut data: Bytes) -> bool {
    if data.len() < 5 {
        return false;
    }
    data.advance(5);
    // Field 1 (status) is the only field; tag 0x08 then a varint.
    let bytes = data.as_ref();
    bytes.first() == Some(&0x08) && bytes.get(1) == Some(&1)
}

impl<K, C, B, RB> Probe<K> for GrpcProbe<C, B>
where
    K: AsRef<str>,
    C: Service<Request<B>, Response = Response<RB>> + Clone + Send + Sync + 'static,
    C::Future: Send,
    B: From<Bytes> + Send + 'static,
    RB: Body + Send + 'static,
    RB::Data: Send,
{
    fn probe(&self, key: &K, _check: &HealthCheck) -> ProbeFuture {
        let uri = format!(
            "{}/grpc.health.v1.Health/Check",
            key.as_ref().trim_end_matches('/')
        );
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers")
            .body(B::from(self.request.clone()));
        let mut client = self.client.clone();
        Box::pin(async move {
            let Ok(request) = request else {
                return false;
            };
            if poll_fn(|cx| client.poll_ready(cx)).await.is_err() {
                return false;
            }
            let Ok(response) = client.call(request).await else {
                return false;
            };
            if grpc_failed(response.headers()) {
                return false;
            }
            let Ok(collected) = response.into_body().collect().await else {
                return false;
            };
            if collected.trailers().is_some_and(grpc_failed) {
                return false;
            }
            is_serving(collected.to_bytes())
        })
    }
}

fn grpc_failed(headers: &http::HeaderMap) -> bool {
    headers
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() != b"0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_requests_and_reads_answers() {
        assert_eq!(frame("").as_ref(), &[0, 0, 0, 0, 0]);
        assert_eq!(frame("ab").as_ref(), &[0, 0, 0, 0, 4, 0x0A, 2, b'a', b'b']);
        assert!(is_serving(Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 1])));
        assert!(!is_serving(Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 2])));
        assert!(!is_serving(Bytes::from_static(&[0, 0, 0, 0, 0])));
    }
}
