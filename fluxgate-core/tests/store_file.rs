//! The file source: saves are applied, broken saves are ignored, removed policies are deleted.

use std::time::Duration;

use fluxgate_core::store::{FileSource, PolicyId, PolicyStore};
use support::{save, wait_generation};

mod support;

fn policy(name: &str, rps: u32) -> String {
    format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{name: {name}}}\n\
         spec:\n  rateLimit: {{requestsPerSecond: {rps}, burstSize: 10}}\n"
    )
}

#[tokio::test]
async fn a_saved_file_is_applied_and_a_broken_save_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy("api", 10)).unwrap();
    let store = PolicyStore::new();
    let mut source = FileSource::new(&file, store.clone()).namespace("prod");
    source.load().unwrap();
    let _handle = source.spawn().unwrap();
    let id = PolicyId::new("prod", "api");
    assert_eq!(store.get(&id).unwrap().generation(), 1);

    save(&file, &policy("api", 20));
    wait_generation(&store, 2).await;

    // A broken save is reported in the status and ignored.
    save(
        &file,
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {name: api}\nspec:\n  canary: {weight: 150}\n",
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.status().rejected == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "broken save never read"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(store.generation(), 2);
    let message = store.status().last_rejection.unwrap().message;
    assert!(message.contains("spec.canary.weight"), "{message}");

    // Fixing it applies again; writing in place (no rename) works too.
    std::fs::write(&file, policy("api", 30)).unwrap();
    wait_generation(&store, 3).await;
}

#[tokio::test]
async fn a_folder_source_follows_added_and_removed_files() {
    let dir = tempfile::tempdir().unwrap();
    save(&dir.path().join("a.yaml"), &policy("a", 10));
    std::fs::write(dir.path().join("notes.txt"), "not a policy").unwrap();
    let store = PolicyStore::new();
    let mut source = FileSource::new(dir.path(), store.clone()).namespace("prod");
    source.load().unwrap();
    let _handle = source.spawn().unwrap();
    assert_eq!(store.list().len(), 1);

    save(&dir.path().join("b.yml"), &policy("b", 10));
    wait_generation(&store, 2).await;
    assert!(store.get(&PolicyId::new("prod", "b")).is_some());

    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    wait_generation(&store, 3).await;
    assert!(store.get(&PolicyId::new("prod", "a")).is_none());
    assert!(store.get(&PolicyId::new("prod", "b")).is_some());
}

#[tokio::test]
async fn an_invalid_file_at_startup_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, "kind: TrafficPolicy\n").unwrap();
    let store = PolicyStore::new();
    assert!(FileSource::new(&file, store.clone()).load().is_err());
    assert!(
        FileSource::new(dir.path().join("missing.yaml"), store.clone())
            .load()
            .is_err()
    );
    assert_eq!(store.generation(), 0);
}

#[tokio::test]
async fn dropping_the_handle_stops_following() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy("api", 10)).unwrap();
    let store = PolicyStore::new();
    let mut source = FileSource::new(&file, store.clone()).poll_interval(Duration::from_millis(20));
    source.load().unwrap();
    drop(source.spawn().unwrap());
    tokio::task::yield_now().await;
    save(&file, &policy("api", 20));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.generation(), 1);
}
