//! Configuration: the serde mirror of the TOML file, and the validated
//! [`Config`] the rest of the gateway uses.
//!
//! Two types on purpose. [`File`] mirrors the file exactly (unknown keys are
//! errors, defaults are written out in one place, [`defaults`]); [`Config`]
//! has no serde, no optional fields where a default exists, and only states
//! that are valid. Parsing works on a string: only `main` reads files and the
//! environment, so tests build configs from literals.
//!
//! The keys of crabllm's documented config (`listen`, `providers.NAME.{kind,
//! api_key, base_url, models, weight, max_retries, timeout, api_version}`,
//! `aliases`, `keys`) mean the same here, so a crabllm config moves over.
//! corelay's own limits carry their unit last.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Every default, in one place. Each is a named limit with its unit last.
pub mod defaults {
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const SHUTDOWN_TIMEOUT_MS: u64 = 30_000;
    pub const REQUEST_HEAD_BYTES_MAX: usize = 64 * 1024;
    pub const REQUEST_HEADERS_MAX: usize = 100;
    pub const REQUEST_BODY_BYTES_MAX: usize = 32 * 1024 * 1024;
    pub const REQUEST_HEAD_TIMEOUT_MS: u64 = 10_000;
    pub const REQUEST_BODY_TIMEOUT_MS: u64 = 60_000;
    pub const CLIENT_IDLE_TIMEOUT_MS: u64 = 120_000;
    pub const CONNECTIONS_PER_SHARD_MAX: usize = 16_384;
    pub const UPSTREAM_CONNECT_TIMEOUT_MS: u64 = 5_000;
    /// Idle connections kept per provider and shard. Below the concurrency a
    /// shard sees, connections are closed as answers end and opened again as
    /// requests come: at 1,000 concurrent streams on one shard, 256 opened
    /// 609 connections more than needed in 10 s, and the requests waiting
    /// on them made the P99 1.6 s (0.7 s with 4,096).
    pub const UPSTREAM_POOL_IDLE_MAX: usize = 4096;
    pub const UPSTREAM_POOL_IDLE_TIMEOUT_MS: u64 = 60_000;
    pub const UPSTREAM_RESPONSE_HEAD_BYTES_MAX: usize = 64 * 1024;
    pub const UPSTREAM_RESPONSE_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
    pub const STREAM_EVENT_BYTES_MAX: usize = 8 * 1024 * 1024;
    pub const STREAM_IDLE_TIMEOUT_MS: u64 = 300_000;
    pub const DNS_REFRESH_MS: u64 = 30_000;
    pub const STATS_INTERVAL_MS: u64 = 1_000;
    pub const CONTROL_CHANNEL_CAPACITY: usize = 1_024;
    /// crabllm's `timeout` is in seconds; so is ours, for compatibility.
    pub const PROVIDER_TIMEOUT_S: u64 = 600;
    pub const PROVIDER_MAX_RETRIES: u32 = 2;
    pub const PROVIDER_WEIGHT: u32 = 1;
    /// The first retry waits up to this long (full jitter); each further
    /// retry doubles the ceiling.
    pub const RETRY_BACKOFF_BASE_MS: u64 = 250;
    pub const RETRY_BACKOFF_MAX_MS: u64 = 8_000;
    /// No attempt starts after this long from the request's arrival.
    pub const RETRY_DEADLINE_MS: u64 = 60_000;
    /// Consecutive failures that open a deployment's circuit breaker.
    pub const BREAKER_FAILURES: u32 = 5;
    pub const BREAKER_COOLDOWN_MS: u64 = 30_000;
    /// Usage is written to the store this often (and at shutdown).
    pub const USAGE_FLUSH_MS: u64 = 1_000;
    /// `anthropic-version`: the only version Anthropic's SDKs send.
    pub const ANTHROPIC_VERSION: &str = "2023-06-01";
    /// `max_tokens` for Anthropic requests that name none.
    pub const ANTHROPIC_MAX_TOKENS: u64 = 4096;
    pub const AZURE_API_VERSION: &str = "2024-10-21";
    /// `[cache]`: how long an answer is kept, what one shard keeps at most,
    /// and the largest answer kept.
    pub const CACHE_TTL_S: u64 = 300;
    pub const CACHE_BYTES_MAX: usize = 64 * 1024 * 1024;
    pub const CACHE_ENTRY_BYTES_MAX: usize = 1024 * 1024;
}

/// A configuration that could not be accepted, with the path of the
/// offending key where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Toml(String),
    #[error("environment variable `{name}` is not set (referenced as ${{{name}}} on line {line})")]
    UnsetVariable { name: String, line: usize },
    #[error("unterminated ${{...}} on line {line}")]
    UnterminatedVariable { line: usize },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { path: path.into(), message: message.into() }
}

// ---------------------------------------------------------------------------
// The file, as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default = "d_listen")]
    pub listen: String,
    #[serde(default)]
    pub shards: Option<ShardsSetting>,
    #[serde(default)]
    pub pin_shards: bool,
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default = "d_shutdown")]
    pub shutdown_timeout_ms: u64,
    #[serde(default)]
    pub http: HttpFile,
    #[serde(default)]
    pub upstream: UpstreamFile,
    #[serde(default)]
    pub routing: RoutingFile,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderFile>,
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// A model's fallback models, tried in order once its own deployments
    /// are exhausted.
    #[serde(default)]
    pub fallbacks: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub storage: StorageFile,
    #[serde(default)]
    pub cache: CacheFile,
    /// The bearer token of the admin API; without it the API is off.
    pub admin_token: Option<Secret>,
    /// Per model: `[models.NAME.pricing]`, over the built-in price table.
    #[serde(default)]
    pub models: BTreeMap<String, ModelFile>,
    #[serde(default)]
    pub keys: Vec<KeyFile>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ShardsSetting {
    Count(usize),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpFile {
    pub request_head_bytes_max: usize,
    pub request_headers_max: usize,
    pub request_body_bytes_max: usize,
    pub request_head_timeout_ms: u64,
    pub request_body_timeout_ms: u64,
    pub client_idle_timeout_ms: u64,
    pub connections_per_shard_max: usize,
}

impl Default for HttpFile {
    fn default() -> Self {
        use defaults::*;
        HttpFile {
            request_head_bytes_max: REQUEST_HEAD_BYTES_MAX,
            request_headers_max: REQUEST_HEADERS_MAX,
            request_body_bytes_max: REQUEST_BODY_BYTES_MAX,
            request_head_timeout_ms: REQUEST_HEAD_TIMEOUT_MS,
            request_body_timeout_ms: REQUEST_BODY_TIMEOUT_MS,
            client_idle_timeout_ms: CLIENT_IDLE_TIMEOUT_MS,
            connections_per_shard_max: CONNECTIONS_PER_SHARD_MAX,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageFile {
    /// `memory` (the default without `path`), `redb` (the default with) or
    /// `redis` (with `url`).
    pub kind: Option<String>,
    pub path: Option<PathBuf>,
    /// `redis://[user:password@]host:port[/db]`.
    pub url: Option<Secret>,
    /// Prepended to every Redis key, so several deployments can share one
    /// Redis.
    pub key_prefix: Option<String>,
    pub usage_flush_ms: u64,
}

impl Default for StorageFile {
    fn default() -> Self {
        StorageFile { kind: None, path: None, url: None, key_prefix: None, usage_flush_ms: defaults::USAGE_FLUSH_MS }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub pricing: Option<PricingFile>,
}

/// USD per million tokens, as crabllm names them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingFile {
    pub input: f64,
    pub output: f64,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
}

/// `[cache]`: the response cache (see [`crate::cache`]). Off unless
/// `enabled`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheFile {
    pub enabled: bool,
    pub ttl_s: u64,
    /// Counted by each shard for the entries it holds; their bytes are
    /// shared between shards.
    pub bytes_max: usize,
    pub entry_bytes_max: usize,
    /// Which chat requests are answered from the cache: `"deterministic"`
    /// (`temperature` 0) or `"all"`.
    pub chat: String,
    /// Whose answers a request may get: `"key"` (its own key's) or
    /// `"shared"` (any caller's).
    pub scope: String,
}

impl Default for CacheFile {
    fn default() -> Self {
        use defaults::*;
        CacheFile {
            enabled: false,
            ttl_s: CACHE_TTL_S,
            bytes_max: CACHE_BYTES_MAX,
            entry_bytes_max: CACHE_ENTRY_BYTES_MAX,
            chat: "deterministic".into(),
            scope: "key".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingFile {
    pub retry_backoff_base_ms: u64,
    pub retry_backoff_max_ms: u64,
    pub retry_deadline_ms: u64,
    pub breaker_failures: u32,
    pub breaker_cooldown_ms: u64,
}

impl Default for RoutingFile {
    fn default() -> Self {
        use defaults::*;
        RoutingFile {
            retry_backoff_base_ms: RETRY_BACKOFF_BASE_MS,
            retry_backoff_max_ms: RETRY_BACKOFF_MAX_MS,
            retry_deadline_ms: RETRY_DEADLINE_MS,
            breaker_failures: BREAKER_FAILURES,
            breaker_cooldown_ms: BREAKER_COOLDOWN_MS,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamFile {
    pub upstream_connect_timeout_ms: u64,
    pub upstream_pool_idle_max: usize,
    pub upstream_pool_idle_timeout_ms: u64,
    pub upstream_response_head_bytes_max: usize,
    pub upstream_response_body_bytes_max: usize,
    pub stream_event_bytes_max: usize,
    pub stream_idle_timeout_ms: u64,
    pub dns_refresh_ms: u64,
    pub stats_interval_ms: u64,
}

impl Default for UpstreamFile {
    fn default() -> Self {
        use defaults::*;
        UpstreamFile {
            upstream_connect_timeout_ms: UPSTREAM_CONNECT_TIMEOUT_MS,
            upstream_pool_idle_max: UPSTREAM_POOL_IDLE_MAX,
            upstream_pool_idle_timeout_ms: UPSTREAM_POOL_IDLE_TIMEOUT_MS,
            upstream_response_head_bytes_max: UPSTREAM_RESPONSE_HEAD_BYTES_MAX,
            upstream_response_body_bytes_max: UPSTREAM_RESPONSE_BODY_BYTES_MAX,
            stream_event_bytes_max: STREAM_EVENT_BYTES_MAX,
            stream_idle_timeout_ms: STREAM_IDLE_TIMEOUT_MS,
            dns_refresh_ms: DNS_REFRESH_MS,
            stats_interval_ms: STATS_INTERVAL_MS,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    pub kind: Option<String>,
    pub api_key: Option<Secret>,
    pub base_url: Option<String>,
    #[serde(default)]
    pub models: Vec<String>,
    /// Public model names this deployment serves under another name of its
    /// own (an Azure deployment name, a Bedrock model id): public = upstream.
    /// The public names are served as if listed in `models`.
    #[serde(default)]
    pub upstream_models: BTreeMap<String, String>,
    pub weight: Option<u32>,
    pub max_retries: Option<u32>,
    pub timeout: Option<u64>,
    /// Overrides of `[upstream]`'s limits for this deployment.
    pub connect_timeout_ms: Option<u64>,
    pub stream_idle_timeout_ms: Option<u64>,
    pub api_version: Option<String>,
    pub tls_ca_file: Option<PathBuf>,
    /// Anthropic and Bedrock: `max_tokens` for requests that name none
    /// (Anthropic requires it; OpenAI clients often leave it out).
    pub max_tokens_default: Option<u64>,
    /// Bedrock: the AWS region (`us-east-1`); it names the default endpoint
    /// and goes into every signature.
    pub region: Option<String>,
    /// Bedrock: SigV4 credentials. Without them, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` are read; `api_key`
    /// (a Bedrock API key) is sent as a bearer token instead of signing.
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<Secret>,
    pub aws_session_token: Option<Secret>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub name: String,
    pub key: Secret,
    #[serde(default = "d_all_models")]
    pub models: Vec<String>,
    /// Requests per minute (wall-clock minutes), over every shard.
    pub rpm: Option<u64>,
    /// Tokens (prompt + completion) per minute, charged from answers' usage.
    pub tpm: Option<u64>,
    /// When the key stops working, as an RFC 3339 UTC time
    /// (`2027-01-31T00:00:00Z`).
    pub expires_at: Option<String>,
    /// Limits of this key for one model (or alias) each, on top of `rpm`
    /// and `tpm`.
    #[serde(default)]
    pub model_limits: BTreeMap<String, ModelLimitsFile>,
    /// Spend allowed per `budget_period`, in USD, charged from usage at the
    /// price table's prices.
    pub budget_usd: Option<f64>,
    /// `total` (the default), `daily` or `monthly` (UTC).
    pub budget_period: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelLimitsFile {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

fn d_listen() -> String {
    defaults::LISTEN.to_owned()
}
fn d_shutdown() -> u64 {
    defaults::SHUTDOWN_TIMEOUT_MS
}
fn d_all_models() -> Vec<String> {
    vec!["*".to_owned()]
}

// ---------------------------------------------------------------------------
// The validated configuration.

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub shards: Shards,
    pub pin_shards: bool,
    pub driver: Driver,
    pub shutdown_timeout_ms: u64,
    pub http: HttpLimits,
    pub upstream: UpstreamLimits,
    pub routing: RoutingLimits,
    pub deployments: Vec<Deployment>,
    /// Public model name to the deployments serving it, by index.
    pub routes: HashMap<String, Vec<usize>>,
    /// Alias to the model it finally resolves to (chains are followed).
    pub aliases: HashMap<String, String>,
    /// Served model to its fallback models (served models, aliases
    /// resolved), in order.
    pub fallbacks: HashMap<String, Vec<String>>,
    pub keys: Vec<Key>,
    pub storage: Storage,
    /// `None`: no response cache.
    pub cache: Option<CacheSettings>,
    pub admin_token: Option<Secret>,
    /// The built-in prices with `[models.NAME.pricing]` over them.
    pub prices: std::sync::Arc<store::PriceTable>,
}

/// Where keys' usage is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageKind {
    Memory,
    Redb(PathBuf),
    /// Shared by every instance that names the same Redis and prefix.
    Redis {
        url: Secret,
        key_prefix: String,
    },
}

#[derive(Debug, Clone)]
pub struct Storage {
    pub kind: StorageKind,
    pub usage_flush_ms: u64,
}

/// The response cache, when on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    pub limits: store::CacheLimits,
    pub chat: CacheChat,
    pub scope: CacheScope,
}

/// Which chat requests the cache answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheChat {
    /// Only those a provider answers the same way every time: `temperature`
    /// 0 (and any a client marks with `x-corelay-cache: use`).
    Deterministic,
    All,
}

/// Whose answers a request may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    /// Only answers to the same virtual key.
    Key,
    /// Any caller's.
    Shared,
}

/// Retries and circuit breaking, for every deployment.
#[derive(Debug, Clone)]
pub struct RoutingLimits {
    pub retry_backoff_base_ms: u64,
    pub retry_backoff_max_ms: u64,
    pub retry_deadline_ms: u64,
    pub breaker_failures: u32,
    pub breaker_cooldown_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shards {
    /// One per CPU this process may run on (its affinity mask).
    Auto,
    Count(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring where the kernel has what monoio needs, else epoll.
    Auto,
    IoUring,
    Epoll,
}

#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub request_head_bytes_max: usize,
    pub request_headers_max: usize,
    pub request_body_bytes_max: usize,
    pub request_head_timeout_ms: u64,
    pub request_body_timeout_ms: u64,
    pub client_idle_timeout_ms: u64,
    pub connections_per_shard_max: usize,
}

#[derive(Debug, Clone)]
pub struct UpstreamLimits {
    pub connect_timeout_ms: u64,
    pub pool_idle_max: usize,
    pub pool_idle_timeout_ms: u64,
    pub response_head_bytes_max: usize,
    pub response_body_bytes_max: usize,
    pub stream_event_bytes_max: usize,
    pub stream_idle_timeout_ms: u64,
    pub dns_refresh_ms: u64,
    pub stats_interval_ms: u64,
}

/// One configured provider entry.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub name: String,
    pub kind: ProviderKind,
    /// Every public model name served (`models` and `upstream_models`).
    pub models: Vec<String>,
    /// Public name to the name this deployment's provider knows it by.
    pub upstream_models: HashMap<String, String>,
    pub weight: u32,
    pub max_retries: u32,
    /// The wait for the response head (time to first byte).
    pub timeout_ms: u64,
    /// `[upstream]`'s limits with this deployment's overrides.
    pub upstream: UpstreamLimits,
}

impl Deployment {
    /// The name the provider knows a public model by.
    pub fn upstream_model<'d>(&'d self, public: &'d str) -> &'d str {
        self.upstream_models.get(public).map_or(public, String::as_str)
    }
}

/// A credential from the configuration: its `Debug` never shows it, so a
/// logged or printed `Config` leaks no key.
pub use store::Secret;

/// What kind of provider a deployment is, with what that kind needs.
#[derive(Debug, Clone)]
pub enum ProviderKind {
    /// OpenAI or any OpenAI-compatible server (`base_url` ends before
    /// `/chat/completions`, e.g. `https://api.openai.com/v1`).
    OpenAi { endpoint: Endpoint, api_key: Option<Secret> },
    /// Azure OpenAI. `Deployments` puts the model (the Azure deployment name)
    /// in the path with `?api-version=`; `V1` is the `/openai/v1` API.
    Azure { endpoint: Endpoint, api_key: Secret, style: AzureStyle },
    /// Ollama's OpenAI-compatible `/v1`.
    Ollama { endpoint: Endpoint },
    /// Anthropic's Messages API (`base_url` is the host, e.g.
    /// `https://api.anthropic.com`; `/v1/messages` is appended).
    Anthropic { endpoint: Endpoint, api_key: Secret, version: String, max_tokens_default: u64 },
    /// Google's Gemini API (`generateContent`), key in `x-goog-api-key`.
    Gemini { endpoint: Endpoint, api_key: Secret },
    /// AWS Bedrock's Converse API.
    Bedrock { endpoint: Endpoint, region: String, auth: BedrockAuth, max_tokens_default: Option<u64> },
    /// Canned answers from inside the gateway: works with no key at all.
    Mock,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BedrockAuth {
    /// Requests are signed with SigV4.
    SigV4(crate::sigv4::Credentials),
    /// A Bedrock API key, sent as `Authorization: Bearer`.
    ApiKey(String),
}

#[derive(Debug, Clone)]
pub enum AzureStyle {
    Deployments { api_version: String },
    V1 { api_version: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// Where a deployment lives: scheme, host, port and the path prefix that
/// endpoint paths are appended to (no trailing slash).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    pub base_path: String,
    pub tls_ca_file: Option<PathBuf>,
}

impl Endpoint {
    /// `scheme://host:port`: where connections to this endpoint go.
    pub fn origin(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}", self.authority())
    }

    /// The `Host` header value.
    pub fn authority(&self) -> String {
        let default_port = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == default_port { host } else { format!("{host}:{}", self.port) }
    }
}

impl ProviderKind {
    pub fn endpoint(&self) -> Option<&Endpoint> {
        match self {
            ProviderKind::OpenAi { endpoint, .. }
            | ProviderKind::Azure { endpoint, .. }
            | ProviderKind::Ollama { endpoint }
            | ProviderKind::Anthropic { endpoint, .. }
            | ProviderKind::Gemini { endpoint, .. }
            | ProviderKind::Bedrock { endpoint, .. } => Some(endpoint),
            ProviderKind::Mock => None,
        }
    }
}

/// A client key from `[[keys]]`. Only the SHA-256 of the secret is kept.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub secret_sha256: [u8; 32],
    pub models: ModelAllowlist,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// Unix seconds after which the key is refused.
    pub expires_at: Option<u64>,
    /// Per model (or alias) name: (rpm, tpm).
    pub model_limits: HashMap<String, (Option<u64>, Option<u64>)>,
    pub budget: Option<store::Budget>,
    /// The key's id in the usage ledger and the store: a runtime key's own
    /// id, or `cfg-` and the limit id in hex for a config key (which has no
    /// stored record).
    pub ledger: store::KeyId,
}

impl Key {
    /// The key's id in the usage ledger and the store.
    pub fn ledger_id(&self) -> &store::KeyId {
        &self.ledger
    }

    /// A key created at run time, from its stored record.
    pub fn from_record(record: &store::KeyRecord) -> Key {
        let mut key = Key {
            name: record.name.clone(),
            secret_sha256: record.secret_sha256,
            models: ModelAllowlist::parse(&record.models.patterns()),
            rpm: record.rpm.map(u64::from),
            tpm: record.tpm,
            expires_at: record.expires_at,
            model_limits: HashMap::new(),
            budget: record.budget,
            ledger: record.id.clone(),
        };
        // A runtime key's limits are counted under its own id.
        key.ledger = record.id.clone();
        key
    }

    /// The identity of this key's limits for one model (see
    /// [`Key::limit_id`]).
    pub fn model_limit_id(&self, model: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        // SipHash with fixed keys: the same id on every shard and run.
        #[allow(deprecated, reason = "SipHasher's fixed keys are what makes the id stable")]
        let mut hasher = std::hash::SipHasher::new();
        self.limit_id().hash(&mut hasher);
        model.hash(&mut hasher);
        hasher.finish()
    }

    /// The key's identity for its limits: stable across reloads (the index
    /// of a key may change), from its secret's digest.
    pub fn limit_id(&self) -> u64 {
        u64::from_le_bytes(self.secret_sha256[..8].try_into().unwrap_or_default())
    }
}

/// The models a key may use: `*`, exact names, and `prefix*` globs.
#[derive(Debug, Clone)]
pub struct ModelAllowlist {
    pub all: bool,
    pub exact: Vec<String>,
    pub prefixes: Vec<String>,
}

impl ModelAllowlist {
    pub fn allows(&self, model: &str) -> bool {
        self.all || self.exact.iter().any(|m| m == model) || self.prefixes.iter().any(|p| model.starts_with(p.as_str()))
    }

    fn parse(patterns: &[String]) -> ModelAllowlist {
        let mut list = ModelAllowlist { all: false, exact: Vec::new(), prefixes: Vec::new() };
        for p in patterns {
            match p.strip_suffix('*') {
                Some("") => list.all = true,
                Some(prefix) => list.prefixes.push(prefix.to_owned()),
                None => list.exact.push(p.clone()),
            }
        }
        list
    }
}

/// SHA-256 of a key secret, as stored and looked up.
pub fn key_digest(secret: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

// ---------------------------------------------------------------------------
// Parsing and validation.

/// The config used when `corelay` runs without `--config`: one in-process
/// mock provider on loopback, so the gateway answers with no key at all.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/default.toml");

/// Parses and validates a config. `env` resolves `${VAR}` references.
pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let expanded = expand_env(text, &env)?;
    let file: File = toml::from_str(&expanded).map_err(|e| ConfigError::Toml(e.to_string()))?;
    validate(file, &env)
}

/// Replaces `${NAME}` with the variable's value. An unset variable is an
/// error naming it, never an empty string. `$$` stays a literal `$`.
pub fn expand_env(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let line = text[..text.len() - rest.len() + i].matches('\n').count() + 1;
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or(ConfigError::UnterminatedVariable { line })?;
            let name = &body[..end];
            let value = env(name).ok_or_else(|| ConfigError::UnsetVariable { name: name.to_owned(), line })?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn validate(file: File, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let listen: SocketAddr =
        file.listen.parse().map_err(|_| invalid("listen", format!("`{}` is not an IP:port address", file.listen)))?;
    let shards = match file.shards {
        None => Shards::Auto,
        Some(ShardsSetting::Word(w)) if w == "auto" => Shards::Auto,
        Some(ShardsSetting::Count(n)) if (1..=1024).contains(&n) => Shards::Count(n),
        Some(_) => return Err(invalid("shards", "must be \"auto\" or a number from 1 to 1024")),
    };
    let driver = match file.driver.as_deref() {
        None | Some("auto") => Driver::Auto,
        Some("io_uring") => Driver::IoUring,
        Some("epoll") => Driver::Epoll,
        Some(other) => {
            return Err(invalid("driver", format!("`{other}`: expected \"auto\", \"io_uring\" or \"epoll\"")));
        }
    };
    let http = validate_http(file.http)?;
    let upstream = validate_upstream(file.upstream)?;
    let routing = validate_routing(file.routing)?;
    let mut deployments = Vec::new();
    for (name, provider) in file.providers {
        deployments.push(validate_provider(name, provider, &upstream, env)?);
    }
    let routes = route_table(&deployments);
    let aliases = resolve_aliases(&file.aliases, &routes)?;
    let fallbacks = resolve_fallbacks(&file.fallbacks, &routes, &aliases)?;
    let storage = validate_storage(file.storage)?;
    let cache = validate_cache(file.cache)?;
    let prices = validate_prices(file.models)?;
    let keys = validate_keys(file.keys)?;
    Ok(Config {
        listen,
        shards,
        pin_shards: file.pin_shards,
        driver,
        shutdown_timeout_ms: file.shutdown_timeout_ms,
        http,
        upstream,
        routing,
        deployments,
        routes,
        aliases,
        fallbacks,
        keys,
        storage,
        cache,
        admin_token: match file.admin_token {
            Some(t) if t.len() < 16 => return Err(invalid("admin_token", "must be at least 16 characters")),
            t => t,
        },
        prices: std::sync::Arc::new(prices),
    })
}

/// A Bedrock deployment: region, endpoint and how requests are authorized.
fn validate_bedrock(
    path: &str,
    p: &ProviderFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ProviderKind, ConfigError> {
    let region = p
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .filter(|r| !r.is_empty())
        .ok_or_else(|| invalid(format!("{path}.region"), "is required for kind \"bedrock\" (or set AWS_REGION)"))?;
    if !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(invalid(format!("{path}.region"), "must look like us-east-1"));
    }
    let default_url = format!("https://bedrock-runtime.{region}.amazonaws.com");
    let url = p.base_url.as_deref().unwrap_or(&default_url);
    let endpoint = parse_endpoint(url, p.tls_ca_file.clone()).map_err(|m| invalid(format!("{path}.base_url"), m))?;
    let auth = match (&p.api_key, &p.aws_access_key_id, &p.aws_secret_access_key) {
        (Some(key), None, None) => BedrockAuth::ApiKey(key.expose().to_owned()),
        (None, Some(id), Some(secret)) => BedrockAuth::SigV4(crate::sigv4::Credentials {
            access_key_id: id.clone(),
            secret_access_key: secret.expose().to_owned(),
            session_token: p.aws_session_token.as_ref().map(|t| t.expose().to_owned()),
        }),
        (None, None, None) => BedrockAuth::SigV4(crate::sigv4::credentials_from_env(env).ok_or_else(|| {
            invalid(
                format!("{path}.aws_access_key_id"),
                "no credentials: set api_key, or aws_access_key_id and aws_secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            )
        })?),
        _ => {
            return Err(invalid(
                format!("{path}.aws_access_key_id"),
                "give either api_key or both aws_access_key_id and aws_secret_access_key",
            ));
        }
    };
    let max_tokens_default = match p.max_tokens_default {
        Some(n) => Some(positive(&format!("{path}.max_tokens_default"), n)?),
        None => None,
    };
    Ok(ProviderKind::Bedrock { endpoint, region, auth, max_tokens_default })
}

fn positive<T: PartialOrd + Default + Copy>(path: &str, value: T) -> Result<T, ConfigError> {
    if value > T::default() { Ok(value) } else { Err(invalid(path, "must be greater than 0")) }
}

fn validate_cache(f: CacheFile) -> Result<Option<CacheSettings>, ConfigError> {
    if !f.enabled {
        return Ok(None);
    }
    let chat = match f.chat.as_str() {
        "deterministic" => CacheChat::Deterministic,
        "all" => CacheChat::All,
        other => return Err(invalid("cache.chat", format!("`{other}`: expected \"deterministic\" or \"all\""))),
    };
    let scope = match f.scope.as_str() {
        "key" => CacheScope::Key,
        "shared" => CacheScope::Shared,
        other => return Err(invalid("cache.scope", format!("`{other}`: expected \"key\" or \"shared\""))),
    };
    let ttl_s = positive("cache.ttl_s", f.ttl_s)?;
    if f.bytes_max < 64 * 1024 {
        return Err(invalid("cache.bytes_max", "must be at least 65536"));
    }
    let entry_bytes_max = positive("cache.entry_bytes_max", f.entry_bytes_max)?;
    if entry_bytes_max > f.bytes_max {
        return Err(invalid("cache.entry_bytes_max", "must not be more than cache.bytes_max"));
    }
    let limits = store::CacheLimits { ttl_ms: ttl_s.saturating_mul(1000), bytes_max: f.bytes_max, entry_bytes_max };
    Ok(Some(CacheSettings { limits, chat, scope }))
}

fn validate_http(f: HttpFile) -> Result<HttpLimits, ConfigError> {
    if f.request_head_bytes_max < 1024 {
        return Err(invalid("http.request_head_bytes_max", "must be at least 1024"));
    }
    Ok(HttpLimits {
        request_head_bytes_max: f.request_head_bytes_max,
        request_headers_max: match f.request_headers_max {
            n @ 1..=crate::http::codec::REQUEST_HEADERS_CEILING => n,
            _ => {
                let most = crate::http::codec::REQUEST_HEADERS_CEILING;
                return Err(invalid("http.request_headers_max", format!("must be from 1 to {most}")));
            }
        },
        request_body_bytes_max: f.request_body_bytes_max,
        request_head_timeout_ms: positive("http.request_head_timeout_ms", f.request_head_timeout_ms)?,
        request_body_timeout_ms: positive("http.request_body_timeout_ms", f.request_body_timeout_ms)?,
        client_idle_timeout_ms: positive("http.client_idle_timeout_ms", f.client_idle_timeout_ms)?,
        connections_per_shard_max: positive("http.connections_per_shard_max", f.connections_per_shard_max)?,
    })
}

fn validate_upstream(f: UpstreamFile) -> Result<UpstreamLimits, ConfigError> {
    Ok(UpstreamLimits {
        connect_timeout_ms: positive("upstream.upstream_connect_timeout_ms", f.upstream_connect_timeout_ms)?,
        pool_idle_max: f.upstream_pool_idle_max,
        pool_idle_timeout_ms: positive("upstream.upstream_pool_idle_timeout_ms", f.upstream_pool_idle_timeout_ms)?,
        response_head_bytes_max: positive(
            "upstream.upstream_response_head_bytes_max",
            f.upstream_response_head_bytes_max,
        )?,
        response_body_bytes_max: positive(
            "upstream.upstream_response_body_bytes_max",
            f.upstream_response_body_bytes_max,
        )?,
        stream_event_bytes_max: positive("upstream.stream_event_bytes_max", f.stream_event_bytes_max)?,
        stream_idle_timeout_ms: positive("upstream.stream_idle_timeout_ms", f.stream_idle_timeout_ms)?,
        dns_refresh_ms: positive("upstream.dns_refresh_ms", f.dns_refresh_ms)?,
        stats_interval_ms: positive("upstream.stats_interval_ms", f.stats_interval_ms)?,
    })
}

fn validate_storage(f: StorageFile) -> Result<Storage, ConfigError> {
    if f.kind.as_deref() != Some("redis") && (f.url.is_some() || f.key_prefix.is_some()) {
        return Err(invalid("storage.url", "url and key_prefix are for kind \"redis\""));
    }
    let kind = match (f.kind.as_deref(), f.path) {
        (None | Some("memory"), None) => StorageKind::Memory,
        (Some("memory"), Some(_)) => return Err(invalid("storage.path", "kind \"memory\" keeps nothing on disk")),
        (None | Some("redb"), Some(path)) => StorageKind::Redb(path),
        (Some("redb"), None) => return Err(invalid("storage.path", "kind \"redb\" needs a file path")),
        (Some("redis"), Some(_)) => return Err(invalid("storage.path", "kind \"redis\" takes a url, not a path")),
        (Some("redis"), None) => {
            let url = f.url.ok_or_else(|| invalid("storage.url", "kind \"redis\" needs a url (redis://host:port)"))?;
            if !url.starts_with("redis://") && !url.starts_with("rediss://") {
                return Err(invalid("storage.url", "must start with redis:// or rediss://"));
            }
            let key_prefix = f.key_prefix.unwrap_or_else(|| store::RedisConfig::KEY_PREFIX_DEFAULT.to_owned());
            StorageKind::Redis { url, key_prefix }
        }
        (Some(other), _) => {
            return Err(invalid("storage.kind", format!("`{other}`: expected \"memory\", \"redb\" or \"redis\"")));
        }
    };
    Ok(Storage { kind, usage_flush_ms: positive("storage.usage_flush_ms", f.usage_flush_ms)? })
}

fn validate_prices(models: BTreeMap<String, ModelFile>) -> Result<store::PriceTable, ConfigError> {
    let mut overrides = Vec::new();
    for (model, m) in models {
        let Some(p) = m.pricing else { continue };
        let price = store::Price::from_usd_per_mtok(p.input, p.output, p.cache_read, p.cache_write)
            .map_err(|e| invalid(format!("models.{model}.pricing"), e.to_string()))?;
        overrides.push((model, price));
    }
    Ok(store::PriceTable::with_overrides(overrides))
}

fn validate_routing(f: RoutingFile) -> Result<RoutingLimits, ConfigError> {
    let base = positive("routing.retry_backoff_base_ms", f.retry_backoff_base_ms)?;
    let max = positive("routing.retry_backoff_max_ms", f.retry_backoff_max_ms)?;
    if max < base {
        return Err(invalid("routing.retry_backoff_max_ms", "must be at least retry_backoff_base_ms"));
    }
    Ok(RoutingLimits {
        retry_backoff_base_ms: base,
        retry_backoff_max_ms: max,
        retry_deadline_ms: positive("routing.retry_deadline_ms", f.retry_deadline_ms)?,
        breaker_failures: positive("routing.breaker_failures", f.breaker_failures)?,
        breaker_cooldown_ms: positive("routing.breaker_cooldown_ms", f.breaker_cooldown_ms)?,
    })
}

/// Resolves each fallback list through the aliases; every model named must
/// be served, and a model is never its own fallback.
fn resolve_fallbacks(
    fallbacks: &BTreeMap<String, Vec<String>>,
    routes: &HashMap<String, Vec<usize>>,
    aliases: &HashMap<String, String>,
) -> Result<HashMap<String, Vec<String>>, ConfigError> {
    let served = |name: &str| -> Option<String> {
        aliases.get(name).cloned().or_else(|| routes.contains_key(name).then(|| name.to_owned()))
    };
    let mut out = HashMap::new();
    for (model, list) in fallbacks {
        let path = format!("fallbacks.{model}");
        let from = served(model).ok_or_else(|| invalid(&path, format!("`{model}` is not served by any provider")))?;
        let mut targets: Vec<String> = Vec::with_capacity(list.len());
        for target in list {
            let to =
                served(target).ok_or_else(|| invalid(&path, format!("`{target}` is not served by any provider")))?;
            if to == from {
                return Err(invalid(&path, format!("`{target}` is `{model}` itself")));
            }
            if !targets.contains(&to) {
                targets.push(to);
            }
        }
        out.insert(from, targets);
    }
    Ok(out)
}

fn validate_provider(
    name: String,
    p: ProviderFile,
    upstream: &UpstreamLimits,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Deployment, ConfigError> {
    let path = format!("providers.{name}");
    let kind_name = p.kind.clone().unwrap_or_else(|| name.clone());
    if p.models.is_empty() && p.upstream_models.is_empty() {
        return Err(invalid(format!("{path}.models"), "must list at least one model (or upstream_models)"));
    }
    if p.models.iter().any(|m| m.is_empty()) {
        return Err(invalid(format!("{path}.models"), "model names must not be empty"));
    }
    let endpoint = |default: Option<&str>| -> Result<Endpoint, ConfigError> {
        let url = p
            .base_url
            .as_deref()
            .or(default)
            .ok_or_else(|| invalid(format!("{path}.base_url"), "is required for this kind"))?;
        parse_endpoint(url, p.tls_ca_file.clone()).map_err(|m| invalid(format!("{path}.base_url"), m))
    };
    let kind = match kind_name.as_str() {
        "openai" => {
            ProviderKind::OpenAi { endpoint: endpoint(Some("https://api.openai.com/v1"))?, api_key: p.api_key.clone() }
        }
        "azure" => {
            let endpoint = endpoint(None)?;
            let api_key = p
                .api_key
                .clone()
                .ok_or_else(|| invalid(format!("{path}.api_key"), "is required for kind \"azure\""))?;
            let style = if endpoint.base_path.ends_with("/openai/v1") {
                AzureStyle::V1 { api_version: p.api_version.clone() }
            } else {
                AzureStyle::Deployments {
                    api_version: p.api_version.clone().unwrap_or_else(|| defaults::AZURE_API_VERSION.to_owned()),
                }
            };
            ProviderKind::Azure { endpoint, api_key, style }
        }
        "ollama" => ProviderKind::Ollama { endpoint: endpoint(Some("http://127.0.0.1:11434/v1"))? },
        "mock" => ProviderKind::Mock,
        "anthropic" => {
            let mut endpoint = endpoint(Some("https://api.anthropic.com"))?;
            // Both `https://api.anthropic.com` and `.../v1` are common.
            if let Some(base) = endpoint.base_path.strip_suffix("/v1") {
                endpoint.base_path = base.to_owned();
            }
            let api_key = p
                .api_key
                .clone()
                .ok_or_else(|| invalid(format!("{path}.api_key"), "is required for kind \"anthropic\""))?;
            let max_tokens_default = positive(
                &format!("{path}.max_tokens_default"),
                p.max_tokens_default.unwrap_or(defaults::ANTHROPIC_MAX_TOKENS),
            )?;
            let version = p.api_version.clone().unwrap_or_else(|| defaults::ANTHROPIC_VERSION.to_owned());
            ProviderKind::Anthropic { endpoint, api_key, version, max_tokens_default }
        }
        "gemini" | "google" => {
            let mut endpoint = endpoint(Some("https://generativelanguage.googleapis.com"))?;
            if let Some(base) = endpoint.base_path.strip_suffix("/v1beta") {
                endpoint.base_path = base.to_owned();
            }
            let api_key = p
                .api_key
                .clone()
                .ok_or_else(|| invalid(format!("{path}.api_key"), "is required for kind \"gemini\""))?;
            ProviderKind::Gemini { endpoint, api_key }
        }
        "bedrock" => validate_bedrock(&path, &p, env)?,
        // crabllm treats any other kind as a bare OpenAI-compatible server.
        _ if p.base_url.is_some() => ProviderKind::OpenAi { endpoint: endpoint(None)?, api_key: p.api_key.clone() },
        other => {
            return Err(invalid(
                format!("{path}.kind"),
                format!(
                    "`{other}` is not a known kind (openai, azure, anthropic, gemini, bedrock, ollama, mock); an OpenAI-compatible server needs base_url"
                ),
            ));
        }
    };
    if p.api_version.is_some() && !matches!(kind, ProviderKind::Azure { .. } | ProviderKind::Anthropic { .. }) {
        return Err(invalid(format!("{path}.api_version"), "only applies to kinds \"azure\" and \"anthropic\""));
    }
    if p.max_tokens_default.is_some() && !matches!(kind, ProviderKind::Anthropic { .. } | ProviderKind::Bedrock { .. })
    {
        return Err(invalid(
            format!("{path}.max_tokens_default"),
            "only applies to kinds \"anthropic\" and \"bedrock\"",
        ));
    }
    check_head_values(&path, &kind)?;
    let aws = [p.region.is_some(), p.aws_access_key_id.is_some()]
        .into_iter()
        .chain([p.aws_secret_access_key.is_some(), p.aws_session_token.is_some()]);
    if aws.into_iter().any(|given| given) && !matches!(kind, ProviderKind::Bedrock { .. }) {
        return Err(invalid(format!("{path}.region"), "region and aws_* keys only apply to kind \"bedrock\""));
    }
    let mut upstream = upstream.clone();
    if let Some(ms) = p.connect_timeout_ms {
        upstream.connect_timeout_ms = positive(&format!("{path}.connect_timeout_ms"), ms)?;
    }
    if let Some(ms) = p.stream_idle_timeout_ms {
        upstream.stream_idle_timeout_ms = positive(&format!("{path}.stream_idle_timeout_ms"), ms)?;
    }
    let mut models = p.models;
    for (public, own) in &p.upstream_models {
        if own.trim().is_empty() {
            return Err(invalid(format!("{path}.upstream_models.{public}"), "must name the provider's model"));
        }
        if !models.contains(public) {
            models.push(public.clone());
        }
    }
    Ok(Deployment {
        name,
        kind,
        models,
        upstream_models: p.upstream_models.into_iter().collect(),
        weight: positive(&format!("{path}.weight"), p.weight.unwrap_or(defaults::PROVIDER_WEIGHT))?,
        max_retries: p.max_retries.unwrap_or(defaults::PROVIDER_MAX_RETRIES),
        timeout_ms: positive(&format!("{path}.timeout"), p.timeout.unwrap_or(defaults::PROVIDER_TIMEOUT_S))? * 1000,
        upstream,
    })
}

/// Refuses a value that would go into a provider request's head unsafe to
/// copy there: keys and versions become header values (or, for Azure's
/// `api_version`, part of the URL), written as they are, so a CR or LF in
/// one would let the config file (or an environment variable expanded into
/// it) write headers of its own. The error names the field, never the value.
fn check_head_values(path: &str, kind: &ProviderKind) -> Result<(), ConfigError> {
    let header = |field: &str, value: &str| {
        if crate::http::codec::is_header_value_safe(value.as_bytes()) {
            Ok(())
        } else {
            Err(invalid(
                format!("{path}.{field}"),
                "must be printable ASCII (it is sent in an HTTP header): no control characters such as CR or LF, no non-ASCII",
            ))
        }
    };
    match kind {
        ProviderKind::OpenAi { api_key: Some(key), .. } | ProviderKind::Gemini { api_key: key, .. } => {
            header("api_key", key)
        }
        ProviderKind::Azure { api_key, style, .. } => {
            header("api_key", api_key)?;
            let version = match style {
                AzureStyle::Deployments { api_version } => Some(api_version),
                AzureStyle::V1 { api_version } => api_version.as_ref(),
            };
            let url_safe =
                |v: &str| v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            match version {
                Some(v) if !url_safe(v) => Err(invalid(
                    format!("{path}.api_version"),
                    "may hold only letters, digits and - . _ ~ (it is sent in the URL)",
                )),
                _ => Ok(()),
            }
        }
        ProviderKind::Anthropic { api_key, version, .. } => {
            header("api_key", api_key)?;
            header("api_version", version)
        }
        ProviderKind::Bedrock { auth: BedrockAuth::ApiKey(key), .. } => header("api_key", key),
        ProviderKind::Bedrock { auth: BedrockAuth::SigV4(c), .. } => {
            header("aws_access_key_id", &c.access_key_id)?;
            header("aws_secret_access_key", &c.secret_access_key)?;
            c.session_token.as_deref().map_or(Ok(()), |t| header("aws_session_token", t))
        }
        ProviderKind::OpenAi { api_key: None, .. } | ProviderKind::Ollama { .. } | ProviderKind::Mock => Ok(()),
    }
}

/// Parses `http(s)://host[:port][/path]`. A trailing endpoint path that users
/// often paste (`/chat/completions`, `/embeddings`) and trailing slashes are
/// removed.
pub fn parse_endpoint(url: &str, tls_ca_file: Option<PathBuf>) -> Result<Endpoint, String> {
    let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r)
    } else {
        return Err(format!("`{url}` must start with http:// or https://"));
    };
    // The host goes into the Host header and the path into the request
    // line, as they are.
    if !rest.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces or control characters".to_owned());
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
        return Err(format!("`{url}` is not a plain http(s)://host[:port]/path URL"));
    }
    let (host, port) = split_host_port(authority, scheme).ok_or_else(|| format!("`{url}` has a bad port"))?;
    let mut base_path = path.trim_end_matches('/');
    for suffix in ["/chat/completions", "/embeddings", "/models"] {
        base_path = base_path.strip_suffix(suffix).unwrap_or(base_path);
    }
    if tls_ca_file.is_some() && scheme == Scheme::Http {
        return Err("tls_ca_file needs an https:// base_url".to_owned());
    }
    Ok(Endpoint { scheme, host, port, base_path: base_path.to_owned(), tls_ca_file })
}

fn split_host_port(authority: &str, scheme: Scheme) -> Option<(String, u16)> {
    let default = if scheme == Scheme::Https { 443 } else { 80 };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if rest.is_empty() => default,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((authority.to_owned(), default)),
    }
}

fn route_table(deployments: &[Deployment]) -> HashMap<String, Vec<usize>> {
    let mut routes: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, d) in deployments.iter().enumerate() {
        for m in &d.models {
            let list = routes.entry(m.clone()).or_default();
            if !list.contains(&i) {
                list.push(i);
            }
        }
    }
    routes
}

/// Follows alias chains to a served model; rejects cycles and dangling ends.
fn resolve_aliases(
    aliases: &BTreeMap<String, String>,
    routes: &HashMap<String, Vec<usize>>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut resolved = HashMap::new();
    for (alias, first) in aliases {
        if routes.contains_key(alias) {
            return Err(invalid(format!("aliases.{alias}"), "is also a model served by a provider"));
        }
        let mut seen = vec![alias.as_str()];
        let mut target = first.as_str();
        while let Some(next) = aliases.get(target) {
            if seen.contains(&target) {
                return Err(invalid(format!("aliases.{alias}"), format!("cycle: {} -> {target}", seen.join(" -> "))));
            }
            seen.push(target);
            target = next;
        }
        if !routes.contains_key(target) {
            return Err(invalid(format!("aliases.{alias}"), format!("`{target}` is not served by any provider")));
        }
        resolved.insert(alias.clone(), target.to_owned());
    }
    Ok(resolved)
}

/// A ledger id that always parses, for the impossible case of a malformed
/// generated one.
fn unreachable_id() -> store::KeyId {
    store::KeyId::parse("cfg-invalid").expect("a valid literal id")
}

/// Unix seconds of an RFC 3339 time in UTC (`YYYY-MM-DDTHH:MM:SSZ`, or a
/// date alone for its midnight).
fn parse_utc(text: &str) -> Option<u64> {
    let (date, time) = match text.split_once('T') {
        Some((d, t)) => (d, t.strip_suffix('Z')?),
        None => (text, "00:00:00"),
    };
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 || y < 1970 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

fn validate_keys(keys: Vec<KeyFile>) -> Result<Vec<Key>, ConfigError> {
    let mut out: Vec<Key> = Vec::with_capacity(keys.len());
    for (i, k) in keys.into_iter().enumerate() {
        if k.key.len() < 8 {
            return Err(invalid(format!("keys[{i}].key"), "must be at least 8 characters"));
        }
        let secret_sha256 = key_digest(k.key.as_bytes());
        if out.iter().any(|o| o.name == k.name) {
            return Err(invalid(format!("keys[{i}].name"), format!("`{}` is used twice", k.name)));
        }
        if out.iter().any(|o| o.secret_sha256 == secret_sha256) {
            return Err(invalid(format!("keys[{i}].key"), "the same secret is used by two keys"));
        }
        let rpm = k.rpm.map(|v| positive(&format!("keys[{i}].rpm"), v)).transpose()?;
        let tpm = k.tpm.map(|v| positive(&format!("keys[{i}].tpm"), v)).transpose()?;
        let expires_at = match &k.expires_at {
            None => None,
            Some(text) => Some(parse_utc(text).ok_or_else(|| {
                invalid(
                    format!("keys[{i}].expires_at"),
                    format!("`{text}`: expected a UTC time like 2027-01-31T00:00:00Z"),
                )
            })?),
        };
        let mut model_limits = HashMap::new();
        for (model, l) in k.model_limits {
            let path = format!("keys[{i}].model_limits.{model}");
            let rpm = l.rpm.map(|v| positive(&format!("{path}.rpm"), v)).transpose()?;
            let tpm = l.tpm.map(|v| positive(&format!("{path}.tpm"), v)).transpose()?;
            model_limits.insert(model, (rpm, tpm));
        }
        let budget = match (k.budget_usd, k.budget_period.as_deref()) {
            (None, None) => None,
            (None, Some(_)) => return Err(invalid(format!("keys[{i}].budget_period"), "needs budget_usd")),
            (Some(usd), period) => {
                if !(usd.is_finite() && usd > 0.0) {
                    return Err(invalid(format!("keys[{i}].budget_usd"), "must be a positive number of USD"));
                }
                let period = match period {
                    None => store::BudgetPeriod::Total,
                    Some(p) => store::BudgetPeriod::parse(p).ok_or_else(|| {
                        invalid(format!("keys[{i}].budget_period"), "must be \"total\", \"daily\" or \"monthly\"")
                    })?,
                };
                Some(store::Budget { usd_micros: (usd * 1_000_000.0).round() as u64, period })
            }
        };
        let limit_id = u64::from_le_bytes(secret_sha256[..8].try_into().unwrap_or_default());
        let ledger = store::KeyId::parse(format!("cfg-{limit_id:016x}")).unwrap_or_else(|_| unreachable_id());
        out.push(Key {
            name: k.name,
            secret_sha256,
            models: ModelAllowlist::parse(&k.models),
            rpm,
            tpm,
            expires_at,
            model_limits,
            budget,
            ledger,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn err(text: &str) -> String {
        parse(text, no_env).unwrap_err().to_string()
    }

    #[test]
    fn embedded_default_is_valid_and_uses_the_mock() {
        let c = parse(EMBEDDED_DEFAULT, no_env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(matches!(c.deployments[0].kind, ProviderKind::Mock));
        assert!(c.keys.is_empty());
    }

    #[test]
    fn utc_times_are_read_as_unix_seconds() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(parse_utc("2026-12-01T13:55:00Z"), Some(1_796_133_300));
        assert_eq!(parse_utc("2027-01-31"), Some(1_801_353_600));
        for bad in ["2027-13-01", "2027-01-31T00:00:00", "tomorrow", "2027-01-31T24:00:00Z"] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn debug_output_shows_no_credential() {
        let text = r#"
[providers.openai]
api_key = "sk-openai-secret-1"
models = ["gpt-4o"]
[providers.claude]
kind = "anthropic"
api_key = "sk-ant-secret-2"
models = ["claude"]
[providers.aws]
kind = "bedrock"
region = "us-east-1"
aws_access_key_id = "AKIDEXAMPLE"
aws_secret_access_key = "aws-secret-3"
aws_session_token = "aws-token-4"
models = ["nova"]
[[keys]]
name = "team"
key = "sk-virtual-secret-5"
"#;
        let printed = format!("{:?}", parse(text, no_env).unwrap());
        for secret in ["secret-1", "secret-2", "secret-3", "token-4", "secret-5"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn the_cache_is_off_unless_enabled_and_its_values_are_checked() {
        let mock = "[providers.m]\nkind = \"mock\"\nmodels = [\"m\"]\n";
        assert_eq!(parse(mock, no_env).unwrap().cache, None);
        let on = parse(&format!("{mock}[cache]\nenabled = true\nttl_s = 60\nscope = \"shared\""), no_env).unwrap();
        let settings = on.cache.expect("enabled");
        assert_eq!(settings.limits.ttl_ms, 60_000);
        assert_eq!(settings.limits.bytes_max, defaults::CACHE_BYTES_MAX);
        assert_eq!((settings.chat, settings.scope), (CacheChat::Deterministic, CacheScope::Shared));
        for (bad, path) in [
            ("chat = \"some\"", "cache.chat"),
            ("scope = \"team\"", "cache.scope"),
            ("ttl_s = 0", "cache.ttl_s"),
            ("bytes_max = 1000", "cache.bytes_max"),
            ("entry_bytes_max = 100000000", "cache.entry_bytes_max"),
        ] {
            let e = err(&format!("{mock}[cache]\nenabled = true\n{bad}"));
            assert!(e.starts_with(path), "{bad}: {e}");
        }
    }

    #[test]
    fn env_expansion_names_the_missing_variable() {
        let env = |n: &str| (n == "KEY").then(|| "sk-123".to_owned());
        assert_eq!(expand_env("a=${KEY} $$x $y", env).unwrap(), "a=sk-123 $x $y");
        let e = expand_env("\n\nk = \"${NOPE}\"", env).unwrap_err().to_string();
        assert!(e.contains("`NOPE`") && e.contains("line 3"), "{e}");
        assert!(expand_env("${OPEN", env).is_err());
    }

    #[test]
    fn unknown_keys_are_errors_with_their_path() {
        assert!(err("listen_typo = 1").contains("listen_typo"));
        let e = err("[providers.a]\nkind=\"mock\"\nmodels=[\"m\"]\nmax_retriez=1");
        assert!(e.contains("max_retriez"), "{e}");
        assert!(err("[http]\nrequest_body_bytes=1").contains("request_body_bytes"));
    }

    #[test]
    fn crabllm_config_is_accepted() {
        let text = r#"
            listen = "127.0.0.1:5632"
            [providers.openai]
            kind = "openai"
            api_key = "${OPENAI_API_KEY}"
            models = ["gpt-4o", "gpt-4o-mini"]
            weight = 2
            max_retries = 3
            timeout = 30
            [providers.local]
            kind = "vllm"
            base_url = "http://127.0.0.1:8000/v1/chat/completions"
            models = ["llama"]
            [providers.az]
            kind = "azure"
            api_key = "k"
            base_url = "https://r.openai.azure.com"
            api_version = "2024-02-15-preview"
            models = ["gpt-4o"]
            [aliases]
            fast = "smart"
            smart = "gpt-4o"
            [[keys]]
            name = "team"
            key = "sk-team-secret"
            models = ["gpt-*"]
        "#;
        let env = |n: &str| (n == "OPENAI_API_KEY").then(|| "sk-x".to_owned());
        let c = parse(text, env).unwrap();
        assert_eq!(c.aliases["fast"], "gpt-4o");
        assert_eq!(c.routes["gpt-4o"].len(), 2);
        let local = c.deployments.iter().find(|d| d.name == "local").unwrap();
        match &local.kind {
            ProviderKind::OpenAi { endpoint, .. } => {
                assert_eq!(
                    (endpoint.host.as_str(), endpoint.port, endpoint.base_path.as_str()),
                    ("127.0.0.1", 8000, "/v1")
                );
            }
            other => panic!("{other:?}"),
        }
        let az = c.deployments.iter().find(|d| d.name == "az").unwrap();
        assert!(
            matches!(&az.kind, ProviderKind::Azure { style: AzureStyle::Deployments { api_version }, .. } if api_version == "2024-02-15-preview")
        );
        assert_eq!(az.timeout_ms, defaults::PROVIDER_TIMEOUT_S * 1000);
        assert!(c.keys[0].models.allows("gpt-4o") && !c.keys[0].models.allows("claude"));
        assert_eq!(c.keys[0].secret_sha256, key_digest(b"sk-team-secret"));
    }

    #[test]
    fn aliases_reject_cycles_and_dangling_targets() {
        let base = "[providers.m]\nkind=\"mock\"\nmodels=[\"m\"]\n[aliases]\n";
        assert!(err(&format!("{base}a=\"b\"\nb=\"a\"")).contains("cycle"));
        assert!(err(&format!("{base}a=\"nowhere\"")).contains("not served"));
        assert!(err(&format!("{base}m=\"m\"")).contains("also a model"));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(err("listen = \"nope\"").contains("listen"));
        assert!(err("shards = 0").contains("shards"));
        assert!(err("driver = \"kqueue\"").contains("driver"));
        assert!(err("[providers.x]\nkind=\"azure\"\nbase_url=\"https://a\"\nmodels=[\"m\"]").contains("api_key"));
        assert!(err("[providers.x]\nkind=\"weird\"\nmodels=[\"m\"]").contains("not a known kind"));
        let anthropic = "[providers.x]\nkind=\"anthropic\"\nbase_url=\"https://a\"\nmodels=[\"m\"]";
        assert!(err(anthropic).contains("api_key"));
        assert!(err(&format!("{anthropic}\napi_key=\"k\"\nmax_tokens_default=0")).contains("max_tokens_default"));
        assert!(err("[providers.x]\nkind=\"openai\"\nmodels=[\"m\"]\nmax_tokens_default=5").contains("only applies"));
        let gemini = "[providers.x]\nkind=\"gemini\"\nbase_url=\"https://a\"\nmodels=[\"m\"]";
        assert!(err(gemini).contains("api_key"));
        let bedrock = "[providers.x]\nkind=\"bedrock\"\nmodels=[\"m\"]";
        assert!(err(bedrock).contains("region"));
        assert!(err(&format!("{bedrock}\nregion=\"us-east-1\"")).contains("no credentials"));
        assert!(err(&format!("{bedrock}\nregion=\"us east\"\napi_key=\"k\"")).contains("us-east-1"));
        assert!(err(&format!("{bedrock}\nregion=\"r\"\napi_key=\"k\"\naws_access_key_id=\"a\"")).contains("either"));
        assert!(err("[providers.x]\nkind=\"mock\"\nmodels=[\"m\"]\nregion=\"us-east-1\"").contains("only apply"));
        assert!(err("[providers.x]\nkind=\"openai\"\nbase_url=\"ftp://a\"\nmodels=[\"m\"]").contains("http"));
        assert!(err("[providers.x]\nkind=\"mock\"\nmodels=[]").contains("at least one model"));
        assert!(err("[[keys]]\nname=\"a\"\nkey=\"short\"").contains("8 characters"));
    }

    #[test]
    fn values_that_become_request_heads_must_be_safe_there() {
        let injected = "k\\r\\nx-evil: 1";
        let cases = [
            (format!("kind=\"openai\"\napi_key=\"{injected}\""), "providers.x.api_key"),
            (format!("kind=\"gemini\"\nbase_url=\"https://a\"\napi_key=\"{injected}\""), "providers.x.api_key"),
            (format!("kind=\"azure\"\nbase_url=\"https://a\"\napi_key=\"{injected}\""), "providers.x.api_key"),
            (
                "kind=\"azure\"\nbase_url=\"https://a\"\napi_key=\"k\"\napi_version=\"2024 HTTP/1.1\"".to_owned(),
                "providers.x.api_version",
            ),
            (
                format!("kind=\"anthropic\"\nbase_url=\"https://a\"\napi_key=\"k\"\napi_version=\"{injected}\""),
                "providers.x.api_version",
            ),
            (format!("kind=\"anthropic\"\nbase_url=\"https://a\"\napi_key=\"{injected}\""), "providers.x.api_key"),
            (format!("kind=\"bedrock\"\nregion=\"us-east-1\"\napi_key=\"{injected}\""), "providers.x.api_key"),
            (
                format!(
                    "kind=\"bedrock\"\nregion=\"us-east-1\"\naws_access_key_id=\"a\"\naws_secret_access_key=\"s\"\naws_session_token=\"{injected}\""
                ),
                "providers.x.aws_session_token",
            ),
            ("kind=\"openai\"\nbase_url=\"http://a/v1\\r\\nx-evil: 1\"".to_owned(), "providers.x.base_url"),
            ("kind=\"openai\"\napi_key=\"sk-café\"".to_owned(), "providers.x.api_key"),
        ];
        for (provider, field) in cases {
            let e = err(&format!("[providers.x]\nmodels=[\"m\"]\n{provider}"));
            assert!(e.starts_with(&format!("{field}:")), "{provider}: {e}");
            assert!(!e.contains("x-evil"), "the value is not echoed: {e}");
        }
        let fine = "[providers.x]\nkind=\"anthropic\"\nbase_url=\"https://a\"\napi_key=\"sk-ant-a b\"\napi_version=\"2023-06-01\"\nmodels=[\"m\"]";
        assert!(parse(fine, no_env).is_ok());
    }

    #[test]
    fn azure_v1_style_is_detected() {
        let c = parse(
            "[providers.x]\nkind=\"azure\"\napi_key=\"k\"\nbase_url=\"https://r.openai.azure.com/openai/v1/\"\nmodels=[\"d\"]",
            no_env,
        )
        .unwrap();
        assert!(matches!(&c.deployments[0].kind, ProviderKind::Azure { style: AzureStyle::V1 { .. }, .. }));
    }

    #[test]
    fn endpoints_parse_hosts_ports_and_paths() {
        let e = parse_endpoint("https://[::1]:8443/v1/", None).unwrap();
        assert_eq!((e.host.as_str(), e.port, e.base_path.as_str()), ("::1", 8443, "/v1"));
        assert_eq!(e.authority(), "[::1]:8443");
        let e = parse_endpoint("http://localhost", None).unwrap();
        assert_eq!((e.port, e.base_path.as_str(), e.authority()), (80, "", "localhost".to_owned()));
        assert!(parse_endpoint("http://a:b", None).is_err());
        assert!(parse_endpoint("http://u@a", None).is_err());
    }
}
