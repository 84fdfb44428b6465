//! The canonical form between dialects: plain Rust, no serde.
//!
//! Each dialect module parses its wire format into these types and writes
//! them back out, so N dialects need 2N functions instead of N² pairs. The
//! shape follows the richest of the dialects (Anthropic's content blocks):
//! a conversation is a list of user and assistant turns made of blocks, the
//! system prompt is hoisted out of the turns, and tool results are blocks of
//! the user turn that follows the assistant's calls. OpenAI's `tool` messages
//! and Gemini's `functionResponse` parts map onto that without loss.
//!
//! Content is [`Raw`]: the bytes of the client's request or the provider's
//! response, written out untouched by the other side.

use crate::raw::Raw;

/// A chat request in no particular dialect.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request<'a> {
    /// The model as the client named it; the gateway replaces it with the
    /// deployment's model before writing.
    pub model: Raw<'a>,
    /// System and developer instructions, in order, hoisted from wherever
    /// they were. Text blocks only.
    pub system: Vec<Block<'a>>,
    pub messages: Vec<Message<'a>>,
    pub tools: Vec<Tool<'a>>,
    pub tool_choice: Option<ToolChoice<'a>>,
    /// `Some(false)` asks for at most one tool call per turn.
    pub parallel_tool_calls: Option<bool>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    /// Stop sequences, as string literals.
    pub stop: Vec<Raw<'a>>,
    pub stream: bool,
    /// The client asked for usage in the stream (OpenAI's
    /// `stream_options.include_usage`). Anthropic clients always get it.
    pub include_usage: bool,
    pub response_format: ResponseFormat<'a>,
    pub reasoning: Option<Reasoning>,
    /// An end-user id for the provider's abuse monitoring, as a string literal.
    pub user: Option<Raw<'a>>,
    /// Anthropic's top-level `cache_control`.
    pub cache_control: Option<Raw<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message<'a> {
    pub role: Role,
    pub blocks: Vec<Block<'a>>,
}

/// A piece of a turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Block<'a> {
    /// `text` is a string literal.
    Text {
        text: Raw<'a>,
        cache_control: Option<Raw<'a>>,
    },
    Image {
        source: Source<'a>,
        cache_control: Option<Raw<'a>>,
    },
    /// A PDF or other document the provider reads.
    Document {
        source: Source<'a>,
        cache_control: Option<Raw<'a>>,
    },
    /// The assistant calls a tool. `id` and `name` are string literals.
    ToolCall {
        id: Raw<'a>,
        name: Raw<'a>,
        arguments: Arguments<'a>,
        /// Gemini's `thoughtSignature` on the call, kept for the replay.
        signature: Option<Raw<'a>>,
    },
    /// The result of a call, in the user turn after it. `id` is the call's.
    ToolResult {
        id: Raw<'a>,
        content: ToolContent<'a>,
        is_error: bool,
        cache_control: Option<Raw<'a>>,
    },
    /// Reasoning the model showed; `signature` must go back verbatim.
    Thinking {
        text: Raw<'a>,
        signature: Option<Raw<'a>>,
    },
    /// Reasoning the provider encrypted; `data` must go back verbatim.
    RedactedThinking {
        data: Raw<'a>,
    },
}

impl Block<'_> {
    /// Whether the block may go back to a provider that checks reasoning
    /// signatures (Anthropic, and Claude on Bedrock). Reasoning without a
    /// signature (another provider's, or OpenAI's `reasoning_content`) is
    /// refused there, while leaving earlier reasoning out is allowed, so it
    /// is left out.
    pub(crate) fn is_replayable(&self) -> bool {
        match self {
            Block::Thinking { signature, .. } => signature.as_ref().is_some_and(|s| !s.is_blank_string()),
            _ => true,
        }
    }
}

/// Where an image or document comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source<'a> {
    /// `media_type` is plain text (`image/png`); `data` is the base64 text,
    /// quotes excluded, as it was inside the client's string.
    Base64 { media_type: std::borrow::Cow<'a, str>, data: std::borrow::Cow<'a, str> },
    /// A string literal holding an http(s) URL.
    Url(Raw<'a>),
}

/// Tool-call arguments in whichever form the source dialect had them.
#[derive(Debug, Clone, PartialEq)]
pub enum Arguments<'a> {
    /// OpenAI: a string literal whose text is JSON (possibly invalid).
    Encoded(Raw<'a>),
    /// Everyone else: the JSON object itself.
    Object(Raw<'a>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolContent<'a> {
    /// A string literal.
    Text(Raw<'a>),
    /// Text, image and document blocks.
    Blocks(Vec<Block<'a>>),
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool<'a> {
    /// String literals.
    pub name: Raw<'a>,
    pub description: Option<Raw<'a>>,
    /// The JSON Schema object of the arguments.
    pub parameters: Option<Raw<'a>>,
    pub strict: Option<bool>,
    pub cache_control: Option<Raw<'a>>,
}

impl Tool<'_> {
    /// Writes `"name":..,"description":..,"SCHEMA_KEY":..,"strict":..`, the
    /// members OpenAI's `function` and Anthropic's tool share (under two
    /// names for the schema). A tool without a schema gets an empty object
    /// schema, which both require.
    pub(crate) fn write_fields(&self, schema_key: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(b"\"name\":");
        out.extend_from_slice(self.name.json().as_bytes());
        if let Some(d) = &self.description {
            out.extend_from_slice(b",\"description\":");
            out.extend_from_slice(d.json().as_bytes());
        }
        out.extend_from_slice(b",\"");
        out.extend_from_slice(schema_key);
        out.extend_from_slice(b"\":");
        out.extend_from_slice(
            self.parameters.as_ref().map_or("{\"type\":\"object\",\"properties\":{}}", Raw::json).as_bytes(),
        );
        if let Some(strict) = self.strict {
            out.extend_from_slice(if strict { b",\"strict\":true" } else { b",\"strict\":false" });
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice<'a> {
    Auto,
    /// Some tool must be called (OpenAI `required`, Anthropic `any`).
    Required,
    None,
    /// This tool must be called; a string literal.
    Named(Raw<'a>),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub enum ResponseFormat<'a> {
    #[default]
    Text,
    JsonObject,
    /// `schema` is the JSON Schema object; `name` a string literal.
    JsonSchema {
        name: Option<Raw<'a>>,
        schema: Raw<'a>,
        strict: Option<bool>,
    },
}

/// How much the model should think before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reasoning {
    Disabled,
    Effort(Effort),
    /// Anthropic's explicit thinking budget, in tokens.
    BudgetTokens(u64),
    /// Anthropic's adaptive thinking: the model decides.
    Adaptive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Minimal,
    Low,
    Medium,
    High,
}

impl Effort {
    /// The thinking budget a dialect with budgets gets for an effort. These
    /// are the values LiteLLM's users are used to, rounded to Anthropic's
    /// floor of 1,024.
    pub fn budget_tokens(self) -> u64 {
        match self {
            Effort::Minimal | Effort::Low => 1024,
            Effort::Medium => 2048,
            Effort::High => 4096,
        }
    }

    /// The effort nearest to a thinking budget.
    pub fn from_budget(tokens: u64) -> Effort {
        match tokens {
            0..=1535 => Effort::Low,
            1536..=3071 => Effort::Medium,
            _ => Effort::High,
        }
    }
}

/// Why generation stopped, in OpenAI's vocabulary plus what the others
/// need to say it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// A natural end of turn.
    Stop,
    /// One of the request's stop sequences matched.
    StopSequence,
    /// The token limit or the context window.
    Length,
    ToolCalls,
    /// A safety filter or a refusal.
    ContentFilter,
}

/// A complete (non-streamed) answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response<'a> {
    /// String literals; `None` when the provider gives none (the writer
    /// synthesizes one).
    pub id: Option<Raw<'a>>,
    pub model: Option<Raw<'a>>,
    /// Unix seconds, when the provider says.
    pub created: Option<u64>,
    /// Text, thinking and tool-call blocks, in the provider's order.
    pub blocks: Vec<Block<'a>>,
    /// OpenAI's `message.refusal`, a string literal.
    pub refusal: Option<Raw<'a>>,
    pub finish: Option<Finish>,
    /// The stop sequence that matched, a string literal.
    pub stop_sequence: Option<Raw<'a>>,
    pub usage: Option<crate::Usage>,
}

/// One step of a streamed answer, in no particular dialect. The decoders
/// of each provider dialect produce these and the encoders of each front
/// door consume them. Borrowed from the upstream event being decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// The answer starts. `usage` carries what is known of the input so far.
    Start {
        id: Option<Raw<'a>>,
        model: Option<Raw<'a>>,
        usage: Option<crate::Usage>,
    },
    /// A piece of text, a string literal.
    Text(Raw<'a>),
    /// A piece of shown reasoning, a string literal.
    Thinking(Raw<'a>),
    /// The signature closing the current reasoning block, a string literal.
    ThinkingSignature(Raw<'a>),
    /// Encrypted reasoning, a string literal.
    RedactedThinking(Raw<'a>),
    /// A tool call starts. `index` counts tool calls only, from 0.
    /// `signature` is Gemini's thought signature on the call, which the
    /// client must send back with it.
    ToolStart {
        index: u32,
        id: Raw<'a>,
        name: Raw<'a>,
        signature: Option<Raw<'a>>,
    },
    /// A piece of a call's arguments: a string literal whose text is a
    /// fragment of the arguments' JSON.
    ToolArguments {
        index: u32,
        fragment: Raw<'a>,
    },
    Finish {
        reason: Finish,
        stop_sequence: Option<Raw<'a>>,
    },
    /// Usage so far; later values replace earlier ones.
    Usage(crate::Usage),
    /// The provider failed after the stream started.
    Error(crate::error::ProviderError),
}
