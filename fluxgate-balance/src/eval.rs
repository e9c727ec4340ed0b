//! The periodic evaluation: ejections and returns (outlier detection), slow start, and the
//! selection tables every algorithm reads.
//!
//! It runs inside the `poll_ready` of whichever clone of the balancer finds it due, every
//! `outlierDetection.interval` (200ms by default) while traffic flows, and at once when
//! something changed (a failure streak, a health flip, a probe's
//! answer, discovery, a new policy). Its cost is a few µs per endpoint (reading its latency
//! histogram), amortised over all the requests of an interval.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fluxgate_core::clock::Stamp;
use fluxgate_core::policy::{BalanceAlgorithm, OutlierDetection};
use tower::discover::Discover;

use crate::endpoint::{
    self, ACTIVE, EJECTED, EndpointState, NO_UTIL, PROBE_READY, REASON_CONNECT, REASON_CONSECUTIVE,
    REASON_ERRORS, REASON_LATENCY,
};
use crate::evidence;
use crate::select::{Rng, Selection};
use crate::service::{Control, Core, Table};
use crate::shared::Shared;

/// Evaluation interval when outlier detection is off (slow start and adaptive weights).
const DEFAULT_INTERVAL: Duration = Duration::from_millis(200);
/// The least share of its weight a ramping endpoint gets.
const RAMP_FLOOR: f64 = 0.1;
/// The least factor error rate, latency or utilisation take a weight down to.
const WEIGHT_FLOOR: f64 = 0.01;

impl<D: Discover> Control<D> {
    /// Judges the endpoints and publishes new selection tables for every clone.
    pub(crate) fn evaluate(&mut self, core: &Core<D>, now: Stamp) {
        let od = self.od.clone();
        for slot in self.slots.iter() {
            slot.state.resample(now);
        }
        self.expire_ejections(&core.shared, now, od.as_ref());
        if let Some(od) = od.as_ref() {
            let states: Vec<&EndpointState<D::Key>> =
                self.slots.iter().map(|s| &*s.state).collect();
            detect(&core.shared, &states, now, od, &mut self.rng);
        }
        let sel = self.rebuild_tables(&core.shared, now);
        self.eligible.clone_from(&sel.eligible);
        core.table.store(Arc::new(Table {
            slots: Arc::clone(&self.slots),
            states: Arc::clone(&self.states),
            sel,
            track: self.track,
            probe: self.probe,
        }));
        let interval = od.map_or(DEFAULT_INTERVAL, |od| od.interval.as_std());
        core.next_eval.store(
            endpoint::nanos_since(core.shared.origin, now + interval),
            Ordering::Relaxed,
        );
    }

    fn expire_ejections(
        &mut self,
        shared: &Shared<D::Key>,
        now: Stamp,
        od: Option<&OutlierDetection>,
    ) {
        let elapsed = endpoint::nanos_since(shared.origin, now);
        if self.probe.is_some_and(|i| {
            self.slots
                .get(i)
                .is_none_or(|s| s.state.passive.load(Ordering::Acquire) != PROBE_READY)
        }) {
            self.probe = None;
        }
        for (index, slot) in self.slots.iter().enumerate() {
            let state = &slot.state;
            match state.passive.load(Ordering::Acquire) {
                EJECTED => {
                    let until = state.ejected_until.load(Ordering::Relaxed);
                    if until == 0 {
                        // A failed probe: eject again, for longer.
                        let times = state.ejections.fetch_add(1, Ordering::Relaxed) + 1;
                        let time = ejection_time(od, times, &mut self.rng);
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

    fn rebuild_tables(&self, shared: &Shared<D::Key>, now: Stamp) -> Selection {
        let window = self
            .policy
            .slow_start
            .map(|s| s.window.as_std())
            .filter(|w| !w.is_zero());
        let elapsed = endpoint::nanos_since(shared.origin, now);
        let mut sel = Selection::new(self.policy.algorithm);
        let adaptive = sel.algorithm == BalanceAlgorithm::Adaptive;
        let mut best_latency = f64::INFINITY;
        for slot in self.slots.iter() {
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
        sel.finish();
        sel.default_latency = if best_latency.is_finite() {
            best_latency
        } else {
            1_000.0
        };
        sel
    }
}

/// Judges every endpoint and drains the outliers, unless another evaluation (the balancer's or
/// the health task's) is running; see [`OutlierDetection`] for the rules.
pub(crate) fn detect<K>(
    shared: &Shared<K>,
    states: &[&EndpointState<K>],
    now: Stamp,
    od: &OutlierDetection,
    rng: &mut Rng,
) {
    if shared.detecting.swap(true, Ordering::Acquire) {
        return;
    }
    shared
        .last_detect
        .store(endpoint::nanos_since(shared.origin, now), Ordering::Relaxed);
    let failure_streak = shared.failure_streak.load(Ordering::Relaxed);
    {
        let total = states.len();
        let cap = total * od.max_ejection_percent.min(100) as usize / 100;
        let mut out = states
            .iter()
            .filter(|s| s.passive.load(Ordering::Relaxed) != ACTIVE)
            .count();
        let min = u64::from(od.min_requests.max(1));
        let limit = od.max_p95_latency.as_std();
        let all: Vec<Judged> = states
            .iter()
            .map(|state| Judged::of(state, now, od, min))
            .collect();
        let elapsed = endpoint::nanos_since(shared.origin, now);
        for (at, (state, judged)) in states.iter().zip(&all).enumerate() {
            if out >= cap || !judged.eligible {
                continue;
            }
            let streak = state.consecutive_failures.load(Ordering::Relaxed);
            let reason = if state.connect_failed.swap(false, Ordering::Relaxed) {
                Some((REASON_CONNECT, u64::from(streak.max(1))))
            } else if failure_streak != 0 && streak >= failure_streak {
                Some((REASON_CONSECUTIVE, u64::from(streak)))
            } else if let Some(rate) = judged.error_rate {
                Some((REASON_ERRORS, (rate * 1e6) as u64))
            } else if judged.slow && judged.outlier(&judged_others(&all, at), limit, state, now) {
                let p95 = judged.p95.unwrap_or(crate::evidence::hanging_age(limit));
                Some((
                    REASON_LATENCY,
                    u64::try_from(p95.as_micros()).unwrap_or(u64::MAX),
                ))
            } else {
                None
            };
            if let Some((reason, value)) = reason {
                let times = state.ejections.fetch_add(1, Ordering::Relaxed) + 1;
                let time = ejection_time(Some(od), times, rng);
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
                shared.mark_dirty();
            }
        }
    }
    shared.detecting.store(false, Ordering::Release);
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
fn error_factor<K>(state: &EndpointState<K>, now: Stamp) -> f64 {
    let totals = state.outcomes(now);
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
        .map_or(1.0, |l| (best_latency / l.max(1.0)).powi(2));
    let util = state.utilization.load(Ordering::Relaxed);
    let util = if util == NO_UTIL {
        1.0
    } else {
        1.0 - f64::from(util) / 1000.0
    };
    (latency * util.max(0.05)).max(WEIGHT_FLOOR)
}

/// One endpoint as an evaluation judges it.
#[derive(Debug, Clone, Copy)]
struct Judged {
    eligible: bool,
    /// p95 over the last second, when it has samples.
    p95: Option<Duration>,
    /// Over the latency limit: by volume (p95 with `minRequests`) or on evidence.
    slow: bool,
    /// Requests in flight older than the limit.
    hanging: u64,
    /// The error rate that convicts it, if any.
    error_rate: Option<f64>,
}

impl Judged {
    fn of<K>(state: &EndpointState<K>, now: Stamp, od: &OutlierDetection, min: u64) -> Self {
        let eligible = state.is_eligible();
        if !eligible {
            return Self {
                eligible,
                p95: None,
                slow: false,
                hanging: 0,
                error_rate: None,
            };
        }
        let limit = od.max_p95_latency.as_std();
        // One pass over the latency window for both (the window is thousands of counters).
        let (count, [p95]) = state.latencies.counted_quantiles(now, [0.95]);
        let totals = state.outcomes(now);
        let verdict = state.verdict(now, limit, od.max_error_rate);
        let (k, n) = verdict.short;
        let by_volume = count >= min
            && p95.is_some_and(|p| p > limit)
            && k <= n
            && evidence::binomial_tail(k, n, evidence::P95_SHARE_LIMIT) < evidence::VOLUME_ALPHA;
        let rate = bad_rate(totals);
        let error_rate = if totals.requests >= min && rate.is_some_and(|r| r > od.max_error_rate) {
            rate
        } else {
            verdict.errors.map(|(bad, n)| bad as f64 / n.max(1) as f64)
        };
        Self {
            eligible,
            p95,
            slow: by_volume || verdict.slow.is_some(),
            hanging: verdict.hanging,
            error_rate,
        }
    }

    /// Relative latency: slow for the cluster too. When the other endpoints' median p95 is
    /// within `limit`, being over the limit is enough; when the others are slow as well (a whole
    /// cluster slowing down together), only a p95 over twice their median, or requests in flight
    /// for longer than that, count; when no other endpoint answers at all, nothing does.
    fn outlier<K>(
        &self,
        others: &[Duration],
        limit: Duration,
        state: &EndpointState<K>,
        now: Stamp,
    ) -> bool {
        let Some(&median) = others.get(others.len() / 2) else {
            return true;
        };
        if median <= limit {
            return true;
        }
        if median == Duration::MAX {
            return false;
        }
        let bar = median.saturating_mul(2);
        self.p95.is_some_and(|p| p > bar) || state.hanging(now, bar) >= crate::evidence::MIN_BAD
    }
}

/// The sorted p95s of the eligible endpoints other than `at` (one with requests hanging and no
/// answer yet counts as slowest).
fn judged_others(judged: &[Judged], at: usize) -> Vec<Duration> {
    let mut others: Vec<Duration> = judged
        .iter()
        .enumerate()
        .filter(|&(i, j)| i != at && j.eligible)
        .filter_map(|(_, j)| j.p95.or((j.hanging > 0).then_some(Duration::MAX)))
        .collect();
    others.sort_unstable();
    others
}
