//! Endpoint selection: the per-request part of each algorithm.
//!
//! A pick reads the [`Selection`] the last evaluation published (shared by every clone of the
//! balancer) and the clone's own [`Picker`]: no lock, no allocation, no shared write, a handful
//! of atomic loads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fluxgate_core::policy::BalanceAlgorithm;

use crate::endpoint::Slot;

/// A small, fast pseudo-random generator (xorshift64*); selection needs speed, not quality.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The longest weighted round-robin cycle kept (picks); longer cycles are scaled down to it.
const CYCLE_MAX: i64 = 4096;

/// The selection tables an evaluation builds, read by every clone of the balancer (never
/// written after they are published).
#[derive(Debug)]
pub(crate) struct Selection {
    pub(crate) algorithm: BalanceAlgorithm,
    /// Slot indices of the endpoints that may take new requests.
    pub(crate) eligible: Vec<usize>,
    /// Weight in effect of each eligible endpoint.
    pub(crate) weights: Vec<f64>,
    /// Weighted round robin: one cycle of nginx's smooth weighted round robin over the
    /// weights, as positions in `eligible`; each clone walks it from its own place.
    pub(crate) cycle: Vec<u32>,
    /// Adaptive: cumulative sampling weights.
    pub(crate) cumulative: Vec<f64>,
    /// Slow-start factor of each eligible endpoint, for round robin.
    pub(crate) ramp: Vec<f64>,
    pub(crate) any_ramp: bool,
    /// Latency assumed for endpoints without a sample (µs).
    pub(crate) default_latency: f64,
}

impl Selection {
    pub(crate) fn new(algorithm: BalanceAlgorithm) -> Self {
        Self {
            algorithm,
            eligible: Vec::new(),
            weights: Vec::new(),
            cycle: Vec::new(),
            cumulative: Vec::new(),
            ramp: Vec::new(),
            any_ramp: false,
            default_latency: 1_000.0,
        }
    }

    /// Builds the weighted round-robin cycle and the cumulative weights from `weights`.
    pub(crate) fn finish(&mut self) {
        self.cycle = if self.algorithm == BalanceAlgorithm::WeightedRoundRobin {
            cycle(&self.weights)
        } else {
            Vec::new()
        };
        self.cumulative.clear();
        let mut sum = 0.0;
        for w in &self.weights {
            sum += w;
            self.cumulative.push(sum);
        }
    }
}

/// One cycle of smooth weighted round robin over `weights`, scaled to integers (reduced by
/// their greatest common divisor, at most [`CYCLE_MAX`] picks unless there are more endpoints).
fn cycle(weights: &[f64]) -> Vec<u32> {
    let total: f64 = weights.iter().sum();
    if weights.is_empty() || !total.is_finite() || total <= 0.0 {
        return (0..weights.len()).map(|i| i as u32).collect();
    }
    // A whole factor, so that whole weights keep their ratios exactly (and reduce back).
    let scale = (CYCLE_MAX as f64 / total).min(1000.0).floor().max(1.0);
    let mut ints: Vec<i64> = weights
        .iter()
        .map(|w| ((w * scale).round() as i64).max(1))
        .collect();
    let divisor = ints.iter().fold(0, |g, &w| gcd(g, w)).max(1);
    for w in &mut ints {
        *w /= divisor;
    }
    let total: i64 = ints.iter().sum();
    let mut current = vec![0; ints.len()];
    (0..total)
        .map(|_| smooth_weighted(&mut current, &ints, total) as u32)
        .collect()
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// nginx's smooth weighted round robin: add each weight to its running value, pick the
/// largest, take the total off the one picked.
fn smooth_weighted(current: &mut [i64], weights: &[i64], total: i64) -> usize {
    let mut best = 0;
    let mut best_value = i64::MIN;
    for (at, (current, weight)) in current.iter_mut().zip(weights).enumerate() {
        *current += weight;
        if *current > best_value {
            best_value = *current;
            best = at;
        }
    }
    if let Some(current) = current.get_mut(best) {
        *current -= total;
    }
    best
}

/// A clone's own selection state: its random source. The round-robin position is the
/// thread's (one `cursor` per stripe of the balancer), so that clones made per request on one
/// thread still walk one cycle together, and threads do not write one shared position.
#[derive(Debug, Clone)]
pub(crate) struct Picker {
    pub(crate) rng: Rng,
}

impl Picker {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
        }
    }

    /// Picks an eligible endpoint of `sel`; `None` when there is none.
    pub(crate) fn pick<K, S>(
        &mut self,
        sel: &Selection,
        slots: &[Arc<Slot<K, S>>],
        cursor: &AtomicUsize,
        stripe: usize,
    ) -> Option<usize> {
        let n = sel.eligible.len();
        if n == 0 {
            return None;
        }
        let at = match sel.algorithm {
            BalanceAlgorithm::RoundRobin => self.round_robin(sel, cursor),
            BalanceAlgorithm::LeastRequest => self.p2c_uniform(sel, slots, false, stripe),
            BalanceAlgorithm::PeakEwma => self.p2c_uniform(sel, slots, true, stripe),
            BalanceAlgorithm::Adaptive => self.p2c_weighted(sel, slots, stripe),
            _ => weighted_round_robin(sel, cursor),
        };
        sel.eligible.get(at).copied()
    }

    fn round_robin(&mut self, sel: &Selection, cursor: &AtomicUsize) -> usize {
        let n = sel.eligible.len();
        loop {
            let at = cursor.fetch_add(1, Ordering::Relaxed) % n;
            // A ramping endpoint is skipped in proportion to how far it still has to go.
            if !sel.any_ramp || sel.ramp[at] >= 1.0 || self.rng.unit() < sel.ramp[at] {
                return at;
            }
        }
    }

    fn two_distinct(&mut self, n: usize) -> (usize, usize) {
        let a = self.rng.below(n);
        let b = (a + 1 + self.rng.below(n - 1)) % n;
        (a, b)
    }

    /// Power of two choices, candidates drawn uniformly.
    fn p2c_uniform<K, S>(
        &mut self,
        sel: &Selection,
        slots: &[Arc<Slot<K, S>>],
        latency: bool,
        stripe: usize,
    ) -> usize {
        let n = sel.eligible.len();
        if n == 1 {
            return 0;
        }
        let (a, b) = self.two_distinct(n);
        if cost(sel, slots, a, latency, stripe) <= cost(sel, slots, b, latency, stripe) {
            a
        } else {
            b
        }
    }

    /// Power of two choices, candidates drawn in proportion to the adaptive weights.
    fn p2c_weighted<K, S>(
        &mut self,
        sel: &Selection,
        slots: &[Arc<Slot<K, S>>],
        stripe: usize,
    ) -> usize {
        let n = sel.eligible.len();
        if n == 1 {
            return 0;
        }
        let a = self.sample(sel);
        let mut b = self.sample(sel);
        if b == a {
            b = self.sample(sel);
        }
        if cost(sel, slots, a, true, stripe) <= cost(sel, slots, b, true, stripe) {
            a
        } else {
            b
        }
    }

    fn sample(&mut self, sel: &Selection) -> usize {
        let total = sel.cumulative.last().copied().unwrap_or(0.0);
        let target = self.rng.unit() * total;
        let at = sel.cumulative.partition_point(|&c| c <= target);
        at.min(sel.cumulative.len().saturating_sub(1))
    }
}

fn weighted_round_robin(sel: &Selection, cursor: &AtomicUsize) -> usize {
    let cycle = &sel.cycle;
    if cycle.is_empty() {
        return 0;
    }
    cycle[cursor.fetch_add(1, Ordering::Relaxed) % cycle.len()] as usize
}

/// The cost of eligible endpoint `at`: latency (when `latency`) × (in flight + 1) / weight,
/// where in flight is the count of the picking thread (`stripe`; see [`crate::hot`]).
///
/// For adaptive, that is ≈ latency³ × load (the weight goes with (fastest / latency)²): it
/// prefers a fast endpoint with a few requests queued over a slow idle one (an endpoint serves
/// several requests at once, so `latency × load` alone overstates what one more request costs
/// on a busy fast endpoint); the latency average rises with queueing, so an overloaded fast
/// endpoint still loses.
fn cost<K, S>(
    sel: &Selection,
    slots: &[Arc<Slot<K, S>>],
    at: usize,
    latency: bool,
    stripe: usize,
) -> f64 {
    let Some(slot) = sel.eligible.get(at).and_then(|&i| slots.get(i)) else {
        return f64::INFINITY;
    };
    let load = f64::from(slot.state.hot.in_flight_at(stripe)) + 1.0;
    let lat = if latency {
        slot.state.latency.get().unwrap_or(sel.default_latency)
    } else {
        1.0
    };
    lat * load / sel.weights.get(at).copied().unwrap_or(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Swrr {
        current: Vec<i64>,
        weights: Vec<i64>,
        total: i64,
    }

    impl Swrr {
        fn smooth_weighted(&mut self) -> usize {
            smooth_weighted(&mut self.current, &self.weights, self.total)
        }
    }

    fn swrr(weights: &[i64]) -> Swrr {
        Swrr {
            current: vec![0; weights.len()],
            weights: weights.to_vec(),
            total: weights.iter().sum(),
        }
    }

    #[test]
    fn the_cycle_keeps_the_weights_shares_and_interleaves() {
        let picks: Vec<u32> = cycle(&[5.0, 1.0, 1.0]);
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
        let long = cycle(&[3000.0, 1000.0, 1.0]);
        assert!(long.len() <= 4096 + 3, "{}", long.len());
        let share = |i: u32| long.iter().filter(|&&p| p == i).count() as f64 / long.len() as f64;
        assert!((share(0) - 0.75).abs() < 0.01 && share(2) > 0.0);
    }

    #[test]
    fn smooth_weighted_interleaves_like_nginx() {
        let mut s = swrr(&[5, 1, 1]);
        let picks: String = (0..7)
            .map(|_| ["a", "b", "c"][s.smooth_weighted()])
            .collect();
        assert_eq!(picks, "aabacaa");
    }

    #[test]
    fn smooth_weighted_follows_weights_exactly_per_cycle() {
        let mut s = swrr(&[3, 2, 4, 1]);
        let mut counts = [0; 4];
        for _ in 0..100 {
            counts[s.smooth_weighted()] += 1;
        }
        assert_eq!(counts, [30, 20, 40, 10]);
    }

    proptest::proptest! {
        /// Over every full cycle (as many picks as the weights add up to), each endpoint is
        /// picked exactly its weight's number of times, and the running values are back at 0.
        #[test]
        fn smooth_weighted_gives_exact_shares_every_cycle(
            weights in proptest::collection::vec(1i64..=40, 1..=8),
            cycles in 1usize..=3,
        ) {
            let mut s = swrr(&weights);
            let total: i64 = weights.iter().sum();
            for _ in 0..cycles {
                let mut counts = vec![0i64; weights.len()];
                for _ in 0..total {
                    counts[s.smooth_weighted()] += 1;
                }
                proptest::prop_assert_eq!(&counts, &weights);
                proptest::prop_assert!(s.current.iter().all(|&c| c == 0), "state back to zero");
            }
        }
    }

    #[test]
    fn rng_below_stays_in_range_and_spreads() {
        let mut rng = Rng::new(42);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            counts[rng.below(5)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
        assert!((0..1000).all(|_| (0.0..1.0).contains(&rng.unit())));
    }
}
