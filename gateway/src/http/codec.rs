//! HTTP/1.1 framing, sans-IO: request heads, response heads, chunked bodies.
//!
//! This is corelay's own small HTTP layer on `httparse`, not monoio-http.
//! monoio-http's encoder holds streamed chunks until 8 KiB accumulate (five
//! SSE events sent 100 ms apart arrived together after 550 ms, measured on
//! this project's machine), which breaks token streaming, and it pins
//! rustls 0.21 with a certificate crate that has unpatched advisories. The
//! whole protocol surface a gateway needs is small: the functions here parse
//! into byte ranges of the caller's buffer and never copy header values.
//!
//! Nothing here does I/O, which is what lets the fuzz targets and unit tests
//! cut the input at every byte.

use std::ops::Range;

/// The most request headers any config may allow; the parse array lives on
/// the stack at this size.
pub const REQUEST_HEADERS_CEILING: usize = 256;
/// Response headers read from an upstream.
const RESPONSE_HEADERS_MAX: usize = 128;
/// The longest chunk extension (after the size, up to CRLF) or trailer line
/// a chunked body may have. Both are ignored, so nothing legitimate comes
/// near this; without a cap, a body that never sends the CR grows the read
/// buffer until the body deadline.
pub const CHUNK_LINE_BYTES_MAX: usize = 4 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Delete,
    Other,
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    Length(u64),
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

/// A parsed request head. Ranges index the buffer that was parsed.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    /// Path and query, as sent.
    pub target: Range<usize>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// Bytes of the head, blank line included.
    pub len: usize,
    pub framing: Framing,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub authorization: Option<Range<usize>>,
    pub x_api_key: Option<Range<usize>>,
    /// Gemini clients' key header.
    pub x_goog_api_key: Option<Range<usize>>,
    /// Anthropic's front door: forwarded to Anthropic providers.
    pub anthropic_version: Option<Range<usize>>,
    pub anthropic_beta: Option<Range<usize>>,
    /// A form upload's boundary (`/v1/audio/transcriptions`) is in it.
    pub content_type: Option<Range<usize>>,
    /// The response cache's directives (see [`crate::cache`]).
    pub cache_control: Option<Range<usize>>,
    pub x_corelay_cache: Option<Range<usize>>,
    #[cfg(feature = "fault-injection")]
    pub fault: Option<Range<usize>>,
}

/// Why a request head was refused. Each maps to one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("request head is larger than the limit")]
    TooLarge,
    #[error("request has more headers than the limit")]
    TooManyHeaders,
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    #[error("unsupported HTTP version")]
    Version,
    #[error("Transfer-Encoding other than chunked is not supported")]
    TransferEncoding,
}

/// Parses a request head at the start of `buf`. `Ok(None)` means more bytes
/// are needed; the caller enforces `head_bytes_max` by refusing to wait for
/// more once `buf` holds that many.
pub fn parse_request_head(
    buf: &[u8],
    headers_max: usize,
    head_bytes_max: usize,
) -> Result<Option<RequestHead>, HeadError> {
    let mut storage = [httparse::EMPTY_HEADER; REQUEST_HEADERS_CEILING];
    let mut req = httparse::Request::new(&mut storage[..headers_max.min(REQUEST_HEADERS_CEILING)]);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= head_bytes_max => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(HeadError::Version),
        Err(_) => return Err(HeadError::Malformed("not an HTTP/1.x request")),
    };
    if len > head_bytes_max {
        return Err(HeadError::TooLarge);
    }
    let version_minor = req.version.unwrap_or(1);
    let method = match req.method.unwrap_or("") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        _ => Method::Other,
    };
    let path = req.path.unwrap_or("/");
    let target = range_in(buf, path.as_bytes());
    let mut head = RequestHead {
        method,
        target,
        version_minor,
        len,
        framing: Framing::Empty,
        keep_alive: version_minor == 1,
        expect_continue: false,
        authorization: None,
        x_api_key: None,
        x_goog_api_key: None,
        anthropic_version: None,
        anthropic_beta: None,
        content_type: None,
        cache_control: None,
        x_corelay_cache: None,
        #[cfg(feature = "fault-injection")]
        fault: None,
    };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        let value = h.value;
        match h.name.len() {
            14 if h.name.eq_ignore_ascii_case("content-length") => {
                let n = parse_content_length(value).ok_or(HeadError::Malformed("bad Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(HeadError::Malformed("conflicting Content-Length headers"));
                }
                length = Some(n);
            }
            17 if h.name.eq_ignore_ascii_case("transfer-encoding") => {
                if !value.trim_ascii().eq_ignore_ascii_case(b"chunked") || chunked {
                    return Err(HeadError::TransferEncoding);
                }
                chunked = true;
            }
            10 if h.name.eq_ignore_ascii_case("connection") => {
                for token in value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        head.keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && version_minor == 0 {
                        head.keep_alive = true;
                    }
                }
            }
            6 if h.name.eq_ignore_ascii_case("expect") => {
                head.expect_continue = value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            13 if h.name.eq_ignore_ascii_case("authorization") => head.authorization = Some(range_in(buf, value)),
            9 if h.name.eq_ignore_ascii_case("x-api-key") => head.x_api_key = Some(range_in(buf, value)),
            14 if h.name.eq_ignore_ascii_case("x-goog-api-key") => head.x_goog_api_key = Some(range_in(buf, value)),
            17 if h.name.eq_ignore_ascii_case("anthropic-version") => {
                head.anthropic_version = Some(range_in(buf, value));
            }
            14 if h.name.eq_ignore_ascii_case("anthropic-beta") => head.anthropic_beta = Some(range_in(buf, value)),
            13 if h.name.eq_ignore_ascii_case("cache-control") => head.cache_control = Some(range_in(buf, value)),
            12 if h.name.eq_ignore_ascii_case("content-type") => head.content_type = Some(range_in(buf, value)),
            15 if h.name.eq_ignore_ascii_case("x-corelay-cache") => head.x_corelay_cache = Some(range_in(buf, value)),
            #[cfg(feature = "fault-injection")]
            15 if h.name.eq_ignore_ascii_case("x-corelay-fault") => head.fault = Some(range_in(buf, value)),
            _ => {}
        }
    }
    // RFC 9112 6.3: chunked wins over Content-Length, but a message with both
    // is a smuggling attempt as often as not; refuse it.
    head.framing = match (chunked, length) {
        (true, Some(_)) => return Err(HeadError::Malformed("both Transfer-Encoding and Content-Length")),
        (true, None) => Framing::Chunked,
        (false, Some(0)) | (false, None) => Framing::Empty,
        (false, Some(n)) => Framing::Length(n),
    };
    if chunked && version_minor == 0 {
        return Err(HeadError::TransferEncoding);
    }
    Ok(Some(head))
}

fn parse_content_length(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// The range of `part` inside `buf`; `part` must be a sub-slice of it.
fn range_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

/// Whether a header value can be copied into a request head as it is:
/// printable ASCII, spaces and tabs included. A CR or LF would end the
/// header and let the value write headers of its own. Client headers that
/// are forwarded and config values that become headers are held to it.
pub fn is_header_value_safe(value: &[u8]) -> bool {
    value.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// A parsed upstream response head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    pub len: usize,
    pub framing: Framing,
    pub keep_alive: bool,
    /// Headers worth passing to the client (content type, rate limits,
    /// request ids), as (name, value) ranges of the parsed buffer.
    pub forward: Vec<(Range<usize>, Range<usize>)>,
    pub content_type: Option<Range<usize>>,
    /// Bedrock's `x-amzn-errortype`: the exception an error body is.
    pub error_type: Option<Range<usize>>,
}

/// Parses an upstream response head. `Ok(None)`: need more bytes.
pub fn parse_response_head(buf: &[u8], head_bytes_max: usize) -> Result<Option<ResponseHead>, HeadError> {
    let mut storage = [httparse::EMPTY_HEADER; RESPONSE_HEADERS_MAX];
    let mut res = httparse::Response::new(&mut storage);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= head_bytes_max => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(_) => return Err(HeadError::Malformed("not an HTTP/1.x response")),
    };
    let status = res.code.unwrap_or(0);
    let version_minor = res.version.unwrap_or(1);
    let mut head = ResponseHead {
        status,
        len,
        framing: Framing::Close,
        keep_alive: version_minor == 1,
        forward: Vec::new(),
        content_type: None,
        error_type: None,
    };
    let mut length = None;
    // Whether Transfer-Encoding was sent, and whether its last coding (over
    // all its headers, in order) is `chunked`.
    let mut transfer_encoding = false;
    let mut chunked = false;
    for h in res.headers.iter() {
        let name = h.name.as_bytes();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value).ok_or(HeadError::Malformed("bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Malformed("conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("x-amzn-errortype") {
            head.error_type = Some(range_in(buf, h.value));
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // `chunked` is the last coding when present (RFC 9112 6.1).
            transfer_encoding = true;
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default().trim_ascii();
            chunked = last.eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    head.keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(range_in(buf, h.value));
        } else if forwardable_response_header(name) {
            head.forward.push((range_in(buf, name), range_in(buf, h.value)));
        }
    }
    // RFC 9112 6.3: Transfer-Encoding wins over Content-Length, and a
    // message with both may be an attempt at smuggling, so its connection is
    // not reused; a coding list that does not end in `chunked` is read until
    // the connection closes.
    head.framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if transfer_encoding {
        Framing::Close
    } else if let Some(n) = length {
        if n == 0 { Framing::Empty } else { Framing::Length(n) }
    } else {
        Framing::Close
    };
    if head.framing == Framing::Close || (transfer_encoding && length.is_some()) {
        head.keep_alive = false;
    }
    Ok(Some(head))
}

/// Upstream response headers that mean something to the client: rate-limit
/// state, retry hints and request ids for support tickets. Named one by one:
/// a provider's other headers may describe the operator's account (OpenAI's
/// `openai-organization` and `openai-project`).
fn forwardable_response_header(name: &[u8]) -> bool {
    let lower = |prefix: &[u8]| name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix);
    lower(b"x-ratelimit-")
        || lower(b"anthropic-ratelimit-")
        || name.eq_ignore_ascii_case(b"openai-processing-ms")
        || name.eq_ignore_ascii_case(b"openai-version")
        || name.eq_ignore_ascii_case(b"retry-after")
        || name.eq_ignore_ascii_case(b"retry-after-ms")
        || name.eq_ignore_ascii_case(b"x-request-id")
        || name.eq_ignore_ascii_case(b"apim-request-id")
        || name.eq_ignore_ascii_case(b"request-id")
        || name.eq_ignore_ascii_case(b"x-amzn-requestid")
}

/// Incremental decoder of a chunked body. Feed it bytes as they arrive; it
/// hands out payload slices and says how much of the input it used.
#[derive(Debug, Clone, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// Payload bytes left in the current chunk, or the size being parsed.
    size: u64,
    size_digits: u8,
    /// Bytes of the extension or trailer line being skipped.
    line_bytes: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    /// After the size: extensions (ignored) up to CRLF.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines, ignored.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub struct ChunkError(pub &'static str);

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder::default()
    }

    /// True once the last chunk and its trailers were read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from `input`, calling `on_data` with each payload slice.
    /// Returns the number of input bytes used; bytes after the end of the
    /// body are not used (they belong to the next message).
    pub fn decode(&mut self, input: &[u8], mut on_data: impl FnMut(&[u8])) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() && self.state != ChunkState::Done {
            let b = input[i];
            match self.state {
                ChunkState::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if self.size_digits == 15 {
                            return Err(ChunkError("chunk size too large"));
                        }
                        let digit = (b as char).to_digit(16).unwrap_or(0);
                        self.size = self.size * 16 + u64::from(digit);
                        self.size_digits += 1;
                    }
                    b';' | b' ' | b'\t' if self.size_digits > 0 => {
                        self.state = ChunkState::Extension;
                        self.line_bytes = 1;
                    }
                    b'\r' if self.size_digits > 0 => self.state = ChunkState::SizeLf,
                    _ => return Err(ChunkError("bad chunk size")),
                },
                ChunkState::Extension => {
                    if b == b'\r' {
                        self.state = ChunkState::SizeLf;
                    } else {
                        self.line_bytes += 1;
                        if self.line_bytes > CHUNK_LINE_BYTES_MAX {
                            return Err(ChunkError("chunk extension too long"));
                        }
                    }
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError("expected LF after chunk size"));
                    }
                    self.size_digits = 0;
                    self.state = if self.size == 0 { ChunkState::TrailerStart } else { ChunkState::Data };
                }
                ChunkState::Data => {
                    let take = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    on_data(&input[i..i + take]);
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = ChunkState::DataCr;
                    }
                    continue;
                }
                ChunkState::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError("expected CRLF after chunk data"));
                    }
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError("expected CRLF after chunk data"));
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::TrailerStart => {
                    self.state = if b == b'\r' { ChunkState::EndLf } else { ChunkState::TrailerLine };
                    self.line_bytes = 1;
                }
                ChunkState::TrailerLine => {
                    if b == b'\r' {
                        self.state = ChunkState::TrailerLf;
                    } else {
                        self.line_bytes += 1;
                        if self.line_bytes > CHUNK_LINE_BYTES_MAX {
                            return Err(ChunkError("trailer line too long"));
                        }
                    }
                }
                ChunkState::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkError("expected LF in trailer"));
                    }
                    self.state = ChunkState::TrailerStart;
                }
                ChunkState::EndLf => {
                    if b != b'\n' {
                        return Err(ChunkError("expected LF at end of body"));
                    }
                    self.state = ChunkState::Done;
                }
                ChunkState::Done => unreachable!("loop condition"),
            }
            i += 1;
        }
        Ok(i)
    }
}

/// Appends the head of one chunk of `len` payload bytes.
pub fn write_chunk_head(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// The reason phrase for a status line.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Option<RequestHead>, HeadError> {
        parse_request_head(raw.as_bytes(), 100, 64 * 1024)
    }

    #[test]
    fn request_heads_parse_framing_and_keep_alive() {
        let raw = "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nAuthorization: Bearer k\r\n\r\nrest";
        let h = head(raw).unwrap().unwrap();
        assert_eq!(h.method, Method::Post);
        assert_eq!(&raw[h.target.clone()], "/v1/chat/completions?x=1");
        assert_eq!(h.framing, Framing::Length(12));
        assert!(h.keep_alive);
        assert_eq!(&raw[h.authorization.unwrap()], "Bearer k");
        assert_eq!(&raw[h.len..], "rest");

        let h = head("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap().unwrap();
        assert!(h.keep_alive);
        let h = head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.expect_continue);
    }

    #[test]
    fn request_heads_refuse_what_they_must() {
        assert!(head("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        assert!(matches!(head("\x01\x02 nonsense\r\n\r\n"), Err(HeadError::Malformed(_))));
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap_err(),
            HeadError::Malformed("both Transfer-Encoding and Content-Length")
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n").unwrap_err(),
            HeadError::TransferEncoding
        );
        assert!(head("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(head("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").is_err());
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(head(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(), HeadError::TooManyHeaders);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(2000));
        assert_eq!(parse_request_head(big.as_bytes(), 100, 1024).unwrap_err(), HeadError::TooLarge);
    }

    #[test]
    fn response_heads_choose_framing() {
        let parse = |raw: &str| parse_response_head(raw.as_bytes(), 64 * 1024).unwrap().unwrap();
        let h = parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: application/json\r\nx-ratelimit-remaining-requests: 9\r\nServer: x\r\n\r\n",
        );
        assert_eq!((h.status, h.framing, h.keep_alive), (200, Framing::Length(5), true));
        assert_eq!(h.forward.len(), 1);
        let raw = "HTTP/1.1 200 OK\r\nopenai-organization: org-x\r\nopenai-project: proj_x\r\nOpenAI-Processing-Ms: 12\r\nopenai-version: 2020-10-01\r\nx-request-id: r\r\n\r\n";
        let h = parse(raw);
        let names: Vec<&str> = h.forward.iter().map(|(n, _)| &raw[n.clone()]).collect();
        assert_eq!(names, ["OpenAI-Processing-Ms", "openai-version", "x-request-id"], "never the account's headers");
        let h = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        let h = parse("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));
        let h = parse("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(h.framing, Framing::Empty);
        assert!(parse_response_head(b"not http\r\n\r\n", 1024).is_err());
    }

    #[test]
    fn response_framing_is_strict() {
        let parse = |raw: &str| parse_response_head(raw.as_bytes(), 64 * 1024);
        let framing = |raw: &str| parse(raw).unwrap().map(|h| (h.framing, h.keep_alive)).unwrap();
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n").unwrap_err(),
            HeadError::Malformed("conflicting Content-Length headers")
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
            (Framing::Length(5), true)
        );
        // Both: chunked is read, and the connection is not trusted again.
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            (Framing::Chunked, false)
        );
        // A coding list not ending in chunked: until close, whatever the length says.
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n"),
            (Framing::Close, false)
        );
        assert_eq!(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), (Framing::Close, false));
        assert_eq!(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: notchunked\r\n\r\n"), (Framing::Close, false));
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
            (Framing::Chunked, true)
        );
        assert_eq!(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"), (Framing::Chunked, true));
    }

    fn decode_all(input: &[u8], cut: usize) -> (Vec<u8>, usize, bool) {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let a = d.decode(&input[..cut], |p| out.extend_from_slice(p)).unwrap();
        assert_eq!(a, cut, "a cut body is consumed whole");
        let b = d.decode(&input[cut..], |p| out.extend_from_slice(p)).unwrap();
        (out, a + b, d.is_done())
    }

    #[test]
    fn chunked_bodies_decode_at_every_cut() {
        let body = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for cut in 0..body.len() - 4 {
            let (out, used, done) = decode_all(body, cut);
            assert_eq!(out, b"hello, world");
            assert_eq!(used, body.len() - 4, "cut {cut}");
            assert!(done);
        }
    }

    #[test]
    fn chunked_errors() {
        let mut d = ChunkedDecoder::new();
        assert!(d.decode(b"zz\r\n", |_| ()).is_err());
        let mut d = ChunkedDecoder::new();
        assert!(d.decode(b"2\r\nabX", |_| ()).is_err());
        let mut d = ChunkedDecoder::new();
        assert!(d.decode(b"ffffffffffffffff\r\n", |_| ()).is_err());
    }

    #[test]
    fn extensions_and_trailer_lines_are_capped() {
        let at_cap = format!(
            "1;{}\r\na\r\n0\r\nx: {}\r\n\r\n",
            "e".repeat(CHUNK_LINE_BYTES_MAX - 1),
            "t".repeat(CHUNK_LINE_BYTES_MAX - 3)
        );
        let (out, used, done) = decode_all(at_cap.as_bytes(), 0);
        assert_eq!((out.as_slice(), used, done), (&b"a"[..], at_cap.len(), true));
        // Fed a byte at a time, so the cap holds however the input is cut.
        let endless_extension = format!("5;{}", "e".repeat(CHUNK_LINE_BYTES_MAX));
        let endless_trailer = format!("0\r\nx: {}", "t".repeat(CHUNK_LINE_BYTES_MAX));
        for (input, message) in
            [(endless_extension, "chunk extension too long"), (endless_trailer, "trailer line too long")]
        {
            let mut d = ChunkedDecoder::new();
            let error = input.as_bytes().chunks(1).find_map(|b| d.decode(b, |_| ()).err());
            assert_eq!(error, Some(ChunkError(message)));
        }
    }

    #[test]
    fn chunk_heads_are_hex() {
        let mut v = Vec::new();
        write_chunk_head(&mut v, 0);
        write_chunk_head(&mut v, 255);
        write_chunk_head(&mut v, 4096);
        assert_eq!(v, b"0\r\nff\r\n1000\r\n");
    }
}
