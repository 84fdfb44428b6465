//! What one mock server remembers: counters for `GET /mock/stats` and the
//! last model request for `GET /mock/last-request`.
//!
//! The state belongs to one [`start`](crate::mock::start) call, not to the
//! process, because the gateway's tests run many mocks inside one test
//! process and each must answer for its own traffic. Counters are relaxed
//! atomics (nothing is ordered by them). The last request sits behind a
//! mutex: every worker thread writes it, the lock is held only to swap one
//! owned record, and the mock is a test tool, not the gateway's data path.

use std::sync::atomic::{AtomicU64, Ordering};

use sonic_rs::Value;

use crate::mock::json;

#[allow(clippy::disallowed_types, reason = "held for one swap, never across an await; see the module doc")]
type Slot = std::sync::Mutex<Option<Recorded>>;

/// Headers whose values are secrets: shown redacted.
const SECRET_HEADERS: &[&str] = &["x-api-key", "x-goog-api-key", "api-key", "x-amz-security-token"];
const REDACTED: &str = "[redacted]";

/// One server's counters and last request.
#[derive(Debug, Default)]
pub struct State {
    connections: AtomicU64,
    requests: AtomicU64,
    last: Slot,
}

/// A request as received, kept for `GET /mock/last-request`.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path plus query string.
    pub target: String,
    /// Lowercased names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl State {
    /// Counts one accepted TCP connection.
    pub fn connection_accepted(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one fully received request, including the stats request itself.
    pub fn request_received(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the counters as the `/mock/stats` JSON body.
    pub fn render_stats(&self) -> Vec<u8> {
        let connections = self.connections.load(Ordering::Relaxed);
        let requests = self.requests.load(Ordering::Relaxed);
        format!(r#"{{"connections":{connections},"requests":{requests}}}"#).into_bytes()
    }

    /// Replaces the last request.
    pub fn record(&self, request: Recorded) {
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *last = Some(request);
    }

    /// The `/mock/last-request` body, or `None` before any model request.
    pub fn render_last(&self) -> Option<Vec<u8>> {
        let last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()?;
        Some(render(&last))
    }
}

/// `{"method","path","headers":{...},"body":...}` with secrets redacted.
/// The body is embedded as JSON when it is JSON (so tests index into it),
/// as a string otherwise, and `null` when empty.
fn render(r: &Recorded) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + r.body.len());
    out.extend_from_slice(br#"{"method":"#);
    json::push_str(&mut out, &r.method);
    out.extend_from_slice(br#","path":"#);
    json::push_str(&mut out, &redact_query(&r.target));
    out.extend_from_slice(br#","headers":"#);
    let headers: Vec<(String, String)> = r.headers.iter().map(|(n, v)| (n.clone(), redact(n, v))).collect();
    json::push_headers(&mut out, &headers);
    out.extend_from_slice(br#","body":"#);
    if r.body.is_empty() {
        out.extend_from_slice(b"null");
    } else if sonic_rs::from_slice::<Value>(&r.body).is_ok() {
        out.extend_from_slice(&r.body);
    } else {
        json::push_str(&mut out, &String::from_utf8_lossy(&r.body));
    }
    out.push(b'}');
    out
}

/// Keeps what a test asserts on and hides the secret: a bearer token or API
/// key disappears, a SigV4 `Authorization` keeps its credential scope and
/// signed-header list but loses the signature.
fn redact(name: &str, value: &str) -> String {
    if SECRET_HEADERS.contains(&name) {
        return REDACTED.to_owned();
    }
    if name != "authorization" {
        return value.to_owned();
    }
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme != "AWS4-HMAC-SHA256" {
        return format!("{scheme} {REDACTED}");
    }
    match rest.find("Signature=") {
        Some(at) => format!("{scheme} {}Signature={REDACTED}", &rest[..at]),
        None => format!("{scheme} {rest}"),
    }
}

/// Hides the value of a `key=` query parameter (Gemini's API key).
fn redact_query(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| if p.starts_with("key=") { format!("key={REDACTED}") } else { p.to_owned() })
        .collect();
    format!("{path}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonic_rs::JsonValueTrait;

    #[test]
    fn redacts_secrets_only() {
        assert_eq!(redact("authorization", "Bearer sk-1"), "Bearer [redacted]");
        let sigv4 = "AWS4-HMAC-SHA256 Credential=AKID/20250102/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(
            redact("authorization", sigv4),
            "AWS4-HMAC-SHA256 Credential=AKID/20250102/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=[redacted]"
        );
        assert_eq!(redact("x-api-key", "sk-ant"), REDACTED);
        assert_eq!(redact("content-type", "application/json"), "application/json");
        assert_eq!(redact_query("/m:g?alt=sse&key=K"), "/m:g?alt=sse&key=[redacted]");
        assert_eq!(redact_query("/p"), "/p");
    }

    #[test]
    fn renders_json_and_text_bodies() {
        let state = State::default();
        assert!(state.render_last().is_none());
        let mut r = Recorded {
            method: "POST".into(),
            target: "/x".into(),
            headers: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            body: br#"{"k":[1]}"#.to_vec(),
        };
        state.record(r.clone());
        let v: Value = sonic_rs::from_slice(&state.render_last().unwrap()).unwrap();
        assert_eq!(
            sonic_rs::to_string(&v).unwrap(),
            r#"{"method":"POST","path":"/x","headers":{"a":"1, 2"},"body":{"k":[1]}}"#
        );
        r.body = b"not json".to_vec();
        state.record(r);
        let v: Value = sonic_rs::from_slice(&state.render_last().unwrap()).unwrap();
        assert_eq!(v["body"].as_str(), Some("not json"));
    }
}
