//! Per-key rate limits through a running gateway with two shards: requests
//! per minute admitted exactly across shards, tokens per minute charged from
//! real usage (streams included), 429s in each dialect with their headers.

use std::time::Duration;

use sonic_rs::JsonValueTrait;

use crate::support::*;

const KEY: &str = "sk-corelay-limited-key";

fn config(limits: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nshards = 2\n[providers.m]\nkind = \"mock\"\nmodels = [\"m\"]\n[[keys]]\nname = \"team\"\nkey = \"{KEY}\"\n{limits}\n"
    )
}

/// Waits, when the wall-clock minute is about to end, for the next one: a
/// test's requests must fall in one window.
fn within_one_window(needed: Duration) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let into = Duration::from_millis((now.as_millis() % 60_000) as u64);
    if into + needed > Duration::from_secs(59) {
        std::thread::sleep(Duration::from_secs(60) - into + Duration::from_millis(200));
    }
}

fn ask(client: &mut Client, path: &str, body: &str) -> Response {
    client.send("POST", path, &[("authorization", &format!("Bearer {KEY}"))], body.as_bytes())
}

#[test]
fn an_rpm_limit_admits_exactly_its_limit_over_both_shards() {
    const LIMIT: usize = 20;
    let gw = Gateway::start(&config(&format!("rpm = {LIMIT}")));
    within_one_window(Duration::from_secs(10));
    // Every request on a new connection: the kernel spreads them over both
    // shards.
    let mut admitted = 0;
    let mut refused = Vec::new();
    for _ in 0..4 * LIMIT {
        let r = ask(&mut gw.client(), "/v1/chat/completions", &chat_body("m", false));
        match r.status {
            200 => admitted += 1,
            429 => refused.push(r),
            other => panic!("{other}: {}", r.text()),
        }
    }
    assert_eq!(admitted, LIMIT, "exactly the limit");
    let r = &refused[0];
    assert_eq!(r.openai_error().1, "requests");
    assert_eq!(r.openai_error().2.as_deref(), Some("rate_limit_exceeded"));
    let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&after), "{after}");
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("20"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    // The Anthropic door says it in Anthropic's shape.
    let r = ask(
        &mut gw.client(),
        "/v1/messages",
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["type"].as_str(), Some("rate_limit_error"));
}

#[test]
fn an_rpm_limit_on_one_shard_admits_nearly_all_of_it() {
    const LIMIT: usize = 40;
    let gw = Gateway::start(&config(&format!("rpm = {LIMIT}")));
    within_one_window(Duration::from_secs(10));
    // One keep-alive connection: one shard.
    let mut client = gw.client();
    let admitted = (0..4 * LIMIT)
        .filter(|_| ask(&mut client, "/v1/chat/completions", &chat_body("m", false)).status == 200)
        .count();
    assert!(admitted * 100 >= LIMIT * 95 && admitted <= LIMIT, "{admitted} of {LIMIT}");
}

#[test]
fn a_tpm_limit_is_charged_from_answers_usage_streams_included() {
    // The mock answers with 10 prompt tokens and a dozen or so completion
    // tokens: a limit of 100 tokens lets a few requests through.
    let gw = Gateway::start(&config("tpm = 100"));
    within_one_window(Duration::from_secs(10));
    let mut client = gw.client();
    let mut tokens = 0;
    let mut answered = 0;
    for i in 0..40 {
        let stream = i % 2 == 1;
        let r = ask(&mut client, "/v1/chat/completions", &chat_body("m", stream));
        if r.status == 429 {
            assert_eq!(r.openai_error().1, "tokens", "{}", r.text());
            assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("100"));
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        answered += 1;
        tokens += if stream {
            // The usage corelay asked for is hidden from this client, but
            // counted: the mock's usage is the same as a whole answer's.
            let whole = ask(&mut client, "/v1/chat/completions", &chat_body("m", false));
            if whole.status != 200 {
                break;
            }
            answered += 1;
            2 * whole.json()["usage"]["total_tokens"].as_u64().unwrap()
        } else {
            r.json()["usage"]["total_tokens"].as_u64().unwrap()
        };
    }
    assert!(answered >= 2, "{answered}");
    assert!(tokens >= 100, "the window was spent: {tokens}");
    // Admission checks what was charged so far: the last admitted answer
    // may pass the limit by its own size, no more.
    assert!(tokens < 100 + 40, "{tokens}");
}

#[test]
fn keys_without_limits_and_configs_without_keys_are_not_limited() {
    let gw = Gateway::start(&config(""));
    let mut client = gw.client();
    for _ in 0..50 {
        assert_eq!(ask(&mut client, "/v1/chat/completions", &chat_body("m", false)).status, 200);
    }
    let text = config("rpm = 0");
    let dir = TempDir::new();
    let path = dir.0.join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corelay"))
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("keys[0].rpm"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn keys_are_read_from_every_dialects_header_and_expired_ones_are_refused() {
    let text = format!(
        "listen = \"127.0.0.1:0\"\nshards = 1\n[providers.m]\nkind = \"mock\"\nmodels = [\"m\"]\n[[keys]]\nname = \"live\"\nkey = \"{KEY}\"\nexpires_at = \"2999-01-01T00:00:00Z\"\n[[keys]]\nname = \"old\"\nkey = \"sk-corelay-expired-key\"\nexpires_at = \"2020-01-01\"\n"
    );
    let gw = Gateway::start(&text);
    let body = chat_body("m", false);
    for header in ["authorization", "x-api-key", "x-goog-api-key"] {
        let value = if header == "authorization" { format!("Bearer {KEY}") } else { KEY.to_owned() };
        let r = gw.client().send("POST", "/v1/chat/completions", &[(header, &value)], body.as_bytes());
        assert_eq!(r.status, 200, "{header}: {}", r.text());
    }
    let r = gw.client().send(
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-corelay-expired-key")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 401);
    assert!(r.openai_error().0.contains("(`old`) has expired"), "{}", r.text());
    let r = gw.client().send(
        "POST",
        "/v1/messages",
        &[("x-api-key", "sk-corelay-expired-key")],
        br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"].as_str(), Some("authentication_error"), "{}", r.text());
}

#[test]
fn a_key_can_be_limited_for_one_model_apart() {
    let text = format!(
        "listen = \"127.0.0.1:0\"\nshards = 2\n[providers.m]\nkind = \"mock\"\nmodels = [\"m\", \"n\"]\n[aliases]\nfast = \"m\"\n[[keys]]\nname = \"team\"\nkey = \"{KEY}\"\nmodel_limits = {{ m = {{ rpm = 3 }} }}\n"
    );
    let gw = Gateway::start(&text);
    within_one_window(Duration::from_secs(10));
    let statuses = |model: &str, n: usize| -> Vec<u16> {
        (0..n).map(|_| ask(&mut gw.client(), "/v1/chat/completions", &chat_body(model, false)).status).collect()
    };
    // The alias resolves to `m` and shares its limit.
    let m: Vec<u16> = [statuses("m", 2), statuses("fast", 4)].concat();
    assert_eq!(m.iter().filter(|&&s| s == 200).count(), 3, "{m:?}");
    assert!(statuses("n", 10).iter().all(|&s| s == 200), "other models are not limited");
}
