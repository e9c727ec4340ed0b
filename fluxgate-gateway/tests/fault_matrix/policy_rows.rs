//! Policy-source rows: the file flapping between valid and invalid saves, and the writes a full
//! disk leaves behind (a truncated file, an empty one, a missing one).

use std::time::Duration;

use super::process::{Process, limited_policy};
use super::redis_rows::{HELD, probe};
use super::support::gateway::Named;

const INVALID: &str =
    "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {name: shop\n";

fn rejected(status: &serde_json::Value) -> u64 {
    status["store"]["rejected"].as_u64().unwrap_or(0)
}

/// Waits until the gateway has rejected more saves than `before`.
async fn rejected_after(gateway: &Process, before: u64) {
    super::process::eventually(
        "the invalid save rejected",
        Duration::from_secs(5),
        || async { rejected(&gateway.status().await) > before },
    )
    .await;
}

/// The policy file flapping (valid and invalid saves alternating every 20ms, ending invalid):
/// clients are served throughout under the last valid save the gateway read (a burst of 3
/// here, not the first policy's 1000); the invalid saves are counted in `store.rejected` and
/// `fluxgate_policy_applies_total{result="rejected"}`, the last one in `store.lastRejection`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_file_flapping_keeps_the_last_valid_save() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Named::start("up").await;
    let upstream = format!("http://127.0.0.1:{}", upstream.port());
    let gateway = Process::start(dir.path(), &limited_policy(1000), &upstream, &[]);
    for i in 0..15 {
        std::fs::write(&gateway.policy, limited_policy(100 + i)).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        std::fs::write(&gateway.policy, INVALID).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The last valid save stays long enough to be read (past the watcher's debounce).
    std::fs::write(&gateway.policy, limited_policy(3)).unwrap();
    super::process::eventually(
        "the last valid save applied",
        Duration::from_secs(5),
        || async { probe(&gateway, &format!("c{}", rand_id())).await == HELD },
    )
    .await;
    let before = rejected(&gateway.status().await);
    std::fs::write(&gateway.policy, INVALID).unwrap();
    rejected_after(&gateway, before).await;
    assert_eq!(probe(&gateway, "after-flap").await, HELD);
    let status = gateway.status().await;
    assert!(
        status["store"]["lastRejection"]["message"].is_string(),
        "{status}"
    );
    let counted = gateway
        .metric("fluxgate_policy_applies_total", &["result=\"rejected\""])
        .await;
    assert!(counted >= 1.0, "{counted}");
}

fn rand_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The disk full under the policy folder: a save cut short (truncated mid-document), then an
/// empty file (the write that truncated it failed), then the file gone: the policy in force
/// stays (a fresh client: 3 admitted, the 4th `429`) after each; each of the three is refused and
/// counted in `store.rejected` and `fluxgate_policy_applies_total{result="rejected"}` (the
/// missing file as `store.lastRejection` "cannot read …"), nothing is removed (`store.removed`
/// stays 0). A full save afterwards applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_disk_full_keeps_the_policy_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Named::start("up").await;
    let upstream = format!("http://127.0.0.1:{}", upstream.port());
    let gateway = Process::start(dir.path(), &limited_policy(3), &upstream, &[]);
    assert_eq!(probe(&gateway, "start").await, HELD);

    let whole = limited_policy(3);
    let cut = &whole[..whole.len() - 30];
    let before = rejected(&gateway.status().await);
    std::fs::write(&gateway.policy, cut).unwrap();
    rejected_after(&gateway, before).await;
    assert_eq!(
        probe(&gateway, "truncated").await,
        HELD,
        "{}",
        gateway.log()
    );

    // The write that cut the file found no room at all: empty.
    std::fs::write(&gateway.policy, "").unwrap();
    rejected_after(&gateway, before + 1).await;
    assert_eq!(probe(&gateway, "empty").await, HELD, "{}", gateway.log());

    std::fs::remove_file(&gateway.policy).unwrap();
    rejected_after(&gateway, before + 2).await;
    let status = gateway.status().await;
    assert_eq!(probe(&gateway, "missing").await, HELD, "{status}");
    assert_eq!(status["store"]["removed"], 0, "{status}");
    let message = status["store"]["lastRejection"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("cannot read"), "{status}");

    std::fs::write(&gateway.policy, limited_policy(1)).unwrap();
    super::process::eventually(
        "a full save applied again",
        Duration::from_secs(5),
        || async {
            let statuses = probe(&gateway, &format!("c{}", rand_id())).await;
            statuses[1] == http::StatusCode::TOO_MANY_REQUESTS
        },
    )
    .await;
}
