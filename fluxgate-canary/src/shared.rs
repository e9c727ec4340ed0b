//! The state every clone of a canary router, its handle and its judge share.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use fluxgate_core::clock::Stamp;
use fluxgate_core::outcome::Outcome;
use fluxgate_core::quantile::sample_shift;
use fluxgate_core::store::{AppliedPolicy, PolicySlot};
use fluxgate_core::stripe::Striped;
use fluxgate_core::window::{MAX_BUCKETS, StripedTraffic};
use tokio::time::Instant;

use crate::error::CanaryError;
use crate::fleet::{Fleet, FleetLink, Tally};
use crate::machine::{Machine, Measurement};
use crate::route::{Route, RouteWord, Side, mix};
use crate::settings::{CanaryOptions, RouteRules, Settings};
use crate::snapshot::{SideStats, Snapshot};

/// Latency windows are cut in this many buckets.
const ANALYSIS_BUCKETS: u32 = 10;

/// One side's windows: outcome counts and latencies over one interval. The counts' buckets
/// (one budget tick wide) divide the interval exactly, so read at an interval boundary they
/// cover exactly the interval that just ended; they are the budget's sliding window too.
#[derive(Debug)]
/// The counts are striped per thread ([`StripedTraffic`]): every worker records into them.
pub(crate) struct SideWindows(StripedTraffic, Option<(Arc<[Tally; 2]>, Side)>);

impl SideWindows {
    fn new(
        interval: Duration,
        tick: Duration,
        tally: Option<(Arc<[Tally; 2]>, Side)>,
    ) -> Result<Self, CanaryError> {
        let buckets = interval
            .as_nanos()
            .div_ceil(tick.as_nanos().max(1))
            .clamp(1, u128::from(MAX_BUCKETS));
        let buckets = u32::try_from(buckets).unwrap_or(MAX_BUCKETS);
        Ok(Self(
            StripedTraffic::new(interval, buckets, ANALYSIS_BUCKETS)?,
            tally,
        ))
    }

    /// Records one response in stripe `stripe`: its outcome, and its latency `weight` times (0
    /// when it was not timed; see [`Sampling`]).
    #[inline]
    pub(crate) fn record(
        &self,
        stripe: usize,
        now: Stamp,
        outcome: Outcome,
        latency: Duration,
        weight: u32,
    ) {
        self.0.record(stripe, now, outcome, latency, weight);
        if let Some((tallies, side)) = &self.1 {
            tallies[*side as usize].record(stripe, outcome, latency, weight);
        }
    }

    fn measure(&self, now: Instant) -> Measurement {
        let totals = self.0.totals(now);
        Measurement {
            samples: totals.requests,
            error_rate: totals.success_rate().map(|s| 1.0 - s),
            p99: self.0.latencies().quantile(now, 0.99),
        }
    }
}

/// A router clone's way into the windows: the windows as of its version, and the stripe of the
/// thread it was first called on. Each response's future holds a reference to its clone's lane
/// rather than to the shared windows, so that two workers' requests do not take turns at one
/// reference count (a clone is called on one thread at a time, so its lane's count stays on
/// its core).
#[derive(Debug)]
pub(crate) struct Lane {
    pub(crate) windows: Arc<Windows>,
    pub(crate) stripe: usize,
}

impl Lane {
    /// Records one response of `side` (see [`SideWindows::record`]).
    #[inline]
    pub(crate) fn record(
        &self,
        side: Side,
        now: Stamp,
        outcome: Outcome,
        latency: Duration,
        weight: u32,
    ) {
        let windows = self.windows.side(side);
        windows.record(self.stripe, now, outcome, latency, weight);
    }
}

/// Both sides' windows, rebuilt when the interval changes.
#[derive(Debug)]
pub(crate) struct Windows {
    /// When the windows' buckets start: analyses fall on `origin + k·interval`.
    pub(crate) origin: Instant,
    pub(crate) interval: Duration,
    stable: SideWindows,
    canary: SideWindows,
}

impl Windows {
    fn new(
        interval: Duration,
        tick: Duration,
        tallies: Option<&Arc<[Tally; 2]>>,
    ) -> Result<Self, CanaryError> {
        let tally = |side| tallies.map(|t| (Arc::clone(t), side));
        Ok(Self {
            origin: Instant::now(),
            interval,
            stable: SideWindows::new(interval, tick, tally(Side::Stable))?,
            canary: SideWindows::new(interval, tick, tally(Side::Canary))?,
        })
    }

    pub(crate) fn side(&self, side: Side) -> &SideWindows {
        match side {
            Side::Stable => &self.stable,
            Side::Canary => &self.canary,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) route: RouteWord,
    pub(crate) rules: ArcSwap<RouteRules>,
    pub(crate) windows: ArcSwap<Windows>,
    /// Bumped after each new `windows` or `rules`, so that routers re-read them only when they
    /// change.
    pub(crate) version: AtomicU64,
    machine: Mutex<Machine>,
    slot: Option<PolicySlot>,
    /// The slot generation taken in (0: none).
    generation: AtomicU64,
    pub(crate) options: CanaryOptions,
    /// Requests routed to each side, striped per thread (every worker adds on every request).
    routed: Striped<[AtomicU64; 2]>,
    /// Which responses of each side are timed.
    pub(crate) sampling: Sampling,
    seeds: AtomicU64,
    /// The fleet this replica belongs to, if any.
    pub(crate) fleet: Option<FleetLink>,
}

impl Shared {
    pub(crate) fn new(
        slot: Option<PolicySlot>,
        fixed: Option<&fluxgate_core::policy::CompiledCanary>,
        options: CanaryOptions,
        fleet: Option<Fleet>,
    ) -> Result<Self, CanaryError> {
        let applied = slot.as_ref().and_then(PolicySlot::load_full);
        let canary = match &applied {
            Some(p) => p.compiled().canary(),
            None => fixed,
        };
        let settings = Settings::of(canary);
        let fleet = fleet.map(FleetLink::new);
        let tallies = fleet.as_ref().map(|f| &f.tallies);
        let windows = Windows::new(settings.interval, options.budget_tick, tallies)?;
        let machine = Machine::new(settings, windows.origin);
        let shared = Self {
            route: RouteWord::default(),
            rules: ArcSwap::new(RouteRules::of(canary)),
            windows: ArcSwap::from_pointee(windows),
            version: AtomicU64::new(0),
            machine: Mutex::new(machine),
            slot,
            generation: AtomicU64::new(applied.map_or(0, |p| p.generation())),
            options,
            routed: Striped::default(),
            sampling: Sampling::default(),
            seeds: AtomicU64::new(0),
            fleet,
        };
        shared.publish(&shared.lock());
        Ok(shared)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts the machine's route in force; a fleet replica that has not read the fleet's state
    /// yet routes nothing to the canary.
    pub(crate) fn publish(&self, machine: &Machine) {
        let mut route = machine.route();
        if self.fleet.as_ref().is_some_and(|f| !f.joined()) {
            route.weight = 0;
            route.matched = false;
        }
        self.route.store(route);
    }

    /// The slot generation in force (0: none).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A fresh starting point for a router clone's split sequence.
    pub(crate) fn seed(&self) -> u64 {
        mix(self.seeds.fetch_add(1, Ordering::Relaxed))
    }

    /// Counts a request routed to `side` in stripe `stripe`.
    pub(crate) fn routed(&self, side: Side, stripe: usize) {
        self.routed.at(stripe)[side as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes in a new policy version if the slot has one. One atomic load when nothing changed.
    #[inline]
    pub(crate) fn refresh(&self) -> Route {
        if let Some(slot) = &self.slot {
            let policy = slot.load();
            let generation = policy.as_ref().map_or(0, |p| p.generation());
            if generation != self.generation.load(Ordering::Acquire) {
                self.apply(policy.as_deref(), generation);
            }
        }
        self.route.load()
    }

    fn apply(&self, policy: Option<&AppliedPolicy>, generation: u64) {
        let mut machine = self.lock();
        if generation == self.generation.load(Ordering::Acquire) {
            return;
        }
        let canary = policy.and_then(|p| p.compiled().canary());
        let settings = Settings::of(canary);
        if settings.interval != self.windows.load().interval {
            // New bucket widths: the samples gathered so far are dropped.
            let tallies = self.fleet.as_ref().map(|f| &f.tallies);
            match Windows::new(settings.interval, self.options.budget_tick, tallies) {
                Ok(windows) => self.windows.store(Arc::new(windows)),
                Err(error) => tracing::warn!(target: "fluxgate_canary", %error, "windows kept"),
            }
        }
        self.rules.store(RouteRules::of(canary));
        self.version.fetch_add(1, Ordering::Release);
        machine.update(settings, generation, Instant::now());
        self.publish(&machine);
        self.generation.store(generation, Ordering::Release);
        if let Some(fleet) = &self.fleet {
            fleet.policy_changed.store(true, Ordering::Release);
        }
    }

    pub(crate) fn analyse(&self, now: Instant) {
        let measurement = self.windows.load().canary.measure(now);
        let mut machine = self.lock();
        machine.analyse(measurement, self.options.insufficient_samples, now);
        self.publish(&machine);
    }

    /// Sets each side's latency sample from its rate in the last bucket (every budget tick).
    pub(crate) fn resample(&self, now: Instant) {
        let windows = self.windows.load();
        let width = windows.canary.0.bucket_width();
        for side in [Side::Stable, Side::Canary] {
            let requests = windows.side(side).0.recent(now, 1).requests;
            self.sampling.set(side, requests, width);
        }
    }

    pub(crate) fn check_budget(&self, now: Instant) {
        let totals = self.windows.load().canary.0.totals(now);
        let mut machine = self.lock();
        machine.budget(totals.requests, totals.success_rate(), now);
        self.publish(&machine);
    }

    pub(crate) fn act(&self, action: crate::Action) -> Result<(), CanaryError> {
        let mut machine = self.lock();
        let result = machine.act(action, Instant::now());
        self.publish(&machine);
        if let (Ok(()), Some(fleet)) = (&result, &self.fleet) {
            fleet.push(action);
        }
        result
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        let windows = self.windows.load();
        let stats = |side: Side| {
            let m = windows.side(side).measure(now);
            SideStats {
                routed: self
                    .routed
                    .iter()
                    .map(|r| r[side as usize].load(Ordering::Relaxed))
                    .sum(),
                timed_one_in: 1 << self.sampling.shift(side),
                window_requests: m.samples,
                error_rate: m.error_rate,
                p99: m.p99,
            }
        };
        let (stable, canary) = (stats(Side::Stable), stats(Side::Canary));
        let machine = self.lock();
        Snapshot {
            phase: machine.phase,
            enabled: machine.settings.enabled,
            weight: machine.weight,
            step: machine.step,
            steps: machine.settings.steps.clone(),
            failed_checks: machine.failed_checks,
            last_decision: machine
                .last
                .map(|(d, at)| (d, now.saturating_duration_since(at))),
            stable,
            canary,
            transitions: machine.transitions,
            generation: self
                .slot
                .as_ref()
                .map(|_| self.generation.load(Ordering::Acquire)),
            fleet: self.fleet.as_ref().map(FleetLink::status),
        }
    }
}

/// Which responses' latencies are measured, per side.
///
/// Timing a response takes two reads of the fine clock (about 22 ns each on a 2-core EPYC VM),
/// a third of the router's cost per request. A side that serves more than twice
/// [`TIMED_PER_SECOND`](fluxgate_core::quantile::TIMED_PER_SECOND) responses a second does not
/// need them all for its quantiles: it times one response in 2, 4, 8 or at most 16, chosen at
/// random, about that many a second ([`sample_shift`]), and each timed latency is counted as
/// many times as the responses it stands for, so that the quantiles (local and fleet-wide)
/// estimate every response's. The others place
/// their outcome with the coarse clock ([`Stamp::coarse`]). Outcomes are always all counted.
///
/// The judge sets the stride at every budget tick from the side's rate in the tick that just
/// ended; until it runs, and whenever a side is quiet, every response is timed.
#[derive(Debug, Default)]
pub(crate) struct Sampling([AtomicU8; 2]);

impl Sampling {
    /// `log2` of the stride of `side`: 0 times every response.
    pub(crate) fn shift(&self, side: Side) -> u8 {
        self.0[side as usize].load(Ordering::Relaxed)
    }

    /// The stride for a side that served `requests` in `tick`.
    pub(crate) fn set(&self, side: Side, requests: u64, tick: Duration) {
        self.0[side as usize].store(sample_shift(requests, tick), Ordering::Relaxed);
    }
}
