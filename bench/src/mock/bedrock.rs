//! The AWS Bedrock Runtime dialect (`--dialect bedrock`), per
//! providers/bedrock.md.
//!
//! Routes: `POST /model/{modelId}/converse` (JSON), `.../converse-stream`
//! (binary `application/vnd.amazon.eventstream` frames, see `eventstream`),
//! `.../count-tokens` and `.../invoke` for Titan (`amazon.titan-embed-*`) and Cohere
//! (`cohere.embed-*`) embeddings. Every request needs an `Authorization`
//! header that is either SigV4-shaped (`AWS4-HMAC-SHA256` with `Credential=`,
//! `SignedHeaders=`, `Signature=`, plus `x-amz-date`) or `Bearer <key>`; the
//! signature itself is not checked (the gateway's signer has its own test
//! vector). Failures are 403 with `{"message"}` and `x-amzn-ErrorType`.
//! Bedrock rejects unknown fields, so directives come only from `[mock:...]`
//! in the last user message's text blocks (or the embedded texts).
//!
//! Canned values: usage `inputTokens` 10, `outputTokens` 20 (streams: the
//! `metadata` event after `messageStop` reports `chunks`), `totalTokens` the
//! sum, cache fields 0, `metrics.latencyMs` 1, tool-use id `tooluse_mock_1`,
//! request id `mock-request-id`. Embeddings: Titan 1024 zeros (or
//! `dimensions`) with `inputTextTokenCount` 5; Cohere 1024 zeros per text.

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

use crate::mock::canned::{self, Answer};
use crate::mock::events::EventList;
use crate::mock::eventstream;
use crate::mock::http::Head;
use crate::mock::json::quote;
use crate::mock::routes::{self, Call, JsonReply, Reply, Shape};

pub const TOOL_USE_ID: &str = "tooluse_mock_1";
pub const REQUEST_ID: &str = "mock-request-id";
/// The namespace AWS appends to `x-amzn-ErrorType`; clients strip it.
const ERROR_NAMESPACE: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";
/// Titan V2's default size and Cohere v3's size.
pub const EMBEDDING_DIMS: usize = 1024;
const EMBEDDING_DIMS_MAX: usize = 4096;
/// The message of Bedrock's `ServiceUnavailableException`, as a response or
/// a stream's `serviceUnavailableException` frame.
pub const OVERLOADED_MESSAGE: &str = "Bedrock is unable to process your request.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Converse,
    ConverseStream,
    CountTokens,
    Invoke,
}

/// The Bedrock Runtime endpoints.
pub fn route(call: Call<'_>) -> Reply {
    let head = call.head;
    let Some((model, operation)) = parse_path(head.path()) else {
        return call.shape.not_found(head);
    };
    if head.method != "POST" {
        return routes::method_not_allowed(head, "POST", call.shape);
    }
    match operation {
        Operation::Converse | Operation::ConverseStream => {
            let stream = operation == Operation::ConverseStream;
            routes::model_call(call, auth(head), texts, |v, answer| converse(v, &answer, stream))
        }
        Operation::CountTokens => {
            routes::model_call(call, auth(head), count_texts, |v, answer| count_tokens(v, &answer))
        }
        Operation::Invoke => routes::model_call(call, auth(head), invoke_texts, |v, answer| invoke(v, model, &answer)),
    }
}

fn parse_path(path: &str) -> Option<(&str, Operation)> {
    let (model, operation) = path.strip_prefix("/model/")?.rsplit_once('/')?;
    let operation = match operation {
        "converse" => Operation::Converse,
        "converse-stream" => Operation::ConverseStream,
        "count-tokens" => Operation::CountTokens,
        "invoke" => Operation::Invoke,
        _ => return None,
    };
    (!model.is_empty()).then_some((model, operation))
}

/// A SigV4-shaped or bearer `Authorization`; the signature is not verified.
fn auth(head: &Head) -> Result<(), (u16, String)> {
    let Some(value) = head.header("authorization") else {
        return Err((403, "Missing Authentication Token".into()));
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        return if token.trim().is_empty() { Err((403, "Invalid API key".into())) } else { Ok(()) };
    }
    let Some(params) = value.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err((403, "Authorization header requires the AWS4-HMAC-SHA256 or Bearer scheme.".into()));
    };
    for part in ["Credential=", "SignedHeaders=", "Signature="] {
        if !params.contains(part) {
            return Err((403, format!("Authorization header requires '{}' parameter.", part.trim_end_matches('='))));
        }
    }
    if head.header("x-amz-date").is_none() {
        return Err((
            403,
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
        ));
    }
    Ok(())
}

fn texts(v: &Value) -> Vec<&str> {
    routes::last_user_texts(v, "messages", "content")
}

fn count_texts(v: &Value) -> Vec<&str> {
    v.get("input").and_then(|i| i.get("converse")).map_or_else(Vec::new, texts)
}

/// CountTokens: `{"input":{"converse":{...}}}` with messages, as Bedrock
/// requires; the count is the canned input count.
fn count_tokens(v: &Value, answer: &Answer) -> Reply {
    let Some(converse) = v.get("input").and_then(|i| i.get("converse")) else {
        return Reply::Json(error_reply(
            400,
            "1 validation error detected: Value at 'input' failed to satisfy constraint: Member must not be null",
        ));
    };
    if converse.get("messages").and_then(|m| m.as_array()).is_none_or(|m| m.is_empty()) {
        return Reply::Json(error_reply(400, "The messages field is required."));
    }
    let body = format!(r#"{{"inputTokens":{}}}"#, canned::INPUT_TOKENS);
    Reply::Json(routes::json_reply(200, body.into_bytes(), answer.delay))
}

fn invoke_texts(v: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    for key in ["inputText", "texts"] {
        if let Some(t) = v.get(key) {
            routes::push_texts(t, &mut out);
        }
    }
    out
}

fn converse(v: &Value, answer: &Answer, stream: bool) -> Reply {
    let messages = v.get("messages");
    let problem = match messages {
        None => Some("Value null at 'messages' failed to satisfy constraint: Member must not be null"),
        Some(m) if !m.is_array() => Some("Value at 'messages' failed to satisfy constraint: Member must be a list"),
        Some(m) if !routes::non_empty_array(Some(m)) => Some(
            "Value '[]' at 'messages' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ),
        Some(_) => None,
    };
    if let Some(problem) = problem {
        return Shape::Aws.error(400, &format!("1 validation error detected: {problem}"), answer.delay);
    }
    if stream {
        return Reply::Events(stream_frames(answer));
    }
    if answer.error_before_content {
        return Shape::Aws.overloaded(answer.delay, answer.retry);
    }
    let mut reply = routes::json_reply(200, response(answer).into_bytes(), answer.delay);
    reply.extra.push(("x-amzn-RequestId", REQUEST_ID.into()));
    Reply::Json(reply)
}

fn usage(output_tokens: u32) -> String {
    let input = canned::INPUT_TOKENS;
    let total = input + output_tokens;
    format!(
        r#"{{"inputTokens":{input},"outputTokens":{output_tokens},"totalTokens":{total},"cacheReadInputTokens":0,"cacheWriteInputTokens":0}}"#
    )
}

/// The non-stream `ConverseResponse`.
fn response(answer: &Answer) -> String {
    let mut content = Vec::new();
    if answer.thinking {
        content.push(format!(
            r#"{{"reasoningContent":{{"reasoningText":{{"text":{},"signature":{}}}}}}}"#,
            quote(canned::THINKING),
            quote(canned::SIGNATURE)
        ));
    }
    let stop_reason = match &answer.tool {
        Some(tool) => {
            content.push(format!(
                r#"{{"toolUse":{{"toolUseId":"{TOOL_USE_ID}","name":{},"input":{}}}}}"#,
                quote(tool),
                canned::TOOL_ARGS
            ));
            "tool_use"
        }
        None => {
            content.push(format!(r#"{{"text":{}}}"#, quote(canned::TEXT)));
            "end_turn"
        }
    };
    format!(
        r#"{{"output":{{"message":{{"role":"assistant","content":[{}]}}}},"stopReason":"{stop_reason}","usage":{},"metrics":{{"latencyMs":1}}}}"#,
        content.join(","),
        usage(canned::OUTPUT_TOKENS)
    )
}

/// The ConverseStream frames: `messageStart`, the blocks (reasoning, then
/// text or tool use; text and reasoning start with a delta, tool use with a
/// `contentBlockStart`), `messageStop`, then `metadata` with usage. With
/// `error-mid-stream`: two text deltas, then a `throttlingException`
/// exception frame. With `error-before-content`: a
/// `serviceUnavailableException` frame alone, the stream's form of the 503
/// that `--error-rate` answers.
fn stream_frames(answer: &Answer) -> EventList {
    let mut f =
        Frames { list: EventList::new("application/vnd.amazon.eventstream", answer.delay, answer.cut), index: 0 };
    if answer.error_before_content {
        let payload = format!(r#"{{"message":{}}}"#, quote(OVERLOADED_MESSAGE));
        f.list.push(false, eventstream::exception("serviceUnavailableException", payload.as_bytes()));
        return f.list;
    }
    f.event(false, "messageStart", r#"{"role":"assistant"}"#.into());
    if answer.thinking {
        f.delta(&format!(r#"{{"reasoningContent":{{"text":{}}}}}"#, quote(canned::THINKING)));
        f.delta(&format!(r#"{{"reasoningContent":{{"signature":{}}}}}"#, quote(canned::SIGNATURE)));
        f.stop();
    }
    if answer.error_mid_stream {
        for _ in 0..canned::DELTAS_BEFORE_ERROR {
            f.delta(&format!(r#"{{"text":{}}}"#, quote(canned::DELTA)));
        }
        let payload = format!(r#"{{"message":{}}}"#, quote(canned::STREAM_ERROR_MESSAGE));
        f.list.push(true, eventstream::exception("throttlingException", payload.as_bytes()));
        return f.list;
    }
    let stop_reason = match &answer.tool {
        Some(tool) => {
            let start = format!(
                r#"{{"contentBlockIndex":{},"start":{{"toolUse":{{"toolUseId":"{TOOL_USE_ID}","name":{}}}}}}}"#,
                f.index,
                quote(tool)
            );
            f.event(false, "contentBlockStart", start);
            for fragment in canned::TOOL_ARG_FRAGMENTS {
                f.delta(&format!(r#"{{"toolUse":{{"input":{}}}}}"#, quote(fragment)));
            }
            "tool_use"
        }
        None => {
            for _ in 0..answer.text_deltas() {
                f.delta(&format!(r#"{{"text":{}}}"#, quote(canned::DELTA)));
            }
            "end_turn"
        }
    };
    f.stop();
    f.event(false, "messageStop", format!(r#"{{"stopReason":"{stop_reason}"}}"#));
    let metadata = format!(r#"{{"usage":{},"metrics":{{"latencyMs":1}}}}"#, usage(answer.stream_output_tokens()));
    f.event(false, "metadata", metadata);
    f.list
}

/// Frames under construction; `index` is the open content block's.
struct Frames {
    list: EventList,
    index: u32,
}

impl Frames {
    fn event(&mut self, paced: bool, event_type: &str, payload: String) {
        self.list.push(paced, eventstream::event(event_type, payload.as_bytes()));
    }

    fn delta(&mut self, delta: &str) {
        let payload = format!(r#"{{"contentBlockIndex":{},"delta":{delta}}}"#, self.index);
        self.event(true, "contentBlockDelta", payload);
    }

    fn stop(&mut self) {
        self.event(false, "contentBlockStop", format!(r#"{{"contentBlockIndex":{}}}"#, self.index));
        self.index += 1;
    }
}

/// InvokeModel: Titan or Cohere embeddings, chosen by the model id.
fn invoke(v: &Value, model: &str, answer: &Answer) -> Reply {
    let body = if model.contains("titan-embed") {
        titan(v)
    } else if model.contains("cohere.embed") {
        cohere(v)
    } else {
        Err("The mock's InvokeModel serves only amazon.titan-embed-* and cohere.embed-* models.".into())
    };
    match body {
        Ok(body) => {
            let mut reply = routes::json_reply(200, body.into_bytes(), answer.delay);
            reply.extra.push(("x-amzn-RequestId", REQUEST_ID.into()));
            Reply::Json(reply)
        }
        Err(message) => Shape::Aws.error(400, &message, answer.delay),
    }
}

fn malformed(key: &str) -> String {
    format!("Malformed input request: #: required key [{key}] not found, please reformat your input and try again.")
}

fn titan(v: &Value) -> Result<String, String> {
    if !v.get("inputText").is_some_and(|t| t.is_str()) {
        return Err(malformed("inputText"));
    }
    let dims = v.get("dimensions").and_then(|d| d.as_u64());
    let dims =
        dims.map_or(EMBEDDING_DIMS, |d| usize::try_from(d).unwrap_or(EMBEDDING_DIMS_MAX).min(EMBEDDING_DIMS_MAX));
    Ok(format!(r#"{{"embedding":{},"inputTextTokenCount":{}}}"#, canned::zero_vector(dims), canned::TOKENS_PER_INPUT))
}

fn cohere(v: &Value) -> Result<String, String> {
    let texts = v.get("texts").and_then(|t| t.as_array()).ok_or_else(|| malformed("texts"))?;
    if !v.get("input_type").is_some_and(|t| t.is_str()) {
        return Err(malformed("input_type"));
    }
    let quoted: Vec<String> = texts.iter().map(|t| quote(t.as_str().unwrap_or_default())).collect();
    let vector = canned::zero_vector(EMBEDDING_DIMS);
    let vectors = vec![vector; texts.len()].join(",");
    let by_type = v.get("embedding_types").is_some();
    let (embeddings, response_type) = if by_type {
        (format!(r#"{{"float":[{vectors}]}}"#), "embeddings_by_type")
    } else {
        (format!("[{vectors}]"), "embeddings_floats")
    };
    Ok(format!(
        r#"{{"id":"mock-embed-id","embeddings":{embeddings},"texts":[{}],"response_type":"{response_type}"}}"#,
        quoted.join(",")
    ))
}

/// An error the AWS way: the exception name in `x-amzn-ErrorType`, the
/// message in the body.
pub fn error_reply(status: u16, message: &str) -> JsonReply {
    let exception = match status {
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        500.. => "InternalServerException",
        _ => "ValidationException",
    };
    let body = if status == 424 {
        format!(r#"{{"message":{},"originalStatusCode":500}}"#, quote(message))
    } else {
        format!(r#"{{"message":{}}}"#, quote(message))
    };
    let mut reply = routes::json_reply(status, body.into_bytes(), std::time::Duration::ZERO);
    reply.extra.push(("x-amzn-ErrorType", format!("{exception}:{ERROR_NAMESPACE}")));
    reply.extra.push(("x-amzn-RequestId", REQUEST_ID.into()));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse").map(|p| p.1),
            Some(Operation::Converse)
        );
        assert_eq!(parse_path("/model/m/converse-stream"), Some(("m", Operation::ConverseStream)));
        assert_eq!(parse_path("/model/m/count-tokens"), Some(("m", Operation::CountTokens)));
        assert_eq!(
            parse_path("/model/amazon.titan-embed-text-v2:0/invoke"),
            Some(("amazon.titan-embed-text-v2:0", Operation::Invoke))
        );
        assert_eq!(parse_path("/model//converse"), None);
        assert_eq!(parse_path("/model/m/other"), None);
    }

    #[test]
    fn bodies_are_json() {
        let mut a = Answer { tool: Some("t".into()), thinking: true, ..Answer::plain(2) };
        let v: Value = sonic_rs::from_str(&response(&a)).unwrap();
        assert_eq!(v["output"]["message"]["content"][1]["toolUse"]["input"]["city"].as_str(), Some("Paris"));
        a.tool = None;
        let _: Value = sonic_rs::from_str(&response(&a)).unwrap();
        let cohere_body: Value = sonic_rs::from_str(
            &cohere(&sonic_rs::from_str(r#"{"texts":["a","b"],"input_type":"search_query"}"#).unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(cohere_body["embeddings"].as_array().map(|e| e.len()), Some(2));
        let _: Value = sonic_rs::from_slice(&error_reply(424, "x").body).unwrap();
    }
}
