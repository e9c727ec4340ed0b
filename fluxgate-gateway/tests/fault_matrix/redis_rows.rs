//! Redis rows: killed under load and restarted, stalled (SIGSTOP), out of memory.
//! (Redis down at start is `tests/redis_down.rs`.)
#![allow(unreachable_pub)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fluxgate_test_support::RedisServer;
use http::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::process::{Process, eventually, kill, limited_policy};
use super::support::gateway::{Named, get};

/// Runs `fault` while 4 clients (`x-client-id: load`) send requests back to back; returns its
/// output and every status the clients saw. A request the gateway drops fails the test.
pub async fn under_load<F: Future>(url: &str, fault: F) -> (F::Output, Vec<StatusCode>) {
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, url) = (Arc::clone(&stop), url.to_owned());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    seen.push(get(&url, &[("x-client-id", "load")]).await.status);
                }
                seen
            })
        })
        .collect();
    let output = fault.await;
    stop.store(true, Ordering::Relaxed);
    let mut statuses = Vec::new();
    for client in clients {
        statuses.extend(client.await.expect("a client lost its request"));
    }
    (output, statuses)
}

/// Four requests of a fresh client under a burst of 3: the limit holds when `[200, 200, 200, 429]`.
pub async fn probe(gateway: &Process, client: &str) -> Vec<StatusCode> {
    probe_n(gateway, client, 4).await
}

/// `n` requests of client `client`.
pub async fn probe_n(gateway: &Process, client: &str, n: usize) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(
            get(&gateway.url("/"), &[("x-client-id", client)])
                .await
                .status,
        );
    }
    statuses
}

/// Eight requests of a fresh client (burst 3) while the shared store fails: the limit refuses
/// past the burst, across the switch to the local fallback too (the fallback starts each key from
/// what it had used: see [`redis_outage_start_gives_no_second_burst`]).
pub fn bounded(statuses: &[StatusCode]) {
    assert!(bounded_ok(statuses), "{statuses:?}");
}

fn bounded_ok(statuses: &[StatusCode]) -> bool {
    let admitted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    statuses.contains(&StatusCode::TOO_MANY_REQUESTS) && admitted <= 3
}

pub const HELD: [StatusCode; 4] = [
    StatusCode::OK,
    StatusCode::OK,
    StatusCode::OK,
    StatusCode::TOO_MANY_REQUESTS,
];

/// The shared store's counters of the gateway's rate limit in `/api/status`.
pub fn store(status: &Value) -> &Value {
    &status["rateLimits"][0]["store"]
}

/// A gateway (burst 3 per client) over one upstream and `redis`, and what it needs alive.
pub struct OverRedis {
    pub gateway: Process,
    _upstream: Named,
    _dir: tempfile::TempDir,
}

impl OverRedis {
    /// Starts it; waits until it joined Redis when `join`.
    pub async fn start(redis: &RedisServer, join: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let upstream = Named::start("up").await;
        let gateway = Process::start(
            dir.path(),
            &limited_policy(3),
            &format!("http://127.0.0.1:{}", upstream.port()),
            &["--redis", &redis.url()],
        );
        if join {
            joined(&gateway).await;
        }
        Self {
            gateway,
            _upstream: upstream,
            _dir: dir,
        }
    }
}

async fn joined(gateway: &Process) {
    eventually("joined Redis", Duration::from_secs(10), || async {
        get(&gateway.url("/"), &[("x-client-id", "join")]).await;
        gateway.status().await["redis"]["joined"] == true
    })
    .await;
}

fn only_admitted_or_refused(statuses: &[StatusCode]) {
    assert!(!statuses.is_empty());
    let other: Vec<_> = statuses
        .iter()
        .filter(|s| !matches!(**s, StatusCode::OK | StatusCode::TOO_MANY_REQUESTS))
        .collect();
    assert!(other.is_empty(), "{other:?} of {}", statuses.len());
}

/// Redis killed under load, then restarted on its port: clients see only `200`/`429` (no `5xx`,
/// no dropped request) throughout; while Redis is down the file's limits hold locally (a fresh
/// client of burst 3 gets at most 3, across the switch too: see
/// `redis_outage_start_gives_no_second_burst`); counted as `rateLimits[].store.outages` and
/// `fallbackDecisions` and `redis.joined: false` in `/api/status`; the gateway joins Redis again
/// once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_then_restarted() {
    let mut redis = RedisServer::start().unwrap();
    let fixture = OverRedis::start(&redis, true).await;
    let gateway = &fixture.gateway;
    let (down, statuses) = under_load(&gateway.url("/"), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        redis.stop();
        let held = probe_n(gateway, "while-down", 8).await;
        let status = gateway.status().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.restart().unwrap();
        (held, status)
    })
    .await;
    only_admitted_or_refused(&statuses);
    bounded(&down.0);
    assert_eq!(down.1["redis"]["joined"], false, "{}", down.1);
    joined(gateway).await;
    let status = gateway.status().await;
    assert!(store(&status)["outages"].as_u64().unwrap() >= 1, "{status}");
    assert!(
        store(&status)["fallbackDecisions"].as_u64().unwrap() >= 1,
        "{status}"
    );
    // The same counts in `/metrics`, and the store is up again.
    let metric = "fluxgate_ratelimit_store_fallback_decisions_total";
    assert!(gateway.metric(metric, &[]).await >= 1.0);
    let outages = gateway.metric("fluxgate_ratelimit_store_outages_total", &[]);
    assert!(outages.await >= 1.0);
    assert_eq!(
        gateway.metric("fluxgate_ratelimit_store_up", &[]).await,
        1.0
    );
    assert_eq!(probe(gateway, "after").await, HELD);
}

/// Redis stalled (SIGSTOP for 1s) under load: every request is answered (`200`/`429`, none held
/// past the store's timeout and the test's bound), the limit refuses (local fallback, as above), the stalls
/// are counted in `rateLimits[].store.timeouts` (or `outages` when the health check saw the
/// stall first); after SIGCONT the gateway is joined again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stalled_by_sigstop_under_load() {
    let redis = RedisServer::start().unwrap();
    let fixture = OverRedis::start(&redis, true).await;
    let gateway = &fixture.gateway;
    let pid = redis.pid().unwrap();
    let (held, statuses) = under_load(&gateway.url("/"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        kill("-STOP", pid);
        let held = probe_n(gateway, "while-stalled", 8).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        kill("-CONT", pid);
        held
    })
    .await;
    only_admitted_or_refused(&statuses);
    bounded(&held);
    joined(gateway).await;
    let status = gateway.status().await;
    // A stall is seen either by requests that waited their whole timeout (`timeouts`) or, when
    // the store's health check saw it first (a loaded machine), as an outage whose requests
    // fell back without waiting (`outages`, `fallbackDecisions`): counted either way.
    let counted = |field: &str| store(&status)[field].as_u64().unwrap();
    assert!(counted("timeouts") + counted("outages") >= 1, "{status}");
    let timeouts = gateway
        .metric("fluxgate_ratelimit_store_timeouts_total", &[])
        .await;
    let outages = gateway
        .metric("fluxgate_ratelimit_store_outages_total", &[])
        .await;
    assert!(timeouts + outages >= 1.0);
}

/// The rate-limit store's lines of the gateway's log (its outages and recoveries).
fn store_lines(gateway: &Process) -> String {
    let log = gateway.log();
    let lines: Vec<_> = log
        .lines()
        .filter(|l| l.contains("rate-limit store"))
        .collect();
    lines.join("\n")
}

/// Fills Redis (`maxmemory`, `noeviction`) with `SET`s until it answers an `OOM` error.
async fn fill(port: u16) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let value = "x".repeat(64 * 1024);
    for n in 0..1000 {
        let key = format!("filler:{n}");
        let command = format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
            key.len(),
            value.len()
        );
        stream.write_all(command.as_bytes()).await.unwrap();
        let mut reply = [0u8; 256];
        let n = stream.read(&mut reply).await.unwrap();
        if reply[..n].starts_with(b"-OOM") {
            return;
        }
    }
    panic!("Redis never ran out of memory");
}

/// Redis out of memory (`maxmemory 1mb`, `noeviction`: every write fails with `OOM`): clients see
/// only `200`/`429`, and the limits refuse: a fresh client gets at most its burst (3) while the
/// store goes down on each failed write and up on each answered `PING` (what the fallback admits
/// counts in synced mode's state too); once the store counts it down, exactly 3 admitted, the
/// 4th `429`, decided locally. Counted as `rateLimits[].store.down: true`, `outages`,
/// `fallbackDecisions`, `redis.rateLimits.faults`, and the `OOM` error in
/// `redis.policies.lastError`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_out_of_memory_keeps_limits() {
    let redis = RedisServer::builder()
        .arg("--maxmemory")
        .arg("1mb")
        .arg("--maxmemory-policy")
        .arg("noeviction")
        .start()
        .unwrap();
    let fixture = OverRedis::start(&redis, false).await;
    let gateway = &fixture.gateway;
    // 1 MiB is about what an empty Redis uses: it may refuse writes from the start.
    fill(redis.port()).await;
    let (held, statuses) = under_load(&gateway.url("/"), async {
        probe_n(gateway, "oom", 8).await
    })
    .await;
    only_admitted_or_refused(&statuses);
    assert!(bounded_ok(&held), "{held:?}\n{}", store_lines(gateway));
    // The next sync's write fails: the store counts the outage and falls back.
    eventually("the OOM counted", Duration::from_secs(5), || async {
        get(&gateway.url("/"), &[("x-client-id", "count")]).await;
        let status = gateway.status().await;
        store(&status)["down"] == true
            && store(&status)["fallbackDecisions"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    // Once the store knows, a fresh client is limited exactly, locally.
    assert_eq!(probe(gateway, "oom-2").await, HELD);
    let status = gateway.status().await;
    let error = status["redis"]["policies"]["lastError"]
        .as_str()
        .unwrap_or("");
    assert!(error.contains("OOM"), "{status}");
}

/// No second burst at the switch (a defect until the rate-limit store's fallback started from
/// the synced state): a client with burst 3 and almost no refill sends 2 requests, Redis is
/// killed, and 6 more: at most 3 of the 8 are admitted, in each of 5 rounds, whenever the store
/// notices the outage (the fallback starts each key from the last state known from Redis plus
/// this replica's units Redis had not counted yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_start_gives_no_second_burst() {
    let mut redis = RedisServer::start().unwrap();
    let fixture = OverRedis::start(&redis, true).await;
    let gateway = &fixture.gateway;
    for round in 0..5 {
        let client = format!("switch-{round}");
        let (statuses, _) = under_load(&gateway.url("/"), async {
            // The key is known to Redis, then Redis goes away while the key is in use.
            let mut statuses = probe_n(gateway, &client, 2).await;
            redis.stop();
            statuses.extend(probe_n(gateway, &client, 6).await);
            redis.restart().unwrap();
            statuses
        })
        .await;
        let admitted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert!(
            admitted <= 3,
            "round {round}: {statuses:?}\n{}",
            store_lines(gateway)
        );
        joined(gateway).await;
    }
}
