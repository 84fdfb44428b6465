//! The failures a gateway's retries, fallbacks and circuit breakers must
//! survive, in every dialect: resets, errors before any content,
//! `Retry-After`, sequences across attempts, `--error-rate`, and `--name`.
//!
//! Each test starts its own mock process ([`Mock`]), killed when the test
//! ends, so no server outlives its test.

use super::*;

/// The five dialects, by their `--dialect` name.
const DIALECTS: [&str; 5] = ["openai", "anthropic", "gemini", "bedrock", "ollama"];

/// A chat request in `dialect` whose last user message says `text`.
fn chat(dialect: &str, text: &str, stream: bool) -> Vec<u8> {
    match dialect {
        "openai" => {
            let body = format!(
                r#"{{"model":"gpt-test","stream":{stream},"messages":[{{"role":"user","content":"{text}"}}]}}"#
            );
            post("/v1/chat/completions", &[], &body)
        }
        "anthropic" => {
            let body = format!(
                r#"{{"model":"claude-test","max_tokens":64,"stream":{stream},"messages":[{{"role":"user","content":"{text}"}}]}}"#
            );
            post("/v1/messages", &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")], &body)
        }
        "gemini" => {
            let path = if stream {
                "/v1beta/models/g:streamGenerateContent?alt=sse"
            } else {
                "/v1beta/models/g:generateContent"
            };
            let body = format!(r#"{{"contents":[{{"role":"user","parts":[{{"text":"{text}"}}]}}]}}"#);
            post(path, &[("x-goog-api-key", "k")], &body)
        }
        "bedrock" => {
            let path = if stream { "/model/m/converse-stream" } else { "/model/m/converse" };
            let body = format!(r#"{{"messages":[{{"role":"user","content":[{{"text":"{text}"}}]}}]}}"#);
            post(path, &[("authorization", "Bearer k")], &body)
        }
        "ollama" => {
            let body =
                format!(r#"{{"model":"llama","stream":{stream},"messages":[{{"role":"user","content":"{text}"}}]}}"#);
            post("/api/chat", &[], &body)
        }
        other => panic!("unknown dialect {other}"),
    }
}

fn mock(dialect: &str, extra: &[&str]) -> Mock {
    let mut args = vec!["--dialect", dialect, "--chunks", "3"];
    args.extend_from_slice(extra);
    Mock::start(&args)
}

/// How the mock ended a connection.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// A FIN: reading returned end of file.
    Closed,
    /// A RST: reading failed with `ECONNRESET`.
    Reset,
}

/// Reads everything until the mock ends the connection.
fn read_until_end(client: &mut Client) -> (Vec<u8>, End) {
    let mut bytes = Vec::new();
    match client.reader.read_to_end(&mut bytes) {
        Ok(_) => (bytes, End::Closed),
        // The bytes that arrived before the reset stay readable, and
        // read_to_end keeps them.
        Err(e) if e.kind() == ErrorKind::ConnectionReset => (bytes, End::Reset),
        Err(e) => panic!("reading failed with {e}"),
    }
}

/// A stream cut short: its status and the complete HTTP chunks (one event
/// each) before the connection ended, asserting none was cut in half and
/// the last chunk never came.
fn cut_stream(raw: &[u8]) -> (u16, Vec<Vec<u8>>) {
    let body_at = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head") + 4;
    let head = std::str::from_utf8(&raw[..body_at]).unwrap();
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let status = head[9..12].parse().unwrap();
    let mut rest = &raw[body_at..];
    let mut chunks = Vec::new();
    while !rest.is_empty() {
        let eol = rest.windows(2).position(|w| w == b"\r\n").expect("a whole size line");
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
        assert_ne!(size, 0, "the stream ended normally");
        let data = &rest[eol + 2..];
        assert!(data.len() >= size + 2, "an event cut in half");
        chunks.push(data[..size].to_vec());
        rest = &data[size + 2..];
    }
    (status, chunks)
}

#[test]
fn reset_ends_the_connection_before_any_byte_in_every_dialect() {
    for dialect in DIALECTS {
        let mock = mock(dialect, &[]);
        for stream in [false, true] {
            let mut client = mock.connect();
            client.send(&chat(dialect, "[mock:reset]", stream));
            assert_eq!(read_until_end(&mut client), (Vec::new(), End::Reset), "{dialect} stream={stream}");
        }
        // The mock serves on.
        assert_eq!(mock.connect().request(&chat(dialect, "hi", false)).status, 200, "{dialect}");
    }
}

#[test]
fn reset_mid_stream_sends_n_events_then_resets_in_every_dialect() {
    for dialect in DIALECTS {
        let mock = mock(dialect, &[]);
        let mut client = mock.connect();
        client.send(&chat(dialect, "[mock:reset-mid-stream=2]", true));
        let (raw, end) = read_until_end(&mut client);
        assert_eq!(end, End::Reset, "{dialect}");
        let (status, events) = cut_stream(&raw);
        assert_eq!((status, events.len()), (200, 2), "{dialect}");

        // close-mid-stream cuts at the same place, with a FIN instead.
        let mut client = mock.connect();
        client.send(&chat(dialect, "[mock:close-mid-stream=2]", true));
        let (raw, end) = read_until_end(&mut client);
        assert_eq!((end, cut_stream(&raw).1.len()), (End::Closed, 2), "{dialect}");
    }
}

#[test]
fn reset_mid_stream_zero_resets_after_the_head_and_header_twins_work() {
    let mock = mock("openai", &[]);
    let mut client = mock.connect();
    let body = r#"{"model":"gpt-test","messages":[],"stream":true}"#;
    client.send(&post("/v1/chat/completions", &[("x-mock-reset-mid-stream", "0")], body));
    let (raw, end) = read_until_end(&mut client);
    assert_eq!(end, End::Reset);
    assert_eq!(cut_stream(&raw), (200, Vec::new()));

    let mut client = mock.connect();
    client.send(&post("/v1/chat/completions", &[("x-mock-reset", "1")], CHAT));
    assert_eq!(read_until_end(&mut client), (Vec::new(), End::Reset));
}

#[test]
fn error_before_content_is_the_first_event_in_every_dialect() {
    for dialect in DIALECTS {
        let mock = mock(dialect, &[]);
        let resp = mock.connect().request(&chat(dialect, "[mock:error-before-content]", true));
        assert_eq!(resp.status, 200, "{dialect}");
        assert_eq!(resp.chunks.len(), 1, "{dialect}: {}", String::from_utf8_lossy(&resp.body));
        match dialect {
            "openai" => {
                let error = &resp.data_events()[0]["error"];
                assert_eq!(error["type"].as_str(), Some("server_error"));
                assert_eq!(error["message"].as_str(), Some("The server is overloaded or not ready yet."));
            }
            "anthropic" => {
                let (name, data) = &resp.named_events()[0];
                assert_eq!(name, "error");
                assert_eq!(data["error"]["type"].as_str(), Some("overloaded_error"));
            }
            "gemini" => {
                let error = &resp.data_events()[0]["error"];
                assert_eq!((error["code"].as_u64(), error["status"].as_str()), (Some(503), Some("UNAVAILABLE")));
            }
            "bedrock" => {
                let frames = bedrock::decode(&resp.body);
                assert_eq!(frames[0].header(":message-type"), "exception");
                assert_eq!(frames[0].header(":exception-type"), "serviceUnavailableException");
                assert!(frames[0].payload["message"].is_str());
            }
            "ollama" => {
                let line: Value = sonic_rs::from_slice(&resp.chunks[0]).unwrap();
                assert!(line["error"].as_str().unwrap().starts_with("server busy"), "{line:?}");
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn error_before_content_without_a_stream_is_the_overloaded_error() {
    for (dialect, status) in [("openai", 503), ("anthropic", 529), ("gemini", 503), ("bedrock", 503), ("ollama", 503)] {
        let mock = mock(dialect, &[]);
        let resp = mock.connect().request(&chat(dialect, "[mock:error-before-content]", false));
        assert_eq!(resp.status, status, "{dialect}: {}", resp.text());
    }
}

#[test]
fn gemini_array_streams_carry_the_error_as_their_only_element() {
    let mock = mock("gemini", &[]);
    let body = r#"{"contents":[{"parts":[{"text":"[mock:error-before-content]"}]}]}"#;
    let resp =
        mock.connect().request(&post("/v1beta/models/g:streamGenerateContent", &[("x-goog-api-key", "k")], body));
    assert_eq!(resp.status, 200);
    let v = resp.json();
    assert_eq!(v.as_array().map(|a| a.len()), Some(1));
    assert_eq!(v[0]["error"]["status"].as_str(), Some("UNAVAILABLE"));
}

#[test]
fn retry_after_directives_reach_error_headers_in_every_dialect() {
    for dialect in DIALECTS {
        let mock = mock(dialect, &[]);
        let text = "[mock:status=429][mock:retry-after=7][mock:retry-after-ms=6500]";
        let resp = mock.connect().request(&chat(dialect, text, false));
        assert_eq!(resp.status, 429, "{dialect}");
        let after: Vec<&str> = resp.headers.iter().filter(|(n, _)| n == "retry-after").map(|(_, v)| &**v).collect();
        assert_eq!(after, ["7"], "{dialect}");
        let want_ms = (dialect == "openai").then_some("6500");
        assert_eq!(resp.header("retry-after-ms"), want_ms, "{dialect}");
    }
    // A 529 replaces its default of 1, and headers script it too.
    let mock = mock("anthropic", &[]);
    let raw = post(
        "/v1/messages",
        &[
            ("x-api-key", "k"),
            ("anthropic-version", "2023-06-01"),
            ("x-mock-status", "529"),
            ("x-mock-retry-after", "0"),
        ],
        "{}",
    );
    let resp = mock.connect().request(&raw);
    assert_eq!((resp.status, resp.header("retry-after")), (529, Some("0")));
    assert_eq!(resp.headers.iter().filter(|(n, _)| n == "retry-after").count(), 1);
}

#[test]
fn rate_limit_headers_are_on_every_model_answer() {
    let cases = [
        ("openai", "x-ratelimit-remaining-requests", "9999", "x-ratelimit-", 6),
        ("anthropic", "anthropic-ratelimit-requests-remaining", "3999", "anthropic-ratelimit-", 12),
    ];
    for (dialect, name, value, prefix, lines) in cases {
        let mock = mock(dialect, &[]);
        let mut client = mock.connect();
        for raw in [chat(dialect, "hi", false), chat(dialect, "hi", true), chat(dialect, "[mock:status=503]", false)] {
            let resp = client.request(&raw);
            assert_eq!(resp.header(name), Some(value), "{dialect} {}", resp.status);
        }
        let resp = client.request(&chat(dialect, "hi", false));
        assert_eq!(resp.headers.iter().filter(|(n, _)| n.starts_with(prefix)).count(), lines, "{dialect}");
        assert_eq!(client.request(&get("/health")).header(name), None, "not on the mock's own endpoints");
    }
    for dialect in ["gemini", "bedrock", "ollama"] {
        let resp = mock(dialect, &[]).connect().request(&chat(dialect, "hi", false));
        let ratelimit = resp.headers.iter().any(|(n, _)| n.contains("ratelimit"));
        assert!(!ratelimit, "{dialect} has no rate-limit headers");
    }
}

/// `/mock/sequences` as (seq-id, sequence, requests).
fn sequences(mock: &Mock) -> Vec<(String, String, u64)> {
    let v = mock.connect().request(&get("/mock/sequences")).json();
    v["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let text = |key: &str| s[key].as_str().unwrap().to_owned();
            (text("seq-id"), text("sequence"), s["requests"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn sequences_answer_step_by_step_in_every_dialect() {
    for dialect in DIALECTS {
        let mock = mock(dialect, &[]);
        let mut client = mock.connect();
        let text = "[mock:sequence=503,429,200][mock:seq-id=attempts]";
        let statuses: Vec<u16> = (0..4).map(|_| client.request(&chat(dialect, text, false)).status).collect();
        assert_eq!(statuses, [503, 429, 200, 200], "{dialect}");
        let want = vec![("attempts".to_owned(), "503,429,200".to_owned(), 4)];
        assert_eq!(sequences(&mock), want, "{dialect}");
    }
}

#[test]
fn sequences_count_per_seq_id_and_across_headers_and_text() {
    let mock = mock("openai", &[]);
    let mut client = mock.connect();
    let body = |id: &str| {
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"[mock:sequence=503, 200][mock:seq-id={id}]"}}]}}"#
        )
    };
    assert_eq!(client.request(&post("/v1/chat/completions", &[], &body("a"))).status, 503);
    assert_eq!(client.request(&post("/v1/chat/completions", &[], &body("b"))).status, 503);
    // The same steps and id in headers continue a's counter.
    let headers = [("x-mock-sequence", "503,200"), ("x-mock-seq-id", "a")];
    assert_eq!(client.request(&post("/v1/chat/completions", &headers, CHAT)).status, 200);
    // Without an id, the steps' text alone names the counter.
    let anonymous = [("x-mock-sequence", "429,200")];
    assert_eq!(client.request(&post("/v1/chat/completions", &anonymous, CHAT)).status, 429);
    assert_eq!(
        sequences(&mock),
        [
            (String::new(), "429,200".to_owned(), 1),
            ("a".to_owned(), "503,200".to_owned(), 2),
            ("b".to_owned(), "503,200".to_owned(), 1)
        ]
    );
    let resp = client.request(&post("/v1/chat/completions", &[("x-mock-sequence", "503,close")], CHAT));
    assert_eq!(resp.status, 400);
    assert!(resp.error_message().contains("x-mock-sequence"));
}

#[test]
fn sequences_step_through_transport_failures() {
    let mock = mock("anthropic", &[]);
    let text = "[mock:sequence=reset,error-before-content,hang,200][mock:seq-id=t]";
    let raw = chat("anthropic", text, true);

    let mut first = mock.connect();
    first.send(&raw);
    assert_eq!(read_until_end(&mut first), (Vec::new(), End::Reset));

    let second = mock.connect().request(&raw);
    assert_eq!(second.status, 200);
    assert_eq!(second.named_events()[0].0, "error");

    let mut hung = mock.connect();
    hung.send(&raw);
    // Once the sequence shows the third request, the hung one was read.
    let mut attempts = 0;
    while sequences(&mock)[0].2 < 3 {
        attempts += 1;
        assert!(attempts < 1000, "the third request never arrived");
        std::thread::yield_now();
    }
    hung.writer.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut byte = [0u8; 1];
    let err = hung.reader.read(&mut byte).expect_err("the hung request was answered");
    assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut));

    let fourth = mock.connect().request(&raw);
    assert_eq!(fourth.status, 200);
    assert_eq!(fourth.named_events().last().map(|e| e.0.as_str()), Some("message_stop"));
    assert_eq!(sequences(&mock), [("t".to_owned(), "reset,error-before-content,hang,200".to_owned(), 4)]);
}

#[test]
fn error_rate_answers_each_dialects_overloaded_error() {
    for dialect in DIALECTS {
        let mock = mock(dialect, &["--error-rate", "1.0"]);
        let mut client = mock.connect();
        let resp = client.request(&chat(dialect, "hi", false));
        match dialect {
            "openai" => {
                assert_eq!(resp.status, 503);
                assert_eq!(resp.json()["error"]["type"].as_str(), Some("server_error"));
            }
            "anthropic" => {
                assert_eq!((resp.status, resp.header("retry-after")), (529, Some("1")));
                assert_eq!(resp.json()["error"]["type"].as_str(), Some("overloaded_error"));
            }
            "gemini" => {
                assert_eq!(resp.status, 503);
                assert_eq!(resp.json()["error"]["status"].as_str(), Some("UNAVAILABLE"));
            }
            "bedrock" => {
                assert_eq!(resp.status, 503);
                let kind = resp.header("x-amzn-errortype").unwrap();
                assert!(kind.starts_with("ServiceUnavailableException:"), "{kind}");
            }
            "ollama" => {
                assert_eq!(resp.status, 503);
                assert!(resp.json()["error"].as_str().unwrap().starts_with("server busy"));
            }
            _ => unreachable!(),
        }
        assert_eq!(client.request(&get("/health")).status, 200, "{dialect}");
    }
}

#[test]
fn error_rate_repeats_with_its_seed() {
    let run = |seed: &str| {
        let mock = mock("openai", &["--error-rate", "0.5", "--seed", seed]);
        let mut client = mock.connect();
        (0..40).map(|_| client.request(&chat("openai", "hi", false)).status).collect::<Vec<u16>>()
    };
    let first = run("42");
    assert_eq!(first, run("42"));
    assert_ne!(first, run("43"));
    let failed = first.iter().filter(|&&s| s == 503).count();
    assert!((8..32).contains(&failed), "{failed} of 40 failed: {first:?}");
    assert!(first.iter().all(|&s| s == 200 || s == 503));
}

#[test]
fn error_status_replaces_the_overloaded_status() {
    let mock = mock("anthropic", &["--error-rate", "1", "--error-status", "500"]);
    // The draw comes before the body is read, so only headers script it.
    let headers = [("x-api-key", "k"), ("anthropic-version", "2023-06-01"), ("x-mock-retry-after", "2")];
    let resp = mock.connect().request(&post("/v1/messages", &headers, "{}"));
    assert_eq!((resp.status, resp.header("retry-after")), (500, Some("2")));
    assert_eq!(resp.json()["error"]["type"].as_str(), Some("api_error"));
}

#[test]
fn names_tell_mocks_apart() {
    let primary = mock("openai", &["--name", "primary"]);
    let fallback = mock("anthropic", &["--name", "fallback b"]);
    let mut client = primary.connect();
    for raw in [chat("openai", "hi", false), chat("openai", "hi", true), chat("openai", "[mock:status=503]", false)] {
        assert_eq!(client.request(&raw).header("x-mock-name"), Some("primary"));
    }
    assert_eq!(client.request(&get("/health")).header("x-mock-name"), Some("primary"));
    assert_eq!(client.request(&get("/mock/stats")).json()["name"].as_str(), Some("primary"));
    // Even a request the HTTP parser refuses says who refused it.
    let mut bad = primary.connect();
    assert_eq!(bad.request(b"GET / HTTP/1.1\r\ncontent-length: x\r\n\r\n").header("x-mock-name"), Some("primary"));

    let resp = fallback.connect().request(&chat("anthropic", "hi", true));
    assert_eq!(resp.header("x-mock-name"), Some("fallback b"));
    let anonymous = mock("openai", &[]);
    let mut client = anonymous.connect();
    assert_eq!(client.request(&chat("openai", "hi", false)).header("x-mock-name"), None);
    assert!(client.request(&get("/mock/stats")).json()["name"].is_null());
}

#[test]
fn bad_names_fail_at_startup() {
    let out = Command::new(BIN).args(["--port", "0", "--name", ""]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("printable ASCII"));
}
