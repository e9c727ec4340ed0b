//! FluxGate's gateway: a reverse proxy driven by `TrafficPolicy` documents, as a library and as
//! the `fluxgate` binary (`cargo install --path fluxgate-gateway`; with no arguments it runs a
//! self-contained demo).
//!
//! The parts, each usable on its own:
//!
//! - [`proxy`]: a streaming reverse proxy to one upstream, as a tower service;
//! - [`stack`]: the whole request path (rate limit, canary, balancers, proxies) from a policy;
//! - [`upstream`]: upstream URLs and `URL,weight=N` arguments;
//! - [`server`]: an HTTP/1.1 + h2c accept loop with graceful shutdown for any tower service;
//! - [`demo`]: in-process demo upstreams (fast, slow and a canary that can be told to fail);
//! - [`policy`]: loading the `TrafficPolicy` file (or the bundled demo policy);
//! - [`front`]: the door every request takes (strict HTTP, [`request_id`], a tracing span, the
//!   [`access_log`]); [`strict`]: the checks that answer `400`;
//! - [`lifecycle`]: readiness, signals and the drain of a graceful shutdown;
//! - [`watched`]: a body that tells how it ended (whole, failed, dropped).
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod access_log;
pub mod demo;
pub mod front;
pub mod lifecycle;
pub mod policy;
pub mod proxy;
pub mod request_id;
mod respond;
pub mod server;
pub mod stack;
pub mod strict;
pub mod upstream;
pub mod watched;
