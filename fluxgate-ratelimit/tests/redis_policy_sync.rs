//! A policy's per-limit `sync` and `onStoreFailure` reach the Redis store: one store (with
//! default options) serves a strict limit and a synced limit side by side, and each limit fails
//! as its policy says.
#![cfg(feature = "redis")]

use std::convert::Infallible;
use std::time::Duration;

use fluxgate_core::key::PeerAddr;
use fluxgate_core::policy::{RateLimitSpec, StoreFailure, SyncMode};
use fluxgate_ratelimit::store::{RedisOptions, RedisStore};
use fluxgate_ratelimit::{RateLimit, RateLimitLayer};
use fluxgate_test_support::RedisServer;
use http::{Request, Response};
use tower::{Layer, ServiceExt, service_fn};

type Svc =
    RateLimit<tower::util::BoxCloneSyncService<Request<()>, Response<()>, Infallible>, RedisStore>;

fn limit(name: &str, mode: SyncMode, on_failure: StoreFailure) -> RateLimitSpec {
    let mut limit = RateLimitSpec::new(1.0, 3);
    limit.name = Some(name.to_owned());
    limit.key_extractor = "header.x-client".into();
    limit.sync.mode = mode;
    limit.on_store_failure = on_failure;
    // A limit's own `sync.timeout` (5ms by default) bounds its store calls: long enough here
    // for a loaded machine, where a strict call that times out fails closed (a 429).
    limit.sync.timeout = fluxgate_core::policy::Duration::from_secs(5);
    limit
}

fn service(store: &RedisStore, limit: RateLimitSpec) -> Svc {
    let layer = RateLimitLayer::builder()
        .limit(limit)
        .store(store.clone())
        .build()
        .unwrap();
    let inner = service_fn(|_req: Request<()>| async { Ok(Response::new(())) });
    layer.layer(tower::util::BoxCloneSyncService::new(inner))
}

async fn status(service: &Svc) -> u16 {
    let mut request = Request::new(());
    request
        .extensions_mut()
        .insert(PeerAddr("192.0.2.1:1000".parse().unwrap()));
    request
        .headers_mut()
        .insert("x-client", http::HeaderValue::from_static("c1"));
    let response = service.clone().oneshot(request).await.unwrap();
    response.status().as_u16()
}

async fn statuses(service: &Svc, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(status(service).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_and_synced_limits_share_one_store() {
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    // Two replicas, each one store with default (synced) options.
    let a = RedisStore::connect(&url, RedisOptions::new().timeout(Duration::from_secs(5)))
        .await
        .unwrap();
    let b = RedisStore::connect(&url, RedisOptions::new().timeout(Duration::from_secs(5)))
        .await
        .unwrap();
    let strict = limit("strict", SyncMode::Strict, StoreFailure::Closed);
    let synced = limit("synced", SyncMode::Synced, StoreFailure::Open);
    let (strict_a, strict_b) = (service(&a, strict.clone()), service(&b, strict));
    let (synced_a, synced_b) = (service(&a, synced.clone()), service(&b, synced));

    // Strict: every decision in Redis, so replica b sees a's three admissions at once.
    assert_eq!(statuses(&strict_a, 3).await, [200, 200, 200]);
    assert_eq!(status(&strict_b).await, 429);
    assert_eq!(a.stats().strict_decisions, 3);
    assert_eq!(a.stats().local_decisions, 0);

    // Synced: local decisions; without a sync b does not know of a's admissions yet.
    assert_eq!(statuses(&synced_a, 3).await, [200, 200, 200]);
    assert_eq!(a.stats().local_decisions, 3);
    assert_eq!(a.stats().strict_decisions, 3);
    assert_eq!(status(&synced_b).await, 200);
    assert_eq!(b.stats().local_decisions, 1);

    // Redis down: the strict limit fails closed, the synced limit open, as each policy says.
    server.stop();
    assert_eq!(status(&strict_a).await, 429);
    assert_eq!(statuses(&synced_a, 3).await, [200, 200, 200]);
    assert!(a.stats().faults >= 1);
}
