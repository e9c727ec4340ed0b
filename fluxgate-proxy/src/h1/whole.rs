//! Request bodies the own exchange carries: a small `Content-Length` body that is already all
//! in memory (the gateway's server hands such a body over whole), taken without waiting.
//!
//! A body still on its way is hyper's client's to stream, because the response may come down
//! while it goes up. Whether a body is whole is asked once, without a waker that matters: its
//! first frame is polled with a no-op context. A body that has nothing yet is left as it was; one
//! that gave part of itself gets that part back in front of the rest ([`Prefixed`]).

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::{BoxError, ProxyBody};

/// The largest request body the own exchange writes with the head (as the gateway's server
/// takes whole).
pub(crate) const MAX_WHOLE: u64 = 64 * 1024;

/// The body's length when the own exchange may carry a request with this method, these headers
/// and a body of this size: one `Content-Length` of at most [`MAX_WHOLE`] that the body's exact
/// size agrees with, and no `Transfer-Encoding`.
pub(crate) fn length(method: &Method, headers: &HeaderMap, size: &SizeHint) -> Option<u64> {
    if method == Method::CONNECT || headers.contains_key(TRANSFER_ENCODING) {
        return None;
    }
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    let (Some(value), None) = (lengths.next(), lengths.next()) else {
        return None;
    };
    let length = super::head::parse_length(value.as_bytes()).ok()?;
    (length <= MAX_WHOLE && size.exact() == Some(length)).then_some(length)
}

/// What one look at a body found.
pub(crate) enum Taken {
    /// The whole body, `length` bytes in one frame.
    Whole(Bytes),
    /// Not whole: the body to send as it is (its first frame given back when it gave one).
    Rest(ProxyBody),
}

/// Takes `body` whole if its first frame is ready and holds all of its `length` bytes.
pub(crate) fn take(mut body: ProxyBody, length: u64) -> Taken {
    let mut cx = Context::from_waker(Waker::noop());
    let first = match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Pending => return Taken::Rest(body),
        Poll::Ready(None) => return Taken::Rest(body),
        Poll::Ready(Some(first)) => first,
    };
    let first = match first.map(Frame::into_data) {
        Ok(Ok(data)) if data.len() as u64 == length && body.is_end_stream() => {
            return Taken::Whole(data);
        }
        Ok(Ok(data)) => Ok(Frame::data(data)),
        Ok(Err(frame)) => Ok(frame),
        Err(error) => Err(error),
    };
    Taken::Rest(
        Prefixed {
            first: Some(first),
            rest: body,
        }
        .boxed_unsync(),
    )
}

/// A body whose first frame was taken off it: that frame, then the rest.
struct Prefixed {
    first: Option<Result<Frame<Bytes>, BoxError>>,
    rest: ProxyBody,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.first.take() {
            Some(first) => Poll::Ready(Some(first)),
            None => Pin::new(&mut self.rest).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let first = match &self.first {
            Some(Ok(frame)) => frame.data_ref().map_or(0, |data| data.len() as u64),
            _ => 0,
        };
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(first));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(first));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn only_one_plain_length_that_the_body_agrees_with_is_carried() {
        let size = SizeHint::with_exact(5);
        let post = Method::POST;
        assert_eq!(
            length(&post, &headers(&[("content-length", "5")]), &size),
            Some(5)
        );
        for bad in [
            headers(&[]),
            headers(&[("content-length", "6")]),
            headers(&[("content-length", "+5")]),
            headers(&[("content-length", "5, 5")]),
            headers(&[("content-length", "5"), ("content-length", "5")]),
            headers(&[("content-length", "5"), ("transfer-encoding", "chunked")]),
        ] {
            assert_eq!(length(&post, &bad, &size), None, "{bad:?}");
        }
        let big = MAX_WHOLE + 1;
        let map = headers(&[("content-length", &big.to_string())]);
        assert_eq!(length(&post, &map, &SizeHint::with_exact(big)), None);
        // A stream of unknown size is not carried, whatever its header says.
        let map = headers(&[("content-length", "5")]);
        assert_eq!(length(&post, &map, &SizeHint::new()), None);
        assert_eq!(length(&Method::CONNECT, &map, &size), None);
    }

    #[tokio::test]
    async fn a_whole_body_is_taken_and_any_other_is_sent_as_it_came() {
        let whole = http_body_util::Full::new(Bytes::from_static(b"hello")).map_err(Into::into);
        match take(whole.boxed_unsync(), 5) {
            Taken::Whole(bytes) => assert_eq!(bytes, "hello"),
            Taken::Rest(_) => panic!("a whole body was not taken"),
        }
        // Two frames ready at once: the first is given back in front of the second.
        let (mut tx, two) = http_body_util::Channel::<Bytes, BoxError>::new(2);
        tx.send_data(Bytes::from_static(b"hel")).await.unwrap();
        tx.send_data(Bytes::from_static(b"lo")).await.unwrap();
        drop(tx);
        let Taken::Rest(rest) = take(two.boxed_unsync(), 5) else {
            panic!("a body in two frames was taken whole");
        };
        assert_eq!(rest.size_hint().lower(), 3);
        assert_eq!(rest.collect().await.unwrap().to_bytes(), "hello");
        // A body with nothing yet is left untouched.
        let (mut tx, later) = http_body_util::Channel::<Bytes, BoxError>::new(1);
        let Taken::Rest(rest) = take(later.boxed_unsync(), 5) else {
            panic!("a pending body was taken");
        };
        tx.send_data(Bytes::from_static(b"hello")).await.unwrap();
        drop(tx);
        assert_eq!(rest.collect().await.unwrap().to_bytes(), "hello");
    }
}
