//! Per-request scripting through `x-mock-*` request headers.
//!
//! Integration tests need an upstream that misbehaves on demand (errors,
//! slowness, broken framing, hangs) without restarting the mock with other
//! flags, so each request can carry its own directives. They apply to the chat
//! and embeddings routes only; a malformed directive is a 400 there, so a typo
//! in a test fails loudly instead of silently testing the happy path.

use std::time::Duration;

const PREFIX: &str = "x-mock-";

/// The directives found on one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// `x-mock-status`: answer this status with an OpenAI error body.
    pub status: Option<u16>,
    /// `x-mock-delay-ms`: overrides `--delay`.
    pub delay: Option<Duration>,
    /// `x-mock-chunks`: overrides `--chunks`.
    pub chunks: Option<u32>,
    /// `x-mock-echo`: answer with what the mock received.
    pub echo: bool,
    /// `x-mock-garbage`: answer with bytes that are not HTTP, then close.
    pub garbage: bool,
    /// `x-mock-hang`: never answer.
    pub hang: bool,
    /// `x-mock-close-mid-stream`: close after this many SSE events.
    pub close_after: Option<u32>,
}

impl Script {
    /// Records `name: value` if it is an `x-mock-*` header; other headers are
    /// ignored. Errors name the header and the offending value.
    pub fn apply(&mut self, name: &str, value: &[u8]) -> Result<(), String> {
        let Some(key) = strip_prefix(name) else {
            return Ok(());
        };
        let value = std::str::from_utf8(value).map_err(|_| format!("{name} is not UTF-8"))?.trim();
        let bad = || format!("invalid {} value `{value}`", name.to_ascii_lowercase());
        match key.to_ascii_lowercase().as_str() {
            "status" => self.status = Some(status(value).ok_or_else(bad)?),
            "delay-ms" => self.delay = Some(Duration::from_millis(number(value).ok_or_else(bad)?)),
            "chunks" => self.chunks = Some(number(value).ok_or_else(bad)?),
            "close-mid-stream" => self.close_after = Some(number(value).ok_or_else(bad)?),
            "echo" => self.echo = flag(value).ok_or_else(bad)?,
            "garbage" => self.garbage = flag(value).ok_or_else(bad)?,
            "hang" => self.hang = flag(value).ok_or_else(bad)?,
            _ => {}
        }
        Ok(())
    }
}

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
    }
}
