//! Test support: the real `corelay` binary on loopback, the `corelay-mock`
//! provider running inside the test process, a scripted upstream for exact
//! wire-level behaviour, and a small blocking HTTP/1.1 client.
//!
//! Every server binds 127.0.0.1. The gateway is a child process killed by its
//! pid when its handle drops, pass or fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running gateway process.
pub struct Gateway {
    child: Child,
    pub addr: SocketAddr,
    /// The startup line, e.g. `corelay listening on ... (2 shards, io_uring driver)`.
    pub banner: String,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// What the gateway printed on stderr so far.
    log: Arc<Mutex<String>>,
    /// The config file the gateway was started with.
    pub config_path: PathBuf,
    _dir: TempDir,
}

impl Gateway {
    /// Starts `corelay serve` with this config. The config should listen on
    /// `127.0.0.1:0`; the real port is read from the startup line.
    pub fn start(config: &str) -> Gateway {
        let dir = TempDir::new();
        let path = dir.0.join("corelay.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_corelay"))
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start corelay");
        let pipe = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
            sink.lock().unwrap().clone()
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        if line.is_empty() {
            let _ = child.wait();
            panic!("corelay did not start: {}", stderr.join().unwrap());
        }
        let addr = line.split_whitespace().nth(3).expect("address in banner").parse().expect("address");
        Gateway { child, addr, banner: line.trim().to_owned(), stderr: Some(stderr), log, config_path: path, _dir: dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn signal_term(&self) {
        self.signal("-TERM");
    }

    /// Waits (bounded) until stderr has a line containing `needle`.
    pub fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.log.lock().unwrap().contains(needle) {
            assert!(Instant::now() < deadline, "stderr never said {needle:?}: {}", self.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn signal(&self, which: &str) {
        let status = Command::new("kill").args([which, &self.pid().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (bounded), returning its status and stderr.
    pub fn wait_exit(&mut self, within: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let err = self.stderr.take().map(|h| h.join().unwrap()).unwrap_or_default();
                return (status, err);
            }
            assert!(Instant::now() < deadline, "corelay did not exit in {within:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// One request on a fresh connection.
    pub fn post(&self, path: &str, body: &str) -> Response {
        self.client().send("POST", path, &[], body.as_bytes())
    }

    pub fn get(&self, path: &str) -> Response {
        self.client().send("GET", path, &[], b"")
    }

    /// Reads `/metrics` until `name` reaches at least `want` (counters are
    /// summed by the control plane on a tick), or panics after 5 s.
    pub fn wait_metric(&self, name: &str, want: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let body = self.get("/metrics").text();
            let value = body
                .lines()
                .find_map(|l| l.strip_prefix(&format!("corelay_{name}_total ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if value >= want || Instant::now() > deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("corelay-it-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `corelay-mock` (the bench crate's mock provider) inside the test
/// process, with these extra flags. Its threads live as long as the test
/// binary.
pub fn mock(flags: &[&str]) -> SocketAddr {
    use clap::Parser;
    let mut argv = vec!["corelay-mock", "--port", "0"];
    argv.extend_from_slice(flags);
    let args = bench::mock::cli::Args::parse_from(argv);
    let (addr, workers) = bench::mock::start(&args).expect("start corelay-mock");
    drop(workers);
    addr
}

/// A gateway config with one OpenAI-kind provider at `upstream`.
pub fn openai_config(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
shards = 2
[upstream]
stats_interval_ms = 50
[providers.up]
kind = "openai"
base_url = "http://{upstream}/v1"
api_key = "sk-upstream-secret"
models = ["bench-chat", "bench-embed"]
timeout = 5
{extra}
"#
    )
}

// ---------------------------------------------------------------------------
// The client.

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Each chunk of a chunked body, with when it arrived.
    pub chunks: Vec<(Instant, Vec<u8>)>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> sonic_rs::Value {
        sonic_rs::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The `error` object of an OpenAI-shaped error body, checked for shape.
    pub fn openai_error(&self) -> (String, String, Option<String>) {
        use sonic_rs::JsonValueTrait;
        let v = self.json();
        let e = &v["error"];
        assert!(e.get("param").is_some(), "param missing: {}", self.text());
        let message = e["message"].as_str().expect("message").to_owned();
        let kind = e["type"].as_str().expect("type").to_owned();
        let code = e["code"].as_str().map(str::to_owned);
        (message, kind, code)
    }

    /// The `data:` payloads of an SSE body.
    pub fn sse_data(&self) -> Vec<String> {
        self.text().split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_owned).collect()
    }
}

/// A keep-alive connection to a server.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client { reader: BufReader::new(stream) }
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream().write_all(bytes).unwrap();
    }

    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n", body.len());
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
            req.push_str("content-type: application/json\r\n");
        }
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.write_raw(&bytes);
        self.read_response()
    }

    /// True when the server closed the connection (read returns EOF).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }

    pub fn read_response(&mut self) -> Response {
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        assert!(status_line.starts_with("HTTP/1."), "bad status line: {status_line:?}");
        let status = status_line[9..12].parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(':').unwrap();
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        let mut response = Response { status, headers, body: Vec::new(), chunks: Vec::new() };
        if status == 100 {
            return response;
        }
        if let Some(len) = response.header("content-length") {
            let mut body = vec![0; len.parse().unwrap()];
            self.reader.read_exact(&mut body).unwrap();
            response.body = body;
        } else if response.header("transfer-encoding") == Some("chunked") {
            self.read_chunks(&mut response);
        } else {
            self.reader.read_to_end(&mut response.body).unwrap();
        }
        response
    }

    fn read_chunks(&mut self, response: &mut Response) {
        loop {
            let mut size = String::new();
            self.reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
            if size == 0 {
                let mut end = String::new();
                self.reader.read_line(&mut end).unwrap();
                return;
            }
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk).unwrap();
            chunk.truncate(size);
            response.body.extend_from_slice(&chunk);
            response.chunks.push((Instant::now(), chunk));
        }
    }
}

pub fn chat_body(model: &str, stream: bool) -> String {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}],"stream":{stream}}}"#)
}

// ---------------------------------------------------------------------------
// The scripted upstream.

/// A request the scripted upstream received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub head: String,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the scripted upstream does with one request.
pub enum Action {
    /// Write these bytes (a whole response) and keep the connection.
    Reply(Vec<u8>),
    /// A chunked SSE response: each event after `gap`; `finish` ends the body.
    Stream { events: Vec<String>, gap: Duration, finish: bool },
    /// Never answer; hold the connection until the peer closes it.
    Hang,
    /// Write these bytes, then close.
    ReplyAndClose(Vec<u8>),
    /// Close without answering (the request was read).
    Close,
    /// Write each piece after its pause, and keep the connection: a
    /// response whose parts arrive apart.
    Writes(Vec<(Duration, Vec<u8>)>),
    /// A chunked 200 with this content type, one chunk per element, the
    /// body ended properly: binary streams (Bedrock's event stream).
    StreamBytes { content_type: &'static str, chunks: Vec<Vec<u8>> },
}

pub struct Scripted {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    pub connections: Arc<AtomicUsize>,
    /// Connections whose peer has closed them.
    pub closed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    pub fn start(script: impl Fn(&Recorded) -> Action + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(script);
        let (r, c, d, s) = (requests.clone(), connections.clone(), closed.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (r, d, s, script) = (r.clone(), d.clone(), s.clone(), script.clone());
                std::thread::spawn(move || {
                    serve_scripted(stream, &r, &s, &*script);
                    d.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Scripted { addr, requests, connections, closed, stop }
    }

    pub fn last(&self) -> Recorded {
        self.requests.lock().unwrap().last().cloned().expect("the upstream received a request")
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_scripted(
    mut stream: TcpStream,
    log: &Mutex<Vec<Recorded>>,
    stop: &AtomicBool,
    script: &(dyn Fn(&Recorded) -> Action + Send + Sync),
) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buf) else { return };
        log.lock().unwrap().push(request.clone());
        match script(&request) {
            Action::Reply(bytes) => {
                if stream.write_all(&bytes).is_err() {
                    return;
                }
            }
            Action::ReplyAndClose(bytes) => {
                let _ = stream.write_all(&bytes);
                return;
            }
            Action::Close => return,
            Action::Writes(pieces) => {
                for (pause, bytes) in pieces {
                    std::thread::sleep(pause);
                    if stream.write_all(&bytes).is_err() {
                        return;
                    }
                }
            }
            Action::Stream { events, gap, finish } => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for e in events {
                    std::thread::sleep(gap);
                    if stream.write_all(format!("{:x}\r\n{e}\r\n", e.len()).as_bytes()).is_err() {
                        return;
                    }
                }
                if !finish || stream.write_all(b"0\r\n\r\n").is_err() {
                    return;
                }
            }
            Action::StreamBytes { content_type, chunks } => {
                let head =
                    format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n");
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for c in chunks {
                    let mut framed = format!("{:x}\r\n", c.len()).into_bytes();
                    framed.extend_from_slice(&c);
                    framed.extend_from_slice(b"\r\n");
                    if stream.write_all(&framed).is_err() {
                        return;
                    }
                }
                if stream.write_all(b"0\r\n\r\n").is_err() {
                    return;
                }
            }
            Action::Hang => {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
                let mut b = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    match stream.read(&mut b) {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return,
                    }
                }
                return;
            }
        }
    }
}

fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Recorded> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            return Some(Recorded { head, body });
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A whole HTTP/1.1 response with a JSON body.
pub fn json_reply(status: u16, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An OpenAI chat.completion body for `model`.
pub fn completion(model: &str) -> String {
    format!(
        r#"{{"id":"c1","object":"chat.completion","created":1,"model":"{model}","choices":[{{"index":0,"message":{{"role":"assistant","content":"ok"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}}}"#
    )
}

/// One OpenAI stream chunk event.
pub fn chunk_event(content: &str) -> String {
    format!(
        "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n"
    )
}

/// One `application/vnd.amazon.eventstream` frame with string headers.
pub fn event_frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7); // string
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut frame = Vec::with_capacity(total);
    frame.extend_from_slice(&(total as u32).to_be_bytes());
    frame.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&prelude_crc.to_be_bytes());
    frame.extend_from_slice(&h);
    frame.extend_from_slice(payload);
    let crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&crc.to_be_bytes());
    frame
}

/// A Bedrock ConverseStream event frame.
pub fn bedrock_event(event_type: &str, payload: &str) -> Vec<u8> {
    event_frame(
        &[(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")],
        payload.as_bytes(),
    )
}

// ---------------------------------------------------------------------------
// A real redis-server.

/// A `redis-server` of one test: loopback, its own directory, an
/// append-only file synced on every write (so a restart keeps everything),
/// killed by pid when dropped.
pub struct RedisServer {
    program: PathBuf,
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one, or `None` (saying so) when `redis-server` is not
    /// installed; under CI (`CI` set) its absence is a failure, since
    /// `.ci/run` installs it.
    pub fn start() -> Option<RedisServer> {
        let path = std::env::var_os("PATH")?;
        let Some(program) = std::env::split_paths(&path).map(|d| d.join("redis-server")).find(|p| p.is_file()) else {
            assert!(std::env::var_os("CI").is_none(), "redis-server is not on PATH under CI (.ci/run installs it)");
            println!("skipped: redis-server is not on PATH (apt-get install redis-server)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = RedisServer { program, port, dir: TempDir::new(), child: None };
        server.spawn();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL, by pid, and wait.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with what it had written.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let mut child = Command::new(&self.program)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--logfile", ""])
            .arg("--dir")
            .arg(&self.dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let stdout = child.stdout.take().unwrap();
        self.child = Some(child);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    let _ = ready_tx.send(());
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("redis-server ready");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
