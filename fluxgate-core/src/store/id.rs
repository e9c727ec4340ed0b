use std::fmt;

use super::{ApplyError, DEFAULT_NAMESPACE};
use crate::policy::TrafficPolicy;

/// The identity of a policy in a store: its namespace and name.
///
/// ```
/// use fluxgate_core::store::PolicyId;
///
/// let id = PolicyId::new("payments", "checkout-service-policy");
/// assert_eq!(id.to_string(), "payments/checkout-service-policy");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyId {
    namespace: String,
    name: String,
}

impl PolicyId {
    /// The id of the policy `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The id a policy gets when applied with `namespace` as the default.
    ///
    /// # Errors
    ///
    /// [`ApplyError::NamespaceMismatch`] when the policy names a namespace other than `namespace`.
    pub fn of(policy: &TrafficPolicy, namespace: Option<&str>) -> Result<Self, ApplyError> {
        let own = policy.metadata.namespace.as_deref();
        let namespace = match (own, namespace) {
            (Some(own), Some(given)) if own != given => {
                return Err(ApplyError::NamespaceMismatch {
                    policy: policy.metadata.name.clone(),
                    document: own.to_owned(),
                    given: given.to_owned(),
                });
            }
            (Some(own), _) => own,
            (None, Some(given)) => given,
            (None, None) => DEFAULT_NAMESPACE,
        };
        Ok(Self::new(namespace, policy.metadata.name.as_str()))
    }

    /// The namespace.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
