//! What one mock server is and remembers: its `--name` and the response
//! headers every answer carries, counters for `GET /mock/stats`, the last
//! model request for `GET /mock/last-request`, the position of every
//! `sequence` for `GET /mock/sequences`, and the `--error-rate` draws.
//!
//! The state belongs to one [`start`](crate::mock::start) call, not to the
//! process, because the gateway's tests run many mocks inside one test
//! process and each must answer for its own traffic. Counters are relaxed
//! atomics (nothing is ordered by them). The last request and the sequence
//! counters sit behind mutexes: every worker thread writes them, a lock is
//! held only to swap one record or bump one counter, and the mock is a test
//! tool, not the gateway's data path. Requests without directives never
//! take a lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use sonic_rs::Value;

use crate::mock::json;
use crate::mock::script::Sequence;

#[allow(clippy::disallowed_types, reason = "held for one swap, never across an await; see the module doc")]
type Slot = std::sync::Mutex<Option<Recorded>>;
#[allow(clippy::disallowed_types, reason = "held for one increment, never across an await; see the module doc")]
type Sequences = std::sync::Mutex<BTreeMap<SequenceKey, u64>>;

/// A sequence's counter: its `seq-id` (empty without one) and canonical text.
type SequenceKey = (String, String);

/// Most sequence counters one server keeps, so a client inventing ids cannot
/// grow the mock without bound. Tests use a handful each.
pub const SEQUENCES_MAX: usize = 4096;

/// Headers whose values are secrets: shown redacted.
const SECRET_HEADERS: &[&str] = &["x-api-key", "x-goog-api-key", "api-key", "x-amz-security-token"];
const REDACTED: &str = "[redacted]";

/// One server's identity, counters and last request.
#[derive(Debug, Default)]
pub struct State {
    name: Option<String>,
    /// `x-mock-name: NAME\r\n`, or nothing without a name.
    identity: Vec<u8>,
    /// The dialect's rate-limit header lines, sent on every model answer.
    rate_limits: &'static [u8],
    connections: AtomicU64,
    requests: AtomicU64,
    /// `--error-rate` draws made so far: the number of the next one.
    draws: AtomicU64,
    last: Slot,
    sequences: Sequences,
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
    /// A server called `name` (a header-safe value, as `--name` checks)
    /// whose model answers carry the `rate_limits` header lines.
    pub fn new(name: Option<String>, rate_limits: &'static [u8]) -> State {
        let identity = name.as_ref().map_or_else(Vec::new, |n| format!("x-mock-name: {n}\r\n").into_bytes());
        State { name, identity, rate_limits, ..State::default() }
    }

    /// The header lines of every answer.
    pub fn identity(&self) -> &[u8] {
        &self.identity
    }

    /// The header lines of every model answer.
    pub fn rate_limits(&self) -> &'static [u8] {
        self.rate_limits
    }

    /// The next `--error-rate` draw, uniform in [0, 1): SplitMix64 of the
    /// seed and the draw's number, so the nth draw is the same on every run
    /// whichever worker makes it.
    pub fn draw(&self, seed: u64) -> f64 {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        let bits = splitmix64(seed.wrapping_add(n.wrapping_add(1).wrapping_mul(GOLDEN_GAMMA)));
        // The top 53 bits, as an f64 mantissa holds.
        (bits >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Counts one request on the sequence `id` and returns its number (from
    /// 0), or `None` when the table of sequences is full.
    pub fn sequence_request(&self, id: &str, sequence: &Sequence) -> Option<u64> {
        let mut sequences = self.sequences.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (id.to_owned(), sequence.text().to_owned());
        if !sequences.contains_key(&key) && sequences.len() >= SEQUENCES_MAX {
            return None;
        }
        let count = sequences.entry(key).or_insert(0);
        *count += 1;
        Some(*count - 1)
    }

    /// The `/mock/sequences` body: every sequence's requests so far,
    /// `{"sequences":[{"seq-id":..,"sequence":..,"requests":N},...]}`,
    /// sorted by id, then text.
    pub fn render_sequences(&self) -> Vec<u8> {
        let sequences = self.sequences.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = br#"{"sequences":["#.to_vec();
        for (i, ((id, text), requests)) in sequences.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"seq-id":"#);
            json::push_str(&mut out, id);
            out.extend_from_slice(br#","sequence":"#);
            json::push_str(&mut out, text);
            out.extend_from_slice(format!(r#","requests":{requests}}}"#).as_bytes());
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// Counts one accepted TCP connection.
    pub fn connection_accepted(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one fully received request, including the stats request itself.
    pub fn request_received(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the counters and the name as the `/mock/stats` JSON body.
    pub fn render_stats(&self) -> Vec<u8> {
        let connections = self.connections.load(Ordering::Relaxed);
        let requests = self.requests.load(Ordering::Relaxed);
        let mut out = format!(r#"{{"connections":{connections},"requests":{requests},"name":"#).into_bytes();
        match &self.name {
            Some(name) => json::push_str(&mut out, name),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        out
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

/// SplitMix64's increment (2^64 over the golden ratio).
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a well-mixed 64-bit value for each input,
/// which is all a reproducible error rate needs.
fn splitmix64(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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

    #[test]
    fn names_appear_in_headers_and_stats() {
        let state = State::new(Some("primary".into()), b"x-a: 1\r\n");
        assert_eq!(state.identity(), b"x-mock-name: primary\r\n");
        assert_eq!(state.rate_limits(), b"x-a: 1\r\n");
        let v: Value = sonic_rs::from_slice(&state.render_stats()).unwrap();
        assert_eq!(v["name"].as_str(), Some("primary"));
        let anonymous = State::default();
        assert!(anonymous.identity().is_empty());
        let v: Value = sonic_rs::from_slice(&anonymous.render_stats()).unwrap();
        assert!(v["name"].is_null() && v["requests"].as_u64() == Some(0));
    }

    #[test]
    fn sequences_count_per_id_and_text() {
        let state = State::default();
        let seq = |text: &str| Sequence::parse(text).unwrap();
        assert_eq!(state.sequence_request("a", &seq("503,200")), Some(0));
        assert_eq!(state.sequence_request("a", &seq("503, 200")), Some(1));
        assert_eq!(state.sequence_request("b", &seq("503,200")), Some(0));
        assert_eq!(state.sequence_request("", &seq("reset")), Some(0));
        let v: Value = sonic_rs::from_slice(&state.render_sequences()).unwrap();
        assert_eq!(
            sonic_rs::to_string(&v).unwrap(),
            r#"{"sequences":[{"seq-id":"","sequence":"reset","requests":1},{"seq-id":"a","sequence":"503,200","requests":2},{"seq-id":"b","sequence":"503,200","requests":1}]}"#
        );
    }

    #[test]
    fn the_sequence_table_is_bounded() {
        let state = State::default();
        let seq = Sequence::parse("200").unwrap();
        for i in 0..SEQUENCES_MAX {
            assert!(state.sequence_request(&i.to_string(), &seq).is_some());
        }
        assert_eq!(state.sequence_request("new", &seq), None);
        assert_eq!(state.sequence_request("0", &seq), Some(1), "known ids still count");
    }

    #[test]
    fn draws_repeat_per_seed_and_look_uniform() {
        let draws = |seed| {
            let state = State::default();
            (0..1000).map(|_| state.draw(seed)).collect::<Vec<f64>>()
        };
        let a = draws(1);
        assert_eq!(a, draws(1));
        assert_ne!(a, draws(2));
        assert!(a.iter().all(|x| (0.0..1.0).contains(x)));
        let below_half = a.iter().filter(|&&x| x < 0.5).count();
        assert!((400..600).contains(&below_half), "{below_half}");
    }
}
