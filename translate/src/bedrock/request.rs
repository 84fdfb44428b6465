//! Bedrock Converse requests, written from the canonical form.
//!
//! The body holds no model (it is in the path, see [`super::path`]). Content
//! (text, tool arguments, schemas) is copied from the client's bytes.
//!
//! Policies, where the dialects disagree (each is a test in `test_data`):
//! - `temperature` above Bedrock's 1.0 is clamped to 1.0, not refused, as
//!   for Anthropic: OpenAI clients send up to 2.0 and expect an answer.
//! - `maxTokens` is the client's, else the deployment's default, else left
//!   out (Converse does not require it; each model has its own limit).
//! - `reasoning_effort` and Anthropic `thinking` become
//!   `additionalModelRequestFields.thinking`, the Anthropic-on-Bedrock form
//!   (`bedrock.md` §10; other model families have no documented switch and
//!   refuse the field). As on Anthropic, `maxTokens` is raised by the budget
//!   when it would not exceed it (and set to the budget plus
//!   [`THINKING_ANSWER_TOKENS`] when nobody gave one), and `temperature`,
//!   `topP` and `top_k` are dropped.
//! - `top_k` goes to `additionalModelRequestFields.top_k` (Anthropic's name).
//! - Whitespace-only stop sequences are dropped, as for Anthropic.
//! - Images must be data URLs of png, jpeg, gif or webp. An http(s) URL is
//!   refused with a 400: Converse takes bytes only, and translation does no
//!   I/O (fetching client-given URLs from the gateway would also be an SSRF
//!   risk).
//! - Documents (PDF and the other formats of `bedrock.md` §2) must be data
//!   URLs; Bedrock requires a name, and canon has none, so they are named
//!   `document-1`, `document-2`, … in request order.
//! - Tool-call arguments that are not a JSON object are refused with a 400
//!   (`""` counts as `{}`), the same policy as Anthropic's.
//! - A tool result whose text is a JSON object goes as `{"json": object}`,
//!   anything else (arrays included) as `{"text": ...}`.
//! - `tool_choice: "none"` has no Converse form: the choice is dropped, and
//!   so is `toolConfig` unless the history holds tool blocks, where Bedrock
//!   requires it ("The toolConfig field must be defined…"); the tools are
//!   then still declared, so the model may call them. When the history has
//!   tool blocks and the client declared no tools, the tools named in the
//!   history are declared with an open schema for the same reason.
//! - `parallel_tool_calls: false` is dropped: Converse has no switch for it.
//! - `response_format` `json_schema` becomes `outputConfig.textFormat` with
//!   the schema as a JSON string (`bedrock.md` §2, §10); `json_object`
//!   becomes the same with the schema `{"type":"object"}`. No forced tool,
//!   so the response side has nothing to unwrap.
//! - `user` is dropped: `requestMetadata` is log-only and restricts its
//!   characters, so forwarding could only turn a working request into a 400.
//! - Anthropic `cache_control` on a block, system block or tool becomes a
//!   `cachePoint` after it (its `ttl` kept); the top-level automatic
//!   `cache_control` has no Converse form and is dropped.
//! - Within a user turn, tool results are written before the other blocks
//!   (as Claude requires), each group in the client's order.
//! - A conversation ending with an assistant turn (prefill) is sent as it
//!   is: Claude models continue it; what other models do is theirs.
//! - Reasoning without a signature is not sent back, as for Anthropic:
//!   Claude refuses reasoning it cannot check, and earlier reasoning may be
//!   left out (case 26).

use std::borrow::Cow;

use crate::Written;
use crate::canon::{Block, Reasoning, Request, ResponseFormat, Role, Source, ToolChoice, ToolContent};
use crate::error::Error;
use crate::raw::{Raw, arguments_object, write_as_string, write_json_string};

/// How a request is written for a Bedrock deployment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `inferenceConfig.maxTokens` when the client gave none; `None` leaves
    /// it to the model.
    pub max_tokens_default: Option<u64>,
}

/// Tokens left for the answer when thinking is on and no maximum was given.
pub const THINKING_ANSWER_TOKENS: u64 = 4096;

/// Image media types and their Converse `format`.
const IMAGE_FORMATS: [(&str, &str); 5] =
    [("image/png", "png"), ("image/jpeg", "jpeg"), ("image/jpg", "jpeg"), ("image/gif", "gif"), ("image/webp", "webp")];

/// Document media types and their Converse `format`.
const DOCUMENT_FORMATS: [(&str, &str); 9] = [
    ("application/pdf", "pdf"),
    ("text/csv", "csv"),
    ("application/msword", "doc"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
    ("application/vnd.ms-excel", "xls"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    ("text/html", "html"),
    ("text/plain", "txt"),
    ("text/markdown", "md"),
];

/// Writes a canonical request as a Converse body.
pub fn write(request: &Request<'_>, options: Options, out: &mut Vec<u8>) -> Result<Written, Error> {
    write_converse(request, options, Purpose::Answer, out)
}

/// Writes a CountTokens body (`{"input":{"converse":{...}}}`) that counts
/// what [`write`] would send. Bedrock's `ConverseTokensRequest` takes the
/// messages, system prompt, tools and additional model fields, not the
/// inference or output configuration.
pub fn write_count_tokens(request: &Request<'_>, options: Options, out: &mut Vec<u8>) -> Result<(), Error> {
    out.extend_from_slice(b"{\"input\":{\"converse\":");
    write_converse(request, options, Purpose::CountTokens, out)?;
    out.extend_from_slice(b"}}");
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Answer,
    CountTokens,
}

fn write_converse(
    request: &Request<'_>,
    options: Options,
    purpose: Purpose,
    out: &mut Vec<u8>,
) -> Result<Written, Error> {
    let budget = match request.reasoning {
        Some(Reasoning::Effort(e)) => Some(e.budget_tokens()),
        Some(Reasoning::BudgetTokens(b)) => Some(b),
        _ => None,
    };
    let thinking = budget.is_some() || request.reasoning == Some(Reasoning::Adaptive);
    let mut blocks = BlockWriter::default();
    out.extend_from_slice(b"{\"messages\":[");
    blocks.messages(request, out)?;
    out.push(b']');
    if !request.system.is_empty() {
        out.extend_from_slice(b",\"system\":[");
        for (i, block) in request.system.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match block {
                Block::Text { .. } => blocks.block(block, "system", out)?,
                _ => return Err(Error::invalid("system", "system messages hold text only")),
            }
        }
        out.push(b']');
    }
    if purpose == Purpose::Answer {
        object(out, "inferenceConfig", |out| write_inference(request, options, budget, thinking, out));
    }
    write_tool_config(request, out);
    object(out, "additionalModelRequestFields", |out| write_additional(request, budget, thinking, out));
    if purpose == Purpose::Answer {
        write_output_config(&request.response_format, out);
    }
    out.push(b'}');
    Ok(Written::default())
}

/// Writes `,"key":{...}` where `fields` writes members each with a leading
/// comma; writes nothing when `fields` writes nothing.
fn object(out: &mut Vec<u8>, key: &str, fields: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":{");
    let first = out.len();
    fields(out);
    if out.len() == first {
        out.truncate(start);
        return;
    }
    out.remove(first);
    out.push(b'}');
}

fn write_inference(request: &Request<'_>, options: Options, budget: Option<u64>, thinking: bool, out: &mut Vec<u8>) {
    let mut max_tokens = request.max_tokens.or(options.max_tokens_default);
    if let Some(budget) = budget {
        max_tokens = Some(match max_tokens {
            Some(m) if m > budget => m,
            Some(m) => m + budget,
            None => budget + THINKING_ANSWER_TOKENS,
        });
    }
    if let Some(m) = max_tokens {
        out.extend_from_slice(b",\"maxTokens\":");
        out.extend_from_slice(itoa::Buffer::new().format(m).as_bytes());
    }
    if !thinking {
        crate::openai::request::write_number(out, "temperature", request.temperature.map(|t| t.clamp(0.0, 1.0)));
        crate::openai::request::write_number(out, "topP", request.top_p);
    }
    let mut stops = request.stop.iter().filter(|s| !s.is_blank_string()).peekable();
    if stops.peek().is_some() {
        out.extend_from_slice(b",\"stopSequences\":[");
        for (i, s) in stops.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(s.json().as_bytes());
        }
        out.push(b']');
    }
}

fn write_additional(request: &Request<'_>, budget: Option<u64>, thinking: bool, out: &mut Vec<u8>) {
    if let Some(budget) = budget {
        out.extend_from_slice(b",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":");
        out.extend_from_slice(itoa::Buffer::new().format(budget).as_bytes());
        out.push(b'}');
    } else if thinking {
        out.extend_from_slice(b",\"thinking\":{\"type\":\"adaptive\"}");
    } else if let Some(k) = request.top_k {
        out.extend_from_slice(b",\"top_k\":");
        out.extend_from_slice(itoa::Buffer::new().format(k).as_bytes());
    }
}

fn write_output_config(format: &ResponseFormat<'_>, out: &mut Vec<u8>) {
    let (schema, name) = match format {
        ResponseFormat::Text => return,
        ResponseFormat::JsonObject => (Raw::from_json("{\"type\":\"object\"}"), None),
        ResponseFormat::JsonSchema { name, schema, .. } => (schema.clone(), name.as_ref()),
    };
    out.extend_from_slice(
        b",\"outputConfig\":{\"textFormat\":{\"type\":\"json_schema\",\"structure\":{\"jsonSchema\":{\"schema\":",
    );
    write_as_string(out, &schema);
    if let Some(name) = name {
        out.extend_from_slice(b",\"name\":");
        out.extend_from_slice(name.json().as_bytes());
    }
    out.extend_from_slice(b"}}}}");
}

/// Writes content blocks; numbers the documents, which Bedrock needs named.
#[derive(Default)]
struct BlockWriter {
    documents: u32,
}

impl BlockWriter {
    /// Turns, with empty ones left out and same-role neighbours merged.
    /// Unsigned reasoning is left out ([`Block::is_replayable`]).
    fn messages(&mut self, request: &Request<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
        let mut open: Option<Role> = None;
        for (i, message) in request.messages.iter().enumerate() {
            if !message.blocks.iter().any(Block::is_replayable) {
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
            let path = format!("messages[{i}]");
            let is_result = |b: &&Block<'_>| matches!(b, Block::ToolResult { .. });
            let results = message.blocks.iter().filter(is_result);
            let rest = message.blocks.iter().filter(|b| !is_result(b) && b.is_replayable());
            let ordered = results.chain(rest);
            for (j, block) in ordered.enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                self.block(block, &path, out)?;
            }
        }
        if open.is_some() {
            out.extend_from_slice(b"]}");
        }
        Ok(())
    }

    /// One block, followed by a `cachePoint` block when it has a cache mark.
    fn block(&mut self, block: &Block<'_>, path: &str, out: &mut Vec<u8>) -> Result<(), Error> {
        match block {
            Block::Text { text, cache_control } => {
                out.extend_from_slice(b"{\"text\":");
                out.extend_from_slice(text.json().as_bytes());
                out.push(b'}');
                write_cache_point(cache_control.as_ref(), out);
            }
            Block::Image { source, cache_control } => {
                write_image(source, path, out)?;
                write_cache_point(cache_control.as_ref(), out);
            }
            Block::Document { source, cache_control } => {
                self.document(source, path, out)?;
                write_cache_point(cache_control.as_ref(), out);
            }
            Block::ToolCall { id, name, arguments, .. } => {
                out.extend_from_slice(b"{\"toolUse\":{\"toolUseId\":");
                out.extend_from_slice(id.json().as_bytes());
                out.extend_from_slice(b",\"name\":");
                out.extend_from_slice(name.json().as_bytes());
                out.extend_from_slice(b",\"input\":");
                crate::anthropic::request::write_input(arguments, &path, out)?;
                out.extend_from_slice(b"}}");
            }
            Block::ToolResult { id, content, is_error, cache_control } => {
                out.extend_from_slice(b"{\"toolResult\":{\"toolUseId\":");
                out.extend_from_slice(id.json().as_bytes());
                out.extend_from_slice(b",\"content\":[");
                self.tool_content(content, path, out)?;
                out.extend_from_slice(if *is_error {
                    b"],\"status\":\"error\"}}"
                } else {
                    b"],\"status\":\"success\"}}"
                });
                write_cache_point(cache_control.as_ref(), out);
            }
            Block::Thinking { text, signature } => {
                out.extend_from_slice(b"{\"reasoningContent\":{\"reasoningText\":{\"text\":");
                out.extend_from_slice(text.json().as_bytes());
                if let Some(sig) = signature {
                    out.extend_from_slice(b",\"signature\":");
                    out.extend_from_slice(sig.json().as_bytes());
                }
                out.extend_from_slice(b"}}}");
            }
            Block::RedactedThinking { data } => {
                out.extend_from_slice(b"{\"reasoningContent\":{\"redactedContent\":");
                out.extend_from_slice(data.json().as_bytes());
                out.extend_from_slice(b"}}");
            }
        }
        Ok(())
    }

    /// A tool result's content: a JSON object as `json`, other text as
    /// `text`, and text, image and document blocks as themselves.
    fn tool_content(&mut self, content: &ToolContent<'_>, path: &str, out: &mut Vec<u8>) -> Result<(), Error> {
        let blocks = match content {
            ToolContent::Text(text) => {
                match json_object(text) {
                    Some(object) => {
                        out.extend_from_slice(b"{\"json\":");
                        out.extend_from_slice(object.as_bytes());
                    }
                    None => {
                        out.extend_from_slice(b"{\"text\":");
                        out.extend_from_slice(text.json().as_bytes());
                    }
                }
                out.push(b'}');
                return Ok(());
            }
            ToolContent::Blocks(blocks) => blocks,
        };
        for (i, block) in blocks.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match block {
                Block::Text { text, .. } => {
                    out.extend_from_slice(b"{\"text\":");
                    out.extend_from_slice(text.json().as_bytes());
                    out.push(b'}');
                }
                Block::Image { source, .. } => write_image(source, path, out)?,
                Block::Document { source, .. } => self.document(source, path, out)?,
                _ => {
                    return Err(Error::invalid(
                        path.to_owned(),
                        "a tool result holds text, images and documents only for this provider",
                    ));
                }
            }
        }
        Ok(())
    }

    fn document(&mut self, source: &Source<'_>, path: &str, out: &mut Vec<u8>) -> Result<(), Error> {
        let Source::Base64 { media_type, data } = source else {
            return Err(Error::invalid(path.to_owned(), "documents must be sent as data: URLs for this provider"));
        };
        let format = format_of(&DOCUMENT_FORMATS, media_type).ok_or_else(|| {
            Error::invalid(
                path.to_owned(),
                format!(
                    "document type '{media_type}' is not supported by this provider \
                     (pdf, csv, doc, docx, xls, xlsx, html, txt and md are)"
                ),
            )
        })?;
        self.documents += 1;
        out.extend_from_slice(b"{\"document\":{\"format\":\"");
        out.extend_from_slice(format.as_bytes());
        out.extend_from_slice(b"\",\"name\":\"document-");
        out.extend_from_slice(itoa::Buffer::new().format(self.documents).as_bytes());
        out.extend_from_slice(b"\",\"source\":{\"bytes\":");
        write_json_string(out, data);
        out.extend_from_slice(b"}}}");
        Ok(())
    }
}

fn write_image(source: &Source<'_>, path: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    let Source::Base64 { media_type, data } = source else {
        return Err(Error::invalid(
            path.to_owned(),
            "image URLs are not supported by this provider; send the image as a data: URL",
        ));
    };
    let format = format_of(&IMAGE_FORMATS, media_type).ok_or_else(|| {
        Error::invalid(
            path.to_owned(),
            format!("image type '{media_type}' is not supported by this provider (jpeg, png, gif and webp are)"),
        )
    })?;
    out.extend_from_slice(b"{\"image\":{\"format\":\"");
    out.extend_from_slice(format.as_bytes());
    out.extend_from_slice(b"\",\"source\":{\"bytes\":");
    write_json_string(out, data);
    out.extend_from_slice(b"}}}");
    Ok(())
}

fn format_of(table: &[(&str, &'static str)], media_type: &str) -> Option<&'static str> {
    table.iter().find(|(m, _)| m.eq_ignore_ascii_case(media_type)).map(|(_, f)| *f)
}

/// The object a tool result's text holds, if it holds one.
fn json_object<'r>(text: &'r Raw<'_>) -> Option<Cow<'r, str>> {
    if text.is_blank_string() {
        return None;
    }
    match arguments_object(text) {
        crate::raw::Arguments::Object(object) => Some(object),
        crate::raw::Arguments::NotAnObject => None,
    }
}

/// `,{"cachePoint":{"type":"default"}}` for an Anthropic `cache_control`,
/// with its `ttl` when it has one.
fn write_cache_point(cache_control: Option<&Raw<'_>>, out: &mut Vec<u8>) {
    let Some(cc) = cache_control else { return };
    out.extend_from_slice(b",{\"cachePoint\":{\"type\":\"default\"");
    if let Ok(ttl) = sonic_rs::get(cc.json(), ["ttl"])
        && ttl.as_raw_str().starts_with('"')
    {
        out.extend_from_slice(b",\"ttl\":");
        out.extend_from_slice(ttl.as_raw_str().as_bytes());
    }
    out.extend_from_slice(b"}}");
}

/// `toolConfig`: the tools and the choice, by the `tool_choice: "none"`
/// policy of the module docs.
fn write_tool_config(request: &Request<'_>, out: &mut Vec<u8>) {
    let history = tool_history(request);
    let none = request.tool_choice == Some(ToolChoice::None);
    if !request.tools.is_empty() && (!none || history.has_blocks) {
        out.extend_from_slice(b",\"toolConfig\":{\"tools\":[");
        write_tool_specs(request, out);
        out.push(b']');
        write_tool_choice(request.tool_choice.as_ref(), out);
        out.push(b'}');
    } else if request.tools.is_empty() && !history.names.is_empty() {
        out.extend_from_slice(b",\"toolConfig\":{\"tools\":[");
        for (i, name) in history.names.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"toolSpec\":{\"name\":");
            out.extend_from_slice(name.json().as_bytes());
            out.extend_from_slice(b",\"inputSchema\":{\"json\":{\"type\":\"object\"}}}}");
        }
        out.extend_from_slice(b"]}");
    }
}

fn write_tool_specs(request: &Request<'_>, out: &mut Vec<u8>) {
    for (i, tool) in request.tools.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"toolSpec\":{\"name\":");
        out.extend_from_slice(tool.name.json().as_bytes());
        if let Some(d) = &tool.description {
            out.extend_from_slice(b",\"description\":");
            out.extend_from_slice(d.json().as_bytes());
        }
        out.extend_from_slice(b",\"inputSchema\":{\"json\":");
        out.extend_from_slice(
            tool.parameters.as_ref().map_or("{\"type\":\"object\",\"properties\":{}}", Raw::json).as_bytes(),
        );
        out.push(b'}');
        if let Some(strict) = tool.strict {
            out.extend_from_slice(if strict { b",\"strict\":true" } else { b",\"strict\":false" });
        }
        out.extend_from_slice(b"}}");
        write_cache_point(tool.cache_control.as_ref(), out);
    }
}

fn write_tool_choice(choice: Option<&ToolChoice<'_>>, out: &mut Vec<u8>) {
    match choice {
        None | Some(ToolChoice::None) => {}
        Some(ToolChoice::Auto) => out.extend_from_slice(b",\"toolChoice\":{\"auto\":{}}"),
        Some(ToolChoice::Required) => out.extend_from_slice(b",\"toolChoice\":{\"any\":{}}"),
        Some(ToolChoice::Named(name)) => {
            out.extend_from_slice(b",\"toolChoice\":{\"tool\":{\"name\":");
            out.extend_from_slice(name.json().as_bytes());
            out.extend_from_slice(b"}}");
        }
    }
}

/// What the conversation holds of tools.
struct ToolHistory<'r> {
    /// Any tool call or result.
    has_blocks: bool,
    /// The names of the tools called, each once, in order.
    names: Vec<&'r Raw<'r>>,
}

fn tool_history<'r>(request: &'r Request<'r>) -> ToolHistory<'r> {
    let mut history = ToolHistory { has_blocks: false, names: Vec::new() };
    for block in request.messages.iter().flat_map(|m| &m.blocks) {
        match block {
            Block::ToolCall { name, .. } => {
                history.has_blocks = true;
                if !history.names.iter().any(|n| n.json() == name.json()) {
                    history.names.push(name);
                }
            }
            Block::ToolResult { .. } => history.has_blocks = true,
            _ => {}
        }
    }
    history
}

#[cfg(test)]
mod count_tokens_tests {
    use super::{Options, write_count_tokens};

    #[test]
    fn count_tokens_wraps_the_converse_body_without_inference_settings() {
        let body = br#"{"model":"m","system":"Be brief.","messages":[{"role":"user","content":"Hi"}],"tools":[{"name":"f","input_schema":{"type":"object"}}],"max_tokens":99,"temperature":0.5}"#;
        let request = crate::anthropic::request::parse_count_tokens(body).unwrap();
        let mut out = Vec::new();
        write_count_tokens(&request, Options { max_tokens_default: Some(4096) }, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#"{"input":{"converse":{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"system":[{"text":"Be brief."}],"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}]}}}}"#
        );
    }
}
