//! TLS on both sides of the gateway, with a throwaway CA made by the openssl CLI: `https://`
//! upstreams verified with `--upstream-ca` (ALPN choosing HTTP/2 or HTTP/1.1), clients speaking
//! TLS to `--tls-cert/--tls-key` with ALPN `h2` or `http/1.1`, gRPC over both; and the flags.

mod support;

use fluxgate_gateway::server::RequestBody;
use std::convert::Infallible;
use std::process::Command;

use fluxgate_core::store::PolicyStore;
use fluxgate_gateway::proxy::{ProxyClient, ProxyClients};
use fluxgate_gateway::server::{ServerConfig, ServerHandle, spawn};
use fluxgate_gateway::stack::{Gateway, StackConfig};
use fluxgate_gateway::tls::TlsAcceptor;
use fluxgate_gateway::upstream::{Protocol, UpstreamSpec};
use fluxgate_test_support::TestCa;
use http::{Request, Response, StatusCode, Version};
use support::{echoed, full, loopback, text, within};

const POLICY: &str = r"
apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: tls, namespace: test}
spec:
  loadBalancing: {algorithm: round-robin}
";

fn acceptor(ca: &TestCa) -> TlsAcceptor {
    TlsAcceptor::from_files(&ca.server_cert(), &ca.server_key()).unwrap()
}

fn tls_config(ca: &TestCa) -> ServerConfig {
    let mut config = ServerConfig::default();
    config.tls = Some(acceptor(ca));
    config
}

/// An HTTPS upstream that answers the HTTP version it was spoken to in and the request's
/// headers (`name: value` lines).
async fn https_echo(ca: &TestCa) -> ServerHandle {
    let service = tower::service_fn(|request: Request<RequestBody>| async move {
        let mut text = format!("{:?}\n", request.version());
        for (name, value) in request.headers() {
            text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
        }
        Ok::<_, Infallible>(Response::new(full(text)))
    });
    spawn(loopback(), service, tls_config(ca)).await.unwrap()
}

/// A gateway over `upstream` with `clients`, listening as `server` says.
async fn gateway(
    upstream: &str,
    clients: ProxyClients,
    server: ServerConfig,
) -> (Gateway, ServerHandle) {
    let store = PolicyStore::new();
    let report = store.apply_bytes(POLICY.as_bytes(), None).unwrap();
    let id = report.changes[0].id().clone();
    let spec: UpstreamSpec = upstream.parse().unwrap();
    let config = StackConfig::new(vec![spec]).clients(clients);
    let gateway = Gateway::build(&store, &id, &config).unwrap();
    let handle = spawn(loopback(), gateway.service(), server).await.unwrap();
    (gateway, handle)
}

async fn get(client: &ProxyClient, url: &str) -> (StatusCode, Version, String) {
    let request = Request::get(url).body(full("")).unwrap();
    let response = within(client.request(request)).await.unwrap();
    let (status, version) = (response.status(), response.version());
    (status, version, text(response).await)
}

#[tokio::test]
async fn an_https_upstream_with_a_private_ca_gets_http2_by_alpn_or_http1_when_asked() {
    let ca = TestCa::generate().unwrap();
    let upstream = https_echo(&ca).await;
    let url = format!("https://{}", upstream.local_addr());
    let with_ca = || ProxyClients::with_ca(Some(&ca.ca_pem())).unwrap();
    let plain = support::client();

    let (_alpn, proxy) = gateway(&url, with_ca(), ServerConfig::default()).await;
    let (status, _, echo) = get(&plain, &format!("http://{}/a", proxy.local_addr())).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert!(echo.starts_with("HTTP/2.0\n"), "{echo}");
    assert_eq!(
        echoed_line(&echo, "x-forwarded-proto").as_deref(),
        Some("http")
    );

    let http1 = format!("{url},protocol=http1");
    let (_http1, proxy) = gateway(&http1, with_ca(), ServerConfig::default()).await;
    let (status, _, echo) = get(&plain, &format!("http://{}/a", proxy.local_addr())).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert!(echo.starts_with("HTTP/1.1\n"), "{echo}");

    // The system's roots do not know the private CA: the handshake fails, 502.
    let (_system, proxy) = gateway(&url, ProxyClients::system(), ServerConfig::default()).await;
    let (status, _, _) = get(&plain, &format!("http://{}/a", proxy.local_addr())).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

/// The value of `name` in an echo of [`https_echo`] (first line is the version).
fn echoed_line(echo: &str, name: &str) -> Option<String> {
    let rest = echo.split_once('\n')?.1;
    echoed(&format!("x\n{rest}"), name)
}

#[tokio::test]
async fn tls_clients_get_http2_or_http1_as_their_alpn_asks() {
    let ca = TestCa::generate().unwrap();
    let upstream = support::echo_upstream().await;
    let url = format!("http://{}", upstream.local_addr());
    let (_gateway, proxy) = gateway(&url, ProxyClients::system(), tls_config(&ca)).await;
    let target = format!("https://localhost:{}/tls", proxy.local_addr().port());
    let clients = ProxyClients::with_ca(Some(&ca.ca_pem())).unwrap();

    let (status, version, echo) = get(clients.for_protocol(Protocol::H2c), &target).await;
    assert_eq!(
        (status, version),
        (StatusCode::OK, Version::HTTP_2),
        "{echo}"
    );
    assert_eq!(echoed(&echo, "x-forwarded-proto").as_deref(), Some("https"));

    let (status, version, echo) = get(clients.for_protocol(Protocol::Http1), &target).await;
    assert_eq!(
        (status, version),
        (StatusCode::OK, Version::HTTP_11),
        "{echo}"
    );
    assert_eq!(echoed(&echo, "x-forwarded-proto").as_deref(), Some("https"));

    // A client that does not trust the CA gets no answer.
    let untrusting = support::client();
    let request = Request::get(&target).body(full("")).unwrap();
    assert!(within(untrusting.request(request)).await.is_err());
}

#[tokio::test]
async fn grpc_over_tls_to_the_gateway_and_to_an_https_grpc_upstream() {
    let ca = TestCa::generate().unwrap();
    // A tonic-health server behind a TLS gateway listener: an "https" gRPC upstream for a second
    // gateway in front of it.
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tonic_url = format!("http://{},protocol=grpc", listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let (_inner, inner) = gateway(&tonic_url, ProxyClients::system(), tls_config(&ca)).await;
    let https = format!("https://{},protocol=grpc", inner.local_addr());
    let with_ca = ProxyClients::with_ca(Some(&ca.ca_pem())).unwrap();
    let (_outer, outer) = gateway(&https, with_ca.clone(), tls_config(&ca)).await;

    // grpc.health.v1.Health/Check {} over TLS + h2 to the outer gateway.
    let request = Request::post(format!(
        "https://localhost:{}/grpc.health.v1.Health/Check",
        outer.local_addr().port()
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(full(vec![0u8, 0, 0, 0, 0]))
    .unwrap();
    let client = with_ca.for_protocol(Protocol::Grpc);
    let response = within(client.request(request)).await.unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    let collected = within(http_body_util::BodyExt::collect(response.into_body()))
        .await
        .unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
    // HealthCheckResponse { status: SERVING }
    assert_eq!(collected.to_bytes().as_ref(), &[0, 0, 0, 0, 2, 0x08, 1]);
    server.abort();
}

#[test]
fn bad_protocol_and_tls_flags_are_named() {
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_fluxgate"))
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = run(&["--upstream", "http://127.0.0.1:1,protocol=h3"]);
    assert!(stderr.contains("--upstream"), "{stderr}");
    assert!(stderr.contains("http1, h2c, grpc"), "{stderr}");
    let stderr = run(&["--upstream", "https://127.0.0.1:1,protocol=h2c"]);
    assert!(stderr.contains("protocol=h2c is cleartext"), "{stderr}");
    let stderr = run(&["--upstream", "http://127.0.0.1:1,speed=9"]);
    assert!(stderr.contains("protocol=http1|h2c|grpc"), "{stderr}");
    let stderr = run(&["--tls-cert", "/nonexistent.crt"]);
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

/// A `fluxgate` process, killed when dropped.
struct Fluxgate(std::process::Child);

impl Drop for Fluxgate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_binary_serves_a_tonic_client_over_tls_to_a_grpc_upstream() {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
    use tonic_health::ServingStatus;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let ca = TestCa::generate().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("shop.Orders", ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{},protocol=grpc", listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    // gRPC health checks every 100ms: a tonic server has no /healthz.
    let policy = ca.dir().join("policy.yaml");
    let yaml = "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\n\
                metadata: {name: grpc, namespace: test}\n\
                spec:\n  loadBalancing:\n    healthCheck: {interval: 100ms}\n";
    std::fs::write(&policy, yaml).unwrap();
    let (listen, admin) = (free_port(), free_port());
    let _fluxgate = Fluxgate(
        Command::new(env!("CARGO_BIN_EXE_fluxgate"))
            .args(["--listen", &format!("127.0.0.1:{listen}")])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .arg("--policy")
            .arg(&policy)
            .args(["--upstream", &upstream])
            .arg("--tls-cert")
            .arg(ca.server_cert())
            .arg("--tls-key")
            .arg(ca.server_key())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.ca_pem()))
        .domain_name("localhost");
    let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{listen}"))
        .unwrap()
        .tls_config(tls)
        .unwrap();
    let channel = within(async {
        loop {
            match endpoint.connect().await {
                Ok(channel) => break channel,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    let mut client = HealthClient::new(channel);
    let request = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };
    let serving = within(client.check(request("shop.Orders"))).await.unwrap();
    assert_eq!(serving.get_ref().status, ServingStatus::Serving as i32);
    let missing = within(client.check(request("shop.Missing")))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let mut watch = within(client.watch(request("shop.Orders")))
        .await
        .unwrap()
        .into_inner();
    let first = within(watch.message()).await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    reporter
        .set_service_status("shop.Orders", ServingStatus::NotServing)
        .await;
    let second = within(watch.message()).await.unwrap().unwrap();
    assert_eq!(second.status, ServingStatus::NotServing as i32);
    server.abort();
}
