//! Streamed answers from one dialect to another: bytes in, bytes out.
//!
//! A [`Translator`] is the state machine for one stream. The gateway feeds it
//! the provider's bytes as they arrive, cut anywhere, and sends what it
//! appends to `out` to the client. Inside, three pieces run in a line:
//! framing (server-sent events, or Bedrock's binary event-stream frames;
//! Ollama's lines plug in the same way), a decoder of the provider's dialect
//! that turns each event into canonical [`Event`]s, and an encoder of the
//! client's dialect that writes them. Decoders and encoders keep their
//! buffers between events, so a warm stream allocates nothing per event.
//!
//! Only front-door dialects have encoders ([`ClientDialect`]): Gemini and
//! Bedrock streams are read, never written. [`Translator::with_client`] says
//! so in its type; [`Translator::new`] takes any [`Dialect`] and panics on a
//! provider-only one, which is a programmer's error.
//!
//! A stream ends one of two ways: the decoder sees its dialect's terminator
//! ([`Step::Done`]: OpenAI's `[DONE]`, Anthropic's `message_stop`), or the
//! provider closes the connection ([`Translator::end`]) after the decoder
//! says the answer is whole (`ended_cleanly`: Bedrock after `messageStop`,
//! whose usage follows it; Gemini after a `finishReason`, which its decoder
//! reports as [`Step::Complete`]). Any other end is a cut answer and a
//! failure.

use crate::Usage;
use crate::canon::Event;
use crate::error::{ErrorKind, ProviderError};
use crate::sse::{Piece, Splitter};

/// A wire format, named by who speaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
    /// AWS Bedrock Converse; a provider dialect only, never a client's.
    Bedrock,
    /// Google Gemini; a provider dialect only.
    Gemini,
}

/// The dialects clients speak to corelay: the front doors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientDialect {
    OpenAi,
    Anthropic,
}

impl TryFrom<Dialect> for ClientDialect {
    /// The provider-only dialect given.
    type Error = Dialect;

    fn try_from(dialect: Dialect) -> Result<ClientDialect, Dialect> {
        match dialect {
            Dialect::OpenAi => Ok(ClientDialect::OpenAi),
            Dialect::Anthropic => Ok(ClientDialect::Anthropic),
            other => Err(other),
        }
    }
}

/// What the encoder needs to know that the stream does not say.
#[derive(Debug, Clone)]
pub struct Context {
    /// The id to use when the provider gives none.
    pub id: String,
    /// The model name the client sees on every chunk.
    pub model: String,
    /// Unix seconds, from the gateway's clock.
    pub created: u64,
    /// OpenAI clients: whether they asked for `stream_options.include_usage`.
    pub include_usage: bool,
    /// The provider was asked for JSON through a forced tool (Anthropic has
    /// no JSON mode): its arguments are the answer's text.
    pub json_tool: bool,
}

/// The longest provider event accepted, in bytes.
pub const EVENT_BYTES_MAX: usize = 4 << 20;

/// How the provider's bytes are cut into events, by its dialect.
enum Framing {
    Sse(Splitter),
    EventStream(crate::eventstream::Decoder),
}

impl Framing {
    /// No bytes of an unfinished event are held.
    fn is_empty(&self) -> bool {
        match self {
            Framing::Sse(s) => s.pending().trim_ascii().is_empty(),
            Framing::EventStream(d) => d.pending_bytes() == 0,
        }
    }
}

enum Decoder {
    OpenAi(crate::openai::stream::Decoder),
    Anthropic(crate::anthropic::stream::Decoder),
    Bedrock(crate::bedrock::stream::Decoder),
    Gemini(crate::gemini::stream::Decoder),
}

impl Decoder {
    /// The JSON an event carries: its `data:` line. Gemini also sends errors
    /// after the 200 as bare JSON objects.
    fn payload<'e>(&self, event: &'e [u8]) -> Option<&'e [u8]> {
        match (crate::sse::single_data(event), self) {
            (Some(data), _) => Some(data),
            (None, Decoder::Gemini(_)) => Some(event.trim_ascii()).filter(|e| e.starts_with(b"{")),
            (None, _) => None,
        }
    }

    /// The end of input after what was decoded so far is the stream's
    /// normal end (dialects without a terminator).
    fn ended_cleanly(&self) -> bool {
        match self {
            Decoder::OpenAi(_) | Decoder::Anthropic(_) | Decoder::Gemini(_) => false,
            Decoder::Bedrock(d) => d.ended_cleanly(),
        }
    }
}

enum Encoder {
    OpenAi(crate::openai::stream::Encoder),
    Anthropic(crate::anthropic::stream::Encoder),
}

impl Encoder {
    fn event(&mut self, event: &Event<'_>, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi(e) => e.event(event, out),
            Encoder::Anthropic(e) => e.event(event, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi(e) => e.finish(out),
            Encoder::Anthropic(e) => e.finish(out),
        }
    }
}

/// Where a stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// More is expected.
    Open,
    /// The provider said it is done; the client's closing bytes are written.
    Done,
    /// The provider failed or sent garbage; the client's error is written.
    Failed,
}

/// One stream's translation. See the module docs.
pub struct Translator {
    framing: Framing,
    decoder: Decoder,
    encoder: Encoder,
    state: State,
    usage: Option<Usage>,
    /// The decoder said the answer is whole ([`Step::Complete`]).
    complete: bool,
    /// Whether any part of the answer came (text, reasoning, a tool call or
    /// the finish), as opposed to only its start and usage.
    content: bool,
    /// What failed the stream, when it failed.
    failure: Option<ProviderError>,
}

impl Translator {
    /// A translator from a provider speaking `from` to a client speaking `to`.
    ///
    /// # Panics
    /// When `to` is a provider-only dialect (Gemini, Bedrock): no client
    /// speaks it. [`Translator::with_client`] rules that out by its type.
    pub fn new(from: Dialect, to: Dialect, cx: Context) -> Translator {
        match ClientDialect::try_from(to) {
            Ok(to) => Translator::with_client(from, to, cx),
            Err(to) => panic!("{to:?} is a provider dialect: no client speaks it"),
        }
    }

    /// A translator from a provider speaking `from` to a client speaking `to`.
    pub fn with_client(from: Dialect, to: ClientDialect, cx: Context) -> Translator {
        let sse = || Framing::Sse(Splitter::new(EVENT_BYTES_MAX));
        let (framing, decoder) = match from {
            Dialect::OpenAi => (sse(), Decoder::OpenAi(crate::openai::stream::Decoder::new(cx.json_tool))),
            Dialect::Anthropic => (sse(), Decoder::Anthropic(crate::anthropic::stream::Decoder::new(cx.json_tool))),
            Dialect::Gemini => (sse(), Decoder::Gemini(crate::gemini::stream::Decoder::new())),
            Dialect::Bedrock => (
                Framing::EventStream(crate::eventstream::Decoder::new()),
                Decoder::Bedrock(crate::bedrock::stream::Decoder::new()),
            ),
        };
        let encoder = match to {
            ClientDialect::OpenAi => Encoder::OpenAi(crate::openai::stream::Encoder::new(cx)),
            ClientDialect::Anthropic => Encoder::Anthropic(crate::anthropic::stream::Encoder::new(cx)),
        };
        Translator {
            framing,
            decoder,
            encoder,
            state: State::Open,
            usage: None,
            complete: false,
            content: false,
            failure: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Whether any of the answer itself has come yet. A gateway holds back
    /// what the translator wrote until then: a stream that fails before any
    /// content can still be retried elsewhere.
    pub fn has_content(&self) -> bool {
        self.content
    }

    /// What failed the stream (a provider's error event, a cut or garbage).
    pub fn failure(&self) -> Option<&ProviderError> {
        self.failure.as_ref()
    }

    /// The latest usage the provider reported.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Feeds provider bytes; appends client bytes to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> State {
        if self.state != State::Open {
            return self.state;
        }
        let Translator { framing, decoder, encoder, state, usage, complete, content, failure } = self;
        let mut output = Output { encoder, state, usage, complete, content, failure, out };
        match framing {
            Framing::Sse(splitter) => splitter.feed(bytes, |piece| {
                if *output.state != State::Open {
                    return;
                }
                let event = match piece {
                    Piece::Event(e) => e,
                    Piece::Overflow => return output.fail("the provider sent an event larger than 4 MiB"),
                };
                let Some(data) = decoder.payload(event) else { return };
                let step = match decoder {
                    Decoder::OpenAi(d) => d.decode(data, &mut |e| output.event(e)),
                    Decoder::Anthropic(d) => d.decode(data, &mut |e| output.event(e)),
                    Decoder::Gemini(d) => d.decode(data, &mut |e| output.event(e)),
                    Decoder::Bedrock(_) => Err("a Bedrock stream cannot be read as server-sent events".to_owned()),
                };
                output.step(step);
            }),
            Framing::EventStream(frames) => {
                frames.feed(bytes);
                while *output.state == State::Open {
                    let frame = match frames.next_frame() {
                        Ok(Some(frame)) => frame,
                        Ok(None) => break,
                        Err(e) => {
                            output.fail(&format!("the provider's event stream is corrupt: {e}"));
                            break;
                        }
                    };
                    let step = match decoder {
                        Decoder::Bedrock(d) => d.decode(&frame, &mut |e| output.event(e)),
                        _ => Err("this provider's stream cannot be read as event-stream frames".to_owned()),
                    };
                    output.step(step);
                }
            }
        }
        self.state
    }

    /// The connection to the provider failed mid-stream: tells the client
    /// in its dialect.
    pub fn fail(&mut self, error: ProviderError, out: &mut Vec<u8>) -> State {
        if self.state == State::Open {
            self.encoder.event(&Event::Error(error.clone()), out);
            self.failure = Some(error);
            self.state = State::Failed;
        }
        self.state
    }

    /// The provider closed the stream. A stream that ended without its
    /// dialect's terminator, or before its decoder says the answer is whole
    /// (see the module docs), is reported to the client as an error, so that
    /// a cut answer is never taken for a whole one.
    pub fn end(&mut self, out: &mut Vec<u8>) -> State {
        if self.state == State::Open && matches!(self.framing, Framing::Sse(_)) {
            // A last event may lack its blank line (Gemini's often does, and
            // `data: [DONE]\n` happens): the body's end ends it.
            self.feed(b"\n\n", out);
        }
        if self.state == State::Open {
            let Translator { framing, decoder, encoder, state, usage, complete, content, failure } = self;
            let clean = (decoder.ended_cleanly() || *complete) && framing.is_empty();
            let mut output = Output { encoder, state, usage, complete, content, failure, out };
            if clean {
                output.step(Ok(Step::Done));
            } else {
                output.fail("the provider closed the stream before it was complete");
            }
        }
        self.state
    }
}

/// The client side of a translator while it decodes: where events go.
struct Output<'t> {
    encoder: &'t mut Encoder,
    state: &'t mut State,
    usage: &'t mut Option<Usage>,
    complete: &'t mut bool,
    content: &'t mut bool,
    failure: &'t mut Option<ProviderError>,
    out: &'t mut Vec<u8>,
}

impl Output<'_> {
    fn event(&mut self, e: Event<'_>) {
        match &e {
            Event::Usage(u) | Event::Start { usage: Some(u), .. } => *self.usage = Some(*u),
            Event::Start { .. } => {}
            Event::Error(error) => {
                *self.state = State::Failed;
                if self.failure.is_none() {
                    *self.failure = Some(error.clone());
                }
            }
            _ => *self.content = true,
        }
        self.encoder.event(&e, self.out);
    }

    /// What the decoder said after an event.
    fn step(&mut self, step: Result<Step, String>) {
        match step {
            Ok(Step::More) => {}
            Ok(Step::Complete) => *self.complete = true,
            Ok(Step::Done) if *self.state == State::Open => {
                self.encoder.finish(self.out);
                *self.state = State::Done;
            }
            Ok(Step::Done) => {}
            Err(message) => self.fail(&message),
        }
    }

    fn fail(&mut self, message: &str) {
        let error = ProviderError::new(ErrorKind::Server, message);
        self.encoder.event(&Event::Error(error.clone()), self.out);
        if self.failure.is_none() {
            *self.failure = Some(error);
        }
        *self.state = State::Failed;
    }
}

/// What a decoder says after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    More,
    /// The provider's terminator: nothing more will come.
    Done,
    /// The answer is whole (Gemini's `finishReason`): more events may still
    /// come, and the end of the body is a normal end.
    Complete,
}
