//! The Anthropic Messages dialect (`--dialect anthropic`), per
//! providers/anthropic.md.
//!
//! Routes: `POST /v1/messages` (JSON, or SSE with `event:` names when
//! `stream` is true) and `POST /v1/messages/count_tokens`. Requests need
//! `x-api-key` (or `Authorization: Bearer`) and `anthropic-version`, and
//! `model`, `max_tokens` and a non-empty `messages`; failures are 401/400 in
//! Anthropic's error shape. Besides `[mock:...]` in the last user turn,
//! directives are read from `metadata.user_id`, the one free-form field
//! Anthropic accepts.
//!
//! Canned values: id `msg_mock`, the request's `model` echoed, usage
//! `input_tokens` 10 (cache fields 0) and `output_tokens` 20 (streams: 1 in
//! `message_start`, then `chunks` in the final `message_delta`, which repeats
//! the input numbers since Anthropic's usage there is cumulative), tool-use id
//! `toolu_mock_1`, request id `req_mock`.

use sonic_rs::{JsonValueTrait, Value};

use crate::mock::canned::{self, Answer};
use crate::mock::events::EventList;
use crate::mock::http::Head;
use crate::mock::json::quote;
use crate::mock::routes::{self, Call, JsonReply, Reply, Shape};

pub const MESSAGE_ID: &str = "msg_mock";
pub const TOOL_USE_ID: &str = "toolu_mock_1";
pub const REQUEST_ID: &str = "req_mock";
/// The message of Anthropic's 529, in a response or an `event: error`.
pub const OVERLOADED_MESSAGE: &str = "Overloaded";

/// Anthropic's rate-limit headers (providers/anthropic.md), on every model
/// answer so a gateway's pass-through of them can be tested: requests,
/// tokens, input and output tokens, each with its limit, what remains and
/// when it refills (a fixed instant, so answers are reproducible).
pub const RATE_LIMIT_HEADERS: &[u8] = b"anthropic-ratelimit-requests-limit: 4000\r\n\
anthropic-ratelimit-requests-remaining: 3999\r\n\
anthropic-ratelimit-requests-reset: 2030-01-01T00:00:00Z\r\n\
anthropic-ratelimit-tokens-limit: 480000\r\n\
anthropic-ratelimit-tokens-remaining: 479970\r\n\
anthropic-ratelimit-tokens-reset: 2030-01-01T00:00:00Z\r\n\
anthropic-ratelimit-input-tokens-limit: 400000\r\n\
anthropic-ratelimit-input-tokens-remaining: 399990\r\n\
anthropic-ratelimit-input-tokens-reset: 2030-01-01T00:00:00Z\r\n\
anthropic-ratelimit-output-tokens-limit: 80000\r\n\
anthropic-ratelimit-output-tokens-remaining: 79980\r\n\
anthropic-ratelimit-output-tokens-reset: 2030-01-01T00:00:00Z\r\n";

/// The Anthropic endpoints.
pub fn route(call: Call<'_>) -> Reply {
    let head = call.head;
    let count = match head.path() {
        "/v1/messages" => false,
        "/v1/messages/count_tokens" => true,
        _ => return call.shape.not_found(head),
    };
    if head.method != "POST" {
        return routes::method_not_allowed(head, "POST", call.shape);
    }
    if count {
        routes::model_call(call, auth(head), texts, |v, answer| count_tokens(v, &answer))
    } else {
        routes::model_call(call, auth(head), texts, messages)
    }
}

/// A key (either header) and the version header, as the API requires.
fn auth(head: &Head) -> Result<(), (u16, String)> {
    let key = head.header("x-api-key").is_some_and(|k| !k.is_empty());
    let bearer = head.header("authorization").is_some_and(|a| a.len() > 7 && a.starts_with("Bearer "));
    if !key && !bearer {
        return Err((401, "x-api-key header is required".into()));
    }
    if head.header("anthropic-version").is_none_or(str::is_empty) {
        return Err((400, "anthropic-version: header is required".into()));
    }
    Ok(())
}

fn texts(v: &Value) -> Vec<&str> {
    let mut texts = routes::last_user_texts(v, "messages", "content");
    texts.extend(v.get("metadata").and_then(|m| m.get("user_id")).and_then(|u| u.as_str()));
    texts
}

/// The checks the real API makes first, with its wording.
fn validate(v: &Value, needs_max_tokens: bool) -> Result<String, String> {
    let model = v.get("model").and_then(|m| m.as_str()).ok_or("model: Field required")?;
    if needs_max_tokens && !v.get("max_tokens").is_some_and(|m| m.is_u64()) {
        return Err("max_tokens: Field required".into());
    }
    match v.get("messages") {
        None => Err("messages: Field required".into()),
        Some(m) if !m.is_array() => Err("messages: Input should be a valid list".into()),
        Some(m) if !routes::non_empty_array(Some(m)) => Err("messages: at least one message is required".into()),
        Some(_) => Ok(model.to_owned()),
    }
}

fn count_tokens(v: &Value, answer: &Answer) -> Reply {
    if let Err(message) = validate(v, false) {
        return Shape::Anthropic.error(400, &message, answer.delay);
    }
    let body = format!(r#"{{"input_tokens":{}}}"#, canned::INPUT_TOKENS);
    Reply::Json(routes::json_reply(200, body.into_bytes(), answer.delay))
}

fn messages(v: &Value, answer: Answer) -> Reply {
    let model = match validate(v, true) {
        Ok(model) => model,
        Err(message) => return Shape::Anthropic.error(400, &message, answer.delay),
    };
    if v.get("stream").and_then(|s| s.as_bool()) == Some(true) {
        return Reply::Events(stream(&model, &answer));
    }
    if answer.error_before_content {
        return Shape::Anthropic.overloaded(answer.delay, answer.retry);
    }
    let mut reply = routes::json_reply(200, message(&model, &answer).into_bytes(), answer.delay);
    reply.extra.push(("request-id", REQUEST_ID.into()));
    Reply::Json(reply)
}

/// The non-stream `Message`.
fn message(model: &str, answer: &Answer) -> String {
    let mut content = Vec::new();
    if answer.thinking {
        content.push(format!(
            r#"{{"type":"thinking","thinking":{},"signature":{}}}"#,
            quote(canned::THINKING),
            quote(canned::SIGNATURE)
        ));
    }
    let stop_reason = match &answer.tool {
        Some(tool) => {
            content.push(format!(
                r#"{{"type":"tool_use","id":"{TOOL_USE_ID}","name":{},"input":{}}}"#,
                quote(tool),
                canned::TOOL_ARGS
            ));
            "tool_use"
        }
        None => {
            content.push(format!(r#"{{"type":"text","text":{}}}"#, quote(canned::TEXT)));
            "end_turn"
        }
    };
    format!(
        r#"{{"id":"{MESSAGE_ID}","type":"message","role":"assistant","model":{},"content":[{}],"stop_reason":"{stop_reason}","stop_sequence":null,"usage":{}}}"#,
        quote(model),
        content.join(","),
        usage(canned::OUTPUT_TOKENS)
    )
}

fn usage(output_tokens: u32) -> String {
    format!(
        r#"{{"input_tokens":{},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{output_tokens}}}"#,
        canned::INPUT_TOKENS
    )
}

/// The SSE stream: `message_start`, a `ping` after the first block opens,
/// the blocks (thinking, then text or tool use), `message_delta` with the
/// stop reason and cumulative usage, `message_stop`. With
/// `error-mid-stream`: two text deltas, then `event: error`
/// (`overloaded_error`) and nothing else. With `error-before-content`: that
/// error event alone.
fn stream(model: &str, answer: &Answer) -> EventList {
    let mut s = Sse { list: EventList::new("text/event-stream", answer.delay, answer.cut), index: 0 };
    if answer.error_before_content {
        s.event(false, "error", &overloaded_event(OVERLOADED_MESSAGE));
        return s.list;
    }
    let start = format!(
        r#"{{"type":"message_start","message":{{"id":"{MESSAGE_ID}","type":"message","role":"assistant","model":{},"content":[],"stop_reason":null,"stop_sequence":null,"usage":{}}}}}"#,
        quote(model),
        usage(1)
    );
    s.event(false, "message_start", &start);
    if answer.thinking {
        s.thinking_block();
    }
    if answer.error_mid_stream {
        s.text_block(canned::DELTAS_BEFORE_ERROR, false);
        s.event(true, "error", &overloaded_event(canned::STREAM_ERROR_MESSAGE));
        return s.list;
    }
    let stop_reason = match &answer.tool {
        Some(tool) => {
            s.tool_block(tool);
            "tool_use"
        }
        None => {
            s.text_block(answer.text_deltas(), true);
            "end_turn"
        }
    };
    let delta = format!(
        r#"{{"type":"message_delta","delta":{{"stop_reason":"{stop_reason}","stop_sequence":null}},"usage":{}}}"#,
        usage(answer.stream_output_tokens())
    );
    s.event(false, "message_delta", &delta);
    s.event(false, "message_stop", r#"{"type":"message_stop"}"#);
    s.list
}

/// The data of an in-stream `overloaded_error`.
fn overloaded_event(message: &str) -> String {
    format!(r#"{{"type":"error","error":{{"type":"overloaded_error","message":{}}}}}"#, quote(message))
}

/// A stream under construction; `index` is the next content block's.
struct Sse {
    list: EventList,
    index: u32,
}

impl Sse {
    fn event(&mut self, paced: bool, name: &str, data: &str) {
        self.list.sse(paced, Some(name), data.as_bytes());
    }

    /// Opens a block; the first one is followed by a `ping`, as the API does.
    fn start(&mut self, block: &str) {
        let data = format!(r#"{{"type":"content_block_start","index":{},"content_block":{block}}}"#, self.index);
        self.event(false, "content_block_start", &data);
        if self.index == 0 {
            self.event(false, "ping", r#"{"type":"ping"}"#);
        }
    }

    fn delta(&mut self, delta: &str) {
        let data = format!(r#"{{"type":"content_block_delta","index":{},"delta":{delta}}}"#, self.index);
        self.event(true, "content_block_delta", &data);
    }

    fn stop(&mut self) {
        let data = format!(r#"{{"type":"content_block_stop","index":{}}}"#, self.index);
        self.event(false, "content_block_stop", &data);
        self.index += 1;
    }

    fn thinking_block(&mut self) {
        self.start(r#"{"type":"thinking","thinking":"","signature":""}"#);
        self.delta(&format!(r#"{{"type":"thinking_delta","thinking":{}}}"#, quote(canned::THINKING)));
        self.delta(&format!(r#"{{"type":"signature_delta","signature":{}}}"#, quote(canned::SIGNATURE)));
        self.stop();
    }

    fn text_block(&mut self, deltas: u32, close: bool) {
        self.start(r#"{"type":"text","text":""}"#);
        for _ in 0..deltas {
            self.delta(&format!(r#"{{"type":"text_delta","text":{}}}"#, quote(canned::DELTA)));
        }
        if close {
            self.stop();
        }
    }

    /// The tool block: an empty first fragment, as the API often sends, then
    /// the arguments split mid-token.
    fn tool_block(&mut self, tool: &str) {
        self.start(&format!(r#"{{"type":"tool_use","id":"{TOOL_USE_ID}","name":{},"input":{{}}}}"#, quote(tool)));
        for fragment in std::iter::once("").chain(canned::TOOL_ARG_FRAGMENTS) {
            self.delta(&format!(r#"{{"type":"input_json_delta","partial_json":{}}}"#, quote(fragment)));
        }
        self.stop();
    }
}

/// An error in Anthropic's shape, typed the way Anthropic types the status;
/// 529 (overloaded) carries `retry-after` like 429 does.
pub fn error_reply(status: u16, message: &str) -> JsonReply {
    let kind = match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500.. => "api_error",
        _ => "invalid_request_error",
    };
    let body = format!(
        r#"{{"type":"error","error":{{"type":"{kind}","message":{}}},"request_id":"{REQUEST_ID}"}}"#,
        quote(message)
    );
    let mut reply = routes::json_reply(status, body.into_bytes(), std::time::Duration::ZERO);
    reply.extra.push(("request-id", REQUEST_ID.into()));
    if status == 529 {
        reply.extra.push(("retry-after", "1".into()));
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Answer {
        Answer::plain(3)
    }

    #[test]
    fn bodies_are_json() {
        let mut a = answer();
        let _: Value = sonic_rs::from_str(&message("m\"", &a)).unwrap();
        a.tool = Some("get_weather".into());
        a.thinking = true;
        let v: Value = sonic_rs::from_str(&message("m", &a)).unwrap();
        assert_eq!(v["content"][1]["input"]["city"].as_str(), Some("Paris"));
        assert_eq!(v["stop_reason"].as_str(), Some("tool_use"));
        let _: Value = sonic_rs::from_slice(&error_reply(529, "x").body).unwrap();
    }

    #[test]
    fn stream_data_lines_are_json() {
        let before_content = Answer { error_before_content: true, ..answer() };
        for a in [answer(), Answer { tool: Some("t".into()), ..answer() }, before_content] {
            let a = Answer { thinking: true, ..a };
            for (_, event) in stream("m", &a).events {
                let text = String::from_utf8(event).unwrap();
                let data = text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
                let _: Value = sonic_rs::from_str(data).unwrap();
            }
        }
    }

    #[test]
    fn validation_messages() {
        let v = |s: &str| validate(&sonic_rs::from_str(s).unwrap(), true);
        assert!(v(r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#).is_ok());
        assert!(v(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).unwrap_err().contains("max_tokens"));
        assert!(v(r#"{"model":"m","max_tokens":5,"messages":[]}"#).unwrap_err().contains("at least one"));
        assert!(v(r#"{"model":"m","max_tokens":5}"#).unwrap_err().contains("messages"));
    }
}
