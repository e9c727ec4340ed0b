//! One balancer shared by threads: each thread counts apart and the snapshot sums them; a busy
//! endpoint's latency is sampled.

mod common;

use std::time::Duration;

use common::{drive, endpoints};
use fluxgate_balance::Balance;
use fluxgate_core::policy::{BalanceAlgorithm, LoadBalancing};

fn policy(algorithm: BalanceAlgorithm) -> LoadBalancing {
    let mut p = LoadBalancing::default();
    p.algorithm = algorithm;
    p
}

/// Two OS threads, each with a runtime of its own and a clone of one balancer (as a gateway's
/// workers): nothing is lost in the sums, every in-flight count comes back to zero, and each
/// thread's least-request picks spread over both endpoints.
#[test]
fn clones_on_two_threads_add_up() {
    let (list, scripts) = endpoints(&[("a", 0, 1), ("b", 0, 1)]);
    let balance = Balance::new(policy(BalanceAlgorithm::LeastRequest), list);
    let handle = balance.handle();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let mut balance = balance.clone();
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .unwrap();
                let tally = rt.block_on(drive(&mut balance, 3_000, 8, None));
                assert_eq!(tally.errors, 0);
                assert!(tally.get("a") > 900 && tally.get("b") > 900, "{tally:?}");
            });
        }
    });
    let snapshot = handle.snapshot();
    let served: u64 = ["a", "b"]
        .iter()
        .map(|n| scripts[n].served.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    assert_eq!(served, 6_000);
    let totals: u64 = snapshot.iter().map(|e| e.totals.requests).sum();
    assert_eq!(totals, 6_000, "{snapshot:?}");
    assert!(snapshot.iter().all(|e| e.in_flight == 0), "{snapshot:?}");
    let last_second: u64 = snapshot.iter().map(|e| e.requests).sum();
    assert!(last_second <= 6_000);
}

/// An endpoint that serves 20,000 responses a second times one in 8; its p95 and latency
/// average still come from its latencies; back to quiet, it times every response again.
#[tokio::test(start_paused = true)]
async fn a_busy_endpoint_times_a_sample() {
    let (list, _) = endpoints(&[("a", 5, 1)]);
    let mut balance = Balance::new(policy(BalanceAlgorithm::PeakEwma), list);
    let handle = balance.handle();
    // 2,000 responses in each of the first two 100ms buckets; the evaluation at 200ms reads
    // the second.
    for _ in 0..2 {
        drive(&mut balance, 2_000, 10_000, None).await;
        tokio::time::advance(Duration::from_millis(95)).await;
    }
    drive(&mut balance, 2_000, 10_000, None).await;
    let busy = &handle.snapshot()[0];
    assert_eq!(busy.timed_one_in, 8, "{busy:?}");
    tokio::time::advance(Duration::from_secs(1)).await;
    let latest = &handle.snapshot()[0];
    let p95 = latest.p95.expect("a p95 from the sample");
    assert!(
        p95.abs_diff(Duration::from_millis(5)) < Duration::from_micros(200),
        "{p95:?}"
    );
    let ewma = latest.latency_ewma.expect("an average from the sample");
    assert!(
        ewma.abs_diff(Duration::from_millis(5)) < Duration::from_micros(200),
        "{ewma:?}"
    );
    // Quiet again: the next evaluation times every response.
    tokio::time::advance(Duration::from_secs(1)).await;
    drive(&mut balance, 1, 1, None).await;
    assert_eq!(handle.snapshot()[0].timed_one_in, 1);
}
