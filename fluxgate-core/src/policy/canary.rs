//! The `spec.canary` section: [`CanarySpec`] and its match rules.

use serde::{Deserialize, Serialize};

use super::Duration;

/// A canary release: which requests go to the canary, and how it is judged and promoted.
///
/// Every field has a default, so `canary: {}` is valid (enabled, weight 0).
///
/// ```
/// use fluxgate_core::policy::CanarySpec;
///
/// let canary = CanarySpec::default();
/// assert!(canary.enabled);
/// assert_eq!(canary.weight, 0);
/// assert_eq!(canary.error_budget, 0.985);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CanarySpec {
    /// Whether the canary receives traffic; `true` by default.
    pub enabled: bool,
    /// Percent of unmatched traffic sent to the canary; 0 by default, 0..=100.
    pub weight: u32,
    /// Rules that send a request to the canary: entries are OR-ed, the conditions inside one entry
    /// AND-ed; none by default.
    #[serde(rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<CanaryMatch>,
    /// The key (a [`KeySource`](crate::key::KeySource)) that keeps a client on one side; none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sticky_key: Option<String>,
    /// Progressive weights in percent, strictly increasing, each 1..=100; none by default.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<u8>,
    /// Time between analyses; `10s` by default, at least `10ms`.
    pub interval: Duration,
    /// Requests an analysis needs before it judges; 20 by default.
    pub min_requests: u32,
    /// Failed analyses in a row that roll back; 3 by default, at least 1.
    pub failure_threshold: u32,
    /// Availability under which the canary is rolled back; `0.985` by default, in [0, 1].
    pub error_budget: f64,
    /// Whether a rollback also stops sending matched requests; `true` by default.
    pub rollback_matched: bool,
    /// Targets the analysis checks; none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<CanaryMetrics>,
}

impl Default for CanarySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            weight: 0,
            matches: Vec::new(),
            sticky_key: None,
            steps: Vec::new(),
            interval: Duration::from_secs(10),
            min_requests: 20,
            failure_threshold: 3,
            error_budget: 0.985,
            rollback_matched: true,
            metrics: None,
        }
    }
}

/// One match entry: a request matches when every condition present matches.
///
/// ```
/// use fluxgate_core::policy::{CanaryMatch, MatchCondition};
///
/// let entry = CanaryMatch { header: Some(MatchCondition::exact("x-canary", "true")), ..Default::default() };
/// assert!(entry.cookie.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryMatch {
    /// A request header condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<MatchCondition>,
    /// A cookie condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<MatchCondition>,
    /// A query parameter condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<MatchCondition>,
}

/// A condition on a named header, cookie or query parameter.
///
/// ```
/// use fluxgate_core::policy::{MatchCondition, MatchType};
///
/// assert_eq!(MatchCondition::exact("x-canary", "true").match_type, MatchType::Exact);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchCondition {
    /// The header, cookie or parameter name; required.
    pub name: String,
    /// The value (or prefix, or regular expression); required.
    pub value: String,
    /// How `value` is compared; `exact` by default.
    #[serde(rename = "type", default)]
    pub match_type: MatchType,
}

impl MatchCondition {
    /// An exact-match condition.
    ///
    /// ```
    /// # use fluxgate_core::policy::MatchCondition;
    /// assert_eq!(MatchCondition::exact("a", "b").value, "b");
    /// ```
    #[must_use]
    pub fn exact(name: &str, value: &str) -> Self {
        Self {
            name: name.to_owned(),
            value: value.to_owned(),
            match_type: MatchType::Exact,
        }
    }
}

/// How a condition compares a value.
///
/// ```
/// # use fluxgate_core::policy::MatchType;
/// assert_eq!(MatchType::default(), MatchType::Exact);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MatchType {
    /// `exact`: the whole value (the default).
    #[default]
    Exact,
    /// `prefix`: the value starts with it.
    Prefix,
    /// `regex`: the regular expression matches somewhere in the value (anchor it with `^…$`).
    Regex,
}

/// Targets of the canary analysis.
///
/// ```
/// use fluxgate_core::policy::CanaryMetrics;
///
/// assert!(CanaryMetrics::default().target_error_rate.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct CanaryMetrics {
    /// Highest acceptable error rate, in [0, 1]; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_error_rate: Option<f64>,
    /// Highest acceptable p99 latency; none by default.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "targetP99Latency"
    )]
    pub target_p99_latency: Option<Duration>,
}
