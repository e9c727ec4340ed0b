//! One id's layers in a store, and how they resolve into what its slot reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::PolicyId;
use super::slot::AppliedPolicy;

/// How many renames a slot follows before it gives up (a loop of renames reads `None`).
const MAX_HOPS: usize = 8;

/// One `namespace/name` of a store: its layers and the cell its slots read.
#[derive(Debug, Default)]
pub(super) struct Entry {
    /// What the slots of this id read: the policy in force under it, or its successor's.
    pub(super) cell: Arc<ArcSwapOption<AppliedPolicy>>,
    /// The policy applied over the file's (`apply`, the admin API, Redis, Kubernetes).
    pub(super) own: Option<Arc<AppliedPolicy>>,
    /// The file's version (the base layer), in force when nothing is applied over it.
    pub(super) base: Option<Arc<AppliedPolicy>>,
    /// The id that replaced this one in its file (a changed `metadata.name` or namespace): the
    /// slots of this id read the successor's policy while this id holds none of its own.
    pub(super) successor: Option<PolicyId>,
    /// The policy left its file while the file stayed: it stays in force until deleted.
    pub(super) retained: bool,
}

impl Entry {
    /// The policy in force under this very id (not a successor's).
    pub(super) fn in_force(&self) -> Option<&Arc<AppliedPolicy>> {
        self.own.as_ref().or(self.base.as_ref())
    }
}

/// What `id`'s slots should read: its own policy, else its successor's (followed a few hops).
fn resolve(entries: &BTreeMap<PolicyId, Entry>, id: &PolicyId) -> Option<Arc<AppliedPolicy>> {
    let mut entry = entries.get(id)?;
    for _ in 0..MAX_HOPS {
        if let Some(policy) = entry.in_force() {
            return Some(Arc::clone(policy));
        }
        entry = entries.get(entry.successor.as_ref()?)?;
    }
    None
}

/// Stores into every cell what it should read now; returns the ids whose cell changed.
pub(super) fn refresh(entries: &BTreeMap<PolicyId, Entry>) -> Vec<PolicyId> {
    let mut changed = Vec::new();
    for (id, entry) in entries {
        let now = resolve(entries, id);
        let same = match (entry.cell.load().as_ref(), now.as_ref()) {
            (None, None) => true,
            (Some(old), Some(new)) => Arc::ptr_eq(old, new),
            _ => false,
        };
        if !same {
            entry.cell.store(now);
            changed.push(id.clone());
        }
    }
    changed
}
