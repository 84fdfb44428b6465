//! Fuzzes request translation: arbitrary bytes as an OpenAI or Anthropic
//! request body, written for every provider dialect. Nothing may panic;
//! whatever is written must be valid JSON. corelay's own JSON reader (which
//! the OpenAI request parser walks) must accept exactly what sonic-rs does.

#![no_main]

use libfuzzer_sys::fuzz_target;
use translate::stream::Dialect;
use translate::{Target, openai, anthropic, gemini, bedrock};

fn targets() -> [Target; 5] {
    [
        Target::OpenAi(openai::request::Flavor { max_completion_tokens: true, stream_usage: true }),
        Target::OpenAi(openai::request::Flavor { max_completion_tokens: false, stream_usage: false }),
        Target::Anthropic(anthropic::request::Options { max_tokens_default: 1024 }),
        Target::Gemini(gemini::request::Options { thinking: gemini::request::Thinking::Budget }),
        Target::Bedrock(bedrock::request::Options { max_tokens_default: None }),
    ]
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(translate::json::is_json(text), sonic_rs::from_str::<sonic_rs::Value>(text).is_ok(), "{text}");
    }
    for from in [Dialect::OpenAi, Dialect::Anthropic] {
        let Ok(request) = translate::parse_request(from, data) else { continue };
        for target in targets() {
            let mut out = Vec::new();
            if translate::write_request(&request, target, "model", &mut out).is_ok() {
                assert!(sonic_rs::from_slice::<sonic_rs::Value>(&out).is_ok(), "{}", String::from_utf8_lossy(&out));
            }
        }
    }
});
