//! Redis Cluster rows: a master failing over under load (`--redis-cluster`).
#![allow(unreachable_pub)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fluxgate_test_support::RedisCluster;
use http::{Request, StatusCode};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::process::{Process, eventually, limited_policy};
use super::redis_rows::{HELD, probe, probe_n, store};
use super::support::gateway::Named;
use super::support::{client, full, within};

/// The keys matching `pattern` on the running node on `port`.
fn scan(port: u16, pattern: &str) -> Vec<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--scan", "--pattern", pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The Redis key of client `id`'s counters, once its master and its replica hold it.
async fn key_of(cluster: &RedisCluster, id: &str) -> String {
    let pattern = format!("*|b:{id}}}*");
    let mut found = Vec::new();
    eventually(
        "the key synced and replicated",
        Duration::from_secs(10),
        || {
            found = (cluster.nodes().iter())
                .filter(|n| n.pid().is_some())
                .flat_map(|n| scan(n.port(), &pattern))
                .collect();
            std::future::ready(found.len() >= 2)
        },
    )
    .await;
    found.swap_remove(0)
}

/// A client (`x-client-id: id`) sending requests back to back over one keep-alive connection
/// pool until `stop`; what it saw.
fn keep_alive_client(
    url: String,
    id: &'static str,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<StatusCode>> {
    tokio::spawn(async move {
        let client = client();
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let request = Request::get(&url)
                .header("x-client-id", id)
                .body(full(""))
                .unwrap();
            let response = match within(client.request(request)).await {
                Ok(response) => response,
                Err(error) => panic!("a request lost after {} answers: {error:?}", seen.len()),
            };
            seen.push(response.status());
            let _ = within(http_body_util::BodyExt::collect(response.into_body())).await;
        }
        seen
    })
}

/// A Redis Cluster master failing over under load: 3 masters with a replica each, the gateway
/// on `--redis-cluster` (burst 3 per client), 4 keep-alive clients of one key, and the master of
/// that key's slot killed (SIGKILL). Clients see only `200`/`429` throughout (no `5xx`, no
/// request lost). The store's breaker is per store, not per node: while the slot has no master,
/// every key is decided by the local fallback, each starting from what it had used (the busy key
/// stays refused, a key with 2 of 3 used gets at most 1 more, a fresh one 3); counted as
/// `rateLimits[].store.outages`, `.fallbackDecisions` and `redis.joined: false`. Once a replica
/// is promoted (about 1–2 s, node timeout 500ms), the gateway shares the limits through the
/// cluster again: `redis.joined: true`, syncs resume, a fresh client's counters are written to
/// the cluster (and replicated) and it is limited exactly. Over-admission across the whole
/// failover: none on the busy key (its burst, 3, admitted in all; its counters were replicated
/// before the kill — a write the replica had not received would be lost in the failover).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_master_failover_under_load() {
    let mut cluster = RedisCluster::start_with_replicas(3, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let upstream = Named::start("up").await;
    let urls = cluster.urls();
    let mut extra = Vec::new();
    for url in &urls {
        extra.extend(["--redis-cluster", url.as_str()]);
    }
    let upstream_url = format!("http://127.0.0.1:{}", upstream.port());
    let gateway = Process::start(dir.path(), &limited_policy(3), &upstream_url, &extra);
    assert_eq!(gateway.status().await["redis"]["joined"], true);

    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| keep_alive_client(gateway.url("/"), "load", Arc::clone(&stop)))
        .collect();
    let load_key = key_of(&cluster, "load").await;
    // A client whose key lives on the same master, 2 of its 3 used before the kill.
    let pre = (0..200)
        .map(|n| format!("pre-{n}"))
        .find(|id| {
            let key = load_key.replace("|b:load}", &format!("|b:{id}}}"));
            cluster.master_of(&key) == cluster.master_of(&load_key)
        })
        .unwrap();
    assert_eq!(probe_n(&gateway, &pre, 2).await, [StatusCode::OK; 2]);
    key_of(&cluster, &pre).await;

    let dead = cluster.kill_master_of(&load_key).unwrap();
    eventually(
        "the store counts the outage",
        Duration::from_secs(10),
        || async { store(&gateway.status().await)["down"] == true },
    )
    .await;
    let during = gateway.status().await;
    let after_kill = probe_n(&gateway, &pre, 4).await;
    let admitted = after_kill.iter().filter(|s| **s == StatusCode::OK).count();
    assert!(admitted <= 1, "{after_kill:?}\n{}", gateway.log());
    let fresh = probe(&gateway, "fresh-during").await;
    assert_eq!(fresh, HELD, "{}\n{}", gateway.status().await, gateway.log());

    // The dead master is marked failed, then a replica serves its slots.
    eventually("a replica took over", Duration::from_secs(20), || {
        std::future::ready(cluster.master_of(&load_key).is_some() && cluster.is_ok())
    })
    .await;
    assert_ne!(cluster.master_of(&load_key), Some(dead));
    let syncs = |status: &Value| status["redis"]["rateLimits"]["syncs"].as_u64().unwrap_or(0);
    let before = syncs(&gateway.status().await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = gateway.status().await;
        if status["redis"]["joined"] == true && syncs(&status) > before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never back on the cluster: {status}\n{}",
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fresh = probe(&gateway, "fresh-after").await;
    assert_eq!(fresh, HELD, "{}\n{}", gateway.status().await, gateway.log());
    key_of(&cluster, "fresh-after").await;
    stop.store(true, Ordering::Relaxed);
    let mut statuses = Vec::new();
    for client in load {
        match client.await {
            Ok(seen) => statuses.extend(seen),
            Err(error) => panic!("a client lost its request: {error}\n{}", gateway.log()),
        }
    }

    let other: Vec<_> = statuses
        .iter()
        .filter(|s| !matches!(**s, StatusCode::OK | StatusCode::TOO_MANY_REQUESTS))
        .collect();
    assert!(other.is_empty(), "{other:?} of {}", statuses.len());
    let load_admitted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert!(
        load_admitted <= 3,
        "the busy key: {load_admitted} admitted of {}",
        statuses.len()
    );
    eprintln!(
        "cluster failover: busy key admitted {load_admitted} of {} requests (burst 3)",
        statuses.len()
    );
    assert_eq!(during["redis"]["joined"], false, "{during}");
    let status = gateway.status().await;
    assert!(store(&status)["outages"].as_u64().unwrap() >= 1, "{status}");
    assert!(
        store(&status)["fallbackDecisions"].as_u64().unwrap() >= 1,
        "{status}"
    );
}
