//! Routing: from a parsed request to a [`Reply`], without doing any I/O.
//!
//! Keeping this pure lets the decisions (which route, which script directive
//! wins, what body) be unit-tested, and leaves the connection code with only
//! framing and timing. The mock's own endpoints (`/health`, `/mock/*`) exist
//! in every dialect; everything else goes to the dialect chosen by
//! `--dialect`. Every model endpoint runs the same pipeline, [`model_call`],
//! so the scripting directives behave identically in all dialects. The only
//! state a decision reads or changes is the server's [`State`]: the
//! `--error-rate` draws and the `sequence` counters.
//!
//! OpenAI routes match on the path suffix so the OpenAI (`/v1/...`), Azure
//! (`/openai/deployments/{name}/...`) and Azure v1 (`/openai/v1/...`)
//! layouts all reach the same handlers.

use std::borrow::Cow;
use std::time::Duration;

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

use crate::mock::canned::Answer;
use crate::mock::cli::{Config, Dialect};
use crate::mock::events::EventList;
use crate::mock::http::Head;
use crate::mock::openai::{self, StreamPlan};
use crate::mock::script::{RetryAfter, Script};
use crate::mock::state::State;
use crate::mock::{anthropic, bedrock, gemini, json, ollama};

/// What the connection should do with a request.
#[derive(Debug)]
pub enum Reply {
    /// A JSON body with Content-Length, sent after `delay`.
    Json(JsonReply),
    /// The OpenAI text stream, rendered event by event.
    Stream(StreamPlan),
    /// Any other stream, rendered up front.
    Events(EventList),
    /// Bytes that are not HTTP, then close (`x-mock-garbage`).
    Garbage,
    /// Never answer (`x-mock-hang`).
    Hang,
    /// Reset the connection after the delay, before any response byte
    /// (`reset`).
    Reset(Duration),
}

/// A complete response with a body.
#[derive(Debug)]
pub struct JsonReply {
    pub status: u16,
    pub body: Cow<'static, [u8]>,
    pub delay: Duration,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
    /// Dialect-specific headers.
    pub extra: Vec<(&'static str, String)>,
    pub content_type: &'static str,
}

/// The bytes `x-mock-garbage` answers with.
pub const GARBAGE: &[u8] = b"not http at all\r\n\r\n";

/// Whose error body a route answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    OpenAi,
    Anthropic,
    Google,
    Aws,
    Ollama,
}

impl Shape {
    /// An error reply in this shape.
    pub fn error(self, status: u16, message: &str, delay: Duration) -> Reply {
        Reply::Json(self.error_json(status, message, delay))
    }

    /// The error response itself.
    pub fn error_json(self, status: u16, message: &str, delay: Duration) -> JsonReply {
        let mut reply = match self {
            Shape::OpenAi => json_reply(status, openai::error_body(status, message), Duration::ZERO),
            Shape::Anthropic => anthropic::error_reply(status, message),
            Shape::Google => gemini::error_reply(status, message),
            Shape::Aws => bedrock::error_reply(status, message),
            Shape::Ollama => ollama::error_reply(status, message),
        };
        // Every provider asks a rate-limited client to wait.
        if status == 429 && !reply.extra.iter().any(|(name, _)| *name == "retry-after") {
            reply.extra.push(("retry-after", "1".into()));
        }
        reply.delay = delay;
        reply
    }

    /// An error carrying the `Retry-After` headers a script asked for:
    /// `retry-after` everywhere (replacing the default of a 429 or 529),
    /// `retry-after-ms` where OpenAI's shape has it.
    pub fn scripted_error(self, status: u16, message: &str, delay: Duration, retry: RetryAfter) -> Reply {
        let mut reply = self.error_json(status, message, delay);
        if let Some(seconds) = retry.seconds {
            reply.extra.retain(|(name, _)| *name != "retry-after");
            reply.extra.push(("retry-after", seconds.to_string()));
        }
        if let Some(ms) = retry.ms
            && self == Shape::OpenAi
        {
            reply.extra.push(("retry-after-ms", ms.to_string()));
        }
        Reply::Json(reply)
    }

    /// The provider's "overloaded, try again" answer: what `--error-rate`
    /// and a non-stream `error-before-content` send.
    pub fn overloaded(self, delay: Duration, retry: RetryAfter) -> Reply {
        let (status, message) = match self {
            Shape::OpenAi => (503, openai::OVERLOADED_MESSAGE),
            Shape::Anthropic => (529, anthropic::OVERLOADED_MESSAGE),
            Shape::Google => (503, gemini::OVERLOADED_MESSAGE),
            Shape::Aws => (503, bedrock::OVERLOADED_MESSAGE),
            Shape::Ollama => (503, ollama::OVERLOADED_MESSAGE),
        };
        self.scripted_error(status, message, delay, retry)
    }

    /// The 404 for a path this dialect does not have.
    pub fn not_found(self, head: &Head) -> Reply {
        self.error(404, &format!("Invalid URL ({} {})", head.method, head.path()), Duration::ZERO)
    }
}

/// One request to a model endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub head: &'a Head,
    pub body: &'a [u8],
    pub cfg: &'a Config,
    pub state: &'a State,
    pub shape: Shape,
}

/// Finds the texts that may hold `[mock:...]` directives in a parsed body.
pub type Texts = for<'v> fn(&'v Value) -> Vec<&'v str>;

/// Decides the reply to one request.
pub fn route(head: &Head, body: &[u8], cfg: &Config, state: &State) -> Reply {
    if let Some(reply) = own_endpoint(head, state) {
        return reply;
    }
    let call = |shape| Call { head, body, cfg, state, shape };
    match cfg.dialect {
        Dialect::OpenAi => openai_route(call(Shape::OpenAi)),
        Dialect::Anthropic => anthropic::route(call(Shape::Anthropic)),
        Dialect::Gemini => gemini::route(call(Shape::Google)),
        Dialect::Bedrock => bedrock::route(call(Shape::Aws)),
        Dialect::Ollama => ollama::route(call(Shape::Ollama)),
    }
}

/// The rate-limit header lines of a dialect's model answers, where the
/// provider sends them, with a comfortable budget so no client backs off.
/// Static, so the benchmark's path writes them without allocating.
pub fn rate_limit_headers(dialect: Dialect) -> &'static [u8] {
    match dialect {
        Dialect::OpenAi => openai::RATE_LIMIT_HEADERS,
        Dialect::Anthropic => anthropic::RATE_LIMIT_HEADERS,
        Dialect::Gemini | Dialect::Bedrock | Dialect::Ollama => b"",
    }
}

/// Whether a request is for the mock itself rather than a model; those are
/// not recorded as the last request.
pub fn is_own_endpoint(path: &str) -> bool {
    path == "/health" || path.starts_with("/mock/")
}

/// `/health`, `/mock/stats`, `/mock/last-request`, `/mock/sequences`: GET
/// only, OpenAI error shape in every dialect.
fn own_endpoint(head: &Head, state: &State) -> Option<Reply> {
    let path = head.path();
    if !is_own_endpoint(path) {
        return None;
    }
    let known = matches!(path, "/health" | "/mock/stats" | "/mock/last-request" | "/mock/sequences");
    if !known {
        return Some(Shape::OpenAi.not_found(head));
    }
    if head.method != "GET" {
        return Some(method_not_allowed(head, "GET", Shape::OpenAi));
    }
    Some(match path {
        "/health" => ok(Cow::Borrowed(br#"{"status":"ok"}"#)),
        "/mock/stats" => ok(Cow::Owned(state.render_stats())),
        "/mock/sequences" => ok(Cow::Owned(state.render_sequences())),
        _ => match state.render_last() {
            Some(body) => ok(Cow::Owned(body)),
            None => Shape::OpenAi.error(404, "no model request received yet", Duration::ZERO),
        },
    })
}

/// The 405 with its `Allow` header.
pub fn method_not_allowed(head: &Head, allow: &'static str, shape: Shape) -> Reply {
    let message = format!("Method {} is not allowed on {}", head.method, head.path());
    let mut reply = shape.error_json(405, &message, Duration::ZERO);
    reply.allow = Some(allow);
    Reply::Json(reply)
}

/// The pipeline every model endpoint runs.
///
/// Header directives first: a `sequence` picks this request's step, then
/// transport-level ones (garbage, reset, hang) replace HTTP altogether,
/// `status` wins over everything else, and echo comes before validation so
/// tests can see exactly what arrived even when it is not valid JSON. Then
/// authentication, `--error-rate`, the JSON body, and the body's own
/// directives (which may again ask for any of the above). Only then does the
/// dialect validate and `serve`.
pub fn model_call(
    call: Call<'_>,
    auth: Result<(), (u16, String)>,
    texts: Texts,
    serve: impl FnOnce(&Value, Answer) -> Reply,
) -> Reply {
    let shape = call.shape;
    let mut script = match &call.head.script {
        Ok(script) => script.clone(),
        Err(message) => return shape.error(400, message, Duration::ZERO),
    };
    if let Some(reply) = directed(call, &mut script) {
        return reply;
    }
    if let Err((status, message)) = auth {
        return shape.error(status, &message, Duration::ZERO);
    }
    let delay = script.delay.unwrap_or(call.cfg.delay);
    if call.cfg.error_rate > 0.0 && call.state.draw(call.cfg.seed) < call.cfg.error_rate {
        return match call.cfg.error_status {
            Some(status) => shape.scripted_error(status, "mock error (--error-rate)", delay, script.retry),
            None => shape.overloaded(delay, script.retry),
        };
    }
    let v = match openai::parse_object(call.body) {
        Ok(v) => v,
        Err(message) => return shape.error(400, &message, delay),
    };
    for text in texts(&v) {
        if let Err(message) = script.apply_text(text) {
            return shape.error(400, &message, delay);
        }
    }
    if let Some(reply) = directed(call, &mut script) {
        return reply;
    }
    let delay = script.delay.unwrap_or(call.cfg.delay);
    serve(&v, Answer::new(&script, call.cfg, delay))
}

/// The directives that answer without looking at the body's meaning. A
/// `sequence` is taken out of the script as its step is applied, so a
/// request advances it once even though this runs again after the body's
/// directives are read.
fn directed(call: Call<'_>, script: &mut Script) -> Option<Reply> {
    let delay = script.delay.unwrap_or(call.cfg.delay);
    if let Some(sequence) = script.sequence.take() {
        let id = script.seq_id.as_deref().unwrap_or_default();
        let Some(n) = call.state.sequence_request(id, &sequence) else {
            let message = format!("too many sequences (the mock keeps {})", crate::mock::state::SEQUENCES_MAX);
            return Some(call.shape.error(400, &message, Duration::ZERO));
        };
        script.apply_step(sequence.step(n));
    }
    if script.garbage {
        return Some(Reply::Garbage);
    }
    if script.reset {
        return Some(Reply::Reset(delay));
    }
    if script.hang {
        return Some(Reply::Hang);
    }
    if let Some(status) = script.status {
        return Some(call.shape.scripted_error(status, &format!("mock error {status}"), delay, script.retry));
    }
    script.echo.then(|| Reply::Json(json_reply(200, echo(call.head, call.body), delay)))
}

/// The texts of the last message when it is a user turn: `list` names the
/// message array, `content` the field holding a string or an array of
/// strings and `{"text":...}` blocks. A missing role counts as user (Gemini
/// allows it). Directives in earlier turns are ignored on purpose, so a
/// conversation that continues after a scripted tool call gets a plain
/// answer.
pub fn last_user_texts<'v>(v: &'v Value, list: &str, content: &str) -> Vec<&'v str> {
    let mut out = Vec::new();
    let Some(last) = v.get(list).and_then(|l| l.as_array()).and_then(|l| l.iter().last()) else {
        return out;
    };
    if last.get("role").is_some_and(|r| r.as_str() != Some("user")) {
        return out;
    }
    if let Some(content) = last.get(content) {
        push_texts(content, &mut out);
    }
    out
}

/// Collects a string, or the strings and `text` fields of an array.
pub fn push_texts<'v>(content: &'v Value, out: &mut Vec<&'v str>) {
    if let Some(s) = content.as_str() {
        out.push(s);
        return;
    }
    for item in content.as_array().into_iter().flat_map(|a| a.iter()) {
        if let Some(s) = item.as_str().or_else(|| item.get("text").and_then(|t| t.as_str())) {
            out.push(s);
        }
    }
}

/// The top-level `"mock"` string, where the dialect's real API tolerates
/// extra fields.
pub fn mock_field(v: &Value) -> Option<&str> {
    v.get("mock").and_then(|m| m.as_str())
}

// ---------------------------------------------------------------------------
// The OpenAI dialect's routes (also served by the Ollama dialect under /v1).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint<'a> {
    /// Chat completions, with the Azure deployment name if the path has one.
    Chat(Option<&'a str>),
    Embeddings(Option<&'a str>),
    Models,
}

/// The OpenAI (and Azure) endpoints.
pub fn openai_route(call: Call<'_>) -> Reply {
    let head = call.head;
    let Some(endpoint) = classify(head.path()) else {
        return call.shape.not_found(head);
    };
    let allow = if endpoint == Endpoint::Models { "GET" } else { "POST" };
    if head.method != allow {
        return method_not_allowed(head, allow, call.shape);
    }
    match endpoint {
        Endpoint::Models => ok(Cow::Borrowed(openai::MODELS)),
        Endpoint::Chat(deployment) => model_call(call, Ok(()), chat_texts, |v, answer| chat(v, deployment, answer)),
        Endpoint::Embeddings(deployment) => {
            model_call(call, Ok(()), embeddings_texts, |v, answer| embeddings(v, deployment, answer.delay))
        }
    }
}

fn classify(path: &str) -> Option<Endpoint<'_>> {
    let deployment = deployment(path);
    if path.ends_with("/chat/completions") {
        Some(Endpoint::Chat(deployment))
    } else if path.ends_with("/embeddings") {
        Some(Endpoint::Embeddings(deployment))
    } else if path.ends_with("/models") {
        Some(Endpoint::Models)
    } else {
        None
    }
}

/// The `{name}` of an Azure `/deployments/{name}/...` path.
fn deployment(path: &str) -> Option<&str> {
    let (_, rest) = path.split_once("/deployments/")?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then_some(name)
}

fn chat_texts(v: &Value) -> Vec<&str> {
    let mut texts = last_user_texts(v, "messages", "content");
    texts.extend(mock_field(v));
    texts
}

fn embeddings_texts(v: &Value) -> Vec<&str> {
    let mut texts = Vec::new();
    if let Some(input) = v.get("input") {
        push_texts(input, &mut texts);
    }
    texts.extend(mock_field(v));
    texts
}

fn chat(v: &Value, deployment: Option<&str>, answer: Answer) -> Reply {
    let req = match openai::parse_chat_value(v, deployment.is_none()) {
        Ok(req) => req,
        Err(message) => return Shape::OpenAi.error(400, &message, answer.delay),
    };
    let model = req.model.as_deref().or(deployment).unwrap_or_default();
    if !req.stream {
        if answer.error_before_content {
            return Shape::OpenAi.overloaded(answer.delay, answer.retry);
        }
        let body = match &answer.tool {
            Some(tool) => openai::tool_completion(model, tool),
            None => openai::chat_completion(model),
        };
        return Reply::Json(json_reply(200, body, answer.delay));
    }
    if answer.tool.is_some() || answer.error_mid_stream || answer.error_before_content {
        return Reply::Events(openai::scripted_stream(model, &answer, req.include_usage));
    }
    let mut plan = StreamPlan::new(model, answer.chunks, req.include_usage, answer.delay);
    plan.cut = answer.cut;
    Reply::Stream(plan)
}

fn embeddings(v: &Value, deployment: Option<&str>, delay: Duration) -> Reply {
    match openai::parse_embeddings_value(v, deployment.is_none()) {
        Ok(req) => {
            let model = req.model.as_deref().or(deployment).unwrap_or_default();
            let body = openai::embeddings(model, req.inputs);
            Reply::Json(json_reply(200, body, delay))
        }
        Err(message) => Shape::OpenAi.error(400, &message, delay),
    }
}

// ---------------------------------------------------------------------------
// Small constructors shared by the dialects.

/// `{"method","path","headers","body"}`: what the mock received.
fn echo(head: &Head, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(br#"{"method":"#);
    json::push_str(&mut out, &head.method);
    out.extend_from_slice(br#","path":"#);
    json::push_str(&mut out, &head.target);
    out.extend_from_slice(br#","headers":"#);
    json::push_headers(&mut out, &head.headers);
    out.extend_from_slice(br#","body":"#);
    json::push_str(&mut out, &String::from_utf8_lossy(body));
    out.push(b'}');
    out
}

pub fn ok(body: Cow<'static, [u8]>) -> Reply {
    Reply::Json(json_reply(200, body, Duration::ZERO))
}

pub fn json_reply(status: u16, body: impl Into<Cow<'static, [u8]>>, delay: Duration) -> JsonReply {
    JsonReply { status, body: body.into(), delay, allow: None, extra: Vec::new(), content_type: "application/json" }
}

/// Whether a JSON value is a non-empty array.
pub fn non_empty_array(v: Option<&Value>) -> bool {
    v.and_then(|v| v.as_array()).is_some_and(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::events::{Cut, CutKind};
    use crate::mock::http::parse_head;

    const CFG: Config = Config {
        chunks: 4,
        delay: Duration::from_millis(7),
        error_rate: 0.0,
        seed: 0,
        error_status: None,
        dialect: Dialect::OpenAi,
    };

    const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

    fn reply(raw: &str, body: &str) -> Reply {
        let head = parse_head(raw.as_bytes()).unwrap().unwrap();
        route(&head, body.as_bytes(), &CFG, &State::default())
    }

    fn json(raw: &str, body: &str) -> JsonReply {
        match reply(raw, body) {
            Reply::Json(r) => r,
            other => panic!("expected JSON, got {other:?}"),
        }
    }

    #[test]
    fn classifies_openai_and_azure_paths() {
        assert_eq!(classify("/v1/chat/completions"), Some(Endpoint::Chat(None)));
        assert_eq!(classify("/openai/deployments/dep-1/chat/completions"), Some(Endpoint::Chat(Some("dep-1"))));
        assert_eq!(classify("/openai/v1/embeddings"), Some(Endpoint::Embeddings(None)));
        assert_eq!(classify("/v1/models"), Some(Endpoint::Models));
        assert_eq!(classify("/v1/completions"), None);
    }

    #[test]
    fn azure_deployment_names_the_model() {
        let r = json(
            "POST /openai/deployments/my-dep/chat/completions?api-version=2024-10-21 HTTP/1.1\r\n\r\n",
            r#"{"messages":[]}"#,
        );
        assert_eq!(r.status, 200);
        assert!(String::from_utf8_lossy(&r.body).contains(r#""model":"my-dep""#));
    }

    #[test]
    fn wrong_method_is_405_with_allow() {
        let r = json("GET /v1/chat/completions HTTP/1.1\r\n\r\n", "");
        assert_eq!((r.status, r.allow), (405, Some("POST")));
        let r = json("POST /mock/last-request HTTP/1.1\r\n\r\n", "");
        assert_eq!((r.status, r.allow), (405, Some("GET")));
    }

    #[test]
    fn script_directives_take_precedence() {
        let r =
            json("POST /v1/chat/completions HTTP/1.1\r\nx-mock-status: 429\r\nx-mock-delay-ms: 3\r\n\r\n", "not json");
        assert_eq!((r.status, r.delay), (429, Duration::from_millis(3)));
        let bad = json("POST /v1/embeddings HTTP/1.1\r\nx-mock-status: x\r\n\r\n", "");
        assert_eq!(bad.status, 400);
        let garbage = "POST /v1/embeddings HTTP/1.1\r\nx-mock-garbage: 1\r\n\r\n";
        assert!(matches!(reply(garbage, ""), Reply::Garbage));
        let hang = "POST /v1/chat/completions HTTP/1.1\r\nx-mock-hang: 1\r\n\r\n";
        assert!(matches!(reply(hang, ""), Reply::Hang));
    }

    #[test]
    fn body_directives_apply_from_the_last_user_message_only() {
        let raw = "POST /v1/chat/completions HTTP/1.1\r\n\r\n";
        let last =
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi [mock:status=418]"}]}]}"#;
        assert_eq!(json(raw, last).status, 418);
        let earlier =
            r#"{"model":"m","messages":[{"role":"user","content":"[mock:status=418]"},{"role":"tool","content":"x"}]}"#;
        assert_eq!(json(raw, earlier).status, 200);
        let field = r#"{"model":"m","messages":[],"mock":"[mock:garbage]"}"#;
        assert!(matches!(reply(raw, field), Reply::Garbage));
        let typo = r#"{"model":"m","messages":[{"role":"user","content":"[mock:stat=1]"}]}"#;
        assert_eq!(json(raw, typo).status, 400);
    }

    #[test]
    fn stream_plan_uses_flags_and_overrides() {
        let raw = "POST /v1/chat/completions HTTP/1.1\r\nx-mock-chunks: 2\r\nx-mock-close-mid-stream: 1\r\n\r\n";
        let Reply::Stream(plan) = reply(raw, r#"{"model":"m","messages":[],"stream":true}"#) else {
            panic!("expected a stream");
        };
        assert_eq!((plan.chunks, plan.cut), (2, Some(Cut { after: 1, kind: CutKind::Close })));
        assert_eq!(plan.delay, CFG.delay);
    }

    fn header<'r>(reply: &'r JsonReply, name: &str) -> Vec<&'r str> {
        reply.extra.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.as_str()).collect()
    }

    #[test]
    fn sequences_step_per_request_and_per_id() {
        let state = State::default();
        let send = |script: &str, id: &str| {
            let raw = format!(
                "POST /v1/chat/completions HTTP/1.1\r\nx-mock-sequence: {script}\r\nx-mock-seq-id: {id}\r\n\r\n"
            );
            let head = parse_head(raw.as_bytes()).unwrap().unwrap();
            route(&head, CHAT.as_bytes(), &CFG, &state)
        };
        let status = |reply: Reply| match reply {
            Reply::Json(r) => r.status,
            other => panic!("expected JSON, got {other:?}"),
        };
        assert_eq!(status(send("503,429,200", "a")), 503);
        assert_eq!(status(send("503,429,200", "a")), 429);
        assert_eq!(status(send("503,429,200", "b")), 503, "another id has its own counter");
        assert_eq!(status(send("503,429,200", "a")), 200);
        assert_eq!(status(send("503,429,200", "a")), 200, "the last step repeats");
        assert!(matches!(send("reset,hang,200", "a"), Reply::Reset(_)));
        assert!(matches!(send("reset,hang,200", "a"), Reply::Hang));
        let v: Value = sonic_rs::from_slice(&state.render_sequences()).unwrap();
        assert_eq!(v["sequences"][0]["requests"].as_u64(), Some(4));
        assert_eq!(v["sequences"][2]["seq-id"].as_str(), Some("b"));
    }

    #[test]
    fn a_body_sequence_advances_once_per_request() {
        let state = State::default();
        let raw = "POST /v1/chat/completions HTTP/1.1\r\n\r\n";
        let body = r#"{"model":"m","messages":[{"role":"user","content":"[mock:sequence=error-before-content,200]"}],"stream":true}"#;
        let head = parse_head(raw.as_bytes()).unwrap().unwrap();
        let Reply::Events(list) = route(&head, body.as_bytes(), &CFG, &state) else { panic!("expected events") };
        assert_eq!(list.events.len(), 1);
        assert!(String::from_utf8_lossy(&list.events[0].1).starts_with(r#"data: {"error":"#));
        assert!(matches!(route(&head, body.as_bytes(), &CFG, &state), Reply::Stream(_)));
        let v: Value = sonic_rs::from_slice(&state.render_sequences()).unwrap();
        assert_eq!(v["sequences"][0]["requests"].as_u64(), Some(2));
    }

    #[test]
    fn retry_after_directives_set_error_headers() {
        let raw = "POST /v1/chat/completions HTTP/1.1\r\nx-mock-status: 429\r\nx-mock-retry-after: 7\r\nx-mock-retry-after-ms: 6500\r\n\r\n";
        let r = json(raw, CHAT);
        assert_eq!((header(&r, "retry-after"), header(&r, "retry-after-ms")), (vec!["7"], vec!["6500"]));
        let plain = json("POST /v1/chat/completions HTTP/1.1\r\nx-mock-status: 429\r\n\r\n", CHAT);
        assert_eq!(header(&plain, "retry-after"), ["1"]);
        let server = json("POST /v1/chat/completions HTTP/1.1\r\nx-mock-status: 503\r\n\r\n", CHAT);
        assert!(header(&server, "retry-after").is_empty());
        let ok = json("POST /v1/chat/completions HTTP/1.1\r\nx-mock-retry-after: 7\r\n\r\n", CHAT);
        assert!(ok.status == 200 && ok.extra.is_empty(), "only error answers carry it");
    }

    #[test]
    fn overloaded_answers_in_each_shape() {
        let retry = RetryAfter { seconds: Some(3), ms: Some(2500) };
        let cases = [
            (Shape::OpenAi, 503, vec!["3"], vec!["2500"]),
            (Shape::Anthropic, 529, vec!["3"], vec![]),
            (Shape::Google, 503, vec!["3"], vec![]),
            (Shape::Aws, 503, vec!["3"], vec![]),
            (Shape::Ollama, 503, vec!["3"], vec![]),
        ];
        for (shape, status, after, after_ms) in cases {
            let Reply::Json(r) = shape.overloaded(Duration::ZERO, retry) else { panic!("expected JSON") };
            assert_eq!(r.status, status, "{shape:?}");
            assert_eq!((header(&r, "retry-after"), header(&r, "retry-after-ms")), (after, after_ms), "{shape:?}");
        }
        let Reply::Json(r) = Shape::Anthropic.overloaded(Duration::ZERO, RetryAfter::default()) else { panic!() };
        assert_eq!(header(&r, "retry-after"), ["1"], "Anthropic's 529 has its own default");
        let Reply::Json(r) = Shape::Aws.overloaded(Duration::ZERO, RetryAfter::default()) else { panic!() };
        assert!(header(&r, "x-amzn-ErrorType")[0].starts_with("ServiceUnavailableException:"));
    }

    #[test]
    fn error_rate_draws_from_the_seed() {
        let cfg = Config { error_rate: 0.5, seed: 9, ..CFG };
        let statuses = |cfg: &Config| {
            let state = State::default();
            let head = parse_head(b"POST /v1/chat/completions HTTP/1.1\r\n\r\n").unwrap().unwrap();
            (0..64)
                .map(|_| match route(&head, CHAT.as_bytes(), cfg, &state) {
                    Reply::Json(r) => r.status,
                    other => panic!("expected JSON, got {other:?}"),
                })
                .collect::<Vec<u16>>()
        };
        let first = statuses(&cfg);
        assert_eq!(first, statuses(&cfg));
        assert_ne!(first, statuses(&Config { seed: 10, ..cfg }));
        let failed = first.iter().filter(|&&s| s == 503).count();
        assert!((16..48).contains(&failed), "{failed} of 64");
        assert!(first.iter().all(|&s| s == 503 || s == 200));
        let always = statuses(&Config { error_rate: 1.0, error_status: Some(500), ..cfg });
        assert!(always.iter().all(|&s| s == 500));
    }

    #[test]
    fn echo_reports_the_request() {
        let raw = "POST /v1/embeddings?x=1 HTTP/1.1\r\nX-Mock-Echo: 1\r\nA: 1\r\na: 2\r\n\r\n";
        let r = json(raw, "{\"raw\"}");
        let v: sonic_rs::Value = sonic_rs::from_slice(&r.body).unwrap();
        assert_eq!(v["path"].as_str(), Some("/v1/embeddings?x=1"));
        assert_eq!(v["headers"]["a"].as_str(), Some("1, 2"));
        assert_eq!(v["body"].as_str(), Some("{\"raw\"}"));
    }
}
