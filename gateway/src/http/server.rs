//! Client connections: read requests, hand them to the pipeline, keep the
//! connection alive.
//!
//! One task per connection on the shard that accepted it. The read buffer is
//! reused across requests; bytes past the end of one request (pipelining)
//! stay in it for the next. Every wait has a limit: the idle wait for a new
//! request (`client_idle_timeout_ms`), the head once its first byte arrived
//! (`request_head_timeout_ms`, which is what cuts off a slowloris client),
//! and the body (`request_body_timeout_ms`).
//!
//! A read that hits its deadline is cancelled and waited for, so the read
//! buffer comes back with whatever had arrived: the error that follows is
//! written in the dialect of the request line already read.
//!
//! Panics stop at two boundaries: the pipeline's, per request (answered with
//! a 500), and the connection's, around everything else; either way only
//! that connection is lost, never the shard (monoio does not catch a task's
//! panic, so one escaping here would end the shard's thread).

use std::io;
use std::rc::Rc;
use std::time::Duration;

use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, CancelableAsyncReadRent, Canceller};
use monoio::net::TcpStream;
use monoio::time::Instant;

use super::codec::{self, ChunkedDecoder, Framing, HeadError, RequestHead};
use crate::config::HttpLimits;
use crate::error::{Dialect, GatewayError, rescue};
use crate::shard::{Counter, Shard};

/// Reusable buffers of one client connection, lent to the pipeline.
#[derive(Default)]
pub struct Scratch {
    /// The request to a provider, head and body.
    pub request: Vec<u8>,
    /// A body being rewritten or a provider's response body.
    pub body: Vec<u8>,
    /// Stream events waiting to be written.
    pub events: Vec<u8>,
    /// The client's socket, to notice it leaving while a provider is
    /// awaited ([`crate::sys::peer_closed`]).
    pub client_fd: Option<std::os::fd::RawFd>,
}

/// Serves one client connection until it closes, errs or idles out.
pub async fn serve_connection(shard: Rc<Shard>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let client_fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let mut conn = Conn {
        stream,
        rbuf: Vec::with_capacity(READ_BYTES),
        wbuf: Vec::with_capacity(8 * 1024),
        chunked_body: Vec::new(),
        scratch: Scratch { client_fd: Some(client_fd), ..Scratch::default() },
    };
    // The backstop: a panic outside the pipeline's own boundary (reading a
    // request, writing an error) closes this connection and nothing else.
    match catch_unwind(serve(&shard, &mut conn)).await {
        Ok(Ending::Close) => {}
        // Outside `serve`, so the request no longer counts as in flight.
        Ok(Ending::Linger) => conn.linger().await,
        Err(_panic) => shard.count(Counter::Panics, 1),
    }
}

/// How a connection ends once `serve` is done with it.
enum Ending {
    Close,
    /// An error was answered before the request was read whole: close
    /// gently, so the client reads the answer (see [`Conn::linger`]).
    Linger,
}

async fn serve(shard: &Rc<Shard>, conn: &mut Conn) -> Ending {
    loop {
        let limits = shard.snapshot().config.http.clone();
        let head = match conn.read_head(&limits).await {
            Ok(Some(head)) => head,
            Ok(None) => return Ending::Close,
            Err(ReadError::Reply(e)) => {
                let dialect = request_line_front_door(&conn.rbuf);
                let _ = conn.reply_error_and_close(&e, dialect).await;
                return Ending::Linger;
            }
            Err(ReadError::Close) => return Ending::Close,
        };
        // The dialect errors are written in, known before the body is read:
        // nothing after this point needs the head's bytes to answer.
        let front = crate::pipeline::front_door(&conn.rbuf[head.target.clone()]);
        #[cfg(feature = "fault-injection")]
        if head.fault.as_ref().is_some_and(|r| &conn.rbuf[r.clone()] == b"panic-outside-pipeline") {
            panic!("fault injection: panic outside the pipeline requested by the test");
        }
        let _in_flight = shard.begin_request();
        // The request runs on the config in force when its head arrived, not
        // on the one the connection last used: a reload may have come while
        // it sat idle, and a snapshot taken before it would name other
        // deployments than the pool and addresses the shard has now.
        let snapshot = shard.snapshot();
        let body_range = match conn.read_body(&head, &snapshot.config.http).await {
            Ok(r) => r,
            Err(ReadError::Reply(e)) => {
                let _ = conn.reply_error_and_close(&e, front).await;
                return Ending::Linger;
            }
            Err(ReadError::Close) => return Ending::Close,
        };
        let keep_alive = head.keep_alive && !shard.is_draining();
        let finished = conn.dispatch(shard, &snapshot, &head, front, body_range, keep_alive).await;
        if !finished || !keep_alive {
            return Ending::Close;
        }
    }
}

/// Bytes asked of the kernel per read of a client connection.
const READ_BYTES: usize = 8 * 1024;

/// How long, and for how many bytes, a connection answered before its
/// request was read whole keeps reading (and discarding) after the answer:
/// see [`Conn::linger`].
const LINGER_MS: u64 = 2_000;
const LINGER_BYTES_MAX: usize = 4 * 1024 * 1024;

/// How many bytes of chunked framing (size lines, extensions, CRLFs,
/// trailers) a request body may carry on top of `request_body_bytes_max`.
/// This bounds the encoded body held in the read buffer; it allows a body of
/// the largest size in chunks down to about 256 bytes, and refuses bodies of
/// tiny chunks with long extensions that would otherwise be read in full.
const CHUNKED_FRAMING_BYTES_MAX: usize = 1024 * 1024;

/// The front door of a request whose head could not be read whole, from
/// its request line when that much arrived; OpenAI's otherwise.
fn request_line_front_door(buf: &[u8]) -> Dialect {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    match (parts.next(), parts.next()) {
        (Some(_method), Some(target)) => crate::pipeline::front_door(target),
        _ => Dialect::OpenAi,
    }
}

enum ReadError {
    /// Answer with this error, then close.
    Reply(GatewayError),
    /// Close without answering (the client went away or idled out).
    Close,
}

/// Why a read of the client connection gave no bytes.
enum FillError {
    /// The deadline passed; the buffer is intact.
    Timeout,
    /// The connection failed.
    Io,
}

/// Where a request's body is: in the read buffer, or decoded from chunks.
#[derive(Clone)]
enum BodyAt {
    Buffer(std::ops::Range<usize>),
    Decoded,
}

struct Conn {
    stream: TcpStream,
    /// Unprocessed bytes from the client; the current request starts at 0.
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    chunked_body: Vec<u8>,
    scratch: Scratch,
}

impl Conn {
    /// Reads more bytes onto the end of `rbuf`, before `deadline`. On the
    /// deadline the read is cancelled and awaited, so `rbuf` comes back
    /// whole (dropping the read would drop the buffer it owns).
    async fn fill(&mut self, deadline: Instant) -> Result<usize, FillError> {
        let len = self.rbuf.len();
        self.rbuf.reserve(READ_BYTES);
        let cap = self.rbuf.capacity();
        let buf = std::mem::take(&mut self.rbuf);
        let canceller = Canceller::new();
        let read = self.stream.cancelable_read(buf.slice_mut(len..cap), canceller.handle());
        let mut read = std::pin::pin!(read);
        let (res, slice, timed_out) = match monoio::time::timeout_at(deadline, read.as_mut()).await {
            Ok((res, slice)) => (res, slice, false),
            Err(_) => {
                let _ = canceller.cancel();
                let (res, slice) = read.await;
                (res, slice, true)
            }
        };
        let slice: SliceMut<Vec<u8>> = slice;
        self.rbuf = slice.into_inner();
        match res {
            // Bytes that raced the cancellation are kept, like any others.
            Ok(n) => Ok(n),
            Err(_) if timed_out => Err(FillError::Timeout),
            Err(_) => Err(FillError::Io),
        }
    }

    async fn read_head(&mut self, limits: &HttpLimits) -> Result<Option<RequestHead>, ReadError> {
        let idle = Duration::from_millis(limits.client_idle_timeout_ms);
        let mut deadline = Instant::now() + idle;
        let mut started = !self.rbuf.is_empty();
        if started {
            deadline = Instant::now() + Duration::from_millis(limits.request_head_timeout_ms);
        }
        loop {
            if started {
                match codec::parse_request_head(&self.rbuf, limits.request_headers_max, limits.request_head_bytes_max) {
                    Ok(Some(head)) => return Ok(Some(head)),
                    Ok(None) => {}
                    Err(e) => return Err(ReadError::Reply(head_error(e))),
                }
            }
            let had = self.rbuf.len();
            let n = match self.fill(deadline).await {
                Ok(n) => n,
                Err(FillError::Timeout) if started && had > 0 => {
                    return Err(ReadError::Reply(GatewayError::ClientTimeout(
                        "request head not received in time".into(),
                    )));
                }
                Err(_) => return Err(ReadError::Close),
            };
            if n == 0 {
                return if had == 0 { Ok(None) } else { Err(ReadError::Close) };
            }
            if !started {
                started = true;
                deadline = Instant::now() + Duration::from_millis(limits.request_head_timeout_ms);
            }
        }
    }

    async fn read_body(&mut self, head: &RequestHead, limits: &HttpLimits) -> Result<BodyAt, ReadError> {
        let deadline = Instant::now() + Duration::from_millis(limits.request_body_timeout_ms);
        let too_large = || ReadError::Reply(GatewayError::PayloadTooLarge { limit: limits.request_body_bytes_max });
        match head.framing {
            Framing::Empty | Framing::Close => Ok(BodyAt::Buffer(head.len..head.len)),
            Framing::Length(n) => {
                let n = usize::try_from(n).map_err(|_| too_large())?;
                if n > limits.request_body_bytes_max {
                    return Err(too_large());
                }
                let end = head.len + n;
                self.continue_if_expected(head, self.rbuf.len() < end).await?;
                while self.rbuf.len() < end {
                    if self.fill(deadline).await.map_err(body_read_error)? == 0 {
                        return Err(ReadError::Close);
                    }
                }
                Ok(BodyAt::Buffer(head.len..end))
            }
            Framing::Chunked => {
                self.continue_if_expected(head, true).await?;
                self.read_chunked(head, limits, deadline).await
            }
        }
    }

    async fn read_chunked(
        &mut self,
        head: &RequestHead,
        limits: &HttpLimits,
        deadline: Instant,
    ) -> Result<BodyAt, ReadError> {
        let mut decoder = ChunkedDecoder::new();
        self.chunked_body.clear();
        let mut at = head.len;
        loop {
            let out = &mut self.chunked_body;
            let used = decoder
                .decode(&self.rbuf[at..], |p| out.extend_from_slice(p))
                .map_err(|e| ReadError::Reply(GatewayError::BadRequest(e.to_string())))?;
            at += used;
            let too_large = || ReadError::Reply(GatewayError::PayloadTooLarge { limit: limits.request_body_bytes_max });
            if self.chunked_body.len() > limits.request_body_bytes_max {
                return Err(too_large());
            }
            if at - head.len > limits.request_body_bytes_max.saturating_add(CHUNKED_FRAMING_BYTES_MAX) {
                return Err(too_large());
            }
            if decoder.is_done() {
                // The encoded body is consumed: drop it so that `rbuf`
                // starts with whatever the client pipelined after it.
                self.rbuf.drain(head.len..at);
                return Ok(BodyAt::Decoded);
            }
            if self.fill(deadline).await.map_err(body_read_error)? == 0 {
                return Err(ReadError::Close);
            }
        }
    }

    /// Sends `100 Continue` when the client waits for it before its body.
    async fn continue_if_expected(&mut self, head: &RequestHead, body_missing: bool) -> Result<(), ReadError> {
        if head.expect_continue && head.version_minor == 1 && body_missing {
            let (res, _) = self.stream.write_all(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]).await;
            res.map_err(|_| ReadError::Close)?;
        }
        Ok(())
    }

    /// Closes after an error that was answered before the request was read
    /// whole (RFC 9112 9.6). Closing with unread bytes in the kernel's
    /// buffer makes it send a reset, which can reach the client before it
    /// read the answer: it would see ECONNRESET instead of a 413. So the
    /// write side is shut (the client sees the end of the answer), and what
    /// the client still sends is read and dropped, for at most `LINGER_MS`
    /// and `LINGER_BYTES_MAX`, or until it closes its side.
    async fn linger(&mut self) {
        let _ = self.stream.shutdown().await;
        let deadline = Instant::now() + Duration::from_millis(LINGER_MS);
        let mut discarded = 0;
        while discarded < LINGER_BYTES_MAX {
            self.rbuf.clear();
            match self.fill(deadline).await {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            }
        }
    }

    async fn reply_error_and_close(&mut self, e: &GatewayError, dialect: Dialect) -> io::Result<()> {
        let mut responder = Responder::new(&mut self.stream, &mut self.wbuf, false, false);
        responder.dialect = dialect;
        responder.error(e).await
    }

    /// Runs the pipeline for one request. Returns whether the connection is
    /// still usable for another request.
    async fn dispatch(
        &mut self,
        shard: &Rc<Shard>,
        snapshot: &Rc<crate::shard::Snapshot>,
        head: &RequestHead,
        front: Dialect,
        body_at: BodyAt,
        keep_alive: bool,
    ) -> bool {
        let Conn { stream, rbuf, wbuf, chunked_body, scratch } = self;
        let (body, consumed) = match &body_at {
            BodyAt::Buffer(r) => (&rbuf[r.clone()], r.end),
            BodyAt::Decoded => (&chunked_body[..], head.len),
        };
        let request = crate::pipeline::Request { head, buf: rbuf, body, front };
        let mut responder = Responder::new(stream, wbuf, keep_alive, head.version_minor == 0);
        responder.dialect = front;
        let outcome = catch_unwind(crate::pipeline::handle(shard, snapshot, &request, &mut responder, scratch)).await;
        let usable = match outcome {
            Ok(Ok(())) => responder.finished(),
            Ok(Err(e)) => {
                shard.count(Counter::ResponseErrors, 1);
                responder.try_error(&e).await
            }
            Err(_panic) => {
                shard.count(Counter::Panics, 1);
                let e = GatewayError::Internal("internal error while handling the request".into());
                let _ = responder.try_error(&e).await;
                // State touched by the panicking code may be half-updated.
                false
            }
        };
        shard.count_status(responder.status);
        rbuf.drain(..consumed);
        usable
    }
}

fn head_error(e: HeadError) -> GatewayError {
    match e {
        HeadError::TooLarge | HeadError::TooManyHeaders => GatewayError::HeadTooLarge(e.to_string()),
        HeadError::Malformed(_) | HeadError::Version | HeadError::TransferEncoding => {
            GatewayError::BadRequest(e.to_string())
        }
    }
}

/// A body read that timed out is answered with 408; a broken connection
/// has no one left to answer.
fn body_read_error(e: FillError) -> ReadError {
    match e {
        FillError::Timeout => ReadError::Reply(GatewayError::ClientTimeout("request body not received in time".into())),
        FillError::Io => ReadError::Close,
    }
}

/// Polls `future`, turning a panic inside it into an `Err` instead of an
/// unwind through the shard's runtime. One bad request must not take down
/// the shard and every connection on it.
async fn catch_unwind<F: std::future::Future>(future: F) -> Result<F::Output, Box<dyn std::any::Any + Send>> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    })
    .await
}

/// Where the answer to a request goes. It tracks what was sent, so the
/// connection loop knows whether an error can still be answered properly.
pub struct Responder<'a> {
    stream: &'a mut TcpStream,
    wbuf: &'a mut Vec<u8>,
    keep_alive: bool,
    http10: bool,
    state: State,
    /// The status sent, or 0 before the head went out.
    pub status: u16,
    /// The dialect errors are written in: the front door's.
    pub dialect: Dialect,
    /// `x-corelay-cache` on every head this responder writes (`hit`,
    /// `miss`), when the response cache looked at the request.
    pub cache_status: Option<&'static [u8]>,
    /// Keep a copy of a whole 200 answer of at most this many bytes (for
    /// the response cache).
    pub capture: Option<usize>,
    /// The copy: content type and body.
    pub captured: Option<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Fresh,
    Streaming,
    Done,
    Broken,
}

/// A response header as bytes: (name, value).
pub type Header<'h> = (&'h [u8], &'h [u8]);

impl<'a> Responder<'a> {
    fn new(stream: &'a mut TcpStream, wbuf: &'a mut Vec<u8>, keep_alive: bool, http10: bool) -> Responder<'a> {
        Responder {
            stream,
            wbuf,
            keep_alive,
            http10,
            state: State::Fresh,
            status: 0,
            dialect: Dialect::OpenAi,
            cache_status: None,
            capture: None,
            captured: None,
        }
    }

    /// Whether the response was sent whole and the connection can go on.
    fn finished(&self) -> bool {
        self.state == State::Done
    }

    /// Whether nothing has been sent yet.
    pub fn is_fresh(&self) -> bool {
        self.state == State::Fresh
    }

    fn write_head(&mut self, status: u16, content_type: &[u8], headers: &[Header<'_>], length: Option<usize>) {
        let w = &mut *self.wbuf;
        w.clear();
        w.extend_from_slice(if self.http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
        w.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
        w.push(b' ');
        w.extend_from_slice(codec::reason(status).as_bytes());
        w.extend_from_slice(b"\r\ncontent-type: ");
        w.extend_from_slice(content_type);
        for (name, value) in headers {
            w.extend_from_slice(b"\r\n");
            w.extend_from_slice(name);
            w.extend_from_slice(b": ");
            w.extend_from_slice(value);
        }
        if let Some(status) = self.cache_status {
            w.extend_from_slice(b"\r\nx-corelay-cache: ");
            w.extend_from_slice(status);
        }
        match length {
            Some(n) => {
                w.extend_from_slice(b"\r\ncontent-length: ");
                w.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            }
            None if !self.http10 => w.extend_from_slice(b"\r\ntransfer-encoding: chunked"),
            None => self.keep_alive = false,
        }
        if !self.keep_alive {
            w.extend_from_slice(b"\r\nconnection: close");
        } else if self.http10 {
            w.extend_from_slice(b"\r\nconnection: keep-alive");
        }
        w.extend_from_slice(b"\r\n\r\n");
        self.status = status;
    }

    async fn flush(&mut self) -> io::Result<()> {
        let buf = std::mem::take(self.wbuf);
        let (res, mut buf) = self.stream.write_all(buf).await;
        buf.clear();
        *self.wbuf = buf;
        if res.is_err() {
            self.state = State::Broken;
        }
        res.map(|_| ())
    }

    /// Sends a whole response.
    pub async fn send(
        &mut self,
        status: u16,
        content_type: &[u8],
        headers: &[Header<'_>],
        body: &[u8],
    ) -> io::Result<()> {
        debug_assert_eq!(self.state, State::Fresh);
        self.write_head(status, content_type, headers, Some(body.len()));
        self.wbuf.extend_from_slice(body);
        self.flush().await?;
        self.state = State::Done;
        // Copied once the client has it, off its latency.
        if status == 200 && self.capture.is_some_and(|most| body.len() <= most) {
            self.captured = Some((content_type.to_vec(), body.to_vec()));
        }
        Ok(())
    }

    pub async fn json(&mut self, status: u16, body: &[u8]) -> io::Result<()> {
        self.send(status, b"application/json", &[], body).await
    }

    /// Answers `error` in the client's dialect.
    pub async fn error(&mut self, error: &GatewayError) -> io::Result<()> {
        let (status, headers, body) = rescue(error, self.dialect);
        let headers: Vec<Header<'_>> = headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
        self.send(status, b"application/json", &headers, &body).await
    }

    /// Answers `error` if nothing was sent yet; returns whether the
    /// connection is still usable.
    async fn try_error(&mut self, error: &GatewayError) -> bool {
        match self.state {
            State::Fresh => self.error(error).await.is_ok() && self.keep_alive,
            // A stream that broke off cannot carry a status any more; the
            // pipeline already told the client in the stream itself.
            _ => false,
        }
    }

    /// Sends the head of a streamed response (chunked, or close-delimited
    /// for an HTTP/1.0 client).
    pub async fn start_stream(&mut self, status: u16, content_type: &[u8], headers: &[Header<'_>]) -> io::Result<()> {
        debug_assert_eq!(self.state, State::Fresh);
        self.write_head(status, content_type, headers, None);
        self.state = State::Streaming;
        self.flush().await
    }

    /// Sends stream bytes at once, as one chunk.
    pub async fn stream(&mut self, payload: &[u8]) -> io::Result<()> {
        if payload.is_empty() {
            return Ok(());
        }
        if !self.http10 {
            codec::write_chunk_head(self.wbuf, payload.len());
        }
        self.wbuf.extend_from_slice(payload);
        if !self.http10 {
            self.wbuf.extend_from_slice(b"\r\n");
        }
        self.flush().await
    }

    /// Ends a streamed response.
    pub async fn end_stream(&mut self) -> io::Result<()> {
        if !self.http10 {
            self.wbuf.extend_from_slice(b"0\r\n\r\n");
            self.flush().await?;
        }
        self.state = if self.keep_alive { State::Done } else { State::Broken };
        Ok(())
    }

    /// Marks a stream as cut short: the connection must close.
    pub fn abort_stream(&mut self) {
        self.state = State::Broken;
    }
}
