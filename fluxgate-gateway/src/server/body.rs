//! [`RequestBody`]: the body of a request as the server hands it to its service.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// The body of a request the [server](super) hands its service: hyper's [`Incoming`] when hyper
/// read the request (a chunked, large or late body, HTTP/2, TLS), or the whole body the server's
/// own HTTP/1.1 path had with the head (none, or a small `Content-Length` body).
///
/// ```
/// use fluxgate_gateway::server::RequestBody;
/// use http_body::Body;
///
/// let body = RequestBody::empty();
/// assert!(body.is_end_stream());
/// assert_eq!(body.size_hint().exact(), Some(0));
/// let body = RequestBody::full(bytes::Bytes::from_static(b"{}"));
/// assert_eq!(body.size_hint().exact(), Some(2));
/// ```
#[derive(Debug, Default)]
pub struct RequestBody {
    inner: Inner,
}

#[derive(Debug, Default)]
enum Inner {
    #[default]
    Empty,
    Full(Bytes),
    Incoming(Incoming),
}

impl RequestBody {
    /// A body with no bytes.
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// A body of `bytes`, whole.
    #[must_use]
    pub fn full(bytes: Bytes) -> Self {
        let inner = if bytes.is_empty() {
            Inner::Empty
        } else {
            Inner::Full(bytes)
        };
        Self { inner }
    }
}

impl From<Incoming> for RequestBody {
    fn from(incoming: Incoming) -> Self {
        Self {
            inner: Inner::Incoming(incoming),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.inner {
            Inner::Incoming(incoming) => Pin::new(incoming).poll_frame(cx),
            Inner::Empty => Poll::Ready(None),
            Inner::Full(_) => match std::mem::take(&mut self.inner) {
                Inner::Full(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                _ => Poll::Ready(None),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Full(_) => false,
            Inner::Incoming(incoming) => incoming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Full(bytes) => SizeHint::with_exact(bytes.len() as u64),
            Inner::Incoming(incoming) => incoming.size_hint(),
        }
    }
}
