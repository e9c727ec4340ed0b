//! The response reader driven over bytes in memory, as an upstream would send them: what the
//! fuzz target `upstream_response` and the tests below feed malformed answers to.

use bytes::BytesMut;

use super::Http1Error;
use super::decode::{Decoded, Decoder};
use super::head::parse_response;

/// Reads one response from `input`, arriving in reads of `read` bytes (at least 1), as the
/// proxy's own exchange does: the head, then the body as its framing says. Gives the status and
/// the number of body bytes decoded, or the error the exchange would end with. For fuzzing;
/// not part of the API.
///
/// # Errors
///
/// The [`Http1Error`] the exchange would fail with.
#[doc(hidden)]
pub fn read_response(
    input: &[u8],
    read: usize,
    head_request: bool,
) -> Result<(u16, u64), Http1Error> {
    let mut reads = input.chunks(read.max(1));
    let mut buf = BytesMut::new();
    let mut fill = |buf: &mut BytesMut| match reads.next() {
        Some(bytes) => {
            buf.extend_from_slice(bytes);
            true
        }
        None => false,
    };
    let head = loop {
        if let Some(head) = parse_response(&mut buf, head_request)? {
            break head;
        }
        if !fill(&mut buf) {
            return Err(Http1Error::ClosedBeforeHead);
        }
    };
    let status = head.response.status().as_u16();
    let mut decoder = Decoder::of(head.framing);
    let mut body = 0u64;
    loop {
        match decoder.decode(&mut buf)? {
            Decoded::Frame(frame) => {
                body += frame.data_ref().map_or(0, |data| data.len() as u64);
            }
            Decoded::End => break,
            Decoded::More if fill(&mut buf) => {}
            Decoded::More => {
                decoder.at_eof()?;
                break;
            }
        }
    }
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64*), so that a failure repeats.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    const VALID: [&str; 4] = [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: 1\r\n\r\n",
        "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.0 404 Not Found\r\n\r\ngone",
        "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
    ];

    #[test]
    fn valid_responses_read_the_same_in_any_reads() {
        for read in 1..64 {
            assert_eq!(
                read_response(VALID[0].as_bytes(), read, false).unwrap(),
                (200, 5)
            );
            assert_eq!(
                read_response(VALID[1].as_bytes(), read, false).unwrap(),
                (200, 5)
            );
            assert_eq!(
                read_response(VALID[2].as_bytes(), read, false).unwrap(),
                (404, 4)
            );
            assert_eq!(
                read_response(VALID[3].as_bytes(), read, false).unwrap(),
                (204, 0)
            );
            assert_eq!(
                read_response(VALID[0].as_bytes(), read, true).unwrap(),
                (200, 0)
            );
        }
    }

    #[test]
    fn mutated_and_random_answers_never_panic_and_never_invent_bytes() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let alphabet =
            b"HTTP/1.0 2004\r\n:;,-abcdefxyzContent-LengthTransfer-Encodingchunked \t\x00\xff";
        for round in 0..20_000 {
            let mut input = VALID[round % VALID.len()].as_bytes().to_vec();
            for _ in 0..=rng.below(4) {
                let at = rng.below(input.len() + 1);
                match rng.below(3) {
                    0 if at < input.len() => {
                        input[at] = alphabet[rng.below(alphabet.len())];
                    }
                    1 => input.insert(at, alphabet[rng.below(alphabet.len())]),
                    _ if at < input.len() => {
                        input.remove(at);
                    }
                    _ => {}
                }
            }
            if round % 7 == 0 {
                input = (0..rng.below(200))
                    .map(|_| alphabet[rng.below(alphabet.len())])
                    .collect();
            }
            let read = 1 + rng.below(40);
            if let Ok((_, body)) = read_response(&input, read, round % 5 == 0) {
                assert!(
                    body <= input.len() as u64,
                    "{:?}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }
}
