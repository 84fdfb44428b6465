//! One client connection: read requests, answer them, repeat.
//!
//! The connection owns one read buffer and one write buffer for its whole
//! life. Reads append to the read buffer (monoio's rent API would otherwise
//! overwrite from index 0), and bytes past the current request stay there, so
//! pipelined requests are served in order. Every response, and every SSE event
//! of a stream, is written with one `write_all` as soon as it is ready: nothing
//! is held back waiting for more. A connection ends with a close, or with a
//! reset when a script asks for one (see `reset`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::mock::chunked::{ChunkError, ChunkedDecoder};
use crate::mock::cli::Config;
use crate::mock::events::{CutKind, EventSource};
use crate::mock::http::{self, Framing, Head, Rejection, ResponseHead};
use crate::mock::routes::{self, GARBAGE, JsonReply, Reply};
use crate::mock::state::{Recorded, State};
use crate::mock::{openai, reset};

const INITIAL_BUF: usize = 8 * 1024;
/// Grow the read buffer when less than this is free, so reads stay large.
const MIN_READ: usize = 4 * 1024;
/// A read buffer grown beyond this by a big body is replaced once idle.
const MAX_IDLE_BUF: usize = 256 * 1024;
/// Upper bound on `x-mock-hang`, so a client that never leaves cannot pin a
/// task forever.
const HANG_LIMIT: Duration = Duration::from_secs(3600);

/// Serves one accepted connection until the client leaves or a reply closes
/// it.
pub async fn serve(stream: TcpStream, cfg: Config, state: Arc<State>) {
    state.connection_accepted();
    // Small SSE events must leave at once, not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let mut conn = Conn {
        stream,
        cfg,
        state,
        buf: Vec::with_capacity(INITIAL_BUF),
        out: Vec::with_capacity(INITIAL_BUF),
        event: Vec::new(),
    };
    // An I/O error only means the peer went away; there is nobody to tell.
    let _ = conn.run().await;
}

struct Conn {
    stream: TcpStream,
    cfg: Config,
    state: Arc<State>,
    /// Received bytes not yet consumed by a request.
    buf: Vec<u8>,
    /// The response bytes about to be written.
    out: Vec<u8>,
    /// Scratch space for one SSE event before it is framed as a chunk.
    event: Vec<u8>,
}

/// The outcome of waiting for the next request.
#[allow(
    clippy::large_enum_variant,
    reason = "moved once per request; boxing the head would allocate on every request instead"
)]
enum Incoming {
    Request(Head, Vec<u8>),
    Rejected(Rejection),
    Eof,
}

/// The outcome of reading a body.
enum Body {
    /// The body, and how many buffered bytes the whole request used.
    Done(Vec<u8>, usize),
    Rejected(Rejection),
    Eof,
}

impl Conn {
    async fn run(&mut self) -> io::Result<()> {
        loop {
            let (head, body) = match self.next_request().await? {
                Incoming::Request(head, body) => (head, body),
                Incoming::Rejected(rejection) => return self.reject(rejection).await,
                Incoming::Eof => return Ok(()),
            };
            self.state.request_received();
            let reply = routes::route(&head, &body, &self.cfg, &self.state);
            let head = self.record(head, body);
            if !self.send(reply, &head).await? {
                return Ok(());
            }
        }
    }

    async fn next_request(&mut self) -> io::Result<Incoming> {
        let head = loop {
            match http::parse_head(&self.buf) {
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(rejection) => return Ok(Incoming::Rejected(rejection)),
            }
            if self.read_more().await? == 0 {
                return Ok(Incoming::Eof);
            }
        };
        Ok(match self.read_body(&head).await? {
            Body::Done(body, used) => {
                self.consume(used);
                Incoming::Request(head, body)
            }
            Body::Rejected(rejection) => Incoming::Rejected(rejection),
            Body::Eof => Incoming::Eof,
        })
    }

    async fn read_body(&mut self, head: &Head) -> io::Result<Body> {
        // curl and some SDKs wait for this before sending a large body.
        if head.expect_continue && !head.http10 && self.buf.len() == head.len {
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.flush().await?;
        }
        match head.framing {
            Framing::Empty => Ok(Body::Done(Vec::new(), head.len)),
            Framing::Length(n) => self.read_sized(head.len, n).await,
            Framing::Chunked => self.read_chunked(head.len).await,
        }
    }

    async fn read_sized(&mut self, start: usize, len: usize) -> io::Result<Body> {
        let end = start + len;
        self.buf.reserve(end.saturating_sub(self.buf.len()));
        while self.buf.len() < end {
            if self.read_more().await? == 0 {
                return Ok(Body::Eof);
            }
        }
        Ok(Body::Done(self.buf[start..end].to_vec(), end))
    }

    async fn read_chunked(&mut self, start: usize) -> io::Result<Body> {
        let mut decoder = ChunkedDecoder::new();
        loop {
            match decoder.feed(&self.buf[start..]) {
                Ok(Some(used)) => return Ok(Body::Done(decoder.into_body(), start + used)),
                Ok(None) => {}
                Err(ChunkError::TooLarge) => {
                    return Ok(Body::Rejected(Rejection::new(413, "request body too large")));
                }
                Err(ChunkError::Malformed) => {
                    return Ok(Body::Rejected(Rejection::new(400, "malformed chunked body")));
                }
            }
            if self.read_more().await? == 0 {
                return Ok(Body::Eof);
            }
        }
    }

    /// Keeps a model request for `/mock/last-request`, before any reply
    /// byte goes out so a client that saw the reply always finds it there.
    /// Headers and body move into the record; the head keeps what framing
    /// the reply needs.
    fn record(&self, mut head: Head, body: Vec<u8>) -> Head {
        if !routes::is_own_endpoint(head.path()) {
            let headers = std::mem::take(&mut head.headers);
            let request = Recorded { method: head.method.clone(), target: head.target.clone(), headers, body };
            self.state.record(request);
        }
        head
    }

    /// Drops one request's bytes, keeping any pipelined ones after it.
    fn consume(&mut self, used: usize) {
        self.buf.drain(..used);
        if self.buf.is_empty() && self.buf.capacity() > MAX_IDLE_BUF {
            self.buf = Vec::with_capacity(INITIAL_BUF);
        }
    }

    /// Appends whatever the socket has to the read buffer; 0 means EOF.
    async fn read_more(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < MIN_READ {
            self.buf.reserve(INITIAL_BUF);
        }
        let len = self.buf.len();
        let buf: SliceMut<Vec<u8>> = std::mem::take(&mut self.buf).slice_mut(len..);
        let (res, buf) = self.stream.read(buf).await;
        self.buf = buf.into_inner();
        res
    }

    /// Writes out the pending response bytes.
    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let (res, mut out) = self.stream.write_all(std::mem::take(&mut self.out)).await;
        out.clear();
        self.out = out;
        res.map(drop)
    }

    /// Sends `reply`; returns whether the connection stays open.
    async fn send(&mut self, reply: Reply, head: &Head) -> io::Result<bool> {
        match reply {
            Reply::Json(reply) => self.send_json(reply, head).await,
            Reply::Stream(plan) => self.send_stream(&plan, head).await,
            Reply::Events(list) => self.send_stream(&list, head).await,
            Reply::Garbage => {
                self.out.extend_from_slice(GARBAGE);
                self.flush().await?;
                Ok(false)
            }
            Reply::Hang => {
                self.hang().await;
                Ok(false)
            }
            Reply::Reset(delay) => {
                pause(delay).await;
                reset::arm(&self.stream)?;
                Ok(false)
            }
        }
    }

    /// The rate-limit header lines for the answer to `head`: the dialect's
    /// on model answers, none on the mock's own endpoints.
    fn rate_limits(&self, head: &Head) -> &'static [u8] {
        if routes::is_own_endpoint(head.path()) { &[] } else { self.state.rate_limits() }
    }

    async fn send_json(&mut self, reply: JsonReply, head: &Head) -> io::Result<bool> {
        pause(reply.delay).await;
        let resp = ResponseHead {
            status: reply.status,
            content_type: reply.content_type,
            content_length: Some(reply.body.len()),
            http10: head.http10,
            keep_alive: head.keep_alive,
            allow: reply.allow,
            extra: &reply.extra,
            identity: self.state.identity(),
            rate_limits: self.rate_limits(head),
        };
        http::write_head(&mut self.out, &resp);
        self.out.extend_from_slice(&reply.body);
        self.flush().await?;
        Ok(head.keep_alive)
    }

    /// Streams events (SSE, NDJSON lines or event-stream frames), one write
    /// per event. HTTP/1.0 clients get a close-delimited body since they do
    /// not know chunked encoding. A cut stops after its events and closes or
    /// resets the connection.
    async fn send_stream(&mut self, plan: &dyn EventSource, head: &Head) -> io::Result<bool> {
        let chunked = !head.http10;
        let keep_alive = head.keep_alive && chunked;
        let resp = ResponseHead {
            status: 200,
            content_type: plan.content_type(),
            content_length: None,
            http10: head.http10,
            keep_alive,
            allow: None,
            extra: &[],
            identity: self.state.identity(),
            rate_limits: self.rate_limits(head),
        };
        // The head goes out together with the first event.
        http::write_head(&mut self.out, &resp);
        let total = plan.count();
        let cut = plan.cut();
        let send = cut.map_or(total, |c| total.min(c.after as usize));
        for i in 0..send {
            if plan.is_paced(i) {
                pause(plan.delay()).await;
            }
            plan.render(i, &mut self.event);
            http::write_chunk(&mut self.out, &self.event, chunked);
            if i + 1 == total && cut.is_none() && chunked {
                self.out.extend_from_slice(http::LAST_CHUNK);
            }
            self.flush().await?;
        }
        // With a cut at 0 only the head is pending.
        self.flush().await?;
        if cut.is_some_and(|c| c.kind == CutKind::Reset) {
            reset::arm(&self.stream)?;
        }
        Ok(keep_alive && cut.is_none())
    }

    /// Answers a request the parser refused, then closes: after a framing
    /// error the start of the next request is unknown.
    async fn reject(&mut self, rejection: Rejection) -> io::Result<()> {
        let body = openai::error_body(rejection.status, rejection.message);
        let resp = ResponseHead {
            status: rejection.status,
            content_type: "application/json",
            content_length: Some(body.len()),
            http10: false,
            keep_alive: false,
            allow: None,
            extra: &[],
            identity: self.state.identity(),
            rate_limits: &[],
        };
        http::write_head(&mut self.out, &resp);
        self.out.extend_from_slice(&body);
        self.flush().await
    }

    /// Never answers. Reading (and discarding) is how we notice the client
    /// leaving; the timeout only bounds a client that never does.
    async fn hang(&mut self) {
        let drain = async {
            loop {
                self.buf.clear();
                if !matches!(self.read_more().await, Ok(n) if n > 0) {
                    return;
                }
            }
        };
        let _ = monoio::time::timeout(HANG_LIMIT, drain).await;
    }
}

async fn pause(delay: Duration) {
    if !delay.is_zero() {
        monoio::time::sleep(delay).await;
    }
}
