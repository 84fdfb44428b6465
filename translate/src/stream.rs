//! Streamed answers from one dialect to another: bytes in, bytes out.
//!
//! A [`Translator`] is the state machine for one stream. The gateway feeds it
//! the provider's bytes as they arrive, cut anywhere, and sends what it
//! appends to `out` to the client. Inside, three pieces run in a line:
//! framing (server-sent events here; Bedrock's binary event stream and
//! Ollama's lines plug in the same way), a decoder of the provider's dialect
//! that turns each event into canonical [`Event`]s, and an encoder of the
//! client's dialect that writes them. Decoders and encoders keep their
//! buffers between events, so a warm stream allocates nothing per event.
//!
//! Only front-door dialects have encoders ([`ClientDialect`]): a Gemini
//! stream is read, never written. [`Translator::with_client`] says so in its
//! type; [`Translator::new`] takes any [`Dialect`] and panics on a
//! provider-only one, which is a programmer's error.
//!
//! Most dialects end a stream with a terminator ([`Step::Done`]). Gemini
//! does not: its stream ends with the HTTP body. Its decoder says
//! [`Step::Complete`] once the answer is whole, and [`Translator::end`]
//! takes the end of the body as a normal end only then.

use crate::Usage;
use crate::canon::Event;
use crate::error::{ErrorKind, ProviderError};
use crate::sse::{Piece, Splitter};

/// A wire format, named by who speaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
    /// Provider side only.
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

enum Decoder {
    OpenAi(crate::openai::stream::Decoder),
    Anthropic(crate::anthropic::stream::Decoder),
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
    splitter: Splitter,
    decoder: Decoder,
    encoder: Encoder,
    state: State,
    usage: Option<Usage>,
    /// The decoder said the answer is whole ([`Step::Complete`]).
    complete: bool,
}

impl Translator {
    /// A translator from a provider speaking `from` to a client speaking `to`.
    ///
    /// # Panics
    /// When `to` is a provider-only dialect (Gemini): no client speaks it.
    /// [`Translator::with_client`] rules that out by its type.
    pub fn new(from: Dialect, to: Dialect, cx: Context) -> Translator {
        match ClientDialect::try_from(to) {
            Ok(to) => Translator::with_client(from, to, cx),
            Err(to) => panic!("{to:?} is a provider dialect: no client speaks it"),
        }
    }

    /// A translator from a provider speaking `from` to a client speaking `to`.
    pub fn with_client(from: Dialect, to: ClientDialect, cx: Context) -> Translator {
        let decoder = match from {
            Dialect::OpenAi => Decoder::OpenAi(crate::openai::stream::Decoder::new(cx.json_tool)),
            Dialect::Anthropic => Decoder::Anthropic(crate::anthropic::stream::Decoder::new(cx.json_tool)),
            Dialect::Gemini => Decoder::Gemini(crate::gemini::stream::Decoder::new()),
        };
        let encoder = match to {
            ClientDialect::OpenAi => Encoder::OpenAi(crate::openai::stream::Encoder::new(cx)),
            ClientDialect::Anthropic => Encoder::Anthropic(crate::anthropic::stream::Encoder::new(cx)),
        };
        Translator {
            splitter: Splitter::new(EVENT_BYTES_MAX),
            decoder,
            encoder,
            state: State::Open,
            usage: None,
            complete: false,
        }
    }

    pub fn state(&self) -> State {
        self.state
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
        let Translator { splitter, decoder, encoder, state, usage, complete } = self;
        splitter.feed(bytes, |piece| {
            if *state != State::Open {
                return;
            }
            let event = match piece {
                Piece::Event(e) => e,
                Piece::Overflow => {
                    fail(encoder, state, out, "the provider sent an event larger than 4 MiB");
                    return;
                }
            };
            let Some(data) = decoder.payload(event) else { return };
            let mut sink = |e: Event<'_>| {
                match &e {
                    Event::Usage(u) | Event::Start { usage: Some(u), .. } => *usage = Some(*u),
                    Event::Error(_) => *state = State::Failed,
                    _ => {}
                }
                encoder.event(&e, out);
            };
            let step = match decoder {
                Decoder::OpenAi(d) => d.decode(data, &mut sink),
                Decoder::Anthropic(d) => d.decode(data, &mut sink),
                Decoder::Gemini(d) => d.decode(data, &mut sink),
            };
            match step {
                Ok(Step::More) => {}
                Ok(Step::Complete) => *complete = true,
                Ok(Step::Done) if *state == State::Open => {
                    encoder.finish(out);
                    *state = State::Done;
                }
                Ok(Step::Done) => {}
                Err(message) => fail(encoder, state, out, &message),
            }
        });
        self.state
    }

    /// The connection to the provider failed mid-stream: tells the client
    /// in its dialect.
    pub fn fail(&mut self, error: ProviderError, out: &mut Vec<u8>) -> State {
        if self.state == State::Open {
            self.encoder.event(&Event::Error(error), out);
            self.state = State::Failed;
        }
        self.state
    }

    /// The provider closed the stream. A stream that ended without its
    /// dialect's terminator, or before its decoder said the answer was
    /// whole, is reported to the client as an error, so that a cut answer is
    /// never taken for a whole one.
    pub fn end(&mut self, out: &mut Vec<u8>) -> State {
        if self.state == State::Open && matches!(self.decoder, Decoder::Gemini(_)) {
            // Gemini's last event may lack its blank line: the body's end ends it.
            self.feed(b"\n\n", out);
        }
        if self.state == State::Open && self.complete {
            self.encoder.finish(out);
            self.state = State::Done;
        }
        if self.state == State::Open {
            let Translator { encoder, state, .. } = self;
            fail(encoder, state, out, "the provider closed the stream before it was complete");
        }
        self.state
    }
}

fn fail(encoder: &mut Encoder, state: &mut State, out: &mut Vec<u8>, message: &str) {
    encoder.event(&Event::Error(ProviderError::new(ErrorKind::Server, message)), out);
    *state = State::Failed;
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
