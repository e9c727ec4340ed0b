//! `fluxgate --kube`: the gateway follows the `TrafficPolicy` objects of its namespace on the
//! Kubernetes API server and writes each one's status back (feature `kube`, on by default).
//!
//! The objects are applied to the gateway's [`PolicyStore`] by fluxgate-core's
//! [`KubeSource`] (kube-runtime's watcher): the one named as the gateway's policy replaces it
//! while traffic flows, and an invalid one is refused (`Accepted=False`, reason `Invalid`, a
//! message naming the field) while the policy in force stays. Each object's status, written
//! through the status subresource only when it changed, also carries a `Programmed` condition
//! and the canary's phase and weight, from a [`GatewayReport`]: the gateway's own policy is
//! programmed unless an upstream name resolves to nothing, and the other objects of the
//! namespace get no `Programmed` condition from it.
//!
//! # Example
//!
//! ```
//! use fluxgate_core::store::{PolicyId, PolicyStore, ReportPolicy};
//! use fluxgate_gateway::discovery::DnsDiscovery;
//! use fluxgate_gateway::kube::GatewayReport;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! # let (service, _server) = tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
//! // In a cluster: `fluxgate_gateway::kube::client().await?`; here, a scripted API server.
//! let client = kube::Client::new(service, "payments");
//! let id = PolicyId::new("payments", "checkout-service-policy");
//! let report = GatewayReport::new(id.clone(), None, DnsDiscovery::new());
//! assert!(report.report(&id).unwrap().not_programmed.is_none());
//! assert!(report.report(&PolicyId::new("payments", "other")).is_none());
//! let following = fluxgate_gateway::kube::follow(client, &PolicyStore::new(), "payments", report);
//! drop(following); // stops following
//! # }
//! ```

use std::fmt;

use fluxgate_canary::{CanaryHandle, Phase};
use fluxgate_core::store::{
    CanaryStatus, KubeSource, KubeSourceHandle, PolicyId, PolicyReport, PolicyStore, ReportPolicy,
};

use crate::discovery::DnsDiscovery;
use crate::stack::Gateway;

/// Why the gateway could not reach the API server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeError {
    /// Neither an in-cluster config nor a usable kubeconfig.
    #[error(
        "cannot reach the Kubernetes API server: no usable in-cluster config or kubeconfig: {0}"
    )]
    Config(#[source] kube::Error),
}

/// A client of the API server: the in-cluster config (a pod's service account), or the
/// kubeconfig (`$KUBECONFIG`, `~/.kube/config`).
///
/// # Errors
///
/// [`KubeError::Config`] when there is neither.
pub async fn client() -> Result<kube::Client, KubeError> {
    kube::Client::try_default().await.map_err(KubeError::Config)
}

/// Follows the `TrafficPolicy` objects of `namespace` into `store`, writing their status with
/// `report`'s word on them; stops when the handle is dropped. Must run inside a tokio runtime.
///
/// See the [module docs](self) for an example.
pub fn follow(
    client: kube::Client,
    store: &PolicyStore,
    namespace: &str,
    report: impl ReportPolicy,
) -> KubeSourceHandle {
    tracing::info!(namespace, "following TrafficPolicy objects in Kubernetes");
    KubeSource::new(client, store.clone())
        .namespace(namespace)
        .report_with(report)
        .spawn()
}

/// Follows the `TrafficPolicy` objects of `namespace` into `store` for `gateway`, which runs
/// the policy `id`: a [`client`] of the cluster, and [`follow`] with a [`GatewayReport`] on
/// the gateway's canary and the `discovery` of its upstreams.
///
/// # Errors
///
/// [`KubeError::Config`] when there is no in-cluster config or usable kubeconfig.
pub async fn follow_gateway(
    gateway: &Gateway,
    id: &PolicyId,
    store: &PolicyStore,
    namespace: &str,
    discovery: DnsDiscovery,
) -> Result<KubeSourceHandle, KubeError> {
    let report = GatewayReport::new(id.clone(), gateway.canary().cloned(), discovery);
    Ok(follow(client().await?, store, namespace, report))
}

/// What a gateway says about the policy it follows: programmed unless an upstream name
/// resolves to nothing, and its canary's phase and weight; nothing about other policies.
///
/// See the [module docs](self) for an example.
#[derive(Clone)]
pub struct GatewayReport {
    id: PolicyId,
    canary: Option<CanaryHandle>,
    discovery: DnsDiscovery,
}

impl fmt::Debug for GatewayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayReport")
            .field("id", &self.id)
            .field("canary", &self.canary.is_some())
            .finish_non_exhaustive()
    }
}

impl GatewayReport {
    /// The report of a gateway following `id`, with its canary (when it has canary
    /// upstreams) and the discovery of its upstreams.
    #[must_use]
    pub fn new(id: PolicyId, canary: Option<CanaryHandle>, discovery: DnsDiscovery) -> Self {
        Self {
            id,
            canary,
            discovery,
        }
    }
}

impl ReportPolicy for GatewayReport {
    fn report(&self, id: &PolicyId) -> Option<PolicyReport> {
        if *id != self.id {
            return None;
        }
        let status = self.discovery.status();
        let unresolved = status.unresolved();
        let mut report = if unresolved.is_empty() {
            PolicyReport::programmed()
        } else {
            let names: Vec<String> = unresolved
                .iter()
                .map(|(name, error)| format!("{name} ({error})"))
                .collect();
            let message = format!(
                "upstream names resolve to nothing, retrying (their last known addresses stay): {}",
                names.join(", ")
            );
            PolicyReport::not_programmed("UnresolvedUpstream", message)
        };
        if let Some(canary) = &self.canary {
            let snapshot = canary.snapshot();
            if snapshot.enabled {
                report = report.canary(CanaryStatus::new(phase(snapshot.phase), snapshot.weight));
            }
        }
        Some(report)
    }
}

/// A phase in the status's `CamelCase`.
fn phase(phase: Phase) -> &'static str {
    match phase {
        Phase::Progressing => "Progressing",
        Phase::Paused => "Paused",
        Phase::Promoted => "Promoted",
        Phase::RolledBack => "RolledBack",
        _ => "Unknown",
    }
}
