//! End-to-end tests of the `corelay-mock` binary, and of `corelay-bench` in
//! a tiny mode (`harness`).
//!
//! The tests in this file start their own mock process (`--port 0`, so tests
//! run in parallel without port clashes); the dialect modules start the mock
//! inside the test process ([`InProcess`]), as the gateway's tests do, each
//! with its own state. All talk raw HTTP/1.1 over `std::net::TcpStream`: the
//! point is to pin down the exact bytes the gateway will see from this
//! upstream, which a higher-level client would hide. Reads block until data
//! arrives, so nothing sleeps to synchronise.

mod anthropic;
mod bedrock;
mod failures;
mod gemini;
mod harness;
mod ollama;
mod scripted;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

const BIN: &str = env!("CARGO_BIN_EXE_corelay-mock");
const LISTENING: &str = "corelay-mock listening on 127.0.0.1:";
/// A safety net so a broken mock fails a test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
const CHAT: &str = r#"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#;

/// A running mock; killed (by pid) when dropped, whether the test passed
/// or not.
struct Mock {
    child: Child,
    port: u16,
    // Held so the mock's stdout stays open for the whole test.
    stdout: BufReader<ChildStdout>,
}

impl Mock {
    fn start(args: &[&str]) -> Mock {
        let mut child = Command::new(BIN)
            .args(["--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn corelay-mock");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut mock = Mock { child, port: 0, stdout: BufReader::new(stdout) };
        let mut line = String::new();
        mock.stdout.read_line(&mut line).expect("read stdout");
        let port = line.trim_end().strip_prefix(LISTENING).unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        mock.port = port.parse().expect("port number");
        mock
    }

    fn connect(&self) -> Client {
        connect(self.port)
    }

    /// Reads `/mock/stats` over `client`, returning (connections, requests).
    fn stats(client: &mut Client) -> (u64, u64) {
        let v = client.request(&get("/mock/stats")).json();
        (v["connections"].as_u64().unwrap(), v["requests"].as_u64().unwrap())
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(port: u16) -> Client {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    Client { writer: stream.try_clone().unwrap(), reader: BufReader::new(stream) }
}

/// A mock running inside the test process, with its own counters and last
/// request. Its worker threads live as long as the test binary.
struct InProcess {
    port: u16,
}

impl InProcess {
    fn start(args: &[&str]) -> InProcess {
        use clap::Parser;
        let mut argv = vec!["corelay-mock", "--port", "0"];
        argv.extend_from_slice(args);
        let args = bench::mock::cli::Args::parse_from(argv);
        let (addr, workers) = bench::mock::start(&args).expect("start corelay-mock");
        drop(workers);
        InProcess { port: addr.port() }
    }

    fn dialect(name: &str) -> InProcess {
        InProcess::start(&["--dialect", name, "--chunks", "3"])
    }

    fn connect(&self) -> Client {
        connect(self.port)
    }

    fn request(&self, raw: &[u8]) -> Response {
        self.connect().request(raw)
    }

    /// `GET /mock/last-request`, which must succeed.
    fn last_request(&self) -> Value {
        let resp = self.request(&get("/mock/last-request"));
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()
    }
}

/// One raw HTTP/1.1 connection.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// A parsed response; `chunks` keeps the HTTP chunks as they were framed.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunks: Vec<Vec<u8>>,
}

impl Client {
    fn send(&mut self, raw: &[u8]) {
        self.writer.write_all(raw).expect("write request");
    }

    fn request(&mut self, raw: &[u8]) -> Response {
        self.send(raw);
        self.response()
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read line");
        assert!(line.ends_with("\r\n"), "unterminated line {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    fn response(&mut self) -> Response {
        let status_line = self.line();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut resp = Response { status, headers: self.headers(), body: Vec::new(), chunks: Vec::new() };
        if status < 200 {
            return resp;
        }
        if resp.header("transfer-encoding") == Some("chunked") {
            resp.chunks = self.chunks();
            resp.body = resp.chunks.concat();
        } else if let Some(len) = resp.header("content-length") {
            resp.body = vec![0; len.parse().unwrap()];
            self.reader.read_exact(&mut resp.body).expect("read body");
        } else {
            resp.body = self.read_to_end();
        }
        resp
    }

    fn headers(&mut self) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                return headers;
            }
            let (name, value) = line.split_once(':').expect("header colon");
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
    }

    fn chunks(&mut self) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        loop {
            let size = usize::from_str_radix(&self.line(), 16).expect("chunk size");
            if size == 0 {
                assert_eq!(self.line(), "", "no trailers expected");
                return chunks;
            }
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk).expect("read chunk");
            assert_eq!(chunk.split_off(size), b"\r\n");
            chunks.push(chunk);
        }
    }

    fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).expect("read to EOF");
        rest
    }
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    fn json(&self) -> Value {
        sonic_rs::from_slice(&self.body).expect("JSON body")
    }

    /// The SSE events, one per HTTP chunk.
    fn events(&self) -> Vec<String> {
        let events: Vec<String> = self.chunks.iter().map(|c| String::from_utf8(c.clone()).unwrap()).collect();
        for e in &events {
            assert!(e.starts_with("data: ") && e.ends_with("\n\n"), "not one event: {e:?}");
            assert_eq!(e.matches("data: ").count(), 1, "several events in one chunk: {e:?}");
        }
        events
    }

    /// SSE events with `event:` names, one per HTTP chunk: (name, data).
    /// Asserts that each name equals the data's `type`, as Anthropic's do.
    fn named_events(&self) -> Vec<(String, Value)> {
        self.chunks
            .iter()
            .map(|c| {
                let text = std::str::from_utf8(c).unwrap();
                assert!(text.ends_with("\n\n"), "unterminated event {text:?}");
                let mut lines = text.trim_end().lines();
                let name = lines.next().and_then(|l| l.strip_prefix("event: ")).expect("event line").to_owned();
                let data = lines.next().and_then(|l| l.strip_prefix("data: ")).expect("data line");
                assert!(lines.next().is_none(), "one event per chunk: {text:?}");
                let v: Value = sonic_rs::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
                assert_eq!(v["type"].as_str(), Some(name.as_str()), "{text}");
                (name, v)
            })
            .collect()
    }

    /// OpenAI `data:` events up to `[DONE]` (which must be last), parsed.
    fn data_events_until_done(&self) -> Vec<Value> {
        let events = self.events();
        assert_eq!(events.last().map(String::as_str), Some("data: [DONE]\n\n"));
        events[..events.len() - 1].iter().map(|e| event_json(e)).collect()
    }

    /// `data:` events without names, parsed.
    fn data_events(&self) -> Vec<Value> {
        self.events().iter().map(|e| event_json(e)).collect()
    }

    /// Asserts the standard OpenAI error shape and returns its message.
    fn error_message(&self) -> String {
        let v = self.json();
        let error = &v["error"];
        assert!(error["type"].is_str(), "{}", self.text());
        assert!(error["param"].is_null());
        assert!(error.get("code").is_some());
        error["message"].as_str().unwrap().to_owned()
    }
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        raw.push_str("content-type: application/json\r\n");
        raw.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    raw.into_bytes()
}

fn post(path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    request("POST", path, headers, body)
}

fn get(path: &str) -> Vec<u8> {
    request("GET", path, &[], "")
}

fn event_json(event: &str) -> Value {
    let data = event.strip_prefix("data: ").unwrap().trim_end();
    sonic_rs::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"))
}

#[test]
fn chat_non_stream_returns_the_canned_completion() {
    let mock = Mock::start(&[]);
    let resp = mock.connect().request(&post("/v1/chat/completions", &[], CHAT));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("transfer-encoding"), None);
    let want = r#"{"id":"chatcmpl-mock","object":"chat.completion","created":1700000000,"model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"This is a benchmark response."},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}"#;
    assert_eq!(resp.text(), want);
    assert_eq!(resp.header("content-length"), Some(&*want.len().to_string()));
}

#[test]
fn chat_stream_sends_one_chunk_per_event_without_usage() {
    let mock = Mock::start(&[]);
    let body = r#"{"model":"gpt-test","messages":[],"stream":true}"#;
    let resp = mock.connect().request(&post("/v1/chat/completions", &[], body));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let events = resp.events();
    // The default 20 content events, then [DONE].
    assert_eq!(events.len(), 21);
    assert_eq!(events[20], "data: [DONE]\n\n");
    assert!(!resp.text().contains("usage"), "usage without include_usage");
    let chunks: Vec<Value> = events[..20].iter().map(|e| event_json(e)).collect();
    for c in &chunks {
        assert_eq!(c["id"].as_str(), Some("chatcmpl-mock"));
        assert_eq!(c["object"].as_str(), Some("chat.completion.chunk"));
        assert_eq!(c["created"].as_u64(), Some(1_700_000_000));
        assert_eq!(c["model"].as_str(), Some("gpt-test"));
    }
    let first = &chunks[0]["choices"][0];
    assert_eq!(first["delta"]["role"].as_str(), Some("assistant"));
    assert_eq!(first["delta"]["content"].as_str(), Some(""));
    assert!(first["finish_reason"].is_null());
    for c in &chunks[1..19] {
        assert_eq!(c["choices"][0]["delta"]["content"].as_str(), Some("word "));
    }
    let last = &chunks[19]["choices"][0];
    assert_eq!(last["delta"].as_object().map(|o| o.len()), Some(0));
    assert_eq!(last["finish_reason"].as_str(), Some("stop"));
}

#[test]
fn chat_stream_with_include_usage_adds_the_usage_chunk() {
    let mock = Mock::start(&[]);
    let body = r#"{"model":"gpt-test","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#;
    let raw = post("/v1/chat/completions", &[("x-mock-chunks", "5")], body);
    let events = mock.connect().request(&raw).events();
    assert_eq!(events.len(), 7);
    for e in &events[..5] {
        let usage = event_json(e).get("usage").cloned();
        assert!(usage.is_some_and(|u| u.is_null()), "{e}");
    }
    let usage = event_json(&events[5]);
    assert_eq!(usage["choices"].as_array().map(|a| a.len()), Some(0));
    assert_eq!(usage["id"].as_str(), Some("chatcmpl-mock"));
    assert_eq!(usage["model"].as_str(), Some("gpt-test"));
    assert_eq!(usage["usage"]["prompt_tokens"].as_u64(), Some(10));
    assert_eq!(usage["usage"]["completion_tokens"].as_u64(), Some(5));
    assert_eq!(usage["usage"]["total_tokens"].as_u64(), Some(15));
    assert_eq!(events[6], "data: [DONE]\n\n");
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let mock = Mock::start(&[]);
    let mut client = mock.connect();
    for _ in 0..2 {
        let resp = client.request(&post("/v1/chat/completions", &[], CHAT));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("connection"), None);
    }
    // The stats request counts itself.
    assert_eq!(Mock::stats(&mut client), (1, 3));
}

#[test]
fn chunked_request_body_is_decoded() {
    let mock = Mock::start(&[]);
    let mut client = mock.connect();
    let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n\
                transfer-encoding: chunked\r\nx-mock-echo: 1\r\n\r\n";
    client.send(head.as_bytes());
    let (a, b) = CHAT.split_at(9);
    client.send(format!("{:x};ext=1\r\n{a}\r\n", a.len()).as_bytes());
    client.send(format!("{:X}\r\n{b}\r\n", b.len()).as_bytes());
    client.send(b"0\r\n\r\n");
    let echo = client.response().json();
    assert_eq!(echo["body"].as_str(), Some(CHAT));
    assert_eq!(echo["headers"]["transfer-encoding"].as_str(), Some("chunked"));

    // A second chunked request on the same connection is a normal chat.
    let raw = format!(
        "POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{CHAT}\r\n0\r\n\r\n",
        CHAT.len()
    );
    let resp = client.request(raw.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["model"].as_str(), Some("gpt-test"));
}

#[test]
fn expect_continue_gets_an_interim_response() {
    let mock = Mock::start(&[]);
    let mut client = mock.connect();
    let head =
        format!("POST /v1/chat/completions HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n", CHAT.len());
    assert_eq!(client.request(head.as_bytes()).status, 100);
    assert_eq!(client.request(CHAT.as_bytes()).status, 200);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mock = Mock::start(&[]);
    let mut client = mock.connect();
    let mut raw = post("/v1/chat/completions", &[], &CHAT.replace("gpt-test", "first"));
    raw.extend(post("/v1/chat/completions", &[], &CHAT.replace("gpt-test", "second")));
    raw.extend(get("/health"));
    client.send(&raw);
    assert_eq!(client.response().json()["model"].as_str(), Some("first"));
    assert_eq!(client.response().json()["model"].as_str(), Some("second"));
    assert_eq!(client.response().text(), r#"{"status":"ok"}"#);
    assert_eq!(Mock::stats(&mut client), (1, 4));
}

#[test]
fn invalid_bodies_are_400_and_keep_the_connection() {
    let mock = Mock::start(&[]);
    let mut client = mock.connect();
    for body in [
        r#"{"model":"gpt-test","messages":["#,
        r#"{"messages":[]}"#,
        r#"{"model":"gpt-test"}"#,
        r#"{"model":"gpt-test","messages":"hi"}"#,
    ] {
        let resp = client.request(&post("/v1/chat/completions", &[], body));
        assert_eq!(resp.status, 400, "{body}");
        resp.error_message();
        assert_eq!(resp.json()["error"]["type"].as_str(), Some("invalid_request_error"));
    }
    let resp = client.request(&post("/v1/chat/completions", &[], CHAT));
    assert_eq!(resp.status, 200);
}

#[test]
fn x_mock_status_answers_that_status() {
    let mock = Mock::start(&[]);
    let mut client = mock.connect();
    let resp = client.request(&post("/v1/chat/completions", &[("x-mock-status", "503")], CHAT));
    assert_eq!(resp.status, 503);
    assert_eq!(resp.error_message(), "mock error 503");
    assert_eq!(resp.json()["error"]["type"].as_str(), Some("server_error"));
    assert_eq!(resp.header("retry-after"), None);

    let resp = client.request(&post("/v1/embeddings", &[("x-mock-status", "429")], "{}"));
    assert_eq!(resp.status, 429);
    assert_eq!(resp.error_message(), "mock error 429");
    assert_eq!(resp.header("retry-after"), Some("1"));
}

#[test]
fn x_mock_echo_reports_what_arrived() {
    let mock = Mock::start(&[]);
    let path = "/openai/deployments/my-dep/chat/completions?api-version=2024-10-21";
    let headers = [("x-mock-echo", "1"), ("Api-Key", "secret"), ("X-Custom", "A b")];
    let resp = mock.connect().request(&post(path, &headers, CHAT));
    assert_eq!(resp.status, 200);
    let echo = resp.json();
    assert_eq!(echo["method"].as_str(), Some("POST"));
    assert_eq!(echo["path"].as_str(), Some(path));
    let h = &echo["headers"];
    assert_eq!(h["host"].as_str(), Some("127.0.0.1"));
    assert_eq!(h["api-key"].as_str(), Some("secret"));
    assert_eq!(h["x-custom"].as_str(), Some("A b"));
    assert_eq!(h["content-length"].as_str(), Some(&*CHAT.len().to_string()));
    assert_eq!(h.as_object().map(|o| o.len()), Some(6));
    assert_eq!(echo["body"].as_str(), Some(CHAT));
}

#[test]
fn azure_deployment_path_needs_no_model() {
    let mock = Mock::start(&[]);
    let path = "/openai/deployments/my-dep/chat/completions?api-version=2024-10-21";
    let resp = mock.connect().request(&post(path, &[], r#"{"messages":[]}"#));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["model"].as_str(), Some("my-dep"));
}

#[test]
fn embeddings_return_one_zero_vector_per_input() {
    let mock = Mock::start(&[]);
    let body = r#"{"model":"bench-embed","input":["one","two"]}"#;
    let resp = mock.connect().request(&post("/v1/embeddings", &[], body));
    assert_eq!(resp.status, 200);
    let v = resp.json();
    assert_eq!(v["object"].as_str(), Some("list"));
    assert_eq!(v["model"].as_str(), Some("bench-embed"));
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"].as_str(), Some("embedding"));
        assert_eq!(item["index"].as_u64(), Some(i as u64));
        let embedding = item["embedding"].as_array().unwrap();
        assert_eq!(embedding.len(), 1536);
        assert!(embedding.iter().all(|x| x.as_f64() == Some(0.0)));
    }
    assert_eq!(v["usage"]["prompt_tokens"].as_u64(), Some(10));
    assert_eq!(v["usage"]["total_tokens"].as_u64(), Some(10));

    let single = r#"{"model":"bench-embed","input":"one"}"#;
    let resp = mock.connect().request(&post("/v1/embeddings", &[], single));
    assert_eq!(resp.json()["data"].as_array().map(|a| a.len()), Some(1));
}

#[test]
fn models_lists_the_bench_models() {
    let mock = Mock::start(&[]);
    let resp = mock.connect().request(&get("/v1/models"));
    assert_eq!(resp.status, 200);
    let v = resp.json();
    assert_eq!(v["object"].as_str(), Some("list"));
    let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["bench-chat", "bench-embed"]);
    for m in v["data"].as_array().unwrap().iter() {
        assert_eq!(m["object"].as_str(), Some("model"));
        assert_eq!(m["owned_by"].as_str(), Some("corelay-mock"));
    }
}

#[test]
fn unknown_path_is_404_and_wrong_method_is_405() {
    let mock = Mock::start(&[]);
    let mut client = mock.connect();
    let resp = client.request(&post("/v1/completions", &[], CHAT));
    assert_eq!(resp.status, 404);
    assert_eq!(resp.error_message(), "Invalid URL (POST /v1/completions)");
    let resp = client.request(&get("/v1/chat/completions"));
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("POST"));
    resp.error_message();
}

#[test]
fn http10_and_connection_close_end_the_connection() {
    let mock = Mock::start(&[]);
    let mut client = mock.connect();
    let resp = client.request(b"GET /health HTTP/1.0\r\n\r\n");
    assert_eq!((resp.status, resp.header("connection")), (200, Some("close")));
    assert!(client.read_to_end().is_empty());

    let mut client = mock.connect();
    let raw = request("GET", "/health", &[("connection", "close")], "");
    assert_eq!(client.request(&raw).status, 200);
    assert!(client.read_to_end().is_empty());
}

#[test]
fn close_mid_stream_cuts_without_the_last_chunk() {
    let mock = Mock::start(&[]);
    let mut client = mock.connect();
    let body = r#"{"model":"gpt-test","messages":[],"stream":true}"#;
    let headers = [("x-mock-chunks", "5"), ("x-mock-close-mid-stream", "3")];
    client.send(&post("/v1/chat/completions", &headers, body));
    assert_eq!(client.line(), "HTTP/1.1 200 OK");
    client.headers();
    let rest = String::from_utf8(client.read_to_end()).unwrap();
    assert_eq!(rest.matches("data: ").count(), 3, "{rest}");
    assert!(rest.ends_with("\n\n\r\n"), "{rest:?}");
    assert!(!rest.contains("[DONE]") && !rest.ends_with("0\r\n\r\n"));
}

#[test]
fn garbage_is_not_http_and_closes() {
    let mock = Mock::start(&[]);
    let mut client = mock.connect();
    client.send(&post("/v1/chat/completions", &[("x-mock-garbage", "1")], CHAT));
    assert_eq!(client.read_to_end(), b"not http at all\r\n\r\n");
}

#[test]
fn hang_never_answers_but_others_are_served() {
    let mock = Mock::start(&[]);
    let mut hung = mock.connect();
    hung.send(&post("/v1/chat/completions", &[("x-mock-hang", "1")], CHAT));
    // Another connection is served while the first hangs; its request is
    // counted, so by now the hung request has been read.
    let mut other = mock.connect();
    assert_eq!(other.request(&get("/health")).status, 200);
    assert_eq!(Mock::stats(&mut other).0, 2);
    // Negative check: nothing arrives on the hung connection.
    hung.writer.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut byte = [0u8; 1];
    let err = hung.reader.read(&mut byte).expect_err("the mock answered");
    assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut));
}

#[test]
fn delays_pace_replies_and_events() {
    let mock = Mock::start(&[]);
    let mut client = mock.connect();
    let start = Instant::now();
    let raw = post("/v1/chat/completions", &[("x-mock-delay-ms", "150")], CHAT);
    assert_eq!(client.request(&raw).status, 200);
    assert!(start.elapsed() >= Duration::from_millis(150));

    let body = r#"{"model":"gpt-test","messages":[],"stream":true}"#;
    let headers = [("x-mock-delay-ms", "60"), ("x-mock-chunks", "3")];
    let start = Instant::now();
    let resp = client.request(&post("/v1/chat/completions", &headers, body));
    assert_eq!(resp.events().len(), 4);
    // Two pauses: between the three content events.
    assert!(start.elapsed() >= Duration::from_millis(120));
}

#[test]
fn error_rate_one_fails_every_model_request() {
    let mock = Mock::start(&["--error-rate", "1.0"]);
    let mut client = mock.connect();
    let resp = client.request(&post("/v1/chat/completions", &[], CHAT));
    assert_eq!(resp.status, 503);
    assert_eq!(resp.json()["error"]["type"].as_str(), Some("server_error"));
    assert_eq!(client.request(&get("/health")).status, 200);
}

#[test]
fn threads_share_one_port() {
    let mock = Mock::start(&["--threads", "2", "--chunks", "2"]);
    for _ in 0..3 {
        assert_eq!(mock.connect().request(&get("/health")).status, 200);
    }
    assert_eq!(Mock::stats(&mut mock.connect()), (4, 4));
}

#[test]
fn unknown_dialect_fails_at_startup() {
    let out = Command::new(BIN).args(["--port", "0", "--dialect", "cohere"]).output().unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown dialect `cohere`"), "{stderr}");
}

#[test]
fn taken_port_fails_loudly() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(BIN).args(["--port", &port]).output().unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on 127.0.0.1"), "{stderr}");
}
