//! FluxGate's rate limit layer: keyed limits per client IP, API key, cookie or query parameter,
//! decided per request, answered with `429 Too Many Requests` (or gRPC `RESOURCE_EXHAUSTED`).
#![doc = include_str!("docs/overview.md")]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod core;
mod error;
pub mod future;
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
pub use layer::{RateLimitLayer, RateLimitLayerBuilder, TypedRateLimitLayer};
pub use metrics::{LimitSnapshot, MetricsSnapshot};
pub use quota::{MAX_WINDOW_COUNT, Quota};
pub use response::{RATELIMIT, RATELIMIT_POLICY};
pub use service::{RateLimit, TypedRateLimit};

/// The boxed error of [`TypedRateLimit`] (tower's convention).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
