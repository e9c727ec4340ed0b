//! The routing decision: which side a request goes to, from the published weight and the rules.
//!
//! Everything here is pure and allocation-free; the service calls it once per request.

use std::sync::atomic::{AtomicU32, Ordering};

/// The side of a canary release a request is sent to.
///
/// ```
/// use fluxgate_canary::Side;
///
/// assert_eq!(Side::Canary.to_string(), "canary");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The version in production.
    Stable,
    /// The new version being released.
    Canary,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Stable => "stable",
            Self::Canary => "canary",
        })
    }
}

/// The step of the Weyl sequence used for the unsticky split: 2⁶⁴ divided by the golden ratio.
/// Its multiples modulo 2⁶⁴ are spread as evenly as any sequence can be, so the share of
/// requests below a threshold tracks the threshold within a request or two.
pub(crate) const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// What the request path reads on every request, packed in one word: the weight (low 8 bits),
/// whether matched requests go to the canary (bit 8) and whether there are match rules or a
/// sticky key to look at (bit 9).
#[derive(Debug, Default)]
pub(crate) struct RouteWord(AtomicU32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) weight: u8,
    pub(crate) matched: bool,
    pub(crate) rules: bool,
}

impl RouteWord {
    pub(crate) fn load(&self) -> Route {
        let word = self.0.load(Ordering::Acquire);
        Route {
            weight: (word & 0xff) as u8,
            matched: word & 0x100 != 0,
            rules: word & 0x200 != 0,
        }
    }

    pub(crate) fn store(&self, route: Route) {
        let word = u32::from(route.weight.min(100))
            | (u32::from(route.matched) << 8)
            | (u32::from(route.rules) << 9);
        self.0.store(word, Ordering::Release);
    }
}

/// The finalizer of `SplitMix64`/`MurmurHash3`: spreads every input bit over the whole word, so
/// that similar keys (FNV-1a of `user-1`, `user-2`) land far apart.
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The position of a 64-bit value on a scale of 0..100: `⌊x · 100 / 2⁶⁴⌋`.
pub(crate) fn percentile(x: u64) -> u8 {
    ((u128::from(x) * 100) >> 64) as u8
}

/// The sticky side of a key's hash at `weight`: canary when the key's percentile is below the
/// weight. The percentile is fixed per key, so raising the weight only moves keys to the canary.
pub(crate) fn sticky_side(hash: u64, weight: u8) -> Side {
    if percentile(mix(hash)) < weight {
        Side::Canary
    } else {
        Side::Stable
    }
}

/// The unsticky side of the next element of a Weyl sequence at `weight`.
pub(crate) fn sequence_side(seq: &mut u64, weight: u8) -> Side {
    *seq = seq.wrapping_add(GOLDEN);
    if percentile(*seq) < weight {
        Side::Canary
    } else {
        Side::Stable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_word_round_trips() {
        let word = RouteWord::default();
        for (weight, matched) in [(0, false), (10, true), (100, false), (100, true)] {
            for rules in [false, true] {
                let route = Route {
                    weight,
                    matched,
                    rules,
                };
                word.store(route);
                assert_eq!(word.load(), route);
            }
        }
    }

    #[test]
    fn sequence_split_is_exact_within_a_request() {
        for weight in [1u8, 5, 10, 15, 33, 50, 99] {
            let mut seq = mix(u64::from(weight));
            let canary = (0..100_000)
                .filter(|_| sequence_side(&mut seq, weight) == Side::Canary)
                .count();
            let expected = usize::from(weight) * 1000;
            assert!(canary.abs_diff(expected) <= 3, "{weight}: {canary}");
        }
    }

    #[test]
    fn sticky_is_monotone_in_weight() {
        for key in 0..10_000u64 {
            let hash = fluxgate_core::key::fnv1a(&key.to_le_bytes());
            let mut was_canary = false;
            for weight in 0..=100 {
                let canary = sticky_side(hash, weight) == Side::Canary;
                assert!(canary || !was_canary, "key {key} went back at {weight}");
                was_canary = canary;
            }
            assert!(was_canary);
        }
    }

    #[test]
    fn edges() {
        assert_eq!(percentile(0), 0);
        assert_eq!(percentile(u64::MAX), 99);
        let mut seq = 0;
        assert!((0..1000).all(|_| sequence_side(&mut seq, 0) == Side::Stable));
        assert!((0..1000).all(|_| sequence_side(&mut seq, 100) == Side::Canary));
    }
}
