//! The errors of the rate limit layer.

use std::time::Duration;

/// Why a request did not get through the typed ([`ErroringRateLimit`](crate::ErroringRateLimit))
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

/// The gRPC status of a refusal, for tonic (feature `tonic`): `RESOURCE_EXHAUSTED` for
/// [`Limited`](RateLimitError::Limited), with the delay in the metadata as `retry-after` (whole
/// seconds, rounded up, as the HTTP header) and `grpc-retry-pushback-ms` (milliseconds, the gRPC
/// retry pushback); `INVALID_ARGUMENT` for a missing or oversized key; `INTERNAL` for an invalid
/// policy. The error stays reachable as the status's `source()`.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_ratelimit::RateLimitError;
///
/// let error = RateLimitError::Limited { limit: "per-key".into(), retry_after: Duration::from_millis(1500) };
/// let status = tonic::Status::from(error);
/// assert_eq!(status.code(), tonic::Code::ResourceExhausted);
/// assert_eq!(status.metadata().get("retry-after").unwrap(), "2");
/// assert_eq!(status.metadata().get("grpc-retry-pushback-ms").unwrap(), "1500");
/// let source = std::error::Error::source(&status).unwrap();
/// assert!(matches!(source.downcast_ref(), Some(RateLimitError::Limited { .. })));
/// ```
#[cfg(feature = "tonic")]
impl From<RateLimitError> for tonic::Status {
    fn from(error: RateLimitError) -> Self {
        use tonic::metadata::{MetadataMap, MetadataValue};
        let mut metadata = MetadataMap::new();
        let code = match &error {
            RateLimitError::Limited { retry_after, .. } => {
                let secs = crate::quota::ceil_secs(*retry_after);
                let millis = crate::response::ceil_millis(*retry_after);
                metadata.insert("retry-after", MetadataValue::from(secs));
                metadata.insert("grpc-retry-pushback-ms", MetadataValue::from(millis));
                tonic::Code::ResourceExhausted
            }
            RateLimitError::MissingKey(_) | RateLimitError::KeyTooLong(_) => {
                tonic::Code::InvalidArgument
            }
            RateLimitError::InvalidPolicy(_) => tonic::Code::Internal,
        };
        let mut status = Self::with_metadata(code, error.to_string(), metadata);
        status.set_source(std::sync::Arc::new(error));
        status
    }
}

/// How the erroring variant turns a [`RateLimitError`] into its error (boxed as it is, or as a
/// `tonic::Status`).
pub(crate) type IntoError = fn(RateLimitError) -> crate::BoxError;
