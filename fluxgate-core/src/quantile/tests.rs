use proptest::prelude::*;

use super::*;

/// The nearest-rank quantile of sorted samples.
fn exact(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn assert_close(estimate: Duration, exact: Duration) -> Result<(), TestCaseError> {
    let error = estimate.abs_diff(exact).as_secs_f64();
    let bound = (exact.min(MAX_TRACKED).as_secs_f64() * RELATIVE_ERROR).max(0.5e-6);
    let clamped = estimate.abs_diff(exact.min(MAX_TRACKED)).as_secs_f64();
    prop_assert!(
        error.min(clamped) <= bound * (1.0 + 1e-9),
        "estimate {estimate:?} vs exact {exact:?}"
    );
    Ok(())
}

fn check(samples: &[Duration]) -> Result<(), TestCaseError> {
    let latencies = LatencyQuantiles::new(Duration::from_secs(1), 4).unwrap();
    let now = latencies.ticker.origin_for_tests();
    for &sample in samples {
        latencies.record(now, sample);
    }
    let later = now + Duration::from_secs(1);
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    prop_assert_eq!(latencies.count(later), samples.len() as u64);
    for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
        let estimate = latencies.quantile(later, q);
        if sorted.is_empty() {
            prop_assert_eq!(estimate, None);
        } else {
            assert_close(estimate.unwrap(), exact(&sorted, q))?;
        }
    }
    Ok(())
}

/// Log-normal-ish: exp of a sum of uniforms (close to normal), centred on about 20ms.
fn log_normal() -> impl Strategy<Value = Duration> {
    prop::array::uniform4(0.0f64..1.0).prop_map(|u| {
        let z = (u.iter().sum::<f64>() - 2.0) * 1.7;
        Duration::from_secs_f64(0.02 * (z * 1.5).exp())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn uniform(samples in prop::collection::vec((0u64..2_000_000).prop_map(Duration::from_micros), 0..2_000)) {
        check(&samples)?;
    }

    #[test]
    fn log_normalish(samples in prop::collection::vec(log_normal(), 1..2_000)) {
        check(&samples)?;
    }

    #[test]
    fn bimodal(
        samples in prop::collection::vec(
            prop_oneof![
                9 => (800u64..1_500).prop_map(Duration::from_micros),
                1 => (200u64..900).prop_map(Duration::from_millis),
            ],
            1..2_000,
        )
    ) {
        check(&samples)?;
    }

    #[test]
    fn any_durations_including_huge(samples in prop::collection::vec(
        (0u64..u64::MAX / 2).prop_map(Duration::from_nanos), 1..200)
    ) {
        check(&samples)?;
    }
}

#[tokio::test(start_paused = true)]
async fn slides_with_the_paused_clock() {
    let bucket = Duration::from_millis(100);
    let latencies = LatencyQuantiles::new(bucket, 10).unwrap();
    for _ in 0..10 {
        latencies.record(Instant::now(), Duration::from_millis(10));
        tokio::time::advance(bucket).await;
    }
    for _ in 0..5 {
        latencies.record(Instant::now(), Duration::from_millis(500));
        tokio::time::advance(bucket).await;
    }
    // The window now holds five buckets of 10ms and five of 500ms.
    let now = Instant::now();
    assert_eq!(latencies.count(now), 10);
    let [p50, p60] = latencies.quantiles(now, [0.5, 0.6]);
    assert!(p50.unwrap().abs_diff(Duration::from_millis(10)) < Duration::from_micros(200));
    assert!(p60.unwrap().abs_diff(Duration::from_millis(500)) < Duration::from_millis(8));
    tokio::time::advance(bucket * 5).await;
    assert_eq!(latencies.quantile(Instant::now(), 0.5), p60);
    tokio::time::advance(bucket * 5).await;
    assert_eq!(latencies.count(Instant::now()), 0);
    assert_eq!(latencies.quantile(Instant::now(), 0.99), None);
}

#[test]
fn refuses_bad_shapes() {
    assert_eq!(
        LatencyQuantiles::new(Duration::from_secs(1), 0).unwrap_err(),
        WindowError::NoBuckets
    );
}
