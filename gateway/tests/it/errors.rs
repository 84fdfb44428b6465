//! Every error a client can meet, with its status and OpenAI's error shape.

use std::time::Duration;

use sonic_rs::JsonValueTrait;

use crate::support::*;

const KEYS: &str = r#"
[[keys]]
name = "all"
key = "sk-client-all"
[[keys]]
name = "embed-only"
key = "sk-client-embed"
models = ["bench-embed"]
"#;

#[test]
fn client_errors() {
    let mock = mock(&[]);
    let gw = Gateway::start(&openai_config(mock, ""));
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        ("POST", "/v1/chat/completions", "{bad json", 400, "not valid JSON"),
        ("POST", "/v1/chat/completions", r#"{"messages":[]}"#, 400, "'model'"),
        ("POST", "/v1/chat/completions", r#"{"model":"nope","messages":[]}"#, 404, "`nope` does not exist"),
        ("POST", "/v1/nothing", "{}", 404, "Unknown request URL"),
        ("GET", "/v1/chat/completions", "", 405, "not allowed"),
        ("POST", "/v1/models", "", 405, "not allowed"),
    ];
    for (method, path, body, status, needle) in cases {
        let r = gw.client().send(method, path, &[], body.as_bytes());
        assert_eq!(r.status, *status, "{method} {path} {body}: {}", r.text());
        let (message, _, _) = r.openai_error();
        assert!(message.contains(needle), "{message:?} should contain {needle:?}");
    }
    let r = gw.post("/v1/chat/completions", r#"{"model":"nope","messages":[]}"#);
    assert_eq!(r.openai_error().2.as_deref(), Some("model_not_found"));
    assert_eq!(gw.get("/v1/embeddings").header("allow"), Some("POST"));
}

#[test]
fn auth_is_on_with_keys_and_checks_the_allowlist() {
    let mock = mock(&[]);
    let gw = Gateway::start(&openai_config(mock, KEYS));
    let body = chat_body("bench-chat", false);
    let r = gw.post("/v1/chat/completions", &body);
    assert_eq!(r.status, 401);
    assert_eq!(r.openai_error().2.as_deref(), Some("invalid_api_key"));
    let r =
        gw.client().send("POST", "/v1/chat/completions", &[("authorization", "Bearer sk-wrong-key")], body.as_bytes());
    assert_eq!(r.status, 401);
    let r =
        gw.client().send("POST", "/v1/chat/completions", &[("authorization", "Bearer sk-client-all")], body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw.client().send("POST", "/v1/chat/completions", &[("x-api-key", "sk-client-all")], body.as_bytes());
    assert_eq!(r.status, 200, "x-api-key works too");
    let r = gw.client().send(
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-client-embed")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.openai_error().1, "permission_error");
    let models = gw.client().send("GET", "/v1/models", &[("authorization", "Bearer sk-client-embed")], b"");
    assert!(models.text().contains("bench-embed") && !models.text().contains("bench-chat"), "{}", models.text());
    assert_eq!(gw.get("/health").status, 200, "health needs no key");
}

#[test]
fn oversized_bodies_get_413_and_oversized_heads_431() {
    let mock = mock(&[]);
    let gw =
        Gateway::start(&openai_config(mock, "[http]\nrequest_body_bytes_max = 1000\nrequest_head_bytes_max = 2048"));
    let big = format!(r#"{{"model":"bench-chat","messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(2000));
    let r = gw.post("/v1/chat/completions", &big);
    assert_eq!(r.status, 413);
    assert_eq!(r.openai_error().2.as_deref(), Some("request_too_large"));
    // A chunked body is measured as it is decoded.
    let mut c = gw.client();
    c.write_raw(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
            big.len()
        )
        .as_bytes(),
    );
    assert_eq!(c.read_response().status, 413);
    let r = gw.client().send("GET", "/health", &[("x-filler", &"y".repeat(3000))], b"");
    assert_eq!(r.status, 431);
}

#[test]
fn provider_errors_pass_through_with_their_status_and_body() {
    let body = r#"{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    let up = Scripted::start(move |_| {
        Action::Reply(json_reply(429, "retry-after: 7\r\nx-ratelimit-remaining-requests: 0\r\n", body))
    });
    let gw = Gateway::start(&openai_config(up.addr, "max_retries = 0"));
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", false));
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), body);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    // Same for streams: the error comes before any event.
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", true));
    assert_eq!(r.status, 429);
}

#[test]
fn a_provider_error_that_is_not_json_is_wrapped_in_the_openai_shape() {
    let up = Scripted::start(|_| {
        Action::Reply(
            b"HTTP/1.1 503 Unavailable\r\ncontent-type: text/html\r\ncontent-length: 13\r\n\r\n<html>x</html"[..]
                .to_vec(),
        )
    });
    let gw = Gateway::start(&openai_config(up.addr, ""));
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", false));
    assert_eq!(r.status, 503);
    let (message, kind, _) = r.openai_error();
    assert!(message.contains("<html>x</html"), "{message}");
    assert_eq!(kind, "upstream_error");
}

#[test]
fn an_unreachable_provider_is_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let gw = Gateway::start(&openai_config(closed, ""));
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", false));
    assert_eq!(r.status, 502);
    assert_eq!(r.openai_error().2.as_deref(), Some("upstream_unreachable"));
}

#[test]
fn a_provider_that_answers_garbage_is_502() {
    let up = Scripted::start(|_| Action::ReplyAndClose(b"this is not http\r\n\r\n".to_vec()));
    let gw = Gateway::start(&openai_config(up.addr, ""));
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", false));
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.openai_error().2.as_deref(), Some("bad_upstream_response"));
}

#[test]
fn a_provider_that_does_not_answer_is_504_after_its_timeout() {
    let up = Scripted::start(|_| Action::Hang);
    let config = openai_config(up.addr, "max_retries = 0").replace("timeout = 5", "timeout = 1");
    let gw = Gateway::start(&config);
    let started = std::time::Instant::now();
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", false));
    assert_eq!(r.status, 504);
    assert_eq!(r.openai_error().2.as_deref(), Some("upstream_timeout"));
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn a_stream_cut_by_the_provider_ends_with_an_error_event() {
    let up = Scripted::start(|_| Action::Stream { events: vec![chunk_event("a")], gap: Duration::ZERO, finish: false });
    let gw = Gateway::start(&openai_config(up.addr, ""));
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", true));
    assert_eq!(r.status, 200);
    let data = r.sse_data();
    assert_eq!(data.len(), 2, "{data:?}");
    assert!(data[1].starts_with("{\"error\":{"), "{data:?}");
}

#[test]
fn a_panic_in_one_request_answers_500_and_the_shard_lives_on() {
    let config = "listen = \"127.0.0.1:0\"\nshards = 1\n[providers.mock]\nkind = \"mock\"\nmodels = [\"mock-chat\"]";
    let gw = Gateway::start(config);
    let mut keep = gw.client();
    assert_eq!(keep.send("GET", "/health", &[], b"").status, 200);
    let r = gw.client().send(
        "POST",
        "/v1/chat/completions",
        &[("x-corelay-fault", "panic")],
        chat_body("mock-chat", false).as_bytes(),
    );
    assert_eq!(r.status, 500);
    assert_eq!(r.openai_error().1, "server_error");
    // The same shard still serves, on old and new connections.
    assert_eq!(keep.send("GET", "/health", &[], b"").status, 200);
    assert_eq!(gw.post("/v1/chat/completions", &chat_body("mock-chat", false)).status, 200);
    assert_eq!(gw.wait_metric("panics", 1), 1);
}

#[test]
fn a_panic_outside_the_pipeline_closes_only_its_connection() {
    let config = "listen = \"127.0.0.1:0\"\nshards = 1\n[providers.mock]\nkind = \"mock\"\nmodels = [\"mock-chat\"]";
    let gw = Gateway::start(config);
    let mut keep = gw.client();
    assert_eq!(keep.send("GET", "/health", &[], b"").status, 200);
    let mut c = gw.client();
    c.write_raw(b"GET /health HTTP/1.1\r\nx-corelay-fault: panic-outside-pipeline\r\n\r\n");
    assert!(c.is_closed(), "the connection is closed without an answer");
    assert_eq!(keep.send("GET", "/health", &[], b"").status, 200, "other connections of the shard live on");
    assert_eq!(gw.post("/v1/chat/completions", &chat_body("mock-chat", false)).status, 200);
    assert_eq!(gw.wait_metric("panics", 1), 1);
}

#[test]
fn chunked_bodies_with_endless_framing_are_refused_before_the_body_deadline() {
    let mock = mock(&[]);
    let gw = Gateway::start(&openai_config(mock, "[http]\nrequest_body_bytes_max = 1000"));
    let head = |path: &str| format!("POST {path} HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n");
    let started = std::time::Instant::now();
    // A chunk extension that never ends: 400, in the client's dialect.
    let mut c = gw.client();
    c.write_raw(format!("{}5;{}", head("/v1/chat/completions"), "e".repeat(5000)).as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.openai_error().0.contains("chunk extension too long"));
    // A trailer line that never ends, on Anthropic's door.
    let mut c = gw.client();
    c.write_raw(format!("{}1\r\na\r\n0\r\nx-trailer: {}", head("/v1/messages"), "t".repeat(5000)).as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["type"].as_str(), Some("error"), "{}", r.text());
    // Short extensions on one-byte chunks: the payload stays under the limit,
    // the framing does not; refused once it passes the limit plus 1 MiB.
    let chunk = format!("1;{}\r\na\r\n", "e".repeat(3000));
    let mut body = head("/v1/chat/completions").into_bytes();
    for _ in 0..400 {
        body.extend_from_slice(chunk.as_bytes());
    }
    let mut c = gw.client();
    let mut writer = c.stream().try_clone().unwrap();
    let sending = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &body));
    let r = c.read_response();
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.openai_error().2.as_deref(), Some("request_too_large"));
    let _ = sending.join();
    assert!(started.elapsed() < Duration::from_secs(10), "refused at once, not at the body deadline");
}

#[test]
fn a_body_over_the_limit_gets_its_413_read_not_a_reset() {
    let mock = mock(&[]);
    let gw = Gateway::start(&openai_config(mock, "[http]\nrequest_body_bytes_max = 1000"));
    // Far more than the socket buffers hold, all sent before the client
    // reads: the 413 comes after the head, with most of the body unread.
    let body =
        format!(r#"{{"model":"bench-chat","messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(3 << 20));
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let mut c = gw.client();
        let mut writer = c.stream().try_clone().unwrap();
        let request = format!("POST {path} HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        let sending = std::thread::spawn(move || std::io::Write::write_all(&mut writer, request.as_bytes()));
        sending.join().unwrap().expect("the whole body is taken (and dropped) by the gateway");
        let r = c.read_response();
        assert_eq!(r.status, 413, "{}", r.text());
        assert!(r.text().contains("larger than the limit"), "{}", r.text());
        assert!(c.is_closed());
    }
}

#[test]
fn a_provider_that_stops_reading_the_request_is_504_after_its_timeout() {
    // Accepts connections and never reads from them: the gateway's write
    // stalls once the socket buffers are full.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let gw = Gateway::start(&openai_config(addr, "").replace("timeout = 5", "timeout = 1"));
    let big =
        format!(r#"{{"model":"bench-chat","messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(16 << 20));
    let started = std::time::Instant::now();
    let r = gw.post("/v1/chat/completions", &big);
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.openai_error().2.as_deref(), Some("upstream_timeout"));
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

/// OpenAI's answer to a wrong key: it quotes the key's start and end.
const OPENAI_401: &str = r#"{"error":{"message":"Incorrect API key provided: sk-proj-****abcd. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;

#[test]
fn a_provider_refusing_the_gateway_key_is_a_502_that_names_the_provider_not_the_key() {
    let up = Scripted::start(|r| {
        let headers = "openai-organization: org-operator\r\nopenai-project: proj_operator\r\nx-request-id: req_1\r\n";
        if r.request_line().contains("/v1/messages") {
            let body = r#"{"type":"error","error":{"type":"permission_error","message":"Your key sk-ant-api03-XyZ123 may not use this model"}}"#;
            Action::Reply(json_reply(403, headers, body))
        } else {
            Action::Reply(json_reply(401, headers, OPENAI_401))
        }
    });
    let gw = Gateway::start(&format!(
        "listen = \"127.0.0.1:0\"\nshards = 1\n[providers.up]\nkind = \"openai\"\nbase_url = \"http://{0}/v1\"\napi_key = \"sk-proj-0123abcd\"\nmodels = [\"bench-chat\"]\n[providers.claude]\nkind = \"anthropic\"\nbase_url = \"http://{0}\"\napi_key = \"sk-ant-api03-XyZ123\"\nmodels = [\"claude-x\"]",
        up.addr
    ));
    let redacted = |text: &str| {
        assert!(!text.contains("abcd") && !text.contains("XyZ123") && !text.contains("sk-"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    };
    // Same dialect: OpenAI's 401 body no longer passes through.
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", false));
    assert_eq!(r.status, 502, "{}", r.text());
    let (message, kind, code) = r.openai_error();
    assert_eq!((kind.as_str(), code.as_deref()), ("upstream_error", Some("upstream_auth_failed")));
    assert!(message.contains("`up` rejected the gateway's credentials"), "{message}");
    redacted(&message);
    assert_eq!(r.header("x-request-id"), Some("req_1"));
    assert_eq!(r.header("openai-organization"), None);
    assert_eq!(r.header("openai-project"), None);
    // Streams are refused the same way, before any event.
    assert_eq!(gw.post("/v1/chat/completions", &chat_body("bench-chat", true)).status, 502);
    // Another dialect: the Anthropic door in front of the OpenAI provider.
    let messages = r#"{"model":"bench-chat","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = gw.post("/v1/messages", messages);
    assert_eq!(r.status, 502, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["type"].as_str(), Some("api_error"), "{}", r.text());
    redacted(v["error"]["message"].as_str().unwrap());
    // Anthropic's 403 behind Anthropic's door.
    let r = gw.post("/v1/messages", &messages.replace("bench-chat", "claude-x"));
    assert_eq!(r.status, 502, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("`claude`") && message.contains("may not use this model"), "{message}");
    redacted(&message);
}

#[test]
fn only_the_harmless_openai_headers_reach_the_client() {
    let up = Scripted::start(|_| {
        Action::Reply(json_reply(
            200,
            "openai-organization: org-operator\r\nopenai-project: proj_operator\r\nopenai-processing-ms: 12\r\nopenai-version: 2020-10-01\r\nx-ratelimit-remaining-requests: 9\r\n",
            &completion("bench-chat"),
        ))
    });
    let gw = Gateway::start(&openai_config(up.addr, "max_retries = 0"));
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", false));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("openai-processing-ms"), Some("12"));
    assert_eq!(r.header("openai-version"), Some("2020-10-01"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("9"));
    assert_eq!(r.header("openai-organization"), None);
    assert_eq!(r.header("openai-project"), None);
}

#[test]
fn ambiguous_response_framing_is_refused_or_not_trusted_twice() {
    let up = Scripted::start(|r| {
        let body = completion("bench-chat");
        if r.body_text().contains("conflict") {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-length: 3\r\n\r\n", body.len());
            Action::Reply([head.into_bytes(), body.into_bytes()].concat())
        } else {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n";
            Action::Reply(format!("{head}{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).into_bytes())
        }
    });
    let gw = Gateway::start(&openai_config(up.addr, "max_retries = 0").replace("shards = 2", "shards = 1"));
    let conflict = r#"{"model":"bench-chat","messages":[{"role":"user","content":"conflict"}]}"#;
    let r = gw.post("/v1/chat/completions", conflict);
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.openai_error().2.as_deref(), Some("bad_upstream_response"));
    // Chunked and a length: the chunked body is what counts, and the
    // connection is not used again.
    let mut c = gw.client();
    for _ in 0..2 {
        let r = c.send("POST", "/v1/chat/completions", &[], chat_body("bench-chat", false).as_bytes());
        assert_eq!((r.status, r.text()), (200, completion("bench-chat")));
    }
    assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 3);
}
