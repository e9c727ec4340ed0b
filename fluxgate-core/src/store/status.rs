use std::time::SystemTime;

use super::{ApplyError, PolicyId};

/// What one apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// The store's generation after the apply.
    pub generation: u64,
    /// What happened to each policy, in the order they were given.
    pub changes: Vec<Change>,
}

/// What an apply did to one policy, in `kubectl`'s words.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// The policy did not exist and was put in force.
    Created(PolicyId),
    /// The policy existed and its new version was put in force.
    Configured(PolicyId),
    /// The policy existed with the same content; nothing changed.
    Unchanged(PolicyId),
    /// The policy was removed; nothing of it is in force any more.
    Deleted(PolicyId),
    /// What was applied over the policy file's version was removed: the file's version is in
    /// force again.
    Reverted(PolicyId),
    /// The policy file renamed the policy (first id) to the second id: what followed the first
    /// follows the second.
    Renamed(PolicyId, PolicyId),
}

impl Change {
    /// The policy this change is about.
    #[must_use]
    pub fn id(&self) -> &PolicyId {
        match self {
            Self::Created(id)
            | Self::Configured(id)
            | Self::Unchanged(id)
            | Self::Deleted(id)
            | Self::Reverted(id)
            | Self::Renamed(id, _) => id,
        }
    }

    /// Whether the store's content changed.
    #[must_use]
    pub fn is_change(&self) -> bool {
        !matches!(self, Self::Unchanged(_))
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (id, verb) = match self {
            Self::Created(id) => (id, "created"),
            Self::Configured(id) => (id, "configured"),
            Self::Unchanged(id) => (id, "unchanged"),
            Self::Deleted(id) => (id, "deleted"),
            Self::Reverted(id) => (id, "deleted; the policy file's version is in force again"),
            Self::Renamed(from, to) => return write!(f, "trafficpolicy {from} renamed to {to}"),
        };
        write!(f, "trafficpolicy {id} {verb}")
    }
}

/// A refused apply, as remembered by the store for status pages.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// When it was refused (wall clock, for people to read).
    pub at: SystemTime,
    /// The error, as text.
    pub message: String,
}

impl Rejection {
    pub(super) fn new(error: &ApplyError) -> Self {
        Self {
            at: SystemTime::now(),
            message: error.to_string(),
        }
    }
}

/// One policy in a [`StoreStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySummary {
    /// Its `namespace/name`.
    pub id: PolicyId,
    /// The store generation at which its current version was put in force.
    pub generation: u64,
}

/// A snapshot of a store for status pages and `fluxctl status`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreStatus {
    /// The store's generation.
    pub generation: u64,
    /// The policies in force.
    pub policies: Vec<PolicySummary>,
    /// How many applies changed the store.
    pub applied: u64,
    /// How many applies were refused.
    pub rejected: u64,
    /// The last refused apply.
    pub last_rejection: Option<Rejection>,
    /// How many removals left a policy's traffic without any policy (a delete, a file removed).
    pub removed: u64,
    /// The last of those removals.
    pub last_removal: Option<Removal>,
    /// Policies their file renamed: their followers follow the new name.
    pub renamed: Vec<Renamed>,
    /// Policies that left their file while the file stayed: in force until deleted.
    pub retained: Vec<PolicyId>,
}

/// A removal that left a policy's traffic without any policy, as remembered for status pages.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Removal {
    /// When (wall clock, for people to read).
    pub at: SystemTime,
    /// The policy removed.
    pub id: PolicyId,
    /// Why: `deleted`, or the file that was removed.
    pub reason: String,
}

impl Removal {
    pub(super) fn new(id: PolicyId, reason: &str) -> Self {
        Self {
            at: SystemTime::now(),
            id,
            reason: reason.to_owned(),
        }
    }
}

/// A policy its file renamed, in a [`StoreStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Renamed {
    /// The old id, which its followers (a gateway's layers) still name.
    pub from: PolicyId,
    /// The id whose policy they read now.
    pub to: PolicyId,
}

impl Renamed {
    pub(super) fn new(from: &PolicyId, to: &PolicyId) -> Self {
        Self {
            from: from.clone(),
            to: to.clone(),
        }
    }
}
