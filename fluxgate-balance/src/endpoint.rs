//! One endpoint's shared, lock-free state: what the request path records and what the
//! evaluation, the health task and the snapshot read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use fluxgate_core::clock::Stamp;
use fluxgate_core::ewma::Ewma;
use fluxgate_core::outcome::Outcome;
use fluxgate_core::quantile::{LatencyQuantiles, sample_shift, sample_weight};
use fluxgate_core::window::WindowTotals;

use crate::evidence::{self, Evidence, Verdict};
use crate::hot::Stripes;
use crate::stats::EndpointTotals;

/// An endpoint's service with its configured weight, as a static list or a discovery stream
/// hands it to the balancer.
///
/// ```
/// use fluxgate_balance::Weighted;
///
/// let endpoint = Weighted::new(tower::service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// }), 3);
/// assert_eq!(endpoint.weight, 3);
/// assert_eq!(Weighted::new((), 0).weight, 1, "weights are at least 1");
/// ```
#[derive(Debug, Clone)]
pub struct Weighted<S> {
    /// The endpoint's service, such as a proxy to one upstream or a tonic `Channel`.
    pub service: S,
    /// Its relative share of traffic (at least 1).
    pub weight: u32,
}

impl<S> Weighted<S> {
    /// Pairs `service` with `weight` (0 counts as 1).
    pub fn new(service: S, weight: u32) -> Self {
        Self {
            service,
            weight: weight.max(1),
        }
    }
}

impl<S> From<S> for Weighted<S> {
    fn from(service: S) -> Self {
        Self::new(service, 1)
    }
}

/// Passive (outlier detection) states.
pub(crate) const ACTIVE: u8 = 0;
pub(crate) const EJECTED: u8 = 1;
pub(crate) const PROBE_READY: u8 = 2;
pub(crate) const PROBE_IN_FLIGHT: u8 = 3;

/// Why an endpoint was drained, as stored (`reason` word).
pub(crate) const REASON_NONE: u8 = 0;
pub(crate) const REASON_ERRORS: u8 = 1;
pub(crate) const REASON_LATENCY: u8 = 2;
pub(crate) const REASON_CONSECUTIVE: u8 = 3;
pub(crate) const REASON_CONNECT: u8 = 4;

/// No utilisation reported.
pub(crate) const NO_UTIL: u32 = u32::MAX;

/// How long an endpoint whose connection broke is passed over while another is eligible.
pub(crate) const BROKEN_FOR: Duration = Duration::from_secs(1);

/// Time from `origin`, in nanoseconds.
pub(crate) fn nanos_since(origin: Stamp, now: Stamp) -> u64 {
    now.nanos_since(origin)
}

/// One endpoint as the balancer holds it: the service every clone clones its own from, and
/// the shared state.
#[derive(Debug)]
pub(crate) struct Slot<K, S> {
    pub(crate) service: S,
    pub(crate) state: Arc<EndpointState<K>>,
}

/// The endpoint set, in the balancer's order.
pub(crate) type Slots<K, S> = Vec<Arc<Slot<K, S>>>;

/// The endpoints' shared states, in the order of their slots.
pub(crate) type States<K> = Vec<Arc<EndpointState<K>>>;

/// A balancer clone's way to its endpoints' states: the states as of the endpoint set it last
/// saw. Each request's future holds a reference to its clone's lane rather than to its
/// endpoint's state, so that two workers' requests to one endpoint do not take turns at the
/// state's reference count (a clone is called on one thread at a time, so its lane's count
/// stays on its core).
#[derive(Debug)]
pub(crate) struct Lane<K> {
    pub(crate) states: Arc<States<K>>,
}

/// The shared state of one endpoint.
#[derive(Debug)]
pub(crate) struct EndpointState<K> {
    pub(crate) key: K,
    pub(crate) weight: u32,
    pub(crate) origin: Stamp,
    /// The balancer's "re-evaluate" flag, raised on a failure streak or a probe's answer.
    pub(crate) dirty: Arc<AtomicBool>,
    /// The counts every request adds to, one set per thread (see [`crate::hot`]).
    pub(crate) hot: Stripes,
    /// Peak EWMA of latency, in microseconds (failures count as slower than they were); fed
    /// by the timed responses (see [`sample_shift`](Self::sample_shift)).
    pub(crate) latency: Ewma,
    /// Latencies of the timed responses, each counted for the responses it stands for.
    pub(crate) latencies: LatencyQuantiles,
    /// `log2` of the stride of the latency sample: a busy endpoint times one response in
    /// `1 << sample_shift` (see [`fluxgate_core::quantile::sample_shift`]); set by the
    /// evaluation from the last second's rate.
    pub(crate) sample_shift: AtomicU8,
    /// Backend-reported utilisation in thousandths ([`NO_UTIL`] when never reported).
    pub(crate) utilization: AtomicU32,
    pub(crate) consecutive_failures: AtomicU32,
    /// Set when a request could not even connect (the balancer ejects the endpoint at once).
    pub(crate) connect_failed: AtomicBool,
    /// Until when (a [`Stamp`]'s nanoseconds) the picker passes this endpoint over while
    /// another is eligible: a connection to it broke before a response head came back (the
    /// proxy gave the request back), so a retry goes elsewhere rather than to a connection
    /// that may be just as broken.
    pub(crate) broken_until: AtomicU64,
    /// Since when the samples count (the samples themselves are in [`hot`](Self::hot)).
    pub(crate) evidence: Evidence,
    pub(crate) healthy: AtomicBool,
    pub(crate) check_failures: AtomicU32,
    pub(crate) check_passes: AtomicU32,
    pub(crate) passive: AtomicU8,
    pub(crate) reason: AtomicU8,
    /// The value behind `reason`: error rate in millionths, latency in microseconds, or a count.
    pub(crate) reason_value: AtomicU64,
    pub(crate) ejected_until: AtomicU64,
    pub(crate) ejections: AtomicU32,
    /// When the slow-start ramp began (`u64::MAX`: no ramp).
    pub(crate) ramp_start: AtomicU64,
    /// The weight in effect, as `f64` bits, written by the evaluation for the snapshot.
    pub(crate) effective_weight: AtomicU64,
}

/// Bucket width and count of the latency window and of the last second's outcomes: a 1s window
/// of 100ms buckets.
const WINDOW_BUCKET: Duration = evidence::BUCKET;
const WINDOW_BUCKETS: u32 = evidence::SHORT_BUCKETS;

impl<K> EndpointState<K> {
    /// `None` only if the core primitives refuse the (constant) window shapes.
    pub(crate) fn new(
        key: K,
        weight: u32,
        origin: Stamp,
        dirty: Arc<AtomicBool>,
        half_life: Duration,
        ramp: bool,
    ) -> Option<Self> {
        let now = Stamp::now();
        Some(Self {
            key,
            weight: weight.max(1),
            origin,
            dirty,
            hot: Stripes::new(origin),
            // The constants are valid shapes; `new` only fails on invalid ones.
            latency: Ewma::new(half_life.max(Duration::from_millis(1))).ok()?,
            latencies: LatencyQuantiles::new(WINDOW_BUCKET, WINDOW_BUCKETS).ok()?,
            sample_shift: AtomicU8::new(0),
            utilization: AtomicU32::new(NO_UTIL),
            consecutive_failures: AtomicU32::new(0),
            connect_failed: AtomicBool::new(false),
            broken_until: AtomicU64::new(0),
            evidence: Evidence::new(origin),
            healthy: AtomicBool::new(true),
            check_failures: AtomicU32::new(0),
            check_passes: AtomicU32::new(0),
            passive: AtomicU8::new(ACTIVE),
            reason: AtomicU8::new(REASON_NONE),
            reason_value: AtomicU64::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            ramp_start: AtomicU64::new(if ramp {
                nanos_since(origin, now)
            } else {
                u64::MAX
            }),
            effective_weight: AtomicU64::new(f64::from(weight.max(1)).to_bits()),
        })
    }

    /// The outcomes of the last second (failed `poll_ready`s included), over every thread.
    pub(crate) fn outcomes(&self, now: Stamp) -> WindowTotals {
        self.hot.recent(now, WINDOW_BUCKETS)
    }

    /// Requests in flight, over every thread.
    pub(crate) fn in_flight(&self) -> u32 {
        self.hot.in_flight()
    }

    /// Cumulative counts since the endpoint was added, over every thread.
    pub(crate) fn totals(&self) -> EndpointTotals {
        self.hot.totals()
    }

    /// The evidence's verdict now (see [`Evidence::verdict`]).
    pub(crate) fn verdict(&self, now: Stamp, limit: Duration, max_error_rate: f64) -> Verdict {
        let outcomes = self.hot.horizons(now);
        self.evidence
            .verdict(now, &self.hot.samples(), outcomes, limit, max_error_rate)
    }

    /// Requests in flight that started more than `limit` ago, over every thread.
    pub(crate) fn hanging(&self, now: Stamp, limit: Duration) -> u64 {
        self.evidence.hanging(now, limit, &self.hot.samples())
    }

    /// Whether new requests may be sent here (healthy and not drained).
    pub(crate) fn is_eligible(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.passive.load(Ordering::Relaxed) == ACTIVE
    }

    /// Sets the stride of the latency sample from the rate of the last full bucket.
    pub(crate) fn resample(&self, now: Stamp) {
        let requests = self.hot.recent(now, 1).requests;
        self.sample_shift
            .store(sample_shift(requests, WINDOW_BUCKET), Ordering::Relaxed);
    }

    /// Whether a request sent now has its latency timed, and for how many responses it
    /// stands (0: not timed), drawing on `random` when the endpoint is busy enough to sample.
    #[inline]
    pub(crate) fn timed(&self, random: u64) -> u32 {
        sample_weight(self.sample_shift.load(Ordering::Relaxed), random)
    }

    /// A request is sent, from the thread of `stripe`, at `now`: counted in flight there;
    /// returns its start-time bucket for [`finish`](Self::finish).
    #[inline]
    pub(crate) fn start(&self, stripe: usize, now: Stamp) -> u64 {
        let bucket = self.evidence.bucket(now);
        if let Some(hot) = self.hot.at(stripe) {
            hot.in_flight.fetch_add(1, Ordering::Relaxed);
            hot.samples.start(bucket);
        }
        bucket
    }

    /// The request [`start`](Self::start)ed in `bucket` from `stripe` is no longer in flight.
    #[inline]
    pub(crate) fn finish(&self, stripe: usize, bucket: u64) {
        if let Some(hot) = self.hot.at(stripe) {
            hot.in_flight.fetch_sub(1, Ordering::Relaxed);
            hot.samples.finish(bucket);
        }
    }

    /// Records one finished request in `stripe`'s counts, or with no `latency` a failed
    /// `poll_ready` (which counts in the window and the failure streak, not in the latencies
    /// nor the cumulative totals); its latency goes into the shared latency estimates `timed`
    /// times (0: not timed, see [`timed`](Self::timed)). Returns whether it made the failure
    /// streak reach `streak`.
    pub(crate) fn record(
        &self,
        stripe: usize,
        now: Stamp,
        latency: Option<Duration>,
        outcome: Outcome,
        track: Track,
        timed: u32,
    ) -> bool {
        if let Some(hot) = self.hot.at(stripe) {
            let slow_limit = track.quantiles.then_some(track.slow_limit);
            hot.record(now, latency, outcome, slow_limit);
        }
        let bad = outcome != Outcome::Success;
        // A failed `poll_ready` (no latency) is rare: it always counts in the average.
        if timed > 0 || latency.is_none() {
            if let Some(latency) = latency
                && track.quantiles
            {
                self.latencies.record_weighted(now, latency, timed);
            }
            if track.ewma {
                let micros = latency.unwrap_or_default().as_secs_f64() * 1e6;
                // A failure counts as at least twice as slow as the endpoint has been:
                // answering errors quickly must not make an endpoint look attractive.
                let sample = if bad {
                    (micros.max(self.latency.get().unwrap_or(micros)) * 2.0).clamp(1_000.0, 1e7)
                } else {
                    micros
                };
                self.latency.update_peak(now, sample);
            }
        }
        if bad {
            let streak = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
            streak == track.streak
        } else {
            if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                self.consecutive_failures.store(0, Ordering::Relaxed);
            }
            false
        }
    }

    /// Back in the rotation after a drain: a slow-start ramp, and evidence from `now` on.
    pub(crate) fn returned(&self, now: Stamp) {
        self.restart_ramp(now);
        self.evidence.reset(now);
        self.connect_failed.store(false, Ordering::Relaxed);
    }

    /// Starts a slow-start ramp at `now`.
    pub(crate) fn restart_ramp(&self, now: Stamp) {
        self.ramp_start
            .store(nanos_since(self.origin, now), Ordering::Relaxed);
    }
}

/// What a finished request records, decided from the policy when the request is sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Track {
    pub(crate) ewma: bool,
    pub(crate) quantiles: bool,
    pub(crate) orca: bool,
    /// Latency over which a sample is slow (outlier detection's `maxP95Latency`).
    pub(crate) slow_limit: Duration,
    /// The failure streak that asks for an evaluation (0: never).
    pub(crate) streak: u32,
}
