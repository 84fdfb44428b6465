//! OpenAI chat-completions requests, to and from the canonical form.
//!
//! Parsing walks the body once with serde over sonic-rs; every piece of
//! content is kept as a [`Raw`] slice of the body. Writing copies those
//! slices into the new body. The canonical form hoists system messages and
//! folds `tool` messages into user turns; writing undoes both. Images and
//! documents inside tool results (Anthropic allows them, OpenAI's `tool`
//! messages hold text only) open the user message after the `tool`
//! messages.

use std::borrow::Cow;

use serde::Deserialize;

use crate::canon::{
    Arguments, Block, Effort, Message, Reasoning, Request, ResponseFormat, Role, Source, Tool, ToolChoice, ToolContent,
};
use crate::error::Error;
use crate::raw::{Raw, write_as_string, write_joined, write_json_string};

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    model: Option<Raw<'a>>,
    #[serde(borrow, default, deserialize_with = "crate::wire::vec_with_room")]
    messages: Option<Vec<MessageWire<'a>>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    top_k: Option<u64>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(borrow, default)]
    stop: Option<Raw<'a>>,
    #[serde(default)]
    n: Option<u64>,
    #[serde(borrow, default)]
    tools: Option<Vec<ToolWire<'a>>>,
    #[serde(borrow, default)]
    tool_choice: Option<Raw<'a>>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(borrow, default)]
    response_format: Option<ResponseFormatWire<'a>>,
    #[serde(borrow, default)]
    reasoning_effort: Option<&'a str>,
    #[serde(borrow, default)]
    user: Option<Raw<'a>>,
    #[serde(borrow, default)]
    safety_identifier: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct MessageWire<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Option<Raw<'a>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallWire<'a>>>,
    #[serde(borrow, default)]
    tool_call_id: Option<Raw<'a>>,
    /// The reasoning text of an earlier answer (a common extension).
    #[serde(borrow, default)]
    reasoning_content: Option<Raw<'a>>,
    /// Thinking blocks with their signatures, as corelay (and LiteLLM) return
    /// them, so that a client that sends them back replays them verbatim.
    #[serde(borrow, default)]
    thinking_blocks: Option<Vec<ThinkingWire<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallWire<'a> {
    #[serde(borrow)]
    id: Raw<'a>,
    #[serde(borrow)]
    function: FunctionWire<'a>,
    /// Gemini's thought signature, as corelay returns it.
    #[serde(borrow, default)]
    thought_signature: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct FunctionWire<'a> {
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow, default)]
    arguments: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ThinkingWire<'a> {
    #[serde(borrow, rename = "type")]
    type_: Cow<'a, str>,
    #[serde(borrow, default)]
    thinking: Option<Raw<'a>>,
    #[serde(borrow, default)]
    signature: Option<Raw<'a>>,
    #[serde(borrow, default)]
    data: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct PartWire<'a> {
    #[serde(borrow, rename = "type")]
    type_: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Raw<'a>>,
    #[serde(borrow, default)]
    image_url: Option<UrlWire<'a>>,
    #[serde(borrow, default)]
    file: Option<FileWire<'a>>,
    #[serde(borrow, default)]
    refusal: Option<Raw<'a>>,
    #[serde(borrow, default)]
    cache_control: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct UrlWire<'a> {
    #[serde(borrow)]
    url: Raw<'a>,
}

#[derive(Deserialize)]
struct FileWire<'a> {
    #[serde(borrow, default)]
    file_data: Option<Raw<'a>>,
    #[serde(borrow, default)]
    file_id: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ToolWire<'a> {
    #[serde(borrow, rename = "type", default)]
    type_: Option<&'a str>,
    #[serde(borrow, default)]
    function: Option<ToolFunctionWire<'a>>,
    #[serde(borrow, default)]
    cache_control: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ToolFunctionWire<'a> {
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow, default)]
    description: Option<Raw<'a>>,
    #[serde(borrow, default)]
    parameters: Option<Raw<'a>>,
    #[serde(default)]
    strict: Option<bool>,
}

#[derive(Deserialize)]
struct ResponseFormatWire<'a> {
    #[serde(borrow, rename = "type")]
    type_: Cow<'a, str>,
    #[serde(borrow, default)]
    json_schema: Option<JsonSchemaWire<'a>>,
}

#[derive(Deserialize)]
struct JsonSchemaWire<'a> {
    #[serde(borrow, default)]
    name: Option<Raw<'a>>,
    #[serde(borrow, default)]
    schema: Option<Raw<'a>>,
    #[serde(default)]
    strict: Option<bool>,
}

/// Parses a chat-completions body into the canonical form.
pub fn parse(body: &[u8]) -> Result<Request<'_>, Error> {
    let wire: Wire<'_> = sonic_rs::from_slice(body).map_err(Error::json)?;
    let model =
        wire.model.filter(Raw::is_string).ok_or(Error::invalid("model", "missing required parameter: 'model'"))?;
    let messages = wire.messages.ok_or(Error::invalid("messages", "missing required parameter: 'messages'"))?;
    if messages.is_empty() {
        return Err(Error::invalid("messages", "'messages' must contain at least one message"));
    }
    if wire.n.is_some_and(|n| n > 1) {
        return Err(Error::invalid("n", "this provider returns one choice per request; 'n' must be 1"));
    }
    let mut request = Request {
        model,
        stream: wire.stream.unwrap_or(false),
        include_usage: wire.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
        max_tokens: wire.max_completion_tokens.or(wire.max_tokens),
        temperature: wire.temperature,
        top_p: wire.top_p,
        top_k: wire.top_k,
        parallel_tool_calls: wire.parallel_tool_calls,
        user: wire.safety_identifier.or(wire.user).filter(Raw::is_string),
        ..Request::default()
    };
    request.stop = parse_stop(wire.stop)?;
    request.reasoning = wire.reasoning_effort.map(parse_effort).transpose()?;
    request.response_format = parse_response_format(wire.response_format)?;
    request.tools = parse_tools(wire.tools)?;
    request.tool_choice = wire.tool_choice.map(parse_tool_choice).transpose()?;
    request.messages.reserve(messages.len());
    for (i, message) in messages.into_iter().enumerate() {
        add_message(&mut request, i, message)?;
    }
    Ok(request)
}

fn parse_stop(stop: Option<Raw<'_>>) -> Result<Vec<Raw<'_>>, Error> {
    let Some(stop) = stop else { return Ok(Vec::new()) };
    if stop.is_null() {
        return Ok(Vec::new());
    }
    if stop.is_string() {
        return Ok(vec![stop]);
    }
    let list: Vec<Raw<'_>> = sonic_rs::from_str(stop.as_borrowed().ok_or_else(bad_stop)?).map_err(|_| bad_stop())?;
    if !list.iter().all(Raw::is_string) {
        return Err(bad_stop());
    }
    Ok(list)
}

fn bad_stop() -> Error {
    Error::invalid("stop", "'stop' must be a string or an array of strings")
}

fn parse_effort(effort: &str) -> Result<Reasoning, Error> {
    Ok(match effort {
        "none" => Reasoning::Disabled,
        "minimal" => Reasoning::Effort(Effort::Minimal),
        "low" => Reasoning::Effort(Effort::Low),
        "medium" => Reasoning::Effort(Effort::Medium),
        "high" | "xhigh" | "max" => Reasoning::Effort(Effort::High),
        _ => {
            return Err(Error::invalid(
                "reasoning_effort",
                "'reasoning_effort' must be none, minimal, low, medium or high",
            ));
        }
    })
}

fn parse_response_format<'a>(format: Option<ResponseFormatWire<'a>>) -> Result<ResponseFormat<'a>, Error> {
    let Some(format) = format else { return Ok(ResponseFormat::Text) };
    Ok(match &*format.type_ {
        "text" => ResponseFormat::Text,
        "json_object" => ResponseFormat::JsonObject,
        "json_schema" => {
            let spec = format.json_schema.ok_or(Error::invalid(
                "response_format.json_schema",
                "'response_format' of type json_schema needs 'json_schema'",
            ))?;
            let schema = spec.schema.filter(Raw::is_object).unwrap_or(Raw::from_json("{\"type\":\"object\"}"));
            ResponseFormat::JsonSchema { name: spec.name.filter(Raw::is_string), schema, strict: spec.strict }
        }
        _ => {
            return Err(Error::invalid(
                "response_format.type",
                "'response_format.type' must be text, json_object or json_schema",
            ));
        }
    })
}

fn parse_tools<'a>(tools: Option<Vec<ToolWire<'a>>>) -> Result<Vec<Tool<'a>>, Error> {
    let mut out = Vec::new();
    for (i, tool) in tools.unwrap_or_default().into_iter().enumerate() {
        if tool.type_.is_some_and(|t| t != "function") {
            return Err(Error::invalid(
                format!("tools[{i}].type"),
                "only function tools can be translated for this provider",
            ));
        }
        let function =
            tool.function.ok_or_else(|| Error::invalid(format!("tools[{i}].function"), "a tool needs 'function'"))?;
        if !function.name.is_string() {
            return Err(Error::invalid(format!("tools[{i}].function.name"), "a tool's name must be a string"));
        }
        out.push(Tool {
            name: function.name,
            description: function.description.filter(Raw::is_string),
            parameters: function.parameters.filter(Raw::is_object),
            strict: function.strict,
            cache_control: tool.cache_control,
        });
    }
    Ok(out)
}

fn parse_tool_choice(choice: Raw<'_>) -> Result<ToolChoice<'_>, Error> {
    if choice.is_string() {
        return match choice.string_body() {
            Some("auto") => Ok(ToolChoice::Auto),
            Some("required") => Ok(ToolChoice::Required),
            Some("none") => Ok(ToolChoice::None),
            _ => Err(Error::invalid("tool_choice", "'tool_choice' must be none, auto, required or a named function")),
        };
    }
    #[derive(Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        function: UrlLessFunction<'a>,
    }
    #[derive(Deserialize)]
    struct UrlLessFunction<'a> {
        #[serde(borrow)]
        name: Raw<'a>,
    }
    let named = choice.as_borrowed().and_then(|s| sonic_rs::from_str::<Named<'_>>(s).ok()).map(|n| n.function.name);
    match named.filter(Raw::is_string) {
        Some(name) => Ok(ToolChoice::Named(name)),
        None => Err(Error::invalid(
            "tool_choice",
            "'tool_choice' must be none, auto, required or {\"type\":\"function\",\"function\":{\"name\":...}}",
        )),
    }
}

fn add_message<'a>(request: &mut Request<'a>, i: usize, message: MessageWire<'a>) -> Result<(), Error> {
    match &*message.role {
        "system" | "developer" => {
            let content = message.content.ok_or_else(|| missing_content(i))?;
            for block in content_blocks(content, i)? {
                match block {
                    Block::Text { .. } => request.system.push(block),
                    _ => {
                        return Err(Error::invalid(format!("messages[{i}].content"), "system messages hold text only"));
                    }
                }
            }
        }
        "user" => {
            let content = message.content.ok_or_else(|| missing_content(i))?;
            let blocks = content_blocks(content, i)?;
            push_blocks(request, Role::User, blocks);
        }
        "assistant" => {
            let blocks = assistant_blocks(message, i)?;
            push_blocks(request, Role::Assistant, blocks);
        }
        "tool" => {
            let id = message.tool_call_id.filter(Raw::is_string).ok_or_else(|| {
                Error::invalid(format!("messages[{i}].tool_call_id"), "a tool message needs 'tool_call_id'")
            })?;
            let content = match message.content {
                None => ToolContent::Text(Raw::from_json("\"\"")),
                Some(c) if c.is_string() => ToolContent::Text(c),
                Some(c) => ToolContent::Blocks(content_blocks(c, i)?),
            };
            let block = Block::ToolResult { id, content, is_error: false, cache_control: None };
            push_tool_result(request, block);
        }
        other => {
            return Err(Error::invalid(format!("messages[{i}].role"), format!("unknown role '{other}'")));
        }
    }
    Ok(())
}

fn missing_content(i: usize) -> Error {
    Error::invalid(format!("messages[{i}].content"), "this message needs 'content'")
}

/// Appends blocks to the conversation, merging consecutive turns of the same
/// role (Anthropic, Gemini and Bedrock want strictly alternating turns).
fn push_blocks<'a>(request: &mut Request<'a>, role: Role, blocks: Vec<Block<'a>>) {
    match request.messages.last_mut() {
        Some(last) if last.role == role => last.blocks.extend(blocks),
        _ => request.messages.push(Message { role, blocks }),
    }
}

/// Tool results go first in their user turn, before any user text of it.
fn push_tool_result<'a>(request: &mut Request<'a>, block: Block<'a>) {
    match request.messages.last_mut() {
        Some(last) if last.role == Role::User => {
            let at = last.blocks.iter().take_while(|b| matches!(b, Block::ToolResult { .. })).count();
            last.blocks.insert(at, block);
        }
        _ => request.messages.push(Message { role: Role::User, blocks: vec![block] }),
    }
}

fn assistant_blocks<'a>(message: MessageWire<'a>, i: usize) -> Result<Vec<Block<'a>>, Error> {
    let mut blocks = Vec::new();
    if let Some(thinking) = message.thinking_blocks {
        for t in thinking {
            match (&*t.type_, t.thinking, t.data) {
                ("thinking", Some(text), _) => blocks.push(Block::Thinking { text, signature: t.signature }),
                ("redacted_thinking", _, Some(data)) => blocks.push(Block::RedactedThinking { data }),
                _ => {}
            }
        }
    } else if let Some(text) = message.reasoning_content.filter(|r| r.is_string() && !r.is_blank_string()) {
        blocks.push(Block::Thinking { text, signature: None });
    }
    if let Some(content) = message.content.filter(|c| !c.is_null()) {
        blocks.extend(content_blocks(content, i)?);
    }
    for (j, call) in message.tool_calls.unwrap_or_default().into_iter().enumerate() {
        if !call.id.is_string() || !call.function.name.is_string() {
            return Err(Error::invalid(
                format!("messages[{i}].tool_calls[{j}]"),
                "a tool call needs a string 'id' and 'function.name'",
            ));
        }
        let arguments = call.function.arguments.filter(Raw::is_string).unwrap_or(Raw::from_json("\"\""));
        blocks.push(Block::ToolCall {
            id: call.id,
            name: call.function.name,
            arguments: Arguments::Encoded(arguments),
            signature: call.thought_signature.filter(Raw::is_string),
        });
    }
    Ok(blocks)
}

/// A message's `content`: a string, or an array of parts. Empty text is
/// dropped (Anthropic refuses empty text blocks).
fn content_blocks<'a>(content: Raw<'a>, i: usize) -> Result<Vec<Block<'a>>, Error> {
    if content.is_string() {
        return Ok(if content.is_blank_string() { Vec::new() } else { vec![text_block(content)] });
    }
    if content.is_null() {
        return Ok(Vec::new());
    }
    if !content.is_array() {
        return Err(Error::invalid(
            format!("messages[{i}].content"),
            "'content' must be a string or an array of parts",
        ));
    }
    let parts: Vec<PartWire<'_>> = content
        .as_borrowed()
        .map(sonic_rs::from_str)
        .unwrap_or_else(|| Err(<sonic_rs::Error as serde::de::Error>::custom("content parts could not be read")))
        .map_err(|e| Error::invalid(format!("messages[{i}].content"), e.to_string()))?;
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.into_iter().enumerate() {
        if let Some(block) = part_block(part, i, j)? {
            blocks.push(block);
        }
    }
    Ok(blocks)
}

fn text_block(text: Raw<'_>) -> Block<'_> {
    Block::Text { text, cache_control: None }
}

fn part_block<'a>(part: PartWire<'a>, i: usize, j: usize) -> Result<Option<Block<'a>>, Error> {
    let param = || format!("messages[{i}].content[{j}]");
    match &*part.type_ {
        "text" => {
            let text =
                part.text.filter(Raw::is_string).ok_or_else(|| Error::invalid(param(), "a text part needs 'text'"))?;
            Ok((!text.is_blank_string()).then_some(Block::Text { text, cache_control: part.cache_control }))
        }
        "refusal" => Ok(part.refusal.filter(Raw::is_string).map(text_block)),
        "image_url" => {
            let url = part.image_url.map(|u| u.url).filter(Raw::is_string);
            let url = url.ok_or_else(|| Error::invalid(param(), "an image_url part needs 'image_url.url'"))?;
            let source = image_source(url).map_err(|m| Error::invalid(param(), m))?;
            Ok(Some(Block::Image { source, cache_control: part.cache_control }))
        }
        "file" => {
            let file = part.file.ok_or_else(|| Error::invalid(param(), "a file part needs 'file'"))?;
            if file.file_id.is_some() && file.file_data.is_none() {
                return Err(Error::invalid(
                    param(),
                    "files by 'file_id' live at OpenAI and cannot be sent to this provider; send 'file_data'",
                ));
            }
            let data = file
                .file_data
                .filter(Raw::is_string)
                .ok_or_else(|| Error::invalid(param(), "a file part needs 'file_data'"))?;
            match image_source(data).map_err(|m| Error::invalid(param(), m))? {
                source @ Source::Base64 { .. } => {
                    Ok(Some(Block::Document { source, cache_control: part.cache_control }))
                }
                Source::Url(_) => Err(Error::invalid(param(), "'file_data' must be a data: URL")),
            }
        }
        "input_audio" => Err(Error::invalid(param(), "audio input cannot be translated for this provider")),
        other => Err(Error::invalid(param(), format!("unknown content part type '{other}'"))),
    }
}

/// Splits a `data:<media type>;base64,<data>` URL, or keeps an http(s) URL.
pub fn image_source(url: Raw<'_>) -> Result<Source<'_>, &'static str> {
    let body = url.text().ok_or("the URL must be a string")?;
    if strip_prefix_ci(&body, "https://").is_some() || strip_prefix_ci(&body, "http://").is_some() {
        return Ok(Source::Url(url));
    }
    let Some(rest) = strip_prefix_ci(&body, "data:") else {
        return Err("an image URL must be a data: URL or an http(s) URL");
    };
    let Some(split) = rest.find(";base64,") else {
        return Err("a data URL must be base64: data:<media type>;base64,<data>");
    };
    let media_start = body.len() - rest.len();
    let (media, data) = (media_start..media_start + split, media_start + split + ";base64,".len()..body.len());
    Ok(match body {
        Cow::Borrowed(b) => Source::Base64 { media_type: Cow::Borrowed(&b[media]), data: Cow::Borrowed(&b[data]) },
        Cow::Owned(o) => {
            Source::Base64 { media_type: Cow::Owned(o[media].to_owned()), data: Cow::Owned(o[data].to_owned()) }
        }
    })
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    (s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()))
        .then(|| &s[prefix.len()..])
}

/// How an OpenAI-dialect provider wants a few fields written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavor {
    /// `max_completion_tokens` (OpenAI, Azure) or `max_tokens` (Ollama and
    /// most OpenAI-compatible servers).
    pub max_completion_tokens: bool,
    /// Whether the provider takes `stream_options.include_usage` (Azure's
    /// dated API versions do not).
    pub stream_usage: bool,
}

/// Writes a canonical request as a chat-completions body for `model`.
pub fn write(request: &Request<'_>, model: &str, flavor: Flavor, out: &mut Vec<u8>) -> Result<(), Error> {
    out.extend_from_slice(b"{\"model\":");
    write_json_string(out, model);
    out.extend_from_slice(b",\"messages\":[");
    let mut first = true;
    if !request.system.is_empty() {
        out.extend_from_slice(b"{\"role\":\"system\",\"content\":");
        write_joined(out, request.system.iter().filter_map(block_text), "\\n\\n");
        out.push(b'}');
        first = false;
    }
    for message in &request.messages {
        write_message(message, &mut first, out)?;
    }
    out.push(b']');
    write_options(request, flavor, out)?;
    out.push(b'}');
    Ok(())
}

fn block_text<'r>(block: &'r Block<'r>) -> Option<&'r Raw<'r>> {
    match block {
        Block::Text { text, .. } => Some(text),
        _ => None,
    }
}

fn comma(first: &mut bool, out: &mut Vec<u8>) {
    if !std::mem::take(first) {
        out.push(b',');
    }
}

fn write_message(message: &Message<'_>, first: &mut bool, out: &mut Vec<u8>) -> Result<(), Error> {
    match message.role {
        Role::User => {
            // Tool results become `tool` messages, before the turn's other content.
            for block in &message.blocks {
                if let Block::ToolResult { id, content, .. } = block {
                    comma(first, out);
                    out.extend_from_slice(b"{\"role\":\"tool\",\"tool_call_id\":");
                    out.extend_from_slice(id.json().as_bytes());
                    out.extend_from_slice(b",\"content\":");
                    write_tool_content(content, out);
                    out.push(b'}');
                }
            }
            // Images and documents of tool results have no place in a
            // `tool` message: they open the user message that follows
            // (`anthropic.md` §9).
            let carried = message.blocks.iter().flat_map(|b| match b {
                Block::ToolResult { content: ToolContent::Blocks(blocks), .. } => blocks.as_slice(),
                _ => &[],
            });
            let media = carried.filter(|b| matches!(b, Block::Image { .. } | Block::Document { .. }));
            let rest: Vec<&Block<'_>> =
                media.chain(message.blocks.iter().filter(|b| !matches!(b, Block::ToolResult { .. }))).collect();
            if !rest.is_empty() {
                comma(first, out);
                out.extend_from_slice(b"{\"role\":\"user\",\"content\":");
                write_parts(&rest, out)?;
                out.push(b'}');
            }
        }
        Role::Assistant => {
            comma(first, out);
            write_assistant(message, out);
        }
    }
    Ok(())
}

fn write_tool_content(content: &ToolContent<'_>, out: &mut Vec<u8>) {
    match content {
        ToolContent::Text(text) => out.extend_from_slice(text.json().as_bytes()),
        ToolContent::Blocks(blocks) => write_joined(out, blocks.iter().filter_map(block_text), "\\n"),
    }
}

/// User content: one string when it is a single text, else parts.
fn write_parts(blocks: &[&Block<'_>], out: &mut Vec<u8>) -> Result<(), Error> {
    if let [Block::Text { text, .. }] = blocks {
        out.extend_from_slice(text.json().as_bytes());
        return Ok(());
    }
    out.push(b'[');
    for (i, block) in blocks.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match block {
            Block::Text { text, .. } => {
                out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
                out.extend_from_slice(text.json().as_bytes());
                out.push(b'}');
            }
            Block::Image { source, .. } => {
                out.extend_from_slice(b"{\"type\":\"image_url\",\"image_url\":{\"url\":");
                write_source_url(source, out);
                out.extend_from_slice(b"}}");
            }
            Block::Document { source, .. } => {
                out.extend_from_slice(b"{\"type\":\"file\",\"file\":{\"file_data\":");
                write_source_url(source, out);
                out.extend_from_slice(b"}}");
            }
            _ => return Err(Error::invalid("messages", "this content cannot be sent to an OpenAI-dialect provider")),
        }
    }
    out.push(b']');
    Ok(())
}

fn write_source_url(source: &Source<'_>, out: &mut Vec<u8>) {
    match source {
        Source::Url(url) => out.extend_from_slice(url.json().as_bytes()),
        Source::Base64 { media_type, data } => {
            out.extend_from_slice(b"\"data:");
            crate::raw::write_escaped(out, media_type.as_bytes());
            out.extend_from_slice(b";base64,");
            crate::raw::write_escaped(out, data.as_bytes());
            out.push(b'"');
        }
    }
}

fn write_assistant(message: &Message<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"role\":\"assistant\",\"content\":");
    let texts: Vec<&Raw<'_>> = message.blocks.iter().filter_map(block_text).collect();
    if texts.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        write_joined(out, texts, "");
    }
    let mut calls = message.blocks.iter().filter(|b| matches!(b, Block::ToolCall { .. })).peekable();
    if calls.peek().is_some() {
        out.extend_from_slice(b",\"tool_calls\":[");
        for (i, call) in calls.enumerate() {
            let Block::ToolCall { id, name, arguments, .. } = call else { continue };
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"id\":");
            out.extend_from_slice(id.json().as_bytes());
            out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
            out.extend_from_slice(name.json().as_bytes());
            out.extend_from_slice(b",\"arguments\":");
            match arguments {
                Arguments::Encoded(s) => out.extend_from_slice(s.json().as_bytes()),
                Arguments::Object(o) => write_as_string(out, o),
            }
            out.extend_from_slice(b"}}");
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// The most stop sequences OpenAI accepts.
const STOP_SEQUENCES_MAX: usize = 4;

fn write_options(request: &Request<'_>, flavor: Flavor, out: &mut Vec<u8>) -> Result<(), Error> {
    if let Some(max) = request.max_tokens {
        out.extend_from_slice(if flavor.max_completion_tokens {
            b",\"max_completion_tokens\":"
        } else {
            b",\"max_tokens\":"
        });
        out.extend_from_slice(itoa::Buffer::new().format(max).as_bytes());
    }
    write_number(out, "temperature", request.temperature);
    write_number(out, "top_p", request.top_p);
    if !request.stop.is_empty() {
        if request.stop.len() > STOP_SEQUENCES_MAX {
            return Err(Error::invalid("stop_sequences", "this provider takes at most 4 stop sequences"));
        }
        out.extend_from_slice(b",\"stop\":[");
        for (i, s) in request.stop.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(s.json().as_bytes());
        }
        out.push(b']');
    }
    if request.stream {
        out.extend_from_slice(b",\"stream\":true");
        if flavor.stream_usage {
            out.extend_from_slice(b",\"stream_options\":{\"include_usage\":true}");
        }
    }
    write_tools(request, out);
    match &request.response_format {
        ResponseFormat::Text => {}
        ResponseFormat::JsonObject => out.extend_from_slice(b",\"response_format\":{\"type\":\"json_object\"}"),
        ResponseFormat::JsonSchema { name, schema, strict } => {
            out.extend_from_slice(b",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":");
            out.extend_from_slice(name.as_ref().map_or("\"response\"", Raw::json).as_bytes());
            out.extend_from_slice(b",\"schema\":");
            out.extend_from_slice(schema.json().as_bytes());
            if let Some(strict) = strict {
                out.extend_from_slice(if *strict { b",\"strict\":true" } else { b",\"strict\":false" });
            }
            out.extend_from_slice(b"}}");
        }
    }
    if let Some(user) = &request.user {
        out.extend_from_slice(b",\"user\":");
        out.extend_from_slice(user.json().as_bytes());
    }
    Ok(())
}

fn write_tools(request: &Request<'_>, out: &mut Vec<u8>) {
    if !request.tools.is_empty() {
        out.extend_from_slice(b",\"tools\":[");
        for (i, tool) in request.tools.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"type\":\"function\",\"function\":{");
            tool.write_fields(b"parameters", out);
            out.extend_from_slice(b"}}");
        }
        out.push(b']');
    }
    match &request.tool_choice {
        None => {}
        Some(ToolChoice::Auto) => out.extend_from_slice(b",\"tool_choice\":\"auto\""),
        Some(ToolChoice::Required) => out.extend_from_slice(b",\"tool_choice\":\"required\""),
        Some(ToolChoice::None) => out.extend_from_slice(b",\"tool_choice\":\"none\""),
        Some(ToolChoice::Named(name)) => {
            out.extend_from_slice(b",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":");
            out.extend_from_slice(name.json().as_bytes());
            out.extend_from_slice(b"}}");
        }
    }
    if request.parallel_tool_calls == Some(false) && !request.tools.is_empty() {
        out.extend_from_slice(b",\"parallel_tool_calls\":false");
    }
}

/// Writes `,"name":value` for a number the client gave.
pub(crate) fn write_number(out: &mut Vec<u8>, name: &str, value: Option<f64>) {
    if let Some(v) = value.filter(|v| v.is_finite()) {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        write_decimal(out, v);
    }
}

/// Writes a number in its shortest form. Sampling parameters almost always
/// have at most two decimals (0.7, 0.95, 1): those are written with integer
/// arithmetic, which gives the same text as `Display` (a decimal with two
/// digits that parsed into this f64 is its shortest round-trip form) at a
/// tenth of the cost; anything else goes through `Display`.
fn write_decimal(out: &mut Vec<u8>, v: f64) {
    let hundredths = (v * 100.0).round();
    // Exactly this f64 when read back: then the two-decimal text is it.
    if (0.0..1e13).contains(&hundredths) && hundredths / 100.0 == v {
        let hundredths = hundredths as u64;
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(n.format(hundredths / 100).as_bytes());
        let cents = hundredths % 100;
        if cents != 0 {
            out.push(b'.');
            out.push(b'0' + (cents / 10) as u8);
            if !cents.is_multiple_of(10) {
                out.push(b'0' + (cents % 10) as u8);
            }
        }
        return;
    }
    use std::io::Write;
    let _ = write!(out, "{v}");
}

#[cfg(test)]
mod tests {
    use super::write_decimal;

    #[test]
    fn decimals_are_written_as_display_would() {
        for v in [0.0, 0.3, 0.7, 0.95, 1.0, 1.5, 2.0, 0.05, 0.123, 1e-7, 12345.25, 0.1 + 0.2] {
            let mut out = Vec::new();
            write_decimal(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string(), "{v}");
        }
    }
}
