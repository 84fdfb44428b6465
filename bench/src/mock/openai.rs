//! The OpenAI dialect: request validation and canned response bodies.
//!
//! Bodies are rendered by appending bytes in a fixed key order, so tests can
//! compare them byte-for-byte and a benchmark pays for a few memcpys rather
//! than a serializer. Shapes follow providers/openai.md §3-6; ids, timestamps
//! (`created` is always 1700000000) and token counts are fixed so responses
//! are reproducible.

use std::sync::OnceLock;
use std::time::Duration;

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

use crate::mock::canned::{self, Answer};
use crate::mock::events::{Cut, EventList, EventSource};
use crate::mock::json;

/// Canned usage for chat; streams report `chunks` completion tokens instead.
pub const PROMPT_TOKENS: u32 = canned::INPUT_TOKENS;
/// Dimensions of every embedding, as text-embedding-3-small.
pub const EMBEDDING_DIMS: usize = 1536;
/// Prompt tokens charged per embeddings input.
pub const TOKENS_PER_INPUT: usize = 5;

const CONTENT: &str = canned::TEXT;
/// The id of every tool call.
pub const TOOL_CALL_ID: &str = "call_mock_1";
/// The message of OpenAI's 503, also sent in-stream by `error-before-content`.
pub const OVERLOADED_MESSAGE: &str = "The server is overloaded or not ready yet.";

/// OpenAI's rate-limit headers (providers/openai.md), on every model answer
/// so a gateway's pass-through of them can be tested. The values describe
/// a budget far from exhausted.
pub const RATE_LIMIT_HEADERS: &[u8] = b"x-ratelimit-limit-requests: 10000\r\n\
x-ratelimit-limit-tokens: 30000000\r\n\
x-ratelimit-remaining-requests: 9999\r\n\
x-ratelimit-remaining-tokens: 29999990\r\n\
x-ratelimit-reset-requests: 6ms\r\n\
x-ratelimit-reset-tokens: 0s\r\n";

/// `GET /models`: the two models crabllm-bench's scripts ask for.
pub const MODELS: &[u8] = br#"{"object":"list","data":[{"id":"bench-chat","object":"model","created":1700000000,"owned_by":"corelay-mock"},{"id":"bench-embed","object":"model","created":1700000000,"owned_by":"corelay-mock"}]}"#;

/// What the mock needs from a chat completion request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub stream: bool,
    pub include_usage: bool,
}

/// What the mock needs from an embeddings request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingsRequest {
    pub model: Option<String>,
    pub inputs: usize,
}

/// Validates a chat body. `model_required` is false under an Azure
/// deployment path, where the deployment names the model.
#[cfg(test)]
pub fn parse_chat(body: &[u8], model_required: bool) -> Result<ChatRequest, String> {
    parse_chat_value(&parse_object(body)?, model_required)
}

/// Validates a parsed chat body.
pub fn parse_chat_value(v: &Value, model_required: bool) -> Result<ChatRequest, String> {
    let model = model(v, model_required)?;
    match v.get("messages") {
        Some(m) if m.is_array() => {}
        Some(_) => return Err("Invalid type for 'messages': expected an array.".into()),
        None => return Err("Missing required parameter: 'messages'.".into()),
    }
    let include_usage = v.get("stream_options").and_then(|o| o.get("include_usage")).and_then(|u| u.as_bool());
    Ok(ChatRequest {
        model,
        stream: v.get("stream").and_then(|s| s.as_bool()) == Some(true),
        include_usage: include_usage == Some(true),
    })
}

/// Validates an embeddings body and counts its inputs.
#[cfg(test)]
pub fn parse_embeddings(body: &[u8], model_required: bool) -> Result<EmbeddingsRequest, String> {
    parse_embeddings_value(&parse_object(body)?, model_required)
}

/// Validates a parsed embeddings body and counts its inputs.
pub fn parse_embeddings_value(v: &Value, model_required: bool) -> Result<EmbeddingsRequest, String> {
    let model = model(v, model_required)?;
    let input = v.get("input").ok_or("Missing required parameter: 'input'.")?;
    Ok(EmbeddingsRequest { model, inputs: input_count(input)? })
}

/// Parses a request body that must be a JSON object (every dialect's rule).
pub fn parse_object(body: &[u8]) -> Result<Value, String> {
    let v: Value = sonic_rs::from_slice(body).map_err(|e| format!("We could not parse the JSON body: {e}"))?;
    if v.is_object() { Ok(v) } else { Err("The request body must be a JSON object.".into()) }
}

fn model(v: &Value, required: bool) -> Result<Option<String>, String> {
    match v.get("model") {
        Some(m) => match m.as_str() {
            Some(s) => Ok(Some(s.to_owned())),
            None => Err("Invalid type for 'model': expected a string.".into()),
        },
        None if required => Err("you must provide a model parameter".into()),
        None => Ok(None),
    }
}

/// A string is one input; an array of token ids is one input; any other
/// array holds one input per element.
fn input_count(input: &Value) -> Result<usize, String> {
    if input.is_str() {
        return Ok(1);
    }
    let items = input.as_array().ok_or("Invalid type for 'input': expected a string or an array.")?;
    if items.is_empty() {
        Err("'input' must not be empty.".into())
    } else if items.iter().all(|i| i.is_number()) {
        Ok(1)
    } else {
        Ok(items.len())
    }
}

/// An error body in OpenAI's shape, typed the way OpenAI types that status.
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    let (kind, code) = match status {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        429 => ("requests", Some("rate_limit_exceeded")),
        500.. => ("server_error", None),
        _ => ("invalid_request_error", None),
    };
    let mut out = Vec::with_capacity(96 + message.len());
    out.extend_from_slice(br#"{"error":{"message":"#);
    json::push_str(&mut out, message);
    out.extend_from_slice(br#","type":"#);
    json::push_str(&mut out, kind);
    out.extend_from_slice(br#","param":null,"code":"#);
    match code {
        Some(code) => json::push_str(&mut out, code),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}}");
    out
}

/// The non-stream chat completion.
pub fn chat_completion(model: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(320);
    out.extend_from_slice(br#"{"id":"chatcmpl-mock","object":"chat.completion","created":1700000000,"model":"#);
    json::push_str(&mut out, model);
    out.extend_from_slice(br#","choices":[{"index":0,"message":{"role":"assistant","content":"#);
    json::push_str(&mut out, CONTENT);
    out.extend_from_slice(
        br#"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}"#,
    );
    out
}

/// The non-stream answer of `tool`: one call with the canned arguments.
pub fn tool_completion(model: &str, tool: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(400);
    out.extend_from_slice(br#"{"id":"chatcmpl-mock","object":"chat.completion","created":1700000000,"model":"#);
    json::push_str(&mut out, model);
    out.extend_from_slice(
        br#","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"#,
    );
    json::push_str(&mut out, TOOL_CALL_ID);
    out.extend_from_slice(br#","type":"function","function":{"name":"#);
    json::push_str(&mut out, tool);
    out.extend_from_slice(br#","arguments":"#);
    json::push_str(&mut out, canned::TOOL_ARGS);
    out.extend_from_slice(
        br#"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}"#,
    );
    out
}

/// Streams for `tool`, `error-mid-stream` and `error-before-content`: a
/// role chunk, then either the tool call (header with id and name, then the
/// argument fragments, then `finish_reason:"tool_calls"`, usage if asked,
/// `[DONE]`) or two text deltas and an in-stream error object with no
/// `[DONE]`. Before content, the error object is the only event.
pub fn scripted_stream(model: &str, answer: &Answer, include_usage: bool) -> EventList {
    let mut list = EventList::new("text/event-stream", answer.delay, answer.cut);
    if answer.error_before_content {
        list.sse(false, None, &error_body(503, OVERLOADED_MESSAGE));
        return list;
    }
    let mut model_json = Vec::new();
    json::push_str(&mut model_json, model);
    let chunk = |choice: &str| {
        let mut out =
            br#"{"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1700000000,"model":"#.to_vec();
        out.extend_from_slice(&model_json);
        out.extend_from_slice(br#","choices":[{"index":0,"delta":"#);
        out.extend_from_slice(choice.as_bytes());
        out.extend_from_slice(b"}]");
        if include_usage {
            out.extend_from_slice(br#","usage":null"#);
        }
        out.push(b'}');
        out
    };
    list.sse(false, None, &chunk(r#"{"role":"assistant","content":""},"finish_reason":null"#));
    if answer.error_mid_stream {
        for _ in 0..canned::DELTAS_BEFORE_ERROR {
            list.sse(true, None, &chunk(&format!(r#"{{"content":"{}"}},"finish_reason":null"#, canned::DELTA)));
        }
        list.sse(true, None, &error_body(500, canned::STREAM_ERROR_MESSAGE));
        return list;
    }
    let name = answer.tool.as_deref().unwrap_or_default();
    let mut header =
        format!(r#"{{"tool_calls":[{{"index":0,"id":"{TOOL_CALL_ID}","type":"function","function":{{"name":"#);
    let mut quoted = Vec::new();
    json::push_str(&mut quoted, name);
    header.push_str(&String::from_utf8_lossy(&quoted));
    header.push_str(r#","arguments":""}}]},"finish_reason":null"#);
    list.sse(true, None, &chunk(&header));
    for fragment in canned::TOOL_ARG_FRAGMENTS {
        let mut args = Vec::new();
        json::push_str(&mut args, fragment);
        let delta = format!(
            r#"{{"tool_calls":[{{"index":0,"function":{{"arguments":{}}}}}]}},"finish_reason":null"#,
            String::from_utf8_lossy(&args)
        );
        list.sse(true, None, &chunk(&delta));
    }
    list.sse(true, None, &chunk(r#"{},"finish_reason":"tool_calls""#));
    if include_usage {
        let completion = answer.stream_output_tokens();
        let total = PROMPT_TOKENS + completion;
        let mut out =
            br#"{"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1700000000,"model":"#.to_vec();
        out.extend_from_slice(&model_json);
        let usage = format!(
            r#","choices":[],"usage":{{"prompt_tokens":{PROMPT_TOKENS},"completion_tokens":{completion},"total_tokens":{total}}}}}"#
        );
        out.extend_from_slice(usage.as_bytes());
        list.sse(false, None, &out);
    }
    list.sse(false, None, b"[DONE]");
    list
}

/// The embeddings response: `inputs` vectors of zeros.
pub fn embeddings(model: &str, inputs: usize) -> Vec<u8> {
    let vector = zero_vector();
    let mut out = Vec::with_capacity(128 + inputs * (vector.len() + 48));
    out.extend_from_slice(br#"{"object":"list","data":["#);
    for index in 0..inputs {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"object":"embedding","index":"#);
        out.extend_from_slice(index.to_string().as_bytes());
        out.extend_from_slice(br#","embedding":"#);
        out.extend_from_slice(vector);
        out.push(b'}');
    }
    out.extend_from_slice(br#"],"model":"#);
    json::push_str(&mut out, model);
    let tokens = inputs * TOKENS_PER_INPUT;
    let usage = format!(r#","usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}}}"#);
    out.extend_from_slice(usage.as_bytes());
    out
}

/// `[0.0,0.0,...]`, rendered once per process since it never changes.
fn zero_vector() -> &'static [u8] {
    static VECTOR: OnceLock<Vec<u8>> = OnceLock::new();
    VECTOR.get_or_init(|| {
        let mut v = b"[".to_vec();
        v.extend_from_slice(&vec!["0.0"; EMBEDDING_DIMS].join(",").into_bytes());
        v.push(b']');
        v
    })
}

/// A streamed chat completion, rendered one SSE event at a time.
///
/// Events `0..chunks` are content chunks (role first, `"word "` in the
/// middle, an empty delta with `finish_reason:"stop"` last), then the usage
/// chunk if asked for, then `data: [DONE]`.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    /// The model name, already a quoted JSON string.
    pub model_json: Vec<u8>,
    pub chunks: u32,
    pub include_usage: bool,
    /// Pause before every content chunk but the first.
    pub delay: Duration,
    /// End the connection after this many events (`close-mid-stream`,
    /// `reset-mid-stream`).
    pub cut: Option<Cut>,
}

impl StreamPlan {
    pub fn new(model: &str, chunks: u32, include_usage: bool, delay: Duration) -> Self {
        let mut model_json = Vec::with_capacity(model.len() + 2);
        json::push_str(&mut model_json, model);
        Self { model_json, chunks, include_usage, delay, cut: None }
    }

    /// Total SSE events, `[DONE]` included.
    pub fn event_count(&self) -> usize {
        self.chunks as usize + usize::from(self.include_usage) + 1
    }

    /// Whether event `i` is a content chunk (the ones `--delay` paces).
    pub fn is_content(&self, i: usize) -> bool {
        i < self.chunks as usize
    }

    /// Replaces `out` with event `i` (`data: ...\n\n`).
    pub fn render(&self, i: usize, out: &mut Vec<u8>) {
        out.clear();
        let chunks = self.chunks as usize;
        if i < chunks {
            self.content_event(i, out);
        } else if i == chunks && self.include_usage {
            self.usage_event(out);
        } else {
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
    }

    fn chunk_prefix(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            br#"data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1700000000,"model":"#,
        );
        out.extend_from_slice(&self.model_json);
    }

    fn content_event(&self, i: usize, out: &mut Vec<u8>) {
        let choice: &[u8] = if i + 1 == self.chunks as usize {
            br#","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]"#
        } else if i == 0 {
            br#","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]"#
        } else {
            br#","choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]"#
        };
        self.chunk_prefix(out);
        out.extend_from_slice(choice);
        if self.include_usage {
            out.extend_from_slice(br#","usage":null"#);
        }
        out.extend_from_slice(b"}\n\n");
    }

    fn usage_event(&self, out: &mut Vec<u8>) {
        let completion = self.chunks;
        let total = PROMPT_TOKENS + completion;
        self.chunk_prefix(out);
        let usage = format!(
            r#","choices":[],"usage":{{"prompt_tokens":{PROMPT_TOKENS},"completion_tokens":{completion},"total_tokens":{total}}}}}"#
        );
        out.extend_from_slice(usage.as_bytes());
        out.extend_from_slice(b"\n\n");
    }
}

impl EventSource for StreamPlan {
    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }

    fn count(&self) -> usize {
        self.event_count()
    }

    fn is_paced(&self, i: usize) -> bool {
        i > 0 && self.is_content(i)
    }

    fn render(&self, i: usize, out: &mut Vec<u8>) {
        StreamPlan::render(self, i, out);
    }

    fn delay(&self) -> Duration {
        self.delay
    }

    fn cut(&self) -> Option<Cut> {
        self.cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(plan: &StreamPlan) -> Vec<String> {
        let mut out = Vec::new();
        (0..plan.event_count())
            .map(|i| {
                plan.render(i, &mut out);
                String::from_utf8(out.clone()).unwrap()
            })
            .collect()
    }

    #[test]
    fn chat_validation() {
        let ok = parse_chat(br#"{"model":"m","messages":[],"stream":true}"#, true).unwrap();
        assert_eq!(ok.model.as_deref(), Some("m"));
        assert!(ok.stream && !ok.include_usage);
        assert!(parse_chat(br#"{"messages":[]}"#, true).is_err());
        assert!(parse_chat(br#"{"messages":[]}"#, false).is_ok());
        assert!(parse_chat(br#"{"model":"m","messages":{}}"#, true).is_err());
        assert!(parse_chat(br#"{"model":1,"messages":[]}"#, true).is_err());
        assert!(parse_chat(br#"[1]"#, true).is_err());
        assert!(parse_chat(br#"{"model":"#, true).is_err());
    }

    #[test]
    fn embeddings_count_inputs() {
        let count = |body: &str| parse_embeddings(body.as_bytes(), true).map(|r| r.inputs);
        assert_eq!(count(r#"{"model":"e","input":"hi"}"#), Ok(1));
        assert_eq!(count(r#"{"model":"e","input":["a","b","c"]}"#), Ok(3));
        assert_eq!(count(r#"{"model":"e","input":[1,2,3]}"#), Ok(1));
        assert_eq!(count(r#"{"model":"e","input":[[1],[2]]}"#), Ok(2));
        assert!(count(r#"{"model":"e","input":[]}"#).is_err());
        assert!(count(r#"{"model":"e"}"#).is_err());
    }

    #[test]
    fn canned_bodies_are_valid_json() {
        for body in [chat_completion("a\"b"), embeddings("e", 2), error_body(429, "slow down"), MODELS.to_vec()] {
            let _: Value = sonic_rs::from_slice(&body).unwrap();
        }
        let v: Value = sonic_rs::from_slice(&embeddings("e", 2)).unwrap();
        let first = v["data"][0]["embedding"].as_array().unwrap();
        assert_eq!(first.len(), EMBEDDING_DIMS);
        assert_eq!(v["usage"]["prompt_tokens"].as_u64(), Some(10));
    }

    #[test]
    fn stream_events_in_order() {
        let plan = StreamPlan::new("m", 3, true, Duration::ZERO);
        let ev = events(&plan);
        assert_eq!(ev.len(), 5);
        assert!(ev[0].contains(r#""delta":{"role":"assistant","content":""}"#));
        assert!(ev[1].contains(r#""delta":{"content":"word "}"#));
        assert!(ev[2].contains(r#""delta":{},"finish_reason":"stop""#));
        assert!(ev[..3].iter().all(|e| e.ends_with(",\"usage\":null}\n\n")));
        assert!(ev[3].contains(r#""choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13}"#));
        assert_eq!(ev[4], "data: [DONE]\n\n");
    }

    #[test]
    fn stream_without_usage_has_no_usage_key() {
        let plan = StreamPlan::new("m", 4, false, Duration::ZERO);
        let ev = events(&plan);
        assert_eq!(ev.len(), 5);
        assert!(ev.iter().all(|e| !e.contains("usage")));
    }
}
