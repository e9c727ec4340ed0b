//! `fluxctl crd`: print the `TrafficPolicy` CustomResourceDefinition.

use std::process::ExitCode;

use fluxgate_core::store::traffic_policy_crd;

use crate::common::FAILED;
use crate::yaml::to_yaml;

/// Prints the CRD as YAML, ready for `kubectl apply -f -` (`deploy/crd.yaml` is its output).
pub(crate) fn run() -> ExitCode {
    match serde_json::to_value(traffic_policy_crd()) {
        Ok(crd) => {
            print!("{}", to_yaml(&crd));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write the CRD: {e}");
            ExitCode::from(FAILED)
        }
    }
}
