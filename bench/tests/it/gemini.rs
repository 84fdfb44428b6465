//! `--dialect gemini`: generateContent, alt=sse streams, embeddings, errors.

use super::*;

const KEY: [(&str, &str); 1] = [("x-goog-api-key", "AIza-secret")];
const GENERATE: &str = "/v1beta/models/gemini-test:generateContent";
const STREAM: &str = "/v1beta/models/gemini-test:streamGenerateContent?alt=sse";

fn body(text: &str) -> String {
    format!(r#"{{"contents":[{{"role":"user","parts":[{{"text":"{text}"}}]}}]}}"#)
}

/// Asserts Google's error shape and returns (code, status).
fn google_error(resp: &Response) -> (u64, String) {
    let v = resp.json();
    let e = &v["error"];
    assert!(e["message"].is_str(), "{}", resp.text());
    (e["code"].as_u64().unwrap(), e["status"].as_str().unwrap().to_owned())
}

#[test]
fn generate_content_has_the_canned_shape() {
    let mock = InProcess::dialect("gemini");
    let resp = mock.request(&post(GENERATE, &KEY, &body("hi")));
    assert_eq!(resp.status, 200);
    let want = r#"{"candidates":[{"content":{"parts":[{"text":"This is a benchmark response."}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":20,"totalTokenCount":30},"modelVersion":"gemini-test","responseId":"mock-response"}"#;
    assert_eq!(resp.text(), want);
}

#[test]
fn sse_stream_has_data_lines_only_and_no_terminator() {
    let mock = InProcess::dialect("gemini");
    let resp = mock.request(&post(STREAM, &KEY, &body("hi")));
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let chunks = resp.data_events();
    assert_eq!(chunks.len(), 3);
    assert!(!resp.text().contains("[DONE]") && !resp.text().contains("event:"));
    for (i, c) in chunks.iter().enumerate() {
        let candidate = &c["candidates"][0];
        assert_eq!(candidate["content"]["parts"][0]["text"].as_str(), Some("word "));
        assert_eq!(candidate["finishReason"].as_str(), (i == 2).then_some("STOP"));
        assert_eq!(c["usageMetadata"]["candidatesTokenCount"].as_u64(), Some(i as u64 + 1));
    }
    assert_eq!(chunks[2]["usageMetadata"]["totalTokenCount"].as_u64(), Some(13));

    // Without alt=sse: one JSON array of the same chunks.
    let resp = mock.request(&post("/v1beta/models/g:streamGenerateContent", &KEY, &body("hi")));
    assert_eq!(resp.json().as_array().map(|a| a.len()), Some(3));
}

#[test]
fn key_and_contents_are_required() {
    let mock = InProcess::dialect("gemini");
    let mut client = mock.connect();
    let resp = client.request(&post(GENERATE, &[], &body("hi")));
    assert_eq!((resp.status, google_error(&resp)), (403, (403, "PERMISSION_DENIED".into())));
    let resp = client.request(&post(&format!("{GENERATE}?key=AIza"), &[], &body("hi")));
    assert_eq!(resp.status, 200);
    for bad in [r#"{}"#, r#"{"contents":[]}"#, r#"{"contents":{}}"#, "{", "3"] {
        let resp = client.request(&post(GENERATE, &KEY, bad));
        assert_eq!((resp.status, google_error(&resp)), (400, (400, "INVALID_ARGUMENT".into())), "{bad}");
    }
    let resp = client.request(&post("/v1beta/models/g:unknownMethod", &KEY, &body("hi")));
    assert_eq!(google_error(&resp), (404, "NOT_FOUND".into()));
}

#[test]
fn tool_directive_sends_a_whole_function_call() {
    let mock = InProcess::dialect("gemini");
    let chunks = mock.request(&post(STREAM, &KEY, &body("[mock:tool=get_weather]"))).data_events();
    assert_eq!(chunks.len(), 1);
    let part = &chunks[0]["candidates"][0]["content"]["parts"][0];
    assert_eq!(part["functionCall"]["name"].as_str(), Some("get_weather"));
    assert_eq!(part["functionCall"]["args"]["city"].as_str(), Some("Paris"));
    assert_eq!(chunks[0]["candidates"][0]["finishReason"].as_str(), Some("STOP"));
    let v = mock.request(&post(GENERATE, &KEY, &body("[mock:tool=get_weather]"))).json();
    assert!(v["candidates"][0]["content"]["parts"][0]["functionCall"].is_object());
}

#[test]
fn thinking_directive_adds_a_thought_and_a_signature() {
    let mock = InProcess::dialect("gemini");
    let v = mock.request(&post(GENERATE, &KEY, &body("[mock:thinking][mock:tool=t]"))).json();
    let parts = &v["candidates"][0]["content"]["parts"];
    assert_eq!(parts[0]["thought"].as_bool(), Some(true));
    assert_eq!(parts[1]["thoughtSignature"].as_str(), Some("bW9jay1zaWduYXR1cmU="));
    assert!(parts[1]["functionCall"].is_object());
    assert_eq!(v["usageMetadata"]["thoughtsTokenCount"].as_u64(), Some(8));
    assert_eq!(v["usageMetadata"]["totalTokenCount"].as_u64(), Some(38));
    let chunks = mock.request(&post(STREAM, &KEY, &body("[mock:thinking]"))).data_events();
    assert_eq!(chunks[0]["candidates"][0]["content"]["parts"][0]["thought"].as_bool(), Some(true));
    assert!(chunks[1]["candidates"][0]["content"]["parts"][0]["thoughtSignature"].is_str());
}

#[test]
fn error_mid_stream_is_a_raw_error_object_in_a_data_line() {
    let mock = InProcess::dialect("gemini");
    let chunks = mock.request(&post(STREAM, &KEY, &body("[mock:error-mid-stream]"))).data_events();
    assert_eq!(chunks.len(), 3);
    assert!(chunks[1]["candidates"].is_array());
    assert_eq!(chunks[2]["error"]["status"].as_str(), Some("UNAVAILABLE"));
    assert!(chunks[2].get("candidates").is_none());
}

#[test]
fn status_directives_answer_in_google_shape() {
    let mock = InProcess::dialect("gemini");
    let resp = mock.request(&post(GENERATE, &KEY, &body("[mock:status=429]")));
    assert_eq!((resp.status, google_error(&resp)), (429, (429, "RESOURCE_EXHAUSTED".into())));
    let resp = mock.request(&post(GENERATE, &KEY, &body("[mock:status=401]")));
    assert_eq!((resp.status, google_error(&resp)), (400, (400, "INVALID_ARGUMENT".into())));
    assert_eq!(resp.json()["error"]["details"][0]["reason"].as_str(), Some("API_KEY_INVALID"));
    // Directives in an earlier turn are ignored.
    let history = r#"{"contents":[{"role":"user","parts":[{"text":"[mock:status=500]"}]},{"role":"model","parts":[{"text":"a"}]},{"role":"user","parts":[{"text":"b"}]}]}"#;
    assert_eq!(mock.request(&post(GENERATE, &KEY, history)).status, 200);
}

#[test]
fn embeddings_and_last_request() {
    let mock = InProcess::dialect("gemini");
    let one = r#"{"content":{"parts":[{"text":"a"}]},"outputDimensionality":8}"#;
    let v = mock.request(&post("/v1beta/models/text-embedding-004:embedContent", &KEY, one)).json();
    assert_eq!(v["embedding"]["values"].as_array().map(|a| a.len()), Some(8));
    let batch = r#"{"requests":[{"model":"models/e","content":{"parts":[{"text":"a"}]}},{"model":"models/e","content":{"parts":[{"text":"b"}]}}]}"#;
    let path = "/v1beta/models/e:batchEmbedContents?key=AIza-in-query";
    let v = mock.request(&post(path, &[], batch)).json();
    let embeddings = v["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    assert_eq!(embeddings[1]["values"].as_array().map(|a| a.len()), Some(768));
    let last = mock.last_request();
    assert_eq!(last["path"].as_str(), Some("/v1beta/models/e:batchEmbedContents?key=[redacted]"));
    assert_eq!(last["body"]["requests"][1]["content"]["parts"][0]["text"].as_str(), Some("b"));
    let resp = mock.request(&post("/v1beta/models/e:batchEmbedContents", &KEY, r#"{"requests":[]}"#));
    assert_eq!(google_error(&resp), (400, "INVALID_ARGUMENT".into()));
    mock.request(&post(GENERATE, &KEY, &body("x")));
    assert_eq!(mock.last_request()["headers"]["x-goog-api-key"].as_str(), Some("[redacted]"));
}
