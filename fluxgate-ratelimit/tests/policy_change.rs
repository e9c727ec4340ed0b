//! Following a `PolicyStore`: a new version applies on the next request, counters survive.

mod support;

use fluxgate_core::store::{PolicyId, PolicyStore};
use fluxgate_ratelimit::RateLimitLayer;
use support::*;

fn doc(limits: &str) -> Vec<u8> {
    format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{ name: api, namespace: shop }}\nspec:\n  rateLimit:\n{limits}"
    )
    .into_bytes()
}

#[tokio::test(start_paused = true)]
async fn policy_change_keeps_unchanged_counters() {
    let store = PolicyStore::new();
    let layer = RateLimitLayer::from_slot(store.slot(&PolicyId::new("shop", "api")));
    let (mut svc, _) = service(&layer);
    // No policy yet: everything passes.
    for _ in 0..5 {
        assert_eq!(status(&mut svc, from("192.0.2.1:1")).await, 200);
    }
    let per_ip = "    - { name: per-ip, requestsPerSecond: 1, burstSize: 3, keyExtractor: ip }\n";
    store.apply_bytes(&doc(per_ip), None).unwrap();
    for _ in 0..3 {
        assert_eq!(status(&mut svc, from("192.0.2.1:1")).await, 200);
    }
    assert_eq!(status(&mut svc, from("192.0.2.1:1")).await, 429);

    // Add a second limit; the per-ip limit is unchanged, so its counters stay (still refused).
    let per_key = "    - { name: per-key, requestsPerSecond: 100, burstSize: 1, keyExtractor: header.x-api-key }\n";
    store
        .apply_bytes(&doc(&format!("{per_ip}{per_key}")), None)
        .unwrap();
    assert_eq!(
        status(&mut svc, from("192.0.2.1:1")).await,
        429,
        "per-ip counters were dropped"
    );
    assert_eq!(layer.metrics().limits.len(), 2);

    // A new rate for per-ip is a new quota: fresh counters, applied on the next request.
    let faster = "    - { name: per-ip, requestsPerSecond: 1, burstSize: 10, keyExtractor: ip }\n";
    store.apply_bytes(&doc(faster), None).unwrap();
    assert_eq!(status(&mut svc, from("192.0.2.1:1")).await, 200);
    // A new key source takes effect too: now keyed by header, each key its own bucket.
    let by_header =
        "    - { name: per-ip, requestsPerSecond: 1, burstSize: 1, keyExtractor: header.x-user }\n";
    store.apply_bytes(&doc(by_header), None).unwrap();
    assert_eq!(
        status(&mut svc, with_header("192.0.2.1:1", "x-user", b"u1")).await,
        200
    );
    assert_eq!(
        status(&mut svc, with_header("192.0.2.1:1", "x-user", b"u1")).await,
        429
    );
    assert_eq!(
        status(&mut svc, with_header("192.0.2.1:1", "x-user", b"u2")).await,
        200
    );
    // Metrics follow the limit identity (name, key, algorithm): the header-keyed one is new.
    let m = layer.metrics();
    assert_eq!(m.policy.as_deref(), Some("shop/api"));
    assert_eq!(m.limits[0].name, "per-ip");
    assert_eq!((m.limits[0].admitted, m.limits[0].refused), (2, 1));
    // Deleting the policy lifts the limits.
    store.delete(&PolicyId::new("shop", "api"));
    assert_eq!(
        status(&mut svc, with_header("192.0.2.1:1", "x-user", b"u1")).await,
        200
    );
}
