//! Per-request scripting: `x-mock-*` request headers and `[mock:...]`
//! directives in the request body.
//!
//! Integration tests need an upstream that misbehaves on demand (errors,
//! slowness, broken framing, hangs, tool calls, mid-stream failures) without
//! restarting the mock with other flags, so each request can carry its own
//! directives. The gateway does not forward client headers, so every header
//! has a body twin: the text `[mock:KEY=VALUE]` (or `[mock:KEY]`, meaning
//! `1`) in the last user message, or in a top-level `"mock"` string field,
//! means the same as the header `x-mock-KEY: VALUE`. Body directives are
//! applied after the headers, so they win. A malformed directive is a 400, so
//! a typo in a test fails loudly instead of silently testing the happy path.
//!
//! A `sequence` scripts several requests at once, for testing retries: each
//! request that carries it takes the next step (a status, `reset`, `hang` or
//! `error-before-content`), counted by the server's [`State`] under the
//! sequence's text and its `seq-id`, and the last step repeats once the
//! others are used up.
//!
//! [`State`]: crate::mock::state::State

use std::fmt::Write as _;
use std::time::Duration;

const PREFIX: &str = "x-mock-";
/// Where an in-text directive starts; it ends at the next `]`.
const TEXT_OPEN: &str = "[mock:";
/// Longest directive read from text, so a stray `[mock:` cannot make the
/// mock copy a whole message into an error.
const TEXT_DIRECTIVE_BYTES_MAX: usize = 200;
/// Longest tool name accepted, as Anthropic and Bedrock limit it to 64.
const TOOL_NAME_BYTES_MAX: usize = 64;
/// Longest `seq-id`.
const SEQ_ID_BYTES_MAX: usize = 64;
/// Most steps in one `sequence`: enough for any retry budget a test sets.
pub const SEQUENCE_STEPS_MAX: usize = 32;

/// The directives found on one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// `status`: answer this status with an error body in the dialect's shape.
    pub status: Option<u16>,
    /// `delay-ms`: overrides `--delay`.
    pub delay: Option<Duration>,
    /// `chunks`: overrides `--chunks`.
    pub chunks: Option<u32>,
    /// `echo`: answer with what the mock received.
    pub echo: bool,
    /// `garbage`: answer with bytes that are not HTTP, then close.
    pub garbage: bool,
    /// `hang`: never answer.
    pub hang: bool,
    /// `close-mid-stream`: close after this many stream events.
    pub close_after: Option<u32>,
    /// `reset-mid-stream`: reset the connection after this many stream events.
    pub reset_after: Option<u32>,
    /// `reset`: reset the connection before any response byte.
    pub reset: bool,
    /// `error-before-content`: a stream whose first event is the dialect's
    /// in-stream error.
    pub error_before_content: bool,
    /// `retry-after` and `retry-after-ms`: headers of an error answer.
    pub retry: RetryAfter,
    /// `sequence`: one step per request, see the module doc.
    pub sequence: Option<Sequence>,
    /// `seq-id`: which counter a `sequence` uses, so parallel tests that
    /// script the same steps do not share one.
    pub seq_id: Option<String>,
    /// `tool`: answer with a call to this tool instead of text.
    pub tool: Option<String>,
    /// `error-mid-stream`: two text deltas, then the dialect's stream error.
    pub error_mid_stream: bool,
    /// `thinking`: add a thinking block with a signature.
    pub thinking: bool,
}

impl Script {
    /// Records `name: value` if it is an `x-mock-*` header; other headers are
    /// ignored. Errors name the header and the offending value.
    pub fn apply(&mut self, name: &str, value: &[u8]) -> Result<(), String> {
        let Some(key) = strip_prefix(name) else {
            return Ok(());
        };
        let value = std::str::from_utf8(value).map_err(|_| format!("{name} is not UTF-8"))?.trim();
        self.set(&key.to_ascii_lowercase(), value)
            .map_err(|()| format!("invalid {} value `{value}`", name.to_ascii_lowercase()))
    }

    /// Applies every `[mock:KEY=VALUE]` / `[mock:KEY]` found in `text`.
    /// Unknown keys are an error here (unlike unknown headers): text is only
    /// scanned for directives a test put there on purpose.
    pub fn apply_text(&mut self, text: &str) -> Result<(), String> {
        let mut rest = text;
        while let Some(start) = rest.find(TEXT_OPEN) {
            rest = &rest[start + TEXT_OPEN.len()..];
            let end = rest.find(']').filter(|&e| e <= TEXT_DIRECTIVE_BYTES_MAX);
            let Some(end) = end else {
                return Err("unterminated [mock:...] directive".into());
            };
            let directive = &rest[..end];
            rest = &rest[end + 1..];
            let (key, value) = directive.split_once('=').unwrap_or((directive, "1"));
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            if !KEYS.contains(&key.as_str()) {
                return Err(format!("unknown directive [mock:{directive}]"));
            }
            self.set(&key, value).map_err(|()| format!("invalid directive [mock:{directive}]"))?;
        }
        Ok(())
    }

    /// Sets one directive by its key (the header name without `x-mock-`).
    fn set(&mut self, key: &str, value: &str) -> Result<(), ()> {
        match key {
            "status" => self.status = Some(status(value).ok_or(())?),
            "delay-ms" => self.delay = Some(Duration::from_millis(number(value).ok_or(())?)),
            "chunks" => self.chunks = Some(number(value).ok_or(())?),
            "close-mid-stream" => self.close_after = Some(number(value).ok_or(())?),
            "echo" => self.echo = flag(value).ok_or(())?,
            "garbage" => self.garbage = flag(value).ok_or(())?,
            "hang" => self.hang = flag(value).ok_or(())?,
            "error-mid-stream" => self.error_mid_stream = flag(value).ok_or(())?,
            "thinking" => self.thinking = flag(value).ok_or(())?,
            "tool" => self.tool = Some(tool_name(value).ok_or(())?.to_owned()),
            "reset" => self.reset = flag(value).ok_or(())?,
            "reset-mid-stream" => self.reset_after = Some(number(value).ok_or(())?),
            "error-before-content" => self.error_before_content = flag(value).ok_or(())?,
            "retry-after" => self.retry.seconds = Some(number(value).ok_or(())?),
            "retry-after-ms" => self.retry.ms = Some(number(value).ok_or(())?),
            "sequence" => self.sequence = Some(Sequence::parse(value).ok_or(())?),
            "seq-id" => self.seq_id = Some(seq_id(value).ok_or(())?.to_owned()),
            _ => {}
        }
        Ok(())
    }

    /// Makes this request behave as one step of its sequence says.
    pub fn apply_step(&mut self, step: Step) {
        match step {
            Step::Answer => {}
            Step::Status(status) => self.status = Some(status),
            Step::Reset => self.reset = true,
            Step::Hang => self.hang = true,
            Step::ErrorBeforeContent => self.error_before_content = true,
        }
    }
}

/// The `Retry-After` values a script asks an error answer to carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryAfter {
    /// `retry-after`: the `Retry-After` header, in seconds.
    pub seconds: Option<u32>,
    /// `retry-after-ms`: OpenAI's `retry-after-ms` header.
    pub ms: Option<u64>,
}

/// One step of a `sequence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `200`: the normal answer (with the request's other directives).
    Answer,
    /// Any other status: that error, as `status=N`.
    Status(u16),
    Reset,
    Hang,
    ErrorBeforeContent,
}

/// The steps of `sequence=503,reset,200`, and their text in one canonical
/// spelling (no spaces), which names the sequence's counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    steps: Vec<Step>,
    text: String,
}

impl Sequence {
    /// Parses comma-separated steps; `None` when one is unknown, or when
    /// there are none or more than [`SEQUENCE_STEPS_MAX`].
    pub fn parse(value: &str) -> Option<Sequence> {
        let mut steps = Vec::new();
        for item in value.split(',').map(str::trim) {
            let step = match item {
                "reset" => Step::Reset,
                "hang" => Step::Hang,
                "error-before-content" => Step::ErrorBeforeContent,
                _ => match status(item)? {
                    200 => Step::Answer,
                    other => Step::Status(other),
                },
            };
            steps.push(step);
        }
        if steps.len() > SEQUENCE_STEPS_MAX {
            return None;
        }
        let mut text = String::new();
        for (i, step) in steps.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            match step {
                Step::Answer => text.push_str("200"),
                Step::Status(status) => {
                    let _ = write!(text, "{status}");
                }
                Step::Reset => text.push_str("reset"),
                Step::Hang => text.push_str("hang"),
                Step::ErrorBeforeContent => text.push_str("error-before-content"),
            }
        }
        Some(Sequence { steps, text })
    }

    /// The step of the request numbered `n` (from 0) on this sequence: the
    /// last step once the others are used up.
    pub fn step(&self, n: u64) -> Step {
        let last = self.steps.len() - 1;
        self.steps[usize::try_from(n).map_or(last, |n| n.min(last))]
    }

    /// The canonical text, e.g. `503,reset,200`.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Every directive key, for rejecting typos in text directives.
const KEYS: &[&str] = &[
    "status",
    "delay-ms",
    "chunks",
    "close-mid-stream",
    "echo",
    "garbage",
    "hang",
    "error-mid-stream",
    "thinking",
    "tool",
    "reset",
    "reset-mid-stream",
    "error-before-content",
    "retry-after",
    "retry-after-ms",
    "sequence",
    "seq-id",
];

/// Strips `x-mock-` case-insensitively, as HTTP header names are.
fn strip_prefix(name: &str) -> Option<&str> {
    let head = name.get(..PREFIX.len())?;
    head.eq_ignore_ascii_case(PREFIX).then(|| &name[PREFIX.len()..])
}

/// Only statuses that can carry a body: 1xx would break the framing.
fn status(value: &str) -> Option<u16> {
    value.parse().ok().filter(|s| (200..=599).contains(s))
}

fn number<T: std::str::FromStr>(value: &str) -> Option<T> {
    value.parse().ok()
}

fn flag(value: &str) -> Option<bool> {
    match value {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// A `seq-id`: `[a-zA-Z0-9_.-]{1,64}`, so it reads well in JSON and logs.
fn seq_id(value: &str) -> Option<&str> {
    let ok = !value.is_empty()
        && value.len() <= SEQ_ID_BYTES_MAX
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    ok.then_some(value)
}

/// A tool name every provider accepts: `[a-zA-Z0-9_-]{1,64}`.
fn tool_name(value: &str) -> Option<&str> {
    let ok = !value.is_empty()
        && value.len() <= TOOL_NAME_BYTES_MAX
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_directive() {
        let mut s = Script::default();
        for (name, value) in [
            ("X-Mock-Status", "429"),
            ("x-mock-delay-ms", "15"),
            ("x-mock-chunks", " 3 "),
            ("x-mock-echo", "1"),
            ("x-mock-garbage", "true"),
            ("x-mock-hang", "0"),
            ("x-mock-close-mid-stream", "2"),
            ("x-mock-tool", "get_weather"),
            ("x-mock-error-mid-stream", "1"),
            ("x-mock-thinking", "true"),
            ("content-type", "application/json"),
        ] {
            s.apply(name, value.as_bytes()).unwrap();
        }
        let want = Script {
            status: Some(429),
            delay: Some(Duration::from_millis(15)),
            chunks: Some(3),
            echo: true,
            garbage: true,
            hang: false,
            close_after: Some(2),
            tool: Some("get_weather".into()),
            error_mid_stream: true,
            thinking: true,
            ..Script::default()
        };
        assert_eq!(s, want);
    }

    #[test]
    fn rejects_bad_values() {
        let mut s = Script::default();
        assert!(s.apply("x-mock-status", b"99").is_err());
        assert!(s.apply("x-mock-status", b"abc").is_err());
        assert!(s.apply("x-mock-echo", b"yes").is_err());
        assert!(s.apply("x-mock-chunks", b"-1").is_err());
        assert!(s.apply("x-mock-tool", b"a b").is_err());
        assert!(s.apply("x-mock-tool", b"").is_err());
    }

    #[test]
    fn reads_directives_from_text() {
        let mut s = Script::default();
        s.apply_text("What is the weather? [mock:tool=get_weather] [mock:thinking][mock:chunks= 3 ]").unwrap();
        assert_eq!(s.tool.as_deref(), Some("get_weather"));
        assert!(s.thinking && !s.error_mid_stream);
        assert_eq!(s.chunks, Some(3));
        s.apply_text("[mock:status=529] [mock:error-mid-stream] [mock:delay-ms=5]").unwrap();
        assert_eq!((s.status, s.delay), (Some(529), Some(Duration::from_millis(5))));
        assert!(s.error_mid_stream);
        s.apply_text("no directives, [mock] [not:mock=1]").unwrap();
    }

    #[test]
    fn rejects_bad_text_directives() {
        let mut s = Script::default();
        assert!(s.apply_text("[mock:status=abc]").is_err());
        assert!(s.apply_text("[mock:stauts=429]").is_err());
        assert!(s.apply_text("[mock:tool=get weather]").is_err());
        assert!(s.apply_text("[mock:tool=x").is_err());
        let long = format!("[mock:tool={}]", "a".repeat(300));
        assert!(s.apply_text(&long).is_err());
    }

    #[test]
    fn reads_failure_directives() {
        let mut s = Script::default();
        s.apply_text("[mock:reset] [mock:reset-mid-stream=3] [mock:error-before-content]").unwrap();
        s.apply_text("[mock:retry-after=7][mock:retry-after-ms=250]").unwrap();
        assert!(s.reset && s.error_before_content);
        assert_eq!(s.reset_after, Some(3));
        assert_eq!(s.retry, RetryAfter { seconds: Some(7), ms: Some(250) });
        s.apply("x-mock-reset", b"0").unwrap();
        assert!(!s.reset);
        for (name, value) in [
            ("x-mock-reset-mid-stream", "x"),
            ("x-mock-retry-after", "-1"),
            ("x-mock-retry-after", "1.5"),
            ("x-mock-retry-after-ms", ""),
            ("x-mock-error-before-content", "2"),
        ] {
            assert!(s.apply(name, value.as_bytes()).is_err(), "{name}: {value}");
        }
    }

    #[test]
    fn parses_sequences_into_canonical_text() {
        let mut s = Script::default();
        s.apply_text("[mock:sequence= 503, reset ,hang,error-before-content,200][mock:seq-id=test-1.a]").unwrap();
        let seq = s.sequence.clone().unwrap();
        assert_eq!(seq.text(), "503,reset,hang,error-before-content,200");
        assert_eq!(s.seq_id.as_deref(), Some("test-1.a"));
        let steps: Vec<Step> = (0..7).map(|n| seq.step(n)).collect();
        use Step::*;
        assert_eq!(steps, [Status(503), Reset, Hang, ErrorBeforeContent, Answer, Answer, Answer]);
        assert_eq!(seq.step(u64::MAX), Answer);

        let mut header = Script::default();
        header.apply("X-Mock-Sequence", b"429,200").unwrap();
        assert_eq!(header.sequence.map(|q| q.steps), Some(vec![Status(429), Answer]));
    }

    #[test]
    fn rejects_bad_sequences() {
        let mut s = Script::default();
        for bad in ["", "503,", "abc", "99", "503,,200", "close", "[mock:", "200 503"] {
            assert!(s.apply("x-mock-sequence", bad.as_bytes()).is_err(), "{bad:?}");
        }
        let longest = vec!["503"; SEQUENCE_STEPS_MAX].join(",");
        assert!(s.apply("x-mock-sequence", longest.as_bytes()).is_ok());
        let too_long = vec!["503"; SEQUENCE_STEPS_MAX + 1].join(",");
        assert!(s.apply("x-mock-sequence", too_long.as_bytes()).is_err());
        for bad in ["", "a b", "a/b", "é"] {
            assert!(s.apply("x-mock-seq-id", bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(s.apply_text("[mock:seq-id=a:b]").is_err());
    }

    #[test]
    fn steps_script_the_request() {
        let mut s = Script::default();
        s.apply_step(Step::Answer);
        assert_eq!(s, Script::default());
        s.apply_step(Step::Status(503));
        s.apply_step(Step::Reset);
        s.apply_step(Step::Hang);
        s.apply_step(Step::ErrorBeforeContent);
        assert_eq!(s.status, Some(503));
        assert!(s.reset && s.hang && s.error_before_content);
    }
}
