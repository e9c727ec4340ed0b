//! The response futures of [`RateLimit`](crate::RateLimit) and
//! [`ErroringRateLimit`](crate::ErroringRateLimit).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::error::IntoError;
use crate::gate::Shared;
use crate::prepared::Prepared;
use crate::response::Fields;
use crate::store::RateLimitStore;
use crate::{BoxError, service};

/// What a request waiting for a store's answer carries.
pub(crate) struct Waiting<S, St: RateLimitStore, B> {
    pub(crate) inner: S,
    pub(crate) request: Request<B>,
    pub(crate) prepared: Arc<Prepared<St::Limiter>>,
    pub(crate) shared: Arc<Shared<St>>,
}

impl<S, St: RateLimitStore, B> std::fmt::Debug for Waiting<S, St, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting").finish_non_exhaustive()
    }
}

pin_project! {
    /// The response future of [`RateLimit`](crate::RateLimit).
    pub struct ResponseFuture<S, St, B>
    where
        S: Service<Request<B>>,
        St: RateLimitStore,
    {
        #[pin]
        state: State<S, St, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, St, B>
    where
        S: Service<Request<B>>,
        St: RateLimitStore,
    {
        Inner { #[pin] future: S::Future, fields: Option<Fields> },
        Answered { response: Option<S::Response> },
        Waiting { decide: St::Future, rest: Option<Waiting<S, St, B>> },
    }
}

impl<S, St, B> ResponseFuture<S, St, B>
where
    S: Service<Request<B>>,
    St: RateLimitStore,
{
    pub(crate) fn inner(future: S::Future, fields: Option<Fields>) -> Self {
        Self {
            state: State::Inner { future, fields },
        }
    }

    pub(crate) fn answered(response: S::Response) -> Self {
        Self {
            state: State::Answered {
                response: Some(response),
            },
        }
    }

    pub(crate) fn waiting(decide: St::Future, rest: Waiting<S, St, B>) -> Self {
        Self {
            state: State::Waiting {
                decide,
                rest: Some(rest),
            },
        }
    }
}

impl<S, St, B, ResBody> Future for ResponseFuture<S, St, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    St: RateLimitStore,
    ResBody: Default,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Inner { future, fields } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(fields) = fields.take() {
                        fields.apply(response.headers_mut());
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Answered { response } => match response.take() {
                    Some(response) => return Poll::Ready(Ok(response)),
                    None => return Poll::Pending,
                },
                StateProj::Waiting { decide, rest } => {
                    let verdict = ready!(Pin::new(decide).poll(cx));
                    let Some(mut w) = rest.take() else {
                        return Poll::Pending;
                    };
                    let gate = w.shared.finish_later(&w.prepared, &w.request, verdict);
                    match service::http_answer(&w.shared, gate, &w.request) {
                        Ok(response) => State::Answered {
                            response: Some(response),
                        },
                        Err(fields) => State::Inner {
                            future: w.inner.call(w.request),
                            fields,
                        },
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

pin_project! {
    /// The response future of [`ErroringRateLimit`](crate::ErroringRateLimit).
    pub struct ErroringFuture<S, St, B>
    where
        S: Service<Request<B>>,
        St: RateLimitStore,
    {
        #[pin]
        state: TypedState<S, St, B>,
    }
}

pin_project! {
    #[project = TypedProj]
    enum TypedState<S, St, B>
    where
        S: Service<Request<B>>,
        St: RateLimitStore,
    {
        Inner { #[pin] future: S::Future },
        Failed { error: Option<BoxError> },
        Waiting { decide: St::Future, rest: Option<Waiting<S, St, B>>, into_error: IntoError },
    }
}

impl<S, St, B> ErroringFuture<S, St, B>
where
    S: Service<Request<B>>,
    St: RateLimitStore,
{
    pub(crate) fn inner(future: S::Future) -> Self {
        Self {
            state: TypedState::Inner { future },
        }
    }

    pub(crate) fn failed(error: BoxError) -> Self {
        Self {
            state: TypedState::Failed { error: Some(error) },
        }
    }

    pub(crate) fn waiting(
        decide: St::Future,
        rest: Waiting<S, St, B>,
        into_error: IntoError,
    ) -> Self {
        Self {
            state: TypedState::Waiting {
                decide,
                rest: Some(rest),
                into_error,
            },
        }
    }
}

impl<S, St, B> Future for ErroringFuture<S, St, B>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    St: RateLimitStore,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                TypedProj::Inner { future } => {
                    return Poll::Ready(ready!(future.poll(cx)).map_err(Into::into));
                }
                TypedProj::Failed { error } => match error.take() {
                    Some(error) => return Poll::Ready(Err(error)),
                    None => return Poll::Pending,
                },
                TypedProj::Waiting {
                    decide,
                    rest,
                    into_error,
                } => {
                    let verdict = ready!(Pin::new(decide).poll(cx));
                    let Some(mut w) = rest.take() else {
                        return Poll::Pending;
                    };
                    let gate = w.shared.finish_later(&w.prepared, &w.request, verdict);
                    match service::typed_error(&w.prepared, &gate) {
                        Some(error) => TypedState::Failed {
                            error: Some((*into_error)(error)),
                        },
                        None => TypedState::Inner {
                            future: w.inner.call(w.request),
                        },
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

impl<S: Service<Request<B>>, St: RateLimitStore, B> std::fmt::Debug for ResponseFuture<S, St, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S: Service<Request<B>>, St: RateLimitStore, B> std::fmt::Debug for ErroringFuture<S, St, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErroringFuture").finish_non_exhaustive()
    }
}
