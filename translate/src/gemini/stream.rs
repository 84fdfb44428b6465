//! Gemini `streamGenerateContent?alt=sse` streams, decoded to canonical
//! events.
//!
//! Each `data:` event is a whole `GenerateContentResponse` holding only the
//! new parts. Three things differ from the other dialects:
//! - There is no terminator: the stream ends when the HTTP body ends. The
//!   decoder answers [`Step::Complete`] once a `finishReason` (or a blocked
//!   prompt) has come, and the [`crate::stream::Translator`] takes the end
//!   of the body as a normal end only then; a body cut before is a failure.
//! - A function call comes whole in one chunk. It becomes a
//!   [`Event::ToolStart`] and one [`Event::ToolArguments`] whose fragment is
//!   the whole `args` object as a string literal, written into a buffer the
//!   decoder keeps (so a warm stream does not allocate for it). Ids are
//!   synthesized as in [`super::response`] when Gemini gives none, from the
//!   first chunk's response id and a counter, so they are stable.
//! - An error after the 200 comes as a bare JSON object (not always behind
//!   `data:`); it becomes [`Event::Error`] with the kind its code says.
//!
//! `usageMetadata` may come on several chunks; each replaces the last.
//! Thought signatures on function calls have no place in canonical events
//! and are not carried through a stream (the non-streamed answer keeps
//! them).

use super::response::{CandidateWire, UsageWire, Wire, finish_from_str, id_stem, with_calls, write_call_id};
use crate::canon::{Event, Finish};
use crate::raw::Raw;
use crate::stream::Step;

/// The longest response id kept for synthesized call ids, in bytes.
const ID_STEM_BYTES_MAX: usize = 128;

/// Turns a Gemini provider's events into canonical events.
pub struct Decoder {
    started: bool,
    /// A `finishReason` or a blocked prompt came: the answer is whole.
    complete: bool,
    /// Function calls so far; the next one's tool index.
    calls: u32,
    /// The first chunk's response id, when usable in call ids.
    id_stem: String,
    /// Where synthesized ids and stringified arguments are written.
    scratch: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            started: false,
            complete: false,
            calls: 0,
            id_stem: String::with_capacity(ID_STEM_BYTES_MAX),
            scratch: Vec::new(),
        }
    }

    /// Decodes one event's JSON.
    pub fn decode(&mut self, data: &[u8], sink: &mut impl FnMut(Event<'_>)) -> Result<Step, String> {
        let chunk: Wire<'_> = crate::wire::from_slice(data)
            .map_err(|e| format!("the provider sent a chunk that is not JSON: {}", crate::error::first_line(e)))?;
        if let Some(error) = chunk.error.filter(Raw::is_object) {
            let body = format!("{{\"error\":{}}}", error.json());
            sink(Event::Error(super::response::parse_error(200, body.as_bytes())));
            return Ok(self.step());
        }
        let usage = chunk.usage_metadata.map(UsageWire::usage);
        if !self.started {
            self.started = true;
            self.id_stem.push_str(id_stem(chunk.response_id.as_ref()));
            sink(Event::Start {
                id: chunk.response_id.filter(Raw::is_string),
                model: chunk.model_version.filter(Raw::is_string),
                usage,
            });
        }
        let candidate = chunk.candidates.flatten();
        let finish = match candidate {
            Some(candidate) => self.candidate(candidate, sink),
            None if chunk.prompt_feedback.as_ref().is_some_and(|f| f.blocked()) => Some(Finish::ContentFilter),
            None => None,
        };
        if let Some(usage) = usage {
            sink(Event::Usage(usage));
        }
        if let Some(reason) = finish {
            self.complete = true;
            sink(Event::Finish { reason, stop_sequence: None });
        }
        Ok(self.step())
    }

    fn step(&self) -> Step {
        if self.complete { Step::Complete } else { Step::More }
    }

    /// Emits a candidate's parts; returns its finish, when it has one.
    fn candidate(&mut self, candidate: CandidateWire<'_>, sink: &mut impl FnMut(Event<'_>)) -> Option<Finish> {
        let parts = candidate.content.and_then(|c| c.parts).unwrap_or_default();
        crate::wire::for_each_element(&parts, |part: super::response::PartWire<'_>| {
            let thought = part.is_thought();
            if let Some(call) = part.function_call {
                let args = call.args.filter(Raw::is_object).unwrap_or(Raw::from_json("{}"));
                let signature = part.thought_signature.filter(Raw::is_string);
                self.call(call.id, call.name.filter(Raw::is_string).unwrap_or_default(), &args, signature, sink);
                return;
            }
            if let Some(text) = part.text.filter(|t| t.is_string() && t.json() != "\"\"") {
                sink(if thought { Event::Thinking(text) } else { Event::Text(text) });
            }
            if thought && let Some(signature) = part.thought_signature.filter(Raw::is_string) {
                sink(Event::ThinkingSignature(signature));
            }
        });
        let finish = candidate.finish_reason.map(finish_from_str)?;
        Some(with_calls(finish, self.calls > 0))
    }

    /// One whole call: its start, then all its arguments in one fragment.
    fn call(
        &mut self,
        id: Option<Raw<'_>>,
        name: Raw<'_>,
        args: &Raw<'_>,
        signature: Option<Raw<'_>>,
        sink: &mut impl FnMut(Event<'_>),
    ) {
        let index = self.calls;
        self.calls += 1;
        self.scratch.clear();
        match id.filter(|i| i.is_string() && !i.is_blank_string()) {
            Some(id) => self.scratch.extend_from_slice(id.json().as_bytes()),
            None => write_call_id(&self.id_stem, index, &mut self.scratch),
        }
        sink(Event::ToolStart { index, id: scratch_raw(&self.scratch), name, signature });
        self.scratch.clear();
        crate::raw::write_as_string(&mut self.scratch, args);
        sink(Event::ToolArguments { index, fragment: scratch_raw(&self.scratch) });
    }
}

/// The scratch buffer as a raw value. It only ever holds a string literal
/// built from valid UTF-8 pieces.
fn scratch_raw(scratch: &[u8]) -> Raw<'_> {
    Raw::from_json(std::str::from_utf8(scratch).unwrap_or("\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut Decoder, data: &str) -> (Vec<String>, Step) {
        let mut events = Vec::new();
        let step = decoder.decode(data.as_bytes(), &mut |e| events.push(format!("{e:?}"))).unwrap();
        (events, step)
    }

    #[test]
    fn a_whole_call_becomes_start_and_one_fragment() {
        let mut d = Decoder::new();
        let (events, step) = decode_all(
            &mut d,
            r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{"a":"\"x\""}}}]},"finishReason":"STOP"}],"responseId":"r1"}"#,
        );
        assert_eq!(step, Step::Complete);
        assert_eq!(
            events[1..],
            [
                r#"ToolStart { index: 0, id: "call_r1_0", name: "f", signature: None }"#,
                r#"ToolArguments { index: 0, fragment: "{\"a\":\"\\\"x\\\"\"}" }"#,
                "Finish { reason: ToolCalls, stop_sequence: None }",
            ]
        );
    }

    fn context() -> crate::stream::Context {
        crate::stream::Context {
            id: "gen-1".into(),
            model: "m".into(),
            created: 0,
            include_usage: true,
            json_tool: false,
        }
    }

    fn translate(input: &[u8]) -> (crate::stream::State, String) {
        use crate::stream::{ClientDialect, Dialect, Translator};
        let mut t = Translator::with_client(Dialect::Gemini, ClientDialect::OpenAi, context());
        let mut out = Vec::new();
        t.feed(input, &mut out);
        let state = t.end(&mut out);
        (state, String::from_utf8(out).unwrap())
    }

    const STREAM: &str = concat!(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"h\\u00e9\"}]}}],\"responseId\":\"r\"}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{\"a\":[1]}}}]},",
        "\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":1}}\r\n\r\n",
    );

    #[test]
    fn the_end_of_the_body_is_a_normal_end_only_after_a_finish() {
        use crate::stream::State;
        let (state, out) = translate(STREAM.as_bytes());
        assert_eq!(state, State::Done, "{out}");
        assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
        let cut = STREAM.find("data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall").unwrap();
        let (state, out) = translate(&STREAM.as_bytes()[..cut]);
        assert_eq!(state, State::Failed, "{out}");
    }

    #[test]
    fn every_prefix_of_a_stream_ends_without_panic() {
        for cut in 0..=STREAM.len() {
            let (state, _) = translate(&STREAM.as_bytes()[..cut]);
            assert_ne!(state, crate::stream::State::Open, "cut at {cut}");
        }
    }

    #[test]
    #[should_panic(expected = "provider dialect")]
    fn gemini_is_never_a_client_dialect() {
        use crate::stream::{Dialect, Translator};
        let _ = Translator::new(Dialect::OpenAi, Dialect::Gemini, context());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = Decoder::new();
        assert!(d.decode(b"{\"candidates\":", &mut |_| {}).is_err());
        assert!(d.decode(b"[1,2]", &mut |_| {}).is_err());
        let (events, step) = decode_all(&mut d, r#"{"candidates":[{"content":{"parts":[{"text":5}]}}]}"#);
        assert_eq!(step, Step::More);
        assert_eq!(events.len(), 1, "{events:?}");
    }
}
