//! gRPC through the gateway: tonic servers behind `protocol=grpc` upstreams and a tonic client
//! (unary, server streaming, statuses, health checks, refusals), plus raw HTTP/2 gRPC framing
//! for what tonic-health cannot show (bidirectional streaming, trailers, deadlines).

mod support;

use fluxgate_gateway::server::RequestBody;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use fluxgate_core::store::PolicyStore;
use fluxgate_gateway::proxy::{ProxyBody, ProxyClient, ProxyClients, ProxyConfig};
use fluxgate_gateway::server::ServerHandle;
use fluxgate_gateway::stack::{Gateway, StackConfig};
use fluxgate_gateway::upstream::{Protocol, UpstreamSpec};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::{channel_body, serve, within};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::server::HealthReporter;

/// Health checks every 100ms, one failure takes an endpoint out; an HTTP probe by default (a
/// tonic server has no `/healthz`: only the gRPC probe of `protocol=grpc` keeps it in).
const POLICY: &str = r"
apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: grpc, namespace: test}
spec:
  loadBalancing:
    algorithm: round-robin
    healthCheck: {interval: 100ms, unhealthyThreshold: 1, healthyThreshold: 1}
  rateLimit: {requestsPerSecond: 1, burstSize: 100, keyExtractor: header.x-client-id}
  canary:
    weight: 0
    interval: 200ms
    match: [{header: {name: x-canary, value: 'true'}}]
    metrics: {targetErrorRate: 0.5}
";

/// A tonic-health server on loopback and the reporter that sets its status.
struct TonicServer {
    url: String,
    reporter: HealthReporter,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TonicServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tonic_server() -> TonicServer {
    let (reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = Server::builder()
        .add_service(health)
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    let task = tokio::spawn(async move {
        let _ = server.await;
    });
    TonicServer {
        url,
        reporter,
        task,
    }
}

/// A gateway over `stable` (and `canary`) upstreams, served on loopback.
struct Running {
    gateway: Gateway,
    proxy: ServerHandle,
}

impl Running {
    async fn start(stable: Vec<UpstreamSpec>, canary: Vec<UpstreamSpec>) -> Self {
        let store = PolicyStore::new();
        let report = store.apply_bytes(POLICY.as_bytes(), None).unwrap();
        let id = report.changes[0].id().clone();
        // A short upstream timeout: gRPC calls must not be bound by it.
        let proxy = ProxyConfig::default().timeout(Duration::from_millis(300));
        let config = StackConfig::new(stable)
            .canary_upstreams(canary)
            .proxy(proxy);
        let gateway = Gateway::build(&store, &id, &config).unwrap();
        let proxy = serve(gateway.service()).await;
        Self { gateway, proxy }
    }

    fn url(&self) -> String {
        format!("http://{}", self.proxy.local_addr())
    }

    async fn channel(&self) -> Channel {
        let endpoint = Endpoint::from_shared(self.url()).unwrap();
        within(endpoint.connect()).await.unwrap()
    }
}

fn grpc_spec(url: &str) -> UpstreamSpec {
    format!("{url},protocol=grpc").parse().unwrap()
}

fn check(service: &str) -> tonic::Request<HealthCheckRequest> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    request
        .metadata_mut()
        .insert("x-client-id", "tests".parse().unwrap());
    request
}

#[tokio::test]
async fn unary_and_server_streaming_calls_pass_with_their_status() {
    let server = tonic_server().await;
    let gw = Running::start(vec![grpc_spec(&server.url)], Vec::new()).await;
    // Several rounds of gRPC health checks: the endpoint stays in (an HTTP probe would fail).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut client = HealthClient::new(gw.channel().await);

    let serving = within(client.check(check(""))).await.unwrap();
    assert_eq!(serving.get_ref().status, ServingStatus::Serving as i32);
    let missing = within(client.check(check("no.such.Service")))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");

    // Server streaming: the first status at once, the next one when it changes, well after the
    // gateway's 300ms upstream timeout.
    server
        .reporter
        .set_service_status("shop.Orders", ServingStatus::Serving)
        .await;
    let mut watch = within(client.watch(check("shop.Orders")))
        .await
        .unwrap()
        .into_inner();
    let first = within(watch.message()).await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    tokio::time::sleep(Duration::from_millis(700)).await;
    server
        .reporter
        .set_service_status("shop.Orders", ServingStatus::NotServing)
        .await;
    let second = within(watch.message()).await.unwrap().unwrap();
    assert_eq!(second.status, ServingStatus::NotServing as i32);
}

#[tokio::test]
async fn grpc_health_checks_take_a_not_serving_server_out_and_refusals_are_grpc() {
    let server = tonic_server().await;
    let gw = Running::start(vec![grpc_spec(&server.url)], Vec::new()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut client = HealthClient::new(gw.channel().await);
    within(client.check(check(""))).await.unwrap();

    server
        .reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let status = within(async {
        loop {
            match client.check(check("")).await {
                Err(status) => break status,
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    // No healthy endpoint: the gateway's 503 as gRPC UNAVAILABLE.
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("503"), "{status:?}");

    // Over the rate limit (burst 100 at 1/s): RESOURCE_EXHAUSTED, not HTTP 429.
    server
        .reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let exhausted = within(async {
        loop {
            if let Err(status) = client.check(check("")).await
                && status.code() == tonic::Code::ResourceExhausted
            {
                break status;
            }
        }
    })
    .await;
    assert_eq!(exhausted.code(), tonic::Code::ResourceExhausted);
}

#[tokio::test]
async fn a_stopped_upstream_is_unavailable_not_http_502() {
    let server = tonic_server().await;
    let url = server.url.clone();
    let gw = Running::start(vec![grpc_spec(&url)], Vec::new()).await;
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut client = HealthClient::new(gw.channel().await);
    let status = within(client.check(check(""))).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
}

// ---- Raw HTTP/2 gRPC framing -------------------------------------------------------------

/// A gRPC message: the 5-byte prefix and `payload`.
fn message(payload: &[u8]) -> Bytes {
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(payload);
    Bytes::from(framed)
}

fn trailers(status: &str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", status.parse().unwrap());
    trailers.insert("x-trailer", "kept".parse().unwrap());
    trailers
}

type Frames = mpsc::Sender<Result<Frame<Bytes>, Infallible>>;

/// A gRPC response whose frames are sent through the returned sender.
fn streamed() -> (Frames, Response<ProxyBody>) {
    let (sender, mut receiver) = mpsc::channel(4);
    let stream = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let body = StreamBody::new(stream)
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    (sender, response)
}

/// A raw gRPC upstream (HTTP/2 prior knowledge): `/test.Echo/Bidi` echoes each message as it
/// arrives, then ends with trailers (`grpc-status: 0`, `x-trailer`); `/test.Slow/Call` answers
/// after `x-delay-ms`; `/test.Fail/Call` sends a message then `grpc-status: 13` in the trailers;
/// `grpc.health.v1.Health/Check` says `SERVING`.
async fn raw_upstream() -> ServerHandle {
    serve(tower::service_fn(
        |request: Request<RequestBody>| async move {
            let (frames, response) = streamed();
            let path = request.uri().path().to_owned();
            let delay = request
                .headers()
                .get("x-delay-ms")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .map_or(Duration::ZERO, Duration::from_millis);
            let mut body = request.into_body();
            match path.as_str() {
                "/test.Echo/Bidi" => {
                    tokio::spawn(async move {
                        while let Some(Ok(frame)) = body.frame().await {
                            if let Ok(data) = frame.into_data() {
                                let _ = frames.send(Ok(Frame::data(data))).await;
                            }
                        }
                        let _ = frames.send(Ok(Frame::trailers(trailers("0")))).await;
                    });
                }
                "/grpc.health.v1.Health/Check" => {
                    tokio::spawn(async move {
                        // HealthCheckResponse { status: SERVING }
                        let _ = frames.send(Ok(Frame::data(message(&[0x08, 1])))).await;
                        let _ = frames.send(Ok(Frame::trailers(trailers("0")))).await;
                    });
                }
                "/test.Fail/Call" => {
                    tokio::spawn(async move {
                        let _ = frames.send(Ok(Frame::data(message(b"partial")))).await;
                        let _ = frames.send(Ok(Frame::trailers(trailers("13")))).await;
                    });
                }
                _ => {
                    tokio::time::sleep(delay).await;
                    tokio::spawn(async move {
                        let _ = frames.send(Ok(Frame::data(message(b"late")))).await;
                        let _ = frames.send(Ok(Frame::trailers(trailers("0")))).await;
                    });
                }
            }
            Ok::<_, Infallible>(response)
        },
    ))
    .await
}

fn h2_client() -> ProxyClient {
    ProxyClients::system().for_protocol(Protocol::H2c).clone()
}

fn grpc_request(url: String, body: ProxyBody, headers: &[(&str, &str)]) -> Request<ProxyBody> {
    let mut request = Request::post(url)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body).unwrap()
}

#[tokio::test]
async fn bidirectional_streaming_passes_message_by_message_with_trailers() {
    let upstream = raw_upstream().await;
    let spec = grpc_spec(&format!("http://{}", upstream.local_addr()));
    let gw = Running::start(vec![spec], Vec::new()).await;
    let (sender, body) = channel_body();
    let request = grpc_request(format!("{}/test.Echo/Bidi", gw.url()), body, &[]);
    let response = within(h2_client().request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let mut body = response.into_body();
    // Each message comes back before the next one is sent: both directions stream.
    for payload in [&b"one"[..], b"two", b"three"] {
        sender.send(message(payload)).await.unwrap();
        let frame = within(body.frame()).await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), message(payload));
    }
    drop(sender);
    let frame = within(body.frame()).await.unwrap().unwrap();
    let trailers = frame.into_trailers().unwrap();
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-trailer"], "kept");
}

#[tokio::test]
async fn grpc_timeout_is_the_deadline_and_the_upstream_timeout_does_not_apply() {
    let upstream = raw_upstream().await;
    let spec = grpc_spec(&format!("http://{}", upstream.local_addr()));
    let gw = Running::start(vec![spec], Vec::new()).await;
    let url = format!("{}/test.Slow/Call", gw.url());

    // 600ms before the response headers, twice the gateway's upstream timeout: a gRPC call
    // without grpc-timeout waits for them.
    let slow = grpc_request(
        url.clone(),
        support::full(message(b"hi")),
        &[("x-delay-ms", "600")],
    );
    let response = within(h2_client().request(slow)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let collected = within(response.into_body().collect()).await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");

    // With grpc-timeout 100m: DEADLINE_EXCEEDED, trailers-only, HTTP 200.
    let headers = [("x-delay-ms", "2000"), ("grpc-timeout", "100m")];
    let late = grpc_request(url, support::full(message(b"hi")), &headers);
    let response = within(h2_client().request(late)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "4");
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert!(http_body::Body::is_end_stream(response.body()));
}

#[tokio::test]
async fn a_status_in_the_trailers_reaches_the_client_and_the_canary_and_balancer_count_it() {
    let stable = raw_upstream().await;
    let canary = raw_upstream().await;
    let stable = grpc_spec(&format!("http://{}", stable.local_addr()));
    let canary = grpc_spec(&format!("http://{}", canary.local_addr()));
    let gw = Running::start(vec![stable], vec![canary]).await;
    for _ in 0..10 {
        let request = grpc_request(
            format!("{}/test.Fail/Call", gw.url()),
            support::full(message(b"x")),
            &[("x-canary", "true"), ("x-client-id", "c")],
        );
        let response = within(h2_client().request(request)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let collected = within(response.into_body().collect()).await.unwrap();
        let trailers = collected.trailers().unwrap().clone();
        assert_eq!(trailers["grpc-status"], "13");
        assert_eq!(trailers["x-trailer"], "kept");
        assert_eq!(collected.to_bytes(), message(b"partial"));
    }
    // INTERNAL in the trailers is a failure of the canary side, in its analysis window (filled
    // as the window's buckets complete).
    let canary = gw.gateway.canary().unwrap();
    let snapshot = within(async {
        loop {
            let snapshot = canary.snapshot();
            if snapshot.canary.window_requests >= 10 {
                break snapshot;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(snapshot.canary.routed, 10);
    assert_eq!(snapshot.canary.error_rate, Some(1.0), "{snapshot:?}");
    // The canary side's balancer counts them as failures of its endpoint too.
    let endpoints = gw.gateway.canary_endpoints().unwrap().snapshot();
    assert_eq!(endpoints[0].totals.requests, 10, "{:?}", endpoints[0]);
    assert_eq!(endpoints[0].totals.failures, 10, "{:?}", endpoints[0]);
}
