//! Incremental decoder for `Transfer-Encoding: chunked` request bodies.
//!
//! The gateway may stream request bodies to the upstream chunked, so the mock
//! must accept them. The decoder is resumable: the connection keeps appending
//! to one buffer and calls [`ChunkedDecoder::feed`] again after each read, and
//! the decoder continues where it stopped instead of rescanning from the start
//! (which would be quadratic for large bodies arriving in small reads).

use crate::mock::http::MAX_BODY;

/// The longest size line or trailer section accepted before calling it abuse.
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 64 * 1024;

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    Malformed,
    TooLarge,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Expecting `hex-size[;ext]\r\n`.
    Size,
    /// Inside chunk data, this many bytes to go.
    Data(usize),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty line.
    Trailer,
}

enum Step {
    NeedMore,
    Advanced,
    Done,
}

/// Decodes one chunked body; see the module docs.
#[derive(Debug)]
pub struct ChunkedDecoder {
    pos: usize,
    trailer_bytes: usize,
    state: State,
    body: Vec<u8>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self { pos: 0, trailer_bytes: 0, state: State::Size, body: Vec::new() }
    }

    /// Continues decoding `data`, the encoded body received so far (it must
    /// start where the body starts and only ever grow between calls).
    /// Returns the encoded length once the whole body, trailers included, is
    /// in, or `None` if more bytes are needed.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<usize>, ChunkError> {
        loop {
            let rest = &data[self.pos..];
            let step = match self.state {
                State::Size => self.size_line(rest)?,
                State::Data(left) => self.data(rest, left),
                State::DataEnd => self.data_end(rest)?,
                State::Trailer => self.trailer_line(rest)?,
            };
            match step {
                Step::NeedMore => return Ok(None),
                Step::Advanced => {}
                Step::Done => return Ok(Some(self.pos)),
            }
        }
    }

    /// The decoded body; meaningful once [`feed`](Self::feed) returned `Some`.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    fn size_line(&mut self, rest: &[u8]) -> Result<Step, ChunkError> {
        match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete((used, size))) => {
                self.pos += used;
                self.start_chunk(size)?;
                Ok(Step::Advanced)
            }
            Ok(httparse::Status::Partial) if rest.len() > MAX_LINE => Err(ChunkError::Malformed),
            Ok(httparse::Status::Partial) => Ok(Step::NeedMore),
            Err(_) => Err(ChunkError::Malformed),
        }
    }

    fn start_chunk(&mut self, size: u64) -> Result<(), ChunkError> {
        let size = usize::try_from(size).map_err(|_| ChunkError::TooLarge)?;
        if size == 0 {
            self.state = State::Trailer;
        } else if self.body.len().saturating_add(size) > MAX_BODY {
            return Err(ChunkError::TooLarge);
        } else {
            self.state = State::Data(size);
        }
        Ok(())
    }

    fn data(&mut self, rest: &[u8], left: usize) -> Step {
        let take = rest.len().min(left);
        if take == 0 {
            return Step::NeedMore;
        }
        self.body.extend_from_slice(&rest[..take]);
        self.pos += take;
        self.state = if take == left { State::DataEnd } else { State::Data(left - take) };
        Step::Advanced
    }

    fn data_end(&mut self, rest: &[u8]) -> Result<Step, ChunkError> {
        // Bare LF is tolerated, as most servers do.
        let used = match rest {
            [b'\r', b'\n', ..] => 2,
            [b'\n', ..] => 1,
            [] | [b'\r'] => return Ok(Step::NeedMore),
            _ => return Err(ChunkError::Malformed),
        };
        self.pos += used;
        self.state = State::Size;
        Ok(Step::Advanced)
    }

    fn trailer_line(&mut self, rest: &[u8]) -> Result<Step, ChunkError> {
        let Some(end) = memchr::memchr(b'\n', rest) else {
            return if self.trailer_bytes + rest.len() > MAX_TRAILERS {
                Err(ChunkError::Malformed)
            } else {
                Ok(Step::NeedMore)
            };
        };
        self.pos += end + 1;
        self.trailer_bytes += end + 1;
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        Ok(if line.is_empty() { Step::Done } else { Step::Advanced })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENCODED: &[u8] = b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: yes\r\n\r\nNEXT";

    #[test]
    fn decodes_all_at_once() {
        let mut d = ChunkedDecoder::new();
        let used = d.feed(ENCODED).unwrap().unwrap();
        assert_eq!(&ENCODED[used..], b"NEXT");
        assert_eq!(d.into_body(), b"hello world");
    }

    #[test]
    fn decodes_byte_by_byte() {
        let mut d = ChunkedDecoder::new();
        let end = ENCODED.len() - 4;
        for n in 1..end {
            assert_eq!(d.feed(&ENCODED[..n]).unwrap(), None, "at {n}");
        }
        assert_eq!(d.feed(&ENCODED[..end]).unwrap(), Some(end));
        assert_eq!(d.into_body(), b"hello world");
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(ChunkedDecoder::new().feed(b"zz\r\n"), Err(ChunkError::Malformed));
        assert_eq!(ChunkedDecoder::new().feed(b"2\r\nabX"), Err(ChunkError::Malformed));
    }

    #[test]
    fn rejects_oversized_chunks() {
        let line = format!("{:x}\r\n", MAX_BODY + 1);
        assert_eq!(ChunkedDecoder::new().feed(line.as_bytes()), Err(ChunkError::TooLarge));
    }
}
