//! The reusable parts of FluxGate's gateway example.
//!
//! - [`proxy`]: a streaming reverse proxy to one upstream, as a tower service;
//! - [`stack`]: the whole request path (rate limit, canary, balancers, proxies) from a policy;
//! - [`upstream`]: upstream URLs and `URL,weight=N` arguments;
//! - [`server`]: an HTTP/1.1 + h2c accept loop with graceful shutdown for any tower service;
//! - [`demo`]: in-process demo upstreams (fast, slow and a canary that can be told to fail);
//! - [`policy`]: loading the `TrafficPolicy` file.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod demo;
pub mod policy;
pub mod proxy;
mod respond;
pub mod server;
pub mod stack;
pub mod upstream;
