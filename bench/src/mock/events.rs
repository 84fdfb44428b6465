//! Streamed bodies: anything the connection sends one event at a time.
//!
//! The OpenAI dialect's plain text stream renders each event on demand
//! (`openai::StreamPlan`), because it is the benchmark's hot path and must not
//! allocate per event. Every other stream (other dialects, tool calls,
//! scripted errors) is small and built up front as an [`EventList`]: simpler
//! to write and to read, and the cost only lands on test traffic.

use std::time::Duration;

/// A stream the connection can send.
pub trait EventSource {
    /// The response `Content-Type`.
    fn content_type(&self) -> &'static str;
    /// Number of events.
    fn count(&self) -> usize;
    /// Whether `--delay` pauses before event `i` (never before the first).
    fn is_paced(&self, i: usize) -> bool;
    /// Replaces `out` with the bytes of event `i`.
    fn render(&self, i: usize, out: &mut Vec<u8>);
    fn delay(&self) -> Duration;
    /// End the connection after this many events, and how.
    fn cut(&self) -> Option<Cut>;
}

/// A stream cut short on purpose (`close-mid-stream`, `reset-mid-stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Events sent before the cut.
    pub after: u32,
    pub kind: CutKind,
}

/// How a cut ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutKind {
    /// A clean close (FIN): the client sees the body end early.
    Close,
    /// A reset (RST): the client sees a connection error.
    Reset,
}

impl Cut {
    /// The earlier of a close and a reset; a reset on the same event wins,
    /// being the harsher of the two.
    pub fn earliest(close_after: Option<u32>, reset_after: Option<u32>) -> Option<Cut> {
        let close = close_after.map(|after| Cut { after, kind: CutKind::Close });
        let reset = reset_after.map(|after| Cut { after, kind: CutKind::Reset });
        match (close, reset) {
            (Some(close), Some(reset)) => Some(if close.after < reset.after { close } else { reset }),
            (close, reset) => close.or(reset),
        }
    }
}

/// A stream whose events are rendered before the first one is sent.
#[derive(Debug, Clone)]
pub struct EventList {
    pub content_type: &'static str,
    /// Each event with whether it is paced.
    pub events: Vec<(bool, Vec<u8>)>,
    pub delay: Duration,
    pub cut: Option<Cut>,
}

impl EventList {
    pub fn new(content_type: &'static str, delay: Duration, cut: Option<Cut>) -> Self {
        Self { content_type, events: Vec::new(), delay, cut }
    }

    /// Adds an event made of raw bytes.
    pub fn push(&mut self, paced: bool, bytes: Vec<u8>) {
        self.events.push((paced, bytes));
    }

    /// Adds an SSE event: `event: NAME` when named, then `data: DATA`.
    pub fn sse(&mut self, paced: bool, name: Option<&str>, data: &[u8]) {
        let mut bytes = Vec::with_capacity(data.len() + 32);
        if let Some(name) = name {
            bytes.extend_from_slice(b"event: ");
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(b"data: ");
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(b"\n\n");
        self.push(paced, bytes);
    }

    /// Adds one NDJSON line.
    pub fn line(&mut self, paced: bool, json: &[u8]) {
        let mut bytes = Vec::with_capacity(json.len() + 1);
        bytes.extend_from_slice(json);
        bytes.push(b'\n');
        self.push(paced, bytes);
    }
}

impl EventSource for EventList {
    fn content_type(&self) -> &'static str {
        self.content_type
    }

    fn count(&self) -> usize {
        self.events.len()
    }

    fn is_paced(&self, i: usize) -> bool {
        i > 0 && self.events.get(i).is_some_and(|e| e.0)
    }

    fn render(&self, i: usize, out: &mut Vec<u8>) {
        out.clear();
        if let Some((_, bytes)) = self.events.get(i) {
            out.extend_from_slice(bytes);
        }
    }

    fn delay(&self) -> Duration {
        self.delay
    }

    fn cut(&self) -> Option<Cut> {
        self.cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_cut_wins_and_reset_breaks_ties() {
        let close = |after| Some(Cut { after, kind: CutKind::Close });
        let reset = |after| Some(Cut { after, kind: CutKind::Reset });
        assert_eq!(Cut::earliest(None, None), None);
        assert_eq!(Cut::earliest(Some(2), None), close(2));
        assert_eq!(Cut::earliest(None, Some(0)), reset(0));
        assert_eq!(Cut::earliest(Some(1), Some(3)), close(1));
        assert_eq!(Cut::earliest(Some(3), Some(1)), reset(1));
        assert_eq!(Cut::earliest(Some(2), Some(2)), reset(2));
    }
}
