//! OpenAI chat-completions requests, to and from the canonical form.
//!
//! Parsing walks the body once with the validating [`Reader`] and builds the
//! canonical form as it goes; every piece of content is kept as a [`Raw`]
//! slice of the body. Writing copies those slices into the new body. The
//! canonical form hoists system messages and folds `tool` messages into user
//! turns; writing undoes both. Images and documents inside tool results
//! (Anthropic allows them, OpenAI's `tool` messages hold text only) open the
//! user message after the `tool` messages.
//!
//! What is refused and what is let through follows what OpenAI accepts:
//! unknown keys are skipped (checked as JSON, never read), `null` stands for
//! an absent optional field, and a known key given twice at the top level or
//! in a message is refused, since a reader downstream might take the other
//! copy.

use std::borrow::Cow;

use crate::canon::{
    Arguments, Block, Effort, Message, Reasoning, Request, ResponseFormat, Role, Source, Tool, ToolChoice, ToolContent,
};
use crate::error::Error;
use crate::json::{Reader, as_bool, as_f64, as_u64};
use crate::raw::{Raw, write_as_string, write_joined, write_json_string};

/// Parses a chat-completions body into the canonical form.
pub fn parse(body: &[u8]) -> Result<Request<'_>, Error> {
    let mut reader = Reader::new(body)?;
    let r = &mut reader;
    if r.peek() != Some(b'{') {
        r.skip()?;
        return Err(Error::Json("the request body must be a JSON object".into()));
    }
    let mut request = Request::default();
    let mut model = None;
    let mut messages = None;
    let (mut max_tokens, mut max_completion_tokens, mut n) = (None, None, None);
    let (mut user, mut safety_identifier) = (None, None);
    let mut seen = Seen::default();
    let mut members = r.object()?;
    while let Some(key) = members.next(r)? {
        match &*key {
            "model" => {
                seen.once(0, &key)?;
                model = optional(r)?;
            }
            "messages" => {
                seen.once(1, &key)?;
                messages = read_messages(r, &mut request)?;
            }
            "stream" => {
                seen.once(2, &key)?;
                request.stream = boolean(r, "stream")?.unwrap_or(false);
            }
            "stream_options" => {
                seen.once(3, &key)?;
                request.include_usage = read_stream_options(r)?;
            }
            "temperature" => {
                seen.once(4, &key)?;
                request.temperature = number(r, "temperature")?;
            }
            "top_p" => {
                seen.once(5, &key)?;
                request.top_p = number(r, "top_p")?;
            }
            "top_k" => {
                seen.once(6, &key)?;
                request.top_k = count(r, "top_k")?;
            }
            "max_tokens" => {
                seen.once(7, &key)?;
                max_tokens = count(r, "max_tokens")?;
            }
            "max_completion_tokens" => {
                seen.once(8, &key)?;
                max_completion_tokens = count(r, "max_completion_tokens")?;
            }
            "n" => {
                seen.once(9, &key)?;
                n = count(r, "n")?;
            }
            "stop" => {
                seen.once(10, &key)?;
                request.stop = read_stop(r)?;
            }
            "tools" => {
                seen.once(11, &key)?;
                request.tools = read_tools(r)?;
            }
            "tool_choice" => {
                seen.once(12, &key)?;
                request.tool_choice = read_tool_choice(r)?;
            }
            "parallel_tool_calls" => {
                seen.once(13, &key)?;
                request.parallel_tool_calls = boolean(r, "parallel_tool_calls")?;
            }
            "response_format" => {
                seen.once(14, &key)?;
                request.response_format = read_response_format(r)?;
            }
            "reasoning_effort" => {
                seen.once(15, &key)?;
                request.reasoning = match text(r, || "reasoning_effort".into())? {
                    None => None,
                    Some(effort) => Some(parse_effort(&effort)?),
                };
            }
            "user" => {
                seen.once(16, &key)?;
                user = optional(r)?;
            }
            "safety_identifier" => {
                seen.once(17, &key)?;
                safety_identifier = optional(r)?;
            }
            _ => r.skip()?,
        }
    }
    r.finish()?;
    request.model =
        model.filter(Raw::is_string).ok_or(Error::invalid("model", "missing required parameter: 'model'"))?;
    let count = messages.ok_or(Error::invalid("messages", "missing required parameter: 'messages'"))?;
    if count == 0 {
        return Err(Error::invalid("messages", "'messages' must contain at least one message"));
    }
    if n.is_some_and(|n| n > 1) {
        return Err(Error::invalid("n", "this provider returns one choice per request; 'n' must be 1"));
    }
    request.max_tokens = max_completion_tokens.or(max_tokens);
    request.user = safety_identifier.or(user).filter(Raw::is_string);
    Ok(request)
}

/// The known keys of one object already read, to refuse a second copy.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    fn once(&mut self, field: u32, key: &str) -> Result<(), Error> {
        let bit = 1 << field;
        if self.0 & bit != 0 {
            return Err(Error::invalid(key.to_owned(), format!("'{key}' is given twice")));
        }
        self.0 |= bit;
        Ok(())
    }
}

/// The next value, `None` for `null`.
fn optional<'a>(r: &mut Reader<'a>) -> Result<Option<Raw<'a>>, Error> {
    if r.null()? {
        return Ok(None);
    }
    r.value().map(Some)
}

/// Whether an object comes next: `false` for `null`; an error naming
/// `param` for anything else.
fn object_or_null(r: &mut Reader<'_>, param: impl FnOnce() -> String) -> Result<bool, Error> {
    match r.peek() {
        Some(b'{') => Ok(true),
        Some(b'n') => r.null().map(|_| false),
        _ => {
            let param = param();
            Err(Error::invalid(param.clone(), format!("'{param}' must be an object")))
        }
    }
}

/// As [`object_or_null`], for arrays.
fn array_or_null(r: &mut Reader<'_>, param: impl FnOnce() -> String) -> Result<bool, Error> {
    match r.peek() {
        Some(b'[') => Ok(true),
        Some(b'n') => r.null().map(|_| false),
        _ => {
            let param = param();
            Err(Error::invalid(param.clone(), format!("'{param}' must be an array")))
        }
    }
}

fn boolean(r: &mut Reader<'_>, param: &'static str) -> Result<Option<bool>, Error> {
    let value = r.value()?;
    as_bool(&value).ok_or_else(|| Error::invalid(param, format!("'{param}' must be a boolean")))
}

fn number(r: &mut Reader<'_>, param: &'static str) -> Result<Option<f64>, Error> {
    let value = r.value()?;
    as_f64(&value).ok_or_else(|| Error::invalid(param, format!("'{param}' must be a number")))
}

fn count(r: &mut Reader<'_>, param: &'static str) -> Result<Option<u64>, Error> {
    let value = r.value()?;
    as_u64(&value).ok_or_else(|| Error::invalid(param, format!("'{param}' must be a non-negative integer")))
}

/// A string's decoded text, `None` for `null`; an error naming `param` for
/// anything else.
fn text<'a>(r: &mut Reader<'a>, param: impl FnOnce() -> String) -> Result<Option<Cow<'a, str>>, Error> {
    let Some(value) = optional(r)? else { return Ok(None) };
    match value.is_string().then(|| value.text()).flatten() {
        Some(text) => Ok(Some(text)),
        None => {
            let param = param();
            Err(Error::invalid(param.clone(), format!("'{param}' must be a string")))
        }
    }
}

/// Reads `messages` into the request and returns how many there were, or
/// `None` for `null`.
fn read_messages<'a>(r: &mut Reader<'a>, request: &mut Request<'a>) -> Result<Option<usize>, Error> {
    if !array_or_null(r, || "messages".into())? {
        return Ok(None);
    }
    request.messages.reserve(8);
    let mut i = 0;
    let mut elements = r.array()?;
    while elements.next(r)? {
        read_message(r, request, i)?;
        i += 1;
    }
    Ok(Some(i))
}

fn read_stream_options(r: &mut Reader<'_>) -> Result<bool, Error> {
    let mut include_usage = None;
    if object_or_null(r, || "stream_options".into())? {
        let mut members = r.object()?;
        while let Some(key) = members.next(r)? {
            match &*key {
                "include_usage" => include_usage = boolean(r, "stream_options.include_usage")?,
                _ => r.skip()?,
            }
        }
    }
    Ok(include_usage.unwrap_or(false))
}

fn read_stop<'a>(r: &mut Reader<'a>) -> Result<Vec<Raw<'a>>, Error> {
    let mut stop = Vec::new();
    match r.peek() {
        Some(b'[') => {
            let mut elements = r.array()?;
            while elements.next(r)? {
                let s = r.value()?;
                if !s.is_string() {
                    return Err(bad_stop());
                }
                stop.push(s);
            }
        }
        _ => match optional(r)? {
            None => {}
            Some(s) if s.is_string() => stop.push(s),
            Some(_) => return Err(bad_stop()),
        },
    }
    Ok(stop)
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

fn read_response_format<'a>(r: &mut Reader<'a>) -> Result<ResponseFormat<'a>, Error> {
    if !object_or_null(r, || "response_format".into())? {
        return Ok(ResponseFormat::Text);
    }
    let mut kind = None;
    let mut schema_spec = None;
    let mut members = r.object()?;
    while let Some(key) = members.next(r)? {
        match &*key {
            "type" => kind = text(r, || "response_format.type".into())?,
            "json_schema" => schema_spec = read_json_schema(r)?,
            _ => r.skip()?,
        }
    }
    Ok(match kind.as_deref() {
        Some("text") => ResponseFormat::Text,
        Some("json_object") => ResponseFormat::JsonObject,
        Some("json_schema") => schema_spec.ok_or(Error::invalid(
            "response_format.json_schema",
            "'response_format' of type json_schema needs 'json_schema'",
        ))?,
        _ => {
            return Err(Error::invalid(
                "response_format.type",
                "'response_format.type' must be text, json_object or json_schema",
            ));
        }
    })
}

/// `response_format.json_schema`, as the format it asks for.
fn read_json_schema<'a>(r: &mut Reader<'a>) -> Result<Option<ResponseFormat<'a>>, Error> {
    if !object_or_null(r, || "response_format.json_schema".into())? {
        return Ok(None);
    }
    let (mut name, mut schema, mut strict) = (None, None, None);
    let mut members = r.object()?;
    while let Some(key) = members.next(r)? {
        match &*key {
            "name" => name = optional(r)?,
            "schema" => schema = optional(r)?,
            "strict" => strict = boolean(r, "response_format.json_schema.strict")?,
            _ => r.skip()?,
        }
    }
    let schema = schema.filter(Raw::is_object).unwrap_or(Raw::from_json("{\"type\":\"object\"}"));
    Ok(Some(ResponseFormat::JsonSchema { name: name.filter(Raw::is_string), schema, strict }))
}

fn read_tools<'a>(r: &mut Reader<'a>) -> Result<Vec<Tool<'a>>, Error> {
    let mut tools = Vec::new();
    if !array_or_null(r, || "tools".into())? {
        return Ok(tools);
    }
    let mut elements = r.array()?;
    while elements.next(r)? {
        let i = tools.len();
        if r.peek() != Some(b'{') {
            return Err(Error::invalid(format!("tools[{i}]"), "a tool must be an object"));
        }
        let (mut kind, mut function, mut cache_control) = (None, None, None);
        let mut members = r.object()?;
        while let Some(key) = members.next(r)? {
            match &*key {
                "type" => kind = text(r, || format!("tools[{i}].type"))?,
                "function" => function = read_tool_function(r, i)?,
                "cache_control" => cache_control = optional(r)?,
                _ => r.skip()?,
            }
        }
        if kind.is_some_and(|t| t != "function") {
            return Err(Error::invalid(
                format!("tools[{i}].type"),
                "only function tools can be translated for this provider",
            ));
        }
        let mut tool =
            function.ok_or_else(|| Error::invalid(format!("tools[{i}].function"), "a tool needs 'function'"))?;
        tool.cache_control = cache_control;
        tools.push(tool);
    }
    Ok(tools)
}

fn read_tool_function<'a>(r: &mut Reader<'a>, i: usize) -> Result<Option<Tool<'a>>, Error> {
    if !object_or_null(r, || format!("tools[{i}].function"))? {
        return Ok(None);
    }
    let mut tool =
        Tool { name: Raw::default(), description: None, parameters: None, strict: None, cache_control: None };
    let mut name = None;
    let mut members = r.object()?;
    while let Some(key) = members.next(r)? {
        match &*key {
            "name" => name = Some(r.value()?),
            "description" => tool.description = optional(r)?.filter(Raw::is_string),
            "parameters" => tool.parameters = optional(r)?.filter(Raw::is_object),
            "strict" => tool.strict = boolean(r, "tools.function.strict")?,
            _ => r.skip()?,
        }
    }
    tool.name = name
        .filter(Raw::is_string)
        .ok_or_else(|| Error::invalid(format!("tools[{i}].function.name"), "a tool's name must be a string"))?;
    Ok(Some(tool))
}

fn read_tool_choice<'a>(r: &mut Reader<'a>) -> Result<Option<ToolChoice<'a>>, Error> {
    let bad = || {
        Error::invalid(
            "tool_choice",
            "'tool_choice' must be none, auto, required or {\"type\":\"function\",\"function\":{\"name\":...}}",
        )
    };
    match r.peek() {
        Some(b'{') => {
            let mut name = None;
            let mut members = r.object()?;
            while let Some(key) = members.next(r)? {
                match &*key {
                    "function" if r.peek() == Some(b'{') => {
                        let mut function = r.object()?;
                        while let Some(key) = function.next(r)? {
                            match &*key {
                                "name" => name = Some(r.value()?),
                                _ => r.skip()?,
                            }
                        }
                    }
                    "function" => return Err(bad()),
                    _ => r.skip()?,
                }
            }
            name.filter(Raw::is_string).map(|name| Some(ToolChoice::Named(name))).ok_or_else(bad)
        }
        _ => match optional(r)? {
            None => Ok(None),
            Some(choice) => match choice.string_body() {
                Some("auto") => Ok(Some(ToolChoice::Auto)),
                Some("required") => Ok(Some(ToolChoice::Required)),
                Some("none") => Ok(Some(ToolChoice::None)),
                _ => Err(bad()),
            },
        },
    }
}

/// A message's `content` as read: a string literal, or its parts as blocks
/// (empty text dropped).
enum Content<'a> {
    Text(Raw<'a>),
    Blocks(Vec<Block<'a>>),
}

impl<'a> Content<'a> {
    /// The content as blocks. Blank text is dropped (Anthropic refuses empty
    /// text blocks).
    fn into_blocks(self) -> Vec<Block<'a>> {
        match self {
            Content::Text(text) if text.is_blank_string() => Vec::new(),
            Content::Text(text) => vec![text_block(text)],
            Content::Blocks(blocks) => blocks,
        }
    }
}

/// One message's fields, read in whatever order they came.
#[derive(Default)]
struct MessageFields<'a> {
    role: Option<Cow<'a, str>>,
    content: Option<Content<'a>>,
    tool_calls: Vec<Block<'a>>,
    tool_call_id: Option<Raw<'a>>,
    reasoning_content: Option<Raw<'a>>,
    thinking_blocks: Option<Vec<Block<'a>>>,
}

fn read_message<'a>(r: &mut Reader<'a>, request: &mut Request<'a>, i: usize) -> Result<(), Error> {
    if r.peek() != Some(b'{') {
        return Err(Error::invalid(format!("messages[{i}]"), "a message must be an object"));
    }
    let mut message = MessageFields::default();
    let mut seen = Seen::default();
    let mut members = r.object()?;
    while let Some(key) = members.next(r)? {
        match &*key {
            "role" => {
                seen.once(0, &key)?;
                message.role = text(r, || format!("messages[{i}].role"))?;
            }
            "content" => {
                seen.once(1, &key)?;
                message.content = read_content(r, i)?;
            }
            "tool_calls" => {
                seen.once(2, &key)?;
                read_tool_calls(r, i, &mut message.tool_calls)?;
            }
            "tool_call_id" => {
                seen.once(3, &key)?;
                message.tool_call_id = optional(r)?;
            }
            "reasoning_content" => {
                seen.once(4, &key)?;
                message.reasoning_content = optional(r)?;
            }
            "thinking_blocks" => {
                seen.once(5, &key)?;
                message.thinking_blocks = read_thinking_blocks(r, i)?;
            }
            _ => r.skip()?,
        }
    }
    add_message(request, i, message)
}

fn read_content<'a>(r: &mut Reader<'a>, i: usize) -> Result<Option<Content<'a>>, Error> {
    match r.peek() {
        Some(b'"') => Ok(Some(Content::Text(r.value()?))),
        Some(b'n') => r.null().map(|_| None),
        Some(b'[') => {
            let mut blocks = Vec::new();
            let mut j = 0;
            let mut elements = r.array()?;
            while elements.next(r)? {
                if let Some(block) = read_part(r, i, j)? {
                    blocks.push(block);
                }
                j += 1;
            }
            Ok(Some(Content::Blocks(blocks)))
        }
        _ => Err(Error::invalid(format!("messages[{i}].content"), "'content' must be a string or an array of parts")),
    }
}

fn read_tool_calls<'a>(r: &mut Reader<'a>, i: usize, calls: &mut Vec<Block<'a>>) -> Result<(), Error> {
    if !array_or_null(r, || format!("messages[{i}].tool_calls"))? {
        return Ok(());
    }
    let mut elements = r.array()?;
    while elements.next(r)? {
        let j = calls.len();
        let bad = || {
            Error::invalid(
                format!("messages[{i}].tool_calls[{j}]"),
                "a tool call needs a string 'id' and 'function.name'",
            )
        };
        if r.peek() != Some(b'{') {
            return Err(bad());
        }
        let (mut id, mut name, mut arguments, mut signature) = (None, None, None, None);
        let mut members = r.object()?;
        while let Some(key) = members.next(r)? {
            match &*key {
                "id" => id = Some(r.value()?),
                "function" if r.peek() == Some(b'{') => {
                    let mut function = r.object()?;
                    while let Some(key) = function.next(r)? {
                        match &*key {
                            "name" => name = Some(r.value()?),
                            "arguments" => arguments = optional(r)?,
                            _ => r.skip()?,
                        }
                    }
                }
                "function" => return Err(bad()),
                "thought_signature" => signature = optional(r)?,
                _ => r.skip()?,
            }
        }
        let (Some(id), Some(name)) = (id.filter(Raw::is_string), name.filter(Raw::is_string)) else {
            return Err(bad());
        };
        let arguments = arguments.filter(Raw::is_string).unwrap_or(Raw::from_json("\"\""));
        calls.push(Block::ToolCall {
            id,
            name,
            arguments: Arguments::Encoded(arguments),
            signature: signature.filter(Raw::is_string),
        });
    }
    Ok(())
}

/// `thinking_blocks`, as corelay (and LiteLLM) return them, so that a
/// client that sends them back replays them verbatim. Blocks of other types
/// are skipped.
fn read_thinking_blocks<'a>(r: &mut Reader<'a>, i: usize) -> Result<Option<Vec<Block<'a>>>, Error> {
    if !array_or_null(r, || format!("messages[{i}].thinking_blocks"))? {
        return Ok(None);
    }
    let mut blocks = Vec::new();
    let mut elements = r.array()?;
    while elements.next(r)? {
        let param = || format!("messages[{i}].thinking_blocks");
        if r.peek() != Some(b'{') {
            return Err(Error::invalid(param(), "a thinking block must be an object"));
        }
        let (mut kind, mut thinking, mut signature, mut data) = (None, None, None, None);
        let mut members = r.object()?;
        while let Some(key) = members.next(r)? {
            match &*key {
                "type" => kind = text(r, || format!("{}.type", param()))?,
                "thinking" => thinking = optional(r)?,
                "signature" => signature = optional(r)?,
                "data" => data = optional(r)?,
                _ => r.skip()?,
            }
        }
        match (kind.as_deref(), thinking, data) {
            (Some("thinking"), Some(text), _) => blocks.push(Block::Thinking { text, signature }),
            (Some("redacted_thinking"), _, Some(data)) => blocks.push(Block::RedactedThinking { data }),
            (None, ..) => return Err(Error::invalid(param(), "a thinking block needs 'type'")),
            _ => {}
        }
    }
    Ok(Some(blocks))
}

fn add_message<'a>(request: &mut Request<'a>, i: usize, message: MessageFields<'a>) -> Result<(), Error> {
    let role = message.role.ok_or_else(|| Error::invalid(format!("messages[{i}].role"), "a message needs 'role'"))?;
    match &*role {
        "system" | "developer" => {
            let content = message.content.ok_or_else(|| missing_content(i))?;
            for block in content.into_blocks() {
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
            push_blocks(request, Role::User, content.into_blocks());
        }
        "assistant" => {
            let mut blocks = Vec::new();
            let reasoning = message.reasoning_content.filter(|r| r.is_string() && !r.is_blank_string());
            match (message.thinking_blocks, reasoning) {
                // A streamed answer reassembled: the text came as
                // `reasoning_content` deltas, the signature as a block
                // with empty text.
                (Some(thinking), Some(text)) if matches!(thinking.as_slice(), [Block::Thinking { text: t, .. }] if t.is_blank_string()) =>
                {
                    let signature = match thinking.into_iter().next() {
                        Some(Block::Thinking { signature, .. }) => signature,
                        _ => None,
                    };
                    blocks.push(Block::Thinking { text, signature });
                }
                (Some(thinking), _) => blocks.extend(thinking),
                (None, Some(text)) => blocks.push(Block::Thinking { text, signature: None }),
                (None, None) => {}
            }
            if let Some(content) = message.content {
                if blocks.is_empty() && message.tool_calls.is_empty() {
                    blocks = content.into_blocks();
                } else {
                    blocks.extend(content.into_blocks());
                }
            }
            blocks.extend(message.tool_calls);
            push_blocks(request, Role::Assistant, blocks);
        }
        "tool" => {
            let id = message.tool_call_id.filter(Raw::is_string).ok_or_else(|| {
                Error::invalid(format!("messages[{i}].tool_call_id"), "a tool message needs 'tool_call_id'")
            })?;
            let content = match message.content {
                None => ToolContent::Text(Raw::from_json("\"\"")),
                Some(Content::Text(text)) => ToolContent::Text(text),
                Some(Content::Blocks(blocks)) => ToolContent::Blocks(blocks),
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

fn text_block(text: Raw<'_>) -> Block<'_> {
    Block::Text { text, cache_control: None }
}

/// One content part's fields, read in whatever order they came.
#[derive(Default)]
struct PartFields<'a> {
    kind: Option<Cow<'a, str>>,
    text: Option<Raw<'a>>,
    image_url: Option<Raw<'a>>,
    file_data: Option<Raw<'a>>,
    file_id: Option<Raw<'a>>,
    has_file: bool,
    refusal: Option<Raw<'a>>,
    cache_control: Option<Raw<'a>>,
}

fn read_part<'a>(r: &mut Reader<'a>, i: usize, j: usize) -> Result<Option<Block<'a>>, Error> {
    let param = || format!("messages[{i}].content[{j}]");
    if r.peek() != Some(b'{') {
        return Err(Error::invalid(param(), "a content part must be an object"));
    }
    let mut part = PartFields::default();
    let mut members = r.object()?;
    while let Some(key) = members.next(r)? {
        match &*key {
            "type" => part.kind = text(r, || format!("{}.type", param()))?,
            "text" => part.text = optional(r)?,
            "image_url" => {
                if object_or_null(r, || format!("{}.image_url", param()))? {
                    let mut url = r.object()?;
                    while let Some(key) = url.next(r)? {
                        match &*key {
                            "url" => part.image_url = Some(r.value()?),
                            _ => r.skip()?,
                        }
                    }
                }
            }
            "file" => {
                if object_or_null(r, || format!("{}.file", param()))? {
                    part.has_file = true;
                    let mut file = r.object()?;
                    while let Some(key) = file.next(r)? {
                        match &*key {
                            "file_data" => part.file_data = optional(r)?,
                            "file_id" => part.file_id = optional(r)?,
                            _ => r.skip()?,
                        }
                    }
                }
            }
            "refusal" => part.refusal = optional(r)?,
            "cache_control" => part.cache_control = optional(r)?,
            _ => r.skip()?,
        }
    }
    part_block(part, param)
}

fn part_block<'a>(part: PartFields<'a>, param: impl Fn() -> String) -> Result<Option<Block<'a>>, Error> {
    let kind = part.kind.ok_or_else(|| Error::invalid(param(), "a content part needs 'type'"))?;
    match &*kind {
        "text" => {
            let text =
                part.text.filter(Raw::is_string).ok_or_else(|| Error::invalid(param(), "a text part needs 'text'"))?;
            Ok((!text.is_blank_string()).then_some(Block::Text { text, cache_control: part.cache_control }))
        }
        "refusal" => Ok(part.refusal.filter(Raw::is_string).map(text_block)),
        "image_url" => {
            let url = part.image_url.filter(Raw::is_string);
            let url = url.ok_or_else(|| Error::invalid(param(), "an image_url part needs 'image_url.url'"))?;
            let source = image_source(url).map_err(|m| Error::invalid(param(), m))?;
            Ok(Some(Block::Image { source, cache_control: part.cache_control }))
        }
        "file" => {
            if !part.has_file {
                return Err(Error::invalid(param(), "a file part needs 'file'"));
            }
            if part.file_id.is_some() && part.file_data.is_none() {
                return Err(Error::invalid(
                    param(),
                    "files by 'file_id' live at OpenAI and cannot be sent to this provider; send 'file_data'",
                ));
            }
            let data = part
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
