//! FluxGate's load balancer: weighted and latency/error-adaptive selection over a changing set of
//! endpoints, with active health checks and passive draining.
//!
//! This crate is being built; its policy section (`spec.loadBalancing`) is already parsed and
//! validated by [`fluxgate_core::policy`].
