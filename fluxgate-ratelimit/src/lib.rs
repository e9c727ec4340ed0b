//! FluxGate's rate limit layer: keyed limits per client IP, API key, cookie or query parameter,
//! decided per request, answered with `429 Too Many Requests` (or gRPC `RESOURCE_EXHAUSTED`).
#![doc = include_str!("docs/overview.md")]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod error;
pub mod future;
mod gate;
mod layer;
mod metrics;
mod prepared;
mod quota;
mod response;
mod service;
pub mod store;

#[cfg(feature = "test-support")]
pub mod conformance;

pub use error::RateLimitError;
pub use layer::{ErroringRateLimitLayer, RateLimitLayer, RateLimitLayerBuilder};
pub use metrics::{LimitSnapshot, MetricsSnapshot};
pub use quota::{MAX_WINDOW_COUNT, Quota};
pub use response::{RATELIMIT, RATELIMIT_POLICY};
pub use service::{ErroringRateLimit, RateLimit};

/// The boxed error type, [`fluxgate_core::BoxError`] (the same type as `tower::BoxError`).
pub use fluxgate_core::BoxError;
