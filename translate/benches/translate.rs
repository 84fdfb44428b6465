//! Criterion benches of the translation hot paths (issue 3's criteria):
//! - an OpenAI request of about 2 KB written for Anthropic (≤ 2 µs);
//! - one Anthropic stream event translated into an OpenAI chunk (≤ 300 ns);
//! - the same for OpenAI chunks into Anthropic events;
//! - one Bedrock event-stream frame into an OpenAI chunk;
//! - the same-dialect path: a request's peek and splice, and one streamed
//!   event's splitting and usage classification.
//!
//! `cargo bench -p translate` (or `just bench-translate`). The figures and
//! the machine are quoted in `translate`'s crate docs.

use std::hint::black_box;

// The allocator corelay runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use translate::stream::{Context, Dialect, Translator};

/// About 2 KB: a system prompt, a short conversation with a tool round
/// trip, and two tools with JSON schemas. It is also a golden case.
const OPENAI_REQUEST: &str = include_str!("../test_data/openai_to_anthropic/bench_2k.request.json");

/// About 2 KB of conversation: a system prompt, six turns of prose and one
/// tool, the shape of the measurement in `shared/research/tech.md`.
const OPENAI_CHAT_REQUEST: &str = include_str!("../test_data/openai_to_anthropic/bench_chat_2k.request.json");

fn request(c: &mut Criterion) {
    request_bench(c, "tools", OPENAI_REQUEST.trim_end());
    request_bench(c, "chat", OPENAI_CHAT_REQUEST.trim_end());
}

fn request_bench(c: &mut Criterion, shape: &str, body: &str) {
    let options = translate::anthropic::request::Options { max_tokens_default: 4096 };
    let mut out = Vec::with_capacity(4096);
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function(format!("openai_to_anthropic_{shape}_{}_bytes", body.len()), |b| {
        b.iter(|| {
            out.clear();
            let parsed = translate::parse_request(Dialect::OpenAi, black_box(body.as_bytes())).unwrap();
            translate::write_request(&parsed, translate::Target::Anthropic(options), "claude-sonnet-4-5", &mut out)
                .unwrap();
            black_box(&out);
        })
    });
    group.finish();
}

fn context() -> Context {
    Context { id: "gen-1".into(), model: "m".into(), created: 1_700_000_000, include_usage: true, json_tool: false }
}

/// Feeds `events` (one SSE event each) through a translator that has
/// already started, and reports the time per event.
fn stream_bench(c: &mut Criterion, name: &str, from: Dialect, to: Dialect, start: &str, events: &[String]) {
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(events.len() as u64));
    let mut out = Vec::with_capacity(64 * 1024);
    group.bench_function(name, |b| {
        let mut translator = Translator::new(from, to, context());
        translator.feed(start.as_bytes(), &mut out);
        b.iter(|| {
            for event in events {
                out.clear();
                translator.feed(black_box(event.as_bytes()), &mut out);
            }
            black_box(&out);
        })
    });
    group.finish();
}

fn streams(c: &mut Criterion) {
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":[],\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
    let anthropic: Vec<String> = (0..64)
        .map(|i| format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"word{i} \"}}}}\n\n"))
        .collect();
    stream_bench(c, "anthropic_to_openai_per_event", Dialect::Anthropic, Dialect::OpenAi, start, &anthropic);
    let start = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
    let openai: Vec<String> = (0..64)
        .map(|i| format!("data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"))
        .collect();
    stream_bench(c, "openai_to_anthropic_per_event", Dialect::OpenAi, Dialect::Anthropic, start, &openai);
}

/// One Bedrock ConverseStream frame, CRCs included.
fn bedrock_frame(event_type: &str, payload: &str) -> Vec<u8> {
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
    let mut frame = Vec::with_capacity(total);
    frame.extend_from_slice(&(total as u32).to_be_bytes());
    frame.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32fast::hash(&frame).to_be_bytes());
    frame.extend_from_slice(&headers);
    frame.extend_from_slice(payload.as_bytes());
    let crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&crc.to_be_bytes());
    frame
}

fn bedrock_stream(c: &mut Criterion) {
    let start = bedrock_frame("messageStart", r#"{"role":"assistant"}"#);
    let events: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            bedrock_frame("contentBlockDelta", &format!(r#"{{"contentBlockIndex":0,"delta":{{"text":"word{i} "}}}}"#))
        })
        .collect();
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(events.len() as u64));
    let mut out = Vec::with_capacity(64 * 1024);
    group.bench_function("bedrock_to_openai_per_event", |b| {
        let mut translator = Translator::new(Dialect::Bedrock, Dialect::OpenAi, context());
        translator.feed(&start, &mut out);
        b.iter(|| {
            for event in &events {
                out.clear();
                translator.feed(black_box(event), &mut out);
            }
            black_box(&out);
        })
    });
    group.finish();
}

/// The same-dialect path: what a request costs before it is forwarded (the
/// peek of `model` and `stream`, then the splice of the model name and
/// `stream_options`), and what each streamed event costs on its way back
/// (cut out of the reads by the SSE splitter, classified for usage).
fn pass_through(c: &mut Criterion) {
    let body = OPENAI_CHAT_REQUEST.trim_end().as_bytes();
    let mut group = c.benchmark_group("pass_through");
    group.throughput(Throughput::Bytes(body.len() as u64));
    let mut out = Vec::with_capacity(4096);
    group.bench_function(format!("peek_{}_bytes", body.len()), |b| {
        b.iter(|| black_box(translate::openai::peek_chat(black_box(body)).map(|p| p.stream)))
    });
    group.bench_function(format!("peek_and_splice_{}_bytes", body.len()), |b| {
        b.iter(|| {
            let peek = translate::openai::peek_chat(black_box(body)).unwrap();
            let splice = translate::openai::Splice {
                model: Some("gpt-4o-2024-08-06"),
                include_usage: true,
                max_tokens_name: false,
            };
            out.clear();
            translate::openai::splice_chat(body, &peek, splice, &mut out);
            black_box(&out);
        })
    });
    group.finish();
    let events: Vec<String> = (0..64)
        .map(|i| format!("data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"))
        .collect();
    let mut group = c.benchmark_group("pass_through");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("sse_forward_per_event", |b| {
        let mut splitter = translate::sse::Splitter::new(1 << 20);
        b.iter(|| {
            out.clear();
            // One event a read, as a provider that flushes each one sends them.
            for event in events.iter() {
                splitter.feed(black_box(event.as_bytes()), |piece| {
                    if let translate::sse::Piece::Event(e) = piece {
                        black_box(translate::openai::classify_chunk(e));
                        out.extend_from_slice(e);
                    }
                });
            }
            black_box(&out);
        })
    });
    group.finish();
}

criterion_group!(benches, request, streams, bedrock_stream, pass_through);
criterion_main!(benches);
