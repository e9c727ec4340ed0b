//! FluxGate's load balancer: weighted and latency/error-adaptive selection over a changing set of
//! endpoints, with active health checks and passive draining.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod call;
mod endpoint;
pub mod error;
mod eval;
pub mod future;
mod handle;
pub mod health;
mod http503;
mod orca;
mod select;
mod service;
mod shared;

pub use endpoint::Weighted;
pub use error::{BalanceError, is_no_healthy_endpoints};
pub use handle::{BalanceHandle, DrainReason, EndpointSnapshot, Health};
pub use health::HealthTask;
pub use http503::{Http503, Http503Future, Http503Layer};
pub use service::{Balance, Static};
