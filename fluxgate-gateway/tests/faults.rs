//! Fault injection on loopback: misbehaving upstreams, Redis killed and stalled, a policy file
//! broken and fixed, and a burst of new connections, against the in-process gateway stack.
//!
//! Each test asserts what clients see, that the gateway goes on serving (nothing panics: a
//! panicking connection task would lose its answer), and that the process's open file
//! descriptors and resident memory come back to their level once the fault has passed and the
//! gateway is idle (see `faults/level.rs` for the bounds; run with `--nocapture` to see the
//! figures). Every step is bounded.
//!
//! The gateways reach their upstreams over their own HTTP/1.1 pool, the default of
//! `StackConfig::new` and the `fluxgate` binary; the faults of the upstream and the burst of
//! connections run again on hyper-util's pooled client (`ProxyConfig::default()`,
//! `--http1-pool false`) as the tests named `…_on_hypers_client`.

#[path = "faults/level.rs"]
mod level;
#[path = "faults/raw.rs"]
mod raw;
mod support;

use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use fluxgate_core::policy::SyncMode;
use fluxgate_core::store::{FileSource, PolicyId, PolicyStore};
use fluxgate_gateway::proxy::ProxyConfig;
use fluxgate_gateway::server::ServerHandle;
use fluxgate_gateway::stack::{Gateway, StackConfig};
use fluxgate_gateway::upstream::UpstreamSpec;
use fluxgate_ratelimit::store::{RedisOptions, RedisStore};
use fluxgate_test_support::RedisServer;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use level::{FD_SLACK, Watch, fds_settle, open_fds};
use raw::{Behaviour, RawUpstream};
use support::gateway::{Named, get};
use support::{serve, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const ID: (&str, &str) = ("test", "shop");

/// The tests measure the whole process, so they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn policy(spec: &str) -> String {
    format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{name: shop, namespace: test}}\nspec: {spec}\n"
    )
}

/// A gateway over `upstreams` with `spec`, served on loopback.
async fn gateway(
    spec: &str,
    upstreams: Vec<UpstreamSpec>,
    proxy: ProxyConfig,
) -> (Gateway, ServerHandle) {
    let store = PolicyStore::new();
    store.apply_bytes(policy(spec).as_bytes(), None).unwrap();
    let config = StackConfig::new(upstreams).proxy(proxy);
    let gateway = Gateway::build(&store, &PolicyId::new(ID.0, ID.1), &config).unwrap();
    let server = serve(gateway.service()).await;
    (gateway, server)
}

fn url(server: &ServerHandle) -> String {
    format!("http://{}/", server.local_addr())
}

/// The proxy config of a test: the own HTTP/1.1 pool when `pool`, else hyper-util's client.
fn proxy(pool: bool) -> ProxyConfig {
    ProxyConfig::default().http1_pool(pool)
}

/// `fault`, with the client the gateway reaches its upstream with (for the printed figures).
fn on(fault: &str, pool: bool) -> &'static str {
    let client = if pool { "own pool" } else { "hyper's client" };
    format!("{fault} ({client})").leak()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_gives_504_after_the_timeout() {
    never_answers(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_gives_504_after_the_timeout_on_hypers_client() {
    never_answers(false).await;
}

async fn never_answers(pool: bool) {
    let _serial = SERIAL.lock().await;
    let hang = RawUpstream::start(Behaviour::Hang).await;
    let proxy = proxy(pool).timeout(Duration::from_millis(300));
    let (_gateway, server) = gateway("{}", vec![hang.spec()], proxy).await;
    let watch = Watch::start(on("upstream never answers", pool), &[hang.addr.port()]).await;
    for _ in 0..5 {
        let started = Instant::now();
        let answer = get(&url(&server), &[]).await;
        assert_eq!(
            answer.status,
            StatusCode::GATEWAY_TIMEOUT,
            "{}",
            answer.body
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }
    // The fault passes: the upstream goes away with the connections it held.
    drop(hang);
    watch.finish().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_reset_mid_body_aborts_that_body_only() {
    reset_mid_body(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_reset_mid_body_aborts_that_body_only_on_hypers_client() {
    reset_mid_body(false).await;
}

async fn reset_mid_body(pool: bool) {
    let _serial = SERIAL.lock().await;
    let upstream = RawUpstream::start(Behaviour::ResetMidBody { first: 1 }).await;
    let (_gateway, server) = gateway("{}", vec![upstream.spec()], proxy(pool)).await;
    let fault = on("upstream resets mid-body", pool);
    let watch = Watch::start(fault, &[upstream.addr.port()]).await;
    // The first response starts (200, headers sent) and its body breaks off.
    let request = Request::get(url(&server)).body(support::full("")).unwrap();
    let response = within(support::client().request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = within(response.into_body().collect()).await;
    assert!(
        body.is_err(),
        "the client must see an aborted body, not a short one"
    );
    // The gateway keeps serving: later requests get whole answers.
    for _ in 0..5 {
        let answer = get(&url(&server), &[]).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "ok")
        );
    }
    watch.finish().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_by_byte_upstream_streams_through() {
    byte_by_byte(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_by_byte_upstream_streams_through_on_hypers_client() {
    byte_by_byte(false).await;
}

async fn byte_by_byte(pool: bool) {
    let _serial = SERIAL.lock().await;
    let gap = Duration::from_millis(40);
    let upstream = RawUpstream::start(Behaviour::Trickle { len: 20, gap }).await;
    let (_gateway, server) = gateway("{}", vec![upstream.spec()], proxy(pool)).await;
    let fault = on("upstream trickles byte by byte", pool);
    let watch = Watch::start(fault, &[upstream.addr.port()]).await;
    let started = Instant::now();
    let request = Request::get(url(&server)).body(support::full("")).unwrap();
    let response = within(support::client().request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = Vec::new();
    let mut first_at = None;
    while let Some(frame) = within(body.frame()).await {
        let data = frame.unwrap().into_data().unwrap_or_default();
        if !data.is_empty() && first_at.is_none() {
            first_at = Some(started.elapsed());
        }
        received.extend_from_slice(&data);
    }
    let total = started.elapsed();
    assert_eq!(received, b"abcdefghijklmnopqrst");
    // The first byte arrives long before the last is sent: the body is not buffered.
    let first_at = first_at.unwrap();
    assert!(
        first_at < total / 2,
        "first byte at {first_at:?} of {total:?}"
    );
    watch.finish().await;
    server.shutdown().await;
}

async fn limited(gateway: &Gateway, client: &str) -> (StatusCode, Duration) {
    let started = Instant::now();
    let request = Request::get("http://gateway/")
        .header("x-client-id", client)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let status = within(gateway.service().oneshot(request))
        .await
        .unwrap()
        .status();
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_restarted_and_stalled_falls_back_to_local_limits() {
    let _serial = SERIAL.lock().await;
    let mut redis = RedisServer::start().unwrap();
    let upstream = Named::start("up").await;
    let store = PolicyStore::new();
    let spec = "\n  rateLimit: {requestsPerSecond: 1000, burstSize: 1000, keyExtractor: header.X-Client-Id}";
    store.apply_bytes(policy(spec).as_bytes(), None).unwrap();
    let limits = RedisStore::connect(
        &redis.url(),
        RedisOptions::new()
            .mode(SyncMode::Strict)
            .timeout(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let config = StackConfig::new(vec![upstream.spec(1)]).rate_limit_store(limits);
    let gateway = Gateway::build(&store, &PolicyId::new(ID.0, ID.1), &config).unwrap();
    assert_eq!(limited(&gateway, "a").await.0, StatusCode::OK);
    let watch = Watch::start("Redis killed, restarted, stalled", &[upstream.port()]).await;

    // Killed: answers go on under the local fallback (onStoreFailure: local), promptly.
    redis.stop();
    for _ in 0..20 {
        let (status, took) = limited(&gateway, "a").await;
        assert_eq!(status, StatusCode::OK);
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    redis.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while limited(&gateway, "a").await.0 != StatusCode::OK && Instant::now() < deadline {}
    assert_eq!(limited(&gateway, "a").await.0, StatusCode::OK);

    // Stalled (SIGSTOP): each request waits at most about the store timeout, then falls back.
    let pid = redis.pid().unwrap().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    signal("-STOP");
    for _ in 0..5 {
        let (status, took) = limited(&gateway, "a").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            took < Duration::from_secs(2),
            "stalled Redis held a request {took:?}"
        );
    }
    signal("-CONT");
    for _ in 0..20 {
        assert_eq!(limited(&gateway, "a").await.0, StatusCode::OK);
    }
    watch.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_policy_file_keeps_the_old_policy_until_fixed() {
    let _serial = SERIAL.lock().await;
    let upstream = Named::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy("{}")).unwrap();
    let store = PolicyStore::new();
    let mut source = FileSource::new(&path, store.clone()).poll_interval(Duration::from_millis(50));
    source.load().unwrap();
    let _watch = source.spawn().unwrap();
    let config = StackConfig::new(vec![upstream.spec(1)]);
    let gateway = Gateway::build(&store, &PolicyId::new(ID.0, ID.1), &config).unwrap();
    let burst = |n: usize| {
        let gateway = &gateway;
        async move {
            let mut statuses = Vec::new();
            for _ in 0..n {
                statuses.push(limited(gateway, "c").await.0);
            }
            statuses
        }
    };
    assert!(burst(5).await.iter().all(|s| *s == StatusCode::OK));
    let watch = Watch::start("policy file garbage, then fixed", &[upstream.port()]).await;

    std::fs::write(&path, b"apiVersion: [\x00\xff garbage: {{{\n").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The old policy (no limit) stays in force.
    assert!(burst(5).await.iter().all(|s| *s == StatusCode::OK));

    let fixed =
        "\n  rateLimit: {requestsPerSecond: 0.1, burstSize: 2, keyExtractor: header.X-Client-Id}";
    std::fs::write(&path, policy(fixed)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let statuses = burst(3).await;
        if statuses.contains(&StatusCode::TOO_MANY_REQUESTS) {
            break;
        }
        assert!(Instant::now() < deadline, "the fixed policy never applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watch.finish().await;
}

/// Opens 500 connections at once, each sending one `connection: close` request; returns how
/// many were answered `200`.
async fn batch_of_500(addr: std::net::SocketAddr) -> usize {
    let batch: Vec<_> = (0..500)
        .map(|_| {
            tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
                stream
                    .write_all(b"GET / HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n")
                    .await
                    .ok()?;
                let mut reply = Vec::new();
                stream.read_to_end(&mut reply).await.ok()?;
                Some(reply.starts_with(b"HTTP/1.1 200"))
            })
        })
        .collect();
    let mut ok = 0;
    for task in batch {
        ok += usize::from(within(task).await.unwrap() == Some(true));
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_new_connections_in_batches() {
    ten_thousand_new_connections(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_new_connections_in_batches_on_hypers_client() {
    ten_thousand_new_connections(false).await;
}

async fn ten_thousand_new_connections(pool: bool) {
    let _serial = SERIAL.lock().await;
    let upstream = Named::start("up").await;
    let (gateway_stack, server) = gateway("{}", vec![upstream.spec(1)], proxy(pool)).await;
    let addr = server.local_addr();
    let before = open_fds();
    // One batch first: the level to come back to is that of a gateway that has served this
    // concurrency, its upstream pool (and the buffers of its connections) filled once.
    assert_eq!(batch_of_500(addr).await, 500);
    // The allocator keeps the pages of the peak (1000 sockets of this batch size with their
    // buffers, both ends in this process); more batches add almost nothing (40k connections:
    // +2 MiB over the level after 10k), so the bound is the peak's size, not a count of leaks.
    let watch = Watch::start(on("10k new connections", pool), &[upstream.port()]).await;
    let watch = watch.rss_slack(32 * 1024);
    let started = Instant::now();
    let mut ok = 0usize;
    for _ in 0..20 {
        ok += batch_of_500(addr).await;
    }
    let took = started.elapsed();
    assert_eq!(ok, 10_000, "{ok} of 10000 answered 200");
    assert!(took < Duration::from_secs(60), "{took:?}");
    // Still serving, and the descriptors come back, but for the proxy's idle upstream pool
    // (at most one connection per concurrent request of a batch, two descriptors each here).
    assert_eq!(get(&url(&server), &[]).await.status, StatusCode::OK);
    let idle = watch.finish().await;
    assert!(idle.pooled <= 2 * 500, "{idle:?}");
    // Once the gateway and its upstream are gone, every descriptor is given back.
    drop(gateway_stack);
    server.shutdown().await;
    upstream.server.shutdown().await;
    let after = fds_settle(before).await;
    assert!(
        after <= before + FD_SLACK,
        "fds {before} -> {idle:?} -> {after}"
    );
}
