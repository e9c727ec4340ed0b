//! [`Http1Body`]: a response body read from the proxy's own HTTP/1.1 connection.

use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::chunked::{Chunked, Step};
use super::head::Framing;
use super::{Conn, Http1Error};
use crate::BoxError;
use crate::pool::Http1Pool;

/// Where the body is.
#[derive(Debug)]
enum State {
    /// `Content-Length` bytes, this many left to read.
    Length(u64),
    /// The whole rest, already read with the head (the connection has gone back).
    Read(Bytes),
    /// Chunks.
    Chunked(Chunked),
    /// Until the upstream closes.
    UntilClose,
    /// Ended (or failed).
    Done,
}

/// A response body read from an upstream connection; the connection goes back to its pool once
/// the body has been read to its end and the connection can carry another request, and is
/// closed when the body is dropped before its end.
#[derive(Debug)]
pub(crate) struct Http1Body {
    conn: Option<Conn>,
    state: State,
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
            state: State::Done,
            keep_alive,
            pool,
        };
        body.state = match framing {
            Framing::Empty | Framing::Length(0) => {
                body.finish();
                State::Done
            }
            Framing::Length(length) => match body.conn.as_mut() {
                // The whole body came with the head (a small response): the connection can go
                // back at once.
                Some(conn)
                    if let Ok(length) = usize::try_from(length)
                        && conn.buf.len() >= length =>
                {
                    let data = conn.buf.split_to(length).freeze();
                    body.finish();
                    State::Read(data)
                }
                _ => State::Length(length),
            },
            Framing::Chunked => State::Chunked(Chunked::Size),
            Framing::UntilClose => State::UntilClose,
        };
        body
    }

    /// The body has ended: its connection goes back to the pool if it can be reused.
    fn finish(&mut self) {
        self.state = State::Done;
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
        self.state = State::Done;
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
        loop {
            let conn = match (&mut this.state, this.conn.as_mut()) {
                (State::Done, _) => return Poll::Ready(None),
                (State::Read(data), _) => {
                    let data = std::mem::take(data);
                    this.state = State::Done;
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                (_, None) => return Poll::Ready(None),
                (_, Some(conn)) => conn,
            };
            match &mut this.state {
                State::Length(left) if !conn.buf.is_empty() => {
                    let take =
                        usize::try_from(*left).map_or(conn.buf.len(), |l| l.min(conn.buf.len()));
                    let data = conn.buf.split_to(take).freeze();
                    *left -= take as u64;
                    if *left == 0 {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Chunked(chunked) => match chunked.step(&mut conn.buf) {
                    Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Step::Trailers(trailers)) => {
                        this.finish();
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(Step::End) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Step::More) => {}
                    Err(error) => return this.fail(error),
                },
                State::UntilClose if !conn.buf.is_empty() => {
                    let data = conn.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                _ => {}
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if matches!(this.state, State::UntilClose) => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(Http1Error::ClosedInBody),
                Ok(_) => {}
                Err(error) => return this.fail(error.into()),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Length(left) => SizeHint::with_exact(*left),
            State::Read(data) => SizeHint::with_exact(data.len() as u64),
            State::Done => SizeHint::with_exact(0),
            State::Chunked(_) | State::UntilClose => SizeHint::default(),
        }
    }
}
