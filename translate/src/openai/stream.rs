//! OpenAI `chat.completion.chunk` streams, decoded to canonical events and
//! encoded from them.

use serde::Deserialize;

use crate::Usage;
use crate::canon::{Event, Finish};
use crate::error::ProviderError;
use crate::raw::Raw;
use crate::stream::{Context, Step};

#[derive(Deserialize)]
struct ChunkWire<'a> {
    #[serde(borrow, default)]
    id: Option<Raw<'a>>,
    #[serde(borrow, default)]
    model: Option<Raw<'a>>,
    /// The first choice only (corelay asks for one), read without
    /// allocating; `Some(None)` for an empty `choices` array.
    #[serde(borrow, default, deserialize_with = "crate::wire::first_element")]
    choices: Option<Option<ChoiceWire<'a>>>,
    #[serde(borrow, default)]
    usage: Option<Raw<'a>>,
    #[serde(borrow, default)]
    error: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ChoiceWire<'a> {
    #[serde(borrow, default)]
    delta: Option<DeltaWire<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a str>,
}

#[derive(Deserialize)]
struct DeltaWire<'a> {
    #[serde(borrow, default)]
    content: Option<Raw<'a>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Raw<'a>>,
    /// Ollama's (and OpenRouter's) name for the same text; used when
    /// `reasoning_content` is absent.
    #[serde(borrow, default)]
    reasoning: Option<Raw<'a>>,
    #[serde(borrow, default)]
    refusal: Option<Raw<'a>>,
    /// Kept raw and walked element by element, so that a chunk with tool
    /// calls allocates nothing.
    #[serde(borrow, default)]
    tool_calls: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ToolDeltaWire<'a> {
    #[serde(default)]
    index: u32,
    #[serde(borrow, default)]
    id: Option<Raw<'a>>,
    #[serde(borrow, default)]
    function: Option<FunctionDeltaWire<'a>>,
}

#[derive(Deserialize)]
struct FunctionDeltaWire<'a> {
    #[serde(borrow, default)]
    name: Option<Raw<'a>>,
    #[serde(borrow, default)]
    arguments: Option<Raw<'a>>,
}

/// Turns an OpenAI-dialect provider's chunks into canonical events.
pub struct Decoder {
    started: bool,
    json_tool: bool,
}

impl Decoder {
    pub fn new(json_tool: bool) -> Decoder {
        Decoder { started: false, json_tool }
    }

    /// Decodes one event's `data`.
    pub fn decode(&mut self, data: &[u8], sink: &mut impl FnMut(Event<'_>)) -> Result<Step, String> {
        if data.trim_ascii() == b"[DONE]" {
            return Ok(Step::Done);
        }
        if self.started
            && let Some(text) = fast_content(data)
        {
            if text.json() != "\"\"" {
                sink(Event::Text(text));
            }
            return Ok(Step::More);
        }
        let chunk: ChunkWire<'_> = crate::wire::from_slice(data)
            .map_err(|e| format!("the provider sent a chunk that is not JSON: {}", crate::error::first_line(e)))?;
        if let Some(error) = chunk.error.filter(Raw::is_object) {
            sink(Event::Error(crate::error::parse_openai_error(
                500,
                format!("{{\"error\":{}}}", error.json()).as_bytes(),
            )));
            return Ok(Step::More);
        }
        let choice = chunk.choices.flatten();
        // Azure's prelude chunk (no choices, empty id) carries only filter results.
        let has_id = chunk.id.as_ref().is_some_and(|id| !id.is_blank_string());
        if !self.started && (has_id || choice.is_some()) {
            self.started = true;
            sink(Event::Start {
                id: chunk.id.filter(|i| i.is_string() && has_id),
                model: chunk.model.filter(Raw::is_string),
                usage: None,
            });
        }
        if let Some(choice) = choice {
            if let Some(delta) = choice.delta {
                self.delta(delta, sink);
            }
            if let Some(reason) = choice.finish_reason {
                let reason = super::response::finish_from_str(reason);
                let reason = if self.json_tool && reason == Finish::ToolCalls { Finish::Stop } else { reason };
                sink(Event::Finish { reason, stop_sequence: None });
            }
        }
        if let Some(usage) =
            chunk.usage.filter(Raw::is_object).and_then(|u| super::usage_from_object(u.json().as_bytes()))
        {
            sink(Event::Usage(usage));
        }
        Ok(Step::More)
    }

    fn delta(&mut self, delta: DeltaWire<'_>, sink: &mut impl FnMut(Event<'_>)) {
        let reasoning = delta.reasoning_content.or(delta.reasoning);
        if let Some(text) = reasoning.filter(|t| t.is_string() && !t.is_blank_string()) {
            sink(Event::Thinking(text));
        }
        if let Some(text) = delta.content.filter(|t| t.is_string() && t.json() != "\"\"") {
            sink(Event::Text(text));
        }
        if let Some(text) = delta.refusal.filter(|t| t.is_string() && t.json() != "\"\"") {
            sink(Event::Text(text));
        }
        let Some(calls) = delta.tool_calls else { return };
        crate::wire::for_each_element(&calls, |call: ToolDeltaWire<'_>| {
            let function = call.function;
            let (name, arguments) = match function {
                Some(f) => (f.name, f.arguments),
                None => (None, None),
            };
            if self.json_tool {
                if let Some(fragment) = arguments.filter(|a| a.is_string() && a.json() != "\"\"") {
                    sink(Event::Text(fragment));
                }
                return;
            }
            if let Some(id) = call.id.filter(Raw::is_string) {
                sink(Event::ToolStart { index: call.index, id, name: name.unwrap_or_default(), signature: None });
            }
            if let Some(fragment) = arguments.filter(|a| a.is_string() && a.json() != "\"\"") {
                sink(Event::ToolArguments { index: call.index, fragment });
            }
        });
    }
}

/// The text of a chunk that carries nothing but text, found without the
/// general parser: most chunks of a stream are these. The chunk must have
/// one `"delta":{"content":"..."}` followed by `}`, a null `finish_reason`,
/// and none of the members that need the general parser (tool calls,
/// usage, an error, reasoning, a refusal). Those names cannot occur inside
/// a string, where their quotes would be escaped.
fn fast_content(data: &[u8]) -> Option<Raw<'_>> {
    use memchr::memmem::Finder;
    // Searchers are built once: building one costs more than a search.
    static FINDERS: std::sync::LazyLock<[Finder<'static>; 7]> = std::sync::LazyLock::new(|| {
        [
            Finder::new(b"\"delta\":{\"content\":"),
            Finder::new(b"\"finish_reason\":null"),
            Finder::new(b"\"tool_calls\""),
            Finder::new(b"\"usage\":{"),
            Finder::new(b"\"error\""),
            Finder::new(b"\"reasoning_content\""),
            Finder::new(b"\"refusal\":\""),
        ]
    });
    let [delta, finish_null, slow @ ..] = &*FINDERS;
    let at = delta.find(data)?;
    let rest = &data[at + delta.needle().len()..];
    let len = crate::raw::string_literal_len(rest)?;
    if rest.get(len) != Some(&b'}') || finish_null.find(data).is_none() {
        return None;
    }
    // A second choice, or anything the general parser must see.
    if slow.iter().any(|f| f.find(data).is_some()) || delta.find(&rest[len..]).is_some() {
        return None;
    }
    Some(Raw::from_json(std::str::from_utf8(&rest[..len]).ok()?))
}

/// Writes canonical events as `chat.completion.chunk` server-sent events.
pub struct Encoder {
    cx: Context,
    /// `data: {"id":..,"object":..,"created":..,"model":..,"choices":[{"index":0,"delta":`
    /// once the stream started; every chunk begins with it.
    prefix: Vec<u8>,
    finished: bool,
    failed: bool,
    usage: Option<Usage>,
    saw_tool: bool,
}

impl Encoder {
    pub fn new(cx: Context) -> Encoder {
        Encoder { cx, prefix: Vec::new(), finished: false, failed: false, usage: None, saw_tool: false }
    }

    fn start(&mut self, id: Option<&Raw<'_>>, out: &mut Vec<u8>) {
        let p = &mut self.prefix;
        p.extend_from_slice(b"data: {\"id\":");
        match id {
            Some(id) => p.extend_from_slice(id.json().as_bytes()),
            None => crate::raw::write_json_string(p, &self.cx.id),
        }
        p.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        p.extend_from_slice(itoa::Buffer::new().format(self.cx.created).as_bytes());
        p.extend_from_slice(b",\"model\":");
        crate::raw::write_json_string(p, &self.cx.model);
        p.extend_from_slice(b",\"choices\":[");
        self.chunk(out, b"{\"role\":\"assistant\",\"content\":\"\"}", &[], None);
    }

    /// One chunk: the delta object given in pieces, and a finish reason.
    fn chunk(&self, out: &mut Vec<u8>, head: &[u8], rest: &[&[u8]], finish: Option<&str>) {
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(b"{\"index\":0,\"delta\":");
        out.extend_from_slice(head);
        for piece in rest {
            out.extend_from_slice(piece);
        }
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(f) => {
                out.push(b'"');
                out.extend_from_slice(f.as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(if self.cx.include_usage { b"}],\"usage\":null}\n\n" } else { b"}]}\n\n" });
    }

    pub fn event(&mut self, event: &Event<'_>, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        if self.prefix.is_empty() && !matches!(event, Event::Error(_) | Event::Usage(_)) {
            let id = match event {
                Event::Start { id, .. } => id.as_ref(),
                _ => None,
            };
            self.start(id, out);
        }
        match event {
            Event::Start { usage, .. } => self.usage = usage.or(self.usage),
            Event::Text(text) => self.chunk(out, b"{\"content\":", &[text.json().as_bytes(), b"}"], None),
            Event::Thinking(text) => self.chunk(out, b"{\"reasoning_content\":", &[text.json().as_bytes(), b"}"], None),
            // A streaming client cannot otherwise send signed reasoning back
            // (Anthropic and Bedrock require it when tool results follow
            // thinking): the signature closes the shown reasoning as a
            // `thinking_blocks` entry, which the request parser joins with
            // the accumulated `reasoning_content` on the replay.
            Event::ThinkingSignature(signature) => self.chunk(
                out,
                b"{\"thinking_blocks\":[{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":",
                &[signature.json().as_bytes(), b"}]}"],
                None,
            ),
            Event::RedactedThinking(data) => self.chunk(
                out,
                b"{\"thinking_blocks\":[{\"type\":\"redacted_thinking\",\"data\":",
                &[data.json().as_bytes(), b"}]}"],
                None,
            ),
            Event::ToolStart { index, id, name, signature } => {
                self.saw_tool = true;
                let mut n = itoa::Buffer::new();
                // Gemini's thought signature rides on the call, as in
                // non-streamed answers, so that a client sends it back.
                let (sig_key, sig): (&[u8], &[u8]) = match signature {
                    Some(s) => (b",\"thought_signature\":", s.json().as_bytes()),
                    None => (b"", b""),
                };
                self.chunk(
                    out,
                    b"{\"tool_calls\":[{\"index\":",
                    &[
                        n.format(*index).as_bytes(),
                        b",\"id\":",
                        id.json().as_bytes(),
                        b",\"type\":\"function\",\"function\":{\"name\":",
                        name.json().as_bytes(),
                        b",\"arguments\":\"\"}",
                        sig_key,
                        sig,
                        b"}]}",
                    ],
                    None,
                );
            }
            Event::ToolArguments { index, fragment } => {
                let mut n = itoa::Buffer::new();
                self.chunk(
                    out,
                    b"{\"tool_calls\":[{\"index\":",
                    &[
                        n.format(*index).as_bytes(),
                        b",\"function\":{\"arguments\":",
                        fragment.json().as_bytes(),
                        b"}}]}",
                    ],
                    None,
                );
            }
            Event::Finish { reason, .. } => {
                if !self.finished {
                    self.finished = true;
                    let reason = if *reason == Finish::Stop && self.saw_tool { Finish::ToolCalls } else { *reason };
                    self.chunk(out, b"{}", &[], Some(super::response::finish_str(reason)));
                }
            }
            Event::Usage(u) => self.usage = Some(*u),
            Event::Error(e) => {
                self.failed = true;
                write_error_event(e, out);
            }
        }
    }

    /// The provider is done: the usage chunk when asked for, then `[DONE]`.
    /// A provider that reported no usage (a Bedrock stream cut before its
    /// `metadata`) gives `"usage":null`, not a count of zero.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        if self.prefix.is_empty() {
            self.start(None, out);
        }
        if !self.finished {
            self.event(&Event::Finish { reason: Finish::Stop, stop_sequence: None }, out);
        }
        if self.cx.include_usage {
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(b"],\"usage\":");
            match &self.usage {
                Some(usage) => super::response::write_usage(usage, out),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b"}\n\n");
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

/// `data: {"error":{...}}`: how OpenAI reports a failure after the 200; the
/// official SDKs raise on it.
pub fn write_error_event(e: &ProviderError, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    e.write_openai(out);
    out.extend_from_slice(b"\n\n");
}
