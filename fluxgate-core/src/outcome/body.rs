//! [`ObservedBody`] and [`observe_response`]: a response's final [`Classification`], taken when
//! its body ends for gRPC responses whose status comes in the trailers.

use std::error::Error;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::{Classification, GrpcCode, classify_error, classify_grpc, classify_grpc_status};

type BoxError = Box<dyn Error + Send + Sync>;

/// Told the final [`Classification`] of a response, exactly once.
///
/// Implemented for every `FnOnce(Classification)`; a layer may implement it on its own type to
/// name it in its response type.
///
/// ```
/// use fluxgate_core::outcome::{classify_status, Classification, OutcomeObserver, Outcome};
///
/// struct Print;
/// impl OutcomeObserver for Print {
///     fn observe(self, class: Classification) {
///         println!("{:?}", class.outcome);
///     }
/// }
/// Print.observe(classify_status(http::StatusCode::OK));
/// (|class: Classification| assert_eq!(class.outcome, Outcome::Failure))
///     .observe(classify_status(http::StatusCode::BAD_GATEWAY));
/// ```
pub trait OutcomeObserver {
    /// Takes the final classification.
    fn observe(self, class: Classification);
}

impl<F: FnOnce(Classification)> OutcomeObserver for F {
    fn observe(self, class: Classification) {
        self(class);
    }
}

/// Wraps a response's body so that `observer` learns the response's final classification:
/// at once from the head when it decides ([`classify_response`](super::classify_response)),
/// otherwise when the body ends, as [`ObservedBody`] says.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use fluxgate_core::outcome::{observe_response, Classification, Outcome};
///
/// let seen = Arc::new(Mutex::new(None));
/// let record = |seen: Arc<Mutex<Option<Outcome>>>| move |c: Classification| {
///     *seen.lock().unwrap() = Some(c.outcome);
/// };
/// let http = http::Response::builder().status(502).body(String::new()).unwrap();
/// let _response = observe_response(http, record(seen.clone()));
/// assert_eq!(*seen.lock().unwrap(), Some(Outcome::Failure)); // decided by the head
///
/// let grpc = http::Response::builder()
///     .header("content-type", "application/grpc")
///     .body(String::new())
///     .unwrap();
/// *seen.lock().unwrap() = None;
/// let response = observe_response(grpc, record(seen.clone()));
/// assert_eq!(*seen.lock().unwrap(), None); // waits for the trailers...
/// drop(response);
/// assert_eq!(*seen.lock().unwrap(), Some(Outcome::Success)); // ...dropped: CANCELLED
/// ```
pub fn observe_response<B, O: OutcomeObserver>(
    response: Response<B>,
    observer: O,
) -> Response<ObservedBody<B, O>> {
    match super::classify_response(&response) {
        Some(class) => {
            observer.observe(class);
            response.map(ObservedBody::observed)
        }
        None => response.map(|body| ObservedBody::new(body, observer)),
    }
}

pin_project! {
    /// A response body that calls an [`OutcomeObserver`] once, when the body ends, or a
    /// pass-through one whose outcome was already observed.
    ///
    /// Use it (through [`observe_response`]) where a layer learns from traffic: a plain HTTP
    /// response, or a gRPC response with its status in the head, is classified at once and its
    /// body passes through; a gRPC response whose status comes in the trailers is classified
    /// when its body ends:
    ///
    /// | how the body ends | classification |
    /// | --- | --- |
    /// | trailers with `grpc-status` | that code ([`classify_grpc_status`]) |
    /// | trailers without `grpc-status`, or the end of the body without trailers | `INTERNAL` (a failure: the gRPC spec makes the status mandatory) |
    /// | an error from the body | [`classify_error`] (a transport failure or a timeout) |
    /// | dropped before its end | `CANCELLED` (a success: the downstream went away or stopped reading, which is not the upstream's failure; an upstream that breaks the stream shows as a body error instead) |
    ///
    /// Frames, [`size_hint`](Body::size_hint) and [`is_end_stream`](Body::is_end_stream) are the
    /// inner body's; its errors are boxed. A pass-through body costs one branch per frame.
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// use fluxgate_core::outcome::{Classification, ObservedBody, Outcome};
    /// use http_body::Body;
    ///
    /// let mut outcome = None;
    /// let mut body = Box::pin(ObservedBody::new("hi".to_owned(), |c: Classification| outcome = Some(c.outcome)));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(matches!(body.as_mut().poll_frame(&mut cx), Poll::Ready(Some(Ok(_)))));
    /// // The body ended without trailers: no grpc-status, a failure.
    /// assert!(body.is_end_stream());
    /// drop(body);
    /// assert_eq!(outcome, Some(Outcome::Failure));
    /// ```
    #[derive(Debug)]
    pub struct ObservedBody<B, O: OutcomeObserver> {
        #[pin]
        inner: B,
        pending: Pending<O>,
    }
}

/// An empty pass-through body (the default of the inner body), as layers that answer by
/// themselves (a `429`, a `503`) need.
///
/// ```
/// use fluxgate_core::outcome::{Classification, ObservedBody};
///
/// let body: ObservedBody<String, fn(Classification)> = ObservedBody::default();
/// assert!(body.get_ref().is_empty());
/// ```
impl<B: Default, O: OutcomeObserver> Default for ObservedBody<B, O> {
    fn default() -> Self {
        Self::observed(B::default())
    }
}

impl<B, O: OutcomeObserver> ObservedBody<B, O> {
    /// A body whose outcome `observer` learns when it ends.
    pub fn new(inner: B, observer: O) -> Self {
        Self {
            inner,
            pending: Pending(Some(observer)),
        }
    }

    /// A pass-through body: its outcome was observed already.
    pub fn observed(inner: B) -> Self {
        Self {
            inner,
            pending: Pending(None),
        }
    }

    /// Whether the outcome is still to be observed.
    ///
    /// ```
    /// use fluxgate_core::outcome::{Classification, ObservedBody};
    /// assert!(!ObservedBody::<_, fn(Classification)>::observed(()).is_pending());
    /// ```
    #[must_use]
    pub fn is_pending(&self) -> bool {
        self.pending.0.is_some()
    }

    /// The inner body.
    #[must_use]
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The inner body of a pass-through body (no outcome pending), so that a caller can drop
    /// the wrapper instead of boxing it; a body still observing comes back as `Err`.
    ///
    /// ```
    /// use fluxgate_core::outcome::{Classification, ObservedBody};
    ///
    /// let observed: ObservedBody<&str, fn(Classification)> = ObservedBody::observed("hi");
    /// assert_eq!(observed.into_passthrough().ok(), Some("hi"));
    /// let pending = ObservedBody::new("hi", (|_| {}) as fn(Classification));
    /// assert!(pending.into_passthrough().is_err());
    /// ```
    pub fn into_passthrough(self) -> Result<B, Self> {
        if self.is_pending() {
            return Err(self);
        }
        Ok(self.inner)
    }
}

impl<B, O> Body for ObservedBody<B, O>
where
    B: Body,
    B::Error: Into<BoxError>,
    O: OutcomeObserver,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let polled = ready!(this.inner.as_mut().poll_frame(cx));
        if this.pending.0.is_none() {
            return Poll::Ready(polled.map(|r| r.map_err(Into::into)));
        }
        Poll::Ready(match polled {
            None => {
                this.pending.finish(missing_status());
                None
            }
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.pending
                        .finish(classify_grpc_status(trailers).unwrap_or_else(missing_status));
                } else if this.inner.is_end_stream() {
                    this.pending.finish(missing_status());
                }
                Some(Ok(frame))
            }
            Some(Err(error)) => {
                let error = error.into();
                this.pending.finish(classify_error(&*error));
                Some(Err(error))
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The observer still to call; a drop before the end calls it with `CANCELLED`.
#[derive(Debug)]
struct Pending<O: OutcomeObserver>(Option<O>);

impl<O: OutcomeObserver> Pending<O> {
    fn finish(&mut self, class: Classification) {
        if let Some(observer) = self.0.take() {
            observer.observe(class);
        }
    }
}

impl<O: OutcomeObserver> Drop for Pending<O> {
    fn drop(&mut self) {
        self.finish(classify_grpc(GrpcCode::Cancelled));
    }
}

fn missing_status() -> Classification {
    classify_grpc(GrpcCode::Internal)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::task::Waker;

    use http::HeaderMap;

    use super::*;
    use crate::outcome::{Cause, Outcome};

    /// A body of ready frames, then an optional error.
    struct Frames(VecDeque<Result<Frame<&'static [u8]>, io::Error>>);

    impl Body for Frames {
        type Data = &'static [u8];
        type Error = io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, io::Error>>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    fn trailers(status: &'static str) -> Frame<&'static [u8]> {
        let mut map = HeaderMap::new();
        map.insert("grpc-status", http::HeaderValue::from_static(status));
        Frame::trailers(map)
    }

    /// Drains a pending body; returns what the observer saw (and how often).
    fn drain(
        frames: Vec<Result<Frame<&'static [u8]>, io::Error>>,
        polls: usize,
    ) -> Vec<Classification> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let mut body = Box::pin(ObservedBody::new(Frames(frames.into()), move |c| {
            sink.lock().unwrap().push(c);
        }));
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..polls {
            let _ = body.as_mut().poll_frame(&mut cx);
        }
        drop(body);
        Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
    }

    #[test]
    fn each_ending_is_observed_once() {
        let data = || Ok(Frame::data(&b"x"[..]));
        let code = |seen: Vec<Classification>| {
            assert_eq!(seen.len(), 1);
            seen[0].cause
        };
        let grpc = |c| Cause::Grpc(c);
        assert_eq!(
            code(drain(vec![data(), Ok(trailers("13"))], 5)),
            grpc(GrpcCode::Internal)
        );
        assert_eq!(
            code(drain(vec![data(), Ok(trailers("0"))], 5)),
            grpc(GrpcCode::Ok)
        );
        assert_eq!(
            code(drain(
                vec![data(), Ok(Frame::trailers(HeaderMap::new()))],
                5
            )),
            grpc(GrpcCode::Internal)
        );
        assert_eq!(code(drain(vec![data()], 5)), grpc(GrpcCode::Internal));
        assert_eq!(
            code(drain(vec![data(), data()], 1)),
            grpc(GrpcCode::Cancelled)
        );
        let reset = Err(io::Error::from(io::ErrorKind::ConnectionReset));
        let seen = drain(vec![data(), reset], 5);
        assert_eq!(
            code(seen.clone()),
            Cause::Transport(Some(io::ErrorKind::ConnectionReset))
        );
        assert_eq!(seen[0].outcome, Outcome::Failure);
    }

    #[test]
    fn pass_through_observes_nothing_more() {
        let mut body = Box::pin(ObservedBody::<_, fn(Classification)>::observed(Frames(
            vec![Ok(trailers("13"))].into(),
        )));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            body.as_mut().poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(!body.is_pending());
    }
}
