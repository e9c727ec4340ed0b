//! Property tests over the whole request path, with endpoint states set directly.

use std::convert::Infallible;
use std::sync::atomic::Ordering;

use fluxgate_core::policy::{BalanceAlgorithm, LoadBalancing, OutlierDetection};
use proptest::prelude::*;
use tower::{Service, ServiceExt};

use crate::endpoint::{ACTIVE, EJECTED, REASON_ERRORS};
use crate::{Balance, BalanceError, Weighted};

type Req = http::Request<()>;

const ALGORITHMS: [BalanceAlgorithm; 5] = [
    BalanceAlgorithm::WeightedRoundRobin,
    BalanceAlgorithm::RoundRobin,
    BalanceAlgorithm::LeastRequest,
    BalanceAlgorithm::PeakEwma,
    BalanceAlgorithm::Adaptive,
];

/// An endpoint that answers with its own index.
fn endpoint(
    index: usize,
    weight: u32,
) -> Weighted<impl Service<Req, Response = http::Response<usize>, Error = Infallible> + Clone> {
    Weighted::new(
        tower::service_fn(move |_: Req| async move { Ok(http::Response::new(index)) }),
        weight,
    )
}

/// `(healthy, drained)` of one endpoint.
type State = (bool, bool);

fn set_states<D: tower::discover::Discover>(balance: &Balance<D, Req>, states: &[State]) {
    for (slot, &(healthy, drained)) in balance.core.table.load().slots.iter().zip(states) {
        let s = &slot.state;
        s.healthy.store(healthy, Ordering::Release);
        if drained {
            s.reason.store(REASON_ERRORS, Ordering::Relaxed);
            s.ejected_until.store(u64::MAX, Ordering::Relaxed);
            s.passive.store(EJECTED, Ordering::Release);
        } else {
            s.ejected_until.store(0, Ordering::Relaxed);
            s.passive.store(ACTIVE, Ordering::Release);
        }
    }
    balance.core.shared.mark_dirty();
}

fn states(n: usize) -> impl Strategy<Value = Vec<State>> {
    proptest::collection::vec(
        (proptest::bool::weighted(0.6), proptest::bool::weighted(0.3)),
        n,
    )
}

/// Endpoint weights, then two rounds of states for them.
fn cases() -> impl Strategy<Value = (Vec<u32>, Vec<State>, Vec<State>)> {
    proptest::collection::vec(1u32..=10, 1..=8).prop_flat_map(|weights| {
        let n = weights.len();
        (Just(weights), states(n), states(n))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the algorithm and the mix of unhealthy and drained endpoints, every request
    /// goes to an endpoint that is healthy and not drained; with none, the call fails at once
    /// with `NoHealthyEndpoints`. The states change once in the middle of the run.
    #[test]
    fn never_selects_a_drained_or_unhealthy_endpoint(
        (weights, first, second) in cases(),
        outlier_detection in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
        for algorithm in ALGORITHMS {
            let mut policy = LoadBalancing::default();
            policy.algorithm = algorithm;
            policy.outlier_detection = outlier_detection.then(OutlierDetection::default);
            let endpoints = weights.iter().enumerate().map(|(i, &w)| (i, endpoint(i, w)));
            let mut balance = Balance::<_, Req>::new(policy, endpoints);
            for states in [&first, &second] {
                set_states(&balance, states);
                let eligible = |i: usize| states[i].0 && !states[i].1;
                let any = (0..states.len()).any(eligible);
                for i in 0..3 * weights.len() + 20 {
                    // Every other request through a fresh clone, as a server clones per request.
                    let result = rt.block_on(async {
                        if i % 2 == 0 {
                            balance.ready().await?.call(http::Request::new(())).await
                        } else {
                            balance.clone().oneshot(http::Request::new(())).await
                        }
                    });
                    match result {
                        Ok(response) => {
                            let served = *response.body();
                            prop_assert!(any, "{algorithm:?}: served by {served} with none eligible");
                            prop_assert!(eligible(served), "{algorithm:?}: served by {served}, {states:?}");
                        }
                        Err(error) => {
                            prop_assert!(!any, "{algorithm:?}: {error} with an eligible endpoint");
                            prop_assert!(matches!(
                                error.downcast_ref(),
                                Some(BalanceError::NoHealthyEndpoints)
                            ));
                        }
                    }
                }
            }
        }
    }
}
