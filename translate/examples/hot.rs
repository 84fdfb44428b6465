//! Runs one translation path many times, for instruction counts under
//! `valgrind --tool=callgrind` (repeatable on a busy machine, unlike wall
//! time): `cargo build --release -p translate --example hot`, then
//! `valgrind --tool=callgrind target/release/examples/hot request 10000`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use translate::stream::{Context, Dialect, Translator};

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "request".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let body = if what == "chat" {
        include_str!("../test_data/openai_to_anthropic/bench_chat_2k.request.json")
    } else {
        include_str!("../test_data/openai_to_anthropic/bench_2k.request.json")
    };
    let body = body.split_once('\n').map_or(body, |(first, rest)| if first.starts_with('#') { rest } else { body });
    let mut out = Vec::with_capacity(8192);
    match what.as_str() {
        "request" | "chat" => {
            let options = translate::anthropic::request::Options { max_tokens_default: 4096 };
            for _ in 0..n {
                out.clear();
                let parsed = translate::parse_request(Dialect::OpenAi, body.as_bytes()).unwrap();
                translate::write_request(&parsed, translate::Target::Anthropic(options), "claude", &mut out).unwrap();
                std::hint::black_box(&out);
            }
        }
        "a2o" | "o2a" => {
            let (from, to, start, event) = if what == "a2o" {
                (
                    Dialect::Anthropic,
                    Dialect::OpenAi,
                    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"c\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
                    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"word \"}}\n\n",
                )
            } else {
                (
                    Dialect::OpenAi,
                    Dialect::Anthropic,
                    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
                    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"word \"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
                )
            };
            let cx = Context { id: "g".into(), model: "m".into(), created: 1, include_usage: true, json_tool: false };
            let mut t = Translator::new(from, to, cx);
            t.feed(start.as_bytes(), &mut out);
            for _ in 0..n {
                out.clear();
                t.feed(event.as_bytes(), &mut out);
                std::hint::black_box(&out);
            }
        }
        "skip" => {
            for _ in 0..n {
                std::hint::black_box(sonic_rs::get(body.as_bytes(), ["zzz"]).is_err());
            }
        }
        "lazy" => {
            for _ in 0..n {
                let v: sonic_rs::LazyValue<'_> = sonic_rs::from_slice(body.as_bytes()).unwrap();
                std::hint::black_box(v);
            }
        }
        other => panic!("unknown path {other}: request, a2o or o2a"),
    }
}
