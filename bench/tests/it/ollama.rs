//! `--dialect ollama`: native NDJSON chat, embed, errors, and the
//! OpenAI-compatible `/v1` routes.

use super::*;

fn chat(mock: &InProcess, text: &str, stream: Option<bool>) -> Response {
    let stream = stream.map_or(String::new(), |s| format!(r#","stream":{s}"#));
    let raw = format!(r#"{{"model":"llama-test","messages":[{{"role":"user","content":"{text}"}}]{stream}}}"#);
    mock.request(&post("/api/chat", &[], &raw))
}

/// NDJSON lines, one per HTTP chunk, parsed.
fn lines(resp: &Response) -> Vec<Value> {
    assert_eq!(resp.header("content-type"), Some("application/x-ndjson"));
    resp.chunks
        .iter()
        .map(|c| {
            let text = std::str::from_utf8(c).unwrap();
            assert!(text.ends_with('\n') && text.matches('\n').count() == 1, "{text:?}");
            sonic_rs::from_str(text).unwrap()
        })
        .collect()
}

#[test]
fn chat_streams_ndjson_by_default_and_ends_with_done() {
    let mock = InProcess::dialect("ollama");
    let lines = lines(&chat(&mock, "hi", None));
    assert_eq!(lines.len(), 4);
    for l in &lines[..3] {
        assert_eq!(l["model"].as_str(), Some("llama-test"));
        assert_eq!(l["message"]["content"].as_str(), Some("word "));
        assert_eq!(l["done"].as_bool(), Some(false));
    }
    let last = &lines[3];
    assert_eq!(last["done"].as_bool(), Some(true));
    assert_eq!(last["done_reason"].as_str(), Some("stop"));
    assert_eq!((last["prompt_eval_count"].as_u64(), last["eval_count"].as_u64()), (Some(10), Some(3)));
}

#[test]
fn chat_without_stream_is_one_object() {
    let mock = InProcess::dialect("ollama");
    let resp = chat(&mock, "hi", Some(false));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let want = r#"{"model":"llama-test","created_at":"2023-11-14T22:13:20Z","message":{"role":"assistant","content":"This is a benchmark response."},"done":true,"done_reason":"stop","total_duration":1000000,"load_duration":1000,"prompt_eval_duration":1000,"eval_duration":1000,"prompt_eval_count":10,"eval_count":20}"#;
    assert_eq!(resp.text(), want);
}

#[test]
fn tool_thinking_and_errors_are_scripted() {
    let mock = InProcess::dialect("ollama");
    let lines_of = |text| lines(&chat(&mock, text, None));
    let tool = lines_of("[mock:tool=get_weather][mock:thinking]");
    assert_eq!(tool.len(), 3);
    assert_eq!(tool[0]["message"]["thinking"].as_str(), Some("Let me think about this."));
    let call = &tool[1]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"].as_str(), Some("get_weather"));
    assert_eq!(call["function"]["arguments"]["city"].as_str(), Some("Paris"));
    assert_eq!(tool[2]["done"].as_bool(), Some(true));

    let broken = lines_of("[mock:error-mid-stream]");
    assert_eq!(broken.len(), 3);
    assert_eq!(broken[2]["error"].as_str(), Some("mock error mid-stream"));

    let resp = chat(&mock, "[mock:status=404]", None);
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json()["error"].as_str(), Some("mock error 404"));
    let resp = mock.request(&post("/api/chat", &[], r#"{"messages":[]}"#));
    assert_eq!((resp.status, resp.json()["error"].as_str()), (400, Some("model is required")));
    // A top-level "mock" field works too, as Ollama ignores unknown fields.
    let resp = mock.request(&post("/api/chat", &[], r#"{"model":"m","mock":"[mock:status=500]"}"#));
    assert_eq!(resp.status, 500);
}

#[test]
fn embed_and_openai_compatible_routes() {
    let mock = InProcess::dialect("ollama");
    let v = mock.request(&post("/api/embed", &[], r#"{"model":"e","input":["a","b"]}"#)).json();
    assert_eq!(v["embeddings"].as_array().map(|a| a.len()), Some(2));
    assert_eq!(v["embeddings"][0].as_array().map(|a| a.len()), Some(768));
    assert_eq!(v["prompt_eval_count"].as_u64(), Some(10));

    let resp = mock.request(&post("/v1/chat/completions", &[], CHAT));
    assert_eq!(resp.json()["object"].as_str(), Some("chat.completion"));
    let resp = mock.request(&post("/v1/chat/completions", &[], r#"{"messages":[]}"#));
    assert_eq!(resp.status, 400);
    resp.error_message();
    assert_eq!(mock.last_request()["path"].as_str(), Some("/v1/chat/completions"));
}
