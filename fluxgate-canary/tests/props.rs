//! Property: as a sticky canary's weight rises, no client ever moves back from canary to stable.

mod support;

use fluxgate_canary::{Canary, Judge};
use fluxgate_core::store::{PolicyId, PolicyStore};
use http::Request;
use proptest::prelude::*;
use support::{Backend, Router, send, yaml};

/// Each client's side at each weight of a rising sequence, sticky on `x-client-id`.
async fn sides(clients: &[String], weights: &[u8]) -> Vec<Vec<&'static str>> {
    let store = PolicyStore::new();
    let slot = store.slot(&PolicyId::new("t", "web"));
    let (r, judge): (Router, Judge) =
        Canary::new(Backend::new("stable"), Backend::new("canary"), slot).unwrap();
    judge.spawn().detach();
    let mut rounds = Vec::new();
    for weight in weights {
        let spec = format!("{{weight: {weight}, stickyKey: header.x-client-id}}");
        store.apply_bytes(yaml(&spec).as_bytes(), None).unwrap();
        let mut round = Vec::new();
        for client in clients {
            let request = Request::get("/")
                .header("x-client-id", client.as_str())
                .body(())
                .unwrap();
            round.push(send(&r, request).await.unwrap());
        }
        rounds.push(round);
    }
    rounds
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn rising_weight_never_moves_a_client_back_to_stable(
        clients in proptest::collection::vec("[a-zA-Z0-9._~-]{1,24}", 1..200),
        mut weights in proptest::collection::vec(0u8..=100, 1..8),
    ) {
        weights.sort_unstable();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let rounds = runtime.block_on(sides(&clients, &weights));
        for (i, pair) in rounds.windows(2).enumerate() {
            for (c, (before, after)) in pair[0].iter().zip(&pair[1]).enumerate() {
                prop_assert!(
                    !(*before == "canary" && *after == "stable"),
                    "client {:?} moved back to stable going from weight {} to {}",
                    clients[c], weights[i], weights[i + 1]
                );
            }
        }
        // At 0 nobody is on the canary, and at 100 everybody is.
        for (round, weight) in rounds.iter().zip(&weights) {
            if *weight == 0 {
                prop_assert!(round.iter().all(|s| *s == "stable"));
            }
            if *weight == 100 {
                prop_assert!(round.iter().all(|s| *s == "canary"));
            }
        }
    }
}
