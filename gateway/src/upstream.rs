//! The client side: connections to providers, kept alive in a per-shard,
//! per-deployment pool.
//!
//! Each shard owns its pool outright (`RefCell`, no locks): a connection is
//! only ever used by the shard that opened it. A pool belongs to one config
//! generation, whose deployment indexes it uses; every connection carries
//! the generation, deployment index and origin it was opened for, and the
//! pool lends and takes back only its own. A reload renumbers deployments,
//! so without this a connection to one provider could come back under the
//! index of another and carry the other's key to it. Addresses come from the DNS
//! table the control plane resolves off-shard, so connecting never blocks a
//! shard on `getaddrinfo`. TLS is rustls through monoio-rustls, with the
//! webpki roots plus an optional private CA per deployment.
//!
//! A request goes out on an idle pooled connection when there is one. A
//! pooled connection may have been closed by the provider while it sat idle,
//! so it is checked first (without blocking): one with anything waiting on
//! it (the provider's close, a reset, stray bytes) is dropped unused. The
//! request is sent a second time, on a fresh connection, in one case only:
//! the connection came from the pool and writing the request to it failed,
//! so the provider never had the whole request. Once a request was written
//! whole, nothing is retried: a provider that closes or resets before its
//! first response byte may have read the request, run it and billed it, and
//! a POST must not run twice. A fresh connection is never retried.
//! (A provider that closes an idle connection at the very moment a request
//! goes out on it is indistinguishable from that; the client gets a 502.)

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, SliceMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::config::{Endpoint, Scheme, UpstreamLimits};
use crate::http::codec::{self, ChunkedDecoder, Framing, ResponseHead};

/// A connection to a provider, plain or TLS.
pub enum Io {
    Plain(TcpStream),
    Tls(Box<monoio_rustls::ClientTlsStream<TcpStream>>),
}

impl AsyncReadRent for Io {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        match self {
            Io::Plain(s) => s.read(buf).await,
            Io::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        match self {
            Io::Plain(s) => s.readv(buf).await,
            Io::Tls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for Io {
    async fn write<T: IoBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        match self {
            Io::Plain(s) => s.write(buf).await,
            Io::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        match self {
            Io::Plain(s) => s.writev(buf).await,
            Io::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.flush().await,
            Io::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.shutdown().await,
            Io::Tls(s) => s.shutdown().await,
        }
    }
}

/// Why talking to a provider failed. The pipeline maps these to 502/504.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no address known for the provider's host")]
    NoAddress,
    #[error("connect failed: {0}")]
    Connect(io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    #[error("connection failed: {0}")]
    Io(io::Error),
    #[error("provider closed the connection before answering")]
    ClosedEarly,
    #[error("provider closed the connection in the middle of the response")]
    ClosedMidBody,
    #[error("provider did not answer in time")]
    Timeout,
    #[error("provider sent an invalid response: {0}")]
    Protocol(String),
    #[error("provider response is larger than the limit")]
    TooLarge,
}

/// An open connection with its read buffer. The buffer holds what was read
/// past the response head: the start of the body.
pub struct Conn {
    io: Io,
    /// The socket under `io`, for [`crate::sys::has_input`].
    fd: RawFd,
    buf: Vec<u8>,
    /// Start of unread bytes in `buf`.
    pos: usize,
    /// Bytes at the start of `buf` that must stay: the response head, whose
    /// header ranges the pipeline reads until the exchange ends.
    keep: usize,
    reused: bool,
    /// What the connection was opened for: only the pool of this config
    /// generation takes it back, under this deployment, at this origin.
    generation: u64,
    deployment: usize,
    origin: String,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// One shard's connection pool for one config generation: idle connections
/// per deployment.
pub struct Pool {
    generation: u64,
    /// Per deployment index, the origin its connections go to (`None` for
    /// the mock kind, which has none).
    origins: Vec<Option<String>>,
    idle: RefCell<Vec<Vec<Idle>>>,
    idle_max: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(generation: u64, origins: Vec<Option<String>>, limits: &UpstreamLimits) -> Pool {
        Pool {
            generation,
            idle: RefCell::new(origins.iter().map(|_| Vec::new()).collect()),
            origins,
            idle_max: limits.pool_idle_max,
            idle_timeout: Duration::from_millis(limits.pool_idle_timeout_ms),
        }
    }

    /// Whether a connection opened for `generation`, `deployment` and
    /// `origin` belongs in this pool.
    fn owns(&self, generation: u64, deployment: usize, origin: &str) -> bool {
        generation == self.generation && self.origins.get(deployment).is_some_and(|o| o.as_deref() == Some(origin))
    }

    /// The most recently used idle connection that has not expired and has
    /// nothing waiting on it (a provider's close shows as input). A request
    /// of another generation gets none: its indexes mean other deployments
    /// here.
    fn take(&self, target: &Target<'_>) -> Option<Conn> {
        if target.generation != self.generation {
            return None;
        }
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(target.deployment)?;
        while let Some(entry) = list.pop() {
            if entry.since.elapsed() < self.idle_timeout && !crate::sys::has_input(entry.conn.fd) {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Returns a connection whose last response was read to its end. One
    /// opened for another generation, deployment or origin is closed.
    pub fn put(&self, mut conn: Conn) {
        if !self.owns(conn.generation, conn.deployment, &conn.origin) {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        let Some(list) = idle.get_mut(conn.deployment) else { return };
        if list.len() >= self.idle_max || conn.pos != conn.buf.len() {
            return;
        }
        conn.buf.clear();
        conn.pos = 0;
        conn.keep = 0;
        conn.reused = true;
        list.push(Idle { conn, since: Instant::now() });
    }

    /// Closes idle connections past their timeout. Called on a shard tick.
    pub fn sweep(&self) {
        let timeout = self.idle_timeout;
        for list in self.idle.borrow_mut().iter_mut() {
            list.retain(|e| e.since.elapsed() < timeout);
        }
    }
}

/// Where and how to connect to one deployment of one config generation.
pub struct Target<'a> {
    pub generation: u64,
    pub deployment: usize,
    pub endpoint: &'a Endpoint,
    pub addrs: &'a [SocketAddr],
    pub tls: Option<&'a Arc<rustls::ClientConfig>>,
}

/// Counters the exchange reports back to the shard.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExchangeStats {
    pub connects: u64,
    pub reuses: u64,
}

/// Sends `request` (a whole HTTP request, head and body) and reads the
/// response head. Returns the connection positioned at the body start.
/// `request` comes back for reuse.
pub async fn exchange(
    pool: &Pool,
    target: &Target<'_>,
    limits: &UpstreamLimits,
    request: Vec<u8>,
    head_timeout: Duration,
    stats: &mut ExchangeStats,
) -> (Result<(Conn, ResponseHead), UpstreamError>, Vec<u8>) {
    let mut request = request;
    if let Some(conn) = pool.take(target) {
        stats.reuses += 1;
        let (result, back) = send_on(conn, request, limits, head_timeout).await;
        request = back;
        match result {
            Ok(done) => return (Ok(done), request),
            // The pooled connection broke while the request was written:
            // the provider never had all of it. One more try, fresh.
            Err(SendError::Unsent(_)) => {}
            Err(SendError::Sent(e)) => return (Err(e), request),
        }
    }
    let conn = match connect(target, limits).await {
        Ok(c) => c,
        Err(e) => return (Err(e), request),
    };
    stats.connects += 1;
    let (result, back) = send_on(conn, request, limits, head_timeout).await;
    (result.map_err(SendError::into_inner), back)
}

enum SendError {
    /// Writing the request failed: the provider cannot have all of it.
    Unsent(UpstreamError),
    /// The request was written whole (or the write timed out): the
    /// provider may be acting on it.
    Sent(UpstreamError),
}

impl SendError {
    fn into_inner(self) -> UpstreamError {
        match self {
            SendError::Unsent(e) | SendError::Sent(e) => e,
        }
    }
}

/// Writes the request and reads the response head, both before one
/// deadline (`head_timeout` from now): a provider that stops reading is
/// given up on like one that never answers.
async fn send_on(
    mut conn: Conn,
    request: Vec<u8>,
    limits: &UpstreamLimits,
    head_timeout: Duration,
) -> (Result<(Conn, ResponseHead), SendError>, Vec<u8>) {
    let deadline = monoio::time::Instant::now() + head_timeout;
    let request = match monoio::time::timeout_at(deadline, conn.io.write_all(request)).await {
        Ok((Ok(_), request)) => request,
        Ok((Err(e), request)) => return (Err(SendError::Unsent(UpstreamError::Io(e))), request),
        // The write owned the buffer and is gone with it; the next request
        // allocates a new one.
        Err(_) => return (Err(SendError::Sent(UpstreamError::Timeout)), Vec::new()),
    };
    let result = match monoio::time::timeout_at(deadline, read_head(&mut conn, limits)).await {
        Ok(Ok(head)) => Ok((conn, head)),
        Ok(Err(e)) => Err(SendError::Sent(e)),
        Err(_) => Err(SendError::Sent(UpstreamError::Timeout)),
    };
    (result, request)
}

async fn read_head(conn: &mut Conn, limits: &UpstreamLimits) -> Result<ResponseHead, UpstreamError> {
    loop {
        // What is buffered is parsed before reading more: an interim
        // response and the final head often arrive in the same read.
        if !conn.buf.is_empty() {
            match codec::parse_response_head(&conn.buf, limits.response_head_bytes_max) {
                Ok(Some(head)) if (100..200).contains(&head.status) => {
                    // An interim response (100 Continue, 103 Early Hints): skip it.
                    conn.buf.drain(..head.len);
                    continue;
                }
                Ok(Some(head)) => {
                    conn.pos = head.len;
                    conn.keep = head.len;
                    return Ok(head);
                }
                Ok(None) => {}
                Err(e) => return Err(UpstreamError::Protocol(e.to_string())),
            }
        }
        let got_any = !conn.buf.is_empty();
        let n = conn.fill(limits.response_head_bytes_max).await.map_err(UpstreamError::Io)?;
        if n == 0 {
            return Err(if got_any { UpstreamError::ClosedMidBody } else { UpstreamError::ClosedEarly });
        }
    }
}

async fn connect(target: &Target<'_>, limits: &UpstreamLimits) -> Result<Conn, UpstreamError> {
    let timeout = Duration::from_millis(limits.connect_timeout_ms);
    let mut last = UpstreamError::NoAddress;
    for &addr in target.addrs {
        match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
            Ok(Ok(tcp)) => {
                // Small writes (one SSE-sized request) must not wait for ACKs.
                let _ = tcp.set_nodelay(true);
                let fd = tcp.as_raw_fd();
                let endpoint = target.endpoint;
                let io = match (endpoint.scheme, target.tls) {
                    (Scheme::Https, Some(tls)) => {
                        Io::Tls(Box::new(handshake(tls, &endpoint.host, tcp, timeout).await?))
                    }
                    _ => Io::Plain(tcp),
                };
                return Ok(Conn {
                    io,
                    fd,
                    buf: Vec::with_capacity(16 * 1024),
                    pos: 0,
                    keep: 0,
                    reused: false,
                    generation: target.generation,
                    deployment: target.deployment,
                    origin: endpoint.origin(),
                });
            }
            Ok(Err(e)) => last = UpstreamError::Connect(e),
            Err(_) => last = UpstreamError::ConnectTimeout,
        }
    }
    Err(last)
}

async fn handshake(
    tls: &Arc<rustls::ClientConfig>,
    host: &str,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<monoio_rustls::ClientTlsStream<TcpStream>, UpstreamError> {
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| UpstreamError::Tls(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let connector = monoio_rustls::TlsConnector::from(tls.clone());
    match monoio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(UpstreamError::Tls(e.into())),
        Err(_) => Err(UpstreamError::ConnectTimeout),
    }
}

impl Conn {
    /// Whether this connection came from the pool.
    pub fn was_reused(&self) -> bool {
        self.reused
    }

    /// Bytes of the response head, by a range from [`ResponseHead`].
    pub fn head_bytes(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Reads more bytes onto the end of `buf`; returns how many (0 = EOF).
    async fn fill(&mut self, buf_max: usize) -> io::Result<usize> {
        if self.pos > self.keep && self.pos == self.buf.len() {
            // Everything past the head was consumed: reuse that space.
            self.buf.truncate(self.keep);
            self.pos = self.keep;
        }
        let len = self.buf.len();
        if len >= buf_max {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "upstream buffer limit"));
        }
        self.buf.reserve(8 * 1024);
        let cap = self.buf.capacity().min(buf_max.max(len + 1));
        let buf = std::mem::take(&mut self.buf);
        let (res, slice): (_, SliceMut<Vec<u8>>) = self.io.read(buf.slice_mut(len..cap)).await;
        self.buf = slice.into_inner();
        res
    }
}

/// The most of a body's rest that is read, once its reader needs no more of
/// it (a stream's chunked terminator after its last event), to give the
/// connection back to the pool; and how long that may take. Beyond either,
/// the connection is closed instead.
const BODY_REST_BYTES_MAX: usize = 64 * 1024;
const BODY_REST_WAIT_MS: u64 = 1_000;

/// Reads a response body as its framing says, handing out payload bytes.
pub struct Body {
    framing: Framing,
    chunked: ChunkedDecoder,
    remaining: u64,
    done: bool,
}

impl Body {
    pub fn new(head: &ResponseHead) -> Body {
        let remaining = match head.framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Body { framing: head.framing, chunked: ChunkedDecoder::new(), remaining, done: head.framing == Framing::Empty }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Appends the next available payload bytes to `out`, reading from the
    /// network when nothing is buffered. Returns false when the body ended
    /// before this call (nothing appended).
    pub async fn next(&mut self, conn: &mut Conn, out: &mut Vec<u8>, idle: Duration) -> Result<bool, UpstreamError> {
        loop {
            if self.done {
                return Ok(false);
            }
            if conn.pos < conn.buf.len() {
                let before = out.len();
                self.consume(conn, out)?;
                if out.len() > before || self.done {
                    return Ok(true);
                }
                continue;
            }
            let n = match monoio::time::timeout(idle, conn.fill(usize::MAX)).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(UpstreamError::Io(e)),
                Err(_) => return Err(UpstreamError::Timeout),
            };
            if n == 0 {
                if self.framing == Framing::Close {
                    self.done = true;
                    return Ok(true);
                }
                return Err(UpstreamError::ClosedMidBody);
            }
        }
    }

    /// Decodes buffered bytes of the connection into `out`.
    fn consume(&mut self, conn: &mut Conn, out: &mut Vec<u8>) -> Result<(), UpstreamError> {
        let input = &conn.buf[conn.pos..];
        let used = match self.framing {
            Framing::Empty => 0,
            Framing::Close => {
                out.extend_from_slice(input);
                input.len()
            }
            Framing::Length(_) => {
                let take = input.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[..take]);
                self.remaining -= take as u64;
                self.done = self.remaining == 0;
                take
            }
            Framing::Chunked => {
                let used = self
                    .chunked
                    .decode(input, |p| out.extend_from_slice(p))
                    .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                self.done = self.chunked.is_done();
                used
            }
        };
        conn.pos += used;
        Ok(())
    }

    /// Reads and drops what is left of the body (within `BODY_REST_BYTES_MAX`
    /// and `BODY_REST_WAIT_MS`), so that the connection can carry another
    /// request. `scratch` is overwritten. Returns whether the body ended.
    pub async fn skip_rest(&mut self, conn: &mut Conn, scratch: &mut Vec<u8>) -> bool {
        let started = Instant::now();
        let limit = Duration::from_millis(BODY_REST_WAIT_MS);
        let mut skipped = 0;
        while !self.done {
            scratch.clear();
            let wait = limit.saturating_sub(started.elapsed());
            if wait.is_zero() || self.next(conn, scratch, wait).await.is_err() {
                return false;
            }
            skipped += scratch.len();
            if skipped > BODY_REST_BYTES_MAX {
                return false;
            }
        }
        true
    }

    /// Reads the rest of the body into `out`, up to `bytes_max`.
    pub async fn read_all(
        &mut self,
        conn: &mut Conn,
        out: &mut Vec<u8>,
        bytes_max: usize,
        idle: Duration,
    ) -> Result<(), UpstreamError> {
        while self.next(conn, out, idle).await? {
            if out.len() > bytes_max {
                return Err(UpstreamError::TooLarge);
            }
        }
        Ok(())
    }
}

/// Builds the rustls client config of one deployment: the webpki roots,
/// plus the PEM certificates of `ca_file` when given. Startup code: it reads
/// the file, which is why it never runs on a shard.
pub fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        #[allow(clippy::disallowed_methods, reason = "startup: reading a CA file before any shard runs")]
        let pem = std::fs::read(path).map_err(|e| format!("cannot read tls_ca_file {}: {e}", path.display()))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
            roots.add(cert).map_err(|e| format!("unusable certificate in {}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("tls_ca_file {} holds no PEM certificate", path.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
