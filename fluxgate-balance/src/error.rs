//! Errors of the balancer.

use tower::BoxError;

/// Why the balancer could not forward a request.
///
/// At the [`Service`](tower_service::Service) boundary it is boxed as a [`BoxError`]; downcast to
/// tell it apart from the endpoint's own errors. [`is_no_healthy_endpoints`] does that for the
/// common case, and [`RespondUnavailable`](crate::RespondUnavailable) turns it into a `503 Service Unavailable` response.
///
/// ```
/// use fluxgate_balance::BalanceError;
///
/// let err: tower::BoxError = BalanceError::NoHealthyEndpoints.into();
/// assert!(matches!(err.downcast_ref(), Some(BalanceError::NoHealthyEndpoints)));
/// assert_eq!(err.to_string(), "no healthy endpoint to send the request to");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BalanceError {
    /// Every endpoint is unhealthy, drained or removed (or there are none yet): the request
    /// failed at once instead of waiting.
    #[error("no healthy endpoint to send the request to")]
    NoHealthyEndpoints,
    /// `call` was made without a successful `poll_ready` before it (a broken `Service`
    /// contract on the caller's side).
    #[error("the balancer was called without being ready")]
    NotReady,
    /// The discovery stream failed; the balancer cannot learn about endpoints any more.
    #[error("endpoint discovery failed")]
    Discover(#[source] BoxError),
}

/// Whether `err` is (or is caused by) [`BalanceError::NoHealthyEndpoints`].
///
/// ```
/// use fluxgate_balance::{is_no_healthy_endpoints, BalanceError};
///
/// let err: tower::BoxError = BalanceError::NoHealthyEndpoints.into();
/// assert!(is_no_healthy_endpoints(&*err));
/// let other: tower::BoxError = "boom".into();
/// assert!(!is_no_healthy_endpoints(&*other));
/// ```
#[must_use]
pub fn is_no_healthy_endpoints(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if matches!(e.downcast_ref(), Some(BalanceError::NoHealthyEndpoints)) {
            return true;
        }
        next = e.source();
    }
    false
}
