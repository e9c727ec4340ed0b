//! From a Kubernetes object to a policy, and from a refusal to its message.

use kube::api::DynamicObject;
use serde_json::{Map, Value, json};

use super::TrafficPolicyStatus;
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

/// The status the API server holds for `object`, if it reads as one.
pub(super) fn server_status(object: &DynamicObject) -> Option<TrafficPolicyStatus> {
    object
        .data
        .get("status")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
}
