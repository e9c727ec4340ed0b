//! The response future of [`Proxy`](crate::Proxy).
//!
//! Upstream failures are logged at `debug`, once per request: at `warn`, an upstream outage
//! would write a line per request (STYLE habit 22, `SECURITY.md` "Log hygiene"); the balancer's
//! health state and the status codes clients get are what operators watch.

use std::convert::Infallible;
use std::error::Error as _;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use fluxgate_balance::RetryableRequest;
use http::uri::Authority;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy;
use tokio::time::Timeout;

use crate::h1::Http1Error;
use crate::pool::SendError;
use crate::{ProxyBody, headers, text_response};

pin_project_lite::pin_project! {
    /// The future of a proxied response: the upstream's response, or a 400, 502 or 504 answer.
    ///
    /// ```
    /// use fluxgate_proxy::{Proxy, ProxyConfig, ResponseFuture, proxy_client};
    /// use tower_service::Service;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let upstream = "http://127.0.0.1:9".parse().unwrap();
    /// let mut proxy = Proxy::new(proxy_client(), upstream, ProxyConfig::default());
    /// let request = http::Request::new(http_body_util::Empty::<bytes::Bytes>::new());
    /// let _future: ResponseFuture = proxy.call(request);
    /// # }
    /// ```
    pub struct ResponseFuture {
        #[pin]
        kind: Kind,
    }
}

/// A request on the proxy's own HTTP/1.1 connections, until its response head.
pub(crate) type PooledSend =
    Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, SendError>> + Send>>;

/// Makes the [`RetryableRequest`] of a request without a body or with a whole one: sent
/// (`true`) or not.
pub(crate) type GiveBack = Box<dyn FnOnce(bool) -> RetryableRequest + Send>;

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind {
        Ready { response: Option<Response<ProxyBody>> },
        Forward {
            #[pin]
            inner: Timeout<legacy::ResponseFuture>,
            upstream: Authority,
            timeout: Duration,
            // Gives a request without a body back on a connection failure.
            retry: Option<GiveBack>,
        },
        Pooled {
            #[pin]
            inner: Timeout<PooledSend>,
            upstream: Authority,
            timeout: Duration,
            retry: Option<GiveBack>,
        },
        // The own exchange: it keeps its own (coarse) deadline.
        Exchange {
            #[pin]
            inner: PooledSend,
            upstream: Authority,
            timeout: Duration,
            retry: Option<GiveBack>,
        },
    }
}

impl ResponseFuture {
    pub(crate) fn ready(response: Response<ProxyBody>) -> Self {
        let response = Some(response);
        Self {
            kind: Kind::Ready { response },
        }
    }

    pub(crate) fn forward(
        inner: Timeout<legacy::ResponseFuture>,
        upstream: Authority,
        timeout: Duration,
    ) -> Self {
        Self {
            kind: Kind::Forward {
                inner,
                upstream,
                timeout,
                retry: None,
            },
        }
    }

    pub(crate) fn pooled(
        inner: Timeout<PooledSend>,
        upstream: Authority,
        timeout: Duration,
    ) -> Self {
        Self {
            kind: Kind::Pooled {
                inner,
                upstream,
                timeout,
                retry: None,
            },
        }
    }

    pub(crate) fn exchange(inner: PooledSend, upstream: Authority, timeout: Duration) -> Self {
        Self {
            kind: Kind::Exchange {
                inner,
                upstream,
                timeout,
                retry: None,
            },
        }
    }

    /// Keeps `give_back` (of a request without a body or with a whole one) to give it back with
    /// a `502`, as a [`RetryableRequest`]: not sent when the connection could not be made, sent
    /// otherwise.
    pub(crate) fn with_retry(mut self, give_back: Option<GiveBack>) -> Self {
        if let Kind::Forward { retry, .. }
        | Kind::Pooled { retry, .. }
        | Kind::Exchange { retry, .. } = &mut self.kind
        {
            *retry = give_back;
        }
        self
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ProxyBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match self.project().kind.project() {
            KindProj::Ready { response } => response.take().unwrap_or_else(|| {
                text_response(StatusCode::INTERNAL_SERVER_ERROR, "polled after completion")
            }),
            KindProj::Forward {
                inner,
                upstream,
                timeout,
                retry,
            } => match ready!(inner.poll(cx)) {
                Ok(Ok(response)) => {
                    let (mut parts, body) = response.into_parts();
                    headers::remove_hop_by_hop(&mut parts.headers);
                    Response::from_parts(parts, body.map_err(Into::into).boxed_unsync())
                }
                Ok(Err(error)) => {
                    tracing::debug!(%upstream, error = %Chain(&error), "upstream failed, answering 502");
                    let mut response = text_response(
                        StatusCode::BAD_GATEWAY,
                        "the upstream refused or closed the connection",
                    );
                    if let Some(give_back) = retry.take() {
                        let sent = !error.is_connect();
                        response.extensions_mut().insert(give_back(sent));
                    }
                    response
                }
                Err(_elapsed) => timed_out(upstream, *timeout),
            },
            KindProj::Pooled {
                inner,
                upstream,
                timeout,
                retry,
            } => match ready!(inner.poll(cx)) {
                Ok(Ok(mut response)) => {
                    headers::remove_hop_by_hop(response.headers_mut());
                    response
                }
                Ok(Err(error)) => failed(upstream, &error, retry.take()),
                Err(_elapsed) => timed_out(upstream, *timeout),
            },
            KindProj::Exchange {
                inner,
                upstream,
                timeout,
                retry,
            } => match ready!(inner.poll(cx)) {
                Ok(mut response) => {
                    headers::remove_hop_by_hop(response.headers_mut());
                    response
                }
                Err(SendError::Exchange {
                    error: Http1Error::TimedOut,
                    ..
                }) => timed_out(upstream, *timeout),
                Err(error) => failed(upstream, &error, retry.take()),
            },
        };
        Poll::Ready(Ok(response))
    }
}

/// The `502` of a request on the proxy's own connections that failed, with the request given
/// back when it can be.
fn failed(
    upstream: &Authority,
    error: &SendError,
    give_back: Option<GiveBack>,
) -> Response<ProxyBody> {
    tracing::debug!(%upstream, %error, "upstream failed, answering 502");
    let mut response = text_response(
        StatusCode::BAD_GATEWAY,
        "the upstream refused or closed the connection",
    );
    if let Some(give_back) = give_back {
        response.extensions_mut().insert(give_back(error.sent()));
    }
    response
}

/// The `504` of an upstream that sent no response head within `timeout`.
fn timed_out(upstream: &Authority, timeout: Duration) -> Response<ProxyBody> {
    tracing::debug!(%upstream, ?timeout, "upstream did not answer, answering 504");
    text_response(
        StatusCode::GATEWAY_TIMEOUT,
        "the upstream did not answer in time",
    )
}

/// Displays an error and its sources, `outer: inner: innermost`.
struct Chain<'a>(&'a legacy::Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
