use std::sync::Arc;

use arc_swap::{ArcSwapOption, Guard};
use tokio::sync::watch;

use super::PolicyId;
use super::status::PolicySummary;
use crate::policy::CompiledPolicy;

/// A policy as the store holds it: compiled, with the generation that put it in force.
#[derive(Debug)]
pub struct AppliedPolicy {
    id: PolicyId,
    compiled: CompiledPolicy,
    generation: u64,
}

impl AppliedPolicy {
    pub(super) fn new(id: PolicyId, compiled: CompiledPolicy, generation: u64) -> Self {
        Self {
            id,
            compiled,
            generation,
        }
    }

    /// The policy's `namespace/name`.
    #[must_use]
    pub fn id(&self) -> &PolicyId {
        &self.id
    }

    /// The compiled policy that layers read.
    #[must_use]
    pub fn compiled(&self) -> &CompiledPolicy {
        &self.compiled
    }

    /// The store generation at which this version of the policy was put in force.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub(super) fn summary(&self) -> PolicySummary {
        PolicySummary {
            id: self.id.clone(),
            generation: self.generation,
        }
    }
}

/// One policy's place in a [`PolicyStore`](super::PolicyStore), kept by the layers that follow it.
///
/// [`load`](Self::load) is what the request path calls: one atomic load, no lock, no allocation.
/// Cloning a slot is cheap.
///
/// ```
/// use fluxgate_core::store::{PolicyId, PolicyStore};
///
/// let store = PolicyStore::new();
/// let slot = store.slot(&PolicyId::new("default", "api"));
/// assert!(slot.load().is_none());
/// store
///     .apply_bytes(b"{apiVersion: fluxgate.io/v1beta1, kind: TrafficPolicy, metadata: {name: api}, spec: {}}", None)
///     .unwrap();
/// assert_eq!(slot.load_full().unwrap().generation(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct PolicySlot {
    id: PolicyId,
    cell: Arc<ArcSwapOption<AppliedPolicy>>,
    changes: watch::Receiver<u64>,
}

impl PolicySlot {
    pub(super) fn new(
        id: PolicyId,
        cell: Arc<ArcSwapOption<AppliedPolicy>>,
        changes: watch::Receiver<u64>,
    ) -> Self {
        Self { id, cell, changes }
    }

    /// The id this slot follows.
    #[must_use]
    pub fn id(&self) -> &PolicyId {
        &self.id
    }

    /// The policy in force now, or `None` when there is none under this id.
    ///
    /// The guard is meant to be held briefly (for one request's decision); use
    /// [`load_full`](Self::load_full) to keep the policy longer.
    #[must_use]
    pub fn load(&self) -> Guard<Option<Arc<AppliedPolicy>>> {
        self.cell.load()
    }

    /// The policy in force now, as an owned `Arc`.
    #[must_use]
    pub fn load_full(&self) -> Option<Arc<AppliedPolicy>> {
        self.cell.load_full()
    }

    /// Waits until the store changes (any policy), then returns the policy in force under this id
    /// (`None` when it was deleted).
    ///
    /// # Errors
    ///
    /// [`StoreClosed`] once the store has been dropped: no change can come any more, so a loop
    /// around this call must end.
    pub async fn changed(&mut self) -> Result<Option<Arc<AppliedPolicy>>, StoreClosed> {
        self.changes.changed().await.map_err(|_| StoreClosed)?;
        Ok(self.cell.load_full())
    }
}

/// The store behind a [`PolicySlot`] has been dropped; no change will come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the policy store has been dropped")]
pub struct StoreClosed;
