//! [`Http1Body`]: a response body read from the proxy's own HTTP/1.1 connection.

use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::decode::{Decoded, Decoder};
use super::head::Framing;
use super::{Conn, Http1Error};
use crate::BoxError;
use crate::pool::Http1Pool;

/// A response body read from an upstream connection; the connection goes back to its pool once
/// the body has been read to its end and the connection can carry another request, and is
/// closed when the body is dropped before its end.
#[derive(Debug)]
pub(crate) struct Http1Body {
    conn: Option<Conn>,
    decoder: Decoder,
    /// The whole body, when it came with the head (the connection has gone back at once).
    read: Option<Bytes>,
    keep_alive: bool,
    pool: Weak<Http1Pool>,
}

impl Http1Body {
    pub(super) fn new(
        conn: Conn,
        framing: Framing,
        keep_alive: bool,
        pool: Weak<Http1Pool>,
    ) -> Self {
        let mut body = Self {
            conn: Some(conn),
            decoder: Decoder::of(framing),
            read: None,
            keep_alive,
            pool,
        };
        if let (Framing::Length(length), Some(conn)) = (framing, body.conn.as_mut())
            && let Ok(length) = usize::try_from(length)
            && conn.buf.len() >= length
        {
            // The whole body came with the head (a small response): the connection can go
            // back at once.
            body.read = Some(conn.buf.split_to(length).freeze());
            body.finish();
        } else if body.decoder.is_done() {
            body.finish();
        }
        body
    }

    /// The body has ended: its connection goes back to the pool if it can be reused.
    fn finish(&mut self) {
        self.decoder = Decoder::Done;
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
            && let Some(pool) = self.pool.upgrade()
        {
            pool.put_conn(conn);
        }
    }

    /// The body failed: its connection is closed.
    fn fail(&mut self, error: Http1Error) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.decoder = Decoder::Done;
        self.conn = None;
        Poll::Ready(Some(Err(Box::new(error))))
    }
}

impl Body for Http1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(data) = this.read.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.decode(&mut conn.buf) {
                Ok(Decoded::Frame(frame)) => {
                    if this.decoder.is_done() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(Decoded::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::More) => {}
                Err(error) => return this.fail(error),
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) => {
                    // Closed: the end of a body read until close (its connection is not kept).
                    this.conn = None;
                    return match this.decoder.at_eof() {
                        Ok(()) => Poll::Ready(None),
                        Err(error) => this.fail(error),
                    };
                }
                Ok(_) => {}
                Err(error) => return this.fail(error.into()),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_none() && self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.read, &self.decoder) {
            (Some(data), _) => SizeHint::with_exact(data.len() as u64),
            (None, Decoder::Length(left)) => SizeHint::with_exact(*left),
            (None, Decoder::Done) => SizeHint::with_exact(0),
            (None, Decoder::Chunked(_) | Decoder::UntilClose) => SizeHint::default(),
        }
    }
}
