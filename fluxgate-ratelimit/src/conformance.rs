//! The conformance suite every [`RateLimitStore`] passes (feature `test-support`).
//!
//! Each function checks one property on a fresh store from `make` and panics with a message
//! on failure. Run them on tokio's paused clock (`#[tokio::test(start_paused = true)]`):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use fluxgate_ratelimit::{conformance, store::LocalStore};
//! conformance::run_all(LocalStore::new).await;
//! # }
//! ```
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fluxgate_core::policy::LimitAlgorithm;

use crate::Quota;
use crate::store::{Checks, KeyRef, LimiterSpec, Outcome, RateLimitStore};

const ALGORITHMS: [LimitAlgorithm; 2] = [LimitAlgorithm::Gcra, LimitAlgorithm::SlidingWindow];

async fn admitted<St: RateLimitStore>(store: &St, limiter: &St::Limiter, key: KeyRef<'_>) -> bool {
    let mut checks = Checks::new();
    checks.push(limiter, key, false);
    store
        .check(&checks)
        .await
        .expect("store answers")
        .admitted()
}

/// Runs every check of the suite.
pub async fn run_all<St: RateLimitStore>(make: impl Fn() -> St) {
    burst_then_refuse(&make).await;
    refills_at_rate(&make).await;
    keys_are_independent(&make).await;
    multiple_limits_refund(&make).await;
    shadow_never_refuses(&make).await;
    identity_keeps_counters(&make).await;
}

/// A quiet key gets exactly `burstSize` at once, then a refusal with a positive retry delay.
pub async fn burst_then_refuse<St: RateLimitStore>(make: &impl Fn() -> St) {
    for algorithm in ALGORITHMS {
        let store = make();
        let limiter = store.limiter(&LimiterSpec::new("burst", algorithm, Quota::new(10.0, 5)));
        for i in 0..5 {
            assert!(
                admitted(&store, &limiter, KeyRef::Bytes(b"k")).await,
                "{algorithm:?}: request {i} refused"
            );
        }
        let mut checks = Checks::new();
        checks.push(&limiter, KeyRef::Bytes(b"k"), false);
        let verdict = store.check(&checks).await.unwrap();
        match verdict.outcome(0) {
            Outcome::Refused { retry_after } => assert!(retry_after > Duration::ZERO),
            other => panic!("{algorithm:?}: expected a refusal, got {other:?}"),
        }
    }
}

/// After a refusal, waiting the retry delay admits again; the long-run rate is the quota's.
pub async fn refills_at_rate<St: RateLimitStore>(make: &impl Fn() -> St) {
    for algorithm in ALGORITHMS {
        let store = make();
        let limiter = store.limiter(&LimiterSpec::new("rate", algorithm, Quota::new(10.0, 1)));
        let mut count = 0;
        // One request every 10ms for 10s: 10 per second are admitted (one more at the start).
        for _ in 0..1000 {
            if admitted(&store, &limiter, KeyRef::Bytes(b"k")).await {
                count += 1;
            }
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        assert!(
            (99..=101).contains(&count),
            "{algorithm:?}: {count} admitted in 10s at 10/s"
        );
    }
}

/// Two keys never share a bucket; an IP and the same text as bytes are different keys.
pub async fn keys_are_independent<St: RateLimitStore>(make: &impl Fn() -> St) {
    for algorithm in ALGORITHMS {
        let store = make();
        let limiter = store.limiter(&LimiterSpec::new("keys", algorithm, Quota::new(1.0, 1)));
        assert!(admitted(&store, &limiter, KeyRef::Bytes(b"a")).await);
        assert!(!admitted(&store, &limiter, KeyRef::Bytes(b"a")).await);
        assert!(admitted(&store, &limiter, KeyRef::Bytes(b"b")).await);
        assert!(admitted(&store, &limiter, KeyRef::Ip("10.0.0.1".parse().unwrap())).await);
        assert!(admitted(&store, &limiter, KeyRef::Bytes(b"10.0.0.1")).await);
        assert!(admitted(&store, &limiter, KeyRef::Shared).await);
    }
}

/// A request refused by a later limit gives back what earlier limits took.
pub async fn multiple_limits_refund<St: RateLimitStore>(make: &impl Fn() -> St) {
    for algorithm in ALGORITHMS {
        let store = make();
        let wide = store.limiter(&LimiterSpec::new("wide", algorithm, Quota::new(1.0, 3)));
        let narrow = store.limiter(&LimiterSpec::new("narrow", algorithm, Quota::new(1.0, 1)));
        let mut both = Checks::new();
        both.push(&wide, KeyRef::Bytes(b"k"), false);
        both.push(&narrow, KeyRef::Bytes(b"k"), false);
        assert!(store.check(&both).await.unwrap().admitted());
        for _ in 0..5 {
            let verdict = store.check(&both).await.unwrap();
            assert_eq!(verdict.refused().map(|r| r.0), Some(1), "{algorithm:?}");
        }
        // The wide limit took only the admitted request: two are left.
        assert!(
            admitted(&store, &wide, KeyRef::Bytes(b"k")).await,
            "{algorithm:?}"
        );
        assert!(
            admitted(&store, &wide, KeyRef::Bytes(b"k")).await,
            "{algorithm:?}"
        );
        assert!(
            !admitted(&store, &wide, KeyRef::Bytes(b"k")).await,
            "{algorithm:?}"
        );
    }
}

/// A shadow limit reports what it would refuse but never refuses.
pub async fn shadow_never_refuses<St: RateLimitStore>(make: &impl Fn() -> St) {
    for algorithm in ALGORITHMS {
        let store = make();
        let limiter = store.limiter(&LimiterSpec::new("shadow", algorithm, Quota::new(1.0, 1)));
        let mut checks = Checks::new();
        checks.push(&limiter, KeyRef::Bytes(b"k"), true);
        assert!(store.check(&checks).await.unwrap().admitted());
        let verdict = store.check(&checks).await.unwrap();
        assert!(verdict.admitted());
        assert!(
            matches!(verdict.outcome(0), Outcome::ShadowRefused { .. }),
            "{algorithm:?}"
        );
    }
}

/// A limiter prepared again with the same identity and quota sees the same counters.
pub async fn identity_keeps_counters<St: RateLimitStore>(make: &impl Fn() -> St) {
    for algorithm in ALGORITHMS {
        let store = make();
        let spec = LimiterSpec::new("same", algorithm, Quota::new(1.0, 2));
        let first = store.limiter(&spec);
        assert!(admitted(&store, &first, KeyRef::Bytes(b"k")).await);
        assert!(admitted(&store, &first, KeyRef::Bytes(b"k")).await);
        let again = store.limiter(&spec);
        assert!(
            !admitted(&store, &again, KeyRef::Bytes(b"k")).await,
            "{algorithm:?}: counters lost"
        );
        drop(first);
    }
}
