//! Anthropic Messages streams, decoded to canonical events and encoded from
//! them.
//!
//! Decoding maps Anthropic's block indexes (text, thinking and tool blocks
//! share one counter) to OpenAI's tool-call indexes (tool calls only).
//! Encoding does the reverse, and has one problem the other direction does
//! not: an OpenAI-dialect provider may interleave the argument fragments of
//! two tool calls, and Anthropic blocks cannot interleave. The first call
//! streams live; fragments of any other call are buffered and that call is
//! written as one contiguous block when the live one is done.

use std::borrow::Cow;

use serde::Deserialize;

use super::response::{BlockWire, UsageWire};
use crate::Usage;
use crate::canon::{Event, Finish};
use crate::error::{ProviderError, parse_anthropic_error};
use crate::raw::Raw;
use crate::stream::{Context, Step};

#[derive(Deserialize)]
struct EventWire<'a> {
    #[serde(borrow, rename = "type")]
    type_: Cow<'a, str>,
    // Boxed: they come once per message or block, and a large event struct
    // would be copied around for every delta.
    #[serde(borrow, default)]
    message: Option<Box<MessageWire<'a>>>,
    #[serde(default)]
    index: Option<u32>,
    #[serde(borrow, default)]
    content_block: Option<Box<BlockWire<'a>>>,
    #[serde(borrow, default)]
    delta: Option<DeltaWire<'a>>,
    #[serde(default)]
    usage: Option<UsageWire>,
    #[serde(borrow, default)]
    error: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct MessageWire<'a> {
    #[serde(borrow, default)]
    id: Option<Raw<'a>>,
    #[serde(borrow, default)]
    model: Option<Raw<'a>>,
    #[serde(default)]
    usage: Option<UsageWire>,
}

#[derive(Deserialize)]
struct DeltaWire<'a> {
    #[serde(borrow, default, rename = "type")]
    type_: Option<&'a str>,
    /// `text`, `partial_json`, `thinking` or `signature`: a delta has one,
    /// named by its `type`.
    #[serde(borrow, default, alias = "partial_json", alias = "thinking", alias = "signature")]
    text: Option<Raw<'a>>,
    #[serde(borrow, default)]
    stop_reason: Option<&'a str>,
    #[serde(borrow, default)]
    stop_sequence: Option<Raw<'a>>,
}

/// Turns an Anthropic provider's events into canonical events.
pub struct Decoder {
    /// Anthropic block index → tool-call index, for the tool blocks seen.
    tools: Vec<(u32, u32)>,
    usage: Usage,
    json_tool: bool,
    /// The block index of the forced `json_response` tool.
    json_block: Option<u32>,
}

impl Decoder {
    pub fn new(json_tool: bool) -> Decoder {
        Decoder { tools: Vec::new(), usage: Usage::default(), json_tool, json_block: None }
    }

    pub fn decode(&mut self, data: &[u8], sink: &mut impl FnMut(Event<'_>)) -> Result<Step, String> {
        if let Some((index, kind, value)) = fast_delta(data) {
            self.block_delta(
                index,
                Some(DeltaWire { type_: Some(kind), text: Some(value), stop_reason: None, stop_sequence: None }),
                sink,
            );
            return Ok(Step::More);
        }
        let event: EventWire<'_> = crate::wire::from_slice(data)
            .map_err(|e| format!("the provider sent an event that is not JSON: {}", crate::error::first_line(e)))?;
        match &*event.type_ {
            "message_start" => {
                let message = event.message.ok_or("message_start without a message")?;
                if let Some(u) = message.usage {
                    u.merge_into(&mut self.usage);
                }
                sink(Event::Start { id: message.id, model: message.model, usage: Some(self.usage) });
            }
            "content_block_start" => self.block_start(event.index.unwrap_or(0), event.content_block, sink),
            "content_block_delta" => self.block_delta(event.index.unwrap_or(0), event.delta, sink),
            "message_delta" => {
                if let Some(u) = event.usage {
                    u.merge_into(&mut self.usage);
                    sink(Event::Usage(self.usage));
                }
                if let Some(delta) = event.delta
                    && let Some(reason) = delta.stop_reason
                {
                    let mut reason = super::response::finish_from_str(reason);
                    if self.json_block.is_some() && reason == Finish::ToolCalls {
                        reason = Finish::Stop;
                    }
                    sink(Event::Finish { reason, stop_sequence: delta.stop_sequence.filter(Raw::is_string) });
                }
            }
            "message_stop" => return Ok(Step::Done),
            "error" => {
                let error = event.error.map(|e| format!("{{\"error\":{}}}", e.json())).unwrap_or_default();
                sink(Event::Error(parse_anthropic_error(500, error.as_bytes())));
            }
            // ping, content_block_stop, and event types added later.
            _ => {}
        }
        Ok(Step::More)
    }

    fn block_start(&mut self, index: u32, block: Option<Box<BlockWire<'_>>>, sink: &mut impl FnMut(Event<'_>)) {
        let Some(block) = block else { return };
        match &*block.type_ {
            "text" => {
                if let Some(text) = block.text.filter(|t| t.is_string() && t.json() != "\"\"") {
                    sink(Event::Text(text));
                }
            }
            "tool_use" if self.json_tool && block.name.as_ref().is_some_and(|n| n.json() == "\"json_response\"") => {
                self.json_block = Some(index);
            }
            "tool_use" => {
                let tool_index = self.tools.len() as u32;
                self.tools.push((index, tool_index));
                sink(Event::ToolStart {
                    index: tool_index,
                    id: block.id.unwrap_or_default(),
                    name: block.name.unwrap_or_default(),
                    signature: None,
                });
            }
            "redacted_thinking" => {
                if let Some(data) = block.data {
                    sink(Event::RedactedThinking(data));
                }
            }
            _ => {}
        }
    }

    fn block_delta(&mut self, index: u32, delta: Option<DeltaWire<'_>>, sink: &mut impl FnMut(Event<'_>)) {
        let Some(delta) = delta else { return };
        match delta.type_ {
            Some("text_delta") => {
                if let Some(text) = delta.text.filter(Raw::is_string) {
                    sink(Event::Text(text));
                }
            }
            Some("input_json_delta") => {
                let Some(fragment) = delta.text.filter(|f| f.is_string() && f.json() != "\"\"") else { return };
                if self.json_block == Some(index) {
                    sink(Event::Text(fragment));
                } else if let Some(&(_, tool)) = self.tools.iter().find(|(block, _)| *block == index) {
                    sink(Event::ToolArguments { index: tool, fragment });
                }
            }
            Some("thinking_delta") => {
                if let Some(text) = delta.text.filter(Raw::is_string) {
                    sink(Event::Thinking(text));
                }
            }
            Some("signature_delta") => {
                if let Some(sig) = delta.text.filter(Raw::is_string) {
                    sink(Event::ThinkingSignature(sig));
                }
            }
            _ => {}
        }
    }
}

/// The shape Anthropic gives every content delta, byte for byte:
/// `{"type":"content_block_delta","index":N,"delta":{"type":"K","F":"..."}}`.
/// Most events of a stream are these; recognising them without the general
/// parser halves the cost of an event. Anything that differs in the least
/// (spacing, key order, a field more) goes to the general parser.
fn fast_delta(data: &[u8]) -> Option<(u32, &str, Raw<'_>)> {
    let rest = data.trim_ascii_end().strip_prefix(b"{\"type\":\"content_block_delta\",\"index\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 {
        return None;
    }
    let index: u32 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let rest = rest[digits..].strip_prefix(b",\"delta\":{\"type\":\"")?;
    let (kind, field, rest): (&str, &[u8], &[u8]) = if let Some(r) = rest.strip_prefix(b"text_delta\",\"text\":") {
        ("text_delta", b"text", r)
    } else if let Some(r) = rest.strip_prefix(b"input_json_delta\",\"partial_json\":") {
        ("input_json_delta", b"partial_json", r)
    } else if let Some(r) = rest.strip_prefix(b"thinking_delta\",\"thinking\":") {
        ("thinking_delta", b"thinking", r)
    } else {
        return None;
    };
    let _ = field;
    let literal = rest.strip_suffix(b"}}")?;
    if !is_plain_string_literal(literal) {
        return None;
    }
    let literal = std::str::from_utf8(literal).ok()?;
    Some((index, kind, Raw::from_json(literal)))
}

/// A JSON string literal with nothing after its closing quote and no raw
/// control characters inside.
fn is_plain_string_literal(bytes: &[u8]) -> bool {
    let [b'"', inner @ .., b'"'] = bytes else { return false };
    let mut i = 0;
    while i < inner.len() {
        match inner[i] {
            b'\\' => i += 2,
            b'"' | 0..=0x1f => return false,
            _ => i += 1,
        }
    }
    i == inner.len()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text,
    Thinking,
    /// The live tool call, by tool index.
    Tool(u32),
}

/// A tool call held back because another one was streaming.
#[derive(Default)]
struct Held {
    index: u32,
    id: Vec<u8>,
    name: Vec<u8>,
    /// The arguments' fragments, joined: the inside of one string literal.
    arguments: Vec<u8>,
}

/// Writes canonical events as Anthropic server-sent events.
pub struct Encoder {
    cx: Context,
    started: bool,
    failed: bool,
    /// The next Anthropic block index.
    next_block: u32,
    open: Open,
    /// Tool calls seen, by tool index: streamed live, or held.
    streamed: Vec<u32>,
    held: Vec<Held>,
    finish: Option<(Finish, Option<Vec<u8>>)>,
    usage: Usage,
}

impl Encoder {
    pub fn new(cx: Context) -> Encoder {
        Encoder {
            cx,
            started: false,
            failed: false,
            next_block: 0,
            open: Open::None,
            streamed: Vec::new(),
            held: Vec::new(),
            finish: None,
            usage: Usage::default(),
        }
    }

    fn start(&mut self, id: Option<&Raw<'_>>, model: Option<&Raw<'_>>, out: &mut Vec<u8>) {
        self.started = true;
        out.extend_from_slice(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":");
        match id {
            Some(id) => out.extend_from_slice(id.json().as_bytes()),
            None => crate::raw::write_json_string(out, &self.cx.id),
        }
        out.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
        let _ = model;
        crate::raw::write_json_string(out, &self.cx.model);
        out.extend_from_slice(b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
        super::response::write_usage(&self.usage, out);
        out.extend_from_slice(b"}}\n\n");
    }

    fn open_block(&mut self, kind: Open, block: &[&[u8]], out: &mut Vec<u8>) {
        self.close_block(out);
        out.extend_from_slice(b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.next_block).as_bytes());
        out.extend_from_slice(b",\"content_block\":");
        for piece in block {
            out.extend_from_slice(piece);
        }
        out.extend_from_slice(b"}\n\n");
        self.open = kind;
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if self.open == Open::None {
            return;
        }
        out.extend_from_slice(b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.next_block).as_bytes());
        out.extend_from_slice(b"}\n\n");
        self.next_block += 1;
        self.open = Open::None;
    }

    fn delta(&self, kind: &[u8], field: &[u8], value: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.next_block).as_bytes());
        out.extend_from_slice(b",\"delta\":{\"type\":\"");
        out.extend_from_slice(kind);
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(field);
        out.extend_from_slice(b"\":");
        out.extend_from_slice(value);
        out.extend_from_slice(b"}}\n\n");
    }

    pub fn event(&mut self, event: &Event<'_>, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        if let Event::Start { usage: Some(u), .. } = event {
            self.usage = *u;
        }
        if !self.started && !matches!(event, Event::Error(_) | Event::Usage(_)) {
            match event {
                Event::Start { id, model, .. } => self.start(id.as_ref(), model.as_ref(), out),
                _ => self.start(None, None, out),
            }
        }
        match event {
            Event::Start { .. } => {}
            Event::Text(text) => {
                if self.open != Open::Text {
                    self.open_block(Open::Text, &[b"{\"type\":\"text\",\"text\":\"\"}"], out);
                }
                self.delta(b"text_delta", b"text", text.json().as_bytes(), out);
            }
            Event::Thinking(text) => {
                if self.open != Open::Thinking {
                    self.open_block(
                        Open::Thinking,
                        &[b"{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}"],
                        out,
                    );
                }
                self.delta(b"thinking_delta", b"thinking", text.json().as_bytes(), out);
            }
            Event::ThinkingSignature(sig) => {
                if self.open != Open::Thinking {
                    self.open_block(
                        Open::Thinking,
                        &[b"{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}"],
                        out,
                    );
                }
                self.delta(b"signature_delta", b"signature", sig.json().as_bytes(), out);
            }
            Event::RedactedThinking(data) => {
                self.open_block(
                    Open::Thinking,
                    &[b"{\"type\":\"redacted_thinking\",\"data\":", data.json().as_bytes(), b"}"],
                    out,
                );
                self.close_block(out);
            }
            Event::ToolStart { index, id, name, signature } => {
                let carried = signature.as_ref().and_then(|s| super::id_with_signature(id, s));
                self.tool_start(*index, carried.as_ref().unwrap_or(id), name, out);
            }
            Event::ToolArguments { index, fragment } => self.tool_arguments(*index, fragment, out),
            Event::Finish { reason, stop_sequence } => {
                self.finish = Some((*reason, stop_sequence.as_ref().map(|s| s.json().as_bytes().to_vec())));
            }
            Event::Usage(u) => self.usage = *u,
            Event::Error(e) => {
                self.failed = true;
                write_error_event(e, out);
            }
        }
    }

    fn tool_start(&mut self, index: u32, id: &Raw<'_>, name: &Raw<'_>, out: &mut Vec<u8>) {
        let live = matches!(self.open, Open::Tool(_));
        if live || self.streamed.contains(&index) {
            // Another call is streaming: hold this one back.
            self.held.push(Held {
                index,
                id: id.json().as_bytes().to_vec(),
                name: name.json().as_bytes().to_vec(),
                arguments: Vec::new(),
            });
            return;
        }
        self.streamed.push(index);
        self.open_block(
            Open::Tool(index),
            &[
                b"{\"type\":\"tool_use\",\"id\":",
                id.json().as_bytes(),
                b",\"name\":",
                name.json().as_bytes(),
                b",\"input\":{}}",
            ],
            out,
        );
    }

    fn tool_arguments(&mut self, index: u32, fragment: &Raw<'_>, out: &mut Vec<u8>) {
        if self.open == Open::Tool(index) {
            self.delta(b"input_json_delta", b"partial_json", fragment.json().as_bytes(), out);
        } else if let Some(held) = self.held.iter_mut().find(|h| h.index == index) {
            held.arguments.extend_from_slice(fragment.string_body().unwrap_or_default().as_bytes());
        }
        // Fragments of a call that was already closed cannot be placed; a
        // provider that does this sends arguments after their call ended.
    }

    fn flush_held(&mut self, out: &mut Vec<u8>) {
        self.close_block(out);
        let held = std::mem::take(&mut self.held);
        for h in &held {
            self.open_block(
                Open::Tool(h.index),
                &[b"{\"type\":\"tool_use\",\"id\":", &h.id, b",\"name\":", &h.name, b",\"input\":{}}"],
                out,
            );
            if !h.arguments.is_empty() {
                let mut value = Vec::with_capacity(h.arguments.len() + 2);
                value.push(b'"');
                value.extend_from_slice(&h.arguments);
                value.push(b'"');
                self.delta(b"input_json_delta", b"partial_json", &value, out);
            }
            self.close_block(out);
        }
    }

    /// The provider is done: close the open block, write the held tool
    /// calls, then `message_delta` with the stop reason and usage, and
    /// `message_stop`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        if !self.started {
            self.start(None, None, out);
        }
        self.flush_held(out);
        let saw_tool = !self.streamed.is_empty();
        let (reason, stop_sequence) = self.finish.take().unwrap_or((Finish::Stop, None));
        let reason = if reason == Finish::Stop && saw_tool { Finish::ToolCalls } else { reason };
        out.extend_from_slice(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"");
        out.extend_from_slice(super::response::finish_str(reason).as_bytes());
        out.extend_from_slice(b"\",\"stop_sequence\":");
        out.extend_from_slice(stop_sequence.as_deref().unwrap_or(b"null"));
        out.extend_from_slice(b"},\"usage\":");
        super::response::write_usage(&self.usage, out);
        out.extend_from_slice(b"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    }
}

/// `event: error`: how Anthropic reports a failure after the 200.
pub fn write_error_event(e: &ProviderError, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: error\ndata: ");
    e.write_anthropic(out);
    out.extend_from_slice(b"\n\n");
}

/// Reads the usage an Anthropic event carries into `usage` (the same-dialect
/// path, where events pass through untouched). Only `message_start` and
/// `message_delta` carry usage; other events are skipped by a byte search.
pub fn event_usage(event: &[u8], usage: &mut Usage) {
    if memchr::memmem::find(event, b"\"usage\"").is_none() {
        return;
    }
    let Some(data) = crate::sse::single_data(event) else { return };
    let path: &[&str] =
        if memchr::memmem::find(data, b"\"message_start\"").is_some() { &["message", "usage"] } else { &["usage"] };
    if let Ok(raw) = sonic_rs::get(data, path)
        && let Ok(wire) = sonic_rs::from_str::<UsageWire>(raw.as_raw_str())
    {
        wire.merge_into(usage);
    }
}
