//! Log hygiene: the request path logs nothing at `info` or above once per request, whatever the
//! outcome, and the Redis password and the admin token never reach a log line at any level. On
//! the own HTTP/1.1 pool (the gateway's default) and on hyper-util's pooled client.

use std::net::SocketAddr;
use std::time::Duration;

use fluxgate_core::store::{PolicyId, PolicyStore, RedisSource};
use fluxgate_gateway::proxy::ProxyConfig;
use fluxgate_gateway::server::ServerHandle;
use fluxgate_gateway::stack::{Gateway, StackConfig};
use fluxgate_gateway::upstream::UpstreamSpec;
use fluxgate_ratelimit::store::{RedisOptions, RedisStore};
use fluxgate_test_support::RedisServer;
use http::{Method, StatusCode};
use tracing::Level;

use super::capture::{self, Line};
use super::raw::{Behaviour, RawUpstream};
use super::support::gateway::{Named, get, send};
use super::support::serve;
use super::{SERIAL, exchange, head, policy};

const REDIS_PASSWORD: &str = "pw-5e1c7a9d-redis";
const ADMIN_TOKEN: &str = "tok-9f2b4d61-admin";
/// Requests of each kind (and each client's burst): a per-request log line would show up this
/// many times.
const N: usize = 20;

/// A gateway over `upstreams` sharing its limits through `redis` (the example's setup), served
/// on loopback with its admin API behind [`ADMIN_TOKEN`].
async fn gateway(
    redis: &str,
    upstreams: Vec<UpstreamSpec>,
    proxy: ProxyConfig,
) -> (Gateway, ServerHandle, ServerHandle) {
    let store = PolicyStore::new();
    store
        .apply_bytes(policy(N as u32).as_bytes(), None)
        .unwrap();
    let id = PolicyId::new("test", "shop");
    let limits = RedisStore::connect(redis, RedisOptions::new().replicas(1))
        .await
        .unwrap();
    let config = StackConfig::new(upstreams)
        .proxy(proxy)
        .rate_limit_store(limits);
    let gateway = Gateway::build(&store, &id, &config).unwrap();
    let proxy = serve(gateway.service()).await;
    let admin = gateway
        .admin(&id)
        .store(store)
        .token(Some(ADMIN_TOKEN.to_owned()))
        .build();
    let admin = serve(admin.router()).await;
    (gateway, proxy, admin)
}

/// `n` requests to `addr` with client id `client`; returns the statuses seen.
async fn requests(addr: SocketAddr, client: &str, n: usize) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        let answer = get(&format!("http://{addr}/"), &[("x-client-id", client)]).await;
        statuses.push(answer.status);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_per_request_logs_at_info_and_no_secrets_at_any_level() {
    quiet_and_secret(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_per_request_logs_at_info_and_no_secrets_at_any_level_on_hypers_client() {
    quiet_and_secret(false).await;
}

/// The gateways reach their upstreams over the own HTTP/1.1 pool when `pool`.
async fn quiet_and_secret(pool: bool) {
    let _serial = SERIAL.lock().await;
    capture::install();
    let mut redis = RedisServer::builder()
        .password(REDIS_PASSWORD)
        .start()
        .unwrap();
    let url = redis.url();
    let up = Named::start("up").await;
    let hang = RawUpstream::start(Behaviour::Hang).await;
    let refusing: UpstreamSpec = {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", closed.local_addr().unwrap())
            .parse()
            .unwrap()
    };
    let quick = ProxyConfig::default()
        .timeout(Duration::from_millis(100))
        .http1_pool(pool);
    let (_ok_gw, ok, admin) = gateway(&url, vec![up.spec(1)], quick.clone()).await;
    let (_refused_gw, refused, _) = gateway(&url, vec![refusing], quick.clone()).await;
    let (_hang_gw, hung, _) = gateway(&url, vec![hang.spec()], quick).await;
    let following = RedisSource::new(&url, "test", PolicyStore::new()).unwrap();
    let _following = following.spawn();
    // Wrong credentials (whatever becomes of them) must not be echoed either.
    let wrong = url.replace(REDIS_PASSWORD, "not-the-password");
    let _ = RedisStore::connect(&wrong, RedisOptions::new()).await;
    for auth in [
        String::new(),
        format!("Bearer {ADMIN_TOKEN}x"),
        format!("Bearer {ADMIN_TOKEN}"),
    ] {
        let answer = send(
            Method::PUT,
            &format!("http://{}/api/policies?namespace=test", admin.local_addr()),
            &[
                ("authorization", &auth),
                ("content-type", "application/yaml"),
            ],
            &policy(N as u32),
        )
        .await;
        assert_ne!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let setup = capture::take();

    // The request path, N of each outcome: admitted, refused (429, after a burst of N), oversized key (400),
    // upstream errors passed through (500), refused connections (502), timeouts (504), heads
    // over the limit (431); then Redis killed (local fallback) and back.
    let mut seen = Vec::new();
    seen.extend(requests(ok.local_addr(), "a", 2 * N).await);
    seen.extend(requests(ok.local_addr(), &"k".repeat(300), N).await);
    up.fail(true);
    seen.extend(requests(ok.local_addr(), "c", N).await);
    up.fail(false);
    seen.extend(requests(refused.local_addr(), "d", N).await);
    seen.extend(requests(hung.local_addr(), "e", N).await);
    for _ in 0..N {
        let reply = exchange(
            ok.local_addr(),
            &head(&[format!("x: {}", "y".repeat(70_000))]),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 431"), "{reply:.40}");
    }
    redis.stop();
    seen.extend(requests(ok.local_addr(), "f", N).await);
    // Long enough for the sync task and the policy follower to notice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    seen.extend(requests(ok.local_addr(), "f2", N).await);
    redis.restart().unwrap();
    seen.extend(requests(ok.local_addr(), "g", N).await);
    let traffic = capture::take();

    for status in [200, 429, 400, 500, 502, 504] {
        let status = StatusCode::from_u16(status).unwrap();
        assert!(seen.contains(&status), "no {status} among {seen:?}");
    }
    let loud: Vec<&Line> = traffic.iter().filter(|l| l.level <= Level::INFO).collect();
    for line in &loud {
        println!("{} {} {}", line.level, line.target, line.text);
    }
    // State changes (Redis down, Redis back) may log once each, and reconnection attempts with
    // a backoff (50ms doubling); nothing repeats per request.
    for line in &loud {
        let repeats = loud.iter().filter(|l| l.message == line.message).count();
        assert!(
            repeats < N / 2,
            "logged {repeats} times at {}: {}",
            line.level,
            line.text
        );
    }
    assert!(loud.len() < N, "{} lines at info or above", loud.len());

    let all: Vec<Line> = setup.into_iter().chain(traffic).collect();
    assert!(
        all.len() > 100,
        "the capture sees the request path ({} lines)",
        all.len()
    );
    // Redis URLs are logged, scrubbed.
    assert!(all.iter().any(|l| l.text.contains(":***@127.0.0.1")));
    for line in &all {
        for secret in [REDIS_PASSWORD, ADMIN_TOKEN] {
            assert!(
                !line.text.contains(secret),
                "a secret in a log line: {line:?}"
            );
        }
    }
}
