//! Gemini `generateContent` request bodies, written from the canonical form.
//!
//! The model is not in the body: it is in the URL ([`super::path`]), and so
//! is streaming (`:streamGenerateContent?alt=sse`). Content (text, image
//! data, schemas, arguments) is copied from the client's request untouched.
//!
//! Policies, where the dialects disagree (each is a test in `test_data`):
//! - System and developer messages, wherever they were, become the parts of
//!   `systemInstruction`, in order (cases 7, 8): Gemini has no system turn.
//! - Same-role neighbours are merged into one content and empty turns are
//!   left out (case 10); user turns are `user`, assistant turns `model`.
//! - Tool results become `functionResponse` parts of a user turn, in the
//!   order of their calls (case 2): Gemini matches responses to calls by
//!   name, and calls of the same name by position. OpenAI's `tool` messages
//!   carry no name: it is recovered from the assistant turn that made the
//!   call with that id, and an id no earlier call has is a 400 (case 23).
//!   No ids are sent, as the Developer API matches by name.
//! - A tool result whose text is a JSON object is sent as that object; any
//!   other text becomes `{"output": text}`, and an error result
//!   (Anthropic's `is_error`) `{"error": text}` (case 24). Images and
//!   documents inside a tool result are refused with a 400.
//! - Tool-call arguments that are not a JSON object are refused with a 400
//!   naming the message, as for Anthropic; empty arguments are `{}`
//!   (case 25).
//! - Images: base64 becomes `inlineData` for PNG, JPEG, WebP, HEIC and HEIF
//!   (others are a 400, case 5); PDFs too. An http(s) URL becomes `fileData`
//!   only when it is a Files API URI (`https://generativelanguage.googleapis.com/…`,
//!   sent without `mimeType`, which the Files API knows); any other URL is a
//!   400 asking for a data: URL, because Gemini does not fetch arbitrary
//!   URLs and the gateway does not download on a client's behalf (case 6).
//! - Thought signatures of function calls are replayed as `thoughtSignature`
//!   on the `functionCall` part (case 26; Gemini 3 refuses a replayed call
//!   without it). Thinking blocks of earlier answers are not sent: Gemini
//!   needs only the signatures, and another provider's reasoning would be
//!   invalid for it.
//! - `reasoning_effort` becomes `thinkingBudget` (Gemini 2.5: minimal 128,
//!   low 1,024, medium 8,192, high 24,576 tokens, `none` 0, adaptive -1) or
//!   `thinkingLevel` (Gemini 3: `none` is `MINIMAL`, which is as low as it
//!   goes), by [`Options::thinking`], with `includeThoughts` so that the
//!   reasoning comes back (case 27).
//! - At most 5 stop sequences; more is a 400 (case 18). Empty ones are
//!   dropped.
//! - `temperature` passes as it is: Gemini takes 0–2 like OpenAI (case 20).
//! - JSON mode is `responseMimeType: application/json`; a schema goes in
//!   `responseJsonSchema` untouched (case 28). Tool parameters go in
//!   `parametersJsonSchema`, also plain JSON Schema, so keywords that
//!   Gemini's OpenAPI-subset `parameters` refuses pass.
//! - `parallel_tool_calls`, `user` and Anthropic's `cache_control` are
//!   dropped: Gemini has none of them (case 22). `n > 1` is refused by the front door's parser, since the
//!   canonical answer has one choice, so `candidateCount` is never sent
//!   (case 31).
//! - A conversation that ends with an assistant turn (a prefill) is sent as
//!   it is, ending with a `model` content (case 33; how Gemini continues it
//!   is not documented). A conversation with nothing left to send is a 400.

use crate::Written;
use crate::canon::{Arguments, Block, Effort, Message, Reasoning, Request, ResponseFormat, Role, Source, ToolChoice};
use crate::canon::{Tool, ToolContent};
use crate::error::Error;
use crate::raw::{Raw, arguments_object, write_joined, write_json_string};

/// How a deployment's models take reasoning settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thinking {
    /// `thinkingBudget` in tokens (Gemini 2.5).
    Budget,
    /// `thinkingLevel` (Gemini 3).
    Level,
}

/// How a request is written for a Gemini deployment.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub thinking: Thinking,
}

/// The most stop sequences Gemini accepts.
pub const STOP_SEQUENCES_MAX: usize = 5;

/// The image types Gemini reads.
const IMAGE_MEDIA_TYPES: [&str; 5] = ["image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"];

/// Where Files API URIs live: the only URLs Gemini reads.
const FILES_API_PREFIX: &str = "https://generativelanguage.googleapis.com/";

/// Writes a canonical request as a `generateContent` body.
pub fn write(request: &Request<'_>, options: Options, out: &mut Vec<u8>) -> Result<Written, Error> {
    out.extend_from_slice(b"{\"contents\":[");
    write_contents(&request.messages, out)?;
    out.push(b']');
    if !request.system.is_empty() {
        out.extend_from_slice(b",\"systemInstruction\":{\"parts\":[");
        for (i, block) in request.system.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_part(block, &[], "system", out)?;
        }
        out.extend_from_slice(b"]}");
    }
    write_tools(&request.tools, request.tool_choice.as_ref(), out);
    write_generation_config(request, options, out)?;
    out.push(b'}');
    Ok(Written::default())
}

/// Whether a block becomes a part (thinking of earlier answers does not).
fn is_part(block: &Block<'_>) -> bool {
    !matches!(block, Block::Thinking { .. } | Block::RedactedThinking { .. })
}

/// The contents, with same-role neighbours merged and empty turns left out.
fn write_contents(messages: &[Message<'_>], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut open: Option<Role> = None;
    for (i, message) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        for block in in_call_order(message, &messages[..i]) {
            if open == Some(message.role) {
                out.push(b',');
            } else {
                if open.is_some() {
                    out.extend_from_slice(b"]},");
                }
                out.extend_from_slice(match message.role {
                    Role::User => b"{\"role\":\"user\",\"parts\":[",
                    Role::Assistant => b"{\"role\":\"model\",\"parts\":[",
                });
                open = Some(message.role);
            }
            write_part(block, &messages[..i], &path, out)?;
        }
    }
    match open {
        Some(_) => {
            out.extend_from_slice(b"]}");
            Ok(())
        }
        None => Err(Error::invalid("messages", "the conversation has no content to send")),
    }
}

/// A turn's parts, its leading tool results sorted in the order of their
/// calls (results of unknown calls first: writing them fails).
fn in_call_order<'m, 'a>(message: &'m Message<'a>, history: &[Message<'a>]) -> Vec<&'m Block<'a>> {
    let mut blocks: Vec<&Block<'a>> = message.blocks.iter().filter(|b| is_part(b)).collect();
    let results = blocks.iter().take_while(|b| matches!(b, Block::ToolResult { .. })).count();
    if results > 1 {
        blocks[..results].sort_by_key(|b| match b {
            Block::ToolResult { id, .. } => find_call(history, id).map(|(at, _)| at),
            _ => None,
        });
    }
    blocks
}

/// One part. `history` is the conversation before the block's turn, where
/// the calls of tool results are looked up.
fn write_part(block: &Block<'_>, history: &[Message<'_>], path: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    match block {
        Block::Text { text, .. } => {
            out.extend_from_slice(b"{\"text\":");
            out.extend_from_slice(text.json().as_bytes());
            out.push(b'}');
        }
        Block::Image { source, .. } => write_media(source, &IMAGE_MEDIA_TYPES, "image", path, out)?,
        Block::Document { source, .. } => write_media(source, &["application/pdf"], "document", path, out)?,
        Block::ToolCall { name, arguments, signature, .. } => {
            out.extend_from_slice(b"{\"functionCall\":{\"name\":");
            out.extend_from_slice(name.json().as_bytes());
            out.extend_from_slice(b",\"args\":");
            write_args(arguments, path, out)?;
            out.push(b'}');
            if let Some(signature) = signature {
                out.extend_from_slice(b",\"thoughtSignature\":");
                out.extend_from_slice(signature.json().as_bytes());
            }
            out.push(b'}');
        }
        Block::ToolResult { id, content, is_error, .. } => {
            let (_, name) = find_call(history, id).ok_or_else(|| {
                Error::invalid(
                    path.to_owned(),
                    format!("no earlier assistant message has a tool call with id {}", id.json()),
                )
            })?;
            out.extend_from_slice(b"{\"functionResponse\":{\"name\":");
            out.extend_from_slice(name.json().as_bytes());
            out.extend_from_slice(b",\"response\":");
            write_response(content, *is_error, path, out)?;
            out.extend_from_slice(b"}}");
        }
        // Left out by `is_part`.
        Block::Thinking { .. } | Block::RedactedThinking { .. } => {}
    }
    Ok(())
}

/// The latest call with this id: its position (turn, block) and its name.
fn find_call<'r, 'a>(history: &'r [Message<'a>], id: &Raw<'_>) -> Option<((usize, usize), &'r Raw<'a>)> {
    let turns = history.iter().enumerate().rev().filter(|(_, m)| m.role == Role::Assistant);
    let mut blocks = turns.flat_map(|(i, m)| m.blocks.iter().enumerate().map(move |(j, b)| ((i, j), b)));
    blocks.find_map(|(at, b)| match b {
        Block::ToolCall { id: call, name, .. } if same_string(call, id) => Some((at, name)),
        _ => None,
    })
}

/// Two string literals with the same text, however they are escaped.
fn same_string(a: &Raw<'_>, b: &Raw<'_>) -> bool {
    a.json() == b.json() || (a.decode_string().is_some() && a.decode_string() == b.decode_string())
}

/// A call's `args`: the object itself, or OpenAI's string decoded.
fn write_args(arguments: &Arguments<'_>, path: &str, out: &mut Vec<u8>) -> Result<(), Error> {
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

/// A `functionResponse.response`, which must be an object.
fn write_response(content: &ToolContent<'_>, is_error: bool, path: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    let texts: Vec<&Raw<'_>> = match content {
        ToolContent::Text(text) => vec![text],
        ToolContent::Blocks(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for block in blocks {
                match block {
                    Block::Text { text, .. } => texts.push(text),
                    _ => {
                        return Err(Error::invalid(
                            path.to_owned(),
                            "a tool result sent to this provider may hold text only",
                        ));
                    }
                }
            }
            texts
        }
    };
    if let [text] = texts[..]
        && !is_error
        && !text.is_blank_string()
        && let crate::raw::Arguments::Object(object) = arguments_object(text)
    {
        out.extend_from_slice(object.as_bytes());
        return Ok(());
    }
    out.extend_from_slice(if is_error { b"{\"error\":" } else { b"{\"output\":" });
    match texts[..] {
        [text] => out.extend_from_slice(text.json().as_bytes()),
        _ => write_joined(out, texts, "\\n"),
    }
    out.push(b'}');
    Ok(())
}

/// An image or document: `inlineData`, or `fileData` for a Files API URI.
fn write_media(source: &Source<'_>, types: &[&str], what: &str, path: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    match source {
        Source::Base64 { media_type, data } => {
            if !types.iter().any(|t| t.eq_ignore_ascii_case(media_type)) {
                return Err(Error::invalid(
                    path.to_owned(),
                    format!("{what} type '{media_type}' is not supported by this provider ({})", types.join(", ")),
                ));
            }
            out.extend_from_slice(b"{\"inlineData\":{\"mimeType\":");
            write_json_string(out, media_type);
            out.extend_from_slice(b",\"data\":");
            write_json_string(out, data);
            out.extend_from_slice(b"}}");
        }
        Source::Url(url) => {
            if !url.text().is_some_and(|u| u.starts_with(FILES_API_PREFIX)) {
                return Err(Error::invalid(
                    path.to_owned(),
                    format!(
                        "this provider does not fetch {what} URLs: send the {what} as a base64 data: URL, \
                         or as a Gemini Files API URI"
                    ),
                ));
            }
            out.extend_from_slice(b"{\"fileData\":{\"fileUri\":");
            out.extend_from_slice(url.json().as_bytes());
            out.extend_from_slice(b"}}");
        }
    }
    Ok(())
}

/// `tools` with one `functionDeclarations` list, and `toolConfig`.
fn write_tools(tools: &[Tool<'_>], choice: Option<&ToolChoice<'_>>, out: &mut Vec<u8>) {
    if tools.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"tools\":[{\"functionDeclarations\":[");
    for (i, tool) in tools.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        out.extend_from_slice(tool.name.json().as_bytes());
        if let Some(d) = &tool.description {
            out.extend_from_slice(b",\"description\":");
            out.extend_from_slice(d.json().as_bytes());
        }
        if let Some(p) = &tool.parameters {
            out.extend_from_slice(b",\"parametersJsonSchema\":");
            out.extend_from_slice(p.json().as_bytes());
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}]");
    let mode: &[u8] = match choice {
        None => return,
        Some(ToolChoice::Auto) => b"AUTO\"",
        Some(ToolChoice::Required) => b"ANY\"",
        Some(ToolChoice::None) => b"NONE\"",
        Some(ToolChoice::Named(_)) => b"ANY\",\"allowedFunctionNames\":[",
    };
    out.extend_from_slice(b",\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"");
    out.extend_from_slice(mode);
    if let Some(ToolChoice::Named(name)) = choice {
        out.extend_from_slice(name.json().as_bytes());
        out.push(b']');
    }
    out.extend_from_slice(b"}}");
}

/// `generationConfig`, when any of its fields is set.
fn write_generation_config(request: &Request<'_>, options: Options, out: &mut Vec<u8>) -> Result<(), Error> {
    // Each field is written with a leading comma; the first one is dropped.
    let mut fields = Vec::new();
    if let Some(max) = request.max_tokens {
        fields.extend_from_slice(b",\"maxOutputTokens\":");
        fields.extend_from_slice(itoa::Buffer::new().format(max).as_bytes());
    }
    crate::openai::request::write_number(&mut fields, "temperature", request.temperature);
    crate::openai::request::write_number(&mut fields, "topP", request.top_p);
    if let Some(k) = request.top_k {
        fields.extend_from_slice(b",\"topK\":");
        fields.extend_from_slice(itoa::Buffer::new().format(k).as_bytes());
    }
    write_stop(&request.stop, &mut fields)?;
    match &request.response_format {
        ResponseFormat::Text => {}
        ResponseFormat::JsonObject => fields.extend_from_slice(b",\"responseMimeType\":\"application/json\""),
        ResponseFormat::JsonSchema { schema, .. } => {
            fields.extend_from_slice(b",\"responseMimeType\":\"application/json\",\"responseJsonSchema\":");
            fields.extend_from_slice(schema.json().as_bytes());
        }
    }
    if let Some(reasoning) = request.reasoning {
        write_thinking(reasoning, options.thinking, &mut fields);
    }
    if let Some(fields) = fields.get(1..) {
        out.extend_from_slice(b",\"generationConfig\":{");
        out.extend_from_slice(fields);
        out.push(b'}');
    }
    Ok(())
}

fn write_stop(stop: &[Raw<'_>], out: &mut Vec<u8>) -> Result<(), Error> {
    let stops: Vec<&Raw<'_>> = stop.iter().filter(|s| s.json() != "\"\"").collect();
    if stops.is_empty() {
        return Ok(());
    }
    if stops.len() > STOP_SEQUENCES_MAX {
        return Err(Error::invalid("stop", "this provider takes at most 5 stop sequences"));
    }
    out.extend_from_slice(b",\"stopSequences\":[");
    for (i, s) in stops.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(s.json().as_bytes());
    }
    out.push(b']');
    Ok(())
}

/// `thinkingConfig`; see the module docs for the table.
fn write_thinking(reasoning: Reasoning, thinking: Thinking, out: &mut Vec<u8>) {
    let mut n = itoa::Buffer::new();
    let config: &[&[u8]] = match (thinking, reasoning) {
        (Thinking::Budget, Reasoning::Disabled) => &[b"{\"thinkingBudget\":0}"],
        (Thinking::Budget, Reasoning::Adaptive) => &[b"{\"thinkingBudget\":-1,\"includeThoughts\":true}"],
        (Thinking::Budget, Reasoning::Effort(e)) => {
            &[b"{\"thinkingBudget\":", n.format(budget_tokens(e)).as_bytes(), b",\"includeThoughts\":true}"]
        }
        (Thinking::Budget, Reasoning::BudgetTokens(b)) => {
            &[b"{\"thinkingBudget\":", n.format(b).as_bytes(), b",\"includeThoughts\":true}"]
        }
        (Thinking::Level, Reasoning::Disabled) => &[b"{\"thinkingLevel\":\"MINIMAL\"}"],
        (Thinking::Level, Reasoning::Adaptive) => &[b"{\"includeThoughts\":true}"],
        (Thinking::Level, Reasoning::Effort(e)) => {
            &[b"{\"thinkingLevel\":\"", level(e), b"\",\"includeThoughts\":true}"]
        }
        (Thinking::Level, Reasoning::BudgetTokens(b)) => {
            &[b"{\"thinkingLevel\":\"", level(Effort::from_budget(b)), b"\",\"includeThoughts\":true}"]
        }
    };
    out.extend_from_slice(b",\"thinkingConfig\":");
    for piece in config {
        out.extend_from_slice(piece);
    }
}

/// Gemini 2.5's budgets for an effort (`shared/providers/gemini.md` §7;
/// 128 is Gemini 2.5 Pro's floor).
fn budget_tokens(effort: Effort) -> u64 {
    match effort {
        Effort::Minimal => 128,
        Effort::Low => 1024,
        Effort::Medium => 8192,
        Effort::High => 24576,
    }
}

fn level(effort: Effort) -> &'static [u8] {
    match effort {
        Effort::Minimal => b"MINIMAL",
        Effort::Low => b"LOW",
        Effort::Medium => b"MEDIUM",
        Effort::High => b"HIGH",
    }
}
