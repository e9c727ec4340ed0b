//! Gateway replicas sharing Redis: one rate limit held across two replicas, and a policy
//! applied in Redis reaching every replica. Each test starts its own `redis-server`.

use std::time::Duration;

use bytes::Bytes;
use fluxgate_core::policy::parse_policies;
use fluxgate_core::store::{PolicyId, PolicyStore, RedisPolicies, RedisSource};
use fluxgate_gateway::stack::{Gateway, StackConfig};
use fluxgate_ratelimit::store::{RedisOptions, RedisStore};
use fluxgate_test_support::RedisServer;
use http::{Request, StatusCode};
use http_body_util::Empty;
use tower::ServiceExt;

mod support;

use support::gateway::Named;

fn policy(rps: u32, burst: u32) -> String {
    format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{name: shop, namespace: test}}\n\
         spec:\n  rateLimit: {{requestsPerSecond: {rps}, burstSize: {burst}, keyExtractor: header.X-Client-Id}}\n"
    )
}

struct Replica {
    store: PolicyStore,
    gateway: Gateway,
    _sync: fluxgate_ratelimit::store::SyncHandle,
}

async fn replica(redis: &str, upstream: &Named, text: &str) -> Replica {
    let store = PolicyStore::new();
    store.apply_bytes(text.as_bytes(), None).unwrap();
    let limits = RedisStore::connect(redis, RedisOptions::new().replicas(2))
        .await
        .unwrap();
    let sync = limits.spawn_sync();
    let config = StackConfig::new(vec![upstream.spec(1)]).rate_limit_store(limits);
    let gateway = Gateway::build(&store, &PolicyId::new("test", "shop"), &config).unwrap();
    Replica {
        store,
        gateway,
        _sync: sync,
    }
}

async fn status(replica: &Replica, client: &str) -> StatusCode {
    let request = Request::get("http://gateway/")
        .header("x-client-id", client)
        .body(Empty::<Bytes>::new())
        .unwrap();
    replica
        .gateway
        .service()
        .oneshot(request)
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn two_replicas_hold_one_client_to_one_limit() {
    let redis = RedisServer::start().unwrap();
    let upstream = Named::start("up").await;
    let text = policy(2, 20);
    let a = replica(&redis.url(), &upstream, &text).await;
    let b = replica(&redis.url(), &upstream, &text).await;

    // 80 requests over about 0.8s, alternating replicas: one quota allows 20 + 2/s.
    let mut admitted = 0;
    for i in 0..80 {
        let replica = if i % 2 == 0 { &a } else { &b };
        match status(replica, "alice").await {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("two replicas admitted {admitted} of 80 (one quota: 20 + 2/s)");
    // Alone, each replica would admit its own 20+: together they stay near one quota.
    assert!(
        (18..=26).contains(&admitted),
        "admitted {admitted} of 80 across two replicas"
    );
    // Another client still passes on both.
    assert_eq!(status(&a, "bob").await, StatusCode::OK);
    assert_eq!(status(&b, "bob").await, StatusCode::OK);
}

#[tokio::test]
async fn a_policy_applied_in_redis_reaches_every_replica() {
    let redis = RedisServer::start().unwrap();
    let upstream = Named::start("up").await;
    let a = replica(&redis.url(), &upstream, &policy(1000, 1000)).await;
    let b = replica(&redis.url(), &upstream, &policy(1000, 1000)).await;
    let id = PolicyId::new("test", "shop");
    let mut followers = Vec::new();
    for r in [&a, &b] {
        followers.push(
            RedisSource::new(&redis.url(), "test", r.store.clone())
                .unwrap()
                .spawn(),
        );
    }
    let writer = RedisPolicies::connect(&redis.url()).await.unwrap();
    let strict = parse_policies(policy(1, 1).as_bytes()).unwrap();
    writer.apply("test", &strict).await.unwrap();
    for r in [&a, &b] {
        let mut slot = r.store.slot(&id);
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let burst = slot
                    .load_full()
                    .map(|p| p.compiled().rate_limits()[0].burst_size);
                if burst == Some(1) {
                    break;
                }
                slot.changed().await.unwrap();
            }
        })
        .await
        .expect("the Redis policy reached the replica");
    }
    // The new limit is in force: a burst of one.
    assert_eq!(status(&a, "carol").await, StatusCode::OK);
    assert_eq!(status(&a, "carol").await, StatusCode::TOO_MANY_REQUESTS);
    drop(followers);
}
