//! The request pipeline: one function per phase, called in order from
//! [`handle`], so a request can be read top to bottom.
//!
//! 1. The head and body were read by [`crate::http::server`] (bounded).
//! 2. Route the path to an endpoint.
//! 3. Authenticate: hash the presented key, look it up in the shard's table.
//! 4. Peek `model` and `stream` without building the body.
//! 5. Resolve the alias, check the key's allowlist, find the deployments.
//! 6. Pick one deployment by weighted random.
//! 7. Build the upstream request: the client's bytes, with only the model
//!    name of an alias and `stream_options.include_usage` spliced in.
//! 8. Send it over a pooled keep-alive connection.
//! 9. Respond: forward the body, or forward each SSE event as it arrives.
//! 10. Account: usage read from the final usage chunk goes to the counters.

use std::rc::Rc;
use std::time::Duration;

use translate::openai::{self, ChatPeek, ChunkKind};
use translate::sse::{Piece, Splitter};

use crate::config::{AzureStyle, BedrockAuth, Deployment, Endpoint, ProviderKind};
use translate::stream::Dialect as Wire;

use crate::error::{Dialect, GatewayError};
use crate::http::codec::{self, Method, RequestHead, ResponseHead};
use crate::http::server::{Header, Responder, Scratch};
use crate::mock;
use crate::shard::{Counter, Shard, Snapshot};
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
    fn path(&self) -> &[u8] {
        let target = &self.buf[self.head.target.clone()];
        target.split(|&b| b == b'?').next().unwrap_or(target)
    }

    fn header(&self, range: &Option<std::ops::Range<usize>>) -> Option<&[u8]> {
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
    Models,
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
}

impl Operation {
    fn path(self) -> &'static str {
        match self {
            Operation::Chat => "/chat/completions",
            Operation::Embeddings => "/embeddings",
            Operation::Messages => "/v1/messages",
            Operation::CountTokens => "/v1/messages/count_tokens",
            Operation::Generate => "",
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
    let key = authenticate(snapshot, request)?;
    match endpoint {
        Route::Chat => chat(shard, snapshot, request, key, Dialect::OpenAi, responder, scratch).await,
        Route::Messages => chat(shard, snapshot, request, key, Dialect::Anthropic, responder, scratch).await,
        Route::CountTokens => count_tokens(shard, snapshot, request, key, responder, scratch).await,
        Route::Embeddings => embeddings(shard, snapshot, request, key, responder, scratch).await,
        Route::Models => ignore_io(responder.json(200, &models_body(snapshot, key)).await),
        Route::Metrics => {
            let body = metrics_body(shard);
            ignore_io(responder.send(200, b"text/plain; version=0.0.4", &[], body.as_bytes()).await)
        }
        Route::Health => unreachable!("answered above"),
    }
}

/// A write error means the client went away: nothing left to answer.
fn ignore_io(_: std::io::Result<()>) -> Result<(), GatewayError> {
    Ok(())
}

// Phase 2 ----------------------------------------------------------------

fn route(request: &Request<'_>) -> Result<Route, GatewayError> {
    let path = request.path();
    let (endpoint, method) = match path {
        b"/v1/chat/completions" | b"/chat/completions" => (Route::Chat, Method::Post),
        b"/v1/messages" => (Route::Messages, Method::Post),
        b"/v1/messages/count_tokens" => (Route::CountTokens, Method::Post),
        b"/v1/embeddings" | b"/embeddings" => (Route::Embeddings, Method::Post),
        b"/v1/models" | b"/models" => (Route::Models, Method::Get),
        b"/health" => (Route::Health, Method::Get),
        b"/metrics" => (Route::Metrics, Method::Get),
        _ => return Err(GatewayError::RouteNotFound(String::from_utf8_lossy(path).into_owned())),
    };
    if request.head.method != method {
        let name = match request.head.method {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
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
fn authenticate(snapshot: &Snapshot, request: &Request<'_>) -> Result<Option<usize>, GatewayError> {
    if !snapshot.auth_required() {
        return Ok(None);
    }
    let bearer = request
        .header(&request.head.authorization)
        .and_then(|v| v.strip_prefix(b"Bearer ").or_else(|| v.strip_prefix(b"bearer ")));
    let presented = bearer.or_else(|| request.header(&request.head.x_api_key)).map(<[u8]>::trim_ascii);
    let Some(secret) = presented.filter(|s| !s.is_empty()) else {
        return Err(GatewayError::Unauthorized(
            "Missing API key: send it as `Authorization: Bearer <key>` or `x-api-key`.".into(),
        ));
    };
    let digest = crate::config::key_digest(secret);
    match snapshot.keys.get(&digest) {
        Some(&index) => Ok(Some(index)),
        None => Err(GatewayError::Unauthorized("Incorrect API key provided.".into())),
    }
}

// Phases 4-6 --------------------------------------------------------------

/// A request resolved to the deployment that will serve it.
struct Resolved<'s> {
    deployment_index: usize,
    deployment: &'s Deployment,
    /// The model name the provider must see, when it differs from the one
    /// the client sent.
    rename: Option<&'s str>,
    /// The model name the provider sees.
    upstream_model: &'s str,
}

fn resolve<'s>(snapshot: &'s Snapshot, key: Option<usize>, model: &str) -> Result<Resolved<'s>, GatewayError> {
    let config = &snapshot.config;
    let (target, rename) = match config.aliases.get_key_value(model) {
        Some((_, target)) => (target.as_str(), Some(target.as_str())),
        None => match config.routes.get_key_value(model) {
            Some((name, _)) => (name.as_str(), None),
            None => return Err(GatewayError::ModelNotFound(model.to_owned())),
        },
    };
    if let Some(k) = key {
        let allow = &config.keys[k].models;
        if !allow.allows(model) && !allow.allows(target) {
            return Err(GatewayError::Forbidden(format!("This key is not allowed to use the model `{model}`.")));
        }
    }
    let candidates = config.routes.get(target).ok_or_else(|| GatewayError::ModelNotFound(model.to_owned()))?;
    let deployment_index = pick_weighted(candidates, &config.deployments);
    Ok(Resolved { deployment_index, deployment: &config.deployments[deployment_index], rename, upstream_model: target })
}

/// Weighted random choice among the deployments serving a model.
fn pick_weighted(candidates: &[usize], deployments: &[Deployment]) -> usize {
    if let [only] = candidates {
        return *only;
    }
    let total: u64 = candidates.iter().map(|&i| u64::from(deployments[i].weight)).sum();
    let mut ticket = fastrand::u64(0..total);
    for &i in candidates {
        let w = u64::from(deployments[i].weight);
        if ticket < w {
            return i;
        }
        ticket -= w;
    }
    candidates[candidates.len() - 1]
}

// Chat ---------------------------------------------------------------------

/// A chat request through either front door: `front` is the client's
/// dialect. Same dialect on both sides: the client's bytes go through.
/// Otherwise: translated both ways.
async fn chat(
    shard: &Rc<Shard>,
    snapshot: &Rc<Snapshot>,
    request: &Request<'_>,
    key: Option<usize>,
    front: Dialect,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    // `model` and `stream` have the same names in both dialects.
    let peek = openai::peek_chat(request.body).map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    let resolved = resolve(snapshot, key, &peek.model)?;
    if peek.stream {
        shard.count(Counter::Streams, 1);
    }
    let endpoint = match &resolved.deployment.kind {
        ProviderKind::Mock if front == Dialect::OpenAi => {
            let usage = mock::chat(responder, &peek, resolved.upstream_model).await;
            account(shard, usage);
            return Ok(());
        }
        ProviderKind::Mock => return mock_translated(shard, request, &resolved, front, responder, scratch).await,
        kind => kind.endpoint().expect("non-mock kinds have an endpoint"),
    };
    if provider_dialect(&resolved.deployment.kind) != translate_dialect(front) {
        return translated(shard, snapshot, request, &resolved, endpoint, front, responder, scratch).await;
    }
    // Usage must be counted, so an OpenAI stream asks for it; the usage
    // chunk is then hidden from a client that did not ask for it itself.
    // Anthropic streams always carry usage.
    let want_usage =
        front == Dialect::OpenAi && peek.stream && !peek.include_usage && injects_usage(&resolved.deployment.kind);
    // Ollama's /v1 reads only `max_tokens`.
    let max_tokens_name = matches!(resolved.deployment.kind, ProviderKind::Ollama { .. });
    let splice = openai::Splice { model: resolved.rename, include_usage: want_usage, max_tokens_name };
    let body = splice_body(request.body, &peek, splice, &mut scratch.body);
    let operation = if front == Dialect::Anthropic { Operation::Messages } else { Operation::Chat };
    let call = Call { deployment: resolved.deployment, endpoint, operation, model: resolved.upstream_model };
    build_request(&mut scratch.request, call, request, peek.stream, body);
    let (conn, head) = send(shard, snapshot, &resolved, endpoint, scratch).await?;
    let provider = resolved.deployment.name.as_str();
    if head.status >= 300 {
        return Err(upstream_error(shard, snapshot, provider, conn, &head, scratch).await);
    }
    if peek.stream && is_event_stream(&conn, &head) {
        let usage =
            if front == Dialect::Anthropic { StreamUsage::Anthropic } else { StreamUsage::OpenAi { hide: want_usage } };
        forward_stream(shard, snapshot, provider, conn, head, usage, responder, scratch).await;
        return Ok(());
    }
    forward_whole(shard, snapshot, provider, conn, head, front, responder, scratch).await
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
    let provider = resolved.deployment.name.as_str();
    if head.status >= 300 {
        return Err(provider_error(shard, snapshot, provider, dialect, conn, &head, scratch).await);
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
        translate_stream(shard, snapshot, provider, conn, head, translator, responder, scratch).await;
        return Ok(());
    }
    read_whole(shard, snapshot, provider, conn, &head, scratch).await?;
    let cx = translate::ResponseContext { id: &id, model, created: unix_now(), written };
    let mut out = Vec::with_capacity(scratch.body.len() + 256);
    let usage = translate::translate_response(dialect, &scratch.body, translate_dialect(front), cx, &mut out)
        .map_err(GatewayError::Translate)?;
    account(shard, usage);
    let headers: [Header<'_>; 1] = [(b"x-corelay-provider", provider.as_bytes())];
    ignore_io(responder.send(200, b"application/json", &headers, &out).await)
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
    account(shard, Some(usage));
    Ok(())
}

/// `POST /v1/messages/count_tokens`: passed to an Anthropic deployment,
/// translated for Gemini and Bedrock; the other kinds have no such endpoint.
async fn count_tokens(
    shard: &Rc<Shard>,
    snapshot: &Rc<Snapshot>,
    request: &Request<'_>,
    key: Option<usize>,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let peek = openai::peek_chat(request.body).map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    let resolved = resolve(snapshot, key, &peek.model)?;
    match &resolved.deployment.kind {
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
    }
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
    let provider = resolved.deployment.name.as_str();
    if head.status >= 300 {
        return Err(provider_error(shard, snapshot, provider, wire, conn, &head, scratch).await);
    }
    read_whole(shard, snapshot, provider, conn, &head, scratch).await?;
    let tokens = tokens(&scratch.body).ok_or_else(|| {
        GatewayError::Translate(translate::error::Error::Provider("the token count answer holds no count".into()))
    })?;
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(b"{\"input_tokens\":");
    out.extend_from_slice(itoa::Buffer::new().format(tokens).as_bytes());
    out.push(b'}');
    let headers: [Header<'_>; 1] = [(b"x-corelay-provider", provider.as_bytes())];
    ignore_io(responder.send(200, b"application/json", &headers, &out).await)
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
    key: Option<usize>,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let peek = openai::peek_chat(request.body).map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    if peek.stream {
        return Err(GatewayError::BadRequest("embeddings cannot be streamed".into()));
    }
    let resolved = resolve(snapshot, key, &peek.model)?;
    let endpoint = match &resolved.deployment.kind {
        ProviderKind::Mock => {
            let usage = mock::embeddings(responder, request.body, resolved.upstream_model).await?;
            account(shard, usage);
            return Ok(());
        }
        kind => kind.endpoint().expect("non-mock kinds have an endpoint"),
    };
    match provider_dialect(&resolved.deployment.kind) {
        Wire::OpenAi => {}
        wire @ (Wire::Gemini | Wire::Bedrock) => {
            return translated_embeddings(shard, snapshot, request, &resolved, endpoint, wire, responder, scratch)
                .await;
        }
        Wire::Anthropic => {
            return Err(GatewayError::BadRequest(format!(
                "`{}` is served by `{}`, which has no embeddings endpoint",
                peek.model, resolved.deployment.name
            )));
        }
    }
    pass_through_whole(shard, snapshot, request, &peek, &resolved, endpoint, Operation::Embeddings, responder, scratch)
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
    let provider = resolved.deployment.name.as_str();
    if head.status >= 300 {
        return Err(upstream_error(shard, snapshot, provider, conn, &head, scratch).await);
    }
    let dialect = if operation == Operation::CountTokens { Dialect::Anthropic } else { Dialect::OpenAi };
    forward_whole(shard, snapshot, provider, conn, head, dialect, responder, scratch).await
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
    let provider = resolved.deployment.name.as_str();
    for call in 0..collected.calls() {
        scratch.body.clear();
        target.write(&embed, model, call, &mut scratch.body).map_err(GatewayError::Translate)?;
        let call_spec = Call { deployment: resolved.deployment, endpoint, operation: Operation::Embeddings, model };
        build_request(&mut scratch.request, call_spec, request, false, &scratch.body);
        let (conn, head) = send(shard, snapshot, resolved, endpoint, scratch).await?;
        if head.status >= 300 {
            return Err(provider_error(shard, snapshot, provider, wire, conn, &head, scratch).await);
        }
        read_whole(shard, snapshot, provider, conn, &head, scratch).await?;
        collected.add(&scratch.body).map_err(GatewayError::Translate)?;
    }
    let mut out = Vec::with_capacity(scratch.body.len() + 256);
    let usage = collected.finish(model, &mut out).map_err(GatewayError::Translate)?;
    account(shard, Some(usage));
    let headers: [Header<'_>; 1] = [(b"x-corelay-provider", provider.as_bytes())];
    ignore_io(responder.send(200, b"application/json", &headers, &out).await)
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
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\naccept: ");
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
    let (result, request) =
        upstream::exchange(&pool, &target, &snapshot.config.upstream, request, timeout, &mut stats).await;
    scratch.request = request;
    shard.count(Counter::UpstreamConnects, stats.connects);
    shard.count(Counter::UpstreamReuses, stats.reuses);
    result.map_err(|e| GatewayError::from_upstream(&resolved.deployment.name, e))
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
    snapshot: &Snapshot,
    provider: &str,
    mut conn: Conn,
    head: &ResponseHead,
    scratch: &mut Scratch,
) -> GatewayError {
    let limits = &snapshot.config.upstream;
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
    snapshot: &Snapshot,
    provider: &str,
    dialect: Wire,
    conn: Conn,
    head: &ResponseHead,
    scratch: &mut Scratch,
) -> GatewayError {
    let error_type = head.error_type.clone().map(|r| lossy(conn.head_bytes(r)));
    match upstream_error(shard, snapshot, provider, conn, head, scratch).await {
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
    snapshot: &Snapshot,
    provider: &str,
    mut conn: Conn,
    head: &ResponseHead,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let limits = &snapshot.config.upstream;
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
#[allow(clippy::too_many_arguments)]
async fn forward_whole(
    shard: &Shard,
    snapshot: &Snapshot,
    provider: &str,
    mut conn: Conn,
    head: ResponseHead,
    dialect: Dialect,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) -> Result<(), GatewayError> {
    let limits = &snapshot.config.upstream;
    let mut body = Body::new(&head);
    scratch.body.clear();
    let idle = Duration::from_millis(limits.stream_idle_timeout_ms);
    body.read_all(&mut conn, &mut scratch.body, limits.response_body_bytes_max, idle)
        .await
        .map_err(|e| GatewayError::from_upstream(provider, e))?;
    let usage = match dialect {
        Dialect::OpenAi => openai::response_usage(&scratch.body),
        Dialect::Anthropic => translate::anthropic::response::usage(&scratch.body),
    };
    account(shard, usage);
    let content_type = head.content_type.clone().map_or(&b"application/json"[..], |r| conn.head_bytes(r));
    let mut headers: Vec<Header<'_>> = Vec::with_capacity(head.forward.len() + 1);
    headers.push((b"x-corelay-provider", provider.as_bytes()));
    headers.extend(head.forward.iter().map(|(n, v)| (conn.head_bytes(n.clone()), conn.head_bytes(v.clone()))));
    let sent = responder.send(head.status, content_type, &headers, &scratch.body).await;
    drop(headers);
    if head.keep_alive {
        shard.pool().put(conn);
    }
    ignore_io(sent)
}

/// Forwards an SSE stream event by event, as each arrives. Errors after the
/// head went out are told to the client inside the stream.
#[allow(clippy::too_many_arguments)]
async fn forward_stream(
    shard: &Shard,
    snapshot: &Snapshot,
    provider: &str,
    mut conn: Conn,
    head: ResponseHead,
    usage_of: StreamUsage,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) {
    let limits = &snapshot.config.upstream;
    {
        let content_type = head.content_type.clone().map_or(&b"text/event-stream"[..], |r| conn.head_bytes(r));
        let mut headers: Vec<Header<'_>> = Vec::with_capacity(head.forward.len() + 1);
        headers.push((b"x-corelay-provider", provider.as_bytes()));
        headers.extend(head.forward.iter().map(|(n, v)| (conn.head_bytes(n.clone()), conn.head_bytes(v.clone()))));
        if responder.start_stream(head.status, content_type, &headers).await.is_err() {
            return;
        }
    }
    let mut body = Body::new(&head);
    let mut splitter = Splitter::new(limits.stream_event_bytes_max);
    let idle = Duration::from_millis(limits.stream_idle_timeout_ms);
    let mut usage = None;
    let mut failure = None;
    loop {
        scratch.body.clear();
        scratch.events.clear();
        let mut overflow = false;
        let mut ended = false;
        let mut on_piece = |piece: Piece<'_>| match piece {
            Piece::Event(event) => forward_event(event, usage_of, &mut usage, &mut scratch.events),
            Piece::Overflow => overflow = true,
        };
        match body.next(&mut conn, &mut scratch.body, idle).await {
            Ok(true) => splitter.feed(&scratch.body, on_piece),
            // A last event that lacks its blank line is still forwarded,
            // completed with one.
            Ok(false) => {
                splitter.finish(&mut on_piece);
                ended = true;
            }
            Err(e) => {
                failure = Some(GatewayError::from_upstream(provider, e));
                break;
            }
        }
        if responder.stream(&scratch.events).await.is_err() {
            // The client left: drop the upstream connection with it.
            account(shard, usage);
            return;
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
    account(shard, usage);
    if let Some(e) = failure {
        // The status went out long ago: say it the way OpenAI does
        // mid-stream, as an `error` event, then end the stream.
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
        return;
    }
    let ended = responder.end_stream().await;
    if ended.is_ok() && head.keep_alive && body.is_done() {
        shard.pool().put(conn);
    }
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

/// Translates a provider's stream event by event, as each arrives.
#[allow(clippy::too_many_arguments)]
async fn translate_stream(
    shard: &Shard,
    snapshot: &Snapshot,
    provider: &str,
    mut conn: Conn,
    head: ResponseHead,
    mut translator: translate::stream::Translator,
    responder: &mut Responder<'_>,
    scratch: &mut Scratch,
) {
    use translate::stream::State;
    let headers: [Header<'_>; 1] = [(b"x-corelay-provider", provider.as_bytes())];
    if responder.start_stream(200, b"text/event-stream", &headers).await.is_err() {
        return;
    }
    let limits = &snapshot.config.upstream;
    let mut body = Body::new(&head);
    let idle = Duration::from_millis(limits.stream_idle_timeout_ms);
    loop {
        scratch.body.clear();
        scratch.events.clear();
        let state = match body.next(&mut conn, &mut scratch.body, idle).await {
            Ok(true) => translator.feed(&scratch.body, &mut scratch.events),
            Ok(false) => translator.end(&mut scratch.events),
            Err(e) => {
                let message = GatewayError::from_upstream(provider, e).to_string();
                let error = translate::error::ProviderError::new(translate::error::ErrorKind::BadGateway, message);
                translator.fail(error, &mut scratch.events)
            }
        };
        if !scratch.events.is_empty() && responder.stream(&scratch.events).await.is_err() {
            account(shard, translator.usage());
            return;
        }
        if state != State::Open {
            break;
        }
    }
    account(shard, translator.usage());
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

fn account(shard: &Shard, usage: Option<translate::Usage>) {
    if let Some(u) = usage {
        shard.count(Counter::PromptTokens, u.prompt_tokens);
        shard.count(Counter::CompletionTokens, u.completion_tokens);
    }
}

// Models and metrics -----------------------------------------------------------

/// `GET /v1/models`: every served model and alias the caller may use, in
/// OpenAI's list shape, sorted by id.
fn models_body(snapshot: &Snapshot, key: Option<usize>) -> Vec<u8> {
    let config = &snapshot.config;
    let allowed = |name: &str| key.is_none_or(|k| config.keys[k].models.allows(name));
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
