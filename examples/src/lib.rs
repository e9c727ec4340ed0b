//! Small runnable examples of FluxGate's layers, in `examples/`: `axum_layers`, `hyper_gateway`
//! and `tonic_client` (`cargo run -p fluxgate-examples --example NAME`).
//!
//! The gateway itself is the `fluxgate-gateway` crate and its `fluxgate` binary.
