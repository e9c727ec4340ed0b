//! The records and messages kept in Redis, and the names of the keys.

use serde::Deserialize;

use super::RedisStoreError;
use crate::policy::TrafficPolicy;
use crate::store::PolicyId;

/// The hash that holds a namespace's policies: `fluxgate:policies:{NS}`.
///
/// The braces make `NS` the key's hash tag, so that in a Redis Cluster the keys of one
/// namespace share a slot and a script can update them together.
///
/// ```
/// assert_eq!(fluxgate_core::store::policies_key("payments"), "fluxgate:policies:{payments}");
/// ```
#[must_use]
pub fn policies_key(namespace: &str) -> String {
    format!("fluxgate:policies:{{{namespace}}}")
}

/// The hash of the last version of every policy of a namespace, deleted ones included:
/// `fluxgate:policies:{NS}:versions`.
///
/// ```
/// assert_eq!(fluxgate_core::store::versions_key("payments"), "fluxgate:policies:{payments}:versions");
/// ```
#[must_use]
pub fn versions_key(namespace: &str) -> String {
    format!("fluxgate:policies:{{{namespace}}}:versions")
}

/// The channel where every change of a namespace is published: `fluxgate:policies:{NS}:changes`.
///
/// ```
/// assert_eq!(fluxgate_core::store::changes_channel("payments"), "fluxgate:policies:{payments}:changes");
/// ```
#[must_use]
pub fn changes_channel(namespace: &str) -> String {
    format!("fluxgate:policies:{{{namespace}}}:changes")
}

/// One policy as Redis holds it: the policy and its version.
///
/// The version counts the writes of that policy name in its namespace (deletes included), from 1.
/// The policy's `metadata.generation` is set to the version when it is read.
///
/// ```
/// use fluxgate_core::store::StoredPolicy;
///
/// let json = br#"{"version":3,"policy":{"apiVersion":"fluxgate.io/v1beta1","kind":"TrafficPolicy","metadata":{"name":"api","namespace":"prod"}}}"#;
/// let stored = StoredPolicy::from_json("prod", "api", json).unwrap();
/// assert_eq!(stored.version, 3);
/// assert_eq!(stored.policy.metadata.generation, Some(3));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StoredPolicy {
    /// The policy, with `metadata.generation` set to the version.
    pub policy: TrafficPolicy,
    /// Its version in Redis.
    pub version: u64,
}

#[derive(Deserialize)]
struct Record {
    version: u64,
    policy: TrafficPolicy,
}

impl StoredPolicy {
    /// Reads a record (`{"version": N, "policy": {…}}`) stored under `namespace`/`name`.
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::Corrupt`] when the value is not such a record.
    pub fn from_json(namespace: &str, name: &str, json: &[u8]) -> Result<Self, RedisStoreError> {
        let record: Record =
            serde_json::from_slice(json).map_err(|e| RedisStoreError::Corrupt {
                id: PolicyId::new(namespace, name),
                message: e.to_string(),
            })?;
        let mut policy = record.policy;
        policy.metadata.generation = i64::try_from(record.version).ok();
        Ok(Self {
            policy,
            version: record.version,
        })
    }
}

/// A message of the changes channel, as the scripts publish it.
///
/// `{"name": N, "version": V, "policy": {…}}` for a write,
/// `{"name": N, "version": V, "deleted": true}` for a delete.
#[derive(Debug, Deserialize)]
pub(super) struct Message {
    pub(super) name: String,
    pub(super) version: u64,
    #[serde(default)]
    pub(super) policy: Option<serde_json::Value>,
    #[serde(default)]
    pub(super) deleted: bool,
}

/// The JSON the writer stores for `policy`: without the fields that Redis itself sets.
pub(super) fn policy_json(policy: &TrafficPolicy) -> Result<String, RedisStoreError> {
    let mut policy = policy.clone();
    policy.metadata.generation = None;
    policy.metadata.resource_version = None;
    serde_json::to_string(&policy).map_err(|e| RedisStoreError::Corrupt {
        id: PolicyId::new(
            policy.metadata.namespace.clone().unwrap_or_default(),
            policy.metadata.name.clone(),
        ),
        message: e.to_string(),
    })
}
