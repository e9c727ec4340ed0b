//! The `deploy/` folder: every manifest parses (multi-document YAML) with the kinds and API
//! versions it should have, the Deployment agrees with the binary (ports, probes, flags, the
//! drain), the example policy is the bundled one, and the Dockerfile builds what
//! `cargo install` gives. (`fluxctl`'s tests check that `deploy/crd.yaml` is what
//! `fluxctl crd` prints.) The Deployment runs `--kube`: the `kube` feature (on by default) is
//! needed.
#![cfg(feature = "kube")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use fluxgate_gateway::policy::BUNDLED_POLICY;
use saphyr::{LoadableYamlNode, Yaml};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(deploy().join(name)).unwrap()
}

/// Every manifest of `deploy/`: file name → its documents.
fn manifests() -> BTreeMap<String, Vec<Yaml<'static>>> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(deploy()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            // Leaked: the documents borrow their text, for the whole test.
            let text: &'static str = Box::leak(std::fs::read_to_string(&path).unwrap().into());
            let docs =
                Yaml::load_from_str(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            all.insert(name, docs);
        }
    }
    all
}

fn str_of<'a>(node: &'a Yaml<'_>) -> &'a str {
    node.as_str()
        .unwrap_or_else(|| panic!("not a string: {node:?}"))
}

fn int_of(node: &Yaml<'_>) -> i64 {
    node.as_integer()
        .unwrap_or_else(|| panic!("not an integer: {node:?}"))
}

fn items<'a>(node: &'a Yaml<'static>) -> &'a [Yaml<'static>] {
    node.as_vec()
        .unwrap_or_else(|| panic!("not a list: {node:?}"))
}

/// The one document of `kind` among all manifests.
fn only<'a>(all: &'a BTreeMap<String, Vec<Yaml<'static>>>, kind: &str) -> &'a Yaml<'static> {
    let found: Vec<&Yaml<'static>> = all
        .values()
        .flatten()
        .filter(|d| str_of(&d["kind"]) == kind)
        .collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

/// `fluxgate --help`.
fn help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fluxgate"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// The default the help gives `--flag`, if any.
fn default_of(help: &str, flag: &str) -> Option<String> {
    let at = help.find(&format!("--{flag} "))?;
    let rest = &help[at..];
    let end = rest.find("\n  -").unwrap_or(rest.len());
    let section = &rest[..end];
    let start = section.find("[default: ")? + "[default: ".len();
    Some(section[start..].split(']').next()?.to_owned())
}

#[test]
fn every_manifest_has_the_kinds_it_should() {
    let all = manifests();
    let mut kinds: Vec<(String, String, String)> = Vec::new();
    for (file, docs) in &all {
        assert!(!docs.is_empty(), "{file}");
        for doc in docs {
            let (api, kind) = (str_of(&doc["apiVersion"]), str_of(&doc["kind"]));
            kinds.push((file.clone(), api.to_owned(), kind.to_owned()));
        }
    }
    let expected = [
        (
            "crd.yaml",
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
        ),
        ("deployment.yaml", "apps/v1", "Deployment"),
        (
            "kustomization.yaml",
            "kustomize.config.k8s.io/v1beta1",
            "Kustomization",
        ),
        ("namespace.yaml", "v1", "Namespace"),
        ("rbac.yaml", "v1", "ServiceAccount"),
        ("rbac.yaml", "rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.yaml", "rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("service.yaml", "v1", "Service"),
        ("trafficpolicy.yaml", "fluxgate.io/v1beta1", "TrafficPolicy"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(f, a, k)| ((*f).to_owned(), (*a).to_owned(), (*k).to_owned()))
        .collect();
    assert_eq!(kinds, expected);

    // kustomize applies every other manifest; everything namespaced is in `payments`.
    let kustomization = only(&all, "Kustomization");
    let mut resources: Vec<&str> = items(&kustomization["resources"])
        .iter()
        .map(str_of)
        .collect();
    resources.sort_unstable();
    let others: Vec<&str> = all
        .keys()
        .map(String::as_str)
        .filter(|f| *f != "kustomization.yaml")
        .collect();
    assert_eq!(resources, others);
    for doc in all.values().flatten() {
        let kind = str_of(&doc["kind"]);
        if !["CustomResourceDefinition", "Namespace", "Kustomization"].contains(&kind) {
            assert_eq!(str_of(&doc["metadata"]["namespace"]), "payments", "{kind}");
        }
    }
}

#[test]
fn the_crd_has_the_status_subresource_and_printer_columns() {
    let all = manifests();
    let crd = only(&all, "CustomResourceDefinition");
    assert_eq!(
        str_of(&crd["metadata"]["name"]),
        "trafficpolicies.fluxgate.io"
    );
    let version = &items(&crd["spec"]["versions"])[0];
    assert!(version["subresources"]["status"].as_mapping().is_some());
    let columns: Vec<&str> = items(&version["additionalPrinterColumns"])
        .iter()
        .map(|c| str_of(&c["name"]))
        .collect();
    assert_eq!(
        columns,
        ["Accepted", "Programmed", "Canary", "Weight", "Age"]
    );
}

#[test]
fn rbac_lets_the_gateway_watch_policies_and_write_their_status() {
    let all = manifests();
    let role = only(&all, "Role");
    let rules: Vec<(Vec<&str>, Vec<&str>)> = items(&role["rules"])
        .iter()
        .map(|r| {
            assert_eq!(
                items(&r["apiGroups"])
                    .iter()
                    .map(str_of)
                    .collect::<Vec<_>>(),
                ["fluxgate.io"]
            );
            let list = |k: &str| items(&r[k]).iter().map(str_of).collect::<Vec<_>>();
            (list("resources"), list("verbs"))
        })
        .collect();
    assert_eq!(
        rules,
        [
            (vec!["trafficpolicies"], vec!["get", "list", "watch"]),
            (
                vec!["trafficpolicies/status"],
                vec!["get", "patch", "update"]
            ),
        ]
    );
    let binding = only(&all, "RoleBinding");
    assert_eq!(str_of(&binding["roleRef"]["name"]), "fluxgate");
    let account = str_of(&items(&binding["subjects"])[0]["name"]);
    assert_eq!(
        account,
        str_of(&only(&all, "ServiceAccount")["metadata"]["name"])
    );
    let pod = &only(&all, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(str_of(&pod["serviceAccountName"]), account);
}

#[test]
fn the_deployment_agrees_with_the_binary() {
    let all = manifests();
    let help = help();
    let deployment = only(&all, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &items(&pod["containers"])[0];
    let args: Vec<&str> = items(&container["args"]).iter().map(str_of).collect();

    // Every flag exists, and --kube follows the pod's namespace (downward API).
    for arg in &args {
        let flag = arg.split('=').next().unwrap();
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "{flag}"
        );
    }
    assert!(args.contains(&"--kube"));
    assert!(args.contains(&"--namespace=$(POD_NAMESPACE)"));
    let env = items(&container["env"]);
    let namespace = env
        .iter()
        .find(|e| str_of(&e["name"]) == "POD_NAMESPACE")
        .unwrap();
    assert_eq!(
        str_of(&namespace["valueFrom"]["fieldRef"]["fieldPath"]),
        "metadata.namespace"
    );

    // The ports are the binary's default ports, bound on every interface.
    let ports: BTreeMap<&str, i64> = items(&container["ports"])
        .iter()
        .map(|p| (str_of(&p["name"]), int_of(&p["containerPort"])))
        .collect();
    for (flag, name) in [("listen", "http"), ("admin", "admin")] {
        let default = default_of(&help, flag).unwrap();
        let port: i64 = default.rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(ports[name], port, "--{flag} defaults to {default}");
        assert!(
            args.contains(&format!("--{flag}=0.0.0.0:{port}").as_str()),
            "{args:?}"
        );
    }

    // Probes on the admin port: alive on /healthz, ready on /readyz.
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(str_of(&get["path"]), path);
        assert_eq!(str_of(&get["port"]), "admin");
    }

    // The grace period covers the preStop sleep and the drain (--grace-period, 30s).
    let sleep = int_of(&container["lifecycle"]["preStop"]["sleep"]["seconds"]);
    let drain = default_of(&help, "grace-period").map_or(30, |d| {
        let seconds: f64 = d.trim_end_matches('s').parse().unwrap();
        seconds.ceil() as i64
    });
    assert_eq!(drain, 30);
    let grace = int_of(&pod["terminationGracePeriodSeconds"]);
    assert!(
        sleep > 0 && grace >= sleep + drain,
        "{grace} < {sleep} + {drain}"
    );

    // Not root, resources set.
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert!(int_of(&pod["securityContext"]["runAsUser"]) > 0);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false)
    );
    assert!(container["resources"]["requests"].as_mapping().is_some());

    // The Service sends to the Deployment's named ports and selects its pods.
    let service = only(&all, "Service");
    for port in items(&service["spec"]["ports"]) {
        assert!(ports.contains_key(str_of(&port["targetPort"])));
    }
    assert_eq!(
        str_of(&service["spec"]["selector"]["app.kubernetes.io/name"]),
        str_of(&deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"])
    );
}

#[test]
fn the_example_policy_is_the_bundled_one() {
    assert_eq!(read("trafficpolicy.yaml"), BUNDLED_POLICY);
}

#[test]
fn the_dockerfile_builds_the_installed_binary_as_non_root() {
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("cargo install --path fluxgate-gateway --locked"));
    assert!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")) >= 2
    );
    assert!(dockerfile.contains("\nUSER 65532"));
    assert!(dockerfile.contains("\nEXPOSE 8080 9090"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/fluxgate\"]"));
}
