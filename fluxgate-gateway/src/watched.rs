//! A body that tells a [`Watcher`] once how it ended: whole, failed, or dropped before its end.
//!
//! The gateway watches the client's request body ([`ClientBody`](crate::strict::ClientBody):
//! did it fail?), and its response bodies ([`TrackedBody`](crate::lifecycle::TrackedBody): still
//! in flight?, and the access log's line, written when the response ends).
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use fluxgate_gateway::watched::{End, Watched, Watcher};
//! use http_body_util::{BodyExt, Full};
//!
//! struct Record(Arc<Mutex<Option<End>>>);
//! impl Watcher for Record {
//!     fn ended(self, end: End) {
//!         *self.0.lock().unwrap() = Some(end);
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let seen = Arc::new(Mutex::new(None));
//! let body = Watched::new(Full::new(bytes::Bytes::from("hi")), Record(Arc::clone(&seen)));
//! assert_eq!(body.collect().await.unwrap().to_bytes(), "hi");
//! assert_eq!(*seen.lock().unwrap(), Some(End::Whole));
//! # }
//! ```

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};

/// How a [`Watched`] body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Its last frame was read (or it was empty).
    Whole,
    /// Reading it failed.
    Failed,
    /// It was dropped before its end.
    Dropped,
}

/// Told once how a [`Watched`] body ended.
pub trait Watcher {
    /// The body ended as `end`.
    fn ended(self, end: End);
}

/// An optional watcher: none is told nothing.
impl<W: Watcher> Watcher for Option<W> {
    fn ended(self, end: End) {
        if let Some(watcher) = self {
            watcher.ended(end);
        }
    }
}

pin_project_lite::pin_project! {
    /// `inner`, whose end its watcher is told; see the [module docs](self).
    #[derive(Debug)]
    pub struct Watched<B, W: Watcher> {
        #[pin]
        inner: B,
        watcher: Option<W>,
    }

    impl<B, W: Watcher> PinnedDrop for Watched<B, W> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(watcher) = this.watcher.take() {
                watcher.ended(End::Dropped);
            }
        }
    }
}

impl<B: Body, W: Watcher> Watched<B, W> {
    /// Watches `inner`; an empty body has ended whole already.
    pub fn new(inner: B, watcher: W) -> Self {
        if inner.is_end_stream() {
            watcher.ended(End::Whole);
            return Self {
                inner,
                watcher: None,
            };
        }
        Self {
            inner,
            watcher: Some(watcher),
        }
    }
}

impl<B: Body, W: Watcher> Body for Watched<B, W> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let end = match &frame {
            None => Some(End::Whole),
            Some(Err(_)) => Some(End::Failed),
            Some(Ok(_)) => this.inner.is_end_stream().then_some(End::Whole),
        };
        // Taken only at the end: an earlier frame leaves the watcher in place.
        if let Some(end) = end
            && let Some(watcher) = this.watcher.take()
        {
            watcher.ended(end);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    type Seen = Arc<Mutex<Vec<End>>>;

    struct Record(Seen);

    impl Watcher for Record {
        fn ended(self, end: End) {
            self.0.lock().unwrap().push(end);
        }
    }

    /// A body of two frames then `last` (an error, or the end).
    fn body(
        fail: bool,
        seen: &Seen,
    ) -> Watched<impl Body<Data = Bytes, Error = &'static str>, Record> {
        let mut frames = vec![
            Ok(Frame::data(Bytes::from("a"))),
            Ok(Frame::data(Bytes::from("b"))),
        ];
        if fail {
            frames.push(Err("broken"));
        }
        Watched::new(
            StreamBody::new(futures::stream::iter(frames)),
            Record(Arc::clone(seen)),
        )
    }

    #[tokio::test]
    async fn told_once_at_the_end_not_at_the_first_frame() {
        let seen = Seen::default();
        assert!(body(false, &seen).collect().await.is_ok());
        assert!(body(true, &seen).collect().await.is_err());
        let mut dropped = body(false, &seen);
        assert!(dropped.frame().await.is_some());
        assert!(
            seen.lock().unwrap().len() == 2,
            "nothing told after one frame"
        );
        drop(dropped);
        assert_eq!(
            *seen.lock().unwrap(),
            [End::Whole, End::Failed, End::Dropped]
        );
    }
}
