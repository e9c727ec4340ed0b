//! FluxGate: tower middleware for API gateways.
//!
//! This is the one dependency a user adds. It re-exports the FluxGate crates behind features:
//!
//! | feature | crate or module | default |
//! | --- | --- | --- |
//! | (always) | [`core`] (`fluxgate-core`): policies, policy store, shared primitives | yes |
//! | `balance` | `balance` (`fluxgate-balance`) | yes |
//! | `ratelimit` | `ratelimit` (`fluxgate-ratelimit`) | yes |
//! | `canary` | `canary` (`fluxgate-canary`) | yes |
//! | `admin` | `admin`: the admin API as an axum `Router` (status, metrics, apply, canary actions) | no |
//! | `redis` | `core::store::RedisSource` and `RedisPolicies`: policies shared through Redis | no |
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use fluxgate_core as core;

#[cfg(feature = "admin")]
pub mod admin;
#[cfg(feature = "balance")]
pub use fluxgate_balance as balance;
#[cfg(feature = "canary")]
pub use fluxgate_canary as canary;
#[cfg(feature = "ratelimit")]
pub use fluxgate_ratelimit as ratelimit;

/// The README's examples, compiled and run as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
