//! FluxGate's rate limit layer: keyed limits per client IP and per API key, with a local store and
//! a Redis store shared by gateway replicas.
//!
//! This crate is being built; its policy section (`spec.rateLimit`) is already parsed and
//! validated by [`fluxgate_core::policy`].
