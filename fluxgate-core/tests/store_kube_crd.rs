//! The `TrafficPolicy` CRD generated from the model: names, scope, status subresource, and a
//! structural check of the seed policy's spec against the published schema.
#![cfg(feature = "kube")]

use fluxgate_core::policy::{RateLimitSpec, parse_policies};
use fluxgate_core::store::traffic_policy_crd;
use serde_json::{Value, json};

const SEED: &[u8] = include_bytes!("../../fluxgate-gateway/policies/checkout-service-policy.yaml");

fn crd() -> Value {
    serde_json::to_value(traffic_policy_crd()).unwrap()
}

fn spec_schema() -> Value {
    crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

/// The seed's spec as the model writes it (what it wrote, plus the defaults of its sections).
fn seed_spec() -> Value {
    let policy = parse_policies(SEED).unwrap().remove(0);
    serde_json::to_value(&policy.spec).unwrap()
}

/// Checks `value` against a structural schema node: types, known fields, required fields,
/// enums, patterns and bounds. Returns the first problem, with its path.
fn check(value: &Value, schema: &Value, path: &str) -> Result<(), String> {
    if value.is_null() && schema["nullable"] == json!(true) {
        return Ok(());
    }
    if schema["x-kubernetes-preserve-unknown-fields"] == json!(true) && schema.get("type").is_none()
    {
        return Ok(());
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{path}: {value} is not one of {allowed:?}"));
    }
    let ty = schema["type"]
        .as_str()
        .ok_or(format!("{path}: schema without a type"))?;
    match (ty, value) {
        ("object", Value::Object(map)) => {
            let props = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (key, child) in map {
                let child_schema = props
                    .get(key)
                    .ok_or(format!("{path}.{key}: not in the schema"))?;
                check(child, child_schema, &format!("{path}.{key}"))?;
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap();
                if !map.contains_key(name) {
                    return Err(format!("{path}.{name}: required"));
                }
            }
            Ok(())
        }
        ("array", Value::Array(items)) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check(item, &schema["items"], &format!("{path}[{i}]"))),
        ("string", Value::String(s)) => match schema["pattern"].as_str() {
            Some(p) if !regex::Regex::new(p).unwrap().is_match(s) => {
                Err(format!("{path}: {s:?} does not match {p}"))
            }
            _ => Ok(()),
        },
        ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => {
            let v = n.as_f64().unwrap();
            let low = schema["minimum"].as_f64().unwrap_or(f64::MIN);
            let high = schema["maximum"].as_f64().unwrap_or(f64::MAX);
            if (low..=high).contains(&v) {
                Ok(())
            } else {
                Err(format!("{path}: {v} out of range"))
            }
        }
        ("number", Value::Number(_)) | ("boolean", Value::Bool(_)) => Ok(()),
        _ => Err(format!("{path}: {value} is not of type {ty}")),
    }
}

/// The structural schema of one rate limit, made as kube makes the CRD's.
fn rate_limit_schema() -> Value {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .into_generator();
    generator.into_root_schema_for::<RateLimitSpec>().to_value()
}

#[test]
fn names_scope_and_status_subresource() {
    let crd = crd();
    assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    assert_eq!(crd["metadata"]["name"], "trafficpolicies.fluxgate.io");
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "fluxgate.io");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["kind"], "TrafficPolicy");
    assert_eq!(spec["names"]["plural"], "trafficpolicies");
    assert_eq!(spec["names"]["singular"], "trafficpolicy");
    let version = &spec["versions"][0];
    assert_eq!(version["name"], "v1beta1");
    assert_eq!(version["served"], true);
    assert_eq!(version["storage"], true);
    assert_eq!(version["subresources"]["status"], json!({}));
    let status = &version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    assert_eq!(status["observedGeneration"]["type"], "integer");
    let condition = &status["conditions"]["items"]["properties"];
    for field in [
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    ] {
        assert!(
            condition.get(field).is_some(),
            "condition field {field} missing"
        );
    }
}

#[test]
fn schema_is_structural_where_it_matters() {
    let text = serde_json::to_string(&crd()).unwrap();
    assert!(
        !text.contains("\"default\""),
        "defaults are left to FluxGate"
    );
    assert!(!text.contains("\"$ref\""), "subschemas are inlined");
    assert!(!text.contains("\"oneOf\"") && !text.contains("\"anyOf\""));
    let schema = spec_schema();
    let rate = &schema["properties"]["rateLimit"];
    assert_eq!(rate["x-kubernetes-preserve-unknown-fields"], true);
    assert!(rate["description"].as_str().unwrap().contains("or a list"));
    let interval = &schema["properties"]["canary"]["properties"]["interval"];
    assert_eq!(interval["type"], "string");
    assert!(interval["pattern"].is_string());
}

#[test]
fn seed_spec_validates_against_the_schema() {
    let spec = seed_spec();
    for field in ["targetRef", "loadBalancing", "rateLimit", "canary"] {
        assert!(spec.get(field).is_some(), "{field}");
    }
    check(&spec, &spec_schema(), "spec").unwrap();

    // rateLimit is preserved as written by the API server; its own schema covers it, as a
    // mapping and as a list.
    let one = &spec["rateLimit"];
    let rate = rate_limit_schema();
    check(one, &rate, "spec.rateLimit").unwrap();
    let list = json!([one, one]);
    check(
        &list,
        &json!({"type": "array", "items": rate}),
        "spec.rateLimit",
    )
    .unwrap();
}

#[test]
fn schema_catches_what_it_should() {
    let schema = spec_schema();
    let mut typo = seed_spec();
    typo["canary"]["wieght"] = json!(5);
    assert_eq!(
        check(&typo, &schema, "spec").unwrap_err(),
        "spec.canary.wieght: not in the schema"
    );

    let mut duration = seed_spec();
    duration["loadBalancing"]["healthCheck"]["interval"] = json!("200");
    assert!(
        check(&duration, &schema, "spec")
            .unwrap_err()
            .starts_with("spec.loadBalancing.healthCheck.interval")
    );

    let mut algorithm = seed_spec();
    algorithm["loadBalancing"]["algorithm"] = json!("random");
    assert!(check(&algorithm, &schema, "spec").is_err());

    for good in [
        "200ms", "1s", "1m30s", "1.5s", ".5s", "250us", "250µs", "1h",
    ] {
        let mut spec = seed_spec();
        spec["canary"]["interval"] = json!(good);
        check(&spec, &schema, "spec").unwrap();
    }
}

#[test]
fn printer_columns_show_the_status() {
    let crd = crd();
    let version = &crd["spec"]["versions"][0];
    let columns: Vec<(String, String)> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap().to_owned();
            (field("name"), field("jsonPath"))
        })
        .collect();
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Accepted", "Programmed", "Canary", "Weight", "Age"]);
    assert!(columns[1].1.contains("Programmed"));
    assert_eq!(columns[3].1, ".status.canary.weight");
    let canary =
        &version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["canary"];
    assert_eq!(canary["properties"]["phase"]["type"], "string");
    assert_eq!(canary["properties"]["weight"]["type"], "integer");
}
