//! ConverseStream answers: event-stream frames decoded to canonical events.
//!
//! The framing is [`crate::eventstream`]'s; this decoder reads one frame at
//! a time. An `event` frame's `:event-type` names the member of the stream
//! union and its payload is that member's JSON (`bedrock.md` §4):
//! `messageStart`, `contentBlockStart` (tool calls only: text and reasoning
//! blocks start with their first delta), `contentBlockDelta`,
//! `contentBlockStop`, `messageStop` and `metadata`. An `exception` frame is
//! a failure after the 200, mapped like a non-streamed error
//! ([`super::response::kind_of`]).
//!
//! Converse has no terminator: usage (`metadata`) comes after `messageStop`
//! and the stream ends when the connection does. So `messageStop` does not
//! end the stream; [`Decoder::ended_cleanly`] tells the translator that an
//! end of input after it is the normal end, and one before it a cut answer.
//! Content block indexes count text, reasoning and tool blocks; tool-call
//! indexes count tool calls only, and are mapped here.

use std::borrow::Cow;

use serde::Deserialize;

use super::response::{AdditionalWire, UsageWire, finish_from_str};
use crate::canon::Event;
use crate::error::ProviderError;
use crate::eventstream::{Frame, MessageType};
use crate::raw::Raw;
use crate::stream::Step;

/// The payload of every event type, by the keys it may have.
#[derive(Deserialize)]
struct PayloadWire<'a> {
    #[serde(default, rename = "contentBlockIndex")]
    index: Option<u32>,
    #[serde(borrow, default)]
    start: Option<StartWire<'a>>,
    #[serde(borrow, default)]
    delta: Option<DeltaWire<'a>>,
    #[serde(borrow, default, rename = "stopReason")]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "additionalModelResponseFields")]
    additional: Option<AdditionalWire<'a>>,
    #[serde(default)]
    usage: Option<UsageWire>,
}

#[derive(Deserialize)]
struct StartWire<'a> {
    #[serde(borrow, default, rename = "toolUse")]
    tool_use: Option<ToolStartWire<'a>>,
}

#[derive(Deserialize)]
struct ToolStartWire<'a> {
    #[serde(borrow, rename = "toolUseId")]
    id: Raw<'a>,
    #[serde(borrow)]
    name: Raw<'a>,
}

#[derive(Deserialize)]
struct DeltaWire<'a> {
    #[serde(borrow, default)]
    text: Option<Raw<'a>>,
    #[serde(borrow, default, rename = "toolUse")]
    tool_use: Option<ToolDeltaWire<'a>>,
    #[serde(borrow, default, rename = "reasoningContent")]
    reasoning: Option<ReasoningDeltaWire<'a>>,
}

#[derive(Deserialize)]
struct ToolDeltaWire<'a> {
    #[serde(borrow, default)]
    input: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ReasoningDeltaWire<'a> {
    #[serde(borrow, default)]
    text: Option<Raw<'a>>,
    #[serde(borrow, default)]
    signature: Option<Raw<'a>>,
    #[serde(borrow, default, rename = "redactedContent")]
    redacted: Option<Raw<'a>>,
}

/// Turns a Bedrock provider's frames into canonical events.
#[derive(Default)]
pub struct Decoder {
    /// Content block index → tool-call index, for the tool blocks seen.
    tools: Vec<(u32, u32)>,
    /// `messageStop` arrived: the end of input is now the normal end.
    stopped: bool,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Whether the stream may end here: after `messageStop`.
    pub fn ended_cleanly(&self) -> bool {
        self.stopped
    }

    /// Decodes one frame. Never says [`Step::Done`]: only the end of the
    /// connection ends a Converse stream.
    pub fn decode(&mut self, frame: &Frame<'_>, sink: &mut impl FnMut(Event<'_>)) -> Result<Step, String> {
        match frame.message_type() {
            Some(MessageType::Event) => {}
            Some(MessageType::Exception) => {
                sink(Event::Error(exception(frame)));
                return Ok(Step::More);
            }
            Some(MessageType::Error) => {
                let code = frame.error_code().unwrap_or("UnknownError");
                let message = frame.error_message().unwrap_or("the provider failed mid-stream");
                let error = ProviderError {
                    kind: super::response::kind_of(code, 500),
                    message: message.to_owned(),
                    code: Some(code.to_owned()),
                };
                sink(Event::Error(error));
                return Ok(Step::More);
            }
            None => return Ok(Step::More),
        }
        let Some(event_type) = frame.event_type() else { return Ok(Step::More) };
        if event_type == "contentBlockDelta"
            && let Some(text) = fast_text_delta(frame.payload)
        {
            if text.json() != "\"\"" {
                sink(Event::Text(text));
            }
            return Ok(Step::More);
        }
        let payload: PayloadWire<'_> = crate::wire::from_slice(frame.payload).map_err(|e| {
            format!("the provider sent a {event_type} event that is not JSON: {}", crate::error::first_line(e))
        })?;
        match event_type {
            "messageStart" => sink(Event::Start { id: None, model: None, usage: None }),
            "contentBlockStart" => self.block_start(payload, sink),
            "contentBlockDelta" => self.block_delta(payload, sink),
            "messageStop" => {
                self.stopped = true;
                let reason = finish_from_str(payload.stop_reason.as_deref().unwrap_or(""));
                let stop_sequence = payload.additional.and_then(|a| a.stop_sequence).filter(Raw::is_string);
                sink(Event::Finish { reason, stop_sequence });
            }
            "metadata" => {
                if let Some(usage) = payload.usage {
                    sink(Event::Usage(usage.usage()));
                }
            }
            // contentBlockStop, and event types added later.
            _ => {}
        }
        Ok(Step::More)
    }

    fn block_start(&mut self, payload: PayloadWire<'_>, sink: &mut impl FnMut(Event<'_>)) {
        let Some(call) = payload.start.and_then(|s| s.tool_use) else { return };
        let tool = self.tools.len() as u32;
        self.tools.push((payload.index.unwrap_or(0), tool));
        sink(Event::ToolStart { index: tool, id: call.id, name: call.name, signature: None });
    }

    fn block_delta(&mut self, payload: PayloadWire<'_>, sink: &mut impl FnMut(Event<'_>)) {
        let Some(delta) = payload.delta else { return };
        let non_empty = |r: &Raw<'_>| r.is_string() && r.json() != "\"\"";
        if let Some(text) = delta.text.filter(non_empty) {
            sink(Event::Text(text));
        }
        if let Some(fragment) = delta.tool_use.and_then(|t| t.input).filter(non_empty) {
            let index = payload.index.unwrap_or(0);
            if let Some(&(_, tool)) = self.tools.iter().find(|(block, _)| *block == index) {
                sink(Event::ToolArguments { index: tool, fragment });
            }
        }
        if let Some(reasoning) = delta.reasoning {
            if let Some(text) = reasoning.text.filter(non_empty) {
                sink(Event::Thinking(text));
            }
            if let Some(signature) = reasoning.signature.filter(non_empty) {
                sink(Event::ThinkingSignature(signature));
            }
            if let Some(data) = reasoning.redacted.filter(non_empty) {
                sink(Event::RedactedThinking(data));
            }
        }
    }
}

/// The text of a `contentBlockDelta` that carries only text, in the shape
/// Bedrock sends it byte for byte: `{"contentBlockIndex":N,"delta":{"text":"..."}}`.
/// Most frames of a stream are these; anything else goes to the general
/// parser.
fn fast_text_delta(payload: &[u8]) -> Option<Raw<'_>> {
    let rest = payload.strip_prefix(b"{\"contentBlockIndex\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = rest[digits..].strip_prefix(b",\"delta\":{\"text\":")?;
    let len = crate::raw::string_literal_len(rest)?;
    if digits == 0 || &rest[len..] != b"}}" {
        return None;
    }
    Some(Raw::from_json(std::str::from_utf8(&rest[..len]).ok()?))
}

/// An `exception` frame: `:exception-type` names it, the payload is
/// `{"message": ...}`. Without a name it is a server error.
fn exception(frame: &Frame<'_>) -> ProviderError {
    super::response::parse_error(500, frame.payload, frame.exception_type())
}

#[cfg(test)]
mod tests {
    use crate::stream::{Context, Dialect, State, Translator};

    /// The two frames of `bedrock.md` §5, hex-encoded there.
    const DELTA_HI: &str = "0000009400000057b4ab9aee0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c74610d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22636f6e74656e74426c6f636b496e646578223a302c2264656c7461223a7b2274657874223a224869227d7d1f944657";
    const THROTTLED: &str = "0000009100000061b3f180070f3a657863657074696f6e2d747970650700137468726f74746c696e67457863657074696f6e0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d74797065070009657863657074696f6e7b226d657373616765223a2022546f6f206d616e79207265717565737473227d898cacc1";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn translator() -> Translator {
        let cx = Context { id: "gen-1".into(), model: "m".into(), created: 1, include_usage: false, json_tool: false };
        Translator::new(Dialect::Bedrock, Dialect::OpenAi, cx)
    }

    #[test]
    fn the_documented_vectors_cut_at_every_byte() {
        let stream = [hex(DELTA_HI), hex(THROTTLED)].concat();
        for cut in 1..stream.len() {
            let mut t = translator();
            let mut out = Vec::new();
            t.feed(&stream[..cut], &mut out);
            t.feed(&stream[cut..], &mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("\"delta\":{\"content\":\"Hi\"}"), "cut at {cut}: {text}");
            assert!(text.ends_with(
                "data: {\"error\":{\"message\":\"Too many requests\",\"type\":\"rate_limit_error\",\"param\":null,\"code\":\"ThrottlingException\"}}\n\n"
            ));
            assert_eq!(t.end(&mut Vec::new()), State::Failed);
        }
    }

    #[test]
    fn a_corrupt_frame_fails_the_stream() {
        let mut frame = hex(DELTA_HI);
        let last = frame.len() - 1;
        frame[last] ^= 1;
        let mut t = translator();
        let mut out = Vec::new();
        assert_eq!(t.feed(&frame, &mut out), State::Failed);
        assert!(String::from_utf8(out).unwrap().contains("event stream is corrupt: event-stream message CRC mismatch"));
    }

    #[test]
    fn every_stop_reason_maps() {
        use crate::canon::Finish;
        let table = [
            ("end_turn", Finish::Stop),
            ("tool_use", Finish::ToolCalls),
            ("max_tokens", Finish::Length),
            ("stop_sequence", Finish::StopSequence),
            ("guardrail_intervened", Finish::ContentFilter),
            ("content_filtered", Finish::ContentFilter),
            ("malformed_model_output", Finish::Stop),
            ("malformed_tool_use", Finish::Stop),
            ("model_context_window_exceeded", Finish::Length),
            ("something_new", Finish::Stop),
        ];
        for (reason, finish) in table {
            assert_eq!(super::finish_from_str(reason), finish, "{reason}");
        }
    }
}
