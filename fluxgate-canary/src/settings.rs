//! Where a canary's settings come from ([`CanarySource`]) and the options a policy does not carry
//! ([`CanaryOptions`]).

use std::sync::Arc;
use std::time::Duration;

use fluxgate_core::key::KeyExtractor;
use fluxgate_core::policy::{CanaryMatcher, CompiledCanary};
use fluxgate_core::store::PolicySlot;

/// The shortest analysis interval used; shorter ones (possible only in hand-edited compiled
/// policies) are raised to it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Where a [`Canary`](crate::Canary) reads its `spec.canary`.
///
/// ```
/// use fluxgate_canary::CanarySource;
/// use fluxgate_core::store::{PolicyId, PolicyStore};
///
/// let slot = PolicyStore::new().slot(&PolicyId::new("payments", "checkout"));
/// assert!(matches!(CanarySource::from(slot), CanarySource::Slot(_)));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CanarySource {
    /// One compiled canary, fixed for the router's life.
    Fixed(Box<CompiledCanary>),
    /// The policy in force in a store. A new version (a new generation) is picked up on the next
    /// request or the judge's next tick; without a policy or a `canary` section, every request
    /// goes to stable.
    Slot(PolicySlot),
}

impl From<CompiledCanary> for CanarySource {
    fn from(canary: CompiledCanary) -> Self {
        Self::Fixed(Box::new(canary))
    }
}

impl From<&CompiledCanary> for CanarySource {
    fn from(canary: &CompiledCanary) -> Self {
        Self::Fixed(Box::new(canary.clone()))
    }
}

impl From<PolicySlot> for CanarySource {
    fn from(slot: PolicySlot) -> Self {
        Self::Slot(slot)
    }
}

/// What an analysis does with a window of fewer than `minRequests` canary requests.
///
/// ```
/// use fluxgate_canary::InsufficientSamples;
///
/// assert_eq!(InsufficientSamples::default(), InsufficientSamples::Hold);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InsufficientSamples {
    /// Neither a pass nor a failure: the weight holds and the failed-check count stays (default).
    #[default]
    Hold,
    /// Counted as a pass (the weight may advance), for canaries that get very little traffic.
    Pass,
    /// Counted as a failed check.
    Fail,
}

/// Options of the router that a policy does not carry.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_canary::{CanaryOptions, InsufficientSamples};
///
/// let options = CanaryOptions::default().insufficient_samples(InsufficientSamples::Fail);
/// assert_eq!(options.budget_tick, Duration::from_millis(200));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CanaryOptions {
    /// What an analysis with too few canary requests does; [`InsufficientSamples::Hold`].
    pub insufficient_samples: InsufficientSamples,
    /// How often the error budget is checked, and the bucket width of its sliding window; 200ms.
    pub budget_tick: Duration,
}

impl Default for CanaryOptions {
    fn default() -> Self {
        Self {
            insufficient_samples: InsufficientSamples::Hold,
            budget_tick: Duration::from_millis(200),
        }
    }
}

impl CanaryOptions {
    /// Sets [`insufficient_samples`](Self::insufficient_samples).
    ///
    /// ```
    /// # use fluxgate_canary::{CanaryOptions, InsufficientSamples};
    /// let options = CanaryOptions::default().insufficient_samples(InsufficientSamples::Pass);
    /// assert_eq!(options.insufficient_samples, InsufficientSamples::Pass);
    /// ```
    #[must_use]
    pub fn insufficient_samples(mut self, action: InsufficientSamples) -> Self {
        self.insufficient_samples = action;
        self
    }

    /// Sets [`budget_tick`](Self::budget_tick) (at least 1ms).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use fluxgate_canary::CanaryOptions;
    /// let options = CanaryOptions::default().budget_tick(Duration::from_millis(100));
    /// assert_eq!(options.budget_tick, Duration::from_millis(100));
    /// ```
    #[must_use]
    pub fn budget_tick(mut self, tick: Duration) -> Self {
        self.budget_tick = tick.max(Duration::from_millis(1));
        self
    }
}

/// What the request path needs besides the route word: the match rules and the sticky key.
#[derive(Debug, Default)]
pub(crate) struct RouteRules {
    pub(crate) matcher: CanaryMatcher,
    pub(crate) sticky: Option<KeyExtractor>,
}

impl RouteRules {
    pub(crate) fn of(canary: Option<&CompiledCanary>) -> Arc<Self> {
        Arc::new(canary.map_or_else(Self::default, |c| Self {
            matcher: c.matcher.clone(),
            sticky: c.sticky_key.clone().map(KeyExtractor::new),
        }))
    }
}

/// The judge's settings, from a compiled canary (or "off" without one).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub(crate) enabled: bool,
    pub(crate) weight: u8,
    pub(crate) steps: Vec<u8>,
    pub(crate) interval: Duration,
    pub(crate) min_requests: u32,
    pub(crate) failure_threshold: u32,
    pub(crate) error_budget: f64,
    pub(crate) rollback_matched: bool,
    /// Whether there are match rules or a sticky key.
    pub(crate) rules: bool,
    pub(crate) target_error_rate: Option<f64>,
    pub(crate) target_p99_latency: Option<Duration>,
}

impl Settings {
    pub(crate) fn of(canary: Option<&CompiledCanary>) -> Self {
        match canary {
            Some(c) => Self {
                enabled: c.enabled,
                weight: c.weight.min(100),
                steps: c.steps.iter().map(|s| (*s).min(100)).collect(),
                interval: c.interval.max(MIN_INTERVAL),
                min_requests: c.min_requests,
                failure_threshold: c.failure_threshold.max(1),
                error_budget: c.error_budget,
                rollback_matched: c.rollback_matched,
                rules: !c.matcher.is_empty() || c.sticky_key.is_some(),
                target_error_rate: c.target_error_rate,
                target_p99_latency: c.target_p99_latency,
            },
            None => {
                // The policy's defaults, with the canary off.
                let spec = fluxgate_core::policy::CanarySpec::default();
                Self {
                    enabled: false,
                    weight: 0,
                    steps: Vec::new(),
                    interval: spec.interval.as_std(),
                    min_requests: spec.min_requests,
                    failure_threshold: spec.failure_threshold,
                    error_budget: spec.error_budget,
                    rollback_matched: spec.rollback_matched,
                    rules: false,
                    target_error_rate: None,
                    target_p99_latency: None,
                }
            }
        }
    }
}
