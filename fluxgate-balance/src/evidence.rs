//! Judging an endpoint on evidence rather than volume alone.
//!
//! Besides the volume rule (at least `minRequests` in the last second, then p95 and error rate),
//! an endpoint is drained when its recent samples make the verdict clear at any volume: a
//! one-sided binomial test rejects "at most 5% of requests slower than `maxP95Latency`" (a p95 at
//! or under the limit) or "an error rate at most `maxErrorRate`" at a false-positive rate of
//! [`ALPHA`], with at least [`MIN_BAD`] bad samples. Two horizons are tested: the last second
//! (reacts fast) and the last 5 seconds (low volume). Requests still in flight and already older
//! than the limit count as slow samples: a hanging endpoint is drained before its requests time
//! out. A third test judges the cohort of requests started between the limit and the limit +
//! 500ms ago: those still in flight are all slower than the limit, so an endpoint that turns
//! slow is convicted about `limit` + 100ms after the change, not once its fast past has aged
//! out of the windows. 13 slow samples of 13 are a verdict (p ≈ 1e-17); 1 of 3 is not
//! (p ≈ 0.14).
//!
//! Everything the request path does here is a few relaxed atomic adds.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use fluxgate_core::clock::Stamp;
use fluxgate_core::outcome::Outcome;
use fluxgate_core::window::{TimeWindow, WindowTotals};

/// The false-positive rate of one test (one endpoint, one horizon, one evaluation).
pub(crate) const ALPHA: f64 = 1e-4;
/// The false-positive rate the volume rule (a sample p95 over the limit with `minRequests`)
/// must also pass: a sample p95 over the limit is common at a true p95 just under it (2 slow
/// samples of 20 make it, one time in four at 5% slow).
pub(crate) const VOLUME_ALPHA: f64 = 0.01;
/// The share of samples allowed above the p95 limit.
pub(crate) const P95_SHARE_LIMIT: f64 = P95_SHARE;
/// The fewest bad samples that can drain an endpoint on evidence.
pub(crate) const MIN_BAD: u64 = 5;
/// The share of samples allowed above the p95 limit.
const P95_SHARE: f64 = 0.05;

/// Width and count of the start-time buckets of requests in flight (6.4s).
const AGE_BUCKET: Duration = Duration::from_millis(100);
const AGE_BUCKETS: usize = 64;

/// Bits of a started-requests count; the rest of the word tags its bucket.
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const TAG_MASK: u64 = u64::MAX >> COUNT_BITS;
/// Start-time buckets of the cohort of requests judged by their age (500ms).
const COHORT_BUCKETS: u64 = 5;

/// The width of the windows' buckets, and the horizons in buckets: the short (1s) and the long
/// (5s). One ring of `LONG_BUCKETS` serves both horizons (the short is its last buckets), so a
/// request is one write per window, not one per horizon.
pub(crate) const BUCKET: Duration = Duration::from_millis(100);
pub(crate) const SHORT_BUCKETS: u32 = 10;
pub(crate) const LONG_BUCKETS: u32 = 50;

/// The least age of a request [`Evidence::hanging`] counts as older than `limit`.
pub(crate) fn hanging_age(limit: Duration) -> Duration {
    let buckets = limit.as_nanos() / AGE_BUCKET.as_nanos() + 1;
    AGE_BUCKET.saturating_mul(u32::try_from(buckets).unwrap_or(u32::MAX))
}

/// One endpoint's evidence as the evaluation reads it: when its samples start counting, and
/// the clock of the start-time buckets. The samples themselves are kept per thread
/// ([`Samples`], one per stripe of the endpoint's counts) and summed here.
#[derive(Debug)]
pub(crate) struct Evidence {
    origin: Stamp,
    /// Nanoseconds from `origin` since when samples count (set when an endpoint returns).
    since: AtomicU64,
}

/// One thread's samples of one endpoint: slow samples, and the start times of the requests it
/// sent that are still in flight. Only that thread writes them (see
/// [`fluxgate_core::stripe`]); the evaluation sums every thread's.
#[derive(Debug)]
pub(crate) struct Samples {
    /// Samples over the limit (`Failure`) or not (`Success`), over the long horizon.
    slow: TimeWindow,
    /// Requests in flight by start-time bucket (absolute bucket modulo [`AGE_BUCKETS`]).
    started: [AtomicU32; AGE_BUCKETS],
    /// Requests started per bucket, tagged with their bucket: `bucket << COUNT_BITS | count`.
    sent: [AtomicU64; AGE_BUCKETS],
}

/// What the evidence says about one endpoint now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Verdict {
    /// Slow samples (in flight included) and samples, in the horizon that convicted, if any.
    pub(crate) slow: Option<(u64, u64)>,
    /// Bad and total samples, in the horizon that convicted, if any.
    pub(crate) errors: Option<(u64, u64)>,
    /// Requests in flight older than the limit.
    pub(crate) hanging: u64,
    /// Slow samples and samples over the last second, finished requests only.
    pub(crate) short: (u64, u64),
}

/// An endpoint's outcomes over the evidence's two horizons: the last [`SHORT_BUCKETS`] and the
/// last [`LONG_BUCKETS`] buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Outcomes {
    pub(crate) short: WindowTotals,
    pub(crate) long: WindowTotals,
}

impl Samples {
    /// Samples kept in `slow`, a window of [`LONG_BUCKETS`] buckets of [`BUCKET`].
    pub(crate) fn new(slow: TimeWindow) -> Self {
        Self {
            slow,
            started: std::array::from_fn(|_| AtomicU32::new(0)),
            sent: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// A request starts in start-time `bucket` ([`Evidence::bucket`]); give it back with
    /// [`finish`](Self::finish).
    pub(crate) fn start(&self, bucket: u64) {
        let at = (bucket % AGE_BUCKETS as u64) as usize;
        self.started[at].fetch_add(1, Ordering::Relaxed);
        let tag = bucket << COUNT_BITS;
        let sent = &self.sent[at];
        // One writer per stripe as a rule: a plain load and store, not a compare-and-swap
        // loop. A thread that shares the stripe (more threads than stripes) may lose a count
        // here, which only makes the cohort test a little less eager.
        let v = sent.load(Ordering::Relaxed);
        sent.store(
            if v >> COUNT_BITS == bucket & TAG_MASK {
                v.saturating_add(1).min(v | COUNT_MASK)
            } else {
                tag | 1
            },
            Ordering::Relaxed,
        );
    }

    /// Requests started in `bucket`, if it is still in the ring.
    fn sent_in(&self, bucket: u64) -> u64 {
        let v = self.sent[(bucket % AGE_BUCKETS as u64) as usize].load(Ordering::Relaxed);
        if v >> COUNT_BITS == bucket & TAG_MASK {
            v & COUNT_MASK
        } else {
            0
        }
    }

    /// Requests started in `bucket` still in flight (or in the bucket 6.4s before or after).
    fn open_in(&self, bucket: u64) -> u64 {
        u64::from(self.started[(bucket % AGE_BUCKETS as u64) as usize].load(Ordering::Relaxed))
    }

    /// A request that started in `bucket` is no longer in flight.
    pub(crate) fn finish(&self, bucket: u64) {
        let slot = &self.started[(bucket % AGE_BUCKETS as u64) as usize];
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Records a finished request: slow when over `limit`.
    /// (The outcome itself is in the endpoint's own window, which [`Evidence::verdict`] reads.)
    pub(crate) fn record(&self, now: Stamp, latency: Duration, limit: Duration) {
        let slow = if latency > limit {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        self.slow.record(now, slow);
    }
}

impl Evidence {
    pub(crate) fn new(origin: Stamp) -> Self {
        Self {
            origin,
            since: AtomicU64::new(0),
        }
    }

    /// The start-time bucket of a request sent at `now`.
    pub(crate) fn bucket(&self, now: Stamp) -> u64 {
        // AGE_BUCKET is a few milliseconds: never zero, and its nanoseconds fit a u64.
        const WIDTH: u64 = AGE_BUCKET.as_nanos() as u64;
        now.nanos_since(self.origin) / WIDTH
    }

    /// Of the requests started between `limit` and `limit` + 500ms ago: how many are still in
    /// flight (all slower than the limit) and how many there were. Unlike the windows of
    /// finished requests, this is not diluted by the fast answers an endpoint gave before it
    /// turned slow.
    pub(crate) fn cohort<'a>(
        &self,
        now: Stamp,
        limit: Duration,
        samples: &(impl Iterator<Item = &'a Samples> + Clone),
    ) -> (u64, u64) {
        let now_bucket = self.bucket(now);
        let min_age = u64::try_from(hanging_age(limit).as_nanos() / AGE_BUCKET.as_nanos())
            .unwrap_or(u64::MAX);
        let (mut k, mut n) = (0, 0);
        for back in min_age
            ..min_age
                .saturating_add(COHORT_BUCKETS)
                .min(AGE_BUCKETS as u64)
        {
            let Some(b) = now_bucket.checked_sub(back) else {
                break;
            };
            for s in samples.clone() {
                let sent = s.sent_in(b);
                n += sent;
                k += s.open_in(b).min(sent);
            }
        }
        (k, n)
    }

    /// Samples count from `now` on (an endpoint back from a drain starts with a clean slate).
    pub(crate) fn reset(&self, now: Stamp) {
        self.since
            .store(now.nanos_since(self.origin), Ordering::Relaxed);
    }

    /// Requests in flight that started more than `limit` ago (a lower bound: requests older than
    /// the 6.4s the buckets cover may be counted as younger).
    pub(crate) fn hanging<'a>(
        &self,
        now: Stamp,
        limit: Duration,
        samples: &(impl Iterator<Item = &'a Samples> + Clone),
    ) -> u64 {
        let now_bucket = self.bucket(now);
        let min_age = u64::try_from(hanging_age(limit).as_nanos() / AGE_BUCKET.as_nanos())
            .unwrap_or(u64::MAX);
        if min_age >= AGE_BUCKETS as u64 {
            return 0;
        }
        (min_age..AGE_BUCKETS as u64)
            .filter_map(|back| now_bucket.checked_sub(back))
            .map(|b| samples.clone().map(|s| s.open_in(b)).sum::<u64>())
            .sum()
    }

    /// The verdict of both tests over both horizons; the outcomes come from the endpoint's own
    /// window, `outcomes` ([`BUCKET`] wide, at least [`LONG_BUCKETS`] long).
    pub(crate) fn verdict<'a>(
        &self,
        now: Stamp,
        samples: &(impl Iterator<Item = &'a Samples> + Clone),
        outcomes: Outcomes,
        limit: Duration,
        max_error_rate: f64,
    ) -> Verdict {
        let clean_for = now
            .saturating_since(self.origin)
            .saturating_sub(Duration::from_nanos(self.since.load(Ordering::Relaxed)));
        let hanging = self.hanging(now, limit, samples);
        let slow = |buckets: u32| -> WindowTotals {
            samples.clone().map(|s| s.slow.recent(now, buckets)).sum()
        };
        let short = slow(SHORT_BUCKETS);
        let mut verdict = Verdict {
            hanging,
            short: (short.failures, short.requests),
            ..Verdict::default()
        };
        let horizons: [(u32, WindowTotals, WindowTotals); 2] = [
            (SHORT_BUCKETS, short, outcomes.short),
            (LONG_BUCKETS, slow(LONG_BUCKETS), outcomes.long),
        ];
        let mut tested = false;
        for (buckets, slow, outcomes) in horizons {
            if clean_for < BUCKET * buckets {
                continue;
            }
            tested = true;
            let (k, n) = (slow.failures + hanging, slow.requests + hanging);
            if verdict.slow.is_none() && significant(k, n, P95_SHARE) {
                verdict.slow = Some((k, n));
            }
            let bad = outcomes.failures + outcomes.overloads;
            if verdict.errors.is_none() && significant(bad, outcomes.requests, max_error_rate) {
                verdict.errors = Some((bad, outcomes.requests));
            }
        }
        // Requests started a little over the limit ago and still in flight: a hanging or
        // newly slow endpoint is convicted without waiting for its fast past to age out.
        let (k, n) = self.cohort(now, limit, samples);
        if verdict.slow.is_none() && significant(k, n, P95_SHARE) {
            verdict.slow = Some((k, n));
        }
        // Right after a return (no horizon is clean yet), in-flight requests alone can still
        // convict a hanging endpoint.
        if !tested && verdict.slow.is_none() && significant(hanging, hanging, P95_SHARE) {
            verdict.slow = Some((hanging, hanging));
        }
        verdict
    }
}

/// Whether `k` bad samples of `n` reject "each sample is bad with probability at most `p0`" at
/// [`ALPHA`] (one-sided exact binomial test), with at least [`MIN_BAD`] bad samples.
pub(crate) fn significant(k: u64, n: u64, p0: f64) -> bool {
    if k < MIN_BAD || k > n || p0 >= 1.0 {
        return false;
    }
    if p0 <= 0.0 {
        return true;
    }
    binomial_tail(k, n, p0) < ALPHA
}

/// `P(X ≥ k)` for `X ~ Binomial(n, p)`, `0 < p < 1`, `k ≤ n`.
pub(crate) fn binomial_tail(k: u64, n: u64, p: f64) -> f64 {
    let (kf, nf) = (k as f64, n as f64);
    if kf <= nf * p {
        // At or below the mean: far from significant; the exact value does not matter.
        return 1.0;
    }
    let ln_pmf = ln_choose(n, k) + kf * p.ln() + (nf - kf) * (1.0 - p).ln();
    let mut term = ln_pmf.exp();
    let mut sum = term;
    let odds = p / (1.0 - p);
    let mut i = k;
    while i < n {
        term *= (n - i) as f64 / (i + 1) as f64 * odds;
        sum += term;
        i += 1;
        if term <= sum * 1e-12 {
            break;
        }
    }
    sum.min(1.0)
}

fn ln_choose(n: u64, k: u64) -> f64 {
    ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
}

/// `ln Γ(x)` for `x ≥ 1` (Lanczos, g = 7), relative error under 1e-13.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_of_thirteen_is_a_verdict_one_of_three_is_not() {
        assert!(significant(13, 13, 0.05));
        assert!(!significant(1, 3, 0.05));
        assert!(
            !significant(3, 3, 0.05),
            "fewer than MIN_BAD samples never convict"
        );
        assert!(significant(5, 5, 0.05));
        assert!(!significant(5, 100, 0.05), "5% of 100 is the null itself");
        assert!(significant(20, 100, 0.05));
        assert!(!significant(4, 20, 0.025));
        assert!(significant(8, 20, 0.025));
    }

    #[test]
    fn binomial_tail_matches_exact_values() {
        // P(X ≥ 1 | 3, 0.05) = 1 − 0.95³
        assert!((binomial_tail(1, 3, 0.05) - (1.0 - 0.95f64.powi(3))).abs() < 1e-12);
        assert!((binomial_tail(13, 13, 0.05) - 0.05f64.powi(13)).abs() < 1e-25);
        // P(X ≥ 9 | 10, 0.3) = 10·0.3⁹·0.7 + 0.3¹⁰
        let exact = 10.0 * 0.3f64.powi(9) * 0.7 + 0.3f64.powi(10);
        assert!((binomial_tail(9, 10, 0.3) - exact).abs() < 1e-15);
        assert!(binomial_tail(2_000, 10_000, 0.05) < 1e-100);
    }

    /// The false-drain rate: an endpoint whose latency is exactly at the limit (5% of samples
    /// slower) is judged on random samples of every size from 1 to 400; the share of tests that
    /// convict it stays under ALPHA (the exact test is conservative).
    #[test]
    fn false_drain_rate_at_the_limit_is_under_alpha() {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut tests, mut convictions) = (0u64, 0u64);
        for _ in 0..500 {
            for n in 1..=400u64 {
                let k = (0..n).filter(|_| next() < 0.05).count() as u64;
                tests += 1;
                convictions += u64::from(significant(k, n, 0.05));
            }
        }
        let rate = convictions as f64 / tests as f64;
        assert!(rate < ALPHA, "{convictions} of {tests}");
        // And a clearly slow endpoint (40% slow) at 40 samples is caught nearly always.
        let caught = (0..1_000)
            .filter(|_| {
                let k = (0..40).filter(|_| next() < 0.4).count() as u64;
                significant(k, 40, 0.05)
            })
            .count();
        assert!(caught > 900, "{caught}");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_past_the_limit_are_evidence() {
        let origin = Stamp::now();
        let evidence = Evidence::new(origin);
        // Two threads' samples: the counts are summed.
        let samples = || Samples::new(TimeWindow::starting(origin, BUCKET, LONG_BUCKETS).unwrap());
        let stripes = [samples(), samples()];
        let limit = Duration::from_millis(450);
        let started: Vec<_> = (0..6)
            .map(|i| {
                let bucket = evidence.bucket(Stamp::now());
                stripes[i % 2].start(bucket);
                (i % 2, bucket)
            })
            .collect();
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!(evidence.hanging(Stamp::now(), limit, &stripes.iter()), 0);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(evidence.hanging(Stamp::now(), limit, &stripes.iter()), 6);
        assert_eq!(
            evidence.cohort(Stamp::now(), limit, &stripes.iter()),
            (6, 6)
        );
        let v = evidence.verdict(
            Stamp::now(),
            &stripes.iter(),
            Outcomes::default(),
            limit,
            0.025,
        );
        assert_eq!(v.slow, Some((6, 6)));
        for (stripe, b) in started {
            stripes[stripe].finish(b);
        }
        assert_eq!(evidence.hanging(Stamp::now(), limit, &stripes.iter()), 0);
    }
}
