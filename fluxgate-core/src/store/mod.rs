//! The policies in force: swapped atomically, read without locks, watched for changes.
//!
//! A [`PolicyStore`] holds one [`CompiledPolicy`] per `namespace/name`. Layers read it on the
//! request path through a [`PolicySlot`]: one atomic load, no lock, no allocation, no lookup.
//! Control-plane code applies documents to it; every document is validated and compiled first,
//! so an invalid document never replaces the policy in force. Each change bumps the store's
//! generation and wakes the subscribers.
//!
//! Sources feed a store: [`FileSource`] follows a policy file or folder as it is saved, `RedisSource`
//! (feature `redis`) follows a namespace in Redis, and `KubeSource` (feature `kube`) follows
//! `TrafficPolicy` custom resources.
//!
//! # Example
//!
//! ```
//! use fluxgate_core::store::{PolicyId, PolicyStore};
//!
//! let store = PolicyStore::new();
//! let slot = store.slot(&PolicyId::new("payments", "checkout"));
//! assert!(slot.load().is_none());
//!
//! let yaml = br#"
//! apiVersion: fluxgate.io/v1beta1
//! kind: TrafficPolicy
//! metadata: { name: checkout, namespace: payments }
//! spec:
//!   rateLimit: { requestsPerSecond: 100, burstSize: 20 }
//! "#;
//! let report = store.apply_bytes(yaml, None).unwrap();
//! assert_eq!(report.generation, 1);
//! assert_eq!(slot.load_full().unwrap().id().name(), "checkout");
//!
//! // An invalid document is refused and the policy in force stays.
//! let bad = br#"
//! apiVersion: fluxgate.io/v1beta1
//! kind: TrafficPolicy
//! metadata: { name: checkout, namespace: payments }
//! spec:
//!   rateLimit: { requestsPerSecond: 0, burstSize: 20 }
//! "#;
//! assert!(store.apply_bytes(bad, None).is_err());
//! assert_eq!(store.generation(), 1);
//! assert!(slot.load().is_some());
//! ```

mod error;
mod file;
mod id;
#[cfg(feature = "kube")]
mod kube;
#[cfg(feature = "redis")]
mod redis;
mod slot;
mod status;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use crate::policy::{CompiledPolicy, TrafficPolicy, parse_policies};

#[cfg(feature = "kube")]
pub use self::kube::{
    ACCEPTED, CanaryStatus, KubeSource, KubeSourceError, KubeSourceHandle, KubeSourceStatus,
    KubeTrafficPolicy, KubeTrafficPolicySpec, PROGRAMMED, PolicyReport, ReportPolicy,
    TrafficPolicyStatus, traffic_policy_crd,
};
pub use error::ApplyError;
pub use file::{FileSource, FileSourceHandle};
pub use id::PolicyId;
#[cfg(feature = "redis")]
pub use redis::{
    PolicyVersion, RedisPolicies, RedisSource, RedisSourceHandle, RedisSourceStatus,
    RedisStoreError, RedisTls, StoredPolicy, changes_channel, install_tls_provider, policies_key,
    redact_url, versions_key,
};
pub use slot::{AppliedPolicy, PolicySlot, StoreClosed};
pub use status::{ApplyReport, Change, PolicySummary, Rejection, StoreStatus};

/// The namespace given to a document that names none and is applied without a default.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The policies in force, keyed by `namespace/name`.
///
/// Cloning a store is cheap and gives another handle to the same policies.
/// See the [module documentation](self) for an example.
#[derive(Clone, Debug)]
pub struct PolicyStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Serialises writers; readers never take it.
    state: Mutex<State>,
    generation: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    slots: BTreeMap<PolicyId, Arc<ArcSwapOption<AppliedPolicy>>>,
    applied: u64,
    rejected: u64,
    last_rejection: Option<Rejection>,
}

// === impl PolicyStore ===

impl Default for PolicyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl PolicyStore {
    /// An empty store at generation 0.
    #[must_use]
    pub fn new() -> Self {
        let (generation, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                generation,
            }),
        }
    }

    /// The slot of one policy: the handle that layers keep and read on every request.
    ///
    /// The slot exists before the policy is applied and after it is deleted; it then reads `None`.
    #[must_use]
    pub fn slot(&self, id: &PolicyId) -> PolicySlot {
        let mut state = self.lock();
        let cell = state.slots.entry(id.clone()).or_default().clone();
        PolicySlot::new(id.clone(), cell, self.shared.generation.subscribe())
    }

    /// The policy in force under `id`, if any.
    #[must_use]
    pub fn get(&self, id: &PolicyId) -> Option<Arc<AppliedPolicy>> {
        self.lock().slots.get(id).and_then(|cell| cell.load_full())
    }

    /// Every policy in force, ordered by namespace and name.
    #[must_use]
    pub fn list(&self) -> Vec<Arc<AppliedPolicy>> {
        self.lock()
            .slots
            .values()
            .filter_map(|cell| cell.load_full())
            .collect()
    }

    /// The store's generation: how many changes it has taken since it was created.
    #[must_use]
    pub fn generation(&self) -> u64 {
        *self.shared.generation.borrow()
    }

    /// A receiver that sees the generation change after every applied change.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.generation.subscribe()
    }

    /// Applies one policy: validates and compiles it, then puts it in force.
    ///
    /// A policy without a namespace is put in [`DEFAULT_NAMESPACE`].
    ///
    /// # Errors
    ///
    /// [`ApplyError::Invalid`] when the policy does not validate; nothing changes then.
    pub fn apply(&self, policy: &TrafficPolicy) -> Result<ApplyReport, ApplyError> {
        self.apply_all(std::slice::from_ref(policy), None)
    }

    /// Parses every document of a YAML or JSON text and applies them all, or none.
    ///
    /// `namespace` is filled in where a document names none, and a document naming another
    /// namespace is refused (as `kubectl apply --namespace` does).
    ///
    /// # Errors
    ///
    /// [`ApplyError::Invalid`] for a document that does not parse or validate,
    /// [`ApplyError::NamespaceMismatch`] for a document of another namespace. Nothing changes then.
    pub fn apply_bytes(
        &self,
        input: &[u8],
        namespace: Option<&str>,
    ) -> Result<ApplyReport, ApplyError> {
        match parse_policies(input) {
            Ok(policies) => self.apply_all(&policies, namespace),
            Err(errors) => Err(self.reject(ApplyError::Invalid(errors))),
        }
    }

    /// Applies several policies at once: all of them are put in force together, or none is.
    ///
    /// # Errors
    ///
    /// As [`apply_bytes`](Self::apply_bytes).
    pub fn apply_all(
        &self,
        policies: &[TrafficPolicy],
        namespace: Option<&str>,
    ) -> Result<ApplyReport, ApplyError> {
        let compiled = match compile_all(policies, namespace) {
            Ok(compiled) => compiled,
            Err(error) => return Err(self.reject(error)),
        };
        let mut state = self.lock();
        let mut changes = Vec::with_capacity(compiled.len());
        let next = state.generation + 1;
        for (id, policy) in compiled {
            let cell = state.slots.entry(id.clone()).or_default();
            let change = match cell.load().as_deref() {
                None => Change::Created(id.clone()),
                Some(old) if old.compiled().policy() == policy.policy() => {
                    changes.push(Change::Unchanged(id));
                    continue;
                }
                Some(_) => Change::Configured(id.clone()),
            };
            cell.store(Some(Arc::new(AppliedPolicy::new(id, policy, next))));
            changes.push(change);
        }
        Ok(self.commit(state, changes))
    }

    /// Removes the policy `id`. Its slot then reads `None`.
    ///
    /// Returns the report, whose change list is empty when there was no such policy.
    pub fn delete(&self, id: &PolicyId) -> ApplyReport {
        let state = self.lock();
        let removed = state
            .slots
            .get(id)
            .and_then(|cell| cell.swap(None))
            .is_some();
        let changes = if removed {
            vec![Change::Deleted(id.clone())]
        } else {
            Vec::new()
        };
        self.commit(state, changes)
    }

    /// What the store holds and how the last applies went, for status pages and `fluxctl`.
    #[must_use]
    pub fn status(&self) -> StoreStatus {
        let state = self.lock();
        StoreStatus {
            generation: state.generation,
            policies: state
                .slots
                .values()
                .filter_map(|cell| cell.load_full())
                .map(|p| p.summary())
                .collect(),
            applied: state.applied,
            rejected: state.rejected,
            last_rejection: state.last_rejection.clone(),
        }
    }

    /// Bumps the generation when anything changed, and wakes the subscribers.
    fn commit(&self, mut state: MutexGuard<'_, State>, changes: Vec<Change>) -> ApplyReport {
        let changed = changes.iter().any(Change::is_change);
        if changed {
            state.generation += 1;
            state.applied += 1;
            self.shared.generation.send_replace(state.generation);
        }
        ApplyReport {
            generation: state.generation,
            changes,
        }
    }

    /// Records a refused apply (status, log) and gives the error back.
    pub(super) fn reject(&self, error: ApplyError) -> ApplyError {
        let mut state = self.lock();
        state.rejected += 1;
        state.last_rejection = Some(Rejection::new(&error));
        tracing::warn!(%error, "policy refused; the policies in force stay");
        error
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A writer that panicked cannot leave the map half-changed (each slot swap is atomic),
        // so a poisoned lock is still safe to use.
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Validates and compiles every policy before anything is applied.
fn compile_all(
    policies: &[TrafficPolicy],
    namespace: Option<&str>,
) -> Result<Vec<(PolicyId, CompiledPolicy)>, ApplyError> {
    let mut compiled = Vec::with_capacity(policies.len());
    for policy in policies {
        let id = PolicyId::of(policy, namespace)?;
        let mut policy = policy.clone();
        policy.metadata.namespace = Some(id.namespace().to_owned());
        let policy = CompiledPolicy::compile(&policy).map_err(ApplyError::Invalid)?;
        if compiled.iter().any(|(seen, _)| *seen == id) {
            return Err(ApplyError::Duplicate(id));
        }
        compiled.push((id, policy));
    }
    Ok(compiled)
}
