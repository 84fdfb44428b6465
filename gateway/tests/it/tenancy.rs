//! Usage and budgets through a running gateway: usage counted once per
//! answer (streams and `/v1/messages` included), kept in redb across a
//! restart and a SIGTERM, and a budget that stops its key.

use std::time::{Duration, Instant};

use sonic_rs::{JsonContainerTrait, JsonValueTrait};

use crate::support::*;

const KEY: &str = "sk-corelay-tenant-key";

fn config(storage: &str, key_extra: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nshards = 2\n[upstream]\nstats_interval_ms = 50\n{storage}\n[providers.m]\nkind = \"mock\"\nmodels = [\"m\"]\n[models.m.pricing]\ninput = 1000.0\noutput = 2000.0\n[[keys]]\nname = \"tenant\"\nkey = \"{KEY}\"\n{key_extra}\n"
    )
}

fn auth() -> [(&'static str, String); 1] {
    [("authorization", format!("Bearer {KEY}"))]
}

fn post(gw: &Gateway, path: &str, body: &str) -> Response {
    let [(name, value)] = auth();
    gw.client().send("POST", path, &[(name, &value)], body.as_bytes())
}

fn usage(gw: &Gateway) -> sonic_rs::Value {
    let [(name, value)] = auth();
    let r = gw.client().send("GET", "/v1/usage", &[(name, &value)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Waits until `/v1/usage` counts `requests` (usage reaches the ledger one
/// report interval after the answer).
fn usage_with(gw: &Gateway, requests: u64) -> sonic_rs::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let [(name, value)] = auth();
        let r = gw.client().send("GET", "/v1/usage", &[(name, &value)], b"");
        // A 503 while the store is away is fine here: the count is awaited.
        if r.status == 200 {
            let v = r.json();
            if v["total"]["requests"].as_u64() == Some(requests) || Instant::now() > deadline {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "usage never reached {requests}: {} {}", r.status, r.text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn usage_is_counted_once_per_answer_and_survives_restarts_with_redb() {
    let dir = TempDir::new();
    let path = dir.0.join("usage.redb");
    // A long flush interval: only the shutdown flush can save the usage.
    let storage = format!("[storage]\npath = \"{}\"\nusage_flush_ms = 600000", path.display());
    let text = config(&storage, "");
    let gw = Gateway::start(&text);
    let whole = post(&gw, "/v1/chat/completions", &chat_body("m", false));
    assert_eq!(whole.status, 200, "{}", whole.text());
    let per_answer = whole.json()["usage"]["total_tokens"].as_u64().unwrap();
    for stream in [false, true, true] {
        assert_eq!(post(&gw, "/v1/chat/completions", &chat_body("m", stream)).status, 200);
    }
    let r = post(&gw, "/v1/messages", r#"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = usage_with(&gw, 5);
    assert_eq!(v["key"].as_str(), Some("tenant"));
    assert_eq!(v["total"]["requests"].as_u64(), Some(5), "{v}");
    let tokens = v["total"]["prompt_tokens"].as_u64().unwrap() + v["total"]["completion_tokens"].as_u64().unwrap();
    assert_eq!(tokens, 5 * per_answer, "every answer once: {v}");
    let cost = v["total"]["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0, "priced from [models.m.pricing]: {v}");
    assert_eq!(v["data"][0]["model"].as_str(), Some("m"));
    // SIGTERM flushes; a new process reads it back.
    let mut gw = gw;
    gw.signal_term();
    let (status, _) = gw.wait_exit(Duration::from_secs(10));
    assert!(status.success());
    let gw = Gateway::start(&text);
    let v = usage(&gw);
    assert_eq!(v["total"]["requests"].as_u64(), Some(5), "after the restart: {v}");
    assert_eq!(v["total"]["cost_usd"].as_f64(), Some(cost));
    // Time filters.
    let [(name, value)] = auth();
    let r = gw.client().send("GET", "/v1/usage?from=4102444800", &[(name, &value)], b"");
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 0, "nothing in 2100");
    let r = gw.client().send("GET", "/v1/usage?from=soon", &[(name, &value)], b"");
    assert_eq!(r.status, 400);
}

#[test]
fn a_budget_stops_its_key_once_spent() {
    // 1000 USD per million input tokens: a mock answer costs about 0.04 USD.
    let text = config("[storage]\nusage_flush_ms = 50", "budget_usd = 0.1\nbudget_period = \"daily\"");
    let gw = Gateway::start(&text);
    let mut answered = 0;
    let mut refused = None;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let r = post(&gw, "/v1/chat/completions", &chat_body("m", false));
        match r.status {
            200 => answered += 1,
            429 => {
                refused = Some(r);
                break;
            }
            other => panic!("{other}: {}", r.text()),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = refused.expect("the budget stopped the key");
    assert_eq!(r.openai_error().2.as_deref(), Some("budget_exceeded"), "{}", r.text());
    assert_eq!(r.openai_error().1, "insufficient_quota");
    // Spent after the third answer; the flag comes one report and one
    // flush later, while a few more (one at a time here) get through.
    assert!((3..=12).contains(&answered), "{answered}");
    let v = usage_with(&gw, answered);
    assert!(v["total"]["cost_usd"].as_f64().unwrap() >= 0.1, "{v}");
    // Anthropic's door says it in Anthropic's shape.
    let r = post(&gw, "/v1/messages", r#"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}"#);
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["type"].as_str(), Some("error"));
}

fn redis_config(url: &str, flush_ms: u64, key_extra: &str) -> String {
    config(&format!("[storage]\nkind = \"redis\"\nurl = \"{url}\"\nusage_flush_ms = {flush_ms}"), key_extra)
}

#[test]
fn two_instances_sharing_redis_admit_one_limit_between_them() {
    let Some(redis) = RedisServer::start() else { return };
    const LIMIT: usize = 20;
    let text = redis_config(&redis.url(), 100, &format!("rpm = {LIMIT}"));
    let (a, b) = (Gateway::start(&text), Gateway::start(&text));
    within_one_window(Duration::from_secs(10));
    let mut admitted = 0;
    for i in 0..4 * LIMIT {
        let gw = if i % 2 == 0 { &a } else { &b };
        match post(gw, "/v1/chat/completions", &chat_body("m", false)).status {
            200 => admitted += 1,
            429 => {}
            other => panic!("{other}"),
        }
    }
    // Every grant is reserved in Redis first: the two together admit the
    // limit, not twice it.
    assert!((LIMIT - 1..=LIMIT).contains(&admitted), "{admitted} of {LIMIT}");
    // And they see each other's usage.
    let v = usage_with(&a, admitted as u64);
    assert_eq!(v["total"]["requests"].as_u64(), Some(admitted as u64), "{v}");
}

#[test]
fn losing_redis_fails_no_request_and_usage_reaches_it_when_it_returns() {
    let Some(mut redis) = RedisServer::start() else { return };
    let gw = Gateway::start(&redis_config(&redis.url(), 100, "rpm = 1000"));
    for _ in 0..3 {
        assert_eq!(post(&gw, "/v1/chat/completions", &chat_body("m", false)).status, 200);
    }
    usage_with(&gw, 3);
    redis.kill();
    for _ in 0..4 {
        let r = post(&gw, "/v1/chat/completions", &chat_body("m", false));
        assert_eq!(r.status, 200, "served on local leases: {}", r.text());
    }
    std::thread::sleep(Duration::from_millis(300));
    redis.restart();
    // The usage kept in the ledger meanwhile is written once Redis is back:
    // another instance reads it all from Redis.
    let v = usage_with(&gw, 7);
    assert_eq!(v["total"]["requests"].as_u64(), Some(7), "{v}");
    let other = Gateway::start(&redis_config(&redis.url(), 100, "rpm = 1000"));
    let v = usage_with(&other, 7);
    assert_eq!(v["total"]["requests"].as_u64(), Some(7), "{v}");
}

/// Waits, when the wall-clock minute is about to end, for the next one.
fn within_one_window(needed: Duration) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let into = Duration::from_millis((now.as_millis() % 60_000) as u64);
    if into + needed > Duration::from_secs(59) {
        std::thread::sleep(Duration::from_secs(60) - into + Duration::from_millis(200));
    }
}

#[test]
fn a_key_created_on_one_instance_works_on_another_sharing_redis() {
    let Some(redis) = RedisServer::start() else { return };
    let token = "admin-token-for-redis-tests-0123";
    let text = redis_config(&redis.url(), 100, "")
        .replace("shards = 2\n", &format!("shards = 2\nadmin_token = \"{token}\"\n"));
    let (a, b) = (Gateway::start(&text), Gateway::start(&text));
    let r = a.client().send(
        "POST",
        "/admin/keys",
        &[("authorization", &format!("Bearer {token}"))],
        br#"{"name":"shared","models":["m"]}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let secret = r.json()["key"].as_str().unwrap().to_owned();
    let on_b = || {
        b.client()
            .send(
                "POST",
                "/v1/chat/completions",
                &[("authorization", &format!("Bearer {secret}"))],
                chat_body("m", false).as_bytes(),
            )
            .status
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while on_b() != 200 {
        assert!(Instant::now() < deadline, "instance b never learned the key");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_gateway_starts_and_serves_while_its_redis_is_away() {
    // Nothing listens on port 1: Redis is away from the start.
    let gw = Gateway::start(&redis_config("redis://127.0.0.1:1/", 100, "rpm = 100"));
    for _ in 0..3 {
        let r = post(&gw, "/v1/chat/completions", &chat_body("m", false));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    gw.wait_stderr("Redis is unavailable");
}
