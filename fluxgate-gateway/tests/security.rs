//! The points of `SECURITY.md` that need a running gateway: header size limits (the example
//! server's `ServerConfig`, enforced by hyper before the stack sees a request), oversized
//! rate-limit keys, and log hygiene (`security/logs.rs`). Everything runs on loopback, in this
//! process, and every step is bounded.

#[path = "security/capture.rs"]
mod capture;
#[path = "security/logs.rs"]
mod logs;
#[path = "faults/raw.rs"]
mod raw;
mod support;

use std::net::SocketAddr;

use fluxgate_core::store::{PolicyId, PolicyStore};
use fluxgate_gateway::server::{ServerConfig, ServerHandle};
use fluxgate_gateway::stack::{Gateway, StackConfig};
use fluxgate_gateway::upstream::UpstreamSpec;
use http::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use raw::{Behaviour, RawUpstream};
use support::gateway::{Named, get};
use support::{full, serve, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The log test reads a process-wide capture, so the tests run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A policy limiting each `X-Client-Id` to `burst` requests (then 1/s).
fn policy(burst: u32) -> String {
    format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{name: shop, namespace: test}}\n\
         spec:\n  rateLimit: {{requestsPerSecond: 1, burstSize: {burst}, keyExtractor: header.X-Client-Id}}\n"
    )
}

/// A gateway over `upstream` with [`policy`], served on loopback with the default limits.
async fn gateway(upstream: UpstreamSpec, burst: u32) -> (Gateway, ServerHandle) {
    let store = PolicyStore::new();
    store.apply_bytes(policy(burst).as_bytes(), None).unwrap();
    let config = StackConfig::new(vec![upstream]);
    let gateway = Gateway::build(&store, &PolicyId::new("test", "shop"), &config).unwrap();
    let server = serve(gateway.service()).await;
    (gateway, server)
}

/// Sends `head` (a whole HTTP/1.1 request without body) on a new connection and returns what
/// comes back until the gateway closes it.
async fn exchange(addr: SocketAddr, head: &[u8]) -> String {
    let mut stream = within(TcpStream::connect(addr)).await.unwrap();
    // The gateway may stop reading (and answer) before the whole head is written.
    let _ = within(stream.write_all(head)).await;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = within(stream.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// A `GET /` head with `headers` (`name: value` lines) and `connection: close`.
fn head(headers: &[String]) -> Vec<u8> {
    let mut head = String::from("GET / HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n");
    for line in headers {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// An upstream that answers `ok` to any request head, however large: any `431` is the
/// gateway's own (a hyper upstream would apply the same limits to what the gateway forwards).
async fn lenient() -> RawUpstream {
    RawUpstream::start(Behaviour::ResetMidBody { first: 0 }).await
}

/// A header of `len` bytes of value.
fn big(len: usize) -> String {
    format!("x-big: {}", "b".repeat(len))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_the_limit_is_431_and_the_gateway_goes_on() {
    let _serial = SERIAL.lock().await;
    let limit = ServerConfig::default().max_header_bytes as usize;
    let upstream = lenient().await;
    let (_gateway, server) = gateway(upstream.spec(), 100).await;
    let addr = server.local_addr();

    let under = exchange(addr, &head(&[big(limit - 4096)])).await;
    assert!(under.starts_with("HTTP/1.1 200"), "{under:.80}");
    let over = exchange(addr, &head(&[big(limit + 1024)])).await;
    assert!(over.starts_with("HTTP/1.1 431"), "{over:.80}");
    // Many small headers add up the same way.
    let many: Vec<String> = (0..(limit / 512 + 8))
        .map(|i| format!("x-h{i}: {}", "m".repeat(500)))
        .collect();
    let over = exchange(addr, &head(&many)).await;
    assert!(over.starts_with("HTTP/1.1 431"), "{over:.80}");

    let answer = get(&format!("http://{addr}/"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_headers_than_max_headers_is_431() {
    let _serial = SERIAL.lock().await;
    let most = ServerConfig::default().max_headers;
    let upstream = lenient().await;
    let (_gateway, server) = gateway(upstream.spec(), 100).await;
    let addr = server.local_addr();
    let headers = |n: usize| (0..n).map(|i| format!("x-h{i}: v")).collect::<Vec<_>>();
    // `host` and `connection` count too: `most` headers in all pass, one more does not.
    let ok = exchange(addr, &head(&headers(most - 2))).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok:.80}");
    let over = exchange(addr, &head(&headers(most - 1))).await;
    assert!(over.starts_with("HTTP/1.1 431"), "{over:.80}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_header_list_over_the_limit_is_refused() {
    let _serial = SERIAL.lock().await;
    let limit = ServerConfig::default().max_header_bytes as usize;
    let upstream = lenient().await;
    let (_gateway, server) = gateway(upstream.spec(), 100).await;
    let stream = within(TcpStream::connect(server.local_addr()))
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = |len: usize| {
        Request::get("http://gw/")
            .header("x-big", "b".repeat(len))
            .body(full(""))
            .unwrap()
    };
    let ok = within(sender.send_request(request(limit / 2)))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let over = within(sender.send_request(request(limit + 1024))).await;
    match over {
        Ok(response) => assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ),
        Err(error) => panic!("expected 431, got {error:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_rate_limit_key_is_400_and_never_reaches_the_upstream() {
    let _serial = SERIAL.lock().await;
    let max = fluxgate_core::key::DEFAULT_MAX_KEY_LEN;
    let upstream = Named::start("up").await;
    let (gateway, server) = gateway(upstream.spec(1), 100).await;
    let url = format!("http://{}/", server.local_addr());

    let longest = "k".repeat(max);
    let answer = get(&url, &[("x-client-id", &longest)]).await;
    assert_eq!(
        (answer.status, answer.upstream()),
        (StatusCode::OK, Some("up"))
    );
    let too_long = "k".repeat(max + 1);
    for _ in 0..3 {
        let answer = get(&url, &[("x-client-id", &too_long)]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        assert_eq!(answer.upstream(), None, "it never reaches the upstream");
    }
    let metrics = gateway.rate_limit_metrics();
    assert_eq!((metrics.admitted, metrics.rejected), (1, 3), "{metrics:?}");
    server.shutdown().await;
}
