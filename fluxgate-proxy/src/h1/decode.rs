//! [`Decoder`]: a response body's framing, decoded from a read buffer. The one decoder of the
//! own exchange: [`Http1Body`](super::Http1Body) feeds it from the socket, and
//! [`read_response`](super::read_response) from memory (the fuzz target and the tests).

use bytes::{Bytes, BytesMut};
use http_body::Frame;

use super::Http1Error;
use super::chunked::{Chunked, Step};
use super::head::Framing;

/// Where a body is in its framing.
#[derive(Debug)]
pub(super) enum Decoder {
    /// `Content-Length` bytes, this many left.
    Length(u64),
    /// Chunks.
    Chunked(Chunked),
    /// Until the upstream closes.
    UntilClose,
    /// Ended (or failed).
    Done,
}

/// What [`Decoder::decode`] made of the buffer.
#[derive(Debug)]
pub(super) enum Decoded {
    /// A data or trailers frame.
    Frame(Frame<Bytes>),
    /// The body has ended.
    End,
    /// More bytes are needed.
    More,
}

impl Decoder {
    pub(super) fn of(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => Self::Done,
            Framing::Length(length) => Self::Length(length),
            Framing::Chunked => Self::Chunked(Chunked::Size),
            Framing::UntilClose => Self::UntilClose,
        }
    }

    /// Whether the body has ended: nothing is left to read for it.
    pub(super) fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }

    /// Decodes the next frame from the front of `buf`, consuming what it decodes.
    pub(super) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, Http1Error> {
        match self {
            Self::Done => Ok(Decoded::End),
            Self::Length(_) | Self::UntilClose if buf.is_empty() => Ok(Decoded::More),
            Self::Length(left) => {
                let take = usize::try_from(*left).map_or(buf.len(), |left| left.min(buf.len()));
                let data = buf.split_to(take).freeze();
                *left -= take as u64;
                if *left == 0 {
                    *self = Self::Done;
                }
                Ok(Decoded::Frame(Frame::data(data)))
            }
            Self::UntilClose => Ok(Decoded::Frame(Frame::data(buf.split().freeze()))),
            Self::Chunked(chunked) => {
                let step = chunked.step(buf);
                if !matches!(step, Ok(Step::Data(_) | Step::More)) {
                    *self = Self::Done;
                }
                Ok(match step? {
                    Step::Data(data) => Decoded::Frame(Frame::data(data)),
                    Step::Trailers(trailers) => Decoded::Frame(Frame::trailers(trailers)),
                    Step::End => Decoded::End,
                    Step::More => Decoded::More,
                })
            }
        }
    }

    /// The upstream closed the connection: the end of a body read until close, an error for
    /// any other body not yet ended.
    pub(super) fn at_eof(&mut self) -> Result<(), Http1Error> {
        match std::mem::replace(self, Self::Done) {
            Self::UntilClose | Self::Done => Ok(()),
            Self::Length(_) | Self::Chunked(_) => Err(Http1Error::ClosedInBody),
        }
    }
}
