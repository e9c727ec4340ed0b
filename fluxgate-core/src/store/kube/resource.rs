//! The `TrafficPolicy` custom resource: [`KubeTrafficPolicy`], its spec and its status.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::TrafficPolicySpec;

/// The type of the condition that says whether a policy validates: `Accepted`.
pub const ACCEPTED: &str = "Accepted";

/// The type of the condition that says whether a policy is in force where it is used:
/// `Programmed` (Gateway API's name).
pub const PROGRAMMED: &str = "Programmed";

/// The spec of the [`KubeTrafficPolicy`] custom resource: the policy model's own
/// [`TrafficPolicySpec`], so the CRD schema is generated from the same types the parser fills.
///
/// ```
/// use fluxgate_core::policy::TrafficPolicySpec;
/// use fluxgate_core::store::{KubeTrafficPolicy, KubeTrafficPolicySpec};
///
/// let object = KubeTrafficPolicy::new("checkout", KubeTrafficPolicySpec(TrafficPolicySpec::default()));
/// assert_eq!(object.metadata.name.as_deref(), Some("checkout"));
/// ```
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fluxgate.io",
    version = "v1beta1",
    kind = "TrafficPolicy",
    root = "KubeTrafficPolicy",
    namespaced,
    status = "TrafficPolicyStatus",
    shortname = "tpol",
    derive = "PartialEq",
    doc = "A `TrafficPolicy` object as stored by Kubernetes (see [`KubeTrafficPolicySpec`]).",
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Programmed","type":"string","jsonPath":".status.conditions[?(@.type==\"Programmed\")].status"}"#,
    printcolumn = r#"{"name":"Canary","type":"string","jsonPath":".status.canary.phase"}"#,
    printcolumn = r#"{"name":"Weight","type":"integer","jsonPath":".status.canary.weight"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct KubeTrafficPolicySpec(pub TrafficPolicySpec);

/// What a gateway reports about a `TrafficPolicy` object: the generation it read, whether the
/// policy was accepted and is programmed (conditions in the Gateway API style), and its canary.
///
/// ```
/// use fluxgate_core::store::TrafficPolicyStatus;
///
/// let status = TrafficPolicyStatus::default();
/// assert!(status.accepted().is_none() && status.programmed().is_none());
/// assert!(status.canary.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TrafficPolicyStatus {
    /// The `metadata.generation` the conditions were computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The conditions: [`ACCEPTED`] (`True` when the policy validates, `False` with reason
    /// `Invalid` and the validation errors, each naming its field, as its message) and
    /// [`PROGRAMMED`] (`True` when a generation of the policy is in force, its
    /// `observedGeneration` saying which; `False` with the reason otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The canary's phase and weight, when the policy's canary routes traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
}

/// The canary part of a [`TrafficPolicyStatus`]: its phase and the weight it is at.
///
/// ```
/// use fluxgate_core::store::CanaryStatus;
///
/// let canary = CanaryStatus::new("Progressing", 10);
/// assert_eq!(serde_json::to_value(&canary).unwrap(), serde_json::json!({"phase": "Progressing", "weight": 10}));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CanaryStatus {
    /// `Progressing`, `Paused`, `Promoted` or `RolledBack`.
    pub phase: String,
    /// The share of requests routed to the canary, in percent.
    pub weight: u8,
}

impl CanaryStatus {
    /// A canary in `phase` at `weight` percent.
    #[must_use]
    pub fn new(phase: impl Into<String>, weight: u8) -> Self {
        Self {
            phase: phase.into(),
            weight,
        }
    }
}

impl TrafficPolicyStatus {
    /// The [`ACCEPTED`] condition, if there is one.
    ///
    /// ```
    /// # use fluxgate_core::store::TrafficPolicyStatus;
    /// assert!(TrafficPolicyStatus::default().accepted().is_none());
    /// ```
    #[must_use]
    pub fn accepted(&self) -> Option<&Condition> {
        self.condition(ACCEPTED)
    }

    /// The [`PROGRAMMED`] condition, if there is one.
    ///
    /// ```
    /// # use fluxgate_core::store::TrafficPolicyStatus;
    /// assert!(TrafficPolicyStatus::default().programmed().is_none());
    /// ```
    #[must_use]
    pub fn programmed(&self) -> Option<&Condition> {
        self.condition(PROGRAMMED)
    }

    /// The condition of type `type_`, if there is one.
    ///
    /// ```
    /// # use fluxgate_core::store::{ACCEPTED, TrafficPolicyStatus};
    /// assert!(TrafficPolicyStatus::default().condition(ACCEPTED).is_none());
    /// ```
    #[must_use]
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// The `CustomResourceDefinition` of `TrafficPolicy` (`trafficpolicies.fluxgate.io`), with its
/// schema generated from [`TrafficPolicySpec`].
///
/// The schema is structural, as Kubernetes requires, with two choices made for that:
///
/// - `spec.rateLimit` is one rate limit (a mapping) or a list of them. A structural schema
///   cannot say "object or array" (`anyOf` branches may not carry a `type`), so that node is
///   `x-kubernetes-preserve-unknown-fields: true` with a description of both forms; FluxGate
///   checks it and reports a refusal in the `Accepted` condition.
/// - No `default` values are published: FluxGate applies its defaults itself, so the API
///   server stores objects as they were written.
///
/// Durations are strings (`200ms`, `1m30s`) with a pattern.
///
/// ```
/// let crd = fluxgate_core::store::traffic_policy_crd();
/// assert_eq!(crd.metadata.name.as_deref(), Some("trafficpolicies.fluxgate.io"));
/// assert_eq!(crd.spec.scope, "Namespaced");
/// ```
#[must_use]
pub fn traffic_policy_crd() -> CustomResourceDefinition {
    let mut crd = KubeTrafficPolicy::crd();
    for version in &mut crd.spec.versions {
        if let Some(validation) = &mut version.schema
            && let Some(schema) = &mut validation.open_api_v3_schema
        {
            super::schema::strip_defaults(schema);
        }
    }
    crd
}
