//! Simulations of FluxGate's balancer on tokio's paused clock: `balance_tail` (tail latency per
//! algorithm over simulated endpoints) and `balance_reaction` (time to drain a failing endpoint).
//!
//! Run with `cargo run --release -p fluxgate-sim --bin balance_tail` (or `balance_reaction`).
