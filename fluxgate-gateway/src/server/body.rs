//! [`RequestBody`]: the body of a request as the server hands it to its service.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// The body of a request the [server](super) hands its service: hyper's [`Incoming`] when hyper
/// read the request (a request with a body, HTTP/2, TLS), or no body at all when the server's
/// own HTTP/1.1 path read it (a request without a body, the common case).
///
/// ```
/// use fluxgate_gateway::server::RequestBody;
/// use http_body::Body;
///
/// let body = RequestBody::empty();
/// assert!(body.is_end_stream());
/// assert_eq!(body.size_hint().exact(), Some(0));
/// ```
#[derive(Debug, Default)]
pub struct RequestBody {
    incoming: Option<Incoming>,
}

impl RequestBody {
    /// A body with no bytes.
    #[must_use]
    pub fn empty() -> Self {
        Self { incoming: None }
    }
}

impl From<Incoming> for RequestBody {
    fn from(incoming: Incoming) -> Self {
        Self {
            incoming: Some(incoming),
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
        match &mut self.incoming {
            Some(incoming) => Pin::new(incoming).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.incoming {
            Some(incoming) => incoming.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}
