//! The HTTP/1.1 wire layer: request heads in, response heads and body framing
//! out.
//!
//! Hand-written on `httparse` for the reasons in tech.md §2 (monoio-http
//! buffers streamed bodies, which would delay SSE). A parsed [`Head`] is owned
//! so the connection can drop the bytes it came from and keep any pipelined
//! leftovers in its read buffer.

use std::io::Write;

use crate::mock::script::Script;

/// Largest request head accepted; beyond it the answer is 431.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted; beyond it the answer is 413.
pub const MAX_BODY: usize = 64 * 1024 * 1024;
const MAX_HEADERS: usize = 96;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(usize),
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    /// Path plus query string, as received.
    pub target: String,
    pub http10: bool,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
    pub framing: Framing,
    pub expect_continue: bool,
    /// The `x-mock-*` directives, or why they are malformed.
    pub script: Result<Script, String>,
    /// All headers (lowercased names), for validation, `x-mock-echo` and
    /// `/mock/last-request`.
    pub headers: Vec<(String, String)>,
    /// Length of the head in bytes, i.e. where the body starts.
    pub len: usize,
}

impl Head {
    /// The target without its query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The query string, without the `?`.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A request the connection must refuse (and then close, since the framing
/// of whatever follows is unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub message: &'static str,
}

impl Rejection {
    pub const fn new(status: u16, message: &'static str) -> Self {
        Self { status, message }
    }
}

/// The header facts that shape framing and connection reuse.
#[derive(Default)]
struct Facts {
    length: Option<usize>,
    chunked: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

/// Parses a request head from the start of `buf`; `None` means incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, Rejection> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => build_head(&req, len).map(Some),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(too_large_head()),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(too_large_head()),
        Err(_) => Err(Rejection::new(400, "malformed HTTP request")),
    }
}

fn too_large_head() -> Rejection {
    Rejection::new(431, "request header fields too large")
}

fn build_head(req: &httparse::Request<'_, '_>, len: usize) -> Result<Head, Rejection> {
    let mut facts = Facts::default();
    let mut script = Ok(Script::default());
    for h in req.headers.iter() {
        read_fact(&mut facts, h)?;
        if let Ok(s) = &mut script
            && let Err(e) = s.apply(h.name, h.value)
        {
            script = Err(e);
        }
    }
    let http10 = req.version == Some(0);
    Ok(Head {
        method: req.method.unwrap_or_default().to_owned(),
        target: req.path.unwrap_or_default().to_owned(),
        http10,
        keep_alive: if http10 { facts.keep_alive && !facts.close } else { !facts.close },
        framing: framing(&facts)?,
        expect_continue: facts.expect_continue,
        script,
        headers: collect(req.headers),
        len,
    })
}

fn read_fact(facts: &mut Facts, h: &httparse::Header<'_>) -> Result<(), Rejection> {
    let name = h.name;
    if name.eq_ignore_ascii_case("content-length") {
        let n = parse_length(h.value)?;
        if facts.length.is_some_and(|old| old != n) {
            return Err(Rejection::new(400, "conflicting Content-Length headers"));
        }
        facts.length = Some(n);
    } else if name.eq_ignore_ascii_case("transfer-encoding") {
        if !has_token(h.value, "chunked") {
            return Err(Rejection::new(501, "unsupported Transfer-Encoding"));
        }
        facts.chunked = true;
    } else if name.eq_ignore_ascii_case("connection") {
        facts.close |= has_token(h.value, "close");
        facts.keep_alive |= has_token(h.value, "keep-alive");
    } else if name.eq_ignore_ascii_case("expect") {
        facts.expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
    }
    Ok(())
}

fn parse_length(value: &[u8]) -> Result<usize, Rejection> {
    let n = std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .ok_or(Rejection::new(400, "invalid Content-Length"))?;
    if n > MAX_BODY {
        return Err(Rejection::new(413, "request body too large"));
    }
    Ok(n)
}

/// Whether a comma-separated header value contains `token`.
fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Transfer-Encoding wins over Content-Length (RFC 9112 §6.3).
fn framing(facts: &Facts) -> Result<Framing, Rejection> {
    Ok(match (facts.chunked, facts.length) {
        (true, _) => Framing::Chunked,
        (false, Some(0) | None) => Framing::Empty,
        (false, Some(n)) => Framing::Length(n),
    })
}

fn collect(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).into_owned();
            (h.name.to_ascii_lowercase(), value)
        })
        .collect()
}

/// Appends a status line and headers for a body of `content_length` bytes,
/// or for a streamed body when it is `None` (chunked unless HTTP/1.0, where
/// the body ends when the connection closes).
pub fn write_head(out: &mut Vec<u8>, resp: &ResponseHead<'_>) {
    let status = resp.status;
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status));
    let _ = write!(out, "content-type: {}\r\n", resp.content_type);
    match resp.content_length {
        Some(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        None if !resp.http10 => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        None => {}
    }
    if let Some(allow) = resp.allow {
        let _ = write!(out, "allow: {allow}\r\n");
    }
    for (name, value) in resp.extra {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.extend_from_slice(resp.identity);
    out.extend_from_slice(resp.rate_limits);
    if !resp.keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if resp.http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// What [`write_head`] needs to know about a response.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead<'a> {
    pub status: u16,
    pub content_type: &'a str,
    pub content_length: Option<usize>,
    pub http10: bool,
    pub keep_alive: bool,
    pub allow: Option<&'a str>,
    /// Dialect-specific headers (`x-amzn-errortype`, `request-id`, ...).
    pub extra: &'a [(&'static str, String)],
    /// The server's `x-mock-name` line, rendered once at startup.
    pub identity: &'a [u8],
    /// The dialect's rate-limit lines (on model answers), rendered once.
    pub rate_limits: &'a [u8],
}

/// Appends `data` as one HTTP chunk, or raw for an HTTP/1.0 close-delimited
/// body.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if chunked {
        let _ = write!(out, "{:x}\r\n", data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
}

/// The chunk that ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        424 => "Failed Dependency",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Site Overloaded",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Head {
        parse_head(raw.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn partial_head_needs_more() {
        assert!(parse_head(b"POST / HTTP/1.1\r\nhost: x\r\n").unwrap().is_none());
    }

    #[test]
    fn keep_alive_defaults_follow_the_version() {
        assert!(head("GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn framing_prefers_chunked() {
        let h = head("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!((h.framing, h.len), (Framing::Length(3), 38));
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert_eq!(head("GET / HTTP/1.1\r\n\r\n").framing, Framing::Empty);
    }

    #[test]
    fn rejects_bad_requests() {
        let status = |raw: &str| parse_head(raw.as_bytes()).unwrap_err().status;
        assert_eq!(status("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), 501);
        assert_eq!(status("BAD\0 / HTTP/1.1\r\n\r\n"), 400);
        let huge = format!("GET / HTTP/1.1\r\nx: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(status(&huge), 431);
    }

    #[test]
    fn fixed_lines_follow_the_headers() {
        let mut out = Vec::new();
        let resp = ResponseHead {
            status: 429,
            content_type: "application/json",
            content_length: Some(2),
            http10: false,
            keep_alive: true,
            allow: None,
            extra: &[("retry-after", "3".into())],
            identity: b"x-mock-name: a\r\n",
            rate_limits: b"x-ratelimit-limit-requests: 1\r\n",
        };
        write_head(&mut out, &resp);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\
             retry-after: 3\r\nx-mock-name: a\r\nx-ratelimit-limit-requests: 1\r\n\r\n"
        );
    }

    #[test]
    fn echo_collects_lowercased_headers() {
        let h = head("POST /p?q=1 HTTP/1.1\r\nX-Mock-Echo: 1\r\nAuthorization: Bearer k\r\n\r\n");
        assert_eq!(h.path(), "/p");
        assert_eq!(h.headers[1], ("authorization".into(), "Bearer k".into()));
    }
}
