//! The policy model, the policy store and the primitives that every FluxGate layer shares.
//!
//! `fluxgate-core` has no tower services of its own. It holds what the balance, rate-limit and
//! canary layers agree on:
//!
//! - [`policy`]: the `TrafficPolicy` document (`apiVersion: fluxgate.io/v1beta1`), its parsing
//!   from YAML or JSON, its validation with field paths and lines, and its compiled form;
//! - [`store`]: the policies in force, swapped atomically, with change notification and sources that
//!   feed them: a file, Redis (feature `redis`) and Kubernetes `TrafficPolicy` objects (feature
//!   `kube`; the CRD is generated from the model's types). The Kubernetes source is tested against
//!   a scripted API server (kube's mock-service testing pattern), not against a real cluster;
//! - [`window`], [`quantile`], [`ewma`]: counts, latency quantiles and moving averages over time;
//! - [`outcome`]: how a response or an error is classified (success, failure, overload);
//! - [`key`]: how a request is turned into a rate-limit or stickiness key;
//! - [`host`]: a `Host` header checked in place, without building a URI; [`arena`]: header
//!   values written per request without an allocation each;
//! - [`api`]: the JSON documents of a gateway's admin API (`/api/status`), shared by the server
//!   and `fluxctl`;
//! - [`task`]: [`TaskHandle`](task::TaskHandle), the one lifecycle of every background task
//!   (dropping the handle stops the task), and [`BoxError`], the one boxed error type.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod api;
pub mod arena;
pub mod clock;
pub mod deadline;
pub mod ewma;
pub mod host;
pub mod key;
pub mod outcome;
pub mod policy;
pub mod quantile;
mod ring;
pub mod store;
pub mod stripe;
pub mod task;
pub mod window;

/// The boxed error every FluxGate crate uses where an error type is erased (the same type as
/// `tower::BoxError`).
///
/// ```
/// let error: fluxgate_core::BoxError = "no endpoint".into();
/// assert_eq!(error.to_string(), "no endpoint");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
