//! Progressive steps with passing analysis, holding on too few samples, policy versions.

mod support;

use std::time::Duration;

use fluxgate_canary::{CanaryOptions, Decision, InsufficientSamples, Phase};
use fluxgate_core::store::{PolicyId, PolicyStore};
use support::{Backend, Router, burst, router, router_with, yaml};
use tokio::time::sleep;

const SEC: Duration = Duration::from_secs(1);

/// Sends `n` requests, then sleeps past the next analysis (the test runs 1ms after a boundary).
async fn interval(r: &Router, n: usize) {
    burst(r, n).await;
    sleep(SEC).await;
}

#[tokio::test(start_paused = true)]
async fn steps_advance_while_analysis_passes_and_the_last_one_promotes() {
    let (r, _, canary) = router(
        "{steps: [5, 10, 25, 50], interval: 1s, minRequests: 20, \
         metrics: {targetErrorRate: 0.01, targetP99Latency: 300ms}}",
    );
    let handle = r.handle();
    sleep(Duration::from_millis(1)).await;
    let mut weights = vec![handle.snapshot().weight];
    for _ in 0..4 {
        interval(&r, 2000).await;
        let snapshot = handle.snapshot();
        weights.push(snapshot.weight);
        assert_eq!(snapshot.failed_checks, 0);
    }
    // The last interval passes at 50: promoted, and the weight says 100.
    assert_eq!(weights, [5, 10, 25, 50, 100]);
    let snapshot = handle.snapshot();
    assert_eq!(snapshot.phase, Phase::Promoted);
    assert_eq!(snapshot.transitions.advanced, 3);
    assert_eq!(snapshot.transitions.promoted, 1);
    // Promoted: every request goes to the canary.
    let before = canary.calls();
    burst(&r, 100).await;
    assert_eq!(canary.calls() - before, 100);
}

#[tokio::test(start_paused = true)]
async fn too_few_samples_hold_neither_pass_nor_fail() {
    let (r, _, _) = router(
        "{steps: [10, 50], interval: 1s, minRequests: 20, metrics: {targetErrorRate: 0.01}}",
    );
    let handle = r.handle();
    sleep(Duration::from_millis(1)).await;
    for _ in 0..3 {
        interval(&r, 50).await; // about 5 canary requests per interval
        let snapshot = handle.snapshot();
        assert_eq!((snapshot.weight, snapshot.failed_checks), (10, 0));
        assert!(matches!(
            snapshot.last_decision,
            Some((
                Decision::Held {
                    min_requests: 20,
                    ..
                },
                _
            ))
        ));
    }
    assert_eq!(handle.snapshot().transitions.held, 3);
    interval(&r, 1000).await;
    assert_eq!(handle.snapshot().weight, 50);
}

#[tokio::test(start_paused = true)]
async fn too_few_samples_can_count_as_failures() {
    let options = CanaryOptions::default().insufficient_samples(InsufficientSamples::Fail);
    let (r, _, _) = router_with("{weight: 10, interval: 1s, failureThreshold: 2}", options);
    sleep(Duration::from_millis(1)).await;
    interval(&r, 0).await;
    assert_eq!(r.handle().snapshot().failed_checks, 1);
    interval(&r, 0).await;
    assert_eq!(r.handle().snapshot().phase, Phase::RolledBack);
}

#[tokio::test(start_paused = true)]
async fn a_new_policy_version_keeps_progress() {
    let store = PolicyStore::new();
    let spec = "{steps: [5, 10, 20, 40], interval: 1s, minRequests: 10}";
    store.apply_bytes(yaml(spec).as_bytes(), None).unwrap();
    let slot = store.slot(&PolicyId::new("t", "web"));
    let (r, judge) =
        fluxgate_canary::Canary::new(Backend::new("stable"), Backend::new("canary"), slot).unwrap();
    let r: Router = r;
    judge.spawn().detach();
    let handle = r.handle();
    sleep(Duration::from_millis(1)).await;
    interval(&r, 1000).await;
    interval(&r, 1000).await;
    assert_eq!(handle.snapshot().weight, 20);
    // New targets, same steps: the step stays.
    let spec =
        "{steps: [5, 10, 20, 40], interval: 1s, minRequests: 10, metrics: {targetErrorRate: 0.05}}";
    store.apply_bytes(yaml(spec).as_bytes(), None).unwrap();
    let snapshot = handle.snapshot();
    assert_eq!(
        (snapshot.weight, snapshot.step, snapshot.generation),
        (20, Some(2), Some(2))
    );
    // New steps: the highest step at or below the weight.
    let spec = "{steps: [15, 30, 60], interval: 1s, minRequests: 10}";
    store.apply_bytes(yaml(spec).as_bytes(), None).unwrap();
    let snapshot = handle.snapshot();
    assert_eq!((snapshot.weight, snapshot.step), (15, Some(0)));
    assert_eq!(snapshot.transitions.policy_updates, 2);
    interval(&r, 1000).await;
    assert_eq!(handle.snapshot().weight, 30);
    // The policy removed: everything to stable.
    let _ = store.delete(&PolicyId::new("t", "web"));
    assert!(!handle.snapshot().enabled);
}
