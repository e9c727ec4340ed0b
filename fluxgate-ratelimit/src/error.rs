//! The errors of the rate limit layer.

use std::time::Duration;

/// Why a request did not get through the typed ([`TypedRateLimit`](crate::TypedRateLimit))
/// variant, or why a layer could not be built.
///
/// At the service boundary it is boxed as `tower::BoxError`; downcast to read it.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_ratelimit::RateLimitError;
///
/// let error = RateLimitError::Limited { limit: "per-key".into(), retry_after: Duration::from_secs(2) };
/// assert_eq!(error.to_string(), "rate limited by `per-key`, retry after 2s");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// A limit refused the request.
    #[error("rate limited by `{limit}`, retry after {}s", crate::quota::ceil_secs(*retry_after))]
    Limited {
        /// The refusing limit's name (`limit-N` for an unnamed limit at position N).
        limit: String,
        /// The earliest time a request would be admitted.
        retry_after: Duration,
    },
    /// The request has no key, and its limit rejects such requests (`missingKey: reject`).
    #[error("the request has no `{0}` key")]
    MissingKey(String),
    /// The request's key is longer than the extractor's maximum.
    #[error("the request's `{0}` key is too long")]
    KeyTooLong(String),
    /// The rate limits given to a builder are not a valid policy section.
    #[error("invalid rate limits: {0}")]
    InvalidPolicy(#[source] fluxgate_core::policy::PolicyErrors),
}
