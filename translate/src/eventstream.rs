//! The `application/vnd.amazon.eventstream` framing that AWS Bedrock streams
//! (ConverseStream, InvokeModelWithResponseStream) arrive in, cut into frames.
//!
//! A frame is a 12-byte prelude (total length, headers length, CRC32 of the
//! first 8 bytes), a block of typed headers, the payload, and a CRC32 over
//! everything before it. All integers are big-endian. See
//! `shared/providers/bedrock.md` §5.
//!
//! Network reads cut frames anywhere. [`Decoder`] keeps one buffer: each read
//! is appended with [`Decoder::feed`], and [`Decoder::next_frame`] hands out
//! complete frames that borrow their headers and payload from that buffer.
//! Consumed bytes are dropped on the next feed by moving the unfinished tail
//! to the front, so a warm stream allocates nothing: no `Vec` of headers, no
//! owned payload. Headers are validated once when the frame is cut and read
//! again lazily by [`Frame::headers`]; a Bedrock frame has three of them.
//!
//! We hand-roll this rather than use `aws-smithy-eventstream`: that crate
//! allocates a `Message` per frame and measured about 8x slower (461 vs 59 ns
//! per frame, `shared/research/tech.md` §4.2). It stays as the test oracle.

/// The largest frame accepted, prelude and CRCs included. Bedrock frames are
/// a few hundred bytes; a larger length means a corrupt or hostile stream and
/// is refused before anything is buffered for it.
pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The largest header block accepted (botocore's limit).
pub const HEADERS_BYTES_MAX: usize = 128 * 1024;

/// Total length, headers length, prelude CRC.
const PRELUDE_BYTES: usize = 12;
const CRC_BYTES: usize = 4;
/// A frame with no headers and no payload.
const FRAME_BYTES_MIN: usize = PRELUDE_BYTES + CRC_BYTES;

/// Why a stream cannot be decoded. Every error is final: the frame boundary is
/// lost, so the stream cannot be resynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("event-stream prelude CRC mismatch (frame says {expected:#010x}, bytes give {actual:#010x})")]
    PreludeCrc { expected: u32, actual: u32 },
    #[error("event-stream message CRC mismatch (frame says {expected:#010x}, bytes give {actual:#010x})")]
    MessageCrc { expected: u32, actual: u32 },
    #[error("event-stream frame length {total_bytes} is outside {FRAME_BYTES_MIN}..={FRAME_BYTES_MAX}")]
    FrameLength { total_bytes: u32 },
    #[error(
        "event-stream headers length {headers_bytes} does not fit a frame of {total_bytes} bytes or exceeds {HEADERS_BYTES_MAX}"
    )]
    HeadersLength { headers_bytes: u32, total_bytes: u32 },
    #[error("event-stream header runs past the end of the header block")]
    HeaderTruncated,
    #[error("event-stream header value type {value_type} is unknown")]
    HeaderType { value_type: u8 },
    #[error("event-stream header name or string value is not UTF-8")]
    HeaderUtf8,
}

/// Cuts a byte stream into frames. See the module docs.
///
/// Use: after each read, [`feed`](Decoder::feed) it, then call
/// [`next_frame`](Decoder::next_frame) until it returns `Ok(None)`. At the end
/// of the stream, [`pending_bytes`](Decoder::pending_bytes) other than zero
/// means the last frame was cut short.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
    /// Where the first frame not yet handed out starts in `buffer`.
    start: usize,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends one read. Bytes of frames already handed out are dropped first,
    /// by moving the unfinished tail to the front of the same buffer.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start == self.buffer.len() {
            self.buffer.clear();
        } else if self.start > 0 {
            self.buffer.drain(..self.start);
        }
        self.start = 0;
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or the
    /// reason the stream is corrupt. After an error, calling again returns the
    /// same error: nothing after it can be trusted.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, Error> {
        let pending = &self.buffer[self.start..];
        let Some(prelude) = pending.first_chunk::<PRELUDE_BYTES>() else {
            return Ok(None);
        };
        // The prelude is checked as soon as it is here, so a bad length is
        // refused before we wait for (and buffer) the bytes it announces.
        let (total_bytes, headers_bytes) = check_prelude(prelude)?;
        let Some(bytes) = pending.get(..total_bytes) else {
            return Ok(None);
        };
        let frame = Frame::parse(bytes, headers_bytes)?;
        self.start += total_bytes;
        Ok(Some(frame))
    }

    /// Bytes received but not yet handed out as a frame.
    pub fn pending_bytes(&self) -> usize {
        self.buffer.len() - self.start
    }
}

/// Validates the prelude; returns the frame and header block lengths.
fn check_prelude(prelude: &[u8; PRELUDE_BYTES]) -> Result<(usize, usize), Error> {
    let [t0, t1, t2, t3, h0, h1, h2, h3, c0, c1, c2, c3] = *prelude;
    let expected = u32::from_be_bytes([c0, c1, c2, c3]);
    let actual = crc32fast::hash(&prelude[..8]);
    if expected != actual {
        return Err(Error::PreludeCrc { expected, actual });
    }
    let total = u32::from_be_bytes([t0, t1, t2, t3]);
    let headers = u32::from_be_bytes([h0, h1, h2, h3]);
    let total_bytes = total as usize;
    if !(FRAME_BYTES_MIN..=FRAME_BYTES_MAX).contains(&total_bytes) {
        return Err(Error::FrameLength { total_bytes: total });
    }
    let headers_bytes = headers as usize;
    if headers_bytes > HEADERS_BYTES_MAX || headers_bytes > total_bytes - FRAME_BYTES_MIN {
        return Err(Error::HeadersLength { headers_bytes: headers, total_bytes: total });
    }
    Ok((total_bytes, headers_bytes))
}

/// One decoded frame, borrowing from the [`Decoder`]'s buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The raw header block, already validated.
    header_block: &'a [u8],
    pub payload: &'a [u8],
}

/// The value of `:message-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// A member of the stream's event union; `:event-type` names it.
    Event,
    /// A modelled error; `:exception-type` names it, the payload is JSON.
    Exception,
    /// An unmodelled error: `:error-code` and `:error-message` headers, no body.
    Error,
}

impl<'a> Frame<'a> {
    /// `bytes` is exactly one frame whose prelude has been checked.
    fn parse(bytes: &'a [u8], headers_bytes: usize) -> Result<Frame<'a>, Error> {
        let Some((body, crc)) = bytes.split_last_chunk::<CRC_BYTES>() else {
            return Err(Error::FrameLength { total_bytes: bytes.len() as u32 });
        };
        let expected = u32::from_be_bytes(*crc);
        let actual = crc32fast::hash(body);
        if expected != actual {
            return Err(Error::MessageCrc { expected, actual });
        }
        // `check_prelude` made both lengths fit; a failed split here would be
        // our bug, and it still answers with an error rather than a panic.
        let (header_block, payload) = body
            .get(PRELUDE_BYTES..)
            .and_then(|rest| rest.split_at_checked(headers_bytes))
            .ok_or(Error::HeaderTruncated)?;
        let mut headers = header_block;
        while !headers.is_empty() {
            headers = read_header(headers)?.1;
        }
        Ok(Frame { header_block, payload })
    }

    /// The headers in wire order. Duplicate names are not refused (nor are
    /// they by the AWS SDK decoder); [`Frame::header`] returns the first.
    pub fn headers(&self) -> Headers<'a> {
        Headers { rest: self.header_block }
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<HeaderValue<'a>> {
        self.headers().find(|h| h.name == name).map(|h| h.value)
    }

    /// A string header's value; `None` if it is absent or not a string.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        match self.header(name)? {
            HeaderValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// `:message-type`; `None` if absent or not one of the three known values.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.header_str(":message-type")? {
            "event" => Some(MessageType::Event),
            "exception" => Some(MessageType::Exception),
            "error" => Some(MessageType::Error),
            _ => None,
        }
    }

    /// `:event-type`, e.g. `contentBlockDelta` or `chunk`.
    pub fn event_type(&self) -> Option<&'a str> {
        self.header_str(":event-type")
    }

    /// `:exception-type`, e.g. `throttlingException`.
    pub fn exception_type(&self) -> Option<&'a str> {
        self.header_str(":exception-type")
    }

    /// `:content-type`, e.g. `application/json`.
    pub fn content_type(&self) -> Option<&'a str> {
        self.header_str(":content-type")
    }

    /// `:error-code` of an unmodelled error frame.
    pub fn error_code(&self) -> Option<&'a str> {
        self.header_str(":error-code")
    }

    /// `:error-message` of an unmodelled error frame.
    pub fn error_message(&self) -> Option<&'a str> {
        self.header_str(":error-message")
    }
}

/// One header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a str,
    pub value: HeaderValue<'a>,
}

/// A header value, by wire type (0..=9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    /// Types 0 (true) and 1 (false).
    Bool(bool),
    Byte(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Bytes(&'a [u8]),
    String(&'a str),
    /// Milliseconds since the Unix epoch.
    TimestampMs(i64),
    Uuid(u128),
}

/// Iterator over a validated header block.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        // The block was validated when the frame was cut, so this does not
        // fail; if it somehow did, ending the iteration is the safe answer.
        match read_header(self.rest) {
            Ok((header, rest)) => {
                self.rest = rest;
                Some(header)
            }
            Err(_) => {
                self.rest = &[];
                None
            }
        }
    }
}

const TYPE_TRUE: u8 = 0;
const TYPE_FALSE: u8 = 1;
const TYPE_BYTE: u8 = 2;
const TYPE_INT16: u8 = 3;
const TYPE_INT32: u8 = 4;
const TYPE_INT64: u8 = 5;
const TYPE_BYTES: u8 = 6;
const TYPE_STRING: u8 = 7;
const TYPE_TIMESTAMP: u8 = 8;
const TYPE_UUID: u8 = 9;

/// Reads the first header of `block`; returns it and the rest of the block.
fn read_header(block: &[u8]) -> Result<(Header<'_>, &[u8]), Error> {
    let (&name_len, rest) = block.split_first().ok_or(Error::HeaderTruncated)?;
    let (name, rest) = rest.split_at_checked(usize::from(name_len)).ok_or(Error::HeaderTruncated)?;
    let name = std::str::from_utf8(name).map_err(|_| Error::HeaderUtf8)?;
    let (&value_type, rest) = rest.split_first().ok_or(Error::HeaderTruncated)?;
    let (value, rest) = match value_type {
        TYPE_TRUE => (HeaderValue::Bool(true), rest),
        TYPE_FALSE => (HeaderValue::Bool(false), rest),
        TYPE_BYTE => {
            let (v, rest) = take::<1>(rest)?;
            (HeaderValue::Byte(i8::from_be_bytes(*v)), rest)
        }
        TYPE_INT16 => {
            let (v, rest) = take::<2>(rest)?;
            (HeaderValue::Int16(i16::from_be_bytes(*v)), rest)
        }
        TYPE_INT32 => {
            let (v, rest) = take::<4>(rest)?;
            (HeaderValue::Int32(i32::from_be_bytes(*v)), rest)
        }
        TYPE_INT64 => {
            let (v, rest) = take::<8>(rest)?;
            (HeaderValue::Int64(i64::from_be_bytes(*v)), rest)
        }
        TYPE_BYTES => {
            let (v, rest) = take_sized(rest)?;
            (HeaderValue::Bytes(v), rest)
        }
        TYPE_STRING => {
            let (v, rest) = take_sized(rest)?;
            let v = std::str::from_utf8(v).map_err(|_| Error::HeaderUtf8)?;
            (HeaderValue::String(v), rest)
        }
        TYPE_TIMESTAMP => {
            let (v, rest) = take::<8>(rest)?;
            (HeaderValue::TimestampMs(i64::from_be_bytes(*v)), rest)
        }
        TYPE_UUID => {
            let (v, rest) = take::<16>(rest)?;
            (HeaderValue::Uuid(u128::from_be_bytes(*v)), rest)
        }
        _ => return Err(Error::HeaderType { value_type }),
    };
    Ok((Header { name, value }, rest))
}

fn take<const N: usize>(bytes: &[u8]) -> Result<(&[u8; N], &[u8]), Error> {
    bytes.split_first_chunk::<N>().ok_or(Error::HeaderTruncated)
}

/// A value with a u16 length prefix (byte arrays and strings).
fn take_sized(bytes: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let (len, rest) = take::<2>(bytes)?;
    rest.split_at_checked(usize::from(u16::from_be_bytes(*len))).ok_or(Error::HeaderTruncated)
}

#[cfg(test)]
mod tests;
