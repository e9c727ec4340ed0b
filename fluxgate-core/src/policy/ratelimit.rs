//! The `spec.rateLimit` section: one [`RateLimitSpec`] or a list of them, as [`RateLimits`].

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Duration;

/// The rate limits of a policy: written as one limit (a mapping) or a list of limits.
///
/// One limit serializes back as a mapping, several as a list.
///
/// ```
/// use fluxgate_core::policy::{RateLimitSpec, RateLimits};
///
/// let limits = RateLimits(vec![RateLimitSpec::new(100.0, 20)]);
/// assert_eq!(limits.0[0].key_extractor, "ip");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateLimits(pub Vec<RateLimitSpec>);

impl Serialize for RateLimits {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(serializer),
            all => all.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for RateLimits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = RateLimits;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate limit (a mapping) or a list of rate limits")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RateLimits, A::Error> {
                let one = RateLimitSpec::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RateLimits(vec![one]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RateLimits, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(RateLimits)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// One rate limit: a rate and a burst per key.
///
/// ```
/// use fluxgate_core::policy::{LimitAlgorithm, RateLimitSpec};
///
/// let limit = RateLimitSpec::new(1200.0, 150);
/// assert_eq!(limit.algorithm, LimitAlgorithm::SlidingWindow);
/// assert!(!limit.shadow);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitSpec {
    /// A name for metrics and logs; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Required; the sustained rate per key, more than zero (may be fractional).
    pub requests_per_second: f64,
    /// Required; requests allowed at once above the rate, at least 1.
    pub burst_size: u32,
    /// Where the key comes from (a [`KeySource`](crate::key::KeySource)); `ip` by default.
    #[serde(default = "default_key")]
    pub key_extractor: String,
    /// `gcra` or `sliding-window` (the default).
    #[serde(default)]
    pub algorithm: LimitAlgorithm,
    /// What to do when a request has no key; `ip` (fall back to the IP) by default.
    #[serde(default)]
    pub missing_key: MissingKey,
    /// Count but never refuse (to try a limit out); `false` by default.
    #[serde(default)]
    pub shadow: bool,
    /// Per-key tiers (API keys with their own rate); none by default; keys unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<RateOverride>,
    /// How replicas share counts; the [`RateSync`] defaults when absent.
    #[serde(default)]
    pub sync: RateSync,
    /// What to do when the shared store fails; `local` by default.
    #[serde(default)]
    pub on_store_failure: StoreFailure,
}

fn default_key() -> String {
    "ip".to_owned()
}

impl RateLimitSpec {
    /// A limit of `requests_per_second` with `burst_size`, everything else by default.
    ///
    /// ```
    /// # use fluxgate_core::policy::RateLimitSpec;
    /// assert_eq!(RateLimitSpec::new(5.0, 1).burst_size, 1);
    /// ```
    #[must_use]
    pub fn new(requests_per_second: f64, burst_size: u32) -> Self {
        Self {
            name: None,
            requests_per_second,
            burst_size,
            key_extractor: default_key(),
            algorithm: LimitAlgorithm::default(),
            missing_key: MissingKey::default(),
            shadow: false,
            overrides: Vec::new(),
            sync: RateSync::default(),
            on_store_failure: StoreFailure::default(),
        }
    }
}

/// A per-key tier: this key gets its own rate and burst.
///
/// ```
/// use fluxgate_core::policy::RateOverride;
///
/// let tier = RateOverride { key: "gold-customer".into(), requests_per_second: 5000.0, burst_size: 500 };
/// assert_eq!(tier.burst_size, 500);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateOverride {
    /// The key value (an API key, a client id); required, unique within a limit.
    pub key: String,
    /// Required; more than zero.
    pub requests_per_second: f64,
    /// Required; at least 1.
    pub burst_size: u32,
}

/// The counting algorithm of a limit.
///
/// ```
/// # use fluxgate_core::policy::LimitAlgorithm;
/// assert_eq!(LimitAlgorithm::default(), LimitAlgorithm::SlidingWindow);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LimitAlgorithm {
    /// `gcra`: the generic cell rate algorithm.
    Gcra,
    /// `sliding-window` (the default).
    #[default]
    SlidingWindow,
}

/// What happens to a request whose key is missing.
///
/// ```
/// # use fluxgate_core::policy::MissingKey;
/// assert_eq!(MissingKey::default(), MissingKey::Ip);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MissingKey {
    /// `ip`: limit it by client IP (the default).
    #[default]
    Ip,
    /// `reject`: refuse it.
    Reject,
    /// `shared`: all such requests share one bucket.
    Shared,
}

/// How a limit's counts are shared between replicas.
///
/// ```
/// use fluxgate_core::policy::{RateSync, SyncMode};
///
/// let sync = RateSync::default();
/// assert_eq!(sync.mode, SyncMode::Synced);
/// assert_eq!(sync.interval.to_string(), "50ms");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RateSync {
    /// `strict` (every decision in the store) or `synced` (the default: local, merged on `interval`).
    pub mode: SyncMode,
    /// How often local counts are merged; `50ms` by default, at least `10ms`.
    pub interval: Duration,
    /// How long a store call may take; `5ms` by default, more than zero.
    pub timeout: Duration,
}

impl Default for RateSync {
    fn default() -> Self {
        Self {
            mode: SyncMode::Synced,
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(5),
        }
    }
}

/// How strictly replicas agree on counts.
///
/// ```
/// # use fluxgate_core::policy::SyncMode;
/// assert_eq!(SyncMode::default(), SyncMode::Synced);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SyncMode {
    /// `strict`: every decision asks the store.
    Strict,
    /// `synced`: decide locally, merge with the store periodically (the default).
    #[default]
    Synced,
}

/// What a limit does when its shared store fails.
///
/// ```
/// # use fluxgate_core::policy::StoreFailure;
/// assert_eq!(StoreFailure::default(), StoreFailure::Local);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StoreFailure {
    /// `local`: go on with local counts only (the default).
    #[default]
    Local,
    /// `open`: let every request through.
    Open,
    /// `closed`: refuse every request.
    Closed,
}
