//! Outcome counts and latency histograms that replicas publish and the deciding replica merges.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fluxgate_core::outcome::Outcome;
use fluxgate_core::stripe::Striped;

/// Latency bins: bin 0 holds latencies up to 100µs, bin `i` those up to `100µs · 2^(i/4)`
/// (19% apart), the last one everything above (about 17 minutes).
pub const LATENCY_BINS: u16 = 96;

const FIRST_BIN_MICROS: f64 = 100.0;

/// The bin of `latency`.
fn bin_of(latency: Duration) -> u16 {
    let micros = latency.as_secs_f64() * 1e6;
    if micros <= FIRST_BIN_MICROS {
        return 0;
    }
    let bin = ((micros / FIRST_BIN_MICROS).log2() * 4.0).ceil();
    // In range: clamped to the last bin, and at least 1 for anything above 100µs.
    bin.clamp(1.0, f64::from(LATENCY_BINS - 1)) as u16
}

/// The upper bound of bin `bin`: what a quantile falling in it reports.
fn upper_of(bin: u16) -> Duration {
    let micros = FIRST_BIN_MICROS * 2f64.powf(f64::from(bin) / 4.0);
    Duration::from_secs_f64(micros / 1e6)
}

/// One side's outcome counts and latency histogram over some time: what a replica adds to the
/// shared store each tick, and what the deciding replica reads back merged over the window.
///
/// Histograms merge by adding bins, so a quantile of merged counts is the quantile of the
/// fleet's requests (never an average of the replicas' quantiles).
///
/// ```
/// use std::time::Duration;
/// use fluxgate_canary::fleet::Counts;
///
/// let mut a = Counts::default();
/// let mut b = Counts::default();
/// for _ in 0..99 {
///     a.record(false, Duration::from_millis(10));
/// }
/// b.record(true, Duration::from_secs(2));
/// a.merge(&b);
/// assert_eq!((a.requests, a.errors), (100, 1));
/// assert!(a.quantile(0.99).unwrap() < Duration::from_millis(12));
/// assert!(a.quantile(1.0).unwrap() >= Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Responses (and errors).
    pub requests: u64,
    /// Failures and overloads among them.
    pub errors: u64,
    /// Latency bin → responses, only the bins with any (see [`LATENCY_BINS`]).
    pub latencies: BTreeMap<u16, u64>,
}

impl Counts {
    /// Counts one response.
    pub fn record(&mut self, error: bool, latency: Duration) {
        self.requests += 1;
        self.errors += u64::from(error);
        *self.latencies.entry(bin_of(latency)).or_default() += 1;
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Self) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        for (bin, n) in &other.latencies {
            let entry = self.latencies.entry(*bin).or_default();
            *entry = entry.saturating_add(*n);
        }
    }

    /// Whether nothing was counted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.requests == 0 && self.latencies.is_empty()
    }

    /// Errors per response; `None` without responses.
    #[must_use]
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0)
            .then(|| (self.errors.min(self.requests) as f64 / self.requests as f64).clamp(0.0, 1.0))
    }

    /// Successes per response (the availability); `None` without responses.
    #[must_use]
    pub fn availability(&self) -> Option<f64> {
        self.error_rate().map(|e| 1.0 - e)
    }

    /// The `q` quantile of the latencies (the upper bound of its bin, within 19%); `None`
    /// without responses.
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.latencies.values().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bin, n) in &self.latencies {
            seen += n;
            if seen >= rank {
                return Some(upper_of(*bin));
            }
        }
        self.latencies.keys().next_back().map(|b| upper_of(*b))
    }
}

/// Both sides' counts.
///
/// ```
/// use fluxgate_canary::fleet::SideCounts;
///
/// assert!(SideCounts::default().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SideCounts {
    /// The stable side.
    pub stable: Counts,
    /// The canary side.
    pub canary: Counts,
}

impl SideCounts {
    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Self) {
        self.stable.merge(&other.stable);
        self.canary.merge(&other.canary);
    }

    /// Whether nothing was counted on either side.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.stable.is_empty() && self.canary.is_empty()
    }
}

impl SideCounts {
    /// The counts as text, as a replica stores them in a bucket:
    /// `n,e,bin:count,bin:count…|n,e,…` (stable, then canary).
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_canary::fleet::SideCounts;
    ///
    /// let mut counts = SideCounts::default();
    /// counts.canary.record(true, Duration::from_millis(5));
    /// assert_eq!(SideCounts::decode(&counts.encode()), Some(counts));
    /// ```
    #[must_use]
    pub fn encode(&self) -> String {
        let side = |c: &Counts| {
            let mut text = format!("{},{}", c.requests, c.errors);
            for (bin, n) in &c.latencies {
                text.push_str(&format!(",{bin}:{n}"));
            }
            text
        };
        format!("{}|{}", side(&self.stable), side(&self.canary))
    }

    /// Counts from [`encode`](Self::encode)'s text; `None` if it is not that.
    #[must_use]
    pub fn decode(text: &str) -> Option<Self> {
        let side = |text: &str| -> Option<Counts> {
            let mut parts = text.split(',');
            let requests = parts.next()?.parse().ok()?;
            let errors = parts.next()?.parse().ok()?;
            let mut latencies = BTreeMap::new();
            for part in parts {
                let (bin, n) = part.split_once(':')?;
                let bin: u16 = bin.parse().ok()?;
                if bin >= LATENCY_BINS {
                    return None;
                }
                latencies.insert(bin, n.parse().ok()?);
            }
            Some(Counts {
                requests,
                errors,
                latencies,
            })
        };
        let (stable, canary) = text.split_once('|')?;
        Some(Self {
            stable: side(stable)?,
            canary: side(canary)?,
        })
    }
}

/// What the request path adds to between two ticks: atomics, one set per side. The response
/// and error counts, added to on every request, are striped per thread
/// ([`fluxgate_core::stripe`]); the latency bins are added to by timed responses only.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Responses and errors.
    counts: Striped<[AtomicU64; 2]>,
    bins: Box<[AtomicU64]>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            counts: Striped::default(),
            bins: (0..LATENCY_BINS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Tally {
    /// Counts one response in stripe `stripe`, and its latency `weight` times (0: it was not
    /// timed).
    pub(crate) fn record(&self, stripe: usize, outcome: Outcome, latency: Duration, weight: u32) {
        let [requests, errors] = self.counts.at(stripe);
        requests.fetch_add(1, Ordering::Relaxed);
        if outcome != Outcome::Success {
            errors.fetch_add(1, Ordering::Relaxed);
        }
        if weight > 0
            && let Some(bin) = self.bins.get(usize::from(bin_of(latency)))
        {
            bin.fetch_add(u64::from(weight), Ordering::Relaxed);
        }
    }

    /// The counts since the last take, leaving zeros.
    pub(crate) fn take(&self) -> Counts {
        let mut latencies = BTreeMap::new();
        for (i, bin) in self.bins.iter().enumerate() {
            let n = bin.swap(0, Ordering::Relaxed);
            if n > 0 {
                latencies.insert(u16::try_from(i).unwrap_or(LATENCY_BINS - 1), n);
            }
        }
        let (mut requests, mut errors) = (0, 0);
        for [r, e] in self.counts.iter() {
            requests += r.swap(0, Ordering::Relaxed);
            errors += e.swap(0, Ordering::Relaxed);
        }
        Counts {
            requests,
            errors,
            latencies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_monotone_and_bound_their_latencies() {
        let mut last = 0;
        for micros in (0..5_000_000u64).step_by(997) {
            let latency = Duration::from_micros(micros);
            let bin = bin_of(latency);
            assert!(bin >= last);
            assert!(upper_of(bin) >= latency, "{latency:?} in bin {bin}");
            last = bin;
        }
        assert_eq!(bin_of(Duration::from_secs(100_000)), LATENCY_BINS - 1);
    }

    #[test]
    fn merged_p99_is_the_fleets() {
        // Replica a: 1000 fast responses; replica b: 20 slow ones. The fleet's p99 is slow
        // (20 > 1% of 1020); the average of the replicas' p99s would be far off.
        let mut a = Counts::default();
        let mut b = Counts::default();
        (0..1000).for_each(|_| a.record(false, Duration::from_millis(5)));
        (0..20).for_each(|_| b.record(false, Duration::from_millis(800)));
        a.merge(&b);
        assert!(a.quantile(0.99).unwrap() >= Duration::from_millis(800));
    }

    #[test]
    fn tally_takes() {
        let tally = Tally::default();
        tally.record(0, Outcome::Failure, Duration::from_millis(3), 1);
        tally.record(5, Outcome::Success, Duration::from_millis(3), 1);
        let counts = tally.take();
        assert_eq!((counts.requests, counts.errors), (2, 1));
        assert_eq!(counts.latencies.values().sum::<u64>(), 2);
        assert!(tally.take().is_empty());
    }

    /// A sampled latency counts for the responses it stands for; an untimed response adds
    /// none, so that a replica's bins estimate all its responses whatever its stride.
    #[test]
    fn a_sampled_latency_counts_for_its_stride() {
        let tally = Tally::default();
        tally.record(1, Outcome::Success, Duration::from_millis(3), 4);
        for _ in 0..3 {
            tally.record(2, Outcome::Success, Duration::ZERO, 0);
        }
        let counts = tally.take();
        assert_eq!(counts.requests, 4);
        assert_eq!(counts.latencies.values().sum::<u64>(), 4);
        assert!(counts.quantile(0.01).unwrap() >= Duration::from_millis(3));
    }
}
