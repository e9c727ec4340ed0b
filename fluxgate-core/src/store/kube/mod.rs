//! Kubernetes: the `TrafficPolicy` custom resource and a source that follows it (feature `kube`).
//!
//! Use it when policies live in a cluster: [`traffic_policy_crd`] gives the
//! `CustomResourceDefinition` (its schema generated from the policy model's types, see
//! [`KubeTrafficPolicySpec`]), and [`KubeSource`] watches the objects with
//! [`kube::runtime::watcher`], applies them to a [`PolicyStore`](super::PolicyStore) and writes
//! each object's status back: `observedGeneration`, an [`ACCEPTED`] condition carrying the
//! validation errors when the policy was refused, a [`PROGRAMMED`] condition saying which
//! generation is in force, and the canary's phase and weight (what a [`ReportPolicy`] says).
//!
//! This module is tested against a scripted API server (kube's documented testing pattern: a
//! mock `tower` service behind [`kube::Client::new`] that answers the list, watch and status
//! requests), not against a real cluster. The library enables no TLS stack of kube's: to reach a
//! real API server, enable one in your own `kube` dependency (such as `rustls-tls`).
//!

mod conditions;
mod convert;
mod error;
mod follow;
mod report;
mod resource;
mod schema;
mod source;

pub use error::KubeSourceError;
pub use report::{PolicyReport, ReportPolicy};
pub use resource::{
    ACCEPTED, CanaryStatus, KubeTrafficPolicy, KubeTrafficPolicySpec, PROGRAMMED,
    TrafficPolicyStatus, traffic_policy_crd,
};
pub use source::{KubeSource, KubeSourceHandle, KubeSourceStatus};
