//! Endpoint selection: the per-request part of each algorithm.
//!
//! Everything here runs under `&mut Balance`, on tables the evaluation rebuilt: no lock, no
//! allocation, a handful of atomic loads per pick.

use std::sync::atomic::Ordering;

use fluxgate_core::policy::BalanceAlgorithm;

use crate::service::Slot;

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

/// The selection tables, rebuilt by the evaluation, read by every pick.
#[derive(Debug)]
pub(crate) struct Selector {
    pub(crate) algorithm: BalanceAlgorithm,
    /// Slot indices of the endpoints that may take new requests.
    pub(crate) eligible: Vec<usize>,
    /// Weight in effect of each eligible endpoint.
    pub(crate) weights: Vec<f64>,
    /// Smooth weighted round robin: integer weights and running "current" weights.
    pub(crate) int_weights: Vec<i64>,
    pub(crate) current: Vec<i64>,
    pub(crate) int_total: i64,
    /// Adaptive: cumulative sampling weights.
    pub(crate) cumulative: Vec<f64>,
    /// Slow-start factor of each eligible endpoint, for round robin.
    pub(crate) ramp: Vec<f64>,
    pub(crate) any_ramp: bool,
    /// Latency assumed for endpoints without a sample (µs).
    pub(crate) default_latency: f64,
    pub(crate) cursor: usize,
    pub(crate) rng: Rng,
}

impl Selector {
    pub(crate) fn new(algorithm: BalanceAlgorithm, seed: u64) -> Self {
        Self {
            algorithm,
            eligible: Vec::new(),
            weights: Vec::new(),
            int_weights: Vec::new(),
            current: Vec::new(),
            int_total: 0,
            cumulative: Vec::new(),
            ramp: Vec::new(),
            any_ramp: false,
            default_latency: 1_000.0,
            cursor: 0,
            rng: Rng::new(seed),
        }
    }

    /// Picks an eligible endpoint; `None` when there is none.
    pub(crate) fn pick<K, S>(&mut self, slots: &[Slot<K, S>]) -> Option<usize> {
        let n = self.eligible.len();
        if n == 0 {
            return None;
        }
        let at = match self.algorithm {
            BalanceAlgorithm::RoundRobin => self.round_robin(),
            BalanceAlgorithm::LeastRequest => self.p2c_uniform(slots, false),
            BalanceAlgorithm::PeakEwma => self.p2c_uniform(slots, true),
            BalanceAlgorithm::Adaptive => self.p2c_weighted(slots),
            _ => self.smooth_weighted(),
        };
        self.eligible.get(at).copied()
    }

    fn round_robin(&mut self) -> usize {
        let n = self.eligible.len();
        loop {
            let at = self.cursor % n;
            self.cursor = self.cursor.wrapping_add(1);
            // A ramping endpoint is skipped in proportion to how far it still has to go.
            if !self.any_ramp || self.ramp[at] >= 1.0 || self.rng.unit() < self.ramp[at] {
                return at;
            }
        }
    }

    /// nginx's smooth weighted round robin: add each weight to its running value, pick the
    /// largest, take the total off the one picked.
    fn smooth_weighted(&mut self) -> usize {
        let mut best = 0;
        let mut best_value = i64::MIN;
        for (at, (current, weight)) in self.current.iter_mut().zip(&self.int_weights).enumerate() {
            *current += weight;
            if *current > best_value {
                best_value = *current;
                best = at;
            }
        }
        if let Some(current) = self.current.get_mut(best) {
            *current -= self.int_total;
        }
        best
    }

    fn two_distinct(&mut self, n: usize) -> (usize, usize) {
        let a = self.rng.below(n);
        let b = (a + 1 + self.rng.below(n - 1)) % n;
        (a, b)
    }

    fn cost<K, S>(&self, slots: &[Slot<K, S>], at: usize, latency: bool, weighted: bool) -> f64 {
        let Some(slot) = self.eligible.get(at).and_then(|&i| slots.get(i)) else {
            return f64::INFINITY;
        };
        let load = f64::from(slot.state.in_flight.load(Ordering::Relaxed)) + 1.0;
        let lat = if latency {
            slot.state.latency.get().unwrap_or(self.default_latency)
        } else {
            1.0
        };
        let weight = if weighted { self.weights[at] } else { 1.0 };
        lat * load / weight
    }

    /// Adaptive's cost: latency × (in flight + 1) / adaptive weight (≈ latency³ × load, as the
    /// weight goes with (fastest / latency)²). It prefers a fast endpoint with a few requests
    /// queued over a slow idle one (an endpoint serves several requests at once, so
    /// `latency × load` alone overstates what one more request costs on a busy fast endpoint);
    /// the latency average rises with queueing, so an overloaded fast endpoint still loses.
    fn adaptive_cost<K, S>(&self, slots: &[Slot<K, S>], at: usize) -> f64 {
        let Some(slot) = self.eligible.get(at).and_then(|&i| slots.get(i)) else {
            return f64::INFINITY;
        };
        let load = f64::from(slot.state.in_flight.load(Ordering::Relaxed)) + 1.0;
        let lat = slot.state.latency.get().unwrap_or(self.default_latency);
        lat * load / self.weights.get(at).copied().unwrap_or(1.0)
    }

    /// Power of two choices, candidates drawn uniformly.
    fn p2c_uniform<K, S>(&mut self, slots: &[Slot<K, S>], latency: bool) -> usize {
        let n = self.eligible.len();
        if n == 1 {
            return 0;
        }
        let (a, b) = self.two_distinct(n);
        if self.cost(slots, a, latency, true) <= self.cost(slots, b, latency, true) {
            a
        } else {
            b
        }
    }

    /// Power of two choices, candidates drawn in proportion to the adaptive weights.
    fn p2c_weighted<K, S>(&mut self, slots: &[Slot<K, S>]) -> usize {
        let n = self.eligible.len();
        if n == 1 {
            return 0;
        }
        let a = self.sample();
        let mut b = self.sample();
        if b == a {
            b = self.sample();
        }
        if self.adaptive_cost(slots, a) <= self.adaptive_cost(slots, b) {
            a
        } else {
            b
        }
    }

    fn sample(&mut self) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let target = self.rng.unit() * total;
        let at = self.cumulative.partition_point(|&c| c <= target);
        at.min(self.cumulative.len().saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swrr(weights: &[i64]) -> Selector {
        let mut s = Selector::new(BalanceAlgorithm::WeightedRoundRobin, 7);
        s.eligible = (0..weights.len()).collect();
        s.int_weights = weights.to_vec();
        s.current = vec![0; weights.len()];
        s.int_total = weights.iter().sum();
        s
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
