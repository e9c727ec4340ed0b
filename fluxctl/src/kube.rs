//! `fluxctl apply --kube`: server-side apply of `TrafficPolicy` objects.

use std::process::ExitCode;

use fluxgate_core::policy::TrafficPolicy;
use fluxgate_core::store::{KubeTrafficPolicy, KubeTrafficPolicySpec};
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

use crate::common::{self, FAILED, UNREACHABLE};

/// The field manager of the applies.
const FIELD_MANAGER: &str = "fluxctl";

/// Server-side-applies every policy (already validated) to the cluster of the default
/// kubeconfig or the in-cluster config; prints `trafficpolicy NS/NAME serverside-applied`.
pub(crate) fn apply(policies: &[TrafficPolicy], namespace: &str) -> ExitCode {
    let runtime = match common::runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let client = match kube::Client::try_default().await {
            Ok(client) => client,
            Err(e) => {
                eprintln!("error: cannot reach the Kubernetes cluster: no usable kubeconfig or in-cluster config: {e}");
                return ExitCode::from(UNREACHABLE);
            }
        };
        let api: Api<KubeTrafficPolicy> = Api::namespaced(client, namespace);
        let params = PatchParams::apply(FIELD_MANAGER);
        for policy in policies {
            let object = to_object(policy, namespace);
            let name = &policy.metadata.name;
            if let Err(e) = api.patch(name, &params, &Patch::Apply(&object)).await {
                return fail(namespace, name, &e);
            }
            println!("trafficpolicy {namespace}/{name} serverside-applied");
        }
        ExitCode::SUCCESS
    })
}

/// The object to apply: the policy's name, namespace, labels and annotations, and its spec.
fn to_object(policy: &TrafficPolicy, namespace: &str) -> KubeTrafficPolicy {
    let meta = &policy.metadata;
    let non_empty =
        |map: &std::collections::BTreeMap<String, String>| (!map.is_empty()).then(|| map.clone());
    let metadata = ObjectMeta {
        name: Some(meta.name.clone()),
        namespace: Some(namespace.to_owned()),
        labels: non_empty(&meta.labels),
        annotations: non_empty(&meta.annotations),
        ..ObjectMeta::default()
    };
    let mut object = KubeTrafficPolicy::new(&meta.name, KubeTrafficPolicySpec(policy.spec.clone()));
    object.metadata = metadata;
    object
}

/// Prints why an apply failed: exit 1 when the API server answered, 3 when it could not be reached.
fn fail(namespace: &str, name: &str, error: &kube::Error) -> ExitCode {
    match error {
        kube::Error::Api(status) => {
            eprintln!(
                "error: trafficpolicy {namespace}/{name}: the API server refused it: {} ({})",
                status.message, status.code
            );
            ExitCode::from(FAILED)
        }
        other => {
            eprintln!("error: cannot reach the Kubernetes cluster: {other}");
            ExitCode::from(UNREACHABLE)
        }
    }
}
