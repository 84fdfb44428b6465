//! Fuzzes the request and response head parsers with arbitrary bytes, as a
//! client or a provider may send them. Nothing may panic, and every range a
//! parsed head hands out must lie inside the head it came from.

#![no_main]

use gateway::http::codec::{parse_request_head, parse_response_head};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for headers_max in [1, 8, 100] {
        if let Ok(Some(head)) = parse_request_head(data, headers_max, 64 * 1024) {
            assert!(head.len <= data.len());
            let ranges = [
                Some(head.target.clone()),
                head.authorization.clone(),
                head.x_api_key.clone(),
                head.x_goog_api_key.clone(),
                head.anthropic_version.clone(),
                head.anthropic_beta.clone(),
            ];
            for range in ranges.into_iter().flatten() {
                assert!(range.start <= range.end && range.end <= head.len, "{range:?} beyond {}", head.len);
            }
        }
    }
    if let Ok(Some(head)) = parse_response_head(data, 64 * 1024) {
        assert!(head.len <= data.len());
        let ranges = head.forward.iter().flat_map(|(n, v)| [n.clone(), v.clone()]);
        for range in ranges.chain(head.content_type.clone()).chain(head.error_type.clone()) {
            assert!(range.start <= range.end && range.end <= head.len, "{range:?} beyond {}", head.len);
        }
    }
});
