//! [`KubeSourceError`]: what went wrong while following Kubernetes.

use std::sync::Arc;

use crate::store::PolicyId;

/// A failure of a [`KubeSource`](super::KubeSource); it is retried, and reported in
/// [`KubeSourceStatus::last_error`](super::KubeSourceStatus::last_error).
///
/// ```
/// use fluxgate_core::store::{KubeSourceError, PolicyId};
///
/// let error = KubeSourceError::StatusTimeout(PolicyId::new("payments", "checkout"));
/// assert_eq!(error.to_string(), "writing the status of payments/checkout timed out");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KubeSourceError {
    /// Listing or watching `TrafficPolicy` objects failed (the watcher retries with backoff).
    #[error("watching TrafficPolicy objects failed: {0}")]
    Watch(#[source] Arc<kube::runtime::watcher::Error>),
    /// The API server refused or failed the status write of a policy.
    #[error("writing the status of {id} failed: {source}")]
    Status {
        /// The policy whose status was written.
        id: PolicyId,
        /// What the client reported.
        #[source]
        source: Arc<kube::Error>,
    },
    /// The status write of a policy got no answer in time.
    #[error("writing the status of {0} timed out")]
    StatusTimeout(PolicyId),
}
