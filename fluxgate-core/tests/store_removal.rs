//! Protection never disappears silently: a renamed policy is followed under its new name, a
//! policy cut from its file stays, a removed file or a delete is logged, counted and shown, a
//! delete of what was applied over a file's policy falls back to the file's, and a ConfigMap's
//! `..data` swap is read promptly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fluxgate_core::store::{Change, FileSource, PolicyId, PolicyStore};
use support::{save, wait_generation};

mod support;

fn policy(namespace: &str, name: &str, rps: u32) -> String {
    format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\n\
         metadata: {{name: {name}, namespace: {namespace}}}\n\
         spec:\n  rateLimit: {{requestsPerSecond: {rps}, burstSize: 10}}\n"
    )
}

fn rps(store: &PolicyStore, id: &PolicyId) -> Option<f64> {
    let slot = store.slot(id);
    let applied = slot.load_full()?;
    Some(applied.compiled().rate_limits()[0].requests_per_second)
}

/// A file source of one file holding `text`, loaded.
fn loaded(text: &str) -> (tempfile::TempDir, PathBuf, PolicyStore, FileSource) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, text).unwrap();
    let store = PolicyStore::new();
    let mut source = FileSource::new(&file, store.clone());
    source.load().unwrap();
    (dir, file, store, source)
}

#[tokio::test]
async fn a_renamed_policy_is_followed_under_its_new_name() {
    let (_dir, file, store, mut source) = loaded(&policy("payments", "checkout", 5));
    let old = PolicyId::new("payments", "checkout");
    let slot = store.slot(&old);

    // A typo in the name: the old id's slot (what the gateway reads) reads the new policy.
    save(&file, &policy("payments", "chekout", 7));
    let report = source.load().unwrap();
    let new = PolicyId::new("payments", "chekout");
    assert!(
        report
            .changes
            .contains(&Change::Renamed(old.clone(), new.clone())),
        "{:?}",
        report.changes
    );
    assert_eq!(rps(&store, &old), Some(7.0), "protection stays");
    assert_eq!(slot.load_full().unwrap().id(), &new);
    assert!(store.get(&old).is_none(), "the old id is not listed");
    let status = store.status();
    assert_eq!(status.renamed.len(), 1);
    assert_eq!(
        (&status.renamed[0].from, &status.renamed[0].to),
        (&old, &new)
    );

    // Later saves under the new name reach the old id's followers; so does a namespace change.
    save(&file, &policy("payments", "chekout", 9));
    source.load().unwrap();
    assert_eq!(rps(&store, &old), Some(9.0));
    save(&file, &policy("shop", "chekout", 11));
    source.load().unwrap();
    assert_eq!(rps(&store, &old), Some(11.0), "followed over two renames");

    // Deleting the old id is the explicit way to drop the link: logged and counted.
    let removed = store.status().removed;
    assert_eq!(
        store.delete(&old).changes,
        vec![Change::Deleted(old.clone())]
    );
    assert_eq!(rps(&store, &old), None);
    assert_eq!(store.status().removed, removed + 1);
}

#[tokio::test]
async fn a_policy_cut_from_its_file_stays_until_deleted() {
    let two = format!(
        "{}---\n{}",
        policy("payments", "a", 5),
        policy("payments", "b", 6)
    );
    let (_dir, file, store, mut source) = loaded(&two);
    save(&file, &policy("payments", "a", 5));
    source.load().unwrap();
    let b = PolicyId::new("payments", "b");
    assert_eq!(rps(&store, &b), Some(6.0), "still in force");
    assert_eq!(store.status().retained, vec![b.clone()]);
    assert_eq!(store.delete(&b).changes, vec![Change::Deleted(b.clone())]);
    assert!(store.status().retained.is_empty());
    assert_eq!(store.status().last_removal.unwrap().id, b);
}

#[tokio::test]
async fn a_removed_file_is_a_counted_removal() {
    let dir = tempfile::tempdir().unwrap();
    save(&dir.path().join("a.yaml"), &policy("prod", "a", 5));
    save(&dir.path().join("b.yaml"), &policy("prod", "b", 5));
    let store = PolicyStore::new();
    let mut source = FileSource::new(dir.path(), store.clone());
    source.load().unwrap();
    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    let report = source.load().unwrap();
    let a = PolicyId::new("prod", "a");
    assert_eq!(report.changes.last(), Some(&Change::Deleted(a.clone())));
    let status = store.status();
    assert_eq!(status.removed, 1);
    let removal = status.last_removal.unwrap();
    assert_eq!(removal.id, a);
    assert!(removal.reason.contains("a.yaml"), "{}", removal.reason);
}

#[tokio::test]
async fn deleting_what_was_applied_over_a_file_policy_falls_back_to_the_file() {
    let (_dir, file, store, mut source) = loaded(&policy("payments", "checkout", 5));
    let id = PolicyId::new("payments", "checkout");

    // What Redis or the admin API applies over it, then deletes.
    store
        .apply_bytes(policy("payments", "checkout", 50).as_bytes(), None)
        .unwrap();
    assert_eq!(rps(&store, &id), Some(50.0));
    assert_eq!(
        store.delete(&id).changes,
        vec![Change::Reverted(id.clone())]
    );
    assert_eq!(
        rps(&store, &id),
        Some(5.0),
        "the file's policy is in force again"
    );
    assert_eq!(store.status().removed, 0);

    // A changed save of the file wins over what was applied over it (the last write wins).
    store
        .apply_bytes(policy("payments", "checkout", 50).as_bytes(), None)
        .unwrap();
    save(&file, &policy("payments", "checkout", 6));
    source.load().unwrap();
    assert_eq!(rps(&store, &id), Some(6.0));
}

/// Builds a ConfigMap volume's layout in `dir`: `..<version>/policy.yaml`, `..data -> ..<version>`,
/// `policy.yaml -> ..data/policy.yaml`; a later call swaps `..data` as the kubelet does.
fn configmap(dir: &Path, version: &str, text: &str) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir(&versioned).unwrap();
    std::fs::write(versioned.join("policy.yaml"), text).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    let link = dir.join("policy.yaml");
    if link.symlink_metadata().is_err() {
        std::os::unix::fs::symlink("..data/policy.yaml", link).unwrap();
    }
}

async fn follows_a_configmap_swap(folder: bool) {
    let dir = tempfile::tempdir().unwrap();
    configmap(dir.path(), "2026_1", &policy("payments", "checkout", 5));
    let path = if folder {
        dir.path().to_path_buf()
    } else {
        dir.path().join("policy.yaml")
    };
    let store = PolicyStore::new();
    // No poll within the test's time: only the swap's file events can be what reloads.
    let mut source = FileSource::new(&path, store.clone()).poll_interval(Duration::from_secs(3600));
    source.load().unwrap();
    let _handle = source.spawn().unwrap();
    let id = PolicyId::new("payments", "checkout");
    assert_eq!(rps(&store, &id), Some(5.0));
    configmap(dir.path(), "2026_2", &policy("payments", "checkout", 8));
    wait_generation(&store, 2).await;
    assert_eq!(rps(&store, &id), Some(8.0));
}

#[tokio::test]
async fn a_configmap_file_reloads_on_the_data_swap() {
    follows_a_configmap_swap(false).await;
}

#[tokio::test]
async fn a_configmap_folder_reloads_on_the_data_swap() {
    follows_a_configmap_swap(true).await;
}
