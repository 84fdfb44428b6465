//! Routing and resilience end to end: retries with backoff, fallback to
//! other deployments and other models (translated), streams retried while
//! nothing reached the client, circuit breakers shared by every shard.
//! The providers are corelay-mock instances scripted per request.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sonic_rs::{JsonContainerTrait, JsonValueTrait};

use crate::support::*;

/// A chat request whose last user message carries `directives`.
fn chat(model: &str, stream: bool, directives: &str) -> String {
    format!(
        r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi {directives}"}}],"stream":{stream},"max_tokens":16}}"#
    )
}

/// How many requests a mock received before this question (its
/// `/mock/stats` counts the stats request itself).
fn mock_requests(mock: SocketAddr) -> u64 {
    let r = Client::connect(mock).send("GET", "/mock/stats", &[], b"");
    r.json()["requests"].as_u64().unwrap_or_else(|| panic!("{}", r.text())) - 1
}

/// How many requests a mock got for one sequence id.
fn sequence_requests(mock: SocketAddr, id: &str) -> u64 {
    let r = Client::connect(mock).send("GET", "/mock/sequences", &[], b"");
    let v = r.json();
    let list = v["sequences"].as_array().unwrap();
    list.iter().find(|s| s["seq-id"].as_str() == Some(id)).map_or(0, |s| s["requests"].as_u64().unwrap())
}

fn provider(name: &str, kind: &str, addr: SocketAddr, models: &str, extra: &str) -> String {
    let base = match kind {
        "openai" => format!("http://{addr}/v1"),
        _ => format!("http://{addr}"),
    };
    let key = if kind == "openai" { "api_key = \"sk-mock\"\n" } else { "api_key = \"mock-key\"\n" };
    format!("[providers.{name}]\nkind = \"{kind}\"\nbase_url = \"{base}\"\n{key}models = [{models}]\n{extra}\n")
}

fn config(shards: usize, routing: &str, providers: &[String], tail: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nshards = {shards}\n[routing]\nretry_backoff_base_ms = 20\nretry_backoff_max_ms = 100\n{routing}\n{}\n{tail}",
        providers.concat()
    )
}

#[test]
fn retryable_failures_are_retried_with_backoff_until_an_answer() {
    let a = mock(&["--dialect", "openai", "--name", "a"]);
    let gw = Gateway::start(&config(1, "", &[provider("a", "openai", a, "\"m\"", "max_retries = 3")], ""));
    // 503, a reset connection, 429, then the answer: four attempts.
    let r = gw.post("/v1/chat/completions", &chat("m", false, "[mock:sequence=503,reset,429,200] [mock:seq-id=four]"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-corelay-attempts"), Some("4"));
    assert_eq!(r.header("x-corelay-provider"), Some("a"));
    assert_eq!(sequence_requests(a, "four"), 4);
    // More failures than max_retries allows: the last one is answered.
    let r = gw.post("/v1/chat/completions", &chat("m", false, "[mock:sequence=503] [mock:seq-id=always]"));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(sequence_requests(a, "always"), 4, "one attempt and three retries");
    // Not retryable: at once.
    for status in [400, 401, 404, 413, 422] {
        let id = format!("final{status}");
        let r = gw.post(
            "/v1/chat/completions",
            &chat("m", false, &format!("[mock:sequence={status},200] [mock:seq-id={id}]")),
        );
        let expected = if status == 401 { 502 } else { status };
        assert_eq!(r.status, expected, "{status}: {}", r.text());
        assert_eq!(sequence_requests(a, &id), 1, "{status} is not retried");
    }
    let metrics = gw.get("/metrics").text();
    assert!(metrics.contains("corelay_upstream_retries_total"), "{metrics}");
}

#[test]
fn retry_after_is_a_floor_for_the_backoff() {
    let a = mock(&["--dialect", "openai"]);
    let gw = Gateway::start(&config(1, "", &[provider("a", "openai", a, "\"m\"", "")], ""));
    let started = Instant::now();
    let r = gw.post(
        "/v1/chat/completions",
        &chat("m", false, "[mock:sequence=429,200] [mock:seq-id=ra] [mock:retry-after=1]"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(started.elapsed() >= Duration::from_millis(950), "{:?}", started.elapsed());
    // A Retry-After past the deadline is not waited for.
    let gw = Gateway::start(&config(1, "retry_deadline_ms = 500", &[provider("a", "openai", a, "\"m\"", "")], ""));
    let started = Instant::now();
    let r = gw.post(
        "/v1/chat/completions",
        &chat("m", false, "[mock:sequence=429,200] [mock:seq-id=far] [mock:retry-after=30]"),
    );
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.header("retry-after"), Some("30"));
}

#[test]
fn a_failing_deployment_falls_over_to_another_of_the_same_model() {
    let down = mock(&["--dialect", "openai", "--error-rate", "1.0", "--name", "down"]);
    let up = mock(&["--dialect", "openai", "--name", "up"]);
    let providers = [
        provider("down", "openai", down, "\"m\"", "weight = 100\nmax_retries = 0"),
        provider("up", "openai", up, "\"m\"", "weight = 1"),
    ];
    let gw = Gateway::start(&config(1, "breaker_failures = 1000", &providers, ""));
    for stream in [false, true] {
        let r = gw.post("/v1/chat/completions", &chat("m", stream, ""));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-corelay-provider"), Some("up"));
        if stream {
            assert!(r.sse_data().iter().any(|d| d == "[DONE]"));
        }
    }
}

#[test]
fn a_model_falls_back_to_another_model_translated_for_its_provider() {
    let openai = mock(&["--dialect", "openai", "--error-rate", "1.0"]);
    let claude = mock(&["--dialect", "anthropic"]);
    let providers = [
        provider("openai", "openai", openai, "\"gpt-x\"", "max_retries = 1"),
        provider("claude", "anthropic", claude, "", "upstream_models = { \"claude-public\" = \"claude-upstream-id\" }"),
    ];
    let tail = "[aliases]\nsonnet = \"claude-public\"\n[fallbacks]\n\"gpt-x\" = [\"sonnet\"]\n";
    let gw = Gateway::start(&config(1, "breaker_failures = 1000", &providers, tail));
    let r = gw.post("/v1/chat/completions", &chat("gpt-x", false, ""));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-corelay-provider"), Some("claude"));
    assert_eq!(r.header("x-corelay-attempts"), Some("3"), "two on gpt-x, then the fallback");
    assert_eq!(r.header("anthropic-ratelimit-requests-limit"), Some("4000"), "the provider's rate limits");
    let v = r.json();
    assert_eq!(v["object"].as_str(), Some("chat.completion"), "OpenAI's shape from Anthropic: {v}");
    // The provider saw its own name for the model.
    let last = Client::connect(claude).send("GET", "/mock/last-request", &[], b"").json();
    assert_eq!(last["body"]["model"].as_str(), Some("claude-upstream-id"), "{last}");
    // Streams fall back too.
    let r = gw.post("/v1/chat/completions", &chat("gpt-x", true, ""));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("anthropic-ratelimit-requests-limit"), Some("4000"));
    assert!(r.sse_data().iter().any(|d| d == "[DONE]"), "{}", r.text());
}

#[test]
fn a_stream_that_fails_before_any_content_is_retried_unseen() {
    let openai = mock(&["--dialect", "openai"]);
    let claude = mock(&["--dialect", "anthropic"]);
    let providers = [
        provider("openai", "openai", openai, "\"gpt-x\"", ""),
        provider("claude", "anthropic", claude, "\"claude-x\"", ""),
    ];
    let gw = Gateway::start(&config(1, "", &providers, ""));
    // Same dialect (passed through) and translated, an error event inside
    // the 200 and a connection reset before content: the client sees one
    // clean stream.
    let cases = [
        ("gpt-x", "/v1/chat/completions", "error-before-content", "p1"),
        ("gpt-x", "/v1/chat/completions", "reset", "p2"),
        ("claude-x", "/v1/messages", "error-before-content", "p3"),
        ("claude-x", "/v1/chat/completions", "error-before-content", "p4"),
        ("gpt-x", "/v1/messages", "error-before-content", "p5"),
    ];
    for (model, path, failure, id) in cases {
        let body = chat(model, true, &format!("[mock:sequence={failure},200] [mock:seq-id={id}]"));
        let r = gw.post(path, &body);
        assert_eq!(r.status, 200, "{model} {path} {failure}: {}", r.text());
        assert_eq!(r.header("x-corelay-attempts"), Some("2"), "{model} {path} {failure}");
        let text = r.text();
        assert!(!text.contains("error"), "{model} {path} {failure}: {text}");
        assert!(text.contains("[DONE]") || text.contains("message_stop"), "{model} {path} {failure}: {text}");
    }
    // After content, an error cannot be taken back: it is told in-stream.
    let r = gw.post("/v1/chat/completions", &chat("gpt-x", true, "[mock:error-mid-stream]"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-corelay-attempts"), Some("1"));
    assert!(r.text().contains("error"), "{}", r.text());
}

#[test]
fn the_breaker_skips_a_dead_deployment_on_every_shard_then_probes_it() {
    let down = mock(&["--dialect", "openai", "--error-rate", "1.0", "--name", "down"]);
    let up = mock(&["--dialect", "openai", "--name", "up"]);
    let providers = [
        provider("down", "openai", down, "\"m\"", "weight = 1000\nmax_retries = 0"),
        provider("up", "openai", up, "\"m\"", "weight = 1"),
    ];
    let gw = Gateway::start(&config(2, "breaker_failures = 2\nbreaker_cooldown_ms = 1500", &providers, ""));
    // New connections land on either shard. Two failures on one shard open
    // its breaker; the verdict reaches the other shard through the control
    // plane, so soon no shard sends to `down`.
    let ask = || {
        let r = gw.client().send("POST", "/v1/chat/completions", &[], chat("m", false, "").as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        r.header("x-corelay-attempts").map(str::to_owned)
    };
    for _ in 0..4 {
        ask();
    }
    std::thread::sleep(Duration::from_millis(100));
    let before = mock_requests(down);
    assert!((2..=4).contains(&before), "{before}");
    for _ in 0..20 {
        assert_eq!(ask().as_deref(), Some("1"), "straight to `up`");
    }
    assert_eq!(
        mock_requests(down),
        before + 1,
        "no shard tried `down` while its breaker was open (+1: the stats request)"
    );
    let metrics = gw.get("/metrics").text();
    assert!(metrics.contains("corelay_breaker_opens_total"), "{metrics}");
    // After the cooldown one request probes `down` (and fails over).
    std::thread::sleep(Duration::from_millis(1600));
    for _ in 0..6 {
        ask();
    }
    let probes = mock_requests(down) - before - 2;
    assert!((1..=2).contains(&probes), "one probe per shard at most: {probes}");
}

#[test]
fn every_provider_cooling_down_is_a_503_with_retry_after() {
    let down = mock(&["--dialect", "anthropic", "--error-rate", "1.0"]);
    let providers = [provider("down", "anthropic", down, "\"claude-x\"", "max_retries = 0")];
    let gw = Gateway::start(&config(1, "breaker_failures = 1\nbreaker_cooldown_ms = 60000", &providers, ""));
    let r = gw.post("/v1/messages", &chat("claude-x", false, ""));
    assert_eq!(r.status, 529, "the provider's own overload: {}", r.text());
    let r = gw.post("/v1/messages", &chat("claude-x", false, ""));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["type"].as_str(), Some("error"), "Anthropic's shape: {}", r.text());
    let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((50..=60).contains(&after), "{after}");
    let r = gw.post("/v1/chat/completions", &chat("claude-x", false, ""));
    assert_eq!(r.status, 503);
    assert_eq!(r.openai_error().2.as_deref(), Some("no_healthy_provider"));
}

#[test]
fn a_client_that_leaves_while_the_provider_thinks_cancels_the_provider_request() {
    use std::io::{Read, Write};
    // A provider that reads the request and never answers; it reports when
    // corelay closes the connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        let mut told = false;
        // The request, then silence until corelay hangs up.
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            if !told && seen.windows(4).any(|w| w == b"\r\n\r\n") {
                told = true;
                let _ = closed_tx.send(Instant::now());
            }
        }
        let _ = closed_tx.send(Instant::now());
    });
    let gw = Gateway::start(&openai_config(addr, "max_retries = 0").replace("timeout = 5", "timeout = 60"));
    let mut client = gw.client();
    let body = chat_body("bench-chat", false);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    client.stream().write_all(head.as_bytes()).unwrap();
    client.stream().write_all(body.as_bytes()).unwrap();
    let reached = closed_rx.recv_timeout(Duration::from_secs(5)).expect("the provider got the request");
    drop(client);
    let left = Instant::now();
    let closed = closed_rx.recv_timeout(Duration::from_secs(5)).expect("corelay closed the provider's connection");
    assert!(closed > left && closed > reached, "closed only after the client left");
    assert!(closed.duration_since(left) < Duration::from_secs(2), "{:?}", closed.duration_since(left));
    assert_eq!(gw.wait_metric("clients_gone_waiting", 1), 1);
}

#[test]
fn an_openai_stream_that_fails_after_its_opening_chunk_is_still_retried() {
    // The opening chunk (role, empty content) carries no answer: an error
    // right after it fails the attempt, unseen by the client.
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    let opening = chunk(r#"{"role":"assistant","content":""}"#, "null");
    let words = chunk(r#"{"content":"Hello"}"#, "null");
    let stop = chunk("{}", "\"stop\"");
    let up = Scripted::start(move |_| {
        let events = if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            vec![opening.clone(), "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n".into()]
        } else {
            vec![opening.clone(), words.clone(), stop.clone(), "data: [DONE]\n\n".into()]
        };
        Action::Stream { events, gap: Duration::from_millis(5), finish: true }
    });
    let gw = Gateway::start(&openai_config(up.addr, ""));
    let r = gw.post("/v1/chat/completions", &chat_body("bench-chat", true));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-corelay-attempts"), Some("2"));
    let text = r.text();
    assert!(text.contains("Hello") && !text.contains("overloaded"), "{text}");
}

#[test]
fn failures_after_a_stream_started_count_against_the_breaker() {
    let a = mock(&["--dialect", "openai"]);
    let providers = [provider("a", "openai", a, "\"m\"", "max_retries = 0")];
    let gw = Gateway::start(&config(1, "breaker_failures = 2\nbreaker_cooldown_ms = 60000", &providers, ""));
    for _ in 0..2 {
        let r = gw.post("/v1/chat/completions", &chat("m", true, "[mock:error-mid-stream]"));
        assert_eq!(r.status, 200, "content went out before the error");
        assert!(r.text().contains("error"), "{}", r.text());
    }
    let r = gw.post("/v1/chat/completions", &chat("m", false, ""));
    assert_eq!(r.status, 503, "two late failures opened the breaker: {}", r.text());
    assert_eq!(r.openai_error().2.as_deref(), Some("no_healthy_provider"));
}

#[test]
fn throttling_is_retried_but_does_not_open_the_breaker() {
    let a = mock(&["--dialect", "anthropic"]);
    let providers = [provider("a", "anthropic", a, "\"claude-x\"", "max_retries = 1")];
    let gw = Gateway::start(&config(1, "breaker_failures = 1\nbreaker_cooldown_ms = 60000", &providers, ""));
    let r =
        gw.post("/v1/messages", &chat("claude-x", false, "[mock:sequence=429] [mock:seq-id=th] [mock:retry-after=0]"));
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(sequence_requests(a, "th"), 2, "retried once");
    let r = gw.post("/v1/messages", &chat("claude-x", false, ""));
    assert_eq!(r.status, 200, "the breaker stayed closed: {}", r.text());
}
