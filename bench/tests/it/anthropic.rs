//! `--dialect anthropic`: Messages JSON and SSE, validation, directives.

use super::*;

const AUTH: [(&str, &str); 2] = [("x-api-key", "sk-ant-secret"), ("anthropic-version", "2023-06-01")];

fn body(text: &str, stream: bool) -> String {
    format!(
        r#"{{"model":"claude-test","max_tokens":64,"stream":{stream},"messages":[{{"role":"user","content":[{{"type":"text","text":"{text}"}}]}}]}}"#
    )
}

fn messages(mock: &InProcess, text: &str, stream: bool) -> Response {
    mock.request(&post("/v1/messages", &AUTH, &body(text, stream)))
}

/// Asserts Anthropic's error shape and returns the error type.
fn error_type(resp: &Response) -> String {
    let v = resp.json();
    assert_eq!(v["type"].as_str(), Some("error"), "{}", resp.text());
    assert!(v["error"]["message"].is_str());
    v["error"]["type"].as_str().unwrap().to_owned()
}

#[test]
fn non_stream_message_has_the_canned_shape() {
    let mock = InProcess::dialect("anthropic");
    let resp = messages(&mock, "hi", false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("request-id"), Some("req_mock"));
    let want = r#"{"id":"msg_mock","type":"message","role":"assistant","model":"claude-test","content":[{"type":"text","text":"This is a benchmark response."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":20}}"#;
    assert_eq!(resp.text(), want);
}

#[test]
fn stream_sends_the_event_sequence_with_cumulative_usage() {
    let mock = InProcess::dialect("anthropic");
    let resp = messages(&mock, "hi", true);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let events = resp.named_events();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &events[0].1["message"];
    assert_eq!(start["model"].as_str(), Some("claude-test"));
    assert!(start["stop_reason"].is_null());
    assert_eq!(start["usage"]["input_tokens"].as_u64(), Some(10));
    let text: String = events[3..6].iter().map(|(_, e)| e["delta"]["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(text, "word word word ");
    let delta = &events[7].1;
    assert_eq!(delta["delta"]["stop_reason"].as_str(), Some("end_turn"));
    assert_eq!(delta["usage"]["output_tokens"].as_u64(), Some(3));
    assert_eq!(delta["usage"]["input_tokens"].as_u64(), Some(10));
}

#[test]
fn validation_failures_use_anthropic_errors() {
    let mock = InProcess::dialect("anthropic");
    let mut client = mock.connect();
    let ok = body("hi", false);
    let resp = client.request(&post("/v1/messages", &[("anthropic-version", "2023-06-01")], &ok));
    assert_eq!((resp.status, error_type(&resp).as_str()), (401, "authentication_error"));
    let resp = client.request(&post("/v1/messages", &[("x-api-key", "k")], &ok));
    assert_eq!((resp.status, error_type(&resp).as_str()), (400, "invalid_request_error"));
    for bad in [
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"model":"m","max_tokens":5,"messages":[]}"#,
        r#"{"model":"m","max_tokens":5}"#,
        r#"{"model":"m","max_tokens":5,"messages":"#,
        "[]",
    ] {
        let resp = client.request(&post("/v1/messages", &AUTH, bad));
        assert_eq!((resp.status, error_type(&resp).as_str()), (400, "invalid_request_error"), "{bad}");
    }
    let bearer = [("authorization", "Bearer tok"), ("anthropic-version", "2023-06-01")];
    assert_eq!(client.request(&post("/v1/messages", &bearer, &ok)).status, 200);
    let resp = client.request(&get("/v1/messages"));
    assert_eq!((resp.status, resp.header("allow")), (405, Some("POST")));
    error_type(&resp);
    let resp = client.request(&post("/v1/complete", &AUTH, &ok));
    assert_eq!((resp.status, error_type(&resp).as_str()), (404, "not_found_error"));
}

#[test]
fn tool_directive_streams_arguments_split_mid_token() {
    let mock = InProcess::dialect("anthropic");
    let events = messages(&mock, "weather? [mock:tool=get_weather]", true).named_events();
    let start = &events[1].1["content_block"];
    assert_eq!(start["type"].as_str(), Some("tool_use"));
    assert_eq!(start["id"].as_str(), Some("toolu_mock_1"));
    assert_eq!(start["name"].as_str(), Some("get_weather"));
    let fragments: Vec<String> = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, e)| {
            assert_eq!(e["delta"]["type"].as_str(), Some("input_json_delta"));
            e["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(fragments, ["", r#"{"ci"#, r#"ty":"Pa"#, r#"ris"}"#]);
    let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"].as_str(), Some("tool_use"));

    // Non-stream, scripted by header instead.
    let headers = [AUTH[0], AUTH[1], ("x-mock-tool", "lookup")];
    let v = mock.request(&post("/v1/messages", &headers, &body("hi", false))).json();
    assert_eq!(v["stop_reason"].as_str(), Some("tool_use"));
    assert_eq!(v["content"][0]["name"].as_str(), Some("lookup"));
    assert_eq!(v["content"][0]["input"]["city"].as_str(), Some("Paris"));
}

#[test]
fn thinking_directive_adds_a_signed_thinking_block() {
    let mock = InProcess::dialect("anthropic");
    let v = messages(&mock, "[mock:thinking]", false).json();
    assert_eq!(v["content"][0]["type"].as_str(), Some("thinking"));
    assert_eq!(v["content"][0]["signature"].as_str(), Some("bW9jay1zaWduYXR1cmU="));
    assert_eq!(v["content"][1]["type"].as_str(), Some("text"));

    let events = messages(&mock, "[mock:thinking]", true).named_events();
    let deltas: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, e)| e["delta"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["thinking_delta", "signature_delta", "text_delta", "text_delta", "text_delta"]);
    let text_start = events.iter().filter(|(n, _)| n == "content_block_start").nth(1).unwrap();
    assert_eq!(text_start.1["index"].as_u64(), Some(1));
}

#[test]
fn error_mid_stream_sends_an_error_event_after_two_deltas() {
    let mock = InProcess::dialect("anthropic");
    let events = messages(&mock, "[mock:error-mid-stream]", true).named_events();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "error"]
    );
    assert_eq!(events[5].1["error"]["type"].as_str(), Some("overloaded_error"));
}

#[test]
fn status_directives_answer_in_anthropic_shape() {
    let mock = InProcess::dialect("anthropic");
    let resp = messages(&mock, "[mock:status=529]", true);
    assert_eq!((resp.status, error_type(&resp).as_str()), (529, "overloaded_error"));
    assert_eq!(resp.header("retry-after"), Some("1"));
    let resp = messages(&mock, "[mock:status=429]", false);
    assert_eq!((resp.status, error_type(&resp).as_str()), (429, "rate_limit_error"));
    assert_eq!(resp.header("retry-after"), Some("1"));
    // metadata.user_id carries directives too.
    let raw = r#"{"model":"m","max_tokens":5,"metadata":{"user_id":"[mock:status=500]"},"messages":[{"role":"user","content":"hi"}]}"#;
    let resp = mock.request(&post("/v1/messages", &AUTH, raw));
    assert_eq!((resp.status, error_type(&resp).as_str()), (500, "api_error"));
    let resp = messages(&mock, "[mock:status=nope]", false);
    assert_eq!((resp.status, error_type(&resp).as_str()), (400, "invalid_request_error"));
}

#[test]
fn count_tokens_and_last_request() {
    let mock = InProcess::dialect("anthropic");
    let raw = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let resp = mock.request(&post("/v1/messages/count_tokens", &AUTH, raw));
    assert_eq!(resp.text(), r#"{"input_tokens":10}"#);
    let last = mock.last_request();
    assert_eq!(last["method"].as_str(), Some("POST"));
    assert_eq!(last["path"].as_str(), Some("/v1/messages/count_tokens"));
    assert_eq!(last["headers"]["x-api-key"].as_str(), Some("[redacted]"));
    assert_eq!(last["headers"]["anthropic-version"].as_str(), Some("2023-06-01"));
    assert_eq!(last["body"]["messages"][0]["content"].as_str(), Some("hi"));
}
