use std::sync::Arc;

use proptest::prelude::*;

use super::*;

const SEC: Duration = Duration::from_secs(1);

#[test]
fn refuses_bad_shapes() {
    assert_eq!(TimeWindow::new(SEC, 0).unwrap_err(), WindowError::NoBuckets);
    assert_eq!(
        TimeWindow::new(SEC, MAX_BUCKETS + 1).unwrap_err(),
        WindowError::TooManyBuckets(MAX_BUCKETS + 1)
    );
    assert!(matches!(
        TimeWindow::new(Duration::from_micros(10), 5),
        Err(WindowError::BucketTooShort(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn slides_bucket_by_bucket() {
    let window = TimeWindow::new(SEC, 3).unwrap();
    let t0 = Instant::now();
    for i in 0..5u32 {
        let at = t0 + SEC * i + Duration::from_millis(500);
        for _ in 0..=i {
            window.record(at, Outcome::Failure);
        }
    }
    // Buckets hold 1, 2, 3, 4, 5 failures; at 5s the window is buckets 2..5.
    let totals = window.totals(t0 + SEC * 5);
    assert_eq!(
        totals,
        WindowTotals {
            requests: 12,
            failures: 12,
            overloads: 0
        }
    );
    assert_eq!(window.totals(t0 + SEC * 7).requests, 5);
    assert_eq!(window.totals(t0 + SEC * 8).requests, 0);
}

#[tokio::test(start_paused = true)]
async fn old_records_do_not_erase_new_ones() {
    let window = TimeWindow::new(SEC, 2).unwrap();
    let t0 = Instant::now();
    window.record(t0 + SEC * 3, Outcome::Success);
    // Same slot (epoch 0 and 3 share slot 0 of 3), a whole ring older: dropped.
    window.record(t0, Outcome::Success);
    assert_eq!(window.totals(t0 + SEC * 4).requests, 1);
    assert_eq!(window.totals(t0 + SEC).requests, 0);
}

#[tokio::test(start_paused = true)]
async fn concurrent_records_are_all_counted() {
    let window = Arc::new(TimeWindow::new(Duration::from_millis(10), 4).unwrap());
    let now = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let window = Arc::clone(&window);
            std::thread::spawn(move || {
                for i in 0..10_000u32 {
                    let outcome = if i % 10 == 0 {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    };
                    window.record(now, outcome);
                }
            })
        })
        .collect();
    for task in tasks {
        task.join().unwrap();
    }
    let totals = window.totals(now + Duration::from_millis(10));
    assert_eq!((totals.requests, totals.failures), (40_000, 4_000));
}

proptest! {
    /// The window equals a naive count of the events whose bucket lies in the last `buckets`
    /// completed buckets, whatever the order of the records.
    #[test]
    fn matches_a_naive_count(
        buckets in 1u32..8,
        events in prop::collection::vec((0u64..4_000, 0u8..3), 0..200),
        read_at in 0u64..5_000,
    ) {
        let width = Duration::from_millis(100);
        let window = TimeWindow::new(width, buckets).unwrap();
        let t0 = window.ticker.origin_for_tests();
        let mut sorted = events;
        sorted.sort_unstable();
        for &(ms, kind) in &sorted {
            let outcome = [Outcome::Success, Outcome::Failure, Outcome::Overload][usize::from(kind)];
            window.record(t0 + Duration::from_millis(ms), outcome);
        }
        let current = read_at / 100;
        let in_window = |ms: u64| ms / 100 < current && ms / 100 + u64::from(buckets) >= current;
        let count = |k: Option<u8>| sorted.iter()
            .filter(|(ms, kind)| in_window(*ms) && k.is_none_or(|k| k == *kind))
            .count() as u64;
        let totals = window.totals(t0 + Duration::from_millis(read_at));
        // Records in time order never drop samples, so the count is exact when the read is not
        // behind the newest record by a whole ring.
        let newest = sorted.last().map_or(0, |e| e.0 / 100);
        if newest <= current {
            prop_assert_eq!(totals.requests, count(None));
            prop_assert_eq!(totals.failures, count(Some(1)));
            prop_assert_eq!(totals.overloads, count(Some(2)));
        }
        if let Some(rate) = totals.success_rate() {
            prop_assert!((0.0..=1.0).contains(&rate));
        }
    }
}
