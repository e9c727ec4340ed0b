//! FluxGate's gateway: a reverse proxy driven by `TrafficPolicy` documents, as a library and as
//! the `fluxgate` binary (`cargo install --path fluxgate-gateway`; with no arguments it runs a
//! self-contained demo).
//!
//! The parts, each usable on its own:
//!
//! - [`proxy`]: a streaming reverse proxy to one upstream, as a tower service (the
//!   `fluxgate-proxy` crate, re-exported);
//! - [`stack`]: the whole request path (rate limit, canary, balancers, proxies) from a policy;
//! - [`upstream`]: upstream URLs and `URL,weight=N` arguments (from `fluxgate-proxy`);
//! - [`discovery`]: upstreams named by DNS, an endpoint per address, resolved again periodically;
//! - [`server`]: an HTTP/1.1 + HTTP/2 (h2c, or TLS with ALPN) accept loop with graceful shutdown
//!   for any tower service;
//! - [`tls`]: rustls configurations for `https://` upstreams and TLS clients;
//! - [`demo`]: in-process demo upstreams (fast, slow and a canary that can be told to fail);
//! - [`kube`] (feature `kube`, on by default): following `TrafficPolicy` objects in Kubernetes
//!   and writing their status;
//! - [`policy`]: loading the `TrafficPolicy` file (or the bundled demo policy);
//! - [`redis`]: following policies and sharing rate limits in Redis, joined when it answers;
//! - [`front`]: the door every request takes (strict HTTP, [`request_id`], a tracing span, the
//!   [`access_log`]); [`strict`]: the checks that answer `400`;
//! - [`lifecycle`]: readiness, signals and the drain of a graceful shutdown;
//! - [`watched`]: a body that tells how it ended (whole, failed, dropped).
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod access_log;
pub mod demo;
pub mod discovery;
pub mod front;
#[cfg(feature = "kube")]
pub mod kube;
pub mod lifecycle;
pub mod policy;
mod probe;
pub use fluxgate_proxy as proxy;
pub mod redis;
pub mod request_id;
mod respond;
pub mod server;
pub mod stack;
pub mod strict;
pub mod tls;
pub mod upstream;
pub mod watched;
