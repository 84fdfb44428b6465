//! Image generation and speech (`/v1/images/generations`, `/v1/audio/speech`):
//! relayed to an OpenAI-dialect provider as they are, with an alias's model
//! name spliced in, and the answer back whole in its own content type.

use sonic_rs::JsonValueTrait;

use crate::support::*;

fn config(upstream: &Scripted) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
shards = 1
[providers.up]
kind = "openai"
base_url = "http://{}/v1"
api_key = "sk-upstream-secret"
models = ["bench-image", "bench-tts", "bench-whisper"]
max_retries = 0
timeout = 5
[providers.claude]
kind = "anthropic"
base_url = "http://{}"
api_key = "sk-ant-upstream"
models = ["claude-only"]
[aliases]
pic = "bench-image"
ears = "bench-whisper"
"#,
        upstream.addr, upstream.addr
    )
}

#[test]
fn image_generation_is_relayed_with_the_alias_resolved() {
    let answer = r#"{"created":1,"data":[{"b64_json":"aGVsbG8="}],"usage":{"input_tokens":5,"output_tokens":100}}"#;
    let up = Scripted::start(move |_| Action::Reply(json_reply(200, "", answer)));
    let gw = Gateway::start(&config(&up));
    let body = r#"{"model":"pic","prompt":"a cat on a mat","n":1,"size":"1024x1024"}"#;
    let r = gw.post("/v1/images/generations", body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), answer, "the provider's answer, byte for byte");
    assert_eq!(r.header("x-corelay-provider"), Some("up"));
    let sent = up.last();
    assert_eq!(sent.request_line(), "POST /v1/images/generations HTTP/1.1");
    assert_eq!(sent.header("authorization").as_deref(), Some("Bearer sk-upstream-secret"));
    assert_eq!(sent.body_text(), body.replace(r#""pic""#, r#""bench-image""#));
}

#[test]
fn speech_comes_back_as_the_providers_bytes_and_content_type() {
    let audio: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let mut reply =
        format!("HTTP/1.1 200 OK\r\ncontent-type: audio/mpeg\r\ncontent-length: {}\r\n\r\n", audio.len()).into_bytes();
    reply.extend_from_slice(&audio);
    let up = Scripted::start(move |_| Action::Reply(reply.clone()));
    let gw = Gateway::start(&config(&up));
    let r = gw.post("/v1/audio/speech", r#"{"model":"bench-tts","input":"hello","voice":"alloy"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("audio/mpeg"));
    assert_eq!(r.body, audio);
    assert_eq!(up.last().request_line(), "POST /v1/audio/speech HTTP/1.1");
    // The request counts in the usage, without tokens.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let v = gw.get("/v1/usage").json();
        if v["total"]["requests"].as_u64() == Some(1) {
            assert_eq!(v["data"][0]["model"].as_str(), Some("bench-tts"), "{v}");
            assert_eq!(v["total"]["prompt_tokens"].as_u64(), Some(0), "{v}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the speech request never reached the usage: {v}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn what_cannot_be_relayed_is_refused_clearly() {
    let up = Scripted::start(|_| Action::Reply(json_reply(200, "", "{}")));
    let gw = Gateway::start(&config(&up));
    // An Anthropic deployment has no image endpoint.
    let r = gw.post("/v1/images/generations", r#"{"model":"claude-only","prompt":"x"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    let (message, _, _) = r.openai_error();
    assert!(message.contains("`claude`") && message.contains("image generation"), "{message}");
    let r = gw.post("/v1/audio/speech", r#"{"model":"bench-tts","input":"x","stream":true}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(gw.post("/v1/images/generations", r#"{"model":"nope","prompt":"x"}"#).status, 404);
    assert_eq!(gw.post("/v1/images/generations", "{not json").status, 400);
    assert_eq!(gw.get("/v1/audio/speech").status, 405);
    assert!(up.requests.lock().unwrap().is_empty(), "nothing reached the provider");
}

/// A multipart form: a binary `file` part, then `model` and `language`.
fn form(model: &str) -> Vec<u8> {
    let mut body = b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\x00\xff--b0und\r\n".to_vec();
    body.extend_from_slice(
        format!("--b0undary\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n").as_bytes(),
    );
    body.extend_from_slice(
        b"--b0undary\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nen\r\n--b0undary--\r\n",
    );
    body
}

#[test]
fn transcription_forms_are_relayed_with_only_the_model_replaced() {
    let up = Scripted::start(|r| {
        let text = if r.request_line().contains("/audio/translations") { "translated" } else { "hello there" };
        Action::Reply(
            format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{text}", text.len())
                .into_bytes(),
        )
    });
    let gw = Gateway::start(&config(&up));
    let content_type = [("content-type", "multipart/form-data; boundary=b0undary")];
    let r = gw.client().send("POST", "/v1/audio/transcriptions", &content_type, &form("ears"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((r.text().as_str(), r.header("content-type")), ("hello there", Some("text/plain")));
    let sent = up.last();
    assert_eq!(sent.request_line(), "POST /v1/audio/transcriptions HTTP/1.1");
    assert_eq!(sent.header("content-type").as_deref(), Some("multipart/form-data; boundary=b0undary"));
    assert_eq!(sent.body, form("bench-whisper"), "the file part untouched, the alias resolved");
    let r = gw.client().send("POST", "/v1/audio/translations", &content_type, &form("bench-whisper"));
    assert_eq!((r.status, r.text().as_str()), (200, "translated"));
    assert_eq!(up.last().body, form("bench-whisper"));
    // Both count as requests.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while gw.get("/v1/usage").json()["total"]["requests"].as_u64() != Some(2) {
        assert!(std::time::Instant::now() < deadline, "{}", gw.get("/v1/usage").text());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Not a form, no model, or a stream: refused before any provider.
    let before = up.requests.lock().unwrap().len();
    let r = gw.post("/v1/audio/transcriptions", r#"{"model":"ears"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.openai_error().0.contains("multipart/form-data"), "{}", r.text());
    let no_model = String::from_utf8_lossy(&form("x")).replace("name=\"model\"", "name=\"prompt\"");
    let r = gw.client().send("POST", "/v1/audio/transcriptions", &content_type, no_model.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.openai_error().0.contains("`model`"), "{}", r.text());
    let mut streamed = form("ears");
    streamed.truncate(streamed.len() - b"--b0undary--\r\n".len());
    streamed.extend_from_slice(
        b"--b0undary\r\nContent-Disposition: form-data; name=\"stream\"\r\n\r\ntrue\r\n--b0undary--\r\n",
    );
    assert_eq!(gw.client().send("POST", "/v1/audio/transcriptions", &content_type, &streamed).status, 400);
    // Two `model` fields: the one checked might not be the one a provider reads.
    let mut twice = form("ears");
    twice.truncate(twice.len() - b"--b0undary--\r\n".len());
    twice.extend_from_slice(
        b"--b0undary\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nother\r\n--b0undary--\r\n",
    );
    let r = gw.client().send("POST", "/v1/audio/transcriptions", &content_type, &twice);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.openai_error().0.contains("more than one `model`"), "{}", r.text());
    assert_eq!(up.requests.lock().unwrap().len(), before);
}
