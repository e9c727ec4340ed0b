//! The JSON schemas of the model types whose serde form is hand-written, and the CRD clean-up.

use std::borrow::Cow;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::policy::{Duration, RateLimits};

/// What [`Duration`]'s parser accepts: numbers (with an optional fraction) each with a unit.
pub(super) const DURATION_PATTERN: &str = r"^(([0-9]+\.?[0-9]*|\.[0-9]+)(h|m|s|ms|us|µs|ns))+$";

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration such as 200ms, 1s, 1m30s or 1.5s (units h, m, s, ms, us, ns).",
        })
    }
}

/// `spec.rateLimit` is a mapping or a list; a structural schema cannot say so with `anyOf`
/// (its branches may not set `type`), so the node keeps unknown fields and FluxGate checks it.
impl JsonSchema for RateLimits {
    fn schema_name() -> Cow<'static, str> {
        "RateLimits".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "x-kubernetes-preserve-unknown-fields": true,
            "description": "One rate limit (a mapping: requestsPerSecond, burstSize, keyExtractor, \
                algorithm, missingKey, shadow, overrides, sync, onStoreFailure, name) or a list of \
                them. Either form is accepted here and checked by FluxGate, which reports a \
                refusal in the Accepted condition.",
        })
    }
}

/// Removes every `default` from a CRD schema, so the API server stores objects as written.
pub(super) fn strip_defaults(schema: &mut JSONSchemaProps) {
    schema.default = None;
    let children = schema
        .properties
        .iter_mut()
        .flat_map(|map| map.values_mut())
        .chain(schema.any_of.iter_mut().flatten())
        .chain(schema.one_of.iter_mut().flatten())
        .chain(schema.all_of.iter_mut().flatten())
        .chain(schema.not.as_deref_mut());
    for child in children {
        strip_defaults(child);
    }
    match &mut schema.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => strip_defaults(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(strip_defaults),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = &mut schema.additional_properties {
        strip_defaults(extra);
    }
}
