//! No allocation per streamed event once warm (STYLE 10), checked by
//! counting the allocations this thread makes while a translator that has
//! seen a few events is fed many more.

#![allow(unsafe_code, reason = "a counting global allocator must implement GlobalAlloc")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use translate::stream::{Context, Dialect, Translator};

/// The system allocator, counting the calls of the thread that made them
/// (tests run on several threads at once).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds
// GlobalAlloc's contract; the counter is a thread-local Cell and never
// allocates itself.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn context() -> Context {
    Context { id: "gen-1".into(), model: "m".into(), created: 1, include_usage: true, json_tool: false }
}

/// Feeds `start`, then `event` a few times to warm up, then counts the
/// allocations of 1,000 more `event`s.
fn allocations_per_thousand(from: Dialect, to: Dialect, start: &[u8], event: &[u8]) -> u64 {
    let mut translator = Translator::new(from, to, context());
    let mut out = Vec::with_capacity(64 * 1024);
    translator.feed(start, &mut out);
    for _ in 0..8 {
        out.clear();
        translator.feed(event, &mut out);
    }
    let before = allocations();
    for _ in 0..1000 {
        out.clear();
        translator.feed(event, &mut out);
    }
    assert!(!out.is_empty(), "the event produced output");
    allocations() - before
}

#[test]
fn anthropic_events_to_openai_chunks_allocate_nothing_once_warm() {
    let start = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"c\",\"usage\":{\"input_tokens\":3}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{}}}\n\n";
    let text = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\": 1\"}}\n\n";
    assert_eq!(allocations_per_thousand(Dialect::Anthropic, Dialect::OpenAi, start, text), 0);
    // The general parser, not the fast path: key order differs.
    let general = b"event: content_block_delta\ndata: {\"index\":0,\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\",\"type\":\"text_delta\"}}\n\n";
    assert_eq!(allocations_per_thousand(Dialect::Anthropic, Dialect::OpenAi, start, general), 0);
}

#[test]
fn openai_chunks_to_anthropic_events_allocate_nothing_once_warm() {
    let start = b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
    let text = b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"word \"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n";
    assert_eq!(allocations_per_thousand(Dialect::OpenAi, Dialect::Anthropic, start, text), 0);
    let tool = b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"x\"}}]},\"finish_reason\":null}]}\n\n";
    let tool_start = b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n";
    let warm = [&start[..], &tool_start[..]].concat();
    assert_eq!(allocations_per_thousand(Dialect::OpenAi, Dialect::Anthropic, &warm, tool), 0);
}

#[test]
fn gemini_chunks_to_openai_chunks_allocate_nothing_once_warm() {
    let event = b"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"word \"}]}}]}\n\n";
    assert_eq!(allocations_per_thousand(Dialect::Gemini, Dialect::OpenAi, event, event), 0);
}

#[test]
fn the_counter_counts() {
    let before = allocations();
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(10));
    drop(v);
    assert_eq!(allocations() - before, 1);
}

/// One event-stream frame with string headers (the framing of Bedrock's
/// ConverseStream), CRCs included.
fn frame(event_type: &str, payload: &str) -> Vec<u8> {
    let mut headers = Vec::new();
    for (name, value) in
        [(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")]
    {
        headers.push(name.len() as u8);
        headers.extend_from_slice(name.as_bytes());
        headers.push(7);
        headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        headers.extend_from_slice(value.as_bytes());
    }
    let total = 12 + headers.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let prelude = crc32fast::hash(&out);
    out.extend_from_slice(&prelude.to_be_bytes());
    out.extend_from_slice(&headers);
    out.extend_from_slice(payload.as_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[test]
fn bedrock_frames_to_openai_chunks_allocate_nothing_once_warm() {
    let start = frame("messageStart", r#"{"role":"assistant"}"#);
    let delta = frame("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"word "}}"#);
    assert_eq!(allocations_per_thousand(Dialect::Bedrock, Dialect::OpenAi, &start, &delta), 0);
}
