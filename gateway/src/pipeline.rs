//! The request pipeline: one function per phase, called in order from
//! [`handle`], so a request can be read top to bottom.
//!
//! 1. The head and body were read by [`crate::http::server`] (bounded).
//! 2. Route the path to an endpoint.
//! 3. Authenticate: hash the presented key, look it up in the shard's table.
//! 4. Peek `model` and `stream` without building the body.
//! 5. Resolve the alias, check the key's allowlist and limits, find the
//!    deployments; answer from the response cache when it keeps the answer.
//! 6. Pick one deployment by weighted random.
//! 7. Build the upstream request: the client's bytes, with only the model
//!    name of an alias and `stream_options.include_usage` spliced in.
//! 8. Send it over a pooled keep-alive connection.
//! 9. Respond: forward the body, or forward each SSE event as it arrives.
//! 10. Account: usage read from the final usage chunk goes to the counters.

use std::rc::Rc;
use std::time::{Duration, Instant};

use translate::openai::{self, ChatPeek, ChunkKind};
use translate::sse::{Piece, Splitter};

use crate::config::{AzureStyle, BedrockAuth, Deployment, Endpoint, Key, ProviderKind};
use translate::stream::Dialect as Wire;

use crate::cache;
use crate::error::{Dialect, GatewayError};
use crate::http::codec::{self, Method, RequestHead, ResponseHead};
use crate::http::server::{Header, Responder, Scratch};
use crate::mock;
use crate::routing::{Attempts, Next, Plan};
use crate::shard::{Counter, KeyTable, Shard, Snapshot};
use crate::upstream::{self, Body, Conn, ExchangeStats, Target};

/// A request as the pipeline sees it.
pub struct Request<'a> {
    pub head: &'a RequestHead,
    /// The buffer the head's ranges point into.
    pub buf: &'a [u8],
    pub body: &'a [u8],
    /// The dialect of the path it came in by: see [`front_door`].
    pub front: Dialect,
}

impl Request<'_> {
    /// The request target, path and query, as text (`""` when it is not
    /// UTF-8).
    pub fn target(&self) -> &str {
        std::str::from_utf8(&self.buf[self.head.target.clone()]).unwrap_or_default()
    }

    /// The value of `name` in the query string, as it was sent.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        let query = self.target().split_once('?')?.1;
        query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    }

    /// A query parameter holding unix seconds.
    pub fn query_unix(&self, name: &str) -> Result<Option<u64>, GatewayError> {
        self.query_param(name)
            .map(|text| {
                text.parse()
                    .map_err(|_| GatewayError::BadRequest(format!("`{name}` must be unix seconds, not `{text}`")))
            })
            .transpose()
    }

    /// The token of `Authorization: Bearer TOKEN`, trimmed.
    pub fn authorization_bearer(&self) -> Option<&[u8]> {
        self.header(&self.head.authorization)
            .and_then(|v| v.strip_prefix(b"Bearer ").or_else(|| v.strip_prefix(b"bearer ")))
            .map(<[u8]>::trim_ascii)
    }

    fn path(&self) -> &[u8] {
        let target = &self.buf[self.head.target.clone()];
        target.split(|&b| b == b'?').next().unwrap_or(target)
    }

    pub(crate) fn header(&self, range: &Option<std::ops::Range<usize>>) -> Option<&[u8]> {
        range.as_ref().map(|r| &self.buf[r.clone()])
    }

    /// An `anthropic-*` header to forward to an Anthropic provider: only
    /// from a client of Anthropic's front door, only when it has a value,
    /// and only when that value is safe to copy into a head.
    fn anthropic_header(&self, range: &Option<std::ops::Range<usize>>) -> Option<&[u8]> {
        if self.front != Dialect::Anthropic {
            return None;
        }
        self.header(range).filter(|v| !v.trim_ascii().is_empty() && codec::is_header_value_safe(v))
    }
}

/// The endpoints corelay serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Chat,
    /// Anthropic's front door.
    Messages,
    CountTokens,
    Embeddings,
    /// OpenAI's `/v1/images/generations`, relayed as it is.
    Images,
    /// OpenAI's `/v1/audio/speech`, relayed as it is.
    Speech,
    /// OpenAI's `/v1/audio/transcriptions` and `/translations`: forms.
    Transcriptions,
    Translations,
    Models,
    /// The caller's own usage.
    Usage,
    /// `/admin/...`, behind the admin token.
    Admin,
    Health,
    Metrics,
}

/// What a provider request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Chat,
    Embeddings,
    /// Anthropic's `/v1/messages`.
    Messages,
    CountTokens,
    /// Gemini's `generateContent` and Bedrock's `converse`: the path names
    /// the model and whether the answer streams.
    Generate,
    Images,
    Speech,
    /// Multipart forms, sent with the client's content type.
    Transcriptions,
    Translations,
}

impl Operation {
    /// What it is, for error messages.
    fn what(self) -> &'static str {
        match self {
            Operation::Images => "image generation",
            Operation::Speech => "speech",
            Operation::Transcriptions => "transcription",
            Operation::Translations => "audio translation",
            Operation::Embeddings => "embeddings",
            Operation::Chat | Operation::Messages | Operation::Generate => "chat",
            Operation::CountTokens => "token counting",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Operation::Chat => "/chat/completions",
            Operation::Embeddings => "/embeddings",
            Operation::Messages => "/v1/messages",
            Operation::CountTokens => "/v1/messages/count_tokens",
            Operation::Generate => "",
            Operation::Images => "/images/generations",
            Operation::Speech => "/audio/speech",
            Operation::Transcriptions => "/audio/transcriptions",
            Operation::Translations => "/audio/translations",
        }
    }
}

/// The dialect a request path speaks, which is the dialect its errors are
/// written in: Anthropic's under `/v1/messages`, OpenAI's everywhere else.
pub fn front_door(target: &[u8]) -> Dialect {
    if target.starts_with(b"/v1/messages") { Dialect::Anthropic } else { Dialect::OpenAi }
}

/// The wire format a provider kind speaks.
fn provider_dialect(kind: &ProviderKind) -> Wire {
    match kind {
        ProviderKind::Anthropic { .. } => Wire::Anthropic,
        ProviderKind::Gemini { .. } => Wire::Gemini,
        ProviderKind::Bedrock { .. } => Wire::Bedrock,
        ProviderKind::OpenAi { .. } | ProviderKind::Azure { .. } | ProviderKind::Ollama { .. } | ProviderKind::Mock => {
            Wire::OpenAi
        }
    }
}

/// A front door's dialect as a wire format.
fn translate_dialect(d: Dialect) -> Wire {
    match d {
        Dialect::OpenAi => translate::stream::Dialect::OpenAi,
        Dialect::Anthropic => translate::stream::Dialect::Anthropic,
    }
}

/// Handles one request, answering through `responder`. An `Err` that comes
/// back is answered by the connection loop, through [`crate::error::rescue`].
pub async fn handle(
    shard: &Rc<Shard>,
    snapshot: &Rc<Snapshot>,
    request: &Request<'_>,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    #[cfg(feature = "fault-injection")]
    if request.header(&request.head.fault) == Some(b"panic") {
        panic!("fault injection: panic requested by the test");
    }
    let endpoint = route(request)?;
    if endpoint == Route::Health {
        return ignore_io(responder.json(200, b"{\"status\":\"ok\"}").await);
    }
    if endpoint == Route::Admin {
        return crate::admin::handle(shard, snapshot, request, responder).await;
    }
    let keys = shard.keys();
    let key = authenticate(&keys, request)?;
    match endpoint {
        Route::Chat => chat(shard, snapshot, request, key, Dialect::OpenAi, responder, scratch).await,
        Route::Messages => chat(shard, snapshot, request, key, Dialect::Anthropic, responder, scratch).await,
        Route::CountTokens => count_tokens(shard, snapshot, request, key, responder, scratch).await,
        Route::Embeddings => embeddings(shard, snapshot, request, key, responder, scratch).await,
        Route::Images => relayed(shard, snapshot, request, key, Operation::Images, responder, scratch).await,
        Route::Speech => relayed(shard, snapshot, request, key, Operation::Speech, responder, scratch).await,
        Route::Transcriptions => {
            relayed(shard, snapshot, request, key, Operation::Transcriptions, responder, scratch).await
        }
        Route::Translations => {
            relayed(shard, snapshot, request, key, Operation::Translations, responder, scratch).await
        }
        Route::Models => ignore_io(responder.json(200, &models_body(snapshot, key)).await),
        Route::Usage => usage(shard, request, key, responder).await,
        Route::Metrics => {
            let body = metrics_body(shard);
            ignore_io(responder.send(200, b"text/plain; version=0.0.4", &[], body.as_bytes()).await)
        }
        Route::Health | Route::Admin => unreachable!("answered above"),
    }
}

/// A write error means the client went away: nothing left to answer.
fn ignore_io(_: std::io::Result<()>) -> Result<(), GatewayError> {
    Ok(())
}

// Phase 2 ----------------------------------------------------------------

fn route(request: &Request<'_>) -> Result<Route, GatewayError> {
    let path = request.path();
    if path.starts_with(b"/admin/") {
        // The admin module checks its own methods.
        return Ok(Route::Admin);
    }
    let (endpoint, method) = match path {
        b"/v1/chat/completions" | b"/chat/completions" => (Route::Chat, Method::Post),
        b"/v1/messages" => (Route::Messages, Method::Post),
        b"/v1/messages/count_tokens" => (Route::CountTokens, Method::Post),
        b"/v1/embeddings" | b"/embeddings" => (Route::Embeddings, Method::Post),
        b"/v1/images/generations" | b"/images/generations" => (Route::Images, Method::Post),
        b"/v1/audio/speech" | b"/audio/speech" => (Route::Speech, Method::Post),
        b"/v1/audio/transcriptions" | b"/audio/transcriptions" => (Route::Transcriptions, Method::Post),
        b"/v1/audio/translations" | b"/audio/translations" => (Route::Translations, Method::Post),
        b"/v1/models" | b"/models" => (Route::Models, Method::Get),
        b"/v1/usage" => (Route::Usage, Method::Get),
        b"/health" => (Route::Health, Method::Get),
        b"/metrics" => (Route::Metrics, Method::Get),
        _ => return Err(GatewayError::RouteNotFound(String::from_utf8_lossy(path).into_owned())),
    };
    if request.head.method != method {
        let name = match request.head.method {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Other => "this method",
        };
        let allow = if method == Method::Get { "GET" } else { "POST" };
        let path = String::from_utf8_lossy(path).into_owned();
        return Err(GatewayError::MethodNotAllowed { method: name, path, allow });
    }
    Ok(endpoint)
}

// Phase 3 ----------------------------------------------------------------

/// The index of the caller's key, or `None` when auth is off.
fn authenticate<'k>(keys: &'k KeyTable, request: &Request<'_>) -> Result<Option<&'k Key>, GatewayError> {
    if !keys.auth_required() {
        return Ok(None);
    }
    let presented = request
        .authorization_bearer()
        .or_else(|| request.header(&request.head.x_api_key))
        .or_else(|| request.header(&request.head.x_goog_api_key))
        .map(<[u8]>::trim_ascii);
    let Some(secret) = presented.filter(|s| !s.is_empty()) else {
        return Err(GatewayError::Unauthorized(
            "Missing API key: send it as `Authorization: Bearer <key>`, `x-api-key` or `x-goog-api-key`.".into(),
        ));
    };
    // Only the digest is looked up: the table holds no secret to time.
    let digest = crate::config::key_digest(secret);
    let Some(key) = keys.find(&digest) else {
        return Err(GatewayError::Unauthorized("Incorrect API key provided.".into()));
    };
    if key.expires_at.is_some_and(|at| crate::limits::unix_seconds() >= at) {
        return Err(GatewayError::Unauthorized(format!("This API key (`{}`) has expired.", key.name)));
    }
    Ok(Some(key))
}

// Phases 4-6 --------------------------------------------------------------

/// One attempt of a request: the deployment that serves it this time.
struct Resolved<'s> {
    deployment_index: usize,
    deployment: &'s Deployment,
    /// The model name the provider must see, when it differs from the one
    /// the client sent.
    rename: Option<&'s str>,
    /// The model name the provider sees.
    upstream_model: &'s str,
    /// Which attempt of the request this is, from 1, as decimal digits
    /// (`x-corelay-attempts`), without an allocation.
    attempt: ([u8; 10], u8),
    /// Where the answer's tokens are charged: the key's token limit.
    charge: Option<TokenCharge>,
    /// The caller's key, for the usage ledger.
    key: Option<&'s Key>,
    /// The served model this attempt answers for (the requested one or a
    /// fallback), as the ledger records it.
    model: &'s str,
    /// The provider failed after the answer had started reaching the client
    /// (told to it inside the stream): the attempt is over, and a failure
    /// for the breaker.
    failed_late: std::cell::Cell<bool>,
}

/// A key's token limits (key-wide and for the model), charged once an
/// answer's usage is known: (limit id, tokens per minute).
#[derive(Debug, Clone, Copy, Default)]
struct TokenCharge {
    limits: [Option<(u64, u64)>; 2],
}

/// Phase 4b: admits a request against its key's limits, on the shard's
/// leases (see [`crate::limits`]): the key's own `rpm` and `tpm`, then its
/// limits for the model (by the name the client used, else the model it
/// resolved to). Tokens are checked here and charged when the answer's
/// usage is known.
async fn admit_key(
    shard: &Shard,
    key: Option<&Key>,
    asked: &str,
    served: &str,
) -> Result<Option<TokenCharge>, GatewayError> {
    use store::quota::Measure;
    let Some(key) = key else { return Ok(None) };
    if key.budget.is_some() && shard.is_exhausted(key.limit_id()) {
        return Err(GatewayError::BudgetExceeded { key: key.name.clone() });
    }
    let for_model =
        key.model_limits.get(asked).map(|l| (asked, l)).or_else(|| key.model_limits.get(served).map(|l| (served, l)));
    let mut limits = [(key.limit_id(), key.rpm, key.tpm), (0, None, None)];
    if let Some((name, &(rpm, tpm))) = for_model {
        limits[1] = (key.model_limit_id(name), rpm, tpm);
    }
    let refused = |r: crate::limits::Refused| GatewayError::RateLimited {
        tokens: r.measure == Measure::Tokens,
        limit: r.limit,
        retry_after: r.retry_after,
    };
    // Tokens are only checked (nothing is taken), so they go first: a
    // request refused for tokens spends no request unit.
    for &(id, _, tpm) in &limits {
        if let Some(tpm) = tpm {
            crate::limits::admit(shard, id, Measure::Tokens, tpm, 0).await.map_err(refused)?;
        }
    }
    let window = crate::limits::current_window();
    for (i, &(id, rpm, _)) in limits.iter().enumerate() {
        if let Some(rpm) = rpm
            && let Err(r) = crate::limits::admit(shard, id, Measure::Requests, rpm, 1).await
        {
            // The units the earlier limits took go back: this request is
            // not admitted.
            for &(taken, earlier, _) in &limits[..i] {
                if earlier.is_some() {
                    shard.leases.refund(&store::quota::CounterId { key: taken, measure: Measure::Requests }, window, 1);
                }
            }
            return Err(refused(r));
        }
    }
    let charge = TokenCharge { limits: limits.map(|(id, _, tpm)| tpm.map(|t| (id, t))) };
    Ok(charge.limits.iter().any(Option::is_some).then_some(charge))
}

impl Resolved<'_> {
    fn provider(&self) -> &str {
        &self.deployment.name
    }

    /// `x-corelay-provider` and `x-corelay-attempts`.
    fn headers(&self) -> [Header<'_>; 2] {
        let (digits, len) = &self.attempt;
        [
            (b"x-corelay-provider", self.deployment.name.as_bytes()),
            (b"x-corelay-attempts", &digits[..usize::from(*len)]),
        ]
    }
}

/// The served model a request's `model` stands for (an alias followed),
/// once the caller's key may use it.
fn authorize<'s>(snapshot: &'s Snapshot, key: Option<&Key>, model: &str) -> Result<&'s str, GatewayError> {
    let config = &snapshot.config;
    let target = match config.aliases.get(model) {
        Some(target) => target.as_str(),
        None => match config.routes.get_key_value(model) {
            Some((name, _)) => name.as_str(),
            None => return Err(GatewayError::ModelNotFound(model.to_owned())),
        },
    };
    if let Some(k) = key {
        let allow = &k.models;
        if !allow.allows(model) && !allow.allows(target) {
            return Err(GatewayError::Forbidden(format!("This key is not allowed to use the model `{model}`.")));
        }
    }
    Ok(target)
}

/// The attempts of a request for `model` (a served model), in plan order.
fn attempts_for<'s>(snapshot: &'s Snapshot, model: &'s str) -> Attempts<'s> {
    let plan = Plan::new(&snapshot.config, model, |n| fastrand::u64(0..n));
    Attempts::new(plan, Instant::now(), &snapshot.config.routing)
}

/// Waits out the backoff before the next attempt and says where it goes;
/// `None` when no attempt is left.
async fn next_attempt<'s>(
    shard: &Shard,
    snapshot: &'s Snapshot,
    attempts: &mut Attempts<'s>,
    client_model: &str,
    charge: Option<TokenCharge>,
    key: Option<&'s Key>,
) -> Option<Resolved<'s>> {
    let config = &snapshot.config;
    let now = Instant::now();
    let admit = |d| shard.breakers.admit(snapshot.generation, d, now, &config.routing);
    let Next::Go { candidate, wait, .. } = attempts.next(config, admit, now, &mut |n| fastrand::u64(0..n)) else {
        return None;
    };
    if attempts.total > 1 {
        shard.count(Counter::UpstreamRetries, 1);
    }
    if !wait.is_zero() {
        monoio::time::sleep(wait).await;
    }
    let deployment = &config.deployments[candidate.deployment];
    let upstream_model = deployment.upstream_model(candidate.model);
    Some(Resolved {
        deployment_index: candidate.deployment,
        deployment,
        rename: (upstream_model != client_model).then_some(upstream_model),
        upstream_model,
        attempt: {
            let mut digits = [0u8; 10];
            let mut buffer = itoa::Buffer::new();
            let text = buffer.format(attempts.total).as_bytes();
            digits[..text.len()].copy_from_slice(text);
            (digits, text.len() as u8)
        },
        charge,
        key,
        model: candidate.model,
        failed_late: std::cell::Cell::new(false),
    })
}

/// Settles one attempt: its deployment's breaker learns how it went, and
/// the request either ends (`Some`) or goes on to its next attempt. An
/// attempt's error reaches here only while nothing was sent to the client.
fn settle(
    shard: &Shard,
    snapshot: &Snapshot,
    resolved: &Resolved<'_>,
    outcome: Result<(), GatewayError>,
    attempts: &mut Attempts<'_>,
) -> Option<Result<(), GatewayError>> {
    match outcome {
        Ok(()) if resolved.failed_late.get() => {
            breaker_failure(shard, snapshot, resolved);
            Some(Ok(()))
        }
        Ok(()) => {
            breaker_success(shard, snapshot, resolved);
            Some(Ok(()))
        }
        // A refusal of corelay's credentials: the provider is up but useless
        // with this key, and nothing can be sent to it until its config is
        // fixed.
        Err(e @ GatewayError::ProviderAuth { .. }) => {
            breaker_failure(shard, snapshot, resolved);
            Some(Err(e))
        }
        Err(e) if e.retryable() => {
            // Throttling says nothing about the provider's health (its
            // Retry-After paces the retries); everything else here does.
            if !e.is_rate_limit() {
                breaker_failure(shard, snapshot, resolved);
            }
            let retry_after = e.retry_after();
            attempts.failed(e, retry_after);
            None
        }
        // The provider answered: it is up, and the answer is final (a
        // refused request, or corelay's own 4xx before anything was sent).
        Err(e) => {
            if e.source_kind() == crate::error::Source::Provider {
                breaker_success(shard, snapshot, resolved);
            }
            Some(Err(e))
        }
    }
}

fn breaker_success(shard: &Shard, snapshot: &Snapshot, resolved: &Resolved<'_>) {
    if let Some(verdict) = shard.breakers.succeeded(snapshot.generation, resolved.deployment_index) {
        shard.share_verdict(snapshot.generation, resolved.deployment_index, verdict);
    }
}

fn breaker_failure(shard: &Shard, snapshot: &Snapshot, resolved: &Resolved<'_>) {
    let now = Instant::now();
    let index = resolved.deployment_index;
    if let Some(verdict) = shard.breakers.failed(snapshot.generation, index, now, &snapshot.config.routing) {
        shard.count(Counter::BreakerOpens, 1);
        shard.share_verdict(snapshot.generation, index, verdict);
    }
}

// Chat ---------------------------------------------------------------------

/// A chat request through either front door: `front` is the client's
/// dialect. Same dialect on both sides: the client's bytes go through.
/// Otherwise: translated both ways.
async fn chat(
    shard: &Rc<Shard>,
    snapshot: &Rc<Snapshot>,
    request: &Request<'_>,
    key: Option<&Key>,
    front: Dialect,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    // `model` and `stream` have the same names in both dialects.
    let peek = openai::peek_chat(request.body).map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    let model = authorize(snapshot, key, &peek.model)?;
    if peek.stream {
        shard.count(Counter::Streams, 1);
    }
    let charge = admit_key(shard, key, &peek.model, model).await?;
    let cached = if peek.stream {
        FromCache::Off
    } else {
        let endpoint = if front == Dialect::Anthropic { cache::Endpoint::Messages } else { cache::Endpoint::Chat };
        from_cache(shard, snapshot, request, endpoint, model, key, responder).await
    };
    if cached == FromCache::Hit {
        return Ok(());
    }
    let mut attempts = attempts_for(snapshot, model);
    let (done, own) = loop {
        let Some(resolved) = next_attempt(shard, snapshot, &mut attempts, &peek.model, charge, key).await else {
            break (Err(attempts.exhausted(&peek.model)), false);
        };
        let outcome = chat_attempt(shard, snapshot, request, &peek, &resolved, front, responder, scratch).await;
        if let Some(done) = settle(shard, snapshot, &resolved, outcome, &mut attempts) {
            break (done, resolved.model == model);
        }
    };
    keep(shard, snapshot, &cached, own, responder);
    done
}

/// What the response cache did for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FromCache {
    /// It stays out of this request.
    Off,
    /// It answered.
    Hit,
    /// It had no answer; the plan says whether the provider's is kept.
    Miss(cache::Plan),
}

/// Answers from the shard's response cache when it keeps this request's
/// answer; otherwise marks the responder so the answer can be kept.
async fn from_cache(
    shard: &Shard,
    snapshot: &Snapshot,
    request: &Request<'_>,
    endpoint: cache::Endpoint,
    served: &str,
    key: Option<&Key>,
    responder: &mut Responder<'_>,
) -> FromCache {
    let Some(settings) = &snapshot.config.cache else { return FromCache::Off };
    let deterministic = || cache::is_deterministic(request.body);
    let Some(plan) = cache::plan(settings, request, endpoint, served, key, deterministic) else {
        return FromCache::Off;
    };
    let now = cache::now_ms();
    if plan.lookup {
        let hit = shard.cache().as_mut().and_then(|c| c.get(&plan.key, now));
        if let Some(hit) = hit {
            shard.count(Counter::CacheHits, 1);
            // A request of the key's, with no tokens: no provider was paid.
            shard.record_usage(key, served, &translate::Usage::default());
            let _ = cache::answer(responder, &hit, now).await;
            return FromCache::Hit;
        }
    }
    shard.count(Counter::CacheMisses, 1);
    responder.cache_status = Some(b"miss");
    responder.capture = plan.store.then_some(settings.limits.entry_bytes_max);
    FromCache::Miss(plan)
}

/// Keeps the answer a request got (a whole 200), when its plan says so, in
/// every shard's cache; `own` says the served model's own deployments
/// answered (a fallback model's answer is not the model's).
fn keep(shard: &Shard, snapshot: &Snapshot, cached: &FromCache, own: bool, responder: &mut Responder<'_>) {
    let FromCache::Miss(plan) = cached else { return };
    let Some((content_type, body)) = responder.captured.take() else { return };
    if plan.store && own {
        let entry = store::Cached {
            content_type: content_type.into_boxed_slice(),
            body: body.into_boxed_slice(),
            stored_ms: cache::now_ms(),
        };
        shard.keep_answer(snapshot.generation, plan.epoch, plan.key, entry);
    }
}

/// One attempt of a chat request, on one deployment. An error comes back
/// only while nothing was sent to the client, so that another attempt can
/// still answer it.
#[allow(clippy::too_many_arguments)]
async fn chat_attempt(
    shard: &Rc<Shard>,
    snapshot: &Rc<Snapshot>,
    request: &Request<'_>,
    peek: &ChatPeek<'_>,
    resolved: &Resolved<'_>,
    front: Dialect,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let endpoint = match &resolved.deployment.kind {
        ProviderKind::Mock if front == Dialect::OpenAi => {
            let usage = mock::chat(responder, peek, resolved.upstream_model).await;
            account(shard, resolved, usage);
            return Ok(());
        }
        ProviderKind::Mock => return mock_translated(shard, request, resolved, front, responder, scratch).await,
        kind => kind.endpoint().expect("non-mock kinds have an endpoint"),
    };
    if provider_dialect(&resolved.deployment.kind) != translate_dialect(front) {
        return translated(shard, snapshot, request, resolved, endpoint, front, responder, scratch).await;
    }
    // Usage must be counted, so an OpenAI stream asks for it; the usage
    // chunk is then hidden from a client that did not ask for it itself.
    // Anthropic streams always carry usage.
    let want_usage =
        front == Dialect::OpenAi && peek.stream && !peek.include_usage && injects_usage(&resolved.deployment.kind);
    // Ollama's /v1 reads only `max_tokens`.
    let max_tokens_name = matches!(resolved.deployment.kind, ProviderKind::Ollama { .. });
    let splice = openai::Splice { model: resolved.rename, include_usage: want_usage, max_tokens_name };
    let body = splice_body(request.body, peek, splice, &mut scratch.body);
    let operation = if front == Dialect::Anthropic { Operation::Messages } else { Operation::Chat };
    let call = Call { deployment: resolved.deployment, endpoint, operation, model: resolved.upstream_model };
    build_request(&mut scratch.request, call, request, peek.stream, body);
    let (conn, head) = send(shard, snapshot, resolved, endpoint, scratch).await?;
    if head.status >= 300 {
        return Err(upstream_error(shard, resolved, conn, &head, scratch).await);
    }
    if peek.stream && is_event_stream(&conn, &head) {
        let usage =
            if front == Dialect::Anthropic { StreamUsage::Anthropic } else { StreamUsage::OpenAi { hide: want_usage } };
        return forward_stream(shard, resolved, conn, head, usage, responder, scratch).await;
    }
    forward_whole(shard, resolved, conn, head, front, responder, scratch).await
}

/// How a translated request is written for a deployment's kind.
fn target_of(kind: &ProviderKind, model: &str) -> translate::Target {
    use translate::openai::request::Flavor;
    match kind {
        ProviderKind::Anthropic { max_tokens_default, .. } => {
            translate::Target::Anthropic(translate::anthropic::request::Options {
                max_tokens_default: *max_tokens_default,
            })
        }
        ProviderKind::Ollama { .. } => {
            translate::Target::OpenAi(Flavor { max_completion_tokens: false, stream_usage: true })
        }
        ProviderKind::Gemini { .. } => {
            use translate::gemini::request::{Options, Thinking};
            // Gemini 3 takes a thinking level; earlier models a budget.
            let thinking = if model.contains("gemini-3") { Thinking::Level } else { Thinking::Budget };
            translate::Target::Gemini(Options { thinking })
        }
        ProviderKind::Bedrock { max_tokens_default, .. } => {
            translate::Target::Bedrock(translate::bedrock::request::Options { max_tokens_default: *max_tokens_default })
        }
        ProviderKind::Azure { style: AzureStyle::Deployments { .. }, .. } => {
            translate::Target::OpenAi(Flavor { max_completion_tokens: true, stream_usage: false })
        }
        _ => translate::Target::OpenAi(Flavor { max_completion_tokens: true, stream_usage: true }),
    }
}

/// An id for an answer the provider did not name, unique enough to find
/// in logs.
fn answer_id(front: Dialect) -> String {
    let prefix = if front == Dialect::Anthropic { "msg_corelay_" } else { "chatcmpl-corelay-" };
    format!("{prefix}{:016x}", fastrand::u64(..))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Translates the request, sends it, and translates the answer back.
#[allow(clippy::too_many_arguments)]
async fn translated(
    shard: &Rc<Shard>,
    snapshot: &Rc<Snapshot>,
    request: &Request<'_>,
    resolved: &Resolved<'_>,
    endpoint: &Endpoint,
    front: Dialect,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let canon = translate::parse_request(translate_dialect(front), request.body).map_err(GatewayError::Translate)?;
    let stream = canon.stream;
    let include_usage = canon.include_usage;
    scratch.body.clear();
    let written = translate::write_request(
        &canon,
        target_of(&resolved.deployment.kind, resolved.upstream_model),
        resolved.upstream_model,
        &mut scratch.body,
    )
    .map_err(GatewayError::Translate)?;
    drop(canon);
    let dialect = provider_dialect(&resolved.deployment.kind);
    let operation = match dialect {
        Wire::Anthropic => Operation::Messages,
        Wire::OpenAi => Operation::Chat,
        Wire::Gemini | Wire::Bedrock => Operation::Generate,
    };
    let call = Call { deployment: resolved.deployment, endpoint, operation, model: resolved.upstream_model };
    build_request(&mut scratch.request, call, request, stream, &scratch.body);
    let (conn, head) = send(shard, snapshot, resolved, endpoint, scratch).await?;
    if head.status >= 300 {
        return Err(provider_error(shard, resolved, dialect, conn, &head, scratch).await);
    }
    let id = answer_id(front);
    let model = resolved.upstream_model;
    if stream && (is_event_stream(&conn, &head) || dialect == Wire::Bedrock) {
        let cx = translate::stream::Context {
            id,
            model: model.to_owned(),
            created: unix_now(),
            include_usage,
            json_tool: written.json_tool,
        };
        let translator = translate::stream::Translator::new(dialect, translate_dialect(front), cx);
        return translate_stream(shard, resolved, conn, head, translator, responder, scratch).await;
    }
    // The provider's rate-limit headers reach the client whatever dialect.
    let forwarded = owned_forward(&conn, &head);
    read_whole(shard, resolved, conn, &head, scratch).await?;
    let cx = translate::ResponseContext { id: &id, model, created: unix_now(), written };
    let mut out = Vec::with_capacity(scratch.body.len() + 256);
    let usage = translate::translate_response(dialect, &scratch.body, translate_dialect(front), cx, &mut out)
        .map_err(GatewayError::Translate)?;
    let mut headers: Vec<Header<'_>> = resolved.headers().to_vec();
    headers.extend(forwarded.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
    let sent = responder.send(200, b"application/json", &headers, &out).await;
    account(shard, resolved, usage);
    ignore_io(sent)
}

/// The headers of a provider's answer that go to the client (rate limits,
/// request ids), copied out of the connection's buffer.
fn owned_forward(conn: &Conn, head: &ResponseHead) -> Vec<(Vec<u8>, Vec<u8>)> {
    head.forward
        .iter()
        .map(|(n, v)| (conn.head_bytes(n.clone()).to_vec(), conn.head_bytes(v.clone()).to_vec()))
        .collect()
}

/// The `mock` kind behind the Anthropic front door: the mock's OpenAI
/// answer, translated like any OpenAI-dialect provider's.
async fn mock_translated(
    shard: &Rc<Shard>,
    request: &Request<'_>,
    resolved: &Resolved<'_>,
    front: Dialect,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let canon = translate::parse_request(translate_dialect(front), request.body).map_err(GatewayError::Translate)?;
    let stream = canon.stream;
    scratch.body.clear();
    let usage = mock::answer(stream, true, resolved.upstream_model, &mut scratch.body);
    let id = answer_id(front);
    let mut out = Vec::with_capacity(scratch.body.len() * 2);
    if stream {
        let cx = translate::stream::Context {
            id,
            model: resolved.upstream_model.to_owned(),
            created: unix_now(),
            include_usage: canon.include_usage,
            json_tool: false,
        };
        let mut translator =
            translate::stream::Translator::new(translate::stream::Dialect::OpenAi, translate_dialect(front), cx);
        translator.feed(&scratch.body, &mut out);
        if responder.start_stream(200, b"text/event-stream", &[]).await.is_ok() && responder.stream(&out).await.is_ok()
        {
            let _ = responder.end_stream().await;
        }
    } else {
        let cx = translate::ResponseContext {
            id: &id,
            model: resolved.upstream_model,
            created: unix_now(),
            written: translate::Written::default(),
        };
        translate::translate_response(
            translate::stream::Dialect::OpenAi,
            &scratch.body,
            translate_dialect(front),
            cx,
            &mut out,
        )
        .map_err(GatewayError::Translate)?;
        let _ = responder.json(200, &out).await;
    }
    account(shard, resolved, Some(usage));
    Ok(())
}

/// `POST /v1/messages/count_tokens`: passed to an Anthropic deployment,
/// translated for Gemini and Bedrock; the other kinds have no such endpoint.
async fn count_tokens(
    shard: &Rc<Shard>,
    snapshot: &Rc<Snapshot>,
    request: &Request<'_>,
    key: Option<&Key>,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let peek = openai::peek_chat(request.body).map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    let model = authorize(snapshot, key, &peek.model)?;
    let charge = admit_key(shard, key, &peek.model, model).await?;
    let mut attempts = attempts_for(snapshot, model);
    while let Some(resolved) = next_attempt(shard, snapshot, &mut attempts, &peek.model, charge, key).await {
        let outcome = match &resolved.deployment.kind {
            ProviderKind::Anthropic { endpoint, .. } => {
                let operation = Operation::CountTokens;
                pass_through_whole(shard, snapshot, request, &peek, &resolved, endpoint, operation, responder, scratch)
                    .await
            }
            ProviderKind::Gemini { endpoint, .. } | ProviderKind::Bedrock { endpoint, .. } => {
                translated_count_tokens(shard, snapshot, request, &resolved, endpoint, responder, scratch).await
            }
            _ => Err(GatewayError::BadRequest(format!(
                "count_tokens is available for Anthropic, Gemini and Bedrock providers; `{}` is served by `{}`",
                peek.model, resolved.deployment.name
            ))),
        };
        if let Some(done) = settle(shard, snapshot, &resolved, outcome, &mut attempts) {
            return done;
        }
    }
    Err(attempts.exhausted(&peek.model))
}

/// Reads the count out of a provider's token-count answer.
type CountReader = fn(&[u8]) -> Option<u64>;

/// `count_tokens` for a Gemini or Bedrock deployment: the Messages body
/// translated and wrapped for Gemini's `countTokens` or Bedrock's
/// `CountTokens`, their `totalTokens` or `inputTokens` answered as
/// Anthropic's `input_tokens`.
async fn translated_count_tokens(
    shard: &Rc<Shard>,
    snapshot: &Rc<Snapshot>,
    request: &Request<'_>,
    resolved: &Resolved<'_>,
    endpoint: &Endpoint,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let canon = translate::anthropic::request::parse_count_tokens(request.body).map_err(GatewayError::Translate)?;
    let model = resolved.upstream_model;
    scratch.body.clear();
    let (wire, tokens): (Wire, CountReader) = match target_of(&resolved.deployment.kind, model) {
        translate::Target::Gemini(options) => {
            translate::gemini::write_count_tokens(&canon, options, model, &mut scratch.body)
                .map_err(GatewayError::Translate)?;
            (Wire::Gemini, translate::gemini::total_tokens)
        }
        translate::Target::Bedrock(options) => {
            translate::bedrock::request::write_count_tokens(&canon, options, &mut scratch.body)
                .map_err(GatewayError::Translate)?;
            (Wire::Bedrock, translate::bedrock::input_tokens)
        }
        _ => return Err(GatewayError::Internal("count_tokens translated for a kind without it".into())),
    };
    drop(canon);
    let call = Call { deployment: resolved.deployment, endpoint, operation: Operation::CountTokens, model };
    build_request(&mut scratch.request, call, request, false, &scratch.body);
    let (conn, head) = send(shard, snapshot, resolved, endpoint, scratch).await?;
    if head.status >= 300 {
        return Err(provider_error(shard, resolved, wire, conn, &head, scratch).await);
    }
    read_whole(shard, resolved, conn, &head, scratch).await?;
    let tokens = tokens(&scratch.body).ok_or_else(|| {
        GatewayError::Translate(translate::error::Error::Provider("the token count answer holds no count".into()))
    })?;
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(b"{\"input_tokens\":");
    out.extend_from_slice(itoa::Buffer::new().format(tokens).as_bytes());
    out.push(b'}');
    ignore_io(responder.send(200, b"application/json", &resolved.headers(), &out).await)
}

/// Whether corelay asks this kind of provider for streamed usage. Azure's
/// dated API versions predate `stream_options`, so they are left alone.
fn injects_usage(kind: &ProviderKind) -> bool {
    !matches!(kind, ProviderKind::Azure { style: AzureStyle::Deployments { .. }, .. })
}

/// The body to send: the client's own bytes when nothing must change.
fn splice_body<'b>(body: &'b [u8], peek: &ChatPeek<'_>, splice: openai::Splice<'_>, out: &'b mut Vec<u8>) -> &'b [u8] {
    if !splice.changes(peek) {
        return body;
    }
    out.clear();
    openai::splice_chat(body, peek, splice, out);
    out
}

// Embeddings -----------------------------------------------------------------

async fn embeddings(
    shard: &Rc<Shard>,
    snapshot: &Rc<Snapshot>,
    request: &Request<'_>,
    key: Option<&Key>,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let peek = openai::peek_chat(request.body).map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    if peek.stream {
        return Err(GatewayError::BadRequest("embeddings cannot be streamed".into()));
    }
    let model = authorize(snapshot, key, &peek.model)?;
    let charge = admit_key(shard, key, &peek.model, model).await?;
    let cached = from_cache(shard, snapshot, request, cache::Endpoint::Embeddings, model, key, responder).await;
    if cached == FromCache::Hit {
        return Ok(());
    }
    let mut attempts = attempts_for(snapshot, model);
    let (done, own) = loop {
        let Some(resolved) = next_attempt(shard, snapshot, &mut attempts, &peek.model, charge, key).await else {
            break (Err(attempts.exhausted(&peek.model)), false);
        };
        let outcome = embeddings_attempt(shard, snapshot, request, &peek, &resolved, responder, scratch).await;
        if let Some(done) = settle(shard, snapshot, &resolved, outcome, &mut attempts) {
            break (done, resolved.model == model);
        }
    };
    keep(shard, snapshot, &cached, own, responder);
    done
}

/// Image generation, speech, transcription and audio translation: OpenAI's
/// endpoints, relayed as they are to the deployments that speak OpenAI's
/// dialect (OpenAI, Azure, compatible servers), with only the model name of
/// an alias replaced: in the JSON body, or in the form's `model` field (the
/// file part untouched). Keys, model access, rate limits, retries,
/// fallbacks and usage apply as for chat; the answer (an image list, audio
/// bytes, a transcript, each in its own content type) goes back whole. No
/// other dialect has these endpoints: 400.
#[allow(clippy::too_many_arguments)]
async fn relayed(
    shard: &Rc<Shard>,
    snapshot: &Rc<Snapshot>,
    request: &Request<'_>,
    key: Option<&Key>,
    operation: Operation,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let upload = match operation {
        Operation::Transcriptions | Operation::Translations => form_upload(request, operation)?,
        _ => json_upload(request, operation)?,
    };
    let asked = upload.model();
    let served = authorize(snapshot, key, asked)?;
    let charge = admit_key(shard, key, asked, served).await?;
    let mut attempts = attempts_for(snapshot, served);
    while let Some(resolved) = next_attempt(shard, snapshot, &mut attempts, asked, charge, key).await {
        let outcome =
            relayed_attempt(shard, snapshot, request, &upload, &resolved, operation, responder, scratch).await;
        if let Some(done) = settle(shard, snapshot, &resolved, outcome, &mut attempts) {
            return done;
        }
    }
    Err(attempts.exhausted(asked))
}

/// A relayed request's body, as far as the model is concerned.
enum Upload<'r> {
    /// A JSON body, its `model` peeked.
    Json(ChatPeek<'r>),
    /// A form, with its `model` field's value and where it lies.
    Form { model: &'r str, range: std::ops::Range<usize> },
}

impl Upload<'_> {
    fn model(&self) -> &str {
        match self {
            Upload::Json(peek) => &peek.model,
            Upload::Form { model, .. } => model,
        }
    }
}

fn json_upload<'r>(request: &Request<'r>, operation: Operation) -> Result<Upload<'r>, GatewayError> {
    let peek = openai::peek_chat(request.body).map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    if peek.stream {
        return Err(GatewayError::BadRequest(format!("{} cannot be streamed through corelay", operation.what())));
    }
    Ok(Upload::Json(peek))
}

/// A `multipart/form-data` body with exactly one `model` field (and at most
/// one `stream`, not true): a provider must not read another field than the
/// one checked here.
fn form_upload<'r>(request: &Request<'r>, operation: Operation) -> Result<Upload<'r>, GatewayError> {
    let form = || GatewayError::BadRequest(format!("{} takes a multipart/form-data body", operation.what()));
    let content_type = request.header(&request.head.content_type).ok_or_else(form)?;
    let boundary = translate::multipart::boundary(content_type)
        .filter(|_| codec::is_header_value_safe(content_type))
        .ok_or_else(form)?;
    let body = request.body;
    let parts = translate::multipart::parts(body, &boundary)
        .ok_or_else(|| GatewayError::BadRequest("the multipart/form-data body is malformed".into()))?;
    let one = |name: &str| -> Result<Option<(&'r str, std::ops::Range<usize>)>, GatewayError> {
        let mut found = parts.iter().filter(|p| p.name == name);
        let (first, second) = (found.next(), found.next());
        if second.is_some() {
            return Err(GatewayError::BadRequest(format!("the form has more than one `{name}` field")));
        }
        first
            .map(|p| match std::str::from_utf8(&body[p.value.clone()]) {
                Ok(value) => Ok((value, p.value.clone())),
                Err(_) => Err(GatewayError::BadRequest(format!("the form's `{name}` is not UTF-8"))),
            })
            .transpose()
    };
    let (model, range) =
        one("model")?.ok_or_else(|| GatewayError::BadRequest("the form has no `model` field".into()))?;
    if one("stream")?.is_some_and(|(value, _)| value.trim().eq_ignore_ascii_case("true")) {
        return Err(GatewayError::BadRequest(format!("{} cannot be streamed through corelay", operation.what())));
    }
    Ok(Upload::Form { model, range })
}

#[allow(clippy::too_many_arguments)]
async fn relayed_attempt(
    shard: &Rc<Shard>,
    snapshot: &Rc<Snapshot>,
    request: &Request<'_>,
    upload: &Upload<'_>,
    resolved: &Resolved<'_>,
    operation: Operation,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let kind = &resolved.deployment.kind;
    let Some(endpoint) = kind.endpoint().filter(|_| provider_dialect(kind) == Wire::OpenAi) else {
        return Err(GatewayError::BadRequest(format!(
            "`{}` is served by `{}`, which has no {} endpoint",
            upload.model(),
            resolved.deployment.name,
            operation.what()
        )));
    };
    let body = match (upload, resolved.rename) {
        (Upload::Json(peek), rename) => {
            let splice = openai::Splice { model: rename, ..Default::default() };
            splice_body(request.body, peek, splice, &mut scratch.body)
        }
        (Upload::Form { range, .. }, Some(name)) => {
            scratch.body.clear();
            scratch.body.extend_from_slice(&request.body[..range.start]);
            scratch.body.extend_from_slice(name.as_bytes());
            scratch.body.extend_from_slice(&request.body[range.end..]);
            &scratch.body[..]
        }
        (Upload::Form { .. }, None) => request.body,
    };
    let call = Call { deployment: resolved.deployment, endpoint, operation, model: resolved.upstream_model };
    build_request(&mut scratch.request, call, request, false, body);
    let (conn, head) = send(shard, snapshot, resolved, endpoint, scratch).await?;
    if head.status >= 300 {
        return Err(upstream_error(shard, resolved, conn, &head, scratch).await);
    }
    forward_whole(shard, resolved, conn, head, Dialect::OpenAi, responder, scratch).await?;
    // An answer with no usage in it (audio, a transcript as text) still
    // counts as a request, without tokens.
    if (200..300).contains(&responder.status) && openai::response_usage(&scratch.body).is_none() {
        shard.record_usage(resolved.key, resolved.model, &translate::Usage::default());
    }
    Ok(())
}

async fn embeddings_attempt(
    shard: &Rc<Shard>,
    snapshot: &Rc<Snapshot>,
    request: &Request<'_>,
    peek: &ChatPeek<'_>,
    resolved: &Resolved<'_>,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let endpoint = match &resolved.deployment.kind {
        ProviderKind::Mock => {
            let usage = mock::embeddings(responder, request.body, resolved.upstream_model).await?;
            account(shard, resolved, usage);
            return Ok(());
        }
        kind => kind.endpoint().expect("non-mock kinds have an endpoint"),
    };
    match provider_dialect(&resolved.deployment.kind) {
        Wire::OpenAi => {}
        wire @ (Wire::Gemini | Wire::Bedrock) => {
            return translated_embeddings(shard, snapshot, request, resolved, endpoint, wire, responder, scratch).await;
        }
        Wire::Anthropic => {
            return Err(GatewayError::BadRequest(format!(
                "`{}` is served by `{}`, which has no embeddings endpoint",
                peek.model, resolved.deployment.name
            )));
        }
    }
    pass_through_whole(shard, snapshot, request, peek, resolved, endpoint, Operation::Embeddings, responder, scratch)
        .await
}

/// A same-dialect request with a whole (non-streamed) answer: the client's
/// bytes with only an alias's model name spliced, the answer forwarded as
/// it came.
#[allow(clippy::too_many_arguments)]
async fn pass_through_whole(
    shard: &Rc<Shard>,
    snapshot: &Rc<Snapshot>,
    request: &Request<'_>,
    peek: &ChatPeek<'_>,
    resolved: &Resolved<'_>,
    endpoint: &Endpoint,
    operation: Operation,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let splice = openai::Splice { model: resolved.rename, ..Default::default() };
    let body = splice_body(request.body, peek, splice, &mut scratch.body);
    let call = Call { deployment: resolved.deployment, endpoint, operation, model: resolved.upstream_model };
    build_request(&mut scratch.request, call, request, false, body);
    let (conn, head) = send(shard, snapshot, resolved, endpoint, scratch).await?;
    if head.status >= 300 {
        return Err(upstream_error(shard, resolved, conn, &head, scratch).await);
    }
    let dialect = if operation == Operation::CountTokens { Dialect::Anthropic } else { Dialect::OpenAi };
    forward_whole(shard, resolved, conn, head, dialect, responder, scratch).await
}

/// Embeddings from Gemini (`batchEmbedContents`) or Bedrock (Titan, Cohere
/// through `invoke`): the input is split into the calls the provider takes,
/// sent one after the other, and the vectors come back as one OpenAI answer
/// in input order.
#[allow(clippy::too_many_arguments)]
async fn translated_embeddings(
    shard: &Rc<Shard>,
    snapshot: &Rc<Snapshot>,
    request: &Request<'_>,
    resolved: &Resolved<'_>,
    endpoint: &Endpoint,
    wire: Wire,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    use translate::embeddings::{Collected, Target};
    let embed = translate::embeddings::parse_openai(request.body).map_err(GatewayError::Translate)?;
    let model = resolved.upstream_model;
    let target = match wire {
        Wire::Bedrock => Target::bedrock(model).map_err(GatewayError::Translate)?,
        _ => Target::Gemini,
    };
    let mut collected = Collected::new(target, embed.inputs.len(), embed.encoding);
    for call in 0..collected.calls() {
        scratch.body.clear();
        target.write(&embed, model, call, &mut scratch.body).map_err(GatewayError::Translate)?;
        let call_spec = Call { deployment: resolved.deployment, endpoint, operation: Operation::Embeddings, model };
        build_request(&mut scratch.request, call_spec, request, false, &scratch.body);
        let (conn, head) = send(shard, snapshot, resolved, endpoint, scratch).await?;
        if head.status >= 300 {
            return Err(provider_error(shard, resolved, wire, conn, &head, scratch).await);
        }
        read_whole(shard, resolved, conn, &head, scratch).await?;
        collected.add(&scratch.body).map_err(GatewayError::Translate)?;
    }
    let mut out = Vec::with_capacity(scratch.body.len() + 256);
    let usage = collected.finish(model, &mut out).map_err(GatewayError::Translate)?;
    account(shard, resolved, Some(usage));
    ignore_io(responder.send(200, b"application/json", &resolved.headers(), &out).await)
}

// Phase 7 ----------------------------------------------------------------

/// Where a provider request goes and what it does.
struct Call<'c> {
    deployment: &'c Deployment,
    endpoint: &'c Endpoint,
    operation: Operation,
    /// The model the provider sees (an Azure deployment name goes in the path).
    model: &'c str,
}

/// Writes the whole upstream request (head and body) into `out`.
fn build_request(out: &mut Vec<u8>, call: Call<'_>, client: &Request<'_>, stream: bool, body: &[u8]) {
    let Call { deployment, endpoint, operation, model } = call;
    out.clear();
    out.reserve(body.len() + 512);
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(endpoint.base_path.as_bytes());
    match &deployment.kind {
        ProviderKind::Azure { style: AzureStyle::Deployments { api_version }, .. } => {
            if !endpoint.base_path.contains("/deployments/") {
                out.extend_from_slice(b"/openai/deployments/");
                percent_encode_segment(out, model);
            }
            out.extend_from_slice(operation.path().as_bytes());
            out.extend_from_slice(b"?api-version=");
            out.extend_from_slice(api_version.as_bytes());
        }
        ProviderKind::Azure { style: AzureStyle::V1 { api_version }, .. } => {
            out.extend_from_slice(operation.path().as_bytes());
            if let Some(v) = api_version {
                out.extend_from_slice(b"?api-version=");
                out.extend_from_slice(v.as_bytes());
            }
        }
        ProviderKind::Gemini { .. } if operation == Operation::Embeddings => {
            out.extend_from_slice(translate::embeddings::gemini_path(model).as_bytes());
        }
        ProviderKind::Gemini { .. } if operation == Operation::CountTokens => {
            out.extend_from_slice(translate::gemini::count_tokens_path(model).as_bytes());
        }
        ProviderKind::Bedrock { .. } if operation == Operation::CountTokens => {
            out.extend_from_slice(translate::bedrock::count_tokens_path(model).as_bytes());
        }
        ProviderKind::Bedrock { .. } if operation == Operation::Embeddings => {
            out.extend_from_slice(translate::bedrock::model_path(model, "invoke").as_bytes());
        }
        ProviderKind::Gemini { .. } => out.extend_from_slice(translate::gemini::path(model, stream).as_bytes()),
        ProviderKind::Bedrock { .. } => out.extend_from_slice(translate::bedrock::path(model, stream).as_bytes()),
        _ => out.extend_from_slice(operation.path().as_bytes()),
    }
    let path_end = out.len();
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(endpoint.authority().as_bytes());
    match &deployment.kind {
        ProviderKind::OpenAi { api_key: Some(key), .. } => {
            out.extend_from_slice(b"\r\nauthorization: Bearer ");
            out.extend_from_slice(key.as_bytes());
        }
        ProviderKind::Azure { api_key, .. } => {
            out.extend_from_slice(b"\r\napi-key: ");
            out.extend_from_slice(api_key.as_bytes());
        }
        ProviderKind::Anthropic { api_key, version, .. } => {
            out.extend_from_slice(b"\r\nx-api-key: ");
            out.extend_from_slice(api_key.as_bytes());
            // The client's version and betas when it speaks Anthropic itself;
            // an OpenAI client's request was written by corelay for the
            // configured version, whatever headers it sent.
            out.extend_from_slice(b"\r\nanthropic-version: ");
            out.extend_from_slice(
                client.anthropic_header(&client.head.anthropic_version).unwrap_or(version.as_bytes()),
            );
            if let Some(beta) = client.anthropic_header(&client.head.anthropic_beta) {
                out.extend_from_slice(b"\r\nanthropic-beta: ");
                out.extend_from_slice(beta);
            }
        }
        ProviderKind::Gemini { api_key, .. } => {
            out.extend_from_slice(b"\r\nx-goog-api-key: ");
            out.extend_from_slice(api_key.as_bytes());
        }
        ProviderKind::Bedrock { auth: BedrockAuth::ApiKey(key), .. } => {
            out.extend_from_slice(b"\r\nauthorization: Bearer ");
            out.extend_from_slice(key.as_bytes());
        }
        ProviderKind::Bedrock { auth: BedrockAuth::SigV4(credentials), region, .. } => {
            // The path is what was just written after "POST ".
            let path = std::str::from_utf8(&out[5..path_end]).unwrap_or("/");
            let signed = crate::sigv4::sign(
                credentials,
                region,
                "POST",
                &endpoint.authority(),
                path,
                &[("content-type", "application/json")],
                body,
                std::time::SystemTime::now(),
            );
            // Signing fails only on a malformed host or path, which config
            // validation rules out; the provider then answers 403.
            if let Ok(signed) = signed {
                for (name, value) in &signed.headers {
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(name.as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value.as_bytes());
                }
            }
        }
        _ => {}
    }
    // A form goes with its own content type (its boundary); the route
    // checked that it is a safe header value.
    let content_type = match operation {
        Operation::Transcriptions | Operation::Translations => {
            client.header(&client.head.content_type).unwrap_or(b"multipart/form-data")
        }
        _ => b"application/json",
    };
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(content_type);
    out.extend_from_slice(b"\r\naccept: ");
    out.extend_from_slice(match (&deployment.kind, stream) {
        (ProviderKind::Bedrock { .. }, true) => b"application/vnd.amazon.eventstream",
        (_, true) => b"text/event-stream",
        (_, false) => b"application/json",
    });
    out.extend_from_slice(b"\r\nuser-agent: corelay/");
    out.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// Percent-encodes one path segment (an Azure deployment name).
fn percent_encode_segment(out: &mut Vec<u8>, segment: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
}

// Phase 8 ----------------------------------------------------------------

async fn send(
    shard: &Shard,
    snapshot: &Snapshot,
    resolved: &Resolved<'_>,
    endpoint: &Endpoint,
    scratch: &mut Scratch,
) -> Result<(Conn, ResponseHead), GatewayError> {
    // The index means a deployment of the request's own generation: the
    // addresses and the pool must be of that generation too.
    let refreshed = shard.dns_of(snapshot.generation);
    let dns = refreshed.as_deref().unwrap_or(&snapshot.dns);
    let pool = shard.pool();
    let index = resolved.deployment_index;
    let target = Target {
        generation: snapshot.generation,
        deployment: index,
        endpoint,
        addrs: dns.get(index).map_or(&[][..], Vec::as_slice),
        tls: snapshot.tls.get(index).and_then(Option::as_ref),
    };
    let mut stats = ExchangeStats::default();
    let request = std::mem::take(&mut scratch.request);
    let timeout = Duration::from_millis(resolved.deployment.timeout_ms);
    let exchange = upstream::exchange(&pool, &target, &resolved.deployment.upstream, request, timeout, &mut stats);
    // A client that leaves while the provider thinks cancels the provider's
    // request: dropping the exchange closes its connection.
    let finished = match scratch.client_fd {
        Some(fd) => monoio::select! {
            done = exchange => Some(done),
            () = client_left(fd) => None,
        },
        None => Some(exchange.await),
    };
    shard.count(Counter::UpstreamConnects, stats.connects);
    shard.count(Counter::UpstreamReuses, stats.reuses);
    let Some((result, request)) = finished else {
        shard.count(Counter::ClientsGone, 1);
        return Err(GatewayError::ClientClosed);
    };
    scratch.request = request;
    result.map_err(|e| GatewayError::from_upstream(&resolved.deployment.name, e))
}

/// How often a request waiting for a provider checks that its client is
/// still there.
const CLIENT_CHECK_INTERVAL_MS: u64 = 200;

/// Resolves once the client closed its connection.
async fn client_left(fd: std::os::fd::RawFd) {
    loop {
        monoio::time::sleep(Duration::from_millis(CLIENT_CHECK_INTERVAL_MS)).await;
        if crate::sys::peer_closed(fd) {
            return;
        }
    }
}

// Phase 9 ----------------------------------------------------------------

fn is_event_stream(conn: &Conn, head: &ResponseHead) -> bool {
    head.content_type
        .as_ref()
        .is_some_and(|r| conn.head_bytes(r.clone()).windows(17).any(|w| w.eq_ignore_ascii_case(b"text/event-stream")))
}

/// Reads an error answer and turns it into the error the client gets. The
/// connection goes back to the pool when the answer was read whole.
async fn upstream_error(
    shard: &Shard,
    resolved: &Resolved<'_>,
    mut conn: Conn,
    head: &ResponseHead,
    scratch: &mut Scratch,
) -> GatewayError {
    let provider = resolved.provider();
    let limits = &resolved.deployment.upstream;
    let mut body_reader = Body::new(head);
    scratch.body.clear();
    // Error bodies are small; a provider that sends a huge one gets cut.
    let limit = limits.response_body_bytes_max.min(1 << 20);
    let idle = Duration::from_millis(limits.stream_idle_timeout_ms);
    if let Err(e) = body_reader.read_all(&mut conn, &mut scratch.body, limit, idle).await {
        return GatewayError::from_upstream(provider, e);
    }
    let forward = head
        .forward
        .iter()
        .map(|(n, v)| (lossy(conn.head_bytes(n.clone())), lossy(conn.head_bytes(v.clone()))))
        .collect();
    if head.keep_alive && body_reader.is_done() {
        shard.pool().put(conn);
    }
    if matches!(head.status, 401 | 403) {
        // The provider refused corelay's key, not the client's.
        return GatewayError::provider_auth(provider, head.status, &error_message(&scratch.body), forward);
    }
    GatewayError::Upstream { provider: provider.to_owned(), status: head.status, body: scratch.body.clone(), forward }
}

/// The message of a provider's error body: `error.message` (OpenAI,
/// Anthropic, Gemini), `message` or `Message` (Bedrock), else the body as
/// text.
fn error_message(body: &[u8]) -> String {
    use sonic_rs::JsonValueTrait;
    let paths: [&[&str]; 3] = [&["error", "message"], &["message"], &["Message"]];
    for path in paths {
        if let Ok(v) = sonic_rs::get(body, path)
            && let Some(text) = v.as_str()
        {
            return text.to_owned();
        }
    }
    lossy(body)
}

/// Reads a provider's error answer in its dialect, for a client of the
/// other dialect.
async fn provider_error(
    shard: &Shard,
    resolved: &Resolved<'_>,
    dialect: Wire,
    conn: Conn,
    head: &ResponseHead,
    scratch: &mut Scratch,
) -> GatewayError {
    let error_type = head.error_type.clone().map(|r| lossy(conn.head_bytes(r)));
    match upstream_error(shard, resolved, conn, head, scratch).await {
        GatewayError::Upstream { provider, status, body, forward } => {
            let error = match dialect {
                Wire::Bedrock => translate::bedrock::response::parse_error(status, &body, error_type.as_deref()),
                other => translate::parse_error(other, status, &body),
            };
            use translate::error::ErrorKind;
            // Gemini says API_KEY_INVALID with a 400: what counts is the meaning.
            if matches!(error.kind, ErrorKind::Authentication | ErrorKind::Permission) {
                return GatewayError::provider_auth(&provider, status, &error.message, forward);
            }
            GatewayError::Provider { provider, error, forward }
        }
        other => other,
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Reads a whole answer body into `scratch.body` (bounded by
/// `upstream_response_body_bytes_max`, `stream_idle_timeout_ms` between
/// reads), then gives the connection back to the pool when it can serve
/// another request.
async fn read_whole(
    shard: &Shard,
    resolved: &Resolved<'_>,
    mut conn: Conn,
    head: &ResponseHead,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let provider = resolved.provider();
    let limits = &resolved.deployment.upstream;
    let mut body = Body::new(head);
    scratch.body.clear();
    let idle = Duration::from_millis(limits.stream_idle_timeout_ms);
    body.read_all(&mut conn, &mut scratch.body, limits.response_body_bytes_max, idle)
        .await
        .map_err(|e| GatewayError::from_upstream(provider, e))?;
    if head.keep_alive {
        shard.pool().put(conn);
    }
    Ok(())
}

/// Forwards a whole (non-streamed) response body.
async fn forward_whole(
    shard: &Shard,
    resolved: &Resolved<'_>,
    mut conn: Conn,
    head: ResponseHead,
    dialect: Dialect,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let provider = resolved.provider();
    let limits = &resolved.deployment.upstream;
    let mut body = Body::new(&head);
    scratch.body.clear();
    let idle = Duration::from_millis(limits.stream_idle_timeout_ms);
    body.read_all(&mut conn, &mut scratch.body, limits.response_body_bytes_max, idle)
        .await
        .map_err(|e| GatewayError::from_upstream(provider, e))?;
    let content_type = head.content_type.clone().map_or(&b"application/json"[..], |r| conn.head_bytes(r));
    let mut headers: Vec<Header<'_>> = Vec::with_capacity(head.forward.len() + 2);
    headers.extend(resolved.headers());
    headers.extend(head.forward.iter().map(|(n, v)| (conn.head_bytes(n.clone()), conn.head_bytes(v.clone()))));
    let sent = responder.send(head.status, content_type, &headers, &scratch.body).await;
    drop(headers);
    // Usage is read once the client has its answer (off the latency path),
    // and counted whether or not the client was still there to take it: the
    // provider charged for it either way.
    let usage = match dialect {
        Dialect::OpenAi => openai::response_usage(&scratch.body),
        Dialect::Anthropic => translate::anthropic::response::usage(&scratch.body),
    };
    account(shard, resolved, usage);
    if head.keep_alive {
        shard.pool().put(conn);
    }
    ignore_io(sent)
}

/// The most of a stream held back before its first content (see
/// [`forward_stream`]); past it, the stream is sent as it is.
const STREAM_HELD_BYTES_MAX: usize = 64 * 1024;

/// Forwards an SSE stream event by event, as each arrives.
///
/// Nothing goes to the client before the first event with content: what
/// comes before (Anthropic's `message_start`, pings, a usage-only chunk) is
/// held back, and an error event or a cut connection before any content
/// fails the attempt (`Err`), so that another attempt can still answer.
/// After that, errors are told to the client inside the stream.
#[allow(clippy::too_many_arguments)]
async fn forward_stream(
    shard: &Shard,
    resolved: &Resolved<'_>,
    mut conn: Conn,
    head: ResponseHead,
    usage_of: StreamUsage,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let provider = resolved.provider();
    let limits = &resolved.deployment.upstream;
    let mut body = Body::new(&head);
    let mut splitter = Splitter::new(limits.stream_event_bytes_max);
    let idle = Duration::from_millis(limits.stream_idle_timeout_ms);
    let mut usage = None;
    let mut failure = None;
    let mut started = false;
    let mut content = false;
    scratch.events.clear();
    loop {
        scratch.body.clear();
        if started {
            scratch.events.clear();
        }
        let mut overflow = false;
        let mut ended = false;
        let mut early_error = None;
        let mut on_piece = |piece: Piece<'_>| match piece {
            Piece::Event(_) if early_error.is_some() => {}
            Piece::Event(event) => {
                if !content {
                    match early_event(event, usage_of, provider) {
                        Early::Held => {}
                        Early::Content => content = true,
                        Early::Error(e) => {
                            early_error = Some(e);
                            return;
                        }
                    }
                }
                if content && is_error_event(event, usage_of) {
                    // Told to the client as it is; the attempt still failed.
                    resolved.failed_late.set(true);
                }
                forward_event(event, usage_of, &mut usage, &mut scratch.events)
            }
            Piece::Overflow => overflow = true,
        };
        match body.next(&mut conn, &mut scratch.body, idle).await {
            Ok(true) => splitter.feed(&scratch.body, &mut on_piece),
            // A last event that lacks its blank line is still forwarded,
            // completed with one.
            Ok(false) => {
                splitter.finish(&mut on_piece);
                ended = true;
            }
            // Cut before any content: this attempt failed, another may not.
            Err(e) if !started => {
                return Err(GatewayError::UpstreamUnreachable { provider: provider.to_owned(), source: e });
            }
            Err(e) => {
                failure = Some(GatewayError::from_upstream(provider, e));
                break;
            }
        }
        if !started {
            if let Some(e) = early_error {
                return Err(e);
            }
            if !(content || ended || overflow || scratch.events.len() > STREAM_HELD_BYTES_MAX) {
                continue;
            }
            let content_type = head.content_type.clone().map_or(&b"text/event-stream"[..], |r| conn.head_bytes(r));
            let mut headers: Vec<Header<'_>> = Vec::with_capacity(head.forward.len() + 2);
            headers.extend(resolved.headers());
            headers.extend(head.forward.iter().map(|(n, v)| (conn.head_bytes(n.clone()), conn.head_bytes(v.clone()))));
            if responder.start_stream(head.status, content_type, &headers).await.is_err() {
                return Ok(());
            }
            started = true;
        }
        if responder.stream(&scratch.events).await.is_err() {
            // The client left: drop the upstream connection with it.
            account(shard, resolved, usage);
            return Ok(());
        }
        if overflow {
            failure = Some(GatewayError::UpstreamBadResponse {
                provider: provider.to_owned(),
                source: upstream::UpstreamError::TooLarge,
            });
            break;
        }
        if ended {
            break;
        }
    }
    account(shard, resolved, usage);
    if let Some(e) = failure {
        // The status went out long ago: say it the way OpenAI does
        // mid-stream, as an `error` event, then end the stream.
        resolved.failed_late.set(true);
        let dialect = if usage_of == StreamUsage::Anthropic { Dialect::Anthropic } else { Dialect::OpenAi };
        let (_, _, error_body) = crate::error::rescue(&e, dialect);
        scratch.events.clear();
        if dialect == Dialect::Anthropic {
            scratch.events.extend_from_slice(b"event: error\n");
        }
        scratch.events.extend_from_slice(b"data: ");
        scratch.events.extend_from_slice(&error_body);
        scratch.events.extend_from_slice(b"\n\n");
        let _ = responder.stream(&scratch.events).await;
        let _ = responder.end_stream().await;
        responder.abort_stream();
        return Ok(());
    }
    let ended = responder.end_stream().await;
    if ended.is_ok() && head.keep_alive && body.is_done() {
        shard.pool().put(conn);
    }
    Ok(())
}

/// What an event that comes before any content is.
enum Early {
    /// Held back until content comes: a start, a ping, usage alone.
    Held,
    Content,
    /// The provider failed before answering anything.
    Error(GatewayError),
}

/// Classifies a same-dialect stream's event while no content has come.
fn early_event(event: &[u8], usage_of: StreamUsage, provider: &str) -> Early {
    let data = translate::sse::single_data(event);
    let error = |dialect: Wire, data: &[u8]| {
        // The status is unknown inside a 200: the body's type decides.
        let error = translate::parse_error(dialect, 500, data);
        Early::Error(GatewayError::Provider { provider: provider.to_owned(), error, forward: Vec::new() })
    };
    match usage_of {
        StreamUsage::Anthropic => match event_name(event) {
            Some(b"message_start" | b"ping") | None => Early::Held,
            Some(b"error") => error(Wire::Anthropic, data.unwrap_or_default()),
            Some(_) => Early::Content,
        },
        StreamUsage::OpenAi { .. } => match data {
            None => Early::Held,
            Some(data) if sonic_rs::get(data, ["error"]).is_ok() => error(Wire::OpenAi, data),
            Some(data) => match openai::classify_chunk(event) {
                ChunkKind::UsageOnly(_) => Early::Held,
                _ if is_opening_chunk(data) => Early::Held,
                _ => Early::Content,
            },
        },
    }
}

/// An OpenAI chunk that carries no part of the answer: the first one, with
/// the role and empty content, and no tool call, reasoning or finish.
fn is_opening_chunk(data: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Chunk<'a> {
        #[serde(borrow, default)]
        choices: Vec<Choice<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Choice<'a> {
        #[serde(borrow, default)]
        delta: Option<Delta<'a>>,
        #[serde(borrow, default)]
        finish_reason: Option<&'a str>,
    }
    #[derive(serde::Deserialize)]
    struct Delta<'a> {
        #[serde(borrow, default)]
        content: Option<std::borrow::Cow<'a, str>>,
        #[serde(default)]
        tool_calls: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        reasoning_content: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        reasoning: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        refusal: Option<serde::de::IgnoredAny>,
    }
    let Ok(chunk) = translate::wire::from_slice::<Chunk<'_>>(data) else { return false };
    chunk.choices.iter().all(|c| {
        c.finish_reason.is_none()
            && c.delta.as_ref().is_none_or(|d| {
                d.content.as_deref().is_none_or(str::is_empty)
                    && d.tool_calls.is_none()
                    && d.reasoning_content.is_none()
                    && d.reasoning.is_none()
                    && d.refusal.is_none()
            })
    }) && !chunk.choices.is_empty()
}

/// Whether a same-dialect event is the provider's in-stream error.
fn is_error_event(event: &[u8], usage_of: StreamUsage) -> bool {
    match usage_of {
        StreamUsage::Anthropic => event_name(event) == Some(b"error"),
        StreamUsage::OpenAi { .. } => {
            translate::sse::single_data(event).is_some_and(|d| d.trim_ascii_start().starts_with(b"{\"error\""))
        }
    }
}

/// The `event:` field of a server-sent event.
fn event_name(event: &[u8]) -> Option<&[u8]> {
    event.split(|&b| b == b'\n').find_map(|line| line.strip_prefix(b"event:").map(<[u8]>::trim_ascii))
}

/// Copies one event of a same-dialect stream to `out`, reading its usage on
/// the way, and leaving out what the client did not ask for.
fn forward_event(event: &[u8], usage_of: StreamUsage, usage: &mut Option<translate::Usage>, out: &mut Vec<u8>) {
    match usage_of {
        StreamUsage::Anthropic => {
            translate::anthropic::stream::event_usage(event, usage.get_or_insert_default());
            out.extend_from_slice(event);
        }
        StreamUsage::OpenAi { hide } => match openai::classify_chunk(event) {
            ChunkKind::UsageOnly(u) => {
                *usage = Some(u);
                if !hide {
                    out.extend_from_slice(event);
                }
            }
            ChunkKind::WithUsage(u) => {
                *usage = Some(u);
                out.extend_from_slice(event);
            }
            ChunkKind::Done | ChunkKind::Other if hide => strip_null_usage(event, out),
            ChunkKind::Done | ChunkKind::Other => out.extend_from_slice(event),
        },
    }
}

/// Where a same-dialect stream's usage is, and whether to hide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamUsage {
    /// In the `include_usage` chunk, hidden when corelay asked for it.
    OpenAi { hide: bool },
    /// In `message_start` and the cumulative `message_delta`.
    Anthropic,
}

/// Translates a provider's stream event by event, as each arrives. As in
/// [`forward_stream`], nothing goes to the client before the first content:
/// a stream that fails before it fails the attempt (`Err`).
#[allow(clippy::too_many_arguments)]
async fn translate_stream(
    shard: &Shard,
    resolved: &Resolved<'_>,
    mut conn: Conn,
    head: ResponseHead,
    mut translator: translate::stream::Translator,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    use translate::stream::State;
    let provider = resolved.provider();
    let limits = &resolved.deployment.upstream;
    let mut body = Body::new(&head);
    let idle = Duration::from_millis(limits.stream_idle_timeout_ms);
    let mut started = false;
    scratch.events.clear();
    loop {
        scratch.body.clear();
        if started {
            scratch.events.clear();
        }
        let state = match body.next(&mut conn, &mut scratch.body, idle).await {
            Ok(true) => translator.feed(&scratch.body, &mut scratch.events),
            Ok(false) => translator.end(&mut scratch.events),
            Err(e) if !started => {
                return Err(GatewayError::UpstreamUnreachable { provider: provider.to_owned(), source: e });
            }
            Err(e) => {
                let message = GatewayError::from_upstream(provider, e).to_string();
                let error = translate::error::ProviderError::new(translate::error::ErrorKind::BadGateway, message);
                translator.fail(error, &mut scratch.events)
            }
        };
        if !started {
            if state == State::Failed && !translator.has_content() {
                let error = translator.failure().cloned().unwrap_or_else(|| {
                    translate::error::ProviderError::new(translate::error::ErrorKind::BadGateway, "the stream failed")
                });
                return Err(GatewayError::Provider { provider: provider.to_owned(), error, forward: Vec::new() });
            }
            let held = scratch.events.len() > STREAM_HELD_BYTES_MAX;
            if state == State::Open && !translator.has_content() && !held {
                continue;
            }
            let mut headers: Vec<Header<'_>> = resolved.headers().to_vec();
            headers.extend(head.forward.iter().map(|(n, v)| (conn.head_bytes(n.clone()), conn.head_bytes(v.clone()))));
            if responder.start_stream(200, b"text/event-stream", &headers).await.is_err() {
                return Ok(());
            }
            started = true;
        }
        if !scratch.events.is_empty() && responder.stream(&scratch.events).await.is_err() {
            account(shard, resolved, translator.usage());
            return Ok(());
        }
        if state != State::Open {
            break;
        }
    }
    account(shard, resolved, translator.usage());
    if translator.state() == State::Failed {
        resolved.failed_late.set(true);
    }
    let ended = responder.end_stream().await;
    // The connection is reusable only if its body was read to the end. The
    // translator is done at the dialect's last event, usually before the
    // chunked terminator after it was read: that is read now.
    if ended.is_ok()
        && head.keep_alive
        && translator.state() == State::Done
        && (body.is_done() || body.skip_rest(&mut conn, &mut scratch.body).await)
    {
        shard.pool().put(conn);
    }
    Ok(())
}

/// Copies an event without the `"usage":null` member that a provider adds
/// to every chunk once `include_usage` is on: a client that did not ask for
/// usage gets chunks without it, as OpenAI itself sends them.
fn strip_null_usage(event: &[u8], out: &mut Vec<u8>) {
    const MEMBER: &[u8] = b",\"usage\":null";
    match memchr::memmem::rfind(event, MEMBER) {
        Some(at) => {
            out.extend_from_slice(&event[..at]);
            out.extend_from_slice(&event[at + MEMBER.len()..]);
        }
        None => out.extend_from_slice(event),
    }
}

// Phase 10 ---------------------------------------------------------------

fn account(shard: &Shard, resolved: &Resolved<'_>, usage: Option<translate::Usage>) {
    if let Some(u) = usage {
        shard.count(Counter::PromptTokens, u.prompt_tokens);
        shard.count(Counter::CompletionTokens, u.completion_tokens);
        shard.record_usage(resolved.key, resolved.model, &u);
        for (id, tpm) in resolved.charge.iter().flat_map(|c| c.limits.iter().flatten()) {
            crate::limits::charge_tokens(shard, *id, *tpm, u.prompt_tokens + u.completion_tokens);
        }
    }
}

// Usage --------------------------------------------------------------------------

/// `GET /v1/usage[?from=UNIX&until=UNIX]`: the caller's own usage by model
/// and hour, with its cost, from the control plane's ledger and store.
async fn usage(
    shard: &Shard,
    request: &Request<'_>,
    key: Option<&Key>,
    responder: &mut Responder<'_>,
) -> Result<(), GatewayError> {
    let (id, name) = match key {
        Some(k) => (k.ledger_id().clone(), k.name.clone()),
        None => (crate::shard::anonymous_key(), "anonymous".to_owned()),
    };
    let (from_unix, until_unix) = (request.query_unix("from")?, request.query_unix("until")?);
    let question = crate::shard::Question::Usage { key: id, name, from_unix, until_unix };
    let Some((status, body)) = shard.ask(question).await else {
        return Err(GatewayError::Internal("the control plane did not answer in time".into()));
    };
    ignore_io(responder.json(status, &body).await)
}

// Models and metrics -----------------------------------------------------------

/// `GET /v1/models`: every served model and alias the caller may use, in
/// OpenAI's list shape, sorted by id.
fn models_body(snapshot: &Snapshot, key: Option<&Key>) -> Vec<u8> {
    let config = &snapshot.config;
    let allowed = |name: &str| key.is_none_or(|k| k.models.allows(name));
    let mut entries: Vec<(&str, &str)> = Vec::new();
    for (model, deployments) in &config.routes {
        if allowed(model) {
            entries.push((model, config.deployments[deployments[0]].name.as_str()));
        }
    }
    for (alias, target) in &config.aliases {
        if allowed(alias) || allowed(target) {
            entries.push((alias, "corelay"));
        }
    }
    entries.sort_unstable();
    let mut out = Vec::with_capacity(64 + entries.len() * 80);
    out.extend_from_slice(b"{\"object\":\"list\",\"data\":[");
    for (i, (id, owner)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"id\":");
        openai::write_json_string(&mut out, id);
        out.extend_from_slice(b",\"object\":\"model\",\"created\":0,\"owned_by\":");
        openai::write_json_string(&mut out, owner);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

/// `GET /metrics`: counters summed over all shards, in Prometheus' text
/// format. The sums are as of the control plane's last tick.
fn metrics_body(shard: &Shard) -> String {
    use std::fmt::Write;
    let totals = shard.totals();
    let mut out = String::with_capacity(1024);
    let _ = writeln!(out, "# TYPE corelay_shards gauge\ncorelay_shards {}", totals.shards);
    for (name, value) in crate::shard::COUNTER_NAMES.iter().zip(totals.values.iter()) {
        let _ = writeln!(out, "# TYPE corelay_{name}_total counter\ncorelay_{name}_total {value}");
    }
    out
}
