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
//! # Removal and renaming
//!
//! No valid-looking edit removes protection without a loud trace. The rules:
//!
//! - **Layers.** A policy file's version of a policy ([`FileSource`]) is the base; what is
//!   applied over it under the same id (the admin API, `fluxctl apply --redis`, Kubernetes) is in
//!   force while it exists. [Deleting](PolicyStore::delete) it puts the file's version back in
//!   force ([`Change::Reverted`]); a changed save of the file replaces it (the last write wins).
//! - **Explicit removals** (a delete with no file version under it, a policy file removed from
//!   a watched folder) leave the id without a policy: each is logged as a warning, counted
//!   ([`StoreStatus::removed`]) and shown ([`StoreStatus::last_removal`]).
//! - **A renamed policy** (its document in the same file now has another `metadata.name` or
//!   namespace) is a new policy: the old id is no longer listed, and its slots, which the
//!   gateway's layers hold, read the new policy ([`Change::Renamed`], [`StoreStatus::renamed`],
//!   logged as a warning). The gateway thus keeps enforcing what the file says. Deleting the old
//!   id drops the link; applying under the old id takes it back.
//! - **A policy cut from a file that stays** (no new id takes its place) stays in force until it
//!   is deleted ([`StoreStatus::retained`], logged as a warning).
//!
//! ```
//! use fluxgate_core::store::{Change, PolicyId, PolicyStore};
//!
//! let store = PolicyStore::new();
//! let id = PolicyId::new("default", "api");
//! store
//!     .apply_bytes(b"{apiVersion: fluxgate.io/v1beta1, kind: TrafficPolicy, metadata: {name: api}, spec: {}}", None)
//!     .unwrap();
//! assert_eq!(store.delete(&id).changes, vec![Change::Deleted(id.clone())]);
//! assert_eq!(store.status().removed, 1);
//! assert_eq!(store.status().last_removal.unwrap().id, id);
//! ```
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

mod entry;
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

use tokio::sync::watch;

use self::entry::{Entry, refresh};
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
pub use status::{ApplyReport, Change, PolicySummary, Rejection, Removal, Renamed, StoreStatus};

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
    slots: BTreeMap<PolicyId, Entry>,
    applied: u64,
    rejected: u64,
    last_rejection: Option<Rejection>,
    removed: u64,
    last_removal: Option<Removal>,
}

/// Which layer of an id an apply writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    /// Applied over the file's version: `apply`, the admin API, Redis, Kubernetes.
    Own,
    /// The file's version ([`FileSource`]).
    Base,
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
    /// When the policy's file renames it (see [Removal and renaming](self#removal-and-renaming)),
    /// the slot reads the policy under its new name.
    #[must_use]
    pub fn slot(&self, id: &PolicyId) -> PolicySlot {
        let mut state = self.lock();
        let cell = Arc::clone(&state.slots.entry(id.clone()).or_default().cell);
        PolicySlot::new(id.clone(), cell, self.shared.generation.subscribe())
    }

    /// The policy in force under `id`, if any (not the policy of a new name it was renamed to).
    #[must_use]
    pub fn get(&self, id: &PolicyId) -> Option<Arc<AppliedPolicy>> {
        self.lock()
            .slots
            .get(id)
            .and_then(|e| e.in_force().cloned())
    }

    /// Every policy in force, ordered by namespace and name.
    #[must_use]
    pub fn list(&self) -> Vec<Arc<AppliedPolicy>> {
        self.lock()
            .slots
            .values()
            .filter_map(|e| e.in_force().cloned())
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
    /// They are applied over the version of a policy file ([`FileSource`]) of the same id, which
    /// is in force again when they are [deleted](Self::delete).
    ///
    /// # Errors
    ///
    /// As [`apply_bytes`](Self::apply_bytes).
    pub fn apply_all(
        &self,
        policies: &[TrafficPolicy],
        namespace: Option<&str>,
    ) -> Result<ApplyReport, ApplyError> {
        self.apply_layer(policies, namespace, Layer::Own)
    }

    /// Applies the policies of a file: the base layer, in force where nothing is applied over it.
    /// A changed version replaces a policy applied over it (the last save wins).
    pub(super) fn apply_base(
        &self,
        policies: &[TrafficPolicy],
        namespace: Option<&str>,
    ) -> Result<ApplyReport, ApplyError> {
        self.apply_layer(policies, namespace, Layer::Base)
    }

    fn apply_layer(
        &self,
        policies: &[TrafficPolicy],
        namespace: Option<&str>,
        layer: Layer,
    ) -> Result<ApplyReport, ApplyError> {
        let compiled = match compile_all(policies, namespace) {
            Ok(compiled) => compiled,
            Err(error) => return Err(self.reject(error)),
        };
        let mut state = self.lock();
        let mut changes = Vec::with_capacity(compiled.len());
        let next = state.generation + 1;
        for (id, policy) in compiled {
            let entry = state.slots.entry(id.clone()).or_default();
            let before = entry.in_force().cloned();
            let same = |old: &Option<Arc<AppliedPolicy>>| {
                old.as_ref()
                    .is_some_and(|old| old.compiled().policy() == policy.policy())
            };
            let new = || {
                Some(Arc::new(AppliedPolicy::new(
                    id.clone(),
                    policy.clone(),
                    next,
                )))
            };
            match layer {
                Layer::Own => {
                    if !same(&entry.own) {
                        entry.own = if same(&before) { before.clone() } else { new() };
                    }
                    // An apply under this id takes it back from a successor.
                    entry.successor = None;
                }
                Layer::Base if !same(&entry.base) => {
                    entry.base = if same(&before) { before.clone() } else { new() };
                    if entry.own.take().is_some() && !same(&before) {
                        tracing::info!(%id, "the policy file's new version replaces the one applied over it");
                    }
                }
                Layer::Base => {}
            }
            entry.retained = false;
            changes.push(match (&before, entry.in_force()) {
                (None, _) => Change::Created(id),
                (Some(old), Some(now)) if Arc::ptr_eq(old, now) => Change::Unchanged(id),
                _ => Change::Configured(id),
            });
        }
        refresh(&state.slots);
        Ok(self.commit(state, changes))
    }

    /// Removes the policy `id`: what was applied over the file's version of it, else the
    /// file's version, else its link to a new name. Its slot then reads the file's version
    /// ([`Change::Reverted`]) or `None` ([`Change::Deleted`]).
    ///
    /// A removal that leaves no policy is logged as a warning and counted in the
    /// [status](Self::status) ([`StoreStatus::removed`], [`StoreStatus::last_removal`]).
    /// Returns the report, whose change list is empty when there was no such policy.
    pub fn delete(&self, id: &PolicyId) -> ApplyReport {
        let mut state = self.lock();
        let change = state.slots.get_mut(id).and_then(|entry| {
            entry.retained = false;
            if entry.own.take().is_some() {
                Some(if entry.base.is_some() {
                    Change::Reverted(id.clone())
                } else {
                    Change::Deleted(id.clone())
                })
            } else if entry.base.take().is_some() || entry.successor.take().is_some() {
                Some(Change::Deleted(id.clone()))
            } else {
                None
            }
        });
        match &change {
            Some(Change::Reverted(_)) => {
                tracing::info!(%id, "policy deleted: the policy file's version of it is in force again");
            }
            Some(_) => Self::removed(&mut state, id, "deleted"),
            None => {}
        }
        self.finish(state, change.into_iter().collect())
    }

    /// A file's policy is gone with its file (an explicit removal): `None` when no layer is left.
    pub(super) fn remove_base(&self, id: &PolicyId, file: &std::path::Path) -> ApplyReport {
        let mut state = self.lock();
        let mut changes = Vec::new();
        if let Some(entry) = state.slots.get_mut(id)
            && entry.base.take().is_some()
            && entry.own.is_none()
        {
            changes.push(Change::Deleted(id.clone()));
            let why = format!("its file {} was removed", file.display());
            Self::removed(&mut state, id, &why);
        }
        self.finish(state, changes)
    }

    /// The file that held `from` now holds `to` instead: `from`'s slots follow `to`.
    pub(super) fn rename(
        &self,
        from: &PolicyId,
        to: &PolicyId,
        file: &std::path::Path,
    ) -> ApplyReport {
        let mut state = self.lock();
        let mut changes = Vec::new();
        if let Some(entry) = state.slots.get_mut(from)
            && entry.base.take().is_some()
        {
            entry.successor = Some(to.clone());
            entry.retained = false;
            changes.push(Change::Renamed(from.clone(), to.clone()));
            tracing::warn!(
                %from, %to, file = %file.display(),
                "the policy file renamed a policy: what followed {from} follows {to} \
                 (the gateway keeps enforcing the file's policy); {from} is no longer listed"
            );
        }
        self.finish(state, changes)
    }

    /// `id` left its file while the file stayed: it stays in force, as if applied, until deleted.
    pub(super) fn retain(&self, id: &PolicyId, file: &std::path::Path) {
        let mut state = self.lock();
        if let Some(entry) = state.slots.get_mut(id)
            && let Some(base) = entry.base.take()
        {
            entry.own.get_or_insert(base);
            entry.retained = true;
            tracing::warn!(
                %id, file = %file.display(),
                "the policy is no longer in its file: it stays in force until it is deleted"
            );
        }
    }

    /// Logs and counts a removal that leaves `id` without a policy.
    fn removed(state: &mut State, id: &PolicyId, why: &str) {
        tracing::warn!(%id, "policy removed ({why}): nothing of it is in force any more");
        state.removed += 1;
        state.last_removal = Some(Removal::new(id.clone(), why));
    }

    /// Refreshes the cells, then commits.
    fn finish(&self, state: MutexGuard<'_, State>, changes: Vec<Change>) -> ApplyReport {
        refresh(&state.slots);
        self.commit(state, changes)
    }

    /// What the store holds and how the last applies went, for status pages and `fluxctl`.
    #[must_use]
    pub fn status(&self) -> StoreStatus {
        let state = self.lock();
        let policies = state.slots.values().filter_map(Entry::in_force);
        StoreStatus {
            generation: state.generation,
            policies: policies.map(|p| p.summary()).collect(),
            applied: state.applied,
            rejected: state.rejected,
            last_rejection: state.last_rejection.clone(),
            removed: state.removed,
            last_removal: state.last_removal.clone(),
            renamed: state
                .slots
                .iter()
                .filter(|(_, e)| e.in_force().is_none())
                .filter_map(|(id, e)| Some(Renamed::new(id, e.successor.as_ref()?)))
                .collect(),
            retained: state
                .slots
                .iter()
                .filter(|(_, e)| e.retained)
                .map(|(id, _)| id.clone())
                .collect(),
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
        if state.slots.values().any(|e| e.in_force().is_some()) {
            tracing::warn!(%error, "policy refused; the policies in force stay");
        } else {
            tracing::warn!(%error, "policy refused; no policy is in force");
        }
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
