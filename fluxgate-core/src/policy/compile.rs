//! [`CompiledPolicy`]: a validated policy in the form the layers read on the hot path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use super::{
    CanaryMatcher, LimitAlgorithm, LoadBalancing, MissingKey, PolicyError, PolicyErrorKind,
    PolicyErrors, StoreFailure, SyncMode, TrafficPolicy,
};
use crate::key::KeySource;

/// A validated policy with its strings parsed: key sources, header names, regexes, durations.
///
/// Cloning is cheap (one `Arc`).
///
/// ```
/// use fluxgate_core::policy::{CompiledPolicy, RateLimitSpec, RateLimits, TrafficPolicy};
///
/// let mut policy = TrafficPolicy::new(None, "edge");
/// policy.spec.rate_limit = Some(RateLimits(vec![RateLimitSpec::new(10.0, 5)]));
/// let compiled = CompiledPolicy::compile(&policy).unwrap();
/// assert_eq!(compiled.rate_limits()[0].key, fluxgate_core::key::KeySource::Ip);
/// assert_eq!(compiled.policy(), &policy);
/// ```
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: String,
    policy: TrafficPolicy,
    rate_limits: Vec<CompiledRateLimit>,
    canary: Option<CompiledCanary>,
}

/// One rate limit, ready to apply.
///
/// ```
/// # use fluxgate_core::policy::{CompiledPolicy, RateLimitSpec, RateLimits, TrafficPolicy};
/// # let mut policy = TrafficPolicy::new(None, "edge");
/// # policy.spec.rate_limit = Some(RateLimits(vec![RateLimitSpec::new(10.0, 5)]));
/// let compiled = CompiledPolicy::compile(&policy).unwrap();
/// assert_eq!(compiled.rate_limits()[0].sync_interval.as_millis(), 50);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CompiledRateLimit {
    /// The limit's name, if any.
    pub name: Option<String>,
    /// The sustained rate per key.
    pub requests_per_second: f64,
    /// The burst per key (at least 1).
    pub burst_size: u32,
    /// Where the key comes from.
    pub key: KeySource,
    /// The counting algorithm.
    pub algorithm: LimitAlgorithm,
    /// What to do without a key.
    pub missing_key: MissingKey,
    /// Count without refusing.
    pub shadow: bool,
    /// Per-key (requests per second, burst) tiers.
    pub overrides: HashMap<String, (f64, u32)>,
    /// How replicas share counts.
    pub sync_mode: SyncMode,
    /// How often counts are merged.
    pub sync_interval: StdDuration,
    /// How long a store call may take.
    pub sync_timeout: StdDuration,
    /// What to do when the store fails.
    pub on_store_failure: StoreFailure,
}

/// A canary, ready to route.
///
/// ```
/// # use fluxgate_core::policy::{CanarySpec, CompiledPolicy, TrafficPolicy};
/// let mut policy = TrafficPolicy::new(None, "edge");
/// let mut canary = CanarySpec::default();
/// canary.weight = 5;
/// policy.spec.canary = Some(canary);
/// let compiled = CompiledPolicy::compile(&policy).unwrap();
/// assert_eq!(compiled.canary().unwrap().weight, 5);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CompiledCanary {
    /// Whether the canary receives traffic.
    pub enabled: bool,
    /// Percent of unmatched traffic sent to the canary (0..=100).
    pub weight: u8,
    /// The match rules.
    pub matcher: CanaryMatcher,
    /// The stickiness key, if any.
    pub sticky_key: Option<KeySource>,
    /// Progressive weights, strictly increasing.
    pub steps: Vec<u8>,
    /// Time between analyses.
    pub interval: StdDuration,
    /// Requests an analysis needs.
    pub min_requests: u32,
    /// Failed analyses in a row that roll back.
    pub failure_threshold: u32,
    /// Availability under which the canary is rolled back.
    pub error_budget: f64,
    /// Whether a rollback stops matched routing too.
    pub rollback_matched: bool,
    /// Highest acceptable error rate.
    pub target_error_rate: Option<f64>,
    /// Highest acceptable p99 latency.
    pub target_p99_latency: Option<StdDuration>,
}

fn key(value: &str, path: String) -> Result<KeySource, PolicyErrors> {
    value.parse().map_err(|e: crate::key::KeySourceError| {
        PolicyError::new(PolicyErrorKind::InvalidValue, path)
            .found_expected(
                format!("{value:?}"),
                format!("one of ip, header.NAME, cookie.NAME, query.NAME ({e})"),
            )
            .into()
    })
}

impl CompiledPolicy {
    /// Validates `policy`, then compiles it.
    ///
    /// # Errors
    ///
    /// Every validation error, as [`PolicyErrors`].
    ///
    /// ```
    /// # use fluxgate_core::policy::{CompiledPolicy, TrafficPolicy};
    /// assert!(CompiledPolicy::compile(&TrafficPolicy::new(None, "Not_A_Name")).is_err());
    /// ```
    pub fn compile(policy: &TrafficPolicy) -> Result<Self, PolicyErrors> {
        policy.validate()?;
        let spec = &policy.spec;
        let rate_limits = spec
            .rate_limit
            .iter()
            .flat_map(|limits| limits.0.iter().enumerate())
            .map(|(i, limit)| {
                Ok(CompiledRateLimit {
                    name: limit.name.clone(),
                    requests_per_second: limit.requests_per_second,
                    burst_size: limit.burst_size,
                    key: key(
                        &limit.key_extractor,
                        format!("spec.rateLimit[{i}].keyExtractor"),
                    )?,
                    algorithm: limit.algorithm,
                    missing_key: limit.missing_key,
                    shadow: limit.shadow,
                    overrides: limit
                        .overrides
                        .iter()
                        .map(|o| (o.key.clone(), (o.requests_per_second, o.burst_size)))
                        .collect(),
                    sync_mode: limit.sync.mode,
                    sync_interval: limit.sync.interval.as_std(),
                    sync_timeout: limit.sync.timeout.as_std(),
                    on_store_failure: limit.on_store_failure,
                })
            })
            .collect::<Result<_, PolicyErrors>>()?;
        let canary = match &spec.canary {
            Some(c) => Some(CompiledCanary {
                enabled: c.enabled,
                weight: u8::try_from(c.weight.min(100)).unwrap_or(100),
                matcher: CanaryMatcher::new(&c.matches)?,
                sticky_key: c
                    .sticky_key
                    .as_deref()
                    .map(|k| key(k, "spec.canary.stickyKey".to_owned()))
                    .transpose()?,
                steps: c.steps.clone(),
                interval: c.interval.as_std(),
                min_requests: c.min_requests,
                failure_threshold: c.failure_threshold,
                error_budget: c.error_budget,
                rollback_matched: c.rollback_matched,
                target_error_rate: c.metrics.as_ref().and_then(|m| m.target_error_rate),
                target_p99_latency: c
                    .metrics
                    .as_ref()
                    .and_then(|m| m.target_p99_latency)
                    .map(super::Duration::as_std),
            }),
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                id: policy.id(),
                policy: policy.clone(),
                rate_limits,
                canary,
            }),
        })
    }

    /// `namespace/name` (or `name`).
    ///
    /// ```
    /// # use fluxgate_core::policy::{CompiledPolicy, TrafficPolicy};
    /// let compiled = CompiledPolicy::compile(&TrafficPolicy::new(Some("ns"), "a")).unwrap();
    /// assert_eq!(compiled.id(), "ns/a");
    /// ```
    #[must_use]
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The policy this was compiled from.
    ///
    /// ```
    /// # use fluxgate_core::policy::{CompiledPolicy, TrafficPolicy};
    /// let compiled = CompiledPolicy::compile(&TrafficPolicy::new(None, "a")).unwrap();
    /// assert_eq!(compiled.policy().metadata.name, "a");
    /// ```
    #[must_use]
    pub fn policy(&self) -> &TrafficPolicy {
        &self.inner.policy
    }

    /// The load-balancing section (its durations convert with [`Duration::as_std`](super::Duration::as_std)).
    ///
    /// ```
    /// # use fluxgate_core::policy::{CompiledPolicy, TrafficPolicy};
    /// let compiled = CompiledPolicy::compile(&TrafficPolicy::new(None, "a")).unwrap();
    /// assert!(compiled.load_balancing().is_none());
    /// ```
    #[must_use]
    pub fn load_balancing(&self) -> Option<&LoadBalancing> {
        self.inner.policy.spec.load_balancing.as_ref()
    }

    /// The rate limits, in policy order (empty without a `rateLimit` section).
    ///
    /// ```
    /// # use fluxgate_core::policy::{CompiledPolicy, TrafficPolicy};
    /// let compiled = CompiledPolicy::compile(&TrafficPolicy::new(None, "a")).unwrap();
    /// assert!(compiled.rate_limits().is_empty());
    /// ```
    #[must_use]
    pub fn rate_limits(&self) -> &[CompiledRateLimit] {
        &self.inner.rate_limits
    }

    /// The canary, if the policy has one.
    ///
    /// ```
    /// # use fluxgate_core::policy::{CompiledPolicy, TrafficPolicy};
    /// let compiled = CompiledPolicy::compile(&TrafficPolicy::new(None, "a")).unwrap();
    /// assert!(compiled.canary().is_none());
    /// ```
    #[must_use]
    pub fn canary(&self) -> Option<&CompiledCanary> {
        self.inner.canary.as_ref()
    }
}
