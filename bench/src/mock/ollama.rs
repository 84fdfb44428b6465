//! The Ollama dialect (`--dialect ollama`), per providers/ollama.md.
//!
//! Native routes: `POST /api/chat` (NDJSON stream unless `"stream":false`,
//! Ollama's default being to stream; tool calls arrive whole in one line;
//! the final line has `done:true`, `done_reason` and the token counts) and
//! `POST /api/embed`. Errors are `{"error":"..."}`. Everything under `/v1/`
//! is Ollama's OpenAI-compatible layer, served by the OpenAI dialect's code.
//! Ollama needs no key locally, so nothing is checked. Directives come from
//! `[mock:...]` in the last user message, in the embedded texts, or in a
//! top-level `"mock"` string (Ollama ignores unknown fields).
//!
//! Canned values: the request's `model` echoed, `created_at`
//! `2023-11-14T22:13:20Z` (the OpenAI dialect's `created`), `prompt_eval_count`
//! 10, `eval_count` 20 (streams: `chunks`), durations in nanoseconds fixed at
//! 1,000,000 total and 1,000 for each phase, tool-call id `call_mock_1`.
//! Embeddings: 768 zeros (or `dimensions`) per input, `prompt_eval_count` 5
//! per input.

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

use crate::mock::canned::{self, Answer};
use crate::mock::events::EventList;
use crate::mock::json::quote;
use crate::mock::routes::{self, Call, JsonReply, Reply, Shape};

pub const CREATED_AT: &str = "2023-11-14T22:13:20Z";
pub const TOOL_CALL_ID: &str = "call_mock_1";
pub const EMBEDDING_DIMS: usize = 768;
const EMBEDDING_DIMS_MAX: usize = 4096;
/// What Ollama answers, with 503, when its queue of requests is full.
pub const OVERLOADED_MESSAGE: &str = "server busy, please try again.  maximum pending requests exceeded";
/// The duration fields of every final line, in nanoseconds.
const DURATIONS: &str =
    r#""total_duration":1000000,"load_duration":1000,"prompt_eval_duration":1000,"eval_duration":1000"#;

/// The Ollama endpoints.
pub fn route(call: Call<'_>) -> Reply {
    let head = call.head;
    let path = head.path();
    if path.starts_with("/v1/") {
        return routes::openai_route(Call { shape: Shape::OpenAi, ..call });
    }
    let embed = match path {
        "/api/chat" => false,
        "/api/embed" => true,
        _ => return call.shape.error(404, "404 page not found", std::time::Duration::ZERO),
    };
    if head.method != "POST" {
        return routes::method_not_allowed(head, "POST", call.shape);
    }
    if embed {
        routes::model_call(call, Ok(()), embed_texts, |v, answer| embed_reply(v, &answer))
    } else {
        routes::model_call(call, Ok(()), texts, |v, answer| chat(v, &answer))
    }
}

fn texts(v: &Value) -> Vec<&str> {
    let mut texts = routes::last_user_texts(v, "messages", "content");
    texts.extend(routes::mock_field(v));
    texts
}

fn embed_texts(v: &Value) -> Vec<&str> {
    let mut texts = Vec::new();
    if let Some(input) = v.get("input") {
        routes::push_texts(input, &mut texts);
    }
    texts.extend(routes::mock_field(v));
    texts
}

fn model(v: &Value) -> Result<&str, String> {
    v.get("model").and_then(|m| m.as_str()).filter(|m| !m.is_empty()).ok_or_else(|| "model is required".into())
}

fn chat(v: &Value, answer: &Answer) -> Reply {
    let model = match model(v) {
        Ok(model) => model,
        Err(message) => return Shape::Ollama.error(400, &message, answer.delay),
    };
    if v.get("messages").is_some_and(|m| !m.is_array()) {
        return Shape::Ollama.error(400, "json: cannot unmarshal messages into Go struct field", answer.delay);
    }
    if v.get("stream").and_then(|s| s.as_bool()) == Some(false) {
        if answer.error_before_content {
            return Shape::Ollama.overloaded(answer.delay, answer.retry);
        }
        let body = whole(model, answer);
        return Reply::Json(routes::json_reply(200, body.into_bytes(), answer.delay));
    }
    Reply::Events(stream(model, answer))
}

fn tool_calls(tool: &str) -> String {
    format!(
        r#","tool_calls":[{{"id":"{TOOL_CALL_ID}","function":{{"index":0,"name":{},"arguments":{}}}}}]"#,
        quote(tool),
        canned::TOOL_ARGS
    )
}

fn thinking(answer: &Answer) -> String {
    if answer.thinking { format!(r#","thinking":{}"#, quote(canned::THINKING)) } else { String::new() }
}

/// A line: `message` holds the message's fields after `role`.
fn line(model: &str, message: &str, tail: &str) -> String {
    format!(
        r#"{{"model":{},"created_at":"{CREATED_AT}","message":{{"role":"assistant"{message}}},{tail}}}"#,
        quote(model)
    )
}

fn done(eval_count: u32) -> String {
    format!(
        r#""done":true,"done_reason":"stop",{DURATIONS},"prompt_eval_count":{},"eval_count":{eval_count}"#,
        canned::INPUT_TOKENS
    )
}

/// The `"stream":false` answer.
fn whole(model: &str, answer: &Answer) -> String {
    let message = match &answer.tool {
        Some(tool) => format!(r#","content":""{}{}"#, thinking(answer), tool_calls(tool)),
        None => format!(r#","content":{}{}"#, quote(canned::TEXT), thinking(answer)),
    };
    line(model, &message, &done(canned::OUTPUT_TOKENS))
}

/// The NDJSON stream: a thinking line, then text lines or one line with the
/// whole tool call, then the `done` line. With `error-mid-stream`: two text
/// lines, then `{"error":...}`; with `error-before-content`, that error line
/// alone.
fn stream(model: &str, answer: &Answer) -> EventList {
    let mut list = EventList::new("application/x-ndjson", answer.delay, answer.cut);
    if answer.error_before_content {
        list.line(false, format!(r#"{{"error":{}}}"#, quote(OVERLOADED_MESSAGE)).as_bytes());
        return list;
    }
    let not_done = r#""done":false"#;
    let text_line = line(model, &format!(r#","content":{}"#, quote(canned::DELTA)), not_done);
    if answer.thinking {
        list.line(false, line(model, &format!(r#","content":""{}"#, thinking(answer)), not_done).as_bytes());
    }
    if answer.error_mid_stream {
        for _ in 0..canned::DELTAS_BEFORE_ERROR {
            list.line(true, text_line.as_bytes());
        }
        list.line(true, format!(r#"{{"error":{}}}"#, quote(canned::STREAM_ERROR_MESSAGE)).as_bytes());
        return list;
    }
    match &answer.tool {
        Some(tool) => {
            list.line(true, line(model, &format!(r#","content":""{}"#, tool_calls(tool)), not_done).as_bytes())
        }
        None => {
            for _ in 0..answer.text_deltas() {
                list.line(true, text_line.as_bytes());
            }
        }
    }
    list.line(false, line(model, r#","content":"""#, &done(answer.stream_output_tokens())).as_bytes());
    list
}

fn embed_reply(v: &Value, answer: &Answer) -> Reply {
    match embed(v) {
        Ok(body) => Reply::Json(routes::json_reply(200, body.into_bytes(), answer.delay)),
        Err(message) => Shape::Ollama.error(400, &message, answer.delay),
    }
}

fn embed(v: &Value) -> Result<String, String> {
    let model = model(v)?;
    let inputs = match v.get("input") {
        Some(i) if i.is_str() => 1,
        Some(i) if i.as_array().is_some_and(|a| !a.is_empty() && a.iter().all(|s| s.is_str())) => {
            i.as_array().map_or(0, |a| a.len())
        }
        Some(_) => return Err("invalid input type".into()),
        None => return Err("input is required".into()),
    };
    let dims = v.get("dimensions").and_then(|d| d.as_u64());
    let dims =
        dims.map_or(EMBEDDING_DIMS, |d| usize::try_from(d).unwrap_or(EMBEDDING_DIMS_MAX).min(EMBEDDING_DIMS_MAX));
    let vectors = vec![canned::zero_vector(dims); inputs].join(",");
    let tokens = canned::TOKENS_PER_INPUT as usize * inputs;
    Ok(format!(
        r#"{{"model":{},"embeddings":[{vectors}],"total_duration":1000000,"load_duration":1000,"prompt_eval_count":{tokens}}}"#,
        quote(model)
    ))
}

/// Ollama's native error: `{"error":"..."}` with the status.
pub fn error_reply(status: u16, message: &str) -> JsonReply {
    let body = format!(r#"{{"error":{}}}"#, quote(message));
    routes::json_reply(status, body.into_bytes(), std::time::Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json() {
        for tool in [None, Some("t".to_owned())] {
            for (error_mid_stream, error_before_content) in [(false, false), (true, false), (false, true)] {
                let a = Answer {
                    tool: tool.clone(),
                    thinking: true,
                    error_mid_stream,
                    error_before_content,
                    ..Answer::plain(2)
                };
                let _: Value = sonic_rs::from_str(&whole("m", &a)).unwrap();
                for (_, l) in stream("m", &a).events {
                    assert_eq!(l.iter().filter(|&&b| b == b'\n').count(), 1);
                    let _: Value = sonic_rs::from_slice(&l).unwrap();
                }
            }
        }
    }

    #[test]
    fn embed_validation() {
        let e = |s: &str| embed(&sonic_rs::from_str(s).unwrap());
        let v: Value = sonic_rs::from_str(&e(r#"{"model":"m","input":["a","b"],"dimensions":4}"#).unwrap()).unwrap();
        assert_eq!(v["embeddings"][1].as_array().map(|a| a.len()), Some(4));
        assert!(e(r#"{"model":"m"}"#).is_err());
        assert!(e(r#"{"input":"a"}"#).is_err());
        assert!(e(r#"{"model":"m","input":[]}"#).is_err());
    }
}
