//! `deploy/crd.yaml` is what `fluxctl crd` prints: regenerate it with
//! `cargo run -p fluxctl -- crd > deploy/crd.yaml` when the model changes.

use std::process::Command;

#[test]
fn the_committed_crd_is_the_generated_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_fluxctl"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crd.yaml");
    let committed = std::fs::read_to_string(path).unwrap();
    assert!(
        committed == generated,
        "deploy/crd.yaml is stale: run `cargo run -p fluxctl -- crd > deploy/crd.yaml`"
    );
}
