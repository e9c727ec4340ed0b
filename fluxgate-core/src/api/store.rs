//! The `store` section of [`Status`](super::Status).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Extra;
use crate::store;

/// The policy store: its generation, the applies it took and refused, the policies in force.
///
/// ```
/// use fluxgate_core::api::StoreStatus;
/// use fluxgate_core::store::PolicyStore;
///
/// let status = StoreStatus::from(&PolicyStore::new().status());
/// assert_eq!((status.generation, status.applied, status.policies.len()), (0, 0, 0));
/// assert_eq!(serde_json::to_value(&status)?["lastRejection"], serde_json::Value::Null);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct StoreStatus {
    /// The store's generation.
    pub generation: u64,
    /// How many applies changed the store.
    pub applied: u64,
    /// How many applies were refused.
    pub rejected: u64,
    /// The last refused apply.
    pub last_rejection: Option<Rejection>,
    /// The policies in force.
    pub policies: Vec<PolicyVersion>,
    /// How many removals left a policy's traffic without any policy.
    pub removed: u64,
    /// The last of those removals.
    pub last_removal: Option<Removal>,
    /// Policies their file renamed, followed under the new name.
    pub renamed: Vec<Rename>,
    /// Policies kept in force after they left their file (`namespace/name`).
    pub retained: Vec<String>,
    /// Fields this version does not know (counters added by later versions).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One policy in force and the store generation of its version.
///
/// ```
/// use fluxgate_core::api::PolicyVersion;
///
/// let policy: PolicyVersion = serde_json::from_str(r#"{"id": "shop/edge", "generation": 7}"#)?;
/// assert_eq!((policy.id.as_str(), policy.generation), ("shop/edge", 7));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct PolicyVersion {
    /// `namespace/name`.
    pub id: String,
    /// The store generation at which this version was put in force.
    pub generation: u64,
}

/// The last refused apply.
///
/// ```
/// use fluxgate_core::api::Rejection;
///
/// let json = r#"{"message": "shop/edge: spec.rateLimit: unknown field", "atUnixSeconds": 1700000000}"#;
/// let rejection: Rejection = serde_json::from_str(json)?;
/// assert_eq!(rejection.at_unix_seconds, 1_700_000_000);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Rejection {
    /// Why it was refused.
    pub message: String,
    /// When (Unix seconds).
    pub at_unix_seconds: u64,
}

/// The last removal that left a policy's traffic without any policy.
///
/// ```
/// use fluxgate_core::api::Removal;
///
/// let json = r#"{"id": "shop/edge", "reason": "deleted", "atUnixSeconds": 1700000000}"#;
/// assert_eq!(serde_json::from_str::<Removal>(json)?.reason, "deleted");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Removal {
    /// The policy removed (`namespace/name`).
    pub id: String,
    /// Why: `deleted`, or the file that was removed.
    pub reason: String,
    /// When (Unix seconds).
    pub at_unix_seconds: u64,
}

/// A policy its file renamed.
///
/// ```
/// use fluxgate_core::api::Rename;
///
/// let rename: Rename = serde_json::from_str(r#"{"from": "shop/old", "to": "shop/new"}"#)?;
/// assert_eq!(rename.to, "shop/new");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Rename {
    /// The old `namespace/name`, which its followers still name.
    pub from: String,
    /// The `namespace/name` whose policy they read now.
    pub to: String,
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl From<&store::StoreStatus> for StoreStatus {
    fn from(status: &store::StoreStatus) -> Self {
        let policy = |p: &store::PolicySummary| PolicyVersion {
            id: p.id.to_string(),
            generation: p.generation,
        };
        Self {
            generation: status.generation,
            applied: status.applied,
            rejected: status.rejected,
            last_rejection: status.last_rejection.as_ref().map(|r| Rejection {
                message: r.message.clone(),
                at_unix_seconds: unix(r.at),
            }),
            policies: status.policies.iter().map(policy).collect(),
            removed: status.removed,
            last_removal: status.last_removal.as_ref().map(|r| Removal {
                id: r.id.to_string(),
                reason: r.reason.clone(),
                at_unix_seconds: unix(r.at),
            }),
            renamed: status
                .renamed
                .iter()
                .map(|r| Rename {
                    from: r.from.to_string(),
                    to: r.to.to_string(),
                })
                .collect(),
            retained: status.retained.iter().map(ToString::to_string).collect(),
            extra: Extra::new(),
        }
    }
}
