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

use std::time::Duration;

const PREFIX: &str = "x-mock-";
/// Where an in-text directive starts; it ends at the next `]`.
const TEXT_OPEN: &str = "[mock:";
/// Longest directive read from text, so a stray `[mock:` cannot make the
/// mock copy a whole message into an error.
const TEXT_DIRECTIVE_BYTES_MAX: usize = 200;
/// Longest tool name accepted, as Anthropic and Bedrock limit it to 64.
const TOOL_NAME_BYTES_MAX: usize = 64;

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
            _ => {}
        }
        Ok(())
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
}
