//! From a Kubernetes object to a policy, and from an apply's outcome to the object's status.

use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use serde_json::{Map, Value, json};

use super::{ACCEPTED, TrafficPolicyStatus};
use crate::policy::{API_VERSION, KIND, PolicyError, PolicyErrors, TrafficPolicy, parse_policies};
use crate::store::{ApplyError, PolicyId};

/// The id of an object: its namespace (or `default_ns`) and name.
pub(super) fn object_id(object: &DynamicObject, default_ns: &str) -> PolicyId {
    PolicyId::new(
        object.metadata.namespace.as_deref().unwrap_or(default_ns),
        object.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// Builds the policy document of an object from the parts the model knows (name, namespace,
/// labels, annotations, generation and spec), leaving the server's fields out, and reads it
/// with the strict parser so errors name their fields.
pub(super) fn to_policy(
    object: &DynamicObject,
    id: &PolicyId,
) -> Result<TrafficPolicy, PolicyErrors> {
    let meta = &object.metadata;
    let mut metadata = Map::new();
    metadata.insert("name".into(), id.name().into());
    metadata.insert("namespace".into(), id.namespace().into());
    for (key, map) in [("labels", &meta.labels), ("annotations", &meta.annotations)] {
        if let Some(map) = map.as_ref().filter(|m| !m.is_empty()) {
            metadata.insert(key.into(), json!(map));
        }
    }
    if let Some(generation) = meta.generation {
        metadata.insert("generation".into(), generation.into());
    }
    let spec = object
        .data
        .get("spec")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let document = json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": Value::Object(metadata),
        "spec": spec,
    });
    let bytes = serde_json::to_vec(&document).map_err(|e| {
        PolicyErrors::from(
            PolicyError::new(crate::policy::PolicyErrorKind::Syntax, "").with_hint(e.to_string()),
        )
    })?;
    let mut policies = parse_policies(&bytes)?;
    policies.pop().ok_or_else(|| {
        PolicyErrors::from(PolicyError::new(
            crate::policy::PolicyErrorKind::Syntax,
            "spec",
        ))
    })
}

/// The `Accepted` condition's message for a refusal: every error as `path: problem`, without
/// the document numbers and lines of the synthesised document.
pub(super) fn refusal_message(error: &ApplyError) -> String {
    match error {
        ApplyError::Invalid(errors) => errors
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.document = None;
                e.id = None;
                e.line = None;
                e.column = None;
                e.to_string()
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// The status to write for `object` after an apply, or `None` when the object already says so
/// (which keeps a status write from causing another write).
pub(super) fn next_status(
    object: &DynamicObject,
    outcome: Result<(), &ApplyError>,
) -> Option<TrafficPolicyStatus> {
    let generation = object.metadata.generation;
    let (status, reason, message) = match outcome {
        Ok(()) => ("True", "Valid", "the policy is in force".to_owned()),
        Err(error) => ("False", "Invalid", refusal_message(error)),
    };
    let current: Option<TrafficPolicyStatus> = object
        .data
        .get("status")
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    let previous = current.as_ref().and_then(TrafficPolicyStatus::accepted);
    if let (Some(current), Some(previous)) = (&current, previous)
        && current.observed_generation == generation
        && previous.status == status
        && previous.reason == reason
        && previous.message == message
        && previous.observed_generation == generation
    {
        return None;
    }
    let last_transition_time = previous
        .filter(|p| p.status == status)
        .map_or_else(now, |p| p.last_transition_time.clone());
    Some(TrafficPolicyStatus {
        observed_generation: generation,
        conditions: vec![Condition {
            type_: ACCEPTED.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: generation,
            last_transition_time,
        }],
    })
}

fn now() -> Time {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    Time(Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH))
}
