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
    /// Close the connection after this many events.
    fn close_after(&self) -> Option<u32>;
}

/// A stream whose events are rendered before the first one is sent.
#[derive(Debug, Clone)]
pub struct EventList {
    pub content_type: &'static str,
    /// Each event with whether it is paced.
    pub events: Vec<(bool, Vec<u8>)>,
    pub delay: Duration,
    pub close_after: Option<u32>,
}

impl EventList {
    pub fn new(content_type: &'static str, delay: Duration, close_after: Option<u32>) -> Self {
        Self { content_type, events: Vec::new(), delay, close_after }
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

    fn close_after(&self) -> Option<u32> {
        self.close_after
    }
}
