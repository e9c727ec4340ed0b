//! Helpers shared by the policy file tests.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::time::Duration;

use fluxgate_core::store::PolicyStore;
use tokio::time::timeout;

/// Writes the way editors do: a new file renamed over the old one.
pub fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Waits until the store reaches `generation` (10 seconds at most).
pub async fn wait_generation(store: &PolicyStore, generation: u64) {
    let mut changes = store.subscribe();
    timeout(
        Duration::from_secs(10),
        changes.wait_for(|g| *g >= generation),
    )
    .await
    .expect("the save was applied in time")
    .unwrap();
}
