//! The response cache through a running gateway, in front of a scripted
//! OpenAI provider that numbers its answers (so a kept answer is told from
//! a fresh one): what is kept and for whom, what a client can ask of it,
//! expiry, and clearing through the admin API.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sonic_rs::JsonValueTrait;

use crate::support::*;

const ADMIN: &str = "admin-token-0123456789";
const ALICE: &str = "sk-corelay-alice";
const BOB: &str = "sk-corelay-bob";
const EMBEDDER: &str = "sk-corelay-embedder";

/// A provider whose n-th chat answer says `answer n`; `fail_first` answers
/// that many requests with a 500 first.
fn numbering_upstream(fail_first: usize) -> Scripted {
    let served = Arc::new(AtomicUsize::new(0));
    Scripted::start(move |r| {
        let n = served.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= fail_first {
            return Action::Reply(json_reply(500, "", r#"{"error":{"message":"boom","type":"server_error"}}"#));
        }
        if r.request_line().contains("/embeddings") {
            let body = format!(
                r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":[0.{n}]}}],"model":"bench-embed","usage":{{"prompt_tokens":1,"total_tokens":1}}}}"#
            );
            return Action::Reply(json_reply(200, "", &body));
        }
        if r.body_text().contains(r#""stream":true"#) {
            return Action::Stream {
                events: vec![chunk_event(&format!("answer {n}"))],
                gap: Duration::ZERO,
                finish: true,
            };
        }
        let body = completion("bench-chat").replace(r#""content":"ok""#, &format!(r#""content":"answer {n}""#));
        Action::Reply(json_reply(200, "", &body))
    })
}

fn config(upstream: &Scripted, cache: &str) -> String {
    config_with_shards(upstream, cache, 1)
}

fn config_with_shards(upstream: &Scripted, cache: &str, shards: usize) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
shards = {shards}
admin_token = "{ADMIN}"
[upstream]
stats_interval_ms = 50
[providers.up]
kind = "openai"
base_url = "http://{}/v1"
api_key = "sk-upstream-secret"
models = ["bench-chat", "bench-embed"]
max_retries = 0
timeout = 5
[cache]
enabled = true
{cache}
[[keys]]
name = "alice"
key = "{ALICE}"
[[keys]]
name = "bob"
key = "{BOB}"
[[keys]]
name = "embedder"
key = "{EMBEDDER}"
models = ["bench-embed"]
"#,
        upstream.addr
    )
}

fn send(gw: &Gateway, path: &str, key: &str, extra: &[(&str, &str)], body: &str) -> Response {
    let bearer = format!("Bearer {key}");
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend_from_slice(extra);
    gw.client().send("POST", path, &headers, body.as_bytes())
}

fn chat(gw: &Gateway, key: &str, extra: &[(&str, &str)], body: &str) -> Response {
    send(gw, "/v1/chat/completions", key, extra, body)
}

fn content(r: &Response) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned()
}

/// `corelay_NAME_total` from `/metrics` (which needs a key here), once it
/// reaches `want` or after 5 s (counters are summed on a tick).
fn metric(gw: &Gateway, name: &str, want: u64) -> u64 {
    let bearer = format!("Bearer {ALICE}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = gw.client().send("GET", "/metrics", &[("authorization", &bearer)], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        let line = format!("corelay_{name}_total ");
        let value = r.text().lines().find_map(|l| l.strip_prefix(&line)?.parse().ok()).unwrap_or(0);
        if value >= want || std::time::Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn upstream_calls(up: &Scripted) -> usize {
    up.requests.lock().unwrap().len()
}

const DETERMINISTIC: &str = r#"{"model":"bench-chat","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#;
const SAMPLED: &str = r#"{"model":"bench-chat","messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn a_repeated_deterministic_request_is_answered_from_the_cache() {
    let up = numbering_upstream(0);
    let gw = Gateway::start(&config(&up, ""));
    let first = chat(&gw, ALICE, &[], DETERMINISTIC);
    assert_eq!((content(&first).as_str(), first.header("x-corelay-cache")), ("answer 1", Some("miss")));
    assert_eq!(first.header("age"), None);
    let second = chat(&gw, ALICE, &[], DETERMINISTIC);
    assert_eq!((content(&second).as_str(), second.header("x-corelay-cache")), ("answer 1", Some("hit")));
    assert_eq!(second.body, first.body, "the kept body, byte for byte");
    assert_eq!(second.header("content-type"), Some("application/json"));
    assert!(second.header("age").is_some_and(|a| a.parse::<u64>().is_ok()), "{:?}", second.headers);
    assert_eq!(upstream_calls(&up), 1);
    // A different body is another entry.
    let other = DETERMINISTIC.replace("hi", "hello");
    assert_eq!(content(&chat(&gw, ALICE, &[], &other)), "answer 2");
    assert_eq!(metric(&gw, "cache_hits", 1), 1);
    assert_eq!(metric(&gw, "cache_misses", 2), 2);
    // In the key's usage: three requests, the hit without tokens.
    let bearer = format!("Bearer {ALICE}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let total = loop {
        let r = gw.client().send("GET", "/v1/usage", &[("authorization", &bearer)], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        let total = r.json()["total"].clone();
        if total["requests"].as_u64() == Some(3) || std::time::Instant::now() > deadline {
            break total;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(total["requests"].as_u64(), Some(3), "{total}");
    assert_eq!(total["prompt_tokens"].as_u64(), Some(6), "two answers of 3 prompt tokens: {total}");
}

#[test]
fn an_answer_kept_by_one_shard_is_in_every_shards_cache() {
    let up = numbering_upstream(0);
    let gw = Gateway::start(&config_with_shards(&up, "", 4));
    assert_eq!(content(&chat(&gw, ALICE, &[], DETERMINISTIC)), "answer 1");
    // The other shards get it through the control plane, within a moment.
    std::thread::sleep(Duration::from_millis(200));
    // Fresh connections land on the shards at random (SO_REUSEPORT): with
    // one cache per shard alone, 16 of them would all miss but a quarter.
    for _ in 0..16 {
        let r = chat(&gw, ALICE, &[], DETERMINISTIC);
        assert_eq!((content(&r).as_str(), r.header("x-corelay-cache")), ("answer 1", Some("hit")));
    }
    assert_eq!(upstream_calls(&up), 1);
    assert_eq!(metric(&gw, "cache_hits", 16), 16);
}

#[test]
fn sampled_requests_are_kept_only_when_asked_or_configured() {
    let up = numbering_upstream(0);
    let gw = Gateway::start(&config(&up, ""));
    let a = chat(&gw, ALICE, &[], SAMPLED);
    let b = chat(&gw, ALICE, &[], SAMPLED);
    assert_eq!((content(&a).as_str(), content(&b).as_str()), ("answer 1", "answer 2"));
    assert_eq!(a.header("x-corelay-cache"), None, "the cache stayed out of it");
    // `x-corelay-cache: use` opts a request in.
    let opt_in = [("x-corelay-cache", "use")];
    assert_eq!(content(&chat(&gw, ALICE, &opt_in, SAMPLED)), "answer 3");
    let hit = chat(&gw, ALICE, &opt_in, SAMPLED);
    assert_eq!((content(&hit).as_str(), hit.header("x-corelay-cache")), ("answer 3", Some("hit")));
    drop(gw);

    let up = numbering_upstream(0);
    let gw = Gateway::start(&config(&up, "chat = \"all\""));
    assert_eq!(content(&chat(&gw, ALICE, &[], SAMPLED)), "answer 1");
    assert_eq!(content(&chat(&gw, ALICE, &[], SAMPLED)), "answer 1");
    assert_eq!(upstream_calls(&up), 1);
}

#[test]
fn clients_can_skip_or_refresh_the_cache() {
    let up = numbering_upstream(0);
    let gw = Gateway::start(&config(&up, ""));
    assert_eq!(content(&chat(&gw, ALICE, &[], DETERMINISTIC)), "answer 1");
    // skip: to the provider, nothing kept, no header.
    for skip in [("x-corelay-cache", "skip"), ("cache-control", "no-store")] {
        let r = chat(&gw, ALICE, &[skip], DETERMINISTIC);
        assert_eq!(r.header("x-corelay-cache"), None, "{skip:?}");
        assert!(content(&r).starts_with("answer "), "{skip:?}");
    }
    assert_eq!(upstream_calls(&up), 3);
    assert_eq!(content(&chat(&gw, ALICE, &[], DETERMINISTIC)), "answer 1", "skipped answers were not kept");
    // refresh (or no-cache): to the provider, and its answer replaces the kept one.
    let r = chat(&gw, ALICE, &[("cache-control", "max-age=0, no-cache")], DETERMINISTIC);
    assert_eq!((content(&r).as_str(), r.header("x-corelay-cache")), ("answer 4", Some("miss")));
    assert_eq!(content(&chat(&gw, ALICE, &[], DETERMINISTIC)), "answer 4");
    let r = chat(&gw, ALICE, &[("x-corelay-cache", "refresh")], DETERMINISTIC);
    assert_eq!(content(&r), "answer 5");
    assert_eq!(content(&chat(&gw, ALICE, &[], DETERMINISTIC)), "answer 5");
    assert_eq!(upstream_calls(&up), 5);
}

#[test]
fn keys_keep_their_own_answers_and_a_hit_checks_the_model_first() {
    let up = numbering_upstream(0);
    let gw = Gateway::start(&config(&up, ""));
    assert_eq!(content(&chat(&gw, ALICE, &[], DETERMINISTIC)), "answer 1");
    // Bob sends the same bytes: his own entry, not Alice's answer.
    assert_eq!(content(&chat(&gw, BOB, &[], DETERMINISTIC)), "answer 2");
    assert_eq!(content(&chat(&gw, BOB, &[], DETERMINISTIC)), "answer 2");
    assert_eq!(content(&chat(&gw, ALICE, &[], DETERMINISTIC)), "answer 1");
    // A key that may not use the model is refused, cached answer or not.
    let refused = chat(&gw, EMBEDDER, &[], DETERMINISTIC);
    assert_eq!(refused.status, 403, "{}", refused.text());
    // So is a request with no key at all.
    assert_eq!(gw.post("/v1/chat/completions", DETERMINISTIC).status, 401);
    assert_eq!(upstream_calls(&up), 2);
    drop(gw);

    // scope = "shared": every caller's answers are everyone's.
    let up = numbering_upstream(0);
    let gw = Gateway::start(&config(&up, "scope = \"shared\""));
    assert_eq!(content(&chat(&gw, ALICE, &[], DETERMINISTIC)), "answer 1");
    assert_eq!(content(&chat(&gw, BOB, &[], DETERMINISTIC)), "answer 1");
    assert_eq!(chat(&gw, EMBEDDER, &[], DETERMINISTIC).status, 403);
    assert_eq!(upstream_calls(&up), 1);
}

#[test]
fn each_door_keeps_answers_in_its_own_dialect() {
    let up = numbering_upstream(0);
    let gw = Gateway::start(&config(&up, ""));
    // The same bytes are a valid request at both doors.
    let body = r#"{"model":"bench-chat","max_tokens":16,"temperature":0,"messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(content(&chat(&gw, ALICE, &[], body)), "answer 1");
    let anthropic = send(&gw, "/v1/messages", ALICE, &[], body);
    assert_eq!(anthropic.status, 200, "{}", anthropic.text());
    assert_eq!(anthropic.header("x-corelay-cache"), Some("miss"));
    let v = anthropic.json();
    assert_eq!((v["type"].as_str(), v["content"][0]["text"].as_str()), (Some("message"), Some("answer 2")));
    let again = send(&gw, "/v1/messages", ALICE, &[], body);
    assert_eq!((again.header("x-corelay-cache"), again.body.clone()), (Some("hit"), anthropic.body.clone()));
    let openai = chat(&gw, ALICE, &[], body);
    assert_eq!((content(&openai).as_str(), openai.header("x-corelay-cache")), ("answer 1", Some("hit")));
    assert_eq!(upstream_calls(&up), 2);
}

#[test]
fn errors_and_streams_are_never_kept() {
    let up = numbering_upstream(1);
    let gw = Gateway::start(&config(&up, ""));
    // The provider's 500 is passed on (same dialect), and not kept.
    let failed = chat(&gw, ALICE, &[], DETERMINISTIC);
    assert_eq!(failed.status, 500, "{}", failed.text());
    assert_eq!(content(&chat(&gw, ALICE, &[], DETERMINISTIC)), "answer 2");
    assert_eq!(content(&chat(&gw, ALICE, &[], DETERMINISTIC)), "answer 2");
    // Streams go to the provider every time.
    let stream = r#"{"model":"bench-chat","temperature":0,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    for n in [3, 4] {
        let r = chat(&gw, ALICE, &[], stream);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-corelay-cache"), None);
        assert!(r.text().contains(&format!("answer {n}")), "{}", r.text());
    }
    assert_eq!(upstream_calls(&up), 4);
}

#[test]
fn embeddings_are_kept_entries_expire_and_the_admin_api_clears_them() {
    let up = numbering_upstream(0);
    let gw = Gateway::start(&config(&up, "ttl_s = 1"));
    let body = r#"{"model":"bench-embed","input":"hello"}"#;
    let vector = |r: &Response| {
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["data"][0]["embedding"][0].as_f64().unwrap()
    };
    let first = send(&gw, "/v1/embeddings", EMBEDDER, &[], body);
    assert_eq!(vector(&first), 0.1);
    let hit = send(&gw, "/v1/embeddings", EMBEDDER, &[], body);
    assert_eq!((vector(&hit), hit.header("x-corelay-cache")), (0.1, Some("hit")));
    // One second after it was kept, it is gone.
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(vector(&send(&gw, "/v1/embeddings", EMBEDDER, &[], body)), 0.2);
    assert_eq!(vector(&send(&gw, "/v1/embeddings", EMBEDDER, &[], body)), 0.2);

    // Clearing needs the admin token, and DELETE.
    let bearer = format!("Bearer {ADMIN}");
    assert_eq!(gw.client().send("DELETE", "/admin/cache", &[], b"").status, 401);
    assert_eq!(gw.client().send("POST", "/admin/cache", &[("authorization", &bearer)], b"").status, 405);
    let cleared = gw.client().send("DELETE", "/admin/cache", &[("authorization", &bearer)], b"");
    assert_eq!((cleared.status, cleared.json()["status"].as_str()), (200, Some("cleared")), "{}", cleared.text());
    let after = send(&gw, "/v1/embeddings", EMBEDDER, &[], body);
    assert_eq!((vector(&after), after.header("x-corelay-cache")), (0.3, Some("miss")));
    assert_eq!(upstream_calls(&up), 3);

    // The same through `corelay admin cache clear`.
    assert_eq!(vector(&send(&gw, "/v1/embeddings", EMBEDDER, &[], body)), 0.3);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corelay"))
        .args(["admin", "cache", "clear"])
        .env("CORELAY_URL", format!("http://{}", gw.addr))
        .env("CORELAY_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "cleared");
    assert_eq!(vector(&send(&gw, "/v1/embeddings", EMBEDDER, &[], body)), 0.4);
}

#[test]
fn a_fallback_models_answer_is_not_kept_for_the_model_asked() {
    // One provider serves both; `bench-chat` fails there, `fallback-chat` answers.
    let served = Arc::new(AtomicUsize::new(0));
    let up = Scripted::start(move |r| {
        if r.body_text().contains(r#""model":"bench-chat""#) {
            return Action::Reply(json_reply(500, "", r#"{"error":{"message":"down","type":"server_error"}}"#));
        }
        let n = served.fetch_add(1, Ordering::SeqCst) + 1;
        let body = completion("fallback-chat").replace(r#""content":"ok""#, &format!(r#""content":"fallback {n}""#));
        Action::Reply(json_reply(200, "", &body))
    });
    let text = config(&up, "").replace(
        r#"models = ["bench-chat", "bench-embed"]"#,
        r#"models = ["bench-chat", "bench-embed", "fallback-chat"]"#,
    ) + "\n[fallbacks]\n\"bench-chat\" = [\"fallback-chat\"]\n";
    let gw = Gateway::start(&text);
    for n in [1, 2] {
        let r = chat(&gw, ALICE, &[], DETERMINISTIC);
        assert_eq!((content(&r), r.header("x-corelay-cache")), (format!("fallback {n}"), Some("miss")));
    }
    // The fallback model asked for itself is kept as usual.
    let own = DETERMINISTIC.replace("bench-chat", "fallback-chat");
    assert_eq!(content(&chat(&gw, ALICE, &[], &own)), "fallback 3");
    assert_eq!(content(&chat(&gw, ALICE, &[], &own)), "fallback 3");
}
