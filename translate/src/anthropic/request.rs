//! Anthropic Messages requests, to and from the canonical form.
//!
//! Policies, where the dialects disagree (each is a test in `test_data`):
//! - `temperature` above Anthropic's 1.0 is clamped to 1.0, not refused:
//!   OpenAI clients send up to 2.0 and expect an answer.
//! - A request without `max_tokens` gets the deployment's default.
//! - `reasoning_effort` becomes a thinking budget (1,024, 2,048 or 4,096
//!   tokens); `max_tokens` is raised by the budget when it would not exceed
//!   it, and `temperature`, `top_p` and `top_k` are dropped, as Anthropic
//!   requires with thinking on.
//! - JSON mode and JSON schemas become a forced tool named `json_response`
//!   whose input is the answer; the response side turns it back into text.
//!   The other way, an Anthropic client's native structured output
//!   (`output_config.format`, a JSON schema) is read as the same request,
//!   so other providers get their own JSON mode (case 28).
//! - Tool-call arguments that are not a JSON object are refused with a 400
//!   naming the message: Anthropic needs an object and guessing one would
//!   change the conversation.
//! - Reasoning without a signature (OpenAI's `reasoning_content`, or
//!   another provider's thinking) is not sent back: Anthropic refuses
//!   thinking blocks whose signature it cannot check, and allows earlier
//!   reasoning to be left out (case 26).

use std::borrow::Cow;

use serde::Deserialize;

use crate::canon::{
    Arguments, Block, Effort, Message, Reasoning, Request, ResponseFormat, Role, Source, Tool, ToolChoice, ToolContent,
};
use crate::error::Error;
use crate::raw::{Raw, arguments_object, write_json_string};

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    model: Option<Raw<'a>>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(borrow, default)]
    messages: Option<Vec<MessageWire<'a>>>,
    #[serde(borrow, default)]
    system: Option<Raw<'a>>,
    #[serde(borrow, default)]
    stop_sequences: Option<Vec<Raw<'a>>>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    top_k: Option<u64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    tools: Option<Vec<ToolWire<'a>>>,
    #[serde(borrow, default)]
    tool_choice: Option<ToolChoiceWire<'a>>,
    #[serde(borrow, default)]
    metadata: Option<MetadataWire<'a>>,
    #[serde(borrow, default)]
    thinking: Option<ThinkingConfigWire<'a>>,
    #[serde(borrow, default)]
    cache_control: Option<Raw<'a>>,
    #[serde(borrow, default)]
    output_config: Option<OutputConfigWire<'a>>,
}

/// `output_config`: only `format` is read; `effort` is not translated.
#[derive(Deserialize)]
struct OutputConfigWire<'a> {
    #[serde(borrow, default)]
    format: Option<OutputFormatWire<'a>>,
}

#[derive(Deserialize)]
struct OutputFormatWire<'a> {
    #[serde(borrow, rename = "type")]
    type_: Cow<'a, str>,
    #[serde(borrow, default)]
    schema: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct MessageWire<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow)]
    content: Raw<'a>,
}

#[derive(Deserialize)]
struct BlockWire<'a> {
    #[serde(borrow, rename = "type")]
    type_: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Raw<'a>>,
    #[serde(borrow, default)]
    source: Option<SourceWire<'a>>,
    #[serde(borrow, default)]
    id: Option<Raw<'a>>,
    #[serde(borrow, default)]
    name: Option<Raw<'a>>,
    #[serde(borrow, default)]
    input: Option<Raw<'a>>,
    #[serde(borrow, default)]
    tool_use_id: Option<Raw<'a>>,
    #[serde(borrow, default)]
    content: Option<Raw<'a>>,
    #[serde(default)]
    is_error: Option<bool>,
    #[serde(borrow, default)]
    thinking: Option<Raw<'a>>,
    #[serde(borrow, default)]
    signature: Option<Raw<'a>>,
    #[serde(borrow, default)]
    data: Option<Raw<'a>>,
    #[serde(borrow, default)]
    cache_control: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct SourceWire<'a> {
    #[serde(borrow, rename = "type")]
    type_: Cow<'a, str>,
    #[serde(borrow, default)]
    media_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<Raw<'a>>,
    #[serde(borrow, default)]
    url: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ToolWire<'a> {
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow, default, rename = "type")]
    type_: Option<&'a str>,
    #[serde(borrow, default)]
    description: Option<Raw<'a>>,
    #[serde(borrow, default)]
    input_schema: Option<Raw<'a>>,
    #[serde(default)]
    strict: Option<bool>,
    #[serde(borrow, default)]
    cache_control: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ToolChoiceWire<'a> {
    #[serde(borrow, rename = "type")]
    type_: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Option<Raw<'a>>,
    #[serde(default)]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Deserialize)]
struct MetadataWire<'a> {
    #[serde(borrow, default)]
    user_id: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ThinkingConfigWire<'a> {
    #[serde(borrow, rename = "type")]
    type_: Cow<'a, str>,
    #[serde(default)]
    budget_tokens: Option<u64>,
}

/// Parses a Messages body (the Anthropic front door) into the canonical form.
pub fn parse(body: &[u8]) -> Result<Request<'_>, Error> {
    parse_with(body, true)
}

/// Parses a `count_tokens` body: a Messages body without `max_tokens`.
pub fn parse_count_tokens(body: &[u8]) -> Result<Request<'_>, Error> {
    parse_with(body, false)
}

fn parse_with(body: &[u8], max_tokens_required: bool) -> Result<Request<'_>, Error> {
    let wire: Wire<'_> = crate::wire::from_slice(body).map_err(Error::json)?;
    let model = wire.model.filter(Raw::is_string).ok_or(Error::invalid("model", "model: Field required"))?;
    let max_tokens = match wire.max_tokens {
        Some(n) => Some(n),
        None if max_tokens_required => return Err(Error::invalid("max_tokens", "max_tokens: Field required")),
        None => None,
    };
    let messages = wire.messages.ok_or(Error::invalid("messages", "messages: Field required"))?;
    let mut request = Request {
        model,
        max_tokens,
        temperature: wire.temperature,
        top_p: wire.top_p,
        top_k: wire.top_k,
        stream: wire.stream.unwrap_or(false),
        // Anthropic streams always end with usage.
        include_usage: true,
        user: wire.metadata.and_then(|m| m.user_id).filter(Raw::is_string),
        cache_control: wire.cache_control.filter(Raw::is_object),
        ..Request::default()
    };
    request.stop = wire.stop_sequences.unwrap_or_default();
    if !request.stop.iter().all(Raw::is_string) {
        return Err(Error::invalid("stop_sequences", "stop_sequences: must be strings"));
    }
    if let Some(system) = wire.system {
        request.system = parse_system(system)?;
    }
    request.tools = parse_tools(wire.tools.unwrap_or_default())?;
    if let Some(format) = wire.output_config.and_then(|c| c.format) {
        request.response_format = parse_output_format(format)?;
    }
    if let Some(choice) = wire.tool_choice {
        request.parallel_tool_calls = choice.disable_parallel_tool_use.map(|d| !d);
        request.tool_choice = Some(match (&*choice.type_, choice.name) {
            ("auto", _) => ToolChoice::Auto,
            ("any", _) => ToolChoice::Required,
            ("none", _) => ToolChoice::None,
            ("tool", Some(name)) if name.is_string() => ToolChoice::Named(name),
            _ => {
                return Err(Error::invalid(
                    "tool_choice",
                    "tool_choice: type must be auto, any, tool (with name) or none",
                ));
            }
        });
    }
    request.reasoning = match wire.thinking {
        None => None,
        Some(t) => Some(match (&*t.type_, t.budget_tokens) {
            ("enabled", Some(budget)) => Reasoning::BudgetTokens(budget),
            ("adaptive", _) => Reasoning::Adaptive,
            ("disabled", _) => Reasoning::Disabled,
            _ => {
                return Err(Error::invalid(
                    "thinking",
                    "thinking: type must be enabled (with budget_tokens), adaptive or disabled",
                ));
            }
        }),
    };
    for (i, message) in messages.into_iter().enumerate() {
        let role = match &*message.role {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(Error::invalid(
                    format!("messages.{i}.role"),
                    format!("messages.{i}.role: unknown role '{other}'"),
                ));
            }
        };
        let blocks = content_blocks(message.content, &format!("messages.{i}.content"))?;
        match request.messages.last_mut() {
            Some(last) if last.role == role => last.blocks.extend(blocks),
            _ => request.messages.push(Message { role, blocks }),
        }
    }
    Ok(request)
}

/// Native structured output, `{"type":"json_schema","schema":{...}}`: the
/// same request as OpenAI's `response_format` with a schema.
fn parse_output_format(format: OutputFormatWire<'_>) -> Result<ResponseFormat<'_>, Error> {
    match (&*format.type_, format.schema.filter(Raw::is_object)) {
        ("json_schema", Some(schema)) => Ok(ResponseFormat::JsonSchema { name: None, schema, strict: None }),
        _ => Err(Error::invalid(
            "output_config.format",
            "output_config.format: type must be json_schema, with a schema object",
        )),
    }
}

fn parse_system(system: Raw<'_>) -> Result<Vec<Block<'_>>, Error> {
    if system.is_string() {
        return Ok(if system.is_blank_string() {
            Vec::new()
        } else {
            vec![Block::Text { text: system, cache_control: None }]
        });
    }
    let blocks = content_blocks(system, "system")?;
    if blocks.iter().any(|b| !matches!(b, Block::Text { .. })) {
        return Err(Error::invalid("system", "system: only text blocks are allowed"));
    }
    Ok(blocks)
}

fn parse_tools(tools: Vec<ToolWire<'_>>) -> Result<Vec<Tool<'_>>, Error> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            if t.type_.is_some_and(|ty| ty != "custom") || !t.name.is_string() {
                return Err(Error::invalid(
                    format!("tools.{i}"),
                    "only custom tools (name and input_schema) can be translated for this provider",
                ));
            }
            Ok(Tool {
                name: t.name,
                description: t.description.filter(Raw::is_string),
                parameters: t.input_schema.filter(Raw::is_object),
                strict: t.strict,
                cache_control: t.cache_control.filter(Raw::is_object),
            })
        })
        .collect()
}

/// A `content` value: a string or an array of blocks.
fn content_blocks<'a>(content: Raw<'a>, path: &str) -> Result<Vec<Block<'a>>, Error> {
    if content.is_string() {
        return Ok(if content.is_blank_string() {
            Vec::new()
        } else {
            vec![Block::Text { text: content, cache_control: None }]
        });
    }
    let text = content.as_borrowed().filter(|_| content.is_array());
    let wires: Vec<BlockWire<'a>> = match text {
        Some(t) => sonic_rs::from_str(t).map_err(|e| Error::invalid(path.to_owned(), format!("{path}: {e}")))?,
        None => {
            return Err(Error::invalid(
                path.to_owned(),
                format!("{path}: must be a string or an array of content blocks"),
            ));
        }
    };
    let mut blocks = Vec::with_capacity(wires.len());
    for (j, wire) in wires.into_iter().enumerate() {
        if let Some(block) = block(wire, &format!("{path}.{j}"))? {
            blocks.push(block);
        }
    }
    Ok(blocks)
}

fn block<'a>(w: BlockWire<'a>, path: &str) -> Result<Option<Block<'a>>, Error> {
    let need = |what: &str| Error::invalid(path.to_owned(), format!("{path}.{what}: Field required"));
    Ok(Some(match &*w.type_ {
        "text" => {
            let text = w.text.filter(Raw::is_string).ok_or_else(|| need("text"))?;
            if text.is_blank_string() {
                return Ok(None);
            }
            Block::Text { text, cache_control: w.cache_control }
        }
        "image" | "document" => {
            let source = w.source.ok_or_else(|| need("source"))?;
            let source = match (&*source.type_, source.media_type, source.data, source.url) {
                ("base64", Some(media_type), Some(data), _) if data.is_string() => {
                    Source::Base64 { media_type, data: data.text().unwrap_or_default() }
                }
                ("url", _, _, Some(url)) if url.is_string() => Source::Url(url),
                _ => {
                    return Err(Error::invalid(
                        path.to_owned(),
                        format!("{path}.source: base64 (media_type, data) or url sources only"),
                    ));
                }
            };
            if w.type_ == "image" {
                Block::Image { source, cache_control: w.cache_control }
            } else {
                Block::Document { source, cache_control: w.cache_control }
            }
        }
        "tool_use" => {
            let id = w.id.filter(Raw::is_string).ok_or_else(|| need("id"))?;
            // A Gemini signature carried in the id comes out of it: other
            // providers get the plain id (OpenAI takes 40 characters at
            // most), Gemini gets the signature where it wants it.
            Block::ToolCall {
                signature: super::signature_from_id(&id),
                id: super::without_signature(id),
                name: w.name.filter(Raw::is_string).ok_or_else(|| need("name"))?,
                arguments: Arguments::Object(w.input.filter(Raw::is_object).ok_or_else(|| need("input"))?),
            }
        }
        "tool_result" => {
            let content = match w.content {
                None => ToolContent::Text(Raw::default()),
                Some(c) if c.is_string() => ToolContent::Text(c),
                Some(c) => ToolContent::Blocks(content_blocks(c, &format!("{path}.content"))?),
            };
            Block::ToolResult {
                id: super::without_signature(w.tool_use_id.filter(Raw::is_string).ok_or_else(|| need("tool_use_id"))?),
                content,
                is_error: w.is_error.unwrap_or(false),
                cache_control: w.cache_control,
            }
        }
        "thinking" => Block::Thinking {
            text: w.thinking.filter(Raw::is_string).ok_or_else(|| need("thinking"))?,
            signature: w.signature,
        },
        "redacted_thinking" => {
            Block::RedactedThinking { data: w.data.filter(Raw::is_string).ok_or_else(|| need("data"))? }
        }
        other => {
            return Err(Error::invalid(
                path.to_owned(),
                format!("{path}.type: '{other}' cannot be translated for this provider"),
            ));
        }
    }))
}

/// How a request is written for an Anthropic deployment.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `max_tokens` when the client gave none (Anthropic requires it).
    pub max_tokens_default: u64,
}

/// What the response side must know about how the request was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// JSON output was asked for through the forced `json_response` tool.
    pub json_tool: bool,
}

/// The name of the tool that carries JSON output.
pub const JSON_TOOL: &str = "json_response";

/// The media types Anthropic accepts for images.
const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Writes a canonical request as a Messages body for `model`.
pub fn write(request: &Request<'_>, model: &str, options: Options, out: &mut Vec<u8>) -> Result<Written, Error> {
    let json_tool = !matches!(request.response_format, ResponseFormat::Text);
    let thinking = match request.reasoning {
        Some(Reasoning::Effort(e)) => Some(e.budget_tokens()),
        Some(Reasoning::BudgetTokens(b)) => Some(b),
        _ => None,
    };
    if json_tool && (thinking.is_some() || request.reasoning == Some(Reasoning::Adaptive)) {
        return Err(Error::invalid(
            "response_format",
            "JSON output and reasoning cannot be combined for this provider",
        ));
    }
    out.extend_from_slice(b"{\"model\":");
    write_json_string(out, model);
    let mut max_tokens = request.max_tokens.unwrap_or(options.max_tokens_default);
    if let Some(budget) = thinking.filter(|b| max_tokens <= *b) {
        max_tokens += budget;
    }
    out.extend_from_slice(b",\"max_tokens\":");
    out.extend_from_slice(itoa::Buffer::new().format(max_tokens).as_bytes());
    if !request.system.is_empty() {
        out.extend_from_slice(b",\"system\":");
        write_blocks(&request.system, &"system", out)?;
    }
    out.extend_from_slice(b",\"messages\":[");
    write_messages(request, out)?;
    out.push(b']');
    write_sampling(request, thinking, out);
    write_tools(request, json_tool, out);
    if let Some(user) = &request.user {
        out.extend_from_slice(b",\"metadata\":{\"user_id\":");
        out.extend_from_slice(user.json().as_bytes());
        out.push(b'}');
    }
    match (request.reasoning, thinking) {
        (_, Some(budget)) => {
            out.extend_from_slice(b",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":");
            out.extend_from_slice(itoa::Buffer::new().format(budget).as_bytes());
            out.push(b'}');
        }
        (Some(Reasoning::Adaptive), None) => out.extend_from_slice(b",\"thinking\":{\"type\":\"adaptive\"}"),
        _ => {}
    }
    if let Some(cc) = &request.cache_control {
        out.extend_from_slice(b",\"cache_control\":");
        out.extend_from_slice(cc.json().as_bytes());
    }
    if request.stream {
        out.extend_from_slice(b",\"stream\":true");
    }
    out.push(b'}');
    Ok(Written { json_tool })
}

fn write_sampling(request: &Request<'_>, thinking: Option<u64>, out: &mut Vec<u8>) {
    let stops: Vec<&Raw<'_>> = request.stop.iter().filter(|s| !s.is_blank_string()).collect();
    if !stops.is_empty() {
        out.extend_from_slice(b",\"stop_sequences\":[");
        for (i, s) in stops.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(s.json().as_bytes());
        }
        out.push(b']');
    }
    if thinking.is_some() {
        return;
    }
    crate::openai::request::write_number(out, "temperature", request.temperature.map(|t| t.clamp(0.0, 1.0)));
    crate::openai::request::write_number(out, "top_p", request.top_p);
    if let Some(k) = request.top_k {
        out.extend_from_slice(b",\"top_k\":");
        out.extend_from_slice(itoa::Buffer::new().format(k).as_bytes());
    }
}

/// Turns, with empty ones left out and same-role neighbours merged.
/// Unsigned reasoning is left out ([`Block::is_replayable`]).
fn write_messages(request: &Request<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
    let mut open: Option<Role> = None;
    for (i, message) in request.messages.iter().enumerate() {
        let mut blocks = message.blocks.iter().filter(|b| b.is_replayable()).peekable();
        if blocks.peek().is_none() {
            continue;
        }
        if open == Some(message.role) {
            out.push(b',');
        } else {
            if open.is_some() {
                out.extend_from_slice(b"]},");
            }
            out.extend_from_slice(match message.role {
                Role::User => b"{\"role\":\"user\",\"content\":[",
                Role::Assistant => b"{\"role\":\"assistant\",\"content\":[",
            });
            open = Some(message.role);
        }
        let path = crate::error::Path::index("messages", i);
        for (j, block) in blocks.enumerate() {
            if j > 0 {
                out.push(b',');
            }
            write_block(block, &path, out)?;
        }
    }
    if open.is_some() {
        out.extend_from_slice(b"]}");
    }
    Ok(())
}

fn write_blocks(blocks: &[Block<'_>], path: &dyn std::fmt::Display, out: &mut Vec<u8>) -> Result<(), Error> {
    out.push(b'[');
    write_block_list(blocks, path, out)?;
    out.push(b']');
    Ok(())
}

fn write_block_list(blocks: &[Block<'_>], path: &dyn std::fmt::Display, out: &mut Vec<u8>) -> Result<(), Error> {
    for (j, block) in blocks.iter().enumerate() {
        if j > 0 {
            out.push(b',');
        }
        write_block(block, path, out)?;
    }
    Ok(())
}

fn write_cache_control(cc: &Option<Raw<'_>>, out: &mut Vec<u8>) {
    if let Some(cc) = cc {
        out.extend_from_slice(b",\"cache_control\":");
        out.extend_from_slice(cc.json().as_bytes());
    }
}

pub(crate) fn write_block(block: &Block<'_>, path: &dyn std::fmt::Display, out: &mut Vec<u8>) -> Result<(), Error> {
    match block {
        Block::Text { text, cache_control } => {
            out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
            out.extend_from_slice(text.json().as_bytes());
            write_cache_control(cache_control, out);
        }
        Block::Image { source, cache_control } => {
            out.extend_from_slice(b"{\"type\":\"image\",\"source\":");
            if let Source::Base64 { media_type, .. } = source
                && !IMAGE_MEDIA_TYPES.iter().any(|m| m.eq_ignore_ascii_case(media_type))
            {
                return Err(Error::invalid(
                    path.to_string(),
                    format!(
                        "image type '{media_type}' is not supported by this provider (jpeg, png, gif and webp are)"
                    ),
                ));
            }
            write_source(source, out);
            write_cache_control(cache_control, out);
        }
        Block::Document { source, cache_control } => {
            if let Source::Base64 { media_type, .. } = source
                && !media_type.eq_ignore_ascii_case("application/pdf")
            {
                return Err(Error::invalid(
                    path.to_string(),
                    format!("document type '{media_type}' is not supported (PDF is)"),
                ));
            }
            out.extend_from_slice(b"{\"type\":\"document\",\"source\":");
            write_source(source, out);
            write_cache_control(cache_control, out);
        }
        Block::ToolCall { id, name, arguments, .. } => {
            out.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
            out.extend_from_slice(id.json().as_bytes());
            out.extend_from_slice(b",\"name\":");
            out.extend_from_slice(name.json().as_bytes());
            out.extend_from_slice(b",\"input\":");
            write_input(arguments, path, out)?;
        }
        Block::ToolResult { id, content, is_error, cache_control } => {
            out.extend_from_slice(b"{\"type\":\"tool_result\",\"tool_use_id\":");
            out.extend_from_slice(id.json().as_bytes());
            out.extend_from_slice(b",\"content\":");
            match content {
                ToolContent::Text(text) => out.extend_from_slice(text.json().as_bytes()),
                ToolContent::Blocks(blocks) => write_blocks(blocks, path, out)?,
            }
            if *is_error {
                out.extend_from_slice(b",\"is_error\":true");
            }
            write_cache_control(cache_control, out);
        }
        Block::Thinking { text, signature } => {
            out.extend_from_slice(b"{\"type\":\"thinking\",\"thinking\":");
            out.extend_from_slice(text.json().as_bytes());
            out.extend_from_slice(b",\"signature\":");
            out.extend_from_slice(signature.as_ref().map_or("\"\"", Raw::json).as_bytes());
        }
        Block::RedactedThinking { data } => {
            out.extend_from_slice(b"{\"type\":\"redacted_thinking\",\"data\":");
            out.extend_from_slice(data.json().as_bytes());
        }
    }
    out.push(b'}');
    Ok(())
}

/// A tool call's input as the object Anthropic needs.
pub(crate) fn write_input(
    arguments: &Arguments<'_>,
    path: &dyn std::fmt::Display,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    match arguments {
        Arguments::Object(o) => out.extend_from_slice(o.json().as_bytes()),
        Arguments::Encoded(s) => match arguments_object(s) {
            crate::raw::Arguments::Object(o) => out.extend_from_slice(o.as_bytes()),
            crate::raw::Arguments::NotAnObject => {
                return Err(Error::invalid(
                    format!("{path}.tool_calls"),
                    "tool-call arguments must be a JSON object for this provider",
                ));
            }
        },
    }
    Ok(())
}

fn write_source(source: &Source<'_>, out: &mut Vec<u8>) {
    match source {
        Source::Base64 { media_type, data } => {
            out.extend_from_slice(b"{\"type\":\"base64\",\"media_type\":");
            write_json_string(out, media_type);
            out.extend_from_slice(b",\"data\":");
            write_json_string(out, data);
            out.push(b'}');
        }
        Source::Url(url) => {
            out.extend_from_slice(b"{\"type\":\"url\",\"url\":");
            out.extend_from_slice(url.json().as_bytes());
            out.push(b'}');
        }
    }
}

fn write_tools(request: &Request<'_>, json_tool: bool, out: &mut Vec<u8>) {
    let has_tools = !request.tools.is_empty() || json_tool;
    if has_tools {
        out.extend_from_slice(b",\"tools\":[");
        for (i, tool) in request.tools.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            tool.write_fields(b"input_schema", out);
            write_cache_control(&tool.cache_control, out);
            out.push(b'}');
        }
        if json_tool {
            if !request.tools.is_empty() {
                out.push(b',');
            }
            let schema = match &request.response_format {
                ResponseFormat::JsonSchema { schema, .. } => schema.json(),
                _ => "{\"type\":\"object\"}",
            };
            out.extend_from_slice(b"{\"name\":\"json_response\",\"description\":\"Respond with this tool's input: it is the answer, as JSON.\",\"input_schema\":");
            out.extend_from_slice(schema.as_bytes());
            out.push(b'}');
        }
        out.push(b']');
    }
    let no_parallel = request.parallel_tool_calls == Some(false);
    let parallel = if no_parallel { ",\"disable_parallel_tool_use\":true}" } else { "}" };
    if json_tool {
        out.extend_from_slice(b",\"tool_choice\":{\"type\":\"tool\",\"name\":\"json_response\"}");
        return;
    }
    match (&request.tool_choice, has_tools) {
        (_, false) => {}
        (None, true) if no_parallel => {
            out.extend_from_slice(b",\"tool_choice\":{\"type\":\"auto\",\"disable_parallel_tool_use\":true}")
        }
        (None, true) => {}
        (Some(ToolChoice::Auto), true) => {
            out.extend_from_slice(b",\"tool_choice\":{\"type\":\"auto\"");
            out.extend_from_slice(parallel.as_bytes());
        }
        (Some(ToolChoice::Required), true) => {
            out.extend_from_slice(b",\"tool_choice\":{\"type\":\"any\"");
            out.extend_from_slice(parallel.as_bytes());
        }
        (Some(ToolChoice::None), true) => out.extend_from_slice(b",\"tool_choice\":{\"type\":\"none\"}"),
        (Some(ToolChoice::Named(name)), true) => {
            out.extend_from_slice(b",\"tool_choice\":{\"type\":\"tool\",\"name\":");
            out.extend_from_slice(name.json().as_bytes());
            out.extend_from_slice(parallel.as_bytes());
        }
    }
}

/// The thinking budget an Anthropic request names, as an OpenAI effort.
pub fn effort_of(reasoning: Reasoning) -> Option<Effort> {
    match reasoning {
        Reasoning::BudgetTokens(b) => Some(Effort::from_budget(b)),
        Reasoning::Effort(e) => Some(e),
        Reasoning::Adaptive => Some(Effort::Medium),
        Reasoning::Disabled => None,
    }
}
