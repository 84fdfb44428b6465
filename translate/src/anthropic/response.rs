//! Anthropic Messages responses, to and from the canonical form.

use std::borrow::Cow;

use serde::Deserialize;

use crate::Usage;
use crate::canon::{Arguments, Block, Finish, Response};
use crate::error::Error;
use crate::raw::Raw;

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    id: Option<Raw<'a>>,
    #[serde(borrow, default)]
    model: Option<Raw<'a>>,
    #[serde(borrow, default)]
    content: Vec<BlockWire<'a>>,
    #[serde(borrow, default)]
    stop_reason: Option<&'a str>,
    #[serde(borrow, default)]
    stop_sequence: Option<Raw<'a>>,
    #[serde(default)]
    usage: Option<UsageWire>,
}

#[derive(Deserialize)]
pub(crate) struct BlockWire<'a> {
    #[serde(borrow, rename = "type")]
    pub type_: Cow<'a, str>,
    #[serde(borrow, default)]
    pub text: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub id: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub name: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub input: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub thinking: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub signature: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub data: Option<Raw<'a>>,
}

/// Anthropic's usage: cache reads and writes are outside `input_tokens`.
#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct UsageWire {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
}

impl UsageWire {
    /// In OpenAI's arithmetic, over what is already known (stream usage
    /// arrives in two parts).
    pub fn merge_into(self, usage: &mut Usage) {
        let cached = self.cache_read_input_tokens;
        let written = self.cache_creation_input_tokens;
        if let Some(input) = self.input_tokens {
            let cached = cached.unwrap_or(usage.cached_tokens);
            let written = written.unwrap_or(usage.cache_write_tokens);
            usage.prompt_tokens = input + cached + written;
        }
        if let Some(c) = cached {
            usage.cached_tokens = c;
        }
        if let Some(w) = written {
            usage.cache_write_tokens = w;
        }
        if let Some(output) = self.output_tokens {
            usage.completion_tokens = output;
        }
    }
}

/// Maps Anthropic's `stop_reason`. Unknown values are a natural stop.
pub fn finish_from_str(reason: &str) -> Finish {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => Finish::Length,
        "stop_sequence" => Finish::StopSequence,
        "tool_use" => Finish::ToolCalls,
        "refusal" => Finish::ContentFilter,
        _ => Finish::Stop,
    }
}

pub fn finish_str(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "end_turn",
        Finish::StopSequence => "stop_sequence",
        Finish::Length => "max_tokens",
        Finish::ToolCalls => "tool_use",
        Finish::ContentFilter => "refusal",
    }
}

/// Parses a non-streamed Messages response. With `json_tool`, the forced
/// `json_response` tool's input is the answer's text.
pub fn parse(body: &[u8], json_tool: bool) -> Result<Response<'_>, Error> {
    let wire: Wire<'_> = crate::wire::from_slice(body).map_err(Error::json)?;
    let mut response = Response {
        id: wire.id.filter(Raw::is_string),
        model: wire.model.filter(Raw::is_string),
        finish: wire.stop_reason.map(finish_from_str),
        stop_sequence: wire.stop_sequence.filter(Raw::is_string),
        ..Response::default()
    };
    if let Some(u) = wire.usage {
        let mut usage = Usage::default();
        u.merge_into(&mut usage);
        response.usage = Some(usage);
    }
    for block in wire.content {
        let type_ = block.type_.clone();
        match (&*type_, block) {
            ("text", b) => {
                if let Some(text) = b.text.filter(Raw::is_string) {
                    response.blocks.push(Block::Text { text, cache_control: None });
                }
            }
            ("tool_use", b) if json_tool && b.name.as_ref().is_some_and(|n| n.json() == "\"json_response\"") => {
                if let Some(input) = b.input {
                    response.blocks.push(Block::Text { text: Raw::string(input.json()), cache_control: None });
                }
                response.finish = Some(Finish::Stop);
            }
            ("tool_use", b) => {
                let (Some(id), Some(name)) = (b.id, b.name) else { continue };
                let input = b.input.filter(Raw::is_object).unwrap_or(Raw::from_json("{}"));
                response.blocks.push(Block::ToolCall {
                    id,
                    name,
                    arguments: Arguments::Object(input),
                    signature: None,
                });
            }
            ("thinking", b) => {
                if let Some(text) = b.thinking {
                    response.blocks.push(Block::Thinking { text, signature: b.signature });
                }
            }
            ("redacted_thinking", b) => {
                if let Some(data) = b.data {
                    response.blocks.push(Block::RedactedThinking { data });
                }
            }
            // Server-tool blocks and future types have no OpenAI form.
            _ => {}
        }
    }
    Ok(response)
}

/// What the writer needs that the response may lack.
#[derive(Debug, Clone, Copy)]
pub struct Context<'c> {
    pub id: &'c str,
    pub model: &'c str,
}

/// Writes a canonical response as a Messages `message` object.
pub fn write(response: &Response<'_>, cx: Context<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
    out.extend_from_slice(b"{\"id\":");
    match &response.id {
        Some(id) => out.extend_from_slice(id.json().as_bytes()),
        None => crate::raw::write_json_string(out, cx.id),
    }
    out.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    crate::raw::write_json_string(out, cx.model);
    out.extend_from_slice(b",\"content\":[");
    let mut first = true;
    let mut saw_tool = false;
    for block in &response.blocks {
        if let Block::Text { text, .. } = block
            && text.json() == "\"\""
        {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        saw_tool |= matches!(block, Block::ToolCall { .. });
        let fallback;
        let block = match block {
            Block::ToolCall { id, name, arguments: Arguments::Encoded(encoded), signature }
                if crate::raw::arguments_object(encoded) == crate::raw::Arguments::NotAnObject =>
            {
                // The model wrote arguments that are not a JSON object;
                // Anthropic's `input` must be one, and failing the whole
                // answer would lose it (`anthropic.md` §8: fallback `{}`).
                fallback = Block::ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: Arguments::Object(Raw::from_json("{}")),
                    signature: signature.clone(),
                };
                &fallback
            }
            other => other,
        };
        // A Gemini thought signature rides in the call's id (see
        // `SIGNATURE_IN_ID`).
        let carried;
        let block = match block {
            Block::ToolCall { id, name, arguments, signature: Some(signature) } => {
                match super::id_with_signature(id, signature) {
                    Some(id) => {
                        carried =
                            Block::ToolCall { id, name: name.clone(), arguments: arguments.clone(), signature: None };
                        &carried
                    }
                    None => block,
                }
            }
            other => other,
        };
        super::request::write_block(block, &"choices[0].message", out)?;
    }
    if let Some(refusal) = &response.refusal {
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        out.extend_from_slice(refusal.json().as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"stop_reason\":\"");
    let finish = match response.finish {
        Some(Finish::Stop) | None if saw_tool => Finish::ToolCalls,
        Some(f) => f,
        None => Finish::Stop,
    };
    out.extend_from_slice(finish_str(finish).as_bytes());
    out.extend_from_slice(b"\",\"stop_sequence\":");
    out.extend_from_slice(response.stop_sequence.as_ref().map_or("null", Raw::json).as_bytes());
    out.extend_from_slice(b",\"usage\":");
    write_usage(&response.usage.unwrap_or_default(), out);
    out.push(b'}');
    Ok(())
}

/// Writes Anthropic's `usage`: input without the cached parts.
pub fn write_usage(usage: &Usage, out: &mut Vec<u8>) {
    let mut n = itoa::Buffer::new();
    let input = usage.prompt_tokens.saturating_sub(usage.cached_tokens + usage.cache_write_tokens);
    out.extend_from_slice(b"{\"input_tokens\":");
    out.extend_from_slice(n.format(input).as_bytes());
    out.extend_from_slice(b",\"cache_creation_input_tokens\":");
    out.extend_from_slice(n.format(usage.cache_write_tokens).as_bytes());
    out.extend_from_slice(b",\"cache_read_input_tokens\":");
    out.extend_from_slice(n.format(usage.cached_tokens).as_bytes());
    out.extend_from_slice(b",\"output_tokens\":");
    out.extend_from_slice(n.format(usage.completion_tokens).as_bytes());
    out.push(b'}');
}

/// Reads `usage` from a non-streamed Messages response (the same-dialect
/// path), in OpenAI's arithmetic.
pub fn usage(body: &[u8]) -> Option<Usage> {
    let raw = sonic_rs::get(body, ["usage"]).ok()?;
    let wire: UsageWire = sonic_rs::from_str(raw.as_raw_str()).ok()?;
    let mut usage = Usage::default();
    wire.merge_into(&mut usage);
    Some(usage)
}
