//! The scenarios: crabllm's benchmark (research/crabllm.md §9.2), its
//! request bodies byte for byte, plus what it left out: a latency-corrected
//! variant, a long stream that really is longer (200 chunks; theirs reused
//! the 20-chunk mock), translation through an Anthropic and a Bedrock
//! mock, and answers from each gateway's response cache.

use serde::Serialize;

use super::oha::Load;

/// crabllm's fixed connection count for its open-loop runs.
pub const RATE_CONNECTIONS: u32 = 50;
/// The rates of crabllm's `overhead` group.
pub const OVERHEAD_RPS: [u32; 5] = [100, 500, 1000, 2000, 5000];
/// The rates of its `payload` group.
pub const PAYLOAD_RPS: [u32; 3] = [100, 500, 1000];
/// Open streams of its `concurrent` group.
pub const CONCURRENT_STREAMS: [u32; 3] = [100, 500, 1000];
/// The rates of the translation scenarios (ours).
pub const TRANSLATION_RPS: [u32; 2] = [1000, 5000];
/// The rates of the cached scenario (ours).
pub const CACHED_RPS: [u32; 2] = [1000, 5000];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    Overhead,
    Payload,
    Concurrent,
    Translation,
    Cache,
}

/// The wire format of the mock behind the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Upstream {
    OpenAi,
    Anthropic,
    Bedrock,
}

impl Upstream {
    /// `corelay-mock --dialect`.
    pub fn dialect(self) -> &'static str {
        match self {
            Upstream::OpenAi => "openai",
            Upstream::Anthropic => "anthropic",
            Upstream::Bedrock => "bedrock",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Unique: kind, load and variant, e.g. `chat-stream@5000+lc`.
    pub name: String,
    /// What is sent, e.g. `chat-stream`; the same kind at several loads.
    pub kind: &'static str,
    pub group: Group,
    /// Request path on the gateway (the client always speaks OpenAI).
    pub path: &'static str,
    #[serde(skip)]
    pub body: String,
    pub load: Load,
    /// oha's `--latency-correction`: latency counted from when a request
    /// was due, not from when it was sent.
    pub latency_correction: bool,
    pub upstream: Upstream,
    /// `corelay-mock --chunks`: content events per stream.
    pub mock_chunks: u32,
    /// The gateways run with their response cache on (corelay's `[cache]`,
    /// crabllm's cache extension); the warm-up fills it.
    pub cached: bool,
}

const CHAT: &str = "/v1/chat/completions";
const EMBEDDINGS: &str = "/v1/embeddings";

/// Every scenario of a full run.
pub fn full() -> Vec<Scenario> {
    let mut all = Vec::new();
    for rps in OVERHEAD_RPS {
        for lc in [false, true] {
            all.push(rate("chat-minimal", Group::Overhead, chat_body(false), rps, lc));
            all.push(rate("chat-stream", Group::Overhead, chat_body(true), rps, lc));
        }
        all.push(Scenario { path: EMBEDDINGS, ..rate("embeddings", Group::Overhead, embeddings_body(), rps, false) });
    }
    for rps in PAYLOAD_RPS {
        all.push(rate("chat-large-context", Group::Payload, large_context_body(), rps, false));
        all.push(Scenario {
            mock_chunks: 200,
            ..rate("chat-long-stream", Group::Payload, chat_body(true), rps, false)
        });
        all.push(rate("chat-tools", Group::Payload, tools_body(), rps, false));
    }
    all.extend(CONCURRENT_STREAMS.map(concurrent));
    for upstream in [Upstream::Anthropic, Upstream::Bedrock] {
        for rps in TRANSLATION_RPS {
            for (what, stream) in [("chat", false), ("stream", true)] {
                let kind = translation_kind(upstream, what);
                all.push(Scenario { upstream, ..rate(kind, Group::Translation, chat_body(stream), rps, false) });
            }
        }
    }
    for rps in CACHED_RPS {
        all.push(Scenario { cached: true, ..rate("chat-cached", Group::Cache, deterministic_chat_body(), rps, false) });
    }
    all
}

/// `--quick`: the scenarios the issue's criteria are stated on, about two
/// minutes for three targets.
pub fn quick() -> Vec<Scenario> {
    vec![
        rate("chat-minimal", Group::Overhead, chat_body(false), 5000, false),
        rate("chat-stream", Group::Overhead, chat_body(true), 5000, false),
        rate("chat-minimal", Group::Overhead, chat_body(false), 5000, true),
        rate("chat-stream", Group::Overhead, chat_body(true), 5000, true),
        concurrent(100),
    ]
}

/// The scenarios whose name contains one of `filters` (all if none).
pub fn select(all: Vec<Scenario>, filters: &[String]) -> Vec<Scenario> {
    if filters.is_empty() {
        return all;
    }
    all.into_iter().filter(|s| filters.iter().any(|f| s.name.contains(f.as_str()))).collect()
}

fn rate(kind: &'static str, group: Group, body: String, rps: u32, latency_correction: bool) -> Scenario {
    let suffix = if latency_correction { "+lc" } else { "" };
    Scenario {
        name: format!("{kind}@{rps}{suffix}"),
        kind,
        group,
        path: CHAT,
        body,
        load: Load::Rate { rps, connections: RATE_CONNECTIONS },
        latency_correction,
        upstream: Upstream::OpenAi,
        mock_chunks: 20,
        cached: false,
    }
}

fn concurrent(streams: u32) -> Scenario {
    Scenario {
        name: format!("concurrent-{streams}"),
        kind: "concurrent-streams",
        group: Group::Concurrent,
        path: CHAT,
        body: chat_body(true),
        load: Load::Closed { connections: streams },
        latency_correction: false,
        upstream: Upstream::OpenAi,
        mock_chunks: 20,
        cached: false,
    }
}

fn translation_kind(upstream: Upstream, what: &str) -> &'static str {
    match (upstream, what) {
        (Upstream::Anthropic, "chat") => "anthropic-chat",
        (Upstream::Anthropic, _) => "anthropic-stream",
        (Upstream::Bedrock, "chat") => "bedrock-chat",
        (Upstream::Bedrock, _) => "bedrock-stream",
        (Upstream::OpenAi, _) => unreachable!("translation scenarios have a non-OpenAI upstream"),
    }
}

// The bodies are crabllm's bench.py bodies, compact JSON, byte for byte.

pub fn chat_body(stream: bool) -> String {
    let tail = if stream { r#","stream":true"# } else { "" };
    format!(r#"{{"model":"bench-chat","messages":[{{"role":"user","content":"hi"}}]{tail}}}"#)
}

/// The chat body at `temperature` 0, which corelay's cache keeps by
/// default (crabllm's keeps every body).
pub fn deterministic_chat_body() -> String {
    r#"{"model":"bench-chat","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#.to_owned()
}

pub fn embeddings_body() -> String {
    r#"{"model":"bench-embed","input":"benchmark text"}"#.to_owned()
}

/// 50 user messages.
pub fn large_context_body() -> String {
    let messages: Vec<String> = (1..=50)
        .map(|i| {
            format!(
                r#"{{"role":"user","content":"This is message number {i} in a long conversation to test how well the gateway handles large request bodies with many messages."}}"#
            )
        })
        .collect();
    format!(r#"{{"model":"bench-chat","messages":[{}]}}"#, messages.join(","))
}

/// "hi" with 10 function tools.
pub fn tools_body() -> String {
    let tools: Vec<String> = (1..=10)
        .map(|i| {
            format!(
                r#"{{"type":"function","function":{{"name":"tool_{i}","description":"Tool number {i} for benchmarking","parameters":{{"type":"object","properties":{{"arg1":{{"type":"string"}},"arg2":{{"type":"integer"}},"arg3":{{"type":"boolean"}}}},"required":["arg1"]}}}}}}"#
            )
        })
        .collect();
    format!(r#"{{"model":"bench-chat","messages":[{{"role":"user","content":"hi"}}],"tools":[{}]}}"#, tools.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_bodies_are_json() {
        let all = full();
        let mut names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count);
        for s in &all {
            let _: sonic_rs::Value = sonic_rs::from_str(&s.body).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
    }

    #[test]
    fn quick_covers_the_criteria() {
        let names: Vec<String> = quick().into_iter().map(|s| s.name).collect();
        for want in ["chat-minimal@5000", "chat-stream@5000", "concurrent-100"] {
            assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
        }
    }

    #[test]
    fn bodies_match_crabllms() {
        assert_eq!(
            chat_body(true),
            r#"{"model":"bench-chat","messages":[{"role":"user","content":"hi"}],"stream":true}"#
        );
        assert_eq!(tools_body().matches(r#""type":"function""#).count(), 10);
        assert_eq!(large_context_body().matches(r#""role":"user""#).count(), 50);
        assert!(large_context_body().contains("message number 50 in"));
        assert!(tools_body().contains(r#""name":"tool_10","description":"Tool number 10 for benchmarking""#));
    }

    #[test]
    fn filters_select_by_name() {
        let picked = select(full(), &["concurrent".to_owned(), "bedrock-stream@1000".to_owned()]);
        let names: Vec<&str> = picked.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["concurrent-100", "concurrent-500", "concurrent-1000", "bedrock-stream@1000"]);
    }
}
