//! One stack type whichever store keeps the rate-limit counters: a stack over the local store
//! and one over a Redis store (a real `redis-server`, started here) in one `Vec`, both refusing
//! over the limit.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::time::Duration;

use fluxgate::policy::SyncMode;
use fluxgate::ratelimit::RateLimitLayer;
use fluxgate::ratelimit::store::{AnyStore, RedisOptions, RedisStore};
use fluxgate::stack::{Stack, StackBuilder};
use fluxgate::store::{PolicyId, PolicyStore};
use fluxgate_test_support::RedisServer;
use http::{Request, Response, StatusCode};
use tower::util::ServiceFn;
use tower::{ServiceExt, service_fn};

const POLICY: &str = "apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: web, namespace: shop}
spec:
  rateLimit: {requestsPerSecond: 1, burstSize: 2, keyExtractor: header.X-Client-Id}
";

type Answer = Ready<Result<Response<String>, Infallible>>;
type Endpoint = ServiceFn<fn(Request<String>) -> Answer>;

fn hello(_: Request<String>) -> Answer {
    ready(Ok(Response::new("hello".to_owned())))
}

async fn statuses(stack: &Stack<&'static str, Endpoint, String, String>) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let request = Request::get("/")
            .header("x-client-id", "greedy")
            .body(String::new())
            .unwrap();
        let response = stack.service().oneshot(request).await.unwrap();
        statuses.push(response.status());
    }
    statuses
}

#[tokio::test]
async fn local_and_redis_stacks_share_one_type_and_both_refuse() {
    let server = RedisServer::start().unwrap();
    let store = PolicyStore::new();
    store.apply_bytes(POLICY.as_bytes(), None).unwrap();
    let id = PolicyId::new("shop", "web");
    let endpoint: Endpoint = service_fn(hello as fn(Request<String>) -> Answer);

    let redis = RedisStore::connect(&server.url(), RedisOptions::new().mode(SyncMode::Strict))
        .await
        .unwrap();
    let shared = RateLimitLayer::builder()
        .store(AnyStore::from(redis))
        .follow(store.slot(&id));
    let stacks: Vec<Stack<&'static str, Endpoint, String, String>> = vec![
        StackBuilder::new(&store, &id)
            .endpoint("a", endpoint, 1)
            .build()
            .unwrap(),
        StackBuilder::new(&store, &id)
            .rate_limit(shared)
            .endpoint("a", endpoint, 1)
            .build()
            .unwrap(),
    ];
    assert!(stacks[0].rate_limit().metrics().store.is_none());
    for (stack, name) in stacks.iter().zip(["local", "redis"]) {
        let statuses = tokio::time::timeout(Duration::from_secs(30), statuses(stack))
            .await
            .unwrap();
        // Burst 2 at 1 per second: two pass, the next two are refused.
        assert_eq!(statuses[..2], [StatusCode::OK; 2], "{name}");
        assert!(
            statuses[2..].contains(&StatusCode::TOO_MANY_REQUESTS),
            "{name}: {statuses:?}"
        );
        assert_eq!(stack.rate_limit().metrics().admitted, 2, "{name}");
    }
    let redis = stacks[1].rate_limit().metrics().store;
    assert!(redis.is_some_and(|health| !health.down), "{redis:?}");
}
