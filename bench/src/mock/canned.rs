//! The canned answer every dialect renders, and the fixed values in it.
//!
//! All dialects tell the same story so a gateway test can compare what comes
//! out of the gateway with one set of constants whatever the upstream was:
//! the same text, the same usage numbers, the same tool call with the same
//! arguments split at the same places. Only the wire shapes differ.

use std::time::Duration;

use crate::mock::cli::Config;
use crate::mock::events::Cut;
use crate::mock::script::{RetryAfter, Script};

/// Input tokens of every chat answer.
pub const INPUT_TOKENS: u32 = 10;
/// Output tokens of every non-stream chat answer. Streams report one output
/// token per `chunks` instead, as the OpenAI dialect always has.
pub const OUTPUT_TOKENS: u32 = 20;
/// Thinking tokens when `thinking` is on (Gemini's `thoughtsTokenCount`,
/// which is outside its candidates count).
pub const THINKING_TOKENS: u32 = 8;
/// Tokens charged per embeddings input, and per `count_tokens` request.
pub const TOKENS_PER_INPUT: u32 = 5;

/// The text of every non-stream answer.
pub const TEXT: &str = "This is a benchmark response.";
/// The text of every streamed text delta.
pub const DELTA: &str = "word ";
/// The thinking text, and its signature (base64 of `mock-signature`).
pub const THINKING: &str = "Let me think about this.";
pub const SIGNATURE: &str = "bW9jay1zaWduYXR1cmU=";
/// The arguments of every tool call, and how streams split them: mid-key and
/// mid-value, so a gateway that parses fragments on their own breaks.
pub const TOOL_ARGS: &str = r#"{"city":"Paris"}"#;
pub const TOOL_ARG_FRAGMENTS: [&str; 3] = [r#"{"ci"#, r#"ty":"Pa"#, r#"ris"}"#];
/// Text deltas sent before an `error-mid-stream` error.
pub const DELTAS_BEFORE_ERROR: u32 = 2;
/// The message of every mid-stream error.
pub const STREAM_ERROR_MESSAGE: &str = "mock error mid-stream";

/// What to answer, decided from the flags and the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Call this tool instead of answering with text.
    pub tool: Option<String>,
    pub thinking: bool,
    pub error_mid_stream: bool,
    /// A stream that fails before any content; a non-stream chat request
    /// gets the dialect's overloaded error instead.
    pub error_before_content: bool,
    /// Text deltas of a streamed text answer.
    pub chunks: u32,
    /// Pause between stream events and before a non-stream reply.
    pub delay: Duration,
    /// End the connection after this many stream events.
    pub cut: Option<Cut>,
    /// Headers of an error answer.
    pub retry: RetryAfter,
}

impl Answer {
    pub fn new(script: &Script, cfg: &Config, delay: Duration) -> Self {
        Self {
            tool: script.tool.clone(),
            thinking: script.thinking,
            error_mid_stream: script.error_mid_stream,
            error_before_content: script.error_before_content,
            chunks: script.chunks.unwrap_or(cfg.chunks),
            delay,
            cut: Cut::earliest(script.close_after, script.reset_after),
            retry: script.retry,
        }
    }

    /// A plain answer with `chunks` text deltas, for the dialects' tests.
    #[cfg(test)]
    pub fn plain(chunks: u32) -> Answer {
        Answer {
            tool: None,
            thinking: false,
            error_mid_stream: false,
            error_before_content: false,
            chunks,
            delay: Duration::ZERO,
            cut: None,
            retry: RetryAfter::default(),
        }
    }

    /// Text deltas the stream sends.
    pub fn text_deltas(&self) -> u32 {
        if self.error_mid_stream { DELTAS_BEFORE_ERROR } else { self.chunks }
    }

    /// Output tokens reported at the end of a stream.
    pub fn stream_output_tokens(&self) -> u32 {
        self.chunks
    }
}

/// `[0.0,...]` with `dims` zeros.
pub fn zero_vector(dims: usize) -> String {
    let mut v = String::with_capacity(2 + dims * 4);
    v.push('[');
    for i in 0..dims {
        if i > 0 {
            v.push(',');
        }
        v.push_str("0.0");
    }
    v.push(']');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_join_to_the_arguments() {
        assert_eq!(TOOL_ARG_FRAGMENTS.concat(), TOOL_ARGS);
    }

    #[test]
    fn zero_vectors_parse() {
        let v: Vec<f64> = sonic_rs::from_str(&zero_vector(3)).unwrap();
        assert_eq!(v, [0.0; 3]);
        assert_eq!(zero_vector(0), "[]");
    }
}
