//! Response caching: which requests the shard's cache may answer, under
//! what key, and how a kept answer goes out.
//!
//! `[cache] enabled = true` turns it on. Only whole answers are kept: chat
//! completions and Anthropic messages that are not streamed, and
//! embeddings. Streams, errors and anything but a 200 are never kept.
//!
//! **What a key is made of.** The SHA-256 of the endpoint (chat, messages
//! or embeddings, so an OpenAI client never gets an Anthropic-shaped answer
//! and back), the caller's virtual key (with `scope = "key"`, the default;
//! `"shared"` leaves it out), the served model the request resolved to (an
//! alias re-pointed by a reload never answers with the old model's words),
//! the `anthropic-version` and `anthropic-beta` headers of an Anthropic
//! client, and the request body byte for byte. Only an answer from the
//! served model's own deployments is kept, never a fallback model's. A request is looked up only after its key is checked,
//! its model allowed and its rate limits passed, so a hit never lets a
//! caller past anything a miss would have stopped.
//!
//! **Which chat requests.** With `chat = "deterministic"` (the default),
//! only those a provider answers the same way each time: `temperature` 0.
//! `chat = "all"` keeps every one. Embeddings are always kept.
//!
//! **What a client says.** `x-corelay-cache: use` opts one request in (a
//! chat request that is not deterministic); `skip` keeps it away from the
//! cache both ways; `refresh` asks the provider and keeps the new answer.
//! `Cache-Control: no-cache` means `refresh`, `no-store` means `skip`.
//!
//! **What it answers.** A hit is the kept body with its content type,
//! `x-corelay-cache: hit` and `age` (seconds since it was kept); a request
//! that went to a provider carries `x-corelay-cache: miss`. A hit spends
//! one request of the key's RPM and no tokens (no provider was paid); it
//! counts in `/v1/usage` as a request without tokens or cost, and in
//! `/metrics` as `cache_hits`.
//!
//! Each shard looks up its own index (no lock on the data path); an answer
//! one shard keeps reaches the others through the control plane as a
//! shared `Arc` ([`crate::shard::Shard::keep_answer`]) while the channels
//! have room, so a repeated request hits on whichever shard it lands. A
//! reload empties every shard's cache; so does `DELETE /admin/cache`,
//! through [`EPOCH`].

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use store::cache::{CacheKey, Cached};

use crate::config::{CacheChat, CacheScope, CacheSettings, Key};
use crate::http::server::Responder;
use crate::pipeline::Request;

/// The endpoints whose answers are kept, each its own key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Messages,
    Embeddings,
}

impl Endpoint {
    fn tag(self) -> &'static [u8] {
        match self {
            Endpoint::Chat => b"chat",
            Endpoint::Messages => b"messages",
            Endpoint::Embeddings => b"embeddings",
        }
    }
}

/// What a client asked of the cache for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Directive {
    /// Do not answer from the cache.
    pub no_lookup: bool,
    /// Do not keep the answer.
    pub no_store: bool,
    /// Keep (and answer) it even if the settings would not.
    pub force: bool,
}

/// What the cache does for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub key: CacheKey,
    pub lookup: bool,
    pub store: bool,
    /// The [`epoch`] when the request was looked up: its answer is not kept
    /// if the cache was cleared since.
    pub epoch: u64,
}

/// Bumped by `DELETE /admin/cache`. A shard empties its cache when it next
/// sees a new value, and an answer looked up under an older one is not
/// kept, so a clear holds as soon as it is answered, without telling the
/// shards. Process-wide: one gateway runs per process (gateways started
/// inside one test process share it, which costs them only misses).
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The cache's current epoch (see [`EPOCH`]).
pub fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// Empties every shard's cache, as each next looks at it.
pub fn clear_all() {
    EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// The client's directives, from `x-corelay-cache` and `Cache-Control`.
pub fn directive(request: &Request<'_>) -> Directive {
    let mut d = Directive::default();
    if let Some(value) = request.header(&request.head.x_corelay_cache) {
        match value.trim_ascii().to_ascii_lowercase().as_slice() {
            b"skip" => (d.no_lookup, d.no_store) = (true, true),
            b"refresh" => d.no_lookup = true,
            b"use" => d.force = true,
            _ => {}
        }
    }
    if let Some(value) = request.header(&request.head.cache_control) {
        for token in value.split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"no-store") {
                (d.no_lookup, d.no_store) = (true, true);
            } else if token.eq_ignore_ascii_case(b"no-cache") {
                d.no_lookup = true;
            }
        }
    }
    d
}

/// The plan for a request to `endpoint` that resolved to the served model
/// `served`, by the caller with `key`; `None` when the cache stays out of
/// it. `deterministic` is asked only for a chat request under
/// `chat = "deterministic"`.
pub fn plan(
    settings: &CacheSettings,
    request: &Request<'_>,
    endpoint: Endpoint,
    served: &str,
    key: Option<&Key>,
    deterministic: impl FnOnce() -> bool,
) -> Option<Plan> {
    let directive = directive(request);
    if directive.no_lookup && directive.no_store {
        return None;
    }
    let eligible =
        endpoint == Endpoint::Embeddings || directive.force || settings.chat == CacheChat::All || deterministic();
    if !eligible {
        return None;
    }
    let caller: &[u8] = match (settings.scope, key) {
        (CacheScope::Key, Some(key)) => &key.secret_sha256,
        (CacheScope::Key, None) => b"anonymous",
        (CacheScope::Shared, _) => b"shared",
    };
    // An Anthropic client's version and betas reach the provider and can
    // change the answer.
    let anthropic = |range| match endpoint {
        Endpoint::Messages => request.header(range).unwrap_or_default(),
        _ => b"",
    };
    let (version, beta) = (anthropic(&request.head.anthropic_version), anthropic(&request.head.anthropic_beta));
    let parts: [&[u8]; 7] =
        [b"corelay-cache-v1", endpoint.tag(), caller, served.as_bytes(), version, beta, request.body];
    let key = store::cache::key_of(&parts);
    Some(Plan { key, lookup: !directive.no_lookup, store: !directive.no_store, epoch: epoch() })
}

/// Whether a chat body (either dialect) sets `temperature` to 0.
pub fn is_deterministic(body: &[u8]) -> bool {
    use sonic_rs::JsonValueTrait;
    sonic_rs::get(body, ["temperature"]).ok().and_then(|v| v.as_f64()) == Some(0.0)
}

/// Milliseconds on the cache's clock (monotonic, from the first call).
pub fn now_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Sends a kept answer, with `age` in whole seconds.
pub async fn answer(responder: &mut Responder<'_>, cached: &Cached, now_ms: u64) -> std::io::Result<()> {
    let mut digits = itoa::Buffer::new();
    let age = digits.format(now_ms.saturating_sub(cached.stored_ms) / 1000);
    responder.cache_status = Some(b"hit");
    responder.send(200, &cached.content_type, &[(b"age", age.as_bytes())], &cached.body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Dialect;
    use crate::http::codec::{RequestHead, parse_request_head};

    const SETTINGS: CacheSettings = CacheSettings {
        limits: store::CacheLimits { ttl_ms: 1_000, bytes_max: 1 << 20, entry_bytes_max: 1 << 16 },
        chat: CacheChat::Deterministic,
        scope: CacheScope::Key,
    };

    /// The head of a POST with these extra header lines, and its buffer.
    fn head(headers: &str) -> (RequestHead, Vec<u8>) {
        let raw = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{headers}content-length: 0\r\n\r\n");
        let head = parse_request_head(raw.as_bytes(), 100, 64 * 1024).unwrap().unwrap();
        (head, raw.into_bytes())
    }

    fn request<'a>(head: &'a RequestHead, buf: &'a [u8], body: &'a [u8]) -> Request<'a> {
        Request { head, buf, body, front: Dialect::OpenAi }
    }

    #[test]
    fn clients_directives_are_read_from_both_headers() {
        let cases = [
            ("", Directive::default()),
            ("x-corelay-cache: use\r\n", Directive { force: true, ..Directive::default() }),
            ("X-Corelay-Cache:  SKIP \r\n", Directive { no_lookup: true, no_store: true, force: false }),
            ("x-corelay-cache: refresh\r\n", Directive { no_lookup: true, ..Directive::default() }),
            ("cache-control: max-age=0, no-cache\r\n", Directive { no_lookup: true, ..Directive::default() }),
            ("Cache-Control: no-store\r\n", Directive { no_lookup: true, no_store: true, force: false }),
            ("x-corelay-cache: whatever\r\ncache-control: private\r\n", Directive::default()),
        ];
        for (headers, want) in cases {
            let (head, buf) = head(headers);
            assert_eq!(directive(&request(&head, &buf, b"")), want, "{headers:?}");
        }
    }

    #[test]
    fn a_plan_keys_on_the_door_the_caller_the_model_and_the_body() {
        let (head, buf) = head("");
        let body = br#"{"model":"m","temperature":0}"#;
        let r = request(&head, &buf, body);
        let plan = |endpoint, served: &str, key: Option<&Key>, settings: &CacheSettings| {
            super::plan(settings, &r, endpoint, served, key, || is_deterministic(body)).expect("planned")
        };
        let base = plan(Endpoint::Chat, "m", None, &SETTINGS);
        assert!(base.lookup && base.store);
        assert_eq!(base, plan(Endpoint::Chat, "m", None, &SETTINGS), "the same request, the same key");
        assert_ne!(base.key, plan(Endpoint::Messages, "m", None, &SETTINGS).key);
        assert_ne!(base.key, plan(Endpoint::Chat, "other", None, &SETTINGS).key);
        let config = crate::config::parse(
            "[providers.m]\nkind = \"mock\"\nmodels = [\"m\"]\n[[keys]]\nname = \"a\"\nkey = \"sk-aaaaaaaa\"\n[[keys]]\nname = \"b\"\nkey = \"sk-bbbbbbbb\"\n",
            |_| None,
        )
        .unwrap();
        let (a, b) = (&config.keys[0], &config.keys[1]);
        let for_a = plan(Endpoint::Chat, "m", Some(a), &SETTINGS);
        assert_ne!(for_a.key, plan(Endpoint::Chat, "m", Some(b), &SETTINGS).key);
        assert_ne!(for_a.key, base.key);
        let shared = CacheSettings { scope: CacheScope::Shared, ..SETTINGS };
        assert_eq!(plan(Endpoint::Chat, "m", Some(a), &shared), plan(Endpoint::Chat, "m", Some(b), &shared));
        // Another body is another entry.
        let other = request(&head, &buf, br#"{"model":"m","temperature":0.0}"#);
        let other = super::plan(&SETTINGS, &other, Endpoint::Chat, "m", None, || true).unwrap();
        assert_ne!(other.key, base.key);
    }

    #[test]
    fn sampled_chat_is_planned_only_when_configured_or_forced() {
        let body = br#"{"model":"m"}"#;
        let (plain, buf) = head("");
        let r = request(&plain, &buf, body);
        assert_eq!(plan(&SETTINGS, &r, Endpoint::Chat, "m", None, || false), None);
        assert!(plan(&SETTINGS, &r, Endpoint::Embeddings, "m", None, || panic!("not asked")).is_some());
        let all = CacheSettings { chat: CacheChat::All, ..SETTINGS };
        assert!(plan(&all, &r, Endpoint::Chat, "m", None, || panic!("not asked")).is_some());
        let (forced, buf) = head("x-corelay-cache: use\r\n");
        assert!(plan(&SETTINGS, &request(&forced, &buf, body), Endpoint::Chat, "m", None, || false).is_some());
        let (skipped, buf) = head("x-corelay-cache: skip\r\n");
        assert_eq!(plan(&all, &request(&skipped, &buf, body), Endpoint::Embeddings, "m", None, || true), None);
        let (refresh, buf) = head("cache-control: no-cache\r\n");
        let p = plan(&all, &request(&refresh, &buf, body), Endpoint::Chat, "m", None, || true).unwrap();
        assert!(!p.lookup && p.store);
    }

    #[test]
    fn temperature_zero_is_deterministic_whatever_its_spelling() {
        for body in [r#"{"temperature":0}"#, r#"{"model":"m","temperature":0.0}"#, r#"{"temperature": -0.0 ,"x":1}"#] {
            assert!(is_deterministic(body.as_bytes()), "{body}");
        }
        for body in
            [r#"{"model":"m"}"#, r#"{"temperature":0.2}"#, r#"{"temperature":"0"}"#, r#"{"a":{"temperature":0}}"#]
        {
            assert!(!is_deterministic(body.as_bytes()), "{body}");
        }
    }
}
