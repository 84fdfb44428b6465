//! The `mock` provider kind: canned OpenAI-dialect answers from inside the
//! gateway, with no network and no key. It is what the embedded default
//! config serves, so `corelay` answers out of the box.

use translate::Usage;
use translate::openai::{ChatPeek, write_json_string};

use crate::error::GatewayError;
use crate::http::server::Responder;

const REPLY_WORDS: &[&str] = &["This ", "is ", "a ", "mock ", "response."];
const CREATED: &str = "1700000000";

/// Answers a chat request, streamed or not. Returns the usage it reports.
pub async fn chat(responder: &mut Responder<'_>, peek: &ChatPeek<'_>, model: &str) -> Option<Usage> {
    let mut out = Vec::with_capacity(512);
    let usage = answer(peek.stream, peek.include_usage, model, &mut out);
    if !peek.stream {
        let _ = responder.json(200, &out).await;
        return Some(usage);
    }
    if responder.start_stream(200, b"text/event-stream", &[]).await.is_err() {
        return None;
    }
    if responder.stream(&out).await.is_ok() {
        let _ = responder.end_stream().await;
    }
    Some(usage)
}

/// Writes the mock's OpenAI-dialect answer: a `chat.completion` object, or
/// the whole SSE stream. Returns the usage it reports.
pub fn answer(stream: bool, include_usage: bool, model: &str, out: &mut Vec<u8>) -> Usage {
    let completion = REPLY_WORDS.len() as u64;
    let usage = Usage { prompt_tokens: 10, completion_tokens: completion, ..Usage::default() };
    if !stream {
        out.extend_from_slice(b"{\"id\":\"chatcmpl-corelay-mock\",\"object\":\"chat.completion\",\"created\":");
        out.extend_from_slice(CREATED.as_bytes());
        out.extend_from_slice(b",\"model\":");
        write_json_string(out, model);
        out.extend_from_slice(b",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"");
        out.extend_from_slice(REPLY_WORDS.concat().as_bytes());
        out.extend_from_slice(b"\"},\"finish_reason\":\"stop\"}],");
        write_usage(out, &usage);
        out.push(b'}');
        return usage;
    }
    let usage_field: &[u8] = if include_usage { b",\"usage\":null" } else { b"" };
    let deltas = std::iter::once("{\"role\":\"assistant\",\"content\":\"\"}".to_owned())
        .chain(REPLY_WORDS.iter().map(|w| format!("{{\"content\":\"{w}\"}}")));
    for delta in deltas {
        chunk_start(out, model);
        out.extend_from_slice(b"[{\"index\":0,\"delta\":");
        out.extend_from_slice(delta.as_bytes());
        out.extend_from_slice(b",\"finish_reason\":null}]");
        out.extend_from_slice(usage_field);
        out.extend_from_slice(b"}\n\n");
    }
    chunk_start(out, model);
    out.extend_from_slice(b"[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]");
    out.extend_from_slice(usage_field);
    out.extend_from_slice(b"}\n\n");
    if include_usage {
        chunk_start(out, model);
        out.extend_from_slice(b"[],");
        write_usage(out, &usage);
        out.extend_from_slice(b"}\n\n");
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    usage
}

fn chunk_start(out: &mut Vec<u8>, model: &str) {
    out.extend_from_slice(b"data: {\"id\":\"chatcmpl-corelay-mock\",\"object\":\"chat.completion.chunk\",\"created\":");
    out.extend_from_slice(CREATED.as_bytes());
    out.extend_from_slice(b",\"model\":");
    write_json_string(out, model);
    out.extend_from_slice(b",\"choices\":");
}

fn write_usage(out: &mut Vec<u8>, usage: &Usage) {
    let total = usage.prompt_tokens + usage.completion_tokens;
    out.extend_from_slice(
        format!(
            "\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{total}}}",
            usage.prompt_tokens, usage.completion_tokens
        )
        .as_bytes(),
    );
}

/// Answers an embeddings request: one 8-dimensional zero vector per input.
pub async fn embeddings(
    responder: &mut Responder<'_>,
    body: &[u8],
    model: &str,
) -> Result<Option<Usage>, GatewayError> {
    use sonic_rs::JsonValueTrait;
    let input = sonic_rs::get(body, ["input"])
        .map_err(|_| GatewayError::BadRequest("missing required parameter: 'input'".into()))?;
    let count = if input.is_str() {
        1
    } else if let Some(items) = input.clone().into_array_iter() {
        items.count()
    } else {
        return Err(GatewayError::BadRequest("'input' must be a string or an array".into()));
    };
    if count == 0 {
        return Err(GatewayError::BadRequest("'input' must not be empty".into()));
    }
    let mut out = Vec::with_capacity(128 + count * 80);
    out.extend_from_slice(b"{\"object\":\"list\",\"data\":[");
    for i in 0..count {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(
            format!("{{\"object\":\"embedding\",\"index\":{i},\"embedding\":[0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0]}}")
                .as_bytes(),
        );
    }
    out.extend_from_slice(b"],\"model\":");
    write_json_string(&mut out, model);
    let tokens = 5 * count as u64;
    out.extend_from_slice(format!(",\"usage\":{{\"prompt_tokens\":{tokens},\"total_tokens\":{tokens}}}}}").as_bytes());
    let _ = responder.json(200, &out).await;
    Ok(Some(Usage { prompt_tokens: tokens, ..Usage::default() }))
}
