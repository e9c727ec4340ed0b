//! The decoder of a `Transfer-Encoding: chunked` response body (RFC 9112 section 7.1).

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use super::Http1Error;

/// The longest chunk-size line (size, extensions, CRLF) accepted.
const MAX_SIZE_LINE: usize = 4 * 1024;
/// The largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;
/// The most trailer fields accepted.
const MAX_TRAILER_FIELDS: usize = 64;

/// What the decoder made of the bytes it was given.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    /// Body data.
    Data(Bytes),
    /// The trailer fields; the body has ended.
    Trailers(HeaderMap),
    /// The last chunk without trailers; the body has ended.
    End,
    /// More bytes are needed.
    More,
}

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// Before a chunk-size line.
    Size,
    /// In a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk, in the trailer section.
    Trailers,
    /// The body has ended.
    Done,
}

impl Chunked {
    /// Decodes from the front of `buf`, consuming what it decodes.
    pub(crate) fn step(&mut self, buf: &mut BytesMut) -> Result<Step, Http1Error> {
        loop {
            match *self {
                Self::Size => {
                    let Some(end) = line_end(buf, MAX_SIZE_LINE)? else {
                        return Ok(Step::More);
                    };
                    let size = chunk_size(&buf[..end])?;
                    buf.advance(end + 2);
                    *self = if size == 0 {
                        Self::Trailers
                    } else {
                        Self::Data(size)
                    };
                }
                Self::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let take = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    *self = if left == 0 {
                        Self::DataEnd
                    } else {
                        Self::Data(left)
                    };
                    return Ok(Step::Data(data));
                }
                Self::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Http1Error::Invalid("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    *self = Self::Size;
                }
                Self::Trailers => return self.trailers(buf),
                Self::Done => return Ok(Step::End),
            }
        }
    }

    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Step, Http1Error> {
        if buf.starts_with(b"\r\n") {
            buf.advance(2);
            *self = Self::Done;
            return Ok(Step::End);
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
        let (len, fields) = match httparse::parse_headers(buf, &mut fields) {
            Ok(httparse::Status::Complete(parsed)) => parsed,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_TRAILERS => {
                return Err(Http1Error::Invalid("trailer section too large"));
            }
            Ok(httparse::Status::Partial) => return Ok(Step::More),
            Err(error) => return Err(Http1Error::Malformed(error)),
        };
        if len > MAX_TRAILERS {
            return Err(Http1Error::Invalid("trailer section too large"));
        }
        let mut trailers = HeaderMap::with_capacity(fields.len());
        for field in fields {
            let name = HeaderName::from_bytes(field.name.as_bytes())
                .map_err(|_| Http1Error::Invalid("trailer name"))?;
            let value = HeaderValue::from_bytes(field.value)
                .map_err(|_| Http1Error::Invalid("trailer value"))?;
            trailers.append(name, value);
        }
        buf.advance(len);
        *self = Self::Done;
        Ok(Step::Trailers(trailers))
    }
}

/// Where the CRLF ending the first line of `buf` starts, if the line is complete.
fn line_end(buf: &[u8], max: usize) -> Result<Option<usize>, Http1Error> {
    match buf.iter().take(max).position(|&b| b == b'\n') {
        Some(0) => Err(Http1Error::Invalid("chunk-size line without a size")),
        Some(newline) if buf[newline - 1] == b'\r' => Ok(Some(newline - 1)),
        Some(_) => Err(Http1Error::Invalid("chunk-size line not ended by CRLF")),
        None if buf.len() >= max => Err(Http1Error::Invalid("chunk-size line too long")),
        None => Ok(None),
    }
}

/// The size of a chunk-size line (without its CRLF): hex digits, then optional whitespace and
/// extensions, which are ignored.
fn chunk_size(line: &[u8]) -> Result<u64, Http1Error> {
    const INVALID: Http1Error = Http1Error::Invalid("chunk size is not hexadecimal");
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(INVALID);
    }
    match line[digits..].trim_ascii_start().first() {
        None | Some(b';') => {}
        Some(_) => return Err(INVALID),
    }
    line[..digits].iter().try_fold(0u64, |size, &b| {
        let digit = (b as char).to_digit(16).ok_or(INVALID)?;
        Ok((size << 4) | u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `piece` bytes: the data, the trailers, whether it ended.
    fn decode(
        input: &[u8],
        piece: usize,
    ) -> Result<(Vec<u8>, Option<HeaderMap>, bool), Http1Error> {
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let (mut data, mut trailers) = (Vec::new(), None);
        let mut pieces = input.chunks(piece.max(1));
        loop {
            match state.step(&mut buf)? {
                Step::Data(bytes) => data.extend_from_slice(&bytes),
                Step::Trailers(map) => {
                    trailers = Some(map);
                    return Ok((data, trailers, true));
                }
                Step::End => return Ok((data, trailers, true)),
                Step::More => match pieces.next() {
                    Some(next) => buf.extend_from_slice(next),
                    None => return Ok((data, trailers, false)),
                },
            }
        }
    }

    #[test]
    fn a_body_decodes_the_same_whatever_its_reads_are_cut_into() {
        let input =
            b"5\r\nhello\r\n7;name=\"value\"\r\n, world\r\n0\r\nGrpc-Status: 0\r\nX-T: a\r\n\r\n";
        for piece in 1..=input.len() {
            let (data, trailers, ended) = decode(input, piece).unwrap();
            assert_eq!(data, b"hello, world", "pieces of {piece}");
            assert!(ended);
            let trailers = trailers.unwrap();
            assert_eq!(trailers["grpc-status"], "0");
            assert_eq!(trailers["x-t"], "a");
        }
    }

    #[test]
    fn the_last_chunk_without_trailers_ends_the_body_and_leaves_what_follows() {
        let mut buf = BytesMut::from("3\r\nabc\r\n0\r\n\r\nHTTP/1.1");
        let mut state = Chunked::Size;
        assert_eq!(
            state.step(&mut buf).unwrap(),
            Step::Data(Bytes::from_static(b"abc"))
        );
        assert_eq!(state.step(&mut buf).unwrap(), Step::End);
        assert_eq!(state, Chunked::Done);
        assert_eq!(&buf[..], b"HTTP/1.1");
        assert_eq!(state.step(&mut buf).unwrap(), Step::End);
    }

    #[test]
    fn large_sizes_are_read_in_full_and_too_large_ones_refused() {
        assert_eq!(chunk_size(b"FFFFFFFFFFFFFFFF").unwrap(), u64::MAX);
        assert_eq!(chunk_size(b"1a ; ext").unwrap(), 26);
        for bad in [
            &b""[..],
            b"10000000000000000",
            b"-1",
            b"0x10",
            b"12 34",
            b"g",
        ] {
            assert!(chunk_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for bad in [
            &b"5\r\nhelloXY0\r\n\r\n"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"\r\n",
            b"z\r\n",
            b"0\r\nbad trailer\r\n\r\n",
        ] {
            assert!(
                decode(bad, 64).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("5;{}\r\nhello\r\n", "x".repeat(MAX_SIZE_LINE));
        assert!(decode(long.as_bytes(), 64).is_err());
        let trailers: String = (0..2_000).map(|i| format!("x-{i}: value\r\n")).collect();
        let big = format!("0\r\n{trailers}\r\n");
        assert!(decode(big.as_bytes(), 4096).is_err());
    }

    #[test]
    fn a_cut_body_asks_for_more() {
        let (data, _, ended) = decode(b"5\r\nhel", 64).unwrap();
        assert_eq!((data.as_slice(), ended), (&b"hel"[..], false));
    }
}
