//! The top of the document: [`TrafficPolicy`], [`ObjectMeta`], [`TrafficPolicySpec`], [`TargetRef`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{API_VERSION, CanarySpec, KIND, LoadBalancing, RateLimits};

/// A `TrafficPolicy` document: how traffic to one workload is balanced, limited and split.
///
/// # Example
///
/// ```
/// use fluxgate_core::policy::TrafficPolicy;
///
/// let mut policy = TrafficPolicy::new(Some("payments"), "checkout");
/// policy.spec.canary = Some(Default::default());
/// assert!(policy.validate().is_ok());
/// assert_eq!(policy.id(), "payments/checkout");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct TrafficPolicy {
    /// Must be [`API_VERSION`] (`fluxgate.io/v1beta1`).
    pub api_version: String,
    /// Must be [`KIND`] (`TrafficPolicy`).
    pub kind: String,
    /// Name, namespace, labels and annotations.
    pub metadata: ObjectMeta,
    /// What the policy does; every section is optional.
    #[serde(default)]
    pub spec: TrafficPolicySpec,
}

impl TrafficPolicy {
    /// An empty policy (no sections) named `name`, in `namespace` when given.
    ///
    /// ```
    /// # use fluxgate_core::policy::TrafficPolicy;
    /// let policy = TrafficPolicy::new(None, "edge");
    /// assert_eq!(policy.api_version, "fluxgate.io/v1beta1");
    /// ```
    #[must_use]
    pub fn new(namespace: Option<&str>, name: &str) -> Self {
        Self {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            metadata: ObjectMeta {
                name: name.to_owned(),
                namespace: namespace.map(str::to_owned),
                ..ObjectMeta::default()
            },
            spec: TrafficPolicySpec::default(),
        }
    }

    /// `namespace/name`, or `name` alone when there is no namespace.
    ///
    /// ```
    /// # use fluxgate_core::policy::TrafficPolicy;
    /// assert_eq!(TrafficPolicy::new(None, "edge").id(), "edge");
    /// ```
    #[must_use]
    pub fn id(&self) -> String {
        self.metadata.id()
    }
}

/// Kubernetes-style object metadata.
///
/// ```
/// use fluxgate_core::policy::ObjectMeta;
///
/// let meta = ObjectMeta { name: "a".into(), ..Default::default() };
/// assert!(meta.labels.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// Required; a DNS-1123 subdomain name (lowercase letters, digits, `-` and `.`, at most 253).
    pub name: String,
    /// Optional; a DNS-1123 label (lowercase letters, digits and `-`, at most 63).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels; empty by default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations; empty by default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Set by the store that holds the policy; absent by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Set by the store that holds the policy; absent by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

impl ObjectMeta {
    /// `namespace/name`, or `name` alone when there is no namespace.
    ///
    /// ```
    /// # use fluxgate_core::policy::ObjectMeta;
    /// let meta = ObjectMeta { name: "a".into(), namespace: Some("ns".into()), ..Default::default() };
    /// assert_eq!(meta.id(), "ns/a");
    /// ```
    #[must_use]
    pub fn id(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The sections of a policy; each is optional and off when absent.
///
/// ```
/// use fluxgate_core::policy::TrafficPolicySpec;
///
/// assert!(TrafficPolicySpec::default().canary.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct TrafficPolicySpec {
    /// The workload the policy applies to; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// Load balancing; none by default (the balancer's own defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancing: Option<LoadBalancing>,
    /// Rate limits (one, or a list); none by default (no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimits>,
    /// Canary release; none by default (all traffic to stable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
}

/// The workload a policy applies to, as a Kubernetes object reference.
///
/// ```
/// use fluxgate_core::policy::TargetRef;
///
/// let target = TargetRef { api_group: "apps/v1".into(), kind: "Deployment".into(), name: "web".into() };
/// assert_eq!(target.kind, "Deployment");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetRef {
    /// API group (and version) of the target, such as `apps/v1`; empty by default.
    #[serde(default)]
    pub api_group: String,
    /// Kind of the target, such as `Deployment`; required.
    pub kind: String,
    /// Name of the target; required.
    pub name: String,
}
