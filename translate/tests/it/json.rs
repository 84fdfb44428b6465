//! corelay's JSON reader against sonic-rs, on mutated request bodies.

/// The golden request bodies, mutated at random (seeded, so a failure
/// repeats): the reader must accept exactly what sonic-rs's full parse
/// accepts. `JSON_MUTATIONS` sets how many.
#[test]
fn accepts_what_sonic_accepts() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/test_data");
    let mut seeds = Vec::new();
    for pair in std::fs::read_dir(dir).unwrap() {
        let pair = pair.unwrap().path();
        if !pair.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(pair).unwrap() {
            let path = file.unwrap().path();
            if path.to_string_lossy().ends_with(".request.json") {
                let text = std::fs::read_to_string(&path).unwrap();
                seeds.push(text.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n"));
            }
        }
    }
    assert!(seeds.len() > 100);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut random = move |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    };
    let alphabet =
        ["{", "}", "[", "]", "\"", ",", ":", "0", "1", "-", ".", "e", " ", "\\", "\\u", "true", "null", "\u{1}", "é"];
    let runs = std::env::var("JSON_MUTATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(30_000);
    let mut accepted = 0;
    for _ in 0..runs {
        let mut text = seeds[random(seeds.len())].clone();
        for _ in 0..1 + random(3) {
            let mut at = random(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let end = (at + random(3)).min(text.len());
            let end = (end..=text.len()).find(|&e| text.is_char_boundary(e)).unwrap_or(text.len());
            text.replace_range(at..end, alphabet[random(alphabet.len())]);
        }
        let ours = translate::json::is_json(&text);
        let sonic = sonic_rs::from_str::<sonic_rs::Value>(&text).is_ok();
        assert_eq!(ours, sonic, "{text}");
        accepted += usize::from(ours);
    }
    // The mutations must leave enough valid documents to compare.
    assert!(accepted * 20 > runs, "{accepted} of {runs}");
}
