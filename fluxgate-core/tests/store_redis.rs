//! The Redis policy source and writer against real `redis-server` processes.
#![cfg(feature = "redis")]

use std::time::Duration;

use fluxgate_core::policy::{TrafficPolicy, parse_policies};
use fluxgate_core::store::{
    Change, FileSource, PolicyId, PolicyStore, RedisPolicies, RedisSource, RedisStoreError,
    changes_channel,
};
use fluxgate_test_support::RedisServer;

const NS: &str = "payments";

fn policy(name: &str, rps: u32) -> TrafficPolicy {
    let yaml = format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  rateLimit: {{requestsPerSecond: {rps}, burstSize: 5}}\n"
    );
    parse_policies(yaml.as_bytes()).unwrap().remove(0)
}

/// The requests per second of the policy in force, and its version (`metadata.generation`).
fn in_force(store: &PolicyStore, name: &str) -> Option<(u32, i64)> {
    let applied = store.get(&PolicyId::new(NS, name))?;
    let policy = applied.compiled().policy();
    let spec = serde_json::to_value(&policy.spec).unwrap();
    Some((
        spec["rateLimit"]["requestsPerSecond"].as_f64().unwrap() as u32,
        policy.metadata.generation.unwrap_or(0),
    ))
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn follower(server: &RedisServer, store: &PolicyStore) -> fluxgate_core::store::RedisSourceHandle {
    RedisSource::new(&server.url(), NS, store.clone())
        .unwrap()
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .health_interval(Duration::from_millis(500))
        .spawn()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_propagate_with_versions() {
    let server = RedisServer::start().unwrap();
    let store = PolicyStore::new();
    let mut handle = follower(&server, &store);
    handle.wait_synced(1).await;
    let writer = RedisPolicies::connect(&server.url()).await.unwrap();

    let written = writer
        .apply(NS, &[policy("a", 10), policy("b", 20)])
        .await
        .unwrap();
    assert_eq!(written[0].change, Change::Created(PolicyId::new(NS, "a")));
    assert_eq!(written[0].version, 1);
    eventually("a and b in force", || {
        in_force(&store, "a") == Some((10, 1)) && in_force(&store, "b").is_some()
    })
    .await;

    let written = writer
        .apply(NS, &[policy("a", 11), policy("b", 20)])
        .await
        .unwrap();
    assert_eq!(
        written[0].change,
        Change::Configured(PolicyId::new(NS, "a"))
    );
    assert_eq!(written[0].version, 2);
    assert_eq!(written[1].change, Change::Unchanged(PolicyId::new(NS, "b")));
    assert_eq!(written[1].version, 1);
    eventually("a v2", || in_force(&store, "a") == Some((11, 2))).await;

    let listed = writer.list(NS).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].version, 2);
    assert_eq!(writer.get(NS, "zzz").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_policies_write_nothing() {
    let server = RedisServer::start().unwrap();
    let writer = RedisPolicies::connect(&server.url()).await.unwrap();
    let mut bad = policy("bad", 10);
    bad.metadata.name = "Not A Name".into();
    let error = writer
        .apply(NS, &[policy("good", 1), bad])
        .await
        .unwrap_err();
    assert!(matches!(error, RedisStoreError::Invalid(_)), "{error}");
    assert!(writer.list(NS).await.unwrap().is_empty());

    let mut other = policy("x", 1);
    other.metadata.namespace = Some("other".into());
    let error = writer.apply(NS, &[other]).await.unwrap_err();
    assert!(error.to_string().contains("namespace other"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_and_disconnected_replicas_converge() {
    let mut server = RedisServer::start().unwrap();
    let writer = RedisPolicies::connect(&server.url()).await.unwrap();
    writer.apply(NS, &[policy("a", 1)]).await.unwrap();

    // Started after the write: the full load brings it.
    let store = PolicyStore::new();
    let mut handle = follower(&server, &store);
    handle.wait_synced(1).await;
    assert_eq!(in_force(&store, "a"), Some((1, 1)));

    // Its subscription killed while a write happens: it reconnects and reloads.
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    writer.apply(NS, &[policy("a", 2)]).await.unwrap();
    eventually("a v2 after CLIENT KILL", || {
        in_force(&store, "a") == Some((2, 2))
    })
    .await;
    handle.wait_synced(2).await;

    // The server restarts empty; a new write reaches the replica (versions restart from Redis).
    server.restart().unwrap();
    let writer = RedisPolicies::connect(&server.url()).await.unwrap();
    writer.apply(NS, &[policy("b", 3)]).await.unwrap();
    eventually("b after restart, a gone", || {
        in_force(&store, "b") == Some((3, 1)) && in_force(&store, "a").is_none()
    })
    .await;
    assert!(handle.status().failures >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_versions_never_overwrite_newer() {
    let server = RedisServer::start().unwrap();
    let store = PolicyStore::new();
    let mut handle = follower(&server, &store);
    handle.wait_synced(1).await;
    let writer = RedisPolicies::connect(&server.url()).await.unwrap();
    writer.apply(NS, &[policy("a", 1)]).await.unwrap();
    writer.apply(NS, &[policy("a", 2)]).await.unwrap();
    eventually("a v2", || in_force(&store, "a") == Some((2, 2))).await;

    // A writer that read version 1 cannot write over version 2.
    let error = writer
        .apply_if_version(NS, &policy("a", 99), 1)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RedisStoreError::Conflict {
                expected: 1,
                current: 2,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(writer.get(NS, "a").await.unwrap().unwrap().version, 2);
    let ok = writer
        .apply_if_version(NS, &policy("a", 3), 2)
        .await
        .unwrap();
    assert_eq!(ok.version, 3);
    eventually("a v3", || in_force(&store, "a") == Some((3, 3))).await;

    // A late (replayed) message of version 2 is ignored by the follower.
    let stale = format!(
        r#"{{"name":"a","version":2,"policy":{}}}"#,
        serde_json::to_string(&policy("a", 77)).unwrap()
    );
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(changes_channel(NS))
        .arg(stale)
        .query_async(&mut conn)
        .await
        .unwrap();
    writer.apply(NS, &[policy("marker", 1)]).await.unwrap();
    eventually("marker", || in_force(&store, "marker").is_some()).await;
    assert_eq!(in_force(&store, "a"), Some((3, 3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_message_is_refused_and_policy_stays() {
    let server = RedisServer::start().unwrap();
    let store = PolicyStore::new();
    let mut handle = follower(&server, &store);
    handle.wait_synced(1).await;
    let writer = RedisPolicies::connect(&server.url()).await.unwrap();
    writer.apply(NS, &[policy("a", 1)]).await.unwrap();
    eventually("a", || in_force(&store, "a").is_some()).await;
    // Another writer publishes an invalid version 5 directly.
    let bad = r#"{"name":"a","version":5,"policy":{"apiVersion":"fluxgate.io/v1beta1","kind":"TrafficPolicy","metadata":{"name":"a"},"spec":{"rateLimit":{"requestsPerSecond":0,"burstSize":5}}}}"#;
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(changes_channel(NS))
        .arg(bad)
        .query_async(&mut conn)
        .await
        .unwrap();
    eventually("rejected", || handle.status().rejected == 1).await;
    assert_eq!(in_force(&store, "a"), Some((1, 1)));
    assert_eq!(store.status().rejected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_propagate() {
    let server = RedisServer::start().unwrap();
    let store = PolicyStore::new();
    let mut handle = follower(&server, &store);
    handle.wait_synced(1).await;
    let writer = RedisPolicies::connect(&server.url()).await.unwrap();
    writer.apply(NS, &[policy("a", 1)]).await.unwrap();
    eventually("a", || in_force(&store, "a").is_some()).await;
    assert_eq!(writer.delete(NS, "a").await.unwrap(), Some(2));
    assert_eq!(writer.delete(NS, "a").await.unwrap(), None);
    eventually("a deleted", || in_force(&store, "a").is_none()).await;
    // Re-created: its version continues after the delete, so followers take it.
    assert_eq!(
        writer.apply(NS, &[policy("a", 4)]).await.unwrap()[0].version,
        3
    );
    eventually("a back", || in_force(&store, "a") == Some((4, 3))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_startup_is_an_error_and_the_follower_retries() {
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    server.stop();

    let error = RedisPolicies::connect(&url).await.unwrap_err();
    assert!(error.is_unreachable(), "{error}");
    let store = PolicyStore::new();
    let mut source = RedisSource::new(&url, NS, store.clone())
        .unwrap()
        .backoff(Duration::from_millis(20), Duration::from_millis(100));
    let error = source.load().await.unwrap_err();
    assert!(
        matches!(error, RedisStoreError::Unreachable { .. }),
        "{error}"
    );

    let mut handle = source.spawn();
    eventually("retries", || handle.status().failures >= 3).await;
    assert!(!handle.status().connected);
    assert!(handle.status().last_error.unwrap().is_unreachable());

    server.restart().unwrap();
    handle.wait_synced(1).await;
    RedisPolicies::connect(&url)
        .await
        .unwrap()
        .apply(NS, &[policy("a", 1)])
        .await
        .unwrap();
    eventually("a", || in_force(&store, "a").is_some()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_work_and_are_never_printed() {
    let server = RedisServer::builder()
        .password("s3cret-pw")
        .start()
        .unwrap();
    let writer = RedisPolicies::connect(&server.url()).await.unwrap();
    writer.apply(NS, &[policy("a", 1)]).await.unwrap();
    let wrong = server.url().replace("s3cret-pw", "wrong-pw");
    let error = RedisPolicies::connect(&wrong).await.unwrap_err();
    assert!(!error.to_string().contains("wrong-pw"), "{error}");
    assert!(!format!("{writer:?}").contains("s3cret-pw"));
}

/// The text of a policy file holding `checkout` at `rps`.
fn file_policy(rps: u32) -> String {
    format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{name: checkout, namespace: {NS}}}\n\
         spec:\n  rateLimit: {{requestsPerSecond: {rps}, burstSize: 5}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_redis_copy_falls_back_to_the_policy_file() {
    let server = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, file_policy(5)).unwrap();
    let store = PolicyStore::new();
    FileSource::new(&file, store.clone()).load().unwrap();
    let mut follower = follower(&server, &store);
    follower.wait_synced(1).await;

    let slot = store.slot(&PolicyId::new(NS, "checkout"));
    let rps = || {
        slot.load_full()
            .map(|p| p.compiled().rate_limits()[0].requests_per_second)
    };
    let writer = RedisPolicies::connect(&server.url()).await.unwrap();
    let copy = parse_policies(file_policy(50).as_bytes()).unwrap();
    writer.apply(NS, &copy).await.unwrap();
    eventually("the Redis copy is in force", || rps() == Some(50.0)).await;

    assert!(writer.delete(NS, "checkout").await.unwrap().is_some());
    eventually("the file's policy is in force again", || rps() == Some(5.0)).await;
    assert_eq!(
        store.status().removed,
        0,
        "nothing was left without a policy"
    );
}
