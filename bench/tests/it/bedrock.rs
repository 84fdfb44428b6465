//! `--dialect bedrock`: Converse, ConverseStream event-stream frames (decoded
//! here by an independent decoder that checks both CRCs), InvokeModel
//! embeddings, AWS errors.

use super::*;

const SIGV4: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250102/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=b1833ff8f46623edf7ce6eef3ac29f456bf87a5c4edd4956cad164e05caaba2f";
const AUTH: [(&str, &str); 2] = [("authorization", SIGV4), ("x-amz-date", "20250102T030405Z")];
const CONVERSE: &str = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
const STREAM: &str = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream";

fn body(text: &str) -> String {
    format!(
        r#"{{"messages":[{{"role":"user","content":[{{"text":"{text}"}}]}}],"inferenceConfig":{{"maxTokens":64}}}}"#
    )
}

/// Bitwise IEEE CRC-32, written independently of the mock's `crc32fast`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn be32(b: &[u8]) -> usize {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
}

/// One decoded message: string headers and the JSON payload.
#[derive(Debug)]
pub(super) struct Frame {
    headers: Vec<(String, String)>,
    pub(super) payload: Value,
}

impl Frame {
    pub(super) fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

/// Decodes a whole event-stream body, asserting lengths and both CRCs.
pub(super) fn decode(mut body: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !body.is_empty() {
        assert!(body.len() >= 16, "truncated prelude");
        let total = be32(&body[0..]);
        let headers_len = be32(&body[4..]);
        assert_eq!(be32(&body[8..]) as u32, crc32(&body[..8]), "prelude CRC");
        assert!(body.len() >= total, "truncated message");
        let message = &body[..total];
        assert_eq!(be32(&message[total - 4..]) as u32, crc32(&message[..total - 4]), "message CRC");
        let mut h = &message[12..12 + headers_len];
        let mut headers = Vec::new();
        while !h.is_empty() {
            let name_len = h[0] as usize;
            let name = String::from_utf8(h[1..1 + name_len].to_vec()).unwrap();
            assert_eq!(h[1 + name_len], 7, "string header");
            let value_len = u16::from_be_bytes([h[2 + name_len], h[3 + name_len]]) as usize;
            let value = String::from_utf8(h[4 + name_len..4 + name_len + value_len].to_vec()).unwrap();
            headers.push((name, value));
            h = &h[4 + name_len + value_len..];
        }
        let payload = sonic_rs::from_slice(&message[12 + headers_len..total - 4]).expect("JSON payload");
        frames.push(Frame { headers, payload });
        body = &body[total..];
    }
    frames
}

fn stream(mock: &InProcess, text: &str) -> Vec<Frame> {
    let resp = mock.request(&post(STREAM, &AUTH, &body(text)));
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.header("content-type"), Some("application/vnd.amazon.eventstream"));
    decode(&resp.body)
}

fn event_types(frames: &[Frame]) -> Vec<&str> {
    frames.iter().map(|f| f.header(":event-type")).collect()
}

/// Asserts the AWS error shape and returns the exception name.
fn aws_error(resp: &Response) -> String {
    assert!(resp.json()["message"].is_str(), "{}", resp.text());
    let kind = resp.header("x-amzn-errortype").expect("x-amzn-errortype");
    kind.split(':').next().unwrap().to_owned()
}

#[test]
fn the_decoder_accepts_the_documented_vector_and_rejects_a_flipped_bit() {
    let hex = "0000009400000057b4ab9aee0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c74610d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22636f6e74656e74426c6f636b496e646578223a302c2264656c7461223a7b2274657874223a224869227d7d1f944657";
    let mut bytes: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    assert_eq!(decode(&bytes)[0].payload["delta"]["text"].as_str(), Some("Hi"));
    bytes[100] ^= 1;
    assert!(std::panic::catch_unwind(|| decode(&bytes)).is_err());
}

#[test]
fn converse_has_the_canned_shape() {
    let mock = InProcess::dialect("bedrock");
    let resp = mock.request(&post(CONVERSE, &AUTH, &body("hi")));
    assert_eq!(resp.status, 200);
    let want = r#"{"output":{"message":{"role":"assistant","content":[{"text":"This is a benchmark response."}]}},"stopReason":"end_turn","usage":{"inputTokens":10,"outputTokens":20,"totalTokens":30,"cacheReadInputTokens":0,"cacheWriteInputTokens":0},"metrics":{"latencyMs":1}}"#;
    assert_eq!(resp.text(), want);
}

#[test]
fn converse_stream_frames_end_with_metadata_after_message_stop() {
    let mock = InProcess::dialect("bedrock");
    let frames = stream(&mock, "hi");
    assert_eq!(
        event_types(&frames),
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    for f in &frames {
        assert_eq!(f.header(":message-type"), "event");
        assert_eq!(f.header(":content-type"), "application/json");
    }
    assert_eq!(frames[0].payload["role"].as_str(), Some("assistant"));
    assert_eq!(frames[1].payload["delta"]["text"].as_str(), Some("word "));
    assert_eq!(frames[5].payload["stopReason"].as_str(), Some("end_turn"));
    let usage = &frames[6].payload["usage"];
    assert_eq!((usage["inputTokens"].as_u64(), usage["outputTokens"].as_u64()), (Some(10), Some(3)));
    assert_eq!(usage["totalTokens"].as_u64(), Some(13));
}

#[test]
fn auth_must_be_sigv4_shaped_or_bearer() {
    let mock = InProcess::dialect("bedrock");
    let mut client = mock.connect();
    let cases: [&[(&str, &str)]; 4] = [
        &[],
        &[("authorization", SIGV4)],
        &[("authorization", "AWS4-HMAC-SHA256 Credential=A/b, SignedHeaders=host"), ("x-amz-date", "20250102T030405Z")],
        &[("authorization", "Basic abc")],
    ];
    for headers in cases {
        let resp = client.request(&post(CONVERSE, headers, &body("hi")));
        assert_eq!((resp.status, aws_error(&resp).as_str()), (403, "AccessDeniedException"), "{headers:?}");
    }
    let resp = client.request(&post(CONVERSE, &[("authorization", "Bearer bedrock-api-key")], &body("hi")));
    assert_eq!(resp.status, 200);
}

#[test]
fn missing_messages_is_a_validation_exception() {
    let mock = InProcess::dialect("bedrock");
    for bad in [r#"{"inferenceConfig":{}}"#, r#"{"messages":[]}"#, "{oops"] {
        let resp = mock.request(&post(CONVERSE, &AUTH, bad));
        assert_eq!((resp.status, aws_error(&resp).as_str()), (400, "ValidationException"), "{bad}");
    }
}

#[test]
fn tool_directive_streams_input_fragments() {
    let mock = InProcess::dialect("bedrock");
    let frames = stream(&mock, "[mock:tool=get_weather]");
    assert_eq!(
        event_types(&frames),
        [
            "messageStart",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    let start = &frames[1].payload["start"]["toolUse"];
    assert_eq!(start["toolUseId"].as_str(), Some("tooluse_mock_1"));
    assert_eq!(start["name"].as_str(), Some("get_weather"));
    let input: String =
        frames[2..5].iter().map(|f| f.payload["delta"]["toolUse"]["input"].as_str().unwrap().to_owned()).collect();
    assert_eq!(input, r#"{"city":"Paris"}"#);
    assert_eq!(frames[2].payload["delta"]["toolUse"]["input"].as_str(), Some(r#"{"ci"#));
    assert_eq!(frames[6].payload["stopReason"].as_str(), Some("tool_use"));
    let v = mock.request(&post(CONVERSE, &AUTH, &body("[mock:tool=get_weather][mock:thinking]"))).json();
    let content = &v["output"]["message"]["content"];
    assert_eq!(content[0]["reasoningContent"]["reasoningText"]["signature"].as_str(), Some("bW9jay1zaWduYXR1cmU="));
    assert_eq!(content[1]["toolUse"]["input"]["city"].as_str(), Some("Paris"));
}

#[test]
fn error_mid_stream_is_an_exception_frame() {
    let mock = InProcess::dialect("bedrock");
    let frames = stream(&mock, "[mock:error-mid-stream]");
    assert_eq!(event_types(&frames), ["messageStart", "contentBlockDelta", "contentBlockDelta", ""]);
    let last = &frames[3];
    assert_eq!(last.header(":message-type"), "exception");
    assert_eq!(last.header(":exception-type"), "throttlingException");
    assert!(last.payload["message"].is_str());
}

#[test]
fn status_directives_answer_with_aws_exceptions() {
    let mock = InProcess::dialect("bedrock");
    for (status, exception) in
        [(429, "ThrottlingException"), (400, "ValidationException"), (424, "ModelErrorException")]
    {
        let resp = mock.request(&post(STREAM, &AUTH, &body(&format!("[mock:status={status}]"))));
        assert_eq!((resp.status, aws_error(&resp).as_str()), (status, exception));
        assert_eq!(resp.header("content-type"), Some("application/json"));
    }
}

#[test]
fn invoke_serves_titan_and_cohere_embeddings() {
    let mock = InProcess::dialect("bedrock");
    let v = mock
        .request(&post("/model/amazon.titan-embed-text-v2:0/invoke", &AUTH, r#"{"inputText":"hi","dimensions":256}"#))
        .json();
    assert_eq!(v["embedding"].as_array().map(|a| a.len()), Some(256));
    assert_eq!(v["inputTextTokenCount"].as_u64(), Some(5));
    let raw = r#"{"texts":["a","b"],"input_type":"search_document"}"#;
    let v = mock.request(&post("/model/cohere.embed-english-v3/invoke", &AUTH, raw)).json();
    assert_eq!(v["embeddings"].as_array().map(|a| a.len()), Some(2));
    assert_eq!(v["response_type"].as_str(), Some("embeddings_floats"));
    let resp = mock.request(&post("/model/cohere.embed-english-v3/invoke", &AUTH, r#"{"texts":["a"]}"#));
    assert_eq!(aws_error(&resp), "ValidationException");
    let resp = mock.request(&post("/model/amazon.titan-embed-text-v2:0/invoke", &AUTH, r#"{}"#));
    assert_eq!((resp.status, aws_error(&resp).as_str()), (400, "ValidationException"));
}

#[test]
fn last_request_keeps_the_sigv4_scope_but_not_the_signature() {
    let mock = InProcess::dialect("bedrock");
    mock.request(&post(CONVERSE, &AUTH, &body("hi")));
    let last = mock.last_request();
    assert_eq!(last["path"].as_str(), Some(CONVERSE));
    let auth = last["headers"]["authorization"].as_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250102/us-east-1/bedrock/aws4_request"),
        "{auth}"
    );
    assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date"), "{auth}");
    assert!(auth.ends_with("Signature=[redacted]") && !auth.contains("b1833ff8"), "{auth}");
    assert_eq!(last["headers"]["x-amz-date"].as_str(), Some("20250102T030405Z"));
    assert_eq!(last["body"]["inferenceConfig"]["maxTokens"].as_u64(), Some(64));
}
