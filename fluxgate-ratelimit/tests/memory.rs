//! Bounded memory: idle keys are evicted, the key count is capped, known clients keep their speed.

mod support;

use std::time::Duration;

use fluxgate_core::policy::{LimitAlgorithm, RateLimitSpec};
use fluxgate_ratelimit::RateLimitLayer;
use fluxgate_ratelimit::store::LocalStore;
use support::*;

fn layer(store: &LocalStore, algorithm: LimitAlgorithm) -> RateLimitLayer {
    let mut limit = RateLimitSpec::new(10.0, 2);
    limit.key_extractor = "header.x-api-key".into();
    limit.algorithm = algorithm;
    RateLimitLayer::builder()
        .limit(limit)
        .store(store.clone())
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_evicted() {
    for algorithm in [LimitAlgorithm::Gcra, LimitAlgorithm::SlidingWindow] {
        let store = LocalStore::new();
        let layer = layer(&store, algorithm);
        let (mut svc, _) = service(&layer);
        for i in 0..100 {
            status(
                &mut svc,
                with_header("192.0.2.1:1", "x-api-key", format!("k{i}").as_bytes()),
            )
            .await;
        }
        assert_eq!(store.key_count(), 100);
        assert_eq!(store.evict_idle(), 0, "{algorithm:?}: evicted busy keys");
        tokio::time::advance(Duration::from_millis(600)).await;
        assert_eq!(store.evict_idle(), 100, "{algorithm:?}");
        assert_eq!(store.key_count(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_keys_is_capped_and_spares_known_clients() {
    for algorithm in [LimitAlgorithm::Gcra, LimitAlgorithm::SlidingWindow] {
        let store = LocalStore::builder().max_keys(1024).build();
        let layer = layer(&store, algorithm);
        let (mut svc, _) = service(&layer);
        assert_eq!(
            status(&mut svc, with_header("192.0.2.1:1", "x-api-key", b"known")).await,
            200
        );
        let mut flood_admitted = 0;
        for i in 0..50_000 {
            let key = format!("flood-{i}");
            flood_admitted += u32::from(
                status(
                    &mut svc,
                    with_header("192.0.2.1:1", "x-api-key", key.as_bytes()),
                )
                .await
                    == 200,
            );
        }
        // Each of the 16 shards holds at most 64 keys, plus the overflow bucket.
        assert!(
            store.key_count() <= 1024 + 1,
            "{algorithm:?}: {} keys",
            store.key_count()
        );
        // Past the cap, new keys share the overflow bucket: a handful more got through, not 50k.
        assert!(
            flood_admitted <= 1024 + 2,
            "{algorithm:?}: {flood_admitted} flood requests admitted"
        );
        // The known client keeps its own bucket (one left of its burst).
        assert_eq!(
            status(&mut svc, with_header("192.0.2.1:1", "x-api-key", b"known")).await,
            200
        );
        // Once the flood is idle, new keys get their own buckets again.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            status(&mut svc, with_header("192.0.2.1:1", "x-api-key", b"late")).await,
            200
        );
        assert_eq!(
            status(&mut svc, with_header("192.0.2.1:1", "x-api-key", b"late2")).await,
            200
        );
        assert!(store.evicted_count() > 0);
    }
}

#[tokio::test(start_paused = true)]
async fn a_small_store_holds_every_key_up_to_its_maximum() {
    for algorithm in [LimitAlgorithm::Gcra, LimitAlgorithm::SlidingWindow] {
        let store = LocalStore::builder().max_keys(64).build();
        let layer = layer(&store, algorithm);
        let (mut svc, _) = service(&layer);
        // 64 keys, each with its own bucket: each gets its whole burst of 2, whatever its hash.
        for i in 0..64 {
            let key = format!("k{i}");
            for n in 0..2 {
                let req = with_header("192.0.2.1:1", "x-api-key", key.as_bytes());
                assert_eq!(
                    status(&mut svc, req).await,
                    200,
                    "{algorithm:?}: {key} #{n}"
                );
            }
        }
        assert_eq!(store.key_count(), 64, "{algorithm:?}");
        // The 65th and 66th new keys share the overflow bucket (burst 2): the third is refused.
        for (key, want) in [("new-1", 200), ("new-2", 200), ("new-3", 429)] {
            let req = with_header("192.0.2.1:1", "x-api-key", key.as_bytes());
            assert_eq!(status(&mut svc, req).await, want, "{algorithm:?}: {key}");
        }
    }
}
