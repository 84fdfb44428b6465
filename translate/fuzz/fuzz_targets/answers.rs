//! Fuzzes answer translation: arbitrary bytes as a provider's non-streamed
//! answer, error body and stream (cut into arbitrary reads), in every
//! provider dialect, written for both client dialects. Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use translate::stream::{Context, Dialect, Translator};
use translate::{ResponseContext, Written};

const PROVIDERS: [Dialect; 4] = [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini, Dialect::Bedrock];
const CLIENTS: [Dialect; 2] = [Dialect::OpenAi, Dialect::Anthropic];

fuzz_target!(|data: &[u8]| {
    let (cut, body) = match data.split_first() {
        Some((&c, rest)) => (usize::from(c).max(1), rest),
        None => return,
    };
    for from in PROVIDERS {
        let _ = translate::parse_error(from, 500, body);
        for to in CLIENTS {
            for json_tool in [false, true] {
                let cx = ResponseContext { id: "id", model: "m", created: 1, written: Written { json_tool } };
                let mut out = Vec::new();
                let _ = translate::translate_response(from, body, to, cx, &mut out);
                let cx = Context { id: "id".into(), model: "m".into(), created: 1, include_usage: true, json_tool };
                let mut translator = Translator::new(from, to, cx);
                let mut out = Vec::new();
                for read in body.chunks(cut) {
                    translator.feed(read, &mut out);
                }
                translator.end(&mut out);
            }
        }
    }
});
