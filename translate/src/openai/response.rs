//! OpenAI chat-completions responses, to and from the canonical form.

use serde::Deserialize;

use crate::Usage;
use crate::canon::{Arguments, Block, Finish, Response};
use crate::error::Error;
use crate::raw::{Raw, write_as_string, write_joined};

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    id: Option<Raw<'a>>,
    #[serde(borrow, default)]
    model: Option<Raw<'a>>,
    #[serde(default)]
    created: Option<u64>,
    #[serde(borrow, default)]
    choices: Vec<ChoiceWire<'a>>,
    #[serde(borrow, default)]
    usage: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ChoiceWire<'a> {
    #[serde(borrow, default)]
    message: Option<MessageWire<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a str>,
}

#[derive(Deserialize)]
struct MessageWire<'a> {
    #[serde(borrow, default)]
    content: Option<Raw<'a>>,
    #[serde(borrow, default)]
    refusal: Option<Raw<'a>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Raw<'a>>,
    /// Ollama's (and OpenRouter's) name for the same text; used when
    /// `reasoning_content` is absent.
    #[serde(borrow, default)]
    reasoning: Option<Raw<'a>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallWire<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallWire<'a> {
    #[serde(borrow)]
    id: Raw<'a>,
    #[serde(borrow)]
    function: FunctionWire<'a>,
}

#[derive(Deserialize)]
struct FunctionWire<'a> {
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow, default)]
    arguments: Option<Raw<'a>>,
}

/// Maps OpenAI's `finish_reason`. Unknown values are a natural stop.
pub fn finish_from_str(reason: &str) -> Finish {
    match reason {
        "length" => Finish::Length,
        "tool_calls" | "function_call" => Finish::ToolCalls,
        "content_filter" => Finish::ContentFilter,
        _ => Finish::Stop,
    }
}

pub fn finish_str(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop | Finish::StopSequence => "stop",
        Finish::Length => "length",
        Finish::ToolCalls => "tool_calls",
        Finish::ContentFilter => "content_filter",
    }
}

/// Parses a non-streamed chat completion (its first choice).
pub fn parse(body: &[u8]) -> Result<Response<'_>, Error> {
    let wire: Wire<'_> = crate::wire::from_slice(body).map_err(Error::json)?;
    let mut response = Response {
        id: wire.id.filter(Raw::is_string),
        model: wire.model.filter(Raw::is_string),
        created: wire.created,
        usage: wire.usage.and_then(|u| super::usage_from_object(u.json().as_bytes())),
        ..Response::default()
    };
    let Some(choice) = wire.choices.into_iter().next() else {
        return Ok(response);
    };
    response.finish = choice.finish_reason.map(finish_from_str);
    if let Some(message) = choice.message {
        let reasoning = message.reasoning_content.or(message.reasoning);
        if let Some(reasoning) = reasoning.filter(|r| r.is_string() && !r.is_blank_string()) {
            response.blocks.push(Block::Thinking { text: reasoning, signature: None });
        }
        if let Some(text) = message.content.filter(Raw::is_string) {
            response.blocks.push(Block::Text { text, cache_control: None });
        }
        for call in message.tool_calls.unwrap_or_default() {
            response.blocks.push(Block::ToolCall {
                id: call.id,
                name: call.function.name,
                arguments: Arguments::Encoded(call.function.arguments.unwrap_or_default()),
                signature: None,
            });
        }
        response.refusal = message.refusal.filter(Raw::is_string);
    }
    Ok(response)
}

/// What the writer needs that the response may lack.
#[derive(Debug, Clone, Copy)]
pub struct Context<'c> {
    /// A fallback id (the gateway makes one per request).
    pub id: &'c str,
    /// Unix seconds, from the gateway's clock.
    pub created: u64,
    /// The model name the client should see.
    pub model: &'c str,
}

/// Writes a canonical response as a `chat.completion` object.
pub fn write(response: &Response<'_>, cx: Context<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\":");
    match &response.id {
        Some(id) => out.extend_from_slice(id.json().as_bytes()),
        None => crate::raw::write_json_string(out, cx.id),
    }
    out.extend_from_slice(b",\"object\":\"chat.completion\",\"created\":");
    out.extend_from_slice(itoa::Buffer::new().format(response.created.unwrap_or(cx.created)).as_bytes());
    out.extend_from_slice(b",\"model\":");
    crate::raw::write_json_string(out, cx.model);
    out.extend_from_slice(b",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    let texts: Vec<&Raw<'_>> = response
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::Text { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    if texts.is_empty() {
        out.extend_from_slice(b"null")
    } else {
        write_joined(out, texts, "")
    }
    out.extend_from_slice(b",\"refusal\":");
    out.extend_from_slice(response.refusal.as_ref().map_or("null", Raw::json).as_bytes());
    write_thinking(response, out);
    write_tool_calls(response, out);
    out.extend_from_slice(b"},\"finish_reason\":\"");
    out.extend_from_slice(finish_str(response.finish.unwrap_or(Finish::Stop)).as_bytes());
    out.extend_from_slice(b"\",\"logprobs\":null}]");
    if let Some(usage) = &response.usage {
        out.extend_from_slice(b",\"usage\":");
        write_usage(usage, out);
    }
    out.push(b'}');
}

/// Reasoning as `reasoning_content` (the common extension), and the blocks
/// with their signatures as `thinking_blocks`, so a client that sends the
/// message back replays them verbatim.
fn write_thinking(response: &Response<'_>, out: &mut Vec<u8>) {
    let thinking =
        || response.blocks.iter().filter(|b| matches!(b, Block::Thinking { .. } | Block::RedactedThinking { .. }));
    if thinking().next().is_none() {
        return;
    }
    out.extend_from_slice(b",\"reasoning_content\":");
    write_joined(
        out,
        thinking().filter_map(|b| match b {
            Block::Thinking { text, .. } => Some(text),
            _ => None,
        }),
        "",
    );
    out.extend_from_slice(b",\"thinking_blocks\":[");
    for (i, block) in thinking().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match block {
            Block::Thinking { text, signature } => {
                out.extend_from_slice(b"{\"type\":\"thinking\",\"thinking\":");
                out.extend_from_slice(text.json().as_bytes());
                if let Some(sig) = signature {
                    out.extend_from_slice(b",\"signature\":");
                    out.extend_from_slice(sig.json().as_bytes());
                }
                out.push(b'}');
            }
            Block::RedactedThinking { data } => {
                out.extend_from_slice(b"{\"type\":\"redacted_thinking\",\"data\":");
                out.extend_from_slice(data.json().as_bytes());
                out.push(b'}');
            }
            _ => {}
        }
    }
    out.push(b']');
}

fn write_tool_calls(response: &Response<'_>, out: &mut Vec<u8>) {
    let mut first = true;
    for block in &response.blocks {
        let Block::ToolCall { id, name, arguments, signature } = block else { continue };
        out.extend_from_slice(if std::mem::take(&mut first) { b",\"tool_calls\":[" } else { b"," });
        out.extend_from_slice(b"{\"id\":");
        out.extend_from_slice(id.json().as_bytes());
        out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
        out.extend_from_slice(name.json().as_bytes());
        out.extend_from_slice(b",\"arguments\":");
        match arguments {
            Arguments::Encoded(s) => out.extend_from_slice(s.json().as_bytes()),
            Arguments::Object(o) => write_as_string(out, o),
        }
        out.push(b'}');
        if let Some(sig) = signature {
            out.extend_from_slice(b",\"thought_signature\":");
            out.extend_from_slice(sig.json().as_bytes());
        }
        out.push(b'}');
    }
    if !first {
        out.push(b']');
    }
}

/// Writes an OpenAI `usage` object: cached and cache-write tokens inside
/// `prompt_tokens`, reasoning tokens inside `completion_tokens`.
pub fn write_usage(usage: &Usage, out: &mut Vec<u8>) {
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(b"{\"prompt_tokens\":");
    out.extend_from_slice(n.format(usage.prompt_tokens).as_bytes());
    out.extend_from_slice(b",\"completion_tokens\":");
    out.extend_from_slice(n.format(usage.completion_tokens).as_bytes());
    out.extend_from_slice(b",\"total_tokens\":");
    out.extend_from_slice(n.format(usage.prompt_tokens + usage.completion_tokens).as_bytes());
    out.extend_from_slice(b",\"prompt_tokens_details\":{\"cached_tokens\":");
    out.extend_from_slice(n.format(usage.cached_tokens).as_bytes());
    if usage.cache_write_tokens > 0 {
        out.extend_from_slice(b",\"cache_write_tokens\":");
        out.extend_from_slice(n.format(usage.cache_write_tokens).as_bytes());
    }
    out.extend_from_slice(b"},\"completion_tokens_details\":{\"reasoning_tokens\":");
    out.extend_from_slice(n.format(usage.reasoning_tokens).as_bytes());
    out.extend_from_slice(b"}}");
}
