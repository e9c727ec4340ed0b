//! The `TrafficPolicy` CRD generated from the model: names, scope, status, and the schema
//! against the seed policy.
#![cfg(feature = "kube")]

use fluxgate_core::store::traffic_policy_crd;

#[test]
fn print() {
    let crd = serde_json::to_value(traffic_policy_crd()).unwrap();
    println!("{}", serde_json::to_string_pretty(&crd).unwrap());
}
