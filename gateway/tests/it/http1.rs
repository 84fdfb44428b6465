//! HTTP/1.1 details: keep-alive on both sides, HTTP/1.0, pipelining,
//! chunked request bodies, `Expect: 100-continue`, slow clients.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sonic_rs::JsonValueTrait;

use crate::support::*;

#[test]
fn keep_alive_is_reused_on_both_sides() {
    let up = Scripted::start(|_| Action::Reply(json_reply(200, "", &completion("bench-chat"))));
    let gw = Gateway::start(&openai_config(up.addr, "").replace("shards = 2", "shards = 1"));
    let mut c = gw.client();
    for _ in 0..5 {
        let r = c.send("POST", "/v1/chat/completions", &[], chat_body("bench-chat", false).as_bytes());
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), None);
    }
    assert_eq!(up.requests.lock().unwrap().len(), 5);
    assert_eq!(up.connections.load(Ordering::SeqCst), 1, "one pooled upstream connection");
    assert_eq!(gw.wait_metric("upstream_reuses", 4), 4);
}

#[test]
fn a_pooled_connection_the_provider_closed_is_replaced_before_use() {
    // The provider closes every connection after answering, without saying
    // so: the pooled connection is dead when the second request comes, and
    // is seen to be before anything is written to it.
    let up = Scripted::start(|_| Action::ReplyAndClose(json_reply(200, "", &completion("bench-chat"))));
    let gw = Gateway::start(&openai_config(up.addr, "").replace("shards = 2", "shards = 1"));
    let mut c = gw.client();
    for _ in 0..3 {
        let r = c.send("POST", "/v1/chat/completions", &[], chat_body("bench-chat", false).as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(up.requests.lock().unwrap().len(), 3, "each request reached the provider once");
    assert_eq!(up.connections.load(Ordering::SeqCst), 3);
}

#[test]
fn a_request_the_provider_read_is_never_sent_twice() {
    // The provider reads the second request on its pooled connection and
    // closes without a word: it may have run it. Sending it again would run
    // a POST twice.
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let up = Scripted::start(move |_| match seen.fetch_add(1, Ordering::SeqCst) {
        1 => Action::Close,
        _ => Action::Reply(json_reply(200, "", &completion("bench-chat"))),
    });
    // With retries off: a retry is a decision of the routing policy (see
    // the routing tests), never of the connection pool.
    let gw = Gateway::start(&openai_config(up.addr, "max_retries = 0").replace("shards = 2", "shards = 1"));
    let mut c = gw.client();
    let body = chat_body("bench-chat", false);
    assert_eq!(c.send("POST", "/v1/chat/completions", &[], body.as_bytes()).status, 200);
    let r = c.send("POST", "/v1/chat/completions", &[], body.as_bytes());
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.openai_error().2.as_deref(), Some("upstream_unreachable"));
    assert_eq!(up.requests.lock().unwrap().len(), 2, "the request reached the provider once");
    assert_eq!(up.connections.load(Ordering::SeqCst), 1, "on the pooled connection");
}

#[test]
fn http10_connection_close_and_pipelining() {
    let gw = Gateway::start("listen = \"127.0.0.1:0\"\n[providers.mock]\nkind = \"mock\"\nmodels = [\"mock-chat\"]");
    let mut c = gw.client();
    c.write_raw(b"GET /health HTTP/1.0\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(c.is_closed());

    let mut c = gw.client();
    c.write_raw(b"GET /health HTTP/1.1\r\nconnection: close\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    assert!(c.is_closed());

    // Two requests in one write: both answered, in order.
    let body = chat_body("mock-chat", false);
    let one = format!("POST /v1/chat/completions HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}", body.len());
    let mut c = gw.client();
    c.write_raw(format!("{one}GET /v1/models HTTP/1.1\r\n\r\n").as_bytes());
    assert!(c.read_response().text().contains("chat.completion"));
    assert!(c.read_response().text().contains("\"object\":\"list\""));
}

#[test]
fn chunked_bodies_and_expect_continue() {
    let gw = Gateway::start("listen = \"127.0.0.1:0\"\n[providers.mock]\nkind = \"mock\"\nmodels = [\"mock-chat\"]");
    let body = chat_body("mock-chat", false);
    let (a, b) = body.split_at(10);
    let mut c = gw.client();
    c.write_raw(
        format!("POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n", a.len())
            .as_bytes(),
    );
    c.write_raw(format!("{:x}\r\n{b}\r\n0\r\n\r\n", b.len()).as_bytes());
    assert_eq!(c.read_response().status, 200);

    let mut c = gw.client();
    c.write_raw(
        format!("POST /v1/chat/completions HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n", body.len())
            .as_bytes(),
    );
    assert_eq!(c.read_response().status, 100, "the client is told to send its body");
    c.write_raw(body.as_bytes());
    assert_eq!(c.read_response().status, 200);
}

#[test]
fn a_slowloris_client_is_cut_off() {
    let gw = Gateway::start(
        "listen = \"127.0.0.1:0\"\n[http]\nrequest_head_timeout_ms = 300\n[providers.mock]\nkind = \"mock\"\nmodels = [\"m\"]",
    );
    let mut c = gw.client();
    let started = Instant::now();
    c.write_raw(b"GET /health HTTP/1.1\r\n");
    // Trickle header bytes, each well inside any idle timeout, and never
    // finish the head: only the head deadline can end this.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(50));
        c.stream().write_all(b"x-slow: 1\r\n").unwrap();
    }
    let r = c.read_response();
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(c.is_closed());
}

#[test]
fn a_stalled_body_gets_408_in_the_front_door_dialect_and_the_shard_lives_on() {
    // One shard: if serving the stalled client killed it, nothing would
    // answer the requests that follow.
    let gw = Gateway::start(
        "listen = \"127.0.0.1:0\"\nshards = 1\n[http]\nrequest_body_timeout_ms = 200\n[providers.mock]\nkind = \"mock\"\nmodels = [\"m\"]",
    );
    let mut c = gw.client();
    c.write_raw(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 10\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 408, "{}", r.text());
    assert_eq!(r.openai_error().2.as_deref(), Some("request_timeout"));
    assert!(c.is_closed());

    let mut c = gw.client();
    c.write_raw(b"POST /v1/messages HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    let r = c.read_response();
    assert_eq!(r.status, 408, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"].as_str(), Some("error"), "Anthropic's shape: {}", r.text());
    assert!(v["error"]["message"].as_str().unwrap().contains("not received in time"));

    assert_eq!(gw.get("/health").status, 200, "the shard still serves");
    assert_eq!(gw.post("/v1/chat/completions", &chat_body("m", false)).status, 200);
}

#[test]
fn head_errors_under_v1_messages_are_in_anthropic_shape() {
    let gw = Gateway::start(
        "listen = \"127.0.0.1:0\"\nshards = 1\n[http]\nrequest_head_bytes_max = 2048\nrequest_head_timeout_ms = 300\n[providers.mock]\nkind = \"mock\"\nmodels = [\"m\"]",
    );
    let anthropic = |r: &Response, status: u16| {
        assert_eq!(r.status, status, "{}", r.text());
        let v = r.json();
        assert_eq!(v["type"].as_str(), Some("error"), "{}", r.text());
        assert!(v["error"]["type"].as_str().is_some(), "{}", r.text());
    };
    let r = gw.client().send("POST", "/v1/messages", &[("x-filler", &"y".repeat(3000))], b"{}");
    anthropic(&r, 431);
    let mut c = gw.client();
    c.write_raw(b"POST /v1/messages HTTP/1.1\r\ncontent-length: ten\r\n\r\n");
    anthropic(&c.read_response(), 400);
    let mut c = gw.client();
    c.write_raw(b"POST /v1/messages HTTP/1.1\r\nx-slow: 1\r\n");
    anthropic(&c.read_response(), 408);
    // The OpenAI door keeps OpenAI's shape.
    let r = gw.client().send("POST", "/v1/chat/completions", &[("x-filler", &"y".repeat(3000))], b"{}");
    assert_eq!(r.status, 431);
    r.openai_error();
}

#[test]
fn an_interim_response_and_the_final_head_in_one_read_are_both_read() {
    let final_answer = json_reply(200, "", &completion("bench-chat"));
    let up = Scripted::start(move |_| {
        let mut bytes = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n".to_vec();
        bytes.extend_from_slice(&final_answer);
        Action::Reply(bytes)
    });
    let gw = Gateway::start(&openai_config(up.addr, ""));
    let started = Instant::now();
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", false));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), completion("bench-chat"));
    assert!(started.elapsed() < Duration::from_secs(2), "answered at once, not at the provider timeout");
}
