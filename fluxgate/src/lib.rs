#![doc = include_str!("docs/guide.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// What every layer shares, from `fluxgate-core`: the policy model and its store, keys, outcomes,
/// windows, the task handle and the boxed error.
pub use fluxgate_core::{
    BoxError, api, clock, ewma, key, outcome, policy, quantile, store, task, window,
};

#[cfg(feature = "admin")]
pub mod admin;
#[cfg(feature = "balance")]
pub use fluxgate_balance as balance;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "canary")]
pub use fluxgate_canary as canary;
#[cfg(feature = "proxy")]
pub use fluxgate_proxy as proxy;
#[cfg(feature = "ratelimit")]
pub use fluxgate_ratelimit as ratelimit;
#[cfg(feature = "stack")]
pub mod stack;

/// The README's examples, compiled and run as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
