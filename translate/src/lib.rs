//! Dialect conversion for corelay: pure functions and state machines, no I/O,
//! no runtime, no clock.
//!
//! The gateway hands this crate bytes and gets bytes (or small plain values)
//! back. Keeping it sans-IO makes every piece testable with golden inputs,
//! fuzzable, and benchmarkable on its own.
//!
//! What lives here today:
//! - [`openai`]: the OpenAI chat-completions dialect. Peeking `model` and
//!   `stream` without building the request, splicing the few bytes that must
//!   change on the same-dialect path, and reading usage.
//! - [`sse`]: a server-sent-events splitter that yields whole events from
//!   arbitrarily cut network reads, without allocating once warm.
//! - [`eventstream`]: the same for AWS's binary `vnd.amazon.eventstream`
//!   frames (Bedrock streaming), with both CRCs checked.
//!
//! Cross-dialect translation (Anthropic, Gemini, Bedrock, Ollama native) is
//! built on the same two pieces.

pub mod eventstream;
pub mod openai;
pub mod sse;

/// Token counts of one response, in OpenAI's arithmetic: cached tokens are
/// part of `prompt_tokens`, reasoning tokens part of `completion_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}
