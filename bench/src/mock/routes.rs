//! Routing: from a parsed request to a [`Reply`], without doing any I/O.
//!
//! Keeping this pure lets the decisions (which route, which script directive
//! wins, what body) be unit-tested, and leaves the connection code with only
//! framing and timing. Routes match on the path suffix so the OpenAI
//! (`/v1/...`), Azure (`/openai/deployments/{name}/...`) and Azure v1
//! (`/openai/v1/...`) layouts all reach the same handlers.

use std::borrow::Cow;
use std::time::Duration;

use crate::mock::cli::Config;
use crate::mock::http::Head;
use crate::mock::openai::{self, StreamPlan};
use crate::mock::script::Script;
use crate::mock::{json, stats};

/// What the connection should do with a request.
#[derive(Debug)]
pub enum Reply {
    /// A JSON body with Content-Length, sent after `delay`.
    Json(JsonReply),
    /// A chat completion as server-sent events.
    Stream(StreamPlan),
    /// Bytes that are not HTTP, then close (`x-mock-garbage`).
    Garbage,
    /// Never answer (`x-mock-hang`).
    Hang,
}

/// A complete JSON response.
#[derive(Debug)]
pub struct JsonReply {
    pub status: u16,
    pub body: Cow<'static, [u8]>,
    pub delay: Duration,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

/// The bytes `x-mock-garbage` answers with.
pub const GARBAGE: &[u8] = b"not http at all\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint<'a> {
    /// Chat completions, with the Azure deployment name if the path has one.
    Chat(Option<&'a str>),
    Embeddings(Option<&'a str>),
    Models,
    Health,
    Stats,
}

impl Endpoint<'_> {
    fn method(self) -> &'static str {
        match self {
            Endpoint::Chat(_) | Endpoint::Embeddings(_) => "POST",
            _ => "GET",
        }
    }
}

/// Decides the reply to one request.
pub fn route(head: &Head, body: &[u8], cfg: &Config) -> Reply {
    let path = head.path();
    let Some(endpoint) = classify(path) else {
        let message = format!("Invalid URL ({} {path})", head.method);
        return error(404, &message, Duration::ZERO);
    };
    let allow = endpoint.method();
    if head.method != allow {
        let message = format!("Method {} is not allowed on {path}", head.method);
        let mut reply = json_reply(405, openai::error_body(405, &message), Duration::ZERO);
        reply.allow = Some(allow);
        return Reply::Json(reply);
    }
    match endpoint {
        Endpoint::Health => ok(Cow::Borrowed(br#"{"status":"ok"}"#)),
        Endpoint::Stats => ok(Cow::Owned(stats::render())),
        Endpoint::Models => ok(Cow::Borrowed(openai::MODELS)),
        Endpoint::Chat(_) | Endpoint::Embeddings(_) => scripted(head, body, cfg, endpoint),
    }
}

fn classify(path: &str) -> Option<Endpoint<'_>> {
    match path {
        "/health" => return Some(Endpoint::Health),
        "/mock/stats" => return Some(Endpoint::Stats),
        _ => {}
    }
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

/// Chat and embeddings: apply the `x-mock-*` script, then the flags, then
/// serve. Transport-level directives (garbage, hang) come first because they
/// replace HTTP altogether; echo comes before validation so tests can see
/// exactly what arrived even when it is not valid JSON.
fn scripted(head: &Head, body: &[u8], cfg: &Config, endpoint: Endpoint<'_>) -> Reply {
    let script = match &head.script {
        Ok(script) => script,
        Err(message) => return error(400, message, Duration::ZERO),
    };
    if script.garbage {
        return Reply::Garbage;
    }
    if script.hang {
        return Reply::Hang;
    }
    let delay = script.delay.unwrap_or(cfg.delay);
    if let Some(status) = script.status {
        return error(status, &format!("mock error {status}"), delay);
    }
    if script.echo {
        return Reply::Json(json_reply(200, echo(head, body), delay));
    }
    if cfg.error_rate > 0.0 && fastrand::f64() < cfg.error_rate {
        return error(500, "mock error (--error-rate)", delay);
    }
    match endpoint {
        Endpoint::Chat(deployment) => chat(body, deployment, script, cfg, delay),
        Endpoint::Embeddings(deployment) => embeddings(body, deployment, delay),
        _ => error(404, "unreachable route", Duration::ZERO),
    }
}

fn chat(body: &[u8], deployment: Option<&str>, script: &Script, cfg: &Config, delay: Duration) -> Reply {
    let req = match openai::parse_chat(body, deployment.is_none()) {
        Ok(req) => req,
        Err(message) => return error(400, &message, delay),
    };
    let model = req.model.as_deref().or(deployment).unwrap_or_default();
    if !req.stream {
        return Reply::Json(json_reply(200, openai::chat_completion(model), delay));
    }
    let chunks = script.chunks.unwrap_or(cfg.chunks);
    let mut plan = StreamPlan::new(model, chunks, req.include_usage, delay);
    plan.close_after = script.close_after;
    Reply::Stream(plan)
}

fn embeddings(body: &[u8], deployment: Option<&str>, delay: Duration) -> Reply {
    match openai::parse_embeddings(body, deployment.is_none()) {
        Ok(req) => {
            let model = req.model.as_deref().or(deployment).unwrap_or_default();
            let body = openai::embeddings(model, req.inputs);
            Reply::Json(json_reply(200, body, delay))
        }
        Err(message) => error(400, &message, delay),
    }
}

/// `{"method","path","headers","body"}`: what the mock received. Repeated
/// headers are joined with ", " since a JSON object cannot repeat a key.
fn echo(head: &Head, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(br#"{"method":"#);
    json::push_str(&mut out, &head.method);
    out.extend_from_slice(br#","path":"#);
    json::push_str(&mut out, &head.target);
    out.extend_from_slice(br#","headers":{"#);
    for (i, (name, _)) in head.headers.iter().enumerate() {
        if head.headers[..i].iter().any(|(n, _)| n == name) {
            continue;
        }
        if i > 0 {
            out.push(b',');
        }
        let values: Vec<&str> = head.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
        json::push_str(&mut out, name);
        out.push(b':');
        json::push_str(&mut out, &values.join(", "));
    }
    out.extend_from_slice(br#"},"body":"#);
    json::push_str(&mut out, &String::from_utf8_lossy(body));
    out.push(b'}');
    out
}

fn ok(body: Cow<'static, [u8]>) -> Reply {
    Reply::Json(json_reply(200, body, Duration::ZERO))
}

fn error(status: u16, message: &str, delay: Duration) -> Reply {
    Reply::Json(json_reply(status, openai::error_body(status, message), delay))
}

fn json_reply(status: u16, body: impl Into<Cow<'static, [u8]>>, delay: Duration) -> JsonReply {
    JsonReply { status, body: body.into(), delay, allow: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::http::parse_head;
    use sonic_rs::JsonValueTrait;

    const CFG: Config = Config { chunks: 4, delay: Duration::from_millis(7), error_rate: 0.0 };

    fn reply(raw: &str, body: &str) -> Reply {
        let head = parse_head(raw.as_bytes()).unwrap().unwrap();
        route(&head, body.as_bytes(), &CFG)
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
    fn stream_plan_uses_flags_and_overrides() {
        let raw = "POST /v1/chat/completions HTTP/1.1\r\nx-mock-chunks: 2\r\nx-mock-close-mid-stream: 1\r\n\r\n";
        let Reply::Stream(plan) = reply(raw, r#"{"model":"m","messages":[],"stream":true}"#) else {
            panic!("expected a stream");
        };
        assert_eq!((plan.chunks, plan.close_after), (2, Some(1)));
        assert_eq!(plan.delay, CFG.delay);
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
