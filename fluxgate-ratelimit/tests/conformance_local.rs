//! The store conformance suite, run on the local store.

use fluxgate_ratelimit::conformance;
use fluxgate_ratelimit::store::{AnyStore, LocalStore};

#[tokio::test(start_paused = true)]
async fn local_store_conforms() {
    conformance::run_all(LocalStore::new).await;
}

#[tokio::test(start_paused = true)]
async fn small_local_store_conforms() {
    conformance::run_all(|| LocalStore::builder().max_keys(64).build()).await;
}

#[tokio::test(start_paused = true)]
async fn any_store_over_local_conforms() {
    conformance::run_all(|| AnyStore::from(LocalStore::new())).await;
}
