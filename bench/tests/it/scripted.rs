//! Directives shared by every dialect, seen through the OpenAI dialect:
//! tool calls, mid-stream errors, body directives for transport-level
//! behaviour, and `/mock/last-request`.

use super::*;

fn chat_with(text: &str, stream: bool) -> String {
    format!(
        r#"{{"model":"gpt-test","stream":{stream},"stream_options":{{"include_usage":true}},"messages":[{{"role":"user","content":"{text}"}}]}}"#
    )
}

#[test]
fn openai_tool_calls_stream_as_fragments() {
    let mock = InProcess::start(&[]);
    let v = mock.request(&post("/v1/chat/completions", &[("x-mock-tool", "get_weather")], CHAT)).json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"].as_str(), Some("tool_calls"));
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"].as_str(), Some("call_mock_1"));
    assert_eq!(call["function"]["arguments"].as_str(), Some(r#"{"city":"Paris"}"#));

    let resp = mock.request(&post("/v1/chat/completions", &[], &chat_with("[mock:tool=get_weather]", true)));
    let chunks = resp.data_events_until_done();
    let header = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(
        (header["id"].as_str(), header["function"]["name"].as_str()),
        (Some("call_mock_1"), Some("get_weather"))
    );
    let args: String = chunks[1..5]
        .iter()
        .map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(args, r#"{"city":"Paris"}"#);
    assert!(chunks[2]["choices"][0]["delta"]["tool_calls"][0].get("id").is_none());
    assert_eq!(chunks[5]["choices"][0]["finish_reason"].as_str(), Some("tool_calls"));
    assert_eq!(chunks[6]["usage"]["prompt_tokens"].as_u64(), Some(10));
}

#[test]
fn openai_error_mid_stream_is_an_error_object_without_done() {
    let mock = InProcess::start(&[]);
    let resp = mock.request(&post("/v1/chat/completions", &[], &chat_with("[mock:error-mid-stream]", true)));
    let events = resp.events();
    assert_eq!(events.len(), 4);
    assert!(!resp.text().contains("[DONE]"));
    assert_eq!(event_json(&events[1])["choices"][0]["delta"]["content"].as_str(), Some("word "));
    let error = event_json(&events[3]);
    assert_eq!(error["error"]["type"].as_str(), Some("server_error"));
}

#[test]
fn body_directives_reach_transport_behaviour() {
    let mock = InProcess::dialect("anthropic");
    let headers = [("x-api-key", "k"), ("anthropic-version", "2023-06-01")];
    let raw = r#"{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"[mock:close-mid-stream=2]"}]}"#;
    let mut client = mock.connect();
    client.send(&post("/v1/messages", &headers, raw));
    assert_eq!(client.line(), "HTTP/1.1 200 OK");
    client.headers();
    let rest = String::from_utf8(client.read_to_end()).unwrap();
    assert_eq!(rest.matches("event: ").count(), 2, "{rest}");

    let mut client = mock.connect();
    let raw = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"[mock:garbage]"}]}"#;
    client.send(&post("/v1/messages", &headers, raw));
    assert_eq!(client.read_to_end(), b"not http at all\r\n\r\n");

    let raw = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"[mock:echo]"}]}"#;
    let echo = mock.request(&post("/v1/messages", &headers, raw)).json();
    assert_eq!(echo["body"].as_str(), Some(raw));
}

#[test]
fn delay_directive_paces_other_dialects() {
    let mock = InProcess::dialect("gemini");
    let raw = r#"{"contents":[{"parts":[{"text":"[mock:delay-ms=60]"}]}]}"#;
    let start = Instant::now();
    let path = "/v1beta/models/g:streamGenerateContent?alt=sse";
    let resp = mock.request(&post(path, &[("x-goog-api-key", "k")], raw));
    assert_eq!(resp.data_events().len(), 3);
    assert!(start.elapsed() >= Duration::from_millis(120));
}

#[test]
fn last_request_records_model_requests_only() {
    let mock = InProcess::start(&[]);
    let resp = mock.request(&get("/mock/last-request"));
    assert_eq!(resp.status, 404);
    resp.error_message();
    let headers = [("authorization", "Bearer sk-secret"), ("x-trace", "t1")];
    mock.request(&post("/v1/chat/completions?x=1", &headers, CHAT));
    mock.request(&get("/health"));
    mock.request(&get("/mock/stats"));
    let last = mock.last_request();
    assert_eq!(last["method"].as_str(), Some("POST"));
    assert_eq!(last["path"].as_str(), Some("/v1/chat/completions?x=1"));
    assert_eq!(last["headers"]["authorization"].as_str(), Some("Bearer [redacted]"));
    assert_eq!(last["headers"]["x-trace"].as_str(), Some("t1"));
    assert_eq!(last["body"]["messages"][0]["content"].as_str(), Some("hi"));
    assert!(!sonic_rs::to_string(&last).unwrap().contains("sk-secret"));
    // Stats are per server: six requests (two last-request, chat, health,
    // two stats), one connection each.
    let (connections, requests) = Mock::stats(&mut mock.connect());
    assert_eq!((connections, requests), (6, 6));
}

#[test]
fn malformed_bodies_get_4xx_in_every_dialect_and_the_mock_survives() {
    let routes = [
        ("openai", "/v1/chat/completions", &[][..]),
        ("anthropic", "/v1/messages", &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")][..]),
        ("gemini", "/v1beta/models/g:generateContent", &[("x-goog-api-key", "k")][..]),
        ("bedrock", "/model/m/converse-stream", &[("authorization", "Bearer k")][..]),
        ("ollama", "/api/chat", &[][..]),
    ];
    let bodies =
        ["\u{fffd}\u{0}", "[1,2]", "null", r#"{"messages":5,"contents":5,"model":7}"#, "[mock:", r#"{"mock":1}"#];
    for (dialect, path, headers) in routes {
        let mock = InProcess::dialect(dialect);
        let mut client = mock.connect();
        for body in bodies {
            let resp = client.request(&post(path, headers, body));
            assert!((400..500).contains(&resp.status), "{dialect} {body}: {} {}", resp.status, resp.text());
        }
        assert_eq!(client.request(&get("/health")).status, 200, "{dialect}");
        assert_eq!(mock.last_request()["body"]["mock"].as_u64(), Some(1), "{dialect}");
    }
}
