//! Kubernetes: the `TrafficPolicy` custom resource and a source that follows it (feature `kube`).
//!
//! Use it when policies live in a cluster: [`traffic_policy_crd`] gives the
//! `CustomResourceDefinition` (its schema generated from the policy model's types, see
//! [`KubeTrafficPolicySpec`]), and [`KubeSource`] watches the objects with
//! [`kube::runtime::watcher`], applies them to a [`PolicyStore`](super::PolicyStore) and writes
//! each object's status back (`observedGeneration`, and an [`ACCEPTED`] condition carrying the
//! validation errors when the policy was refused).
//!
//! This module is tested against a scripted API server (kube's documented testing pattern: a
//! mock `tower` service behind [`kube::Client::new`] that answers the list, watch and status
//! requests), not against a real cluster. The library enables no TLS stack of kube's: to reach a
//! real API server, enable one in your own `kube` dependency (such as `rustls-tls`).
//!
//! # Example
//!
//! ```
//! use fluxgate_core::store::{KubeSource, PolicyId, PolicyStore};
//! # use http::{Request, Response};
//! # use kube::client::Body;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (service, mut server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
//! // In a cluster: `kube::Client::try_default().await?`; here, a scripted API server.
//! let client = kube::Client::new(service, "payments");
//! let store = PolicyStore::new();
//! let source = KubeSource::new(client, store.clone()).spawn();
//! # let object = serde_json::json!({
//! #     "apiVersion": "fluxgate.io/v1beta1", "kind": "TrafficPolicy",
//! #     "metadata": {"name": "checkout", "namespace": "payments", "generation": 1, "resourceVersion": "1"},
//! #     "spec": {"rateLimit": {"requestsPerSecond": 100, "burstSize": 20}},
//! # });
//! # let list = serde_json::json!({"apiVersion": "fluxgate.io/v1beta1", "kind": "TrafficPolicyList",
//! #     "metadata": {"resourceVersion": "1"}, "items": [object.clone()]});
//! # let mut pending = Vec::new();
//! # let mut changes = store.subscribe();
//! # while store.get(&PolicyId::new("payments", "checkout")).is_none() {
//! #     tokio::select! {
//! #         Some((request, reply)) = server.next_request() => {
//! #             let query = request.uri().query().unwrap_or_default().to_owned();
//! #             if query.contains("watch=true") { pending.push(reply); continue; }
//! #             let body = if request.uri().path().ends_with("/status") { &object } else { &list };
//! #             reply.send_response(Response::new(Body::from(serde_json::to_vec(body)?)));
//! #         }
//! #         _ = changes.changed() => {}
//! #     }
//! # }
//! let policy = store.get(&PolicyId::new("payments", "checkout")).unwrap();
//! assert_eq!(policy.id().name(), "checkout");
//! drop(source); // stops following
//! # Ok(()) }
//! ```

mod convert;
mod error;
mod resource;
mod schema;
mod source;

pub use error::KubeSourceError;
pub use resource::{
    ACCEPTED, KubeTrafficPolicy, KubeTrafficPolicySpec, TrafficPolicyStatus, traffic_policy_crd,
};
pub use source::{KubeSource, KubeSourceHandle, KubeSourceStatus};
