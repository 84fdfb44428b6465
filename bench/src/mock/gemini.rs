//! The Gemini Developer API dialect (`--dialect gemini`), per
//! providers/gemini.md.
//!
//! Routes under `/v1beta/models/{model}:METHOD` (and `/v1/...`):
//! `generateContent`, `streamGenerateContent` (`?alt=sse`: `data:` lines with
//! no terminator; without it, one JSON array), `countTokens`, `embedContent`
//! and `batchEmbedContents`. Requests need `x-goog-api-key` or `?key=`
//! (else 403 `PERMISSION_DENIED`, as Google answers unidentified callers) and
//! `contents`; errors use Google's `{"error":{"code","message","status"}}`.
//! Gemini rejects unknown request fields, so directives come only from
//! `[mock:...]` in the last user content's text parts (or the embedded
//! texts). `[mock:status=401]` answers the way Gemini reports a bad key: HTTP
//! 400 `INVALID_ARGUMENT` with reason `API_KEY_INVALID`.
//!
//! Canned values: `modelVersion` is the model from the path, `responseId`
//! `mock-response`, usage `promptTokenCount` 10, `candidatesTokenCount` 20
//! (streams: running count of text deltas, ending at `chunks`), plus
//! `thoughtsTokenCount` 8 with thinking; `totalTokenCount` is their sum.
//! Function calls carry no id (the Developer API usually sends none).
//! Embeddings are zero vectors of `outputDimensionality` or 768 values.

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

use crate::mock::canned::{self, Answer};
use crate::mock::events::EventList;
use crate::mock::http::Head;
use crate::mock::json::quote;
use crate::mock::routes::{self, Call, JsonReply, Reply, Shape};

pub const RESPONSE_ID: &str = "mock-response";
/// Embedding size when the request names none (text-embedding-004's).
pub const EMBEDDING_DIMS: usize = 768;
/// Largest `outputDimensionality` honoured, so a request cannot make the mock
/// render an enormous vector.
const EMBEDDING_DIMS_MAX: usize = 4096;
/// The message of Gemini's 503 `UNAVAILABLE`, in a response or in-stream.
pub const OVERLOADED_MESSAGE: &str = "The model is overloaded. Please try again later.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Generate,
    Stream,
    CountTokens,
    Embed,
    BatchEmbed,
}

/// The Gemini endpoints.
pub fn route(call: Call<'_>) -> Reply {
    let head = call.head;
    let Some((model, method)) = parse_path(head.path()) else {
        return call.shape.not_found(head);
    };
    if head.method != "POST" {
        return routes::method_not_allowed(head, "POST", call.shape);
    }
    let sse = head.query().split('&').any(|p| p == "alt=sse");
    match method {
        Method::Generate | Method::Stream => {
            let stream = method == Method::Stream;
            routes::model_call(call, auth(head), texts, |v, answer| generate(v, model, &answer, stream, sse))
        }
        Method::CountTokens => routes::model_call(call, auth(head), texts, |_, answer| count_tokens(&answer)),
        Method::Embed | Method::BatchEmbed => {
            let batch = method == Method::BatchEmbed;
            routes::model_call(call, auth(head), embed_texts, |v, answer| embed(v, batch, &answer))
        }
    }
}

/// `/v1beta/models/{model}:{method}` into its model and method.
fn parse_path(path: &str) -> Option<(&str, Method)> {
    let rest = path.strip_prefix("/v1beta/models/").or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, method) = rest.rsplit_once(':')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    let method = match method {
        "generateContent" => Method::Generate,
        "streamGenerateContent" => Method::Stream,
        "countTokens" => Method::CountTokens,
        "embedContent" => Method::Embed,
        "batchEmbedContents" => Method::BatchEmbed,
        _ => return None,
    };
    Some((model, method))
}

fn auth(head: &Head) -> Result<(), (u16, String)> {
    let header = head.header("x-goog-api-key").is_some_and(|k| !k.is_empty());
    let query = head.query().split('&').any(|p| p.strip_prefix("key=").is_some_and(|k| !k.is_empty()));
    if header || query {
        return Ok(());
    }
    Err((
        403,
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.".into(),
    ))
}

fn texts(v: &Value) -> Vec<&str> {
    routes::last_user_texts(v, "contents", "parts")
}

/// The texts of `embedContent`'s `content` or of every batch request's.
fn embed_texts(v: &Value) -> Vec<&str> {
    let requests = v.get("requests").and_then(|r| r.as_array()).into_iter().flat_map(|r| r.iter());
    let contents = std::iter::once(v).chain(requests).filter_map(|r| r.get("content"));
    let mut out = Vec::new();
    for parts in contents.filter_map(|c| c.get("parts")) {
        routes::push_texts(parts, &mut out);
    }
    out
}

fn generate(v: &Value, model: &str, answer: &Answer, stream: bool, sse: bool) -> Reply {
    match v.get("contents") {
        Some(c) if routes::non_empty_array(Some(c)) => {}
        Some(c) if c.is_array() => {
            return invalid("* GenerateContentRequest.contents: contents is not specified", answer);
        }
        Some(_) => return invalid("Invalid value at 'contents', expected a list.", answer),
        None => return invalid("* GenerateContentRequest.contents: contents is not specified", answer),
    }
    if !stream {
        if answer.error_before_content {
            return Shape::Google.overloaded(answer.delay, answer.retry);
        }
        let body = response(model, &whole_parts(answer), Some(canned::OUTPUT_TOKENS), answer);
        return Reply::Json(routes::json_reply(200, body.into_bytes(), answer.delay));
    }
    let list = stream_chunks(model, answer);
    if sse {
        return Reply::Events(list);
    }
    // Without alt=sse Gemini streams one JSON array; the mock sends it whole.
    let items: Vec<String> = list
        .events
        .iter()
        .map(|(_, e)| String::from_utf8_lossy(e).trim_start_matches("data: ").trim_end().to_owned())
        .collect();
    let body = format!("[{}]", items.join(",\n"));
    Reply::Json(routes::json_reply(200, body.into_bytes(), answer.delay))
}

fn invalid(message: &str, answer: &Answer) -> Reply {
    Shape::Google.error(400, message, answer.delay)
}

/// The parts of a non-stream answer.
fn whole_parts(answer: &Answer) -> Vec<String> {
    let mut parts = Vec::new();
    if answer.thinking {
        parts.push(thought_part());
    }
    let signature = signature(answer);
    parts.push(match &answer.tool {
        Some(tool) => call_part(tool, &signature),
        None => format!(r#"{{"text":{}{signature}}}"#, quote(canned::TEXT)),
    });
    parts
}

fn thought_part() -> String {
    format!(r#"{{"text":{},"thought":true}}"#, quote(canned::THINKING))
}

fn call_part(tool: &str, signature: &str) -> String {
    format!(r#"{{"functionCall":{{"name":{},"args":{}}}{signature}}}"#, quote(tool), canned::TOOL_ARGS)
}

/// The `thoughtSignature` sibling key carried by the first answer part when
/// thinking is on.
fn signature(answer: &Answer) -> String {
    if answer.thinking { format!(r#","thoughtSignature":{}"#, quote(canned::SIGNATURE)) } else { String::new() }
}

/// One `GenerateContentResponse`; `finish` is the candidates token count of
/// the final chunk (None: an intermediate chunk, counted by `so_far`).
fn response(model: &str, parts: &[String], finish: Option<u32>, answer: &Answer) -> String {
    let (finish_reason, candidates) = match finish {
        Some(tokens) => (r#","finishReason":"STOP""#, tokens),
        None => ("", 0),
    };
    response_with(model, parts, finish_reason, candidates, answer)
}

fn response_with(model: &str, parts: &[String], finish_reason: &str, candidates: u32, answer: &Answer) -> String {
    let thoughts = if answer.thinking { canned::THINKING_TOKENS } else { 0 };
    let total = canned::INPUT_TOKENS + candidates + thoughts;
    let thoughts_field = if answer.thinking { format!(r#","thoughtsTokenCount":{thoughts}"#) } else { String::new() };
    format!(
        r#"{{"candidates":[{{"content":{{"parts":[{}],"role":"model"}}{finish_reason},"index":0}}],"usageMetadata":{{"promptTokenCount":{},"candidatesTokenCount":{candidates}{thoughts_field},"totalTokenCount":{total}}},"modelVersion":{},"responseId":"{RESPONSE_ID}"}}"#,
        parts.join(","),
        canned::INPUT_TOKENS,
        quote(model)
    )
}

/// The stream: a thought chunk when thinking, then one chunk per text delta
/// (the last with `finishReason`) or one chunk with the whole function call.
/// Every chunk has `usageMetadata` with the running counts. With
/// `error-mid-stream`: two text chunks, then a data line holding Google's
/// error object; with `error-before-content`, that error line alone.
fn stream_chunks(model: &str, answer: &Answer) -> EventList {
    let mut list = EventList::new("text/event-stream", answer.delay, answer.cut);
    if answer.error_before_content {
        list.sse(false, None, unavailable(OVERLOADED_MESSAGE).as_bytes());
        return list;
    }
    let mut data = |paced: bool, body: String| list.sse(paced, None, body.as_bytes());
    if answer.thinking {
        data(false, response_with(model, &[thought_part()], "", 0, answer));
    }
    let signature = signature(answer);
    if answer.error_mid_stream {
        for i in 0..canned::DELTAS_BEFORE_ERROR {
            let sig = if i == 0 { signature.as_str() } else { "" };
            let part = format!(r#"{{"text":{}{sig}}}"#, quote(canned::DELTA));
            data(true, response_with(model, &[part], "", i + 1, answer));
        }
        data(true, unavailable(canned::STREAM_ERROR_MESSAGE));
        return list;
    }
    let total = answer.stream_output_tokens();
    if let Some(tool) = &answer.tool {
        data(true, response(model, &[call_part(tool, &signature)], Some(total), answer));
        return list;
    }
    let deltas = answer.text_deltas().max(1);
    for i in 0..deltas {
        let sig = if i == 0 { signature.as_str() } else { "" };
        let text = if answer.text_deltas() == 0 { "" } else { canned::DELTA };
        let part = format!(r#"{{"text":{}{sig}}}"#, quote(text));
        let last = i + 1 == deltas;
        let body = if last {
            response(model, &[part], Some(total), answer)
        } else {
            response_with(model, &[part], "", i + 1, answer)
        };
        data(true, body);
    }
    list
}

/// Google's 503 error object, as a stream sends it.
fn unavailable(message: &str) -> String {
    format!(r#"{{"error":{{"code":503,"message":{},"status":"UNAVAILABLE"}}}}"#, quote(message))
}

fn count_tokens(answer: &Answer) -> Reply {
    let tokens = canned::INPUT_TOKENS;
    let body =
        format!(r#"{{"totalTokens":{tokens},"promptTokensDetails":[{{"modality":"TEXT","tokenCount":{tokens}}}]}}"#);
    Reply::Json(routes::json_reply(200, body.into_bytes(), answer.delay))
}

fn embed(v: &Value, batch: bool, answer: &Answer) -> Reply {
    let body = if batch { batch_embed(v) } else { embed_one(v).map(|e| format!(r#"{{"embedding":{e}}}"#)) };
    match body {
        Ok(body) => Reply::Json(routes::json_reply(200, body.into_bytes(), answer.delay)),
        Err(message) => invalid(&message, answer),
    }
}

/// One `{"values":[...]}` for a request with `content`.
fn embed_one(request: &Value) -> Result<String, String> {
    if !request.get("content").is_some_and(|c| c.is_object()) {
        return Err("* EmbedContentRequest.content: content is not specified".into());
    }
    let dims = request.get("outputDimensionality").and_then(|d| d.as_u64());
    let dims =
        dims.map_or(EMBEDDING_DIMS, |d| usize::try_from(d).unwrap_or(EMBEDDING_DIMS_MAX).min(EMBEDDING_DIMS_MAX));
    Ok(format!(r#"{{"values":{}}}"#, canned::zero_vector(dims)))
}

fn batch_embed(v: &Value) -> Result<String, String> {
    let requests = v.get("requests").and_then(|r| r.as_array()).filter(|r| !r.is_empty());
    let requests = requests.ok_or("* BatchEmbedContentsRequest.requests: requests is not specified")?;
    let embeddings: Result<Vec<String>, String> = requests.iter().map(embed_one).collect();
    Ok(format!(r#"{{"embeddings":[{}]}}"#, embeddings?.join(",")))
}

/// An error in Google's RPC shape. 401 becomes Gemini's bad-key answer.
pub fn error_reply(status: u16, message: &str) -> JsonReply {
    let body = if status == 401 {
        r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#.to_owned()
    } else {
        format!(r#"{{"error":{{"code":{status},"message":{},"status":"{}"}}}}"#, quote(message), rpc_status(status))
    };
    let status = if status == 401 { 400 } else { status };
    routes::json_reply(status, body.into_bytes(), std::time::Duration::ZERO)
}

fn rpc_status(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        401..=499 => "FAILED_PRECONDITION",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Answer {
        Answer::plain(3)
    }

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path("/v1beta/models/gemini-2.5-flash:generateContent"),
            Some(("gemini-2.5-flash", Method::Generate))
        );
        assert_eq!(parse_path("/v1/models/g:batchEmbedContents"), Some(("g", Method::BatchEmbed)));
        assert_eq!(parse_path("/v1beta/models/g:nope"), None);
        assert_eq!(parse_path("/v1beta/models/:generateContent"), None);
        assert_eq!(parse_path("/v1beta/models/g"), None);
    }

    #[test]
    fn bodies_are_json() {
        for tool in [None, Some("t".to_owned())] {
            for (error_mid_stream, error_before_content) in [(false, false), (true, false), (false, true)] {
                let a =
                    Answer { tool: tool.clone(), thinking: true, error_mid_stream, error_before_content, ..answer() };
                let _: Value = sonic_rs::from_str(&response("m", &whole_parts(&a), Some(20), &a)).unwrap();
                for (_, e) in stream_chunks("m", &a).events {
                    let text = String::from_utf8(e).unwrap();
                    let _: Value = sonic_rs::from_str(text.strip_prefix("data: ").unwrap()).unwrap();
                }
            }
        }
        for status in [401, 429, 500, 418] {
            let _: Value = sonic_rs::from_slice(&error_reply(status, "m").body).unwrap();
        }
    }
}
