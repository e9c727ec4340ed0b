//! The reusable parts of FluxGate's gateway example.
//!
//! - [`proxy`]: a streaming reverse proxy to one upstream, as a tower service;
//! - [`rotation`]: a smooth weighted rotation over services (a stand-in for FluxGate's balancer);
//! - [`upstream`]: upstream URLs and `URL,weight=N` arguments;
//! - [`server`]: an HTTP/1.1 + h2c accept loop with graceful shutdown for any tower service;
//! - [`demo`]: in-process demo upstreams (fast, slow and a canary that can be told to fail);
//! - [`admin`]: the gateway's admin endpoints (`/healthz`, `/api/status`);
//! - [`policy`]: loading the `TrafficPolicy` file.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod admin;
pub mod demo;
pub mod policy;
pub mod proxy;
mod respond;
pub mod rotation;
pub mod server;
pub mod upstream;
