//! The periodic evaluation: ejections and returns (outlier detection), slow start, and the
//! selection tables every algorithm reads.
//!
//! It runs inside `poll_ready` every `outlierDetection.interval` (200ms by default) while
//! traffic flows, and at once when something changed (a failure streak, a health flip, a probe's
//! answer, discovery, a new policy). Its cost is a few µs per endpoint (reading its latency
//! histogram), amortised over all the requests of an interval.

use std::sync::atomic::Ordering;
use std::time::Duration;

use fluxgate_core::policy::{BalanceAlgorithm, OutlierDetection};
use tokio::time::Instant;
use tower::discover::Discover;

use crate::endpoint::{
    self, ACTIVE, EJECTED, EndpointState, NO_UTIL, PROBE_READY, REASON_CONSECUTIVE, REASON_ERRORS,
    REASON_LATENCY,
};
use crate::select::Rng;
use crate::service::Balance;

/// Evaluation interval when outlier detection is off (slow start and adaptive weights).
const DEFAULT_INTERVAL: Duration = Duration::from_millis(200);
/// The least share of its weight a ramping endpoint gets.
const RAMP_FLOOR: f64 = 0.1;
/// The least factor error rate, latency or utilisation take a weight down to.
const WEIGHT_FLOOR: f64 = 0.01;

impl<D, Req> Balance<D, Req>
where
    D: Discover,
{
    pub(crate) fn evaluate(&mut self, now: Instant) {
        let od = self.policy.outlier_detection.clone();
        self.expire_ejections(now, od.as_ref());
        if let Some(od) = od.as_ref() {
            self.detect_outliers(now, od);
        }
        self.rebuild_tables(now);
        let interval = od.map_or(DEFAULT_INTERVAL, |od| od.interval.as_std());
        self.next_eval = now + interval;
    }

    fn expire_ejections(&mut self, now: Instant, od: Option<&OutlierDetection>) {
        let elapsed = endpoint::nanos_since(self.shared.origin, now);
        for (index, slot) in self.slots.iter().enumerate() {
            let state = &slot.state;
            match state.passive.load(Ordering::Acquire) {
                EJECTED => {
                    let until = state.ejected_until.load(Ordering::Relaxed);
                    if until == 0 {
                        // A failed probe: eject again, for longer.
                        let times = state.ejections.fetch_add(1, Ordering::Relaxed) + 1;
                        let time = ejection_time(od, times, &mut self.selector.rng);
                        state
                            .ejected_until
                            .store(elapsed.saturating_add(nanos(time)), Ordering::Relaxed);
                    } else if elapsed >= until {
                        state.passive.store(PROBE_READY, Ordering::Release);
                        self.probe = self.probe.or(Some(index));
                    }
                }
                PROBE_READY => self.probe = self.probe.or(Some(index)),
                ACTIVE => {
                    let until = state.ejected_until.load(Ordering::Relaxed);
                    let quiet =
                        od.map_or(Duration::from_secs(300), |od| od.max_ejection_time.as_std());
                    if until != 0 && elapsed.saturating_sub(until) > nanos(quiet) {
                        state.ejections.store(0, Ordering::Relaxed);
                        state.ejected_until.store(0, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
        }
    }

    fn detect_outliers(&mut self, now: Instant, od: &OutlierDetection) {
        let total = self.slots.len();
        let cap = total * od.max_ejection_percent.min(100) as usize / 100;
        let mut out = self
            .slots
            .iter()
            .filter(|s| s.state.passive.load(Ordering::Relaxed) != ACTIVE)
            .count();
        // p95 of every judged endpoint, to judge latency relative to the others when most are slow.
        let min = u64::from(od.min_requests.max(1));
        let mut p95s: Vec<Option<Duration>> = Vec::with_capacity(total);
        for slot in &self.slots {
            let judged = slot.state.is_eligible() && slot.state.latencies.count(now) >= min;
            p95s.push(
                judged
                    .then(|| slot.state.latencies.quantile(now, 0.95))
                    .flatten(),
            );
        }
        let mut known: Vec<Duration> = p95s.iter().flatten().copied().collect();
        let limit = od.max_p95_latency.as_std();
        let slow = known.iter().filter(|&&p| p > limit).count();
        let limit = if slow * 2 > known.len() {
            known.sort_unstable();
            limit.max(known[known.len() / 2] * 2)
        } else {
            limit
        };
        let elapsed = endpoint::nanos_since(self.shared.origin, now);
        for (slot, p95) in self.slots.iter().zip(p95s) {
            let state = &slot.state;
            if out >= cap || !state.is_eligible() {
                continue;
            }
            let totals = state.outcomes.totals(now);
            let streak = state.consecutive_failures.load(Ordering::Relaxed);
            let reason = if self.failure_streak != 0 && streak >= self.failure_streak {
                Some((REASON_CONSECUTIVE, u64::from(streak)))
            } else if totals.requests >= min
                && let Some(rate) = bad_rate(totals)
                && rate > od.max_error_rate
            {
                Some((REASON_ERRORS, (rate * 1e6) as u64))
            } else {
                p95.filter(|&p| p > limit).map(|p| {
                    (
                        REASON_LATENCY,
                        u64::try_from(p.as_micros()).unwrap_or(u64::MAX),
                    )
                })
            };
            if let Some((reason, value)) = reason {
                let times = state.ejections.fetch_add(1, Ordering::Relaxed) + 1;
                let time = ejection_time(Some(od), times, &mut self.selector.rng);
                state.reason.store(reason, Ordering::Relaxed);
                state.reason_value.store(value, Ordering::Relaxed);
                state.consecutive_failures.store(0, Ordering::Relaxed);
                state
                    .ejected_until
                    .store(elapsed.saturating_add(nanos(time)), Ordering::Relaxed);
                state.passive.store(EJECTED, Ordering::Release);
                out += 1;
                tracing::debug!(
                    reason,
                    value,
                    ?time,
                    "endpoint drained by outlier detection"
                );
            }
        }
    }

    fn rebuild_tables(&mut self, now: Instant) {
        let window = self
            .policy
            .slow_start
            .map(|s| s.window.as_std())
            .filter(|w| !w.is_zero());
        let elapsed = endpoint::nanos_since(self.shared.origin, now);
        let sel = &mut self.selector;
        let adaptive = sel.algorithm == BalanceAlgorithm::Adaptive;
        let previous = std::mem::take(&mut sel.eligible);
        sel.weights.clear();
        sel.ramp.clear();
        sel.any_ramp = false;
        let mut best_latency = f64::INFINITY;
        for slot in &self.slots {
            if let Some(l) = slot
                .state
                .latency
                .get()
                .filter(|_| slot.state.is_eligible())
            {
                best_latency = best_latency.min(l.max(1.0));
            }
        }
        for (index, slot) in self.slots.iter().enumerate() {
            let state = &slot.state;
            if !state.is_eligible() {
                continue;
            }
            let ramp = ramp_factor(state, window, elapsed);
            let mut weight = f64::from(state.weight) * ramp * error_factor(state, now);
            if adaptive {
                weight *= adaptive_factor(state, best_latency);
            }
            state
                .effective_weight
                .store(weight.to_bits(), Ordering::Relaxed);
            sel.eligible.push(index);
            sel.weights.push(weight);
            sel.ramp.push(ramp);
            sel.any_ramp |= ramp < 1.0;
        }
        let changed = previous != sel.eligible;
        sel.int_weights.clear();
        sel.int_weights.extend(
            sel.weights
                .iter()
                .map(|w| ((w * 1000.0).round() as i64).max(1)),
        );
        sel.int_total = sel.int_weights.iter().sum();
        if changed || sel.current.len() != sel.eligible.len() {
            sel.current.clear();
            sel.current.resize(sel.eligible.len(), 0);
        }
        sel.cumulative.clear();
        let mut sum = 0.0;
        for w in &sel.weights {
            sum += w;
            sel.cumulative.push(sum);
        }
        sel.default_latency = if best_latency.is_finite() {
            best_latency
        } else {
            1_000.0
        };
    }
}

/// `baseEjectionTime × times`, capped at `maxEjectionTime`, with ±10% jitter under the cap.
fn ejection_time(od: Option<&OutlierDetection>, times: u32, rng: &mut Rng) -> Duration {
    let (base, max) = od.map_or((Duration::from_secs(30), Duration::from_secs(300)), |od| {
        (
            od.base_ejection_time.as_std(),
            od.max_ejection_time.as_std(),
        )
    });
    let time = base.saturating_mul(times.max(1)).min(max);
    time.mul_f64(0.9 + 0.2 * rng.unit()).min(max)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn bad_rate(totals: fluxgate_core::window::WindowTotals) -> Option<f64> {
    Some(totals.failure_rate()? + totals.overload_rate()?)
}

/// Slow start: from [`RAMP_FLOOR`] to 1 over the window, linearly.
fn ramp_factor<K>(state: &EndpointState<K>, window: Option<Duration>, elapsed: u64) -> f64 {
    let start = state.ramp_start.load(Ordering::Relaxed);
    let Some(window) = window.filter(|_| start != u64::MAX) else {
        return 1.0;
    };
    let progress = elapsed.saturating_sub(start) as f64 / window.as_nanos() as f64;
    if progress >= 1.0 {
        state.ramp_start.store(u64::MAX, Ordering::Relaxed);
        return 1.0;
    }
    progress.max(RAMP_FLOOR)
}

/// Errors take weight away: 1 at no errors, down to [`WEIGHT_FLOOR`] at 10% and more.
fn error_factor<K>(state: &EndpointState<K>, now: Instant) -> f64 {
    let totals = state.outcomes.totals(now);
    if totals.requests < 10 {
        return 1.0;
    }
    bad_rate(totals).map_or(1.0, |r| (1.0 - 10.0 * r).max(WEIGHT_FLOOR))
}

/// Adaptive: latency relative to the fastest endpoint (to the 4th power) and reported utilisation.
fn adaptive_factor<K>(state: &EndpointState<K>, best_latency: f64) -> f64 {
    let latency = state
        .latency
        .get()
        .filter(|_| best_latency.is_finite())
        .map_or(1.0, |l| (best_latency / l.max(1.0)).powi(4));
    let util = state.utilization.load(Ordering::Relaxed);
    let util = if util == NO_UTIL {
        1.0
    } else {
        1.0 - f64::from(util) / 1000.0
    };
    (latency * util.max(0.05)).max(WEIGHT_FLOOR)
}
