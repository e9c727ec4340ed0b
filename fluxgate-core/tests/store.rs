//! The policy store: atomic swaps, refused applies, change notification.

use fluxgate_core::store::{ApplyError, Change, PolicyId, PolicyStore};

fn policy(namespace: Option<&str>, name: &str, rps: u32) -> String {
    let ns = namespace.map_or(String::new(), |ns| format!(", namespace: {ns}"));
    format!(
        "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {{name: {name}{ns}}}\n\
         spec:\n  rateLimit:\n    requestsPerSecond: {rps}\n    burstSize: 10\n"
    )
}

fn rps(store: &PolicyStore, id: &PolicyId) -> f64 {
    let applied = store.get(id).expect("policy in force");
    let limits = &applied.compiled().policy().spec.rate_limit;
    limits.as_ref().expect("rate limit").0[0].requests_per_second
}

#[test]
fn apply_creates_configures_and_keeps_unchanged() {
    let store = PolicyStore::new();
    let id = PolicyId::new("payments", "checkout");
    let report = store
        .apply_bytes(policy(Some("payments"), "checkout", 100).as_bytes(), None)
        .unwrap();
    assert_eq!(report.generation, 1);
    assert_eq!(report.changes, vec![Change::Created(id.clone())]);

    let report = store
        .apply_bytes(policy(Some("payments"), "checkout", 100).as_bytes(), None)
        .unwrap();
    assert_eq!(report.generation, 1, "an identical apply changes nothing");
    assert_eq!(report.changes, vec![Change::Unchanged(id.clone())]);

    let report = store
        .apply_bytes(policy(Some("payments"), "checkout", 200).as_bytes(), None)
        .unwrap();
    assert_eq!(report.generation, 2);
    assert_eq!(report.changes, vec![Change::Configured(id.clone())]);
    assert!((rps(&store, &id) - 200.0).abs() < f64::EPSILON);
}

#[test]
fn invalid_apply_keeps_the_policy_in_force() {
    let store = PolicyStore::new();
    let id = PolicyId::new("payments", "checkout");
    store
        .apply_bytes(policy(Some("payments"), "checkout", 100).as_bytes(), None)
        .unwrap();
    let slot = store.slot(&id);

    let invalid = policy(Some("payments"), "checkout", 0);
    let err = store.apply_bytes(invalid.as_bytes(), None).unwrap_err();
    assert!(matches!(err, ApplyError::Invalid(_)), "{err}");
    assert!(
        err.to_string().contains("spec.rateLimit.requestsPerSecond"),
        "{err}"
    );
    for garbage in [&b""[..], b"\xff\xfe\x00garbage", b"apiVersion: [unclosed"] {
        assert!(store.apply_bytes(garbage, None).is_err());
    }

    assert_eq!(store.generation(), 1);
    assert!((rps(&store, &id) - 100.0).abs() < f64::EPSILON);
    assert_eq!(slot.load().as_ref().unwrap().generation(), 1);
    let status = store.status();
    assert_eq!(status.rejected, 4);
    assert_eq!(status.applied, 1);
    assert!(status.last_rejection.is_some());
}

#[test]
fn multi_document_apply_is_all_or_nothing() {
    let store = PolicyStore::new();
    let both = format!(
        "{}---\n{}",
        policy(None, "a", 10),
        policy(None, "b", 0) // invalid
    );
    assert!(store.apply_bytes(both.as_bytes(), Some("prod")).is_err());
    assert!(store.list().is_empty());
    assert_eq!(store.generation(), 0);

    let both = format!("{}---\n{}", policy(None, "a", 10), policy(None, "b", 20));
    let report = store.apply_bytes(both.as_bytes(), Some("prod")).unwrap();
    assert_eq!(report.generation, 1, "one apply, one generation");
    let ids: Vec<String> = store.list().iter().map(|p| p.id().to_string()).collect();
    assert_eq!(ids, ["prod/a", "prod/b"]);
}

#[test]
fn namespaces_are_filled_checked_and_defaulted() {
    let store = PolicyStore::new();
    let err = store
        .apply_bytes(
            policy(Some("payments"), "a", 10).as_bytes(),
            Some("production"),
        )
        .unwrap_err();
    assert!(matches!(err, ApplyError::NamespaceMismatch { .. }), "{err}");

    store
        .apply_bytes(policy(None, "a", 10).as_bytes(), None)
        .unwrap();
    assert!(store.get(&PolicyId::new("default", "a")).is_some());

    let dup = format!("{}---\n{}", policy(None, "a", 10), policy(None, "a", 20));
    let err = store.apply_bytes(dup.as_bytes(), Some("x")).unwrap_err();
    assert!(matches!(err, ApplyError::Duplicate(_)), "{err}");
}

#[test]
fn delete_empties_the_slot() {
    let store = PolicyStore::new();
    let id = PolicyId::new("default", "a");
    let slot = store.slot(&id);
    store
        .apply_bytes(policy(None, "a", 10).as_bytes(), None)
        .unwrap();
    assert!(slot.load().is_some());
    assert_eq!(store.delete(&id).changes, vec![Change::Deleted(id.clone())]);
    assert!(slot.load().is_none());
    assert_eq!(store.generation(), 2);
    assert!(store.delete(&id).changes.is_empty());
    assert_eq!(store.generation(), 2);
}

#[tokio::test]
async fn subscribers_see_each_change() {
    let store = PolicyStore::new();
    let mut slot = store.slot(&PolicyId::new("default", "a"));
    let mut generations = store.subscribe();
    let writer = store.clone();
    let task = tokio::spawn(async move {
        writer
            .apply_bytes(policy(None, "a", 10).as_bytes(), None)
            .unwrap();
    });
    let applied = slot.changed().await.unwrap().expect("applied");
    assert_eq!(applied.generation(), 1);
    generations.changed().await.unwrap();
    assert_eq!(*generations.borrow(), 1);
    task.await.unwrap();
}

#[test]
fn readers_never_see_a_torn_policy_while_writers_swap() {
    let store = PolicyStore::new();
    let id = PolicyId::new("default", "a");
    store
        .apply_bytes(policy(None, "a", 1).as_bytes(), None)
        .unwrap();
    let slot = store.slot(&id);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            for rps in 2..200 {
                store
                    .apply_bytes(policy(None, "a", rps).as_bytes(), None)
                    .unwrap();
            }
        });
        let mut last = 0;
        while !writer.is_finished() {
            let guard = slot.load();
            let applied = guard.as_ref().expect("never empty during swaps");
            assert!(applied.generation() >= last, "generations only grow");
            last = applied.generation();
        }
    });
    assert_eq!(store.generation(), 199);
}
