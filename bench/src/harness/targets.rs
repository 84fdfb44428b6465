//! The things measured: the mock alone (the floor), corelay, crabllm, and
//! with `--peers` LiteLLM and TensorZero (`peers`), each in front of
//! `corelay-mock`, with the same provider settings as crabllm's own benchmark
//! config (one OpenAI provider, no retries, no keys, no extensions), so each
//! gateway does the same work per request. The cached scenarios turn on
//! corelay's and crabllm's response caches, and only theirs.

use std::path::Path;

use serde::Serialize;

use super::scenarios::{Scenario, Upstream};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// `corelay-mock` itself, requests straight at it.
    Mock,
    Corelay,
    Crabllm,
    /// The LiteLLM proxy (Python), with `--peers`.
    Litellm,
    /// TensorZero's gateway, embedded in its Python wheel, with `--peers`.
    Tensorzero,
}

impl Target {
    /// What runs without `--peers`, and the default of `--targets`.
    pub const DEFAULT: [Target; 3] = [Target::Mock, Target::Corelay, Target::Crabllm];
    /// What `--peers` adds: installed into venvs in the cache.
    pub const PEERS: [Target; 2] = [Target::Litellm, Target::Tensorzero];
    pub const ALL: [Target; 5] = [Target::Mock, Target::Corelay, Target::Crabllm, Target::Litellm, Target::Tensorzero];

    pub fn name(self) -> &'static str {
        match self {
            Target::Mock => "mock",
            Target::Corelay => "corelay",
            Target::Crabllm => "crabllm",
            Target::Litellm => "litellm",
            Target::Tensorzero => "tensorzero",
        }
    }

    pub fn parse(name: &str) -> Result<Target, String> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| format!("unknown target `{name}` (expected mock, corelay, crabllm, litellm or tensorzero)"))
    }

    pub fn is_peer(self) -> bool {
        Target::PEERS.contains(&self)
    }

    /// Whether this target can serve the scenario. The mock alone speaks
    /// one dialect, so it has no translation floor; crabllm 0.0.25 cannot
    /// stream across dialects and has no Bedrock provider (research/crabllm.md
    /// W1), so translation is corelay's alone. The peers run what crabllm
    /// runs, so every peer is measured on the same scenarios.
    pub fn serves(self, scenario: &Scenario) -> bool {
        if scenario.cached {
            // The peers run without a cache here.
            return matches!(self, Target::Mock | Target::Corelay | Target::Crabllm);
        }
        match self {
            Target::Corelay => true,
            Target::Mock | Target::Crabllm | Target::Litellm | Target::Tensorzero => {
                scenario.upstream == Upstream::OpenAi
            }
        }
    }

    /// The request path and body this target is sent for a scenario. Only
    /// TensorZero differs: its OpenAI-compatible routes live under
    /// `/openai`, and it wants the model named `tensorzero::model_name::X`
    /// (`tensorzero::embedding_model_name::X` for embeddings). The bytes are
    /// otherwise the scenario's.
    pub fn request(self, scenario: &Scenario) -> (String, String) {
        match self {
            Target::Tensorzero => (
                format!("/openai{}", scenario.path),
                scenario
                    .body
                    .replacen(r#""model":"bench-chat""#, r#""model":"tensorzero::model_name::bench-chat""#, 1)
                    .replacen(
                        r#""model":"bench-embed""#,
                        r#""model":"tensorzero::embedding_model_name::bench-embed""#,
                        1,
                    ),
            ),
            _ => (scenario.path.to_owned(), scenario.body.clone()),
        }
    }
}

/// corelay's config: the shape of `config/bench.toml` on the given ports,
/// with the provider in the scenario's dialect.
pub fn corelay_config(listen_port: u16, mock_port: u16, upstream: Upstream, cached: bool) -> String {
    let provider = match upstream {
        Upstream::OpenAi => format!(
            "kind = \"openai\"\nbase_url = \"http://127.0.0.1:{mock_port}/v1\"\napi_key = \"mock-key\"\n\
             models = [\"bench-chat\", \"bench-embed\"]"
        ),
        Upstream::Anthropic => format!(
            "kind = \"anthropic\"\nbase_url = \"http://127.0.0.1:{mock_port}\"\napi_key = \"mock-key\"\n\
             models = [\"bench-chat\"]"
        ),
        Upstream::Bedrock => format!(
            "kind = \"bedrock\"\nbase_url = \"http://127.0.0.1:{mock_port}\"\nregion = \"us-east-1\"\n\
             api_key = \"mock-key\"\nmodels = [\"bench-chat\"]"
        ),
    };
    // shards = "auto" follows the affinity mask, so `taskset` on the
    // gateway CPUs decides the shard count, as it decides tokio's worker
    // count for crabllm.
    let cache = if cached { "\n[cache]\nenabled = true\n" } else { "" };
    format!(
        "listen = \"127.0.0.1:{listen_port}\"\nshards = \"auto\"\n\n[providers.mock]\n{provider}\nmax_retries = 0\ntimeout = 10\n{cache}"
    )
}

/// crabllm's config: its `config/bench.toml` on the given ports, with its
/// cache extension when `cached` (research/crabllm.md §6: `ttl_seconds`).
pub fn crabllm_config(listen_port: u16, mock_port: u16, cached: bool) -> String {
    let cache = if cached { "\n[extensions.cache]\nttl_seconds = 300\n" } else { "" };
    format!(
        "listen = \"127.0.0.1:{listen_port}\"\n\n[providers.mock]\nkind = \"openai\"\n\
         base_url = \"http://127.0.0.1:{mock_port}/v1\"\napi_key = \"mock-key\"\n\
         models = [\"bench-chat\", \"bench-embed\"]\nmax_retries = 0\ntimeout = 10\n{cache}"
    )
}

/// The command line of a gateway, after `taskset -c CPUS`.
pub fn gateway_args(target: Target, config: &Path) -> Vec<String> {
    let config = config.display().to_string();
    match target {
        Target::Corelay | Target::Crabllm => vec!["serve".to_owned(), "--config".to_owned(), config],
        Target::Mock | Target::Litellm | Target::Tensorzero => {
            unreachable!("{} is not started with `serve --config`", target.name())
        }
    }
}

/// Environment for a gateway. crabllm logs one INFO line per request by
/// default, which costs it about 30% of its CPU (research/crabllm.md W9);
/// corelay logs nothing per request. To compare the forwarding work, not
/// the logging, crabllm runs at `RUST_LOG=warn` unless `--crabllm-rust-log`
/// says otherwise (`info` is its out-of-the-box behaviour).
pub fn gateway_env(target: Target, crabllm_rust_log: &str) -> Vec<(&'static str, String)> {
    match target {
        Target::Crabllm => vec![("RUST_LOG", crabllm_rust_log.to_owned())],
        Target::Corelay | Target::Mock | Target::Litellm | Target::Tensorzero => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_bind_loopback_only() {
        for upstream in [Upstream::OpenAi, Upstream::Anthropic, Upstream::Bedrock] {
            let c = corelay_config(18080, 19999, upstream, false);
            assert!(c.starts_with("listen = \"127.0.0.1:18080\"\n"), "{c}");
            assert!(c.contains("http://127.0.0.1:19999"), "{c}");
            assert!(c.parse::<toml::Table>().is_ok(), "{c}");
        }
        let c = crabllm_config(18081, 19999, false);
        assert!(c.starts_with("listen = \"127.0.0.1:18081\"\n"));
        assert!(c.parse::<toml::Table>().is_ok(), "{c}");
        // With the cache on, each has its own section for it.
        let ours: toml::Table = corelay_config(18080, 19999, Upstream::OpenAi, true).parse().unwrap();
        assert_eq!(ours["cache"]["enabled"].as_bool(), Some(true));
        let theirs: toml::Table = crabllm_config(18081, 19999, true).parse().unwrap();
        assert_eq!(theirs["extensions"]["cache"]["ttl_seconds"].as_integer(), Some(300));
    }

    #[test]
    fn targets_parse_by_name() {
        for t in Target::ALL {
            assert_eq!(Target::parse(t.name()), Ok(t));
        }
        assert!(Target::parse("bifrost").is_err());
    }

    #[test]
    fn only_tensorzero_gets_another_path_and_model_name() {
        let all = crate::harness::scenarios::full();
        let chat = all.iter().find(|s| s.name == "chat-stream@1000").unwrap();
        let embeddings = all.iter().find(|s| s.name == "embeddings@1000").unwrap();
        for t in [Target::Mock, Target::Corelay, Target::Crabllm, Target::Litellm] {
            assert_eq!(t.request(chat), (chat.path.to_owned(), chat.body.clone()));
        }
        let (path, body) = Target::Tensorzero.request(chat);
        assert_eq!(path, "/openai/v1/chat/completions");
        assert_eq!(body, chat.body.replace("\"bench-chat\"", "\"tensorzero::model_name::bench-chat\""));
        let (path, body) = Target::Tensorzero.request(embeddings);
        assert_eq!(path, "/openai/v1/embeddings");
        assert!(body.starts_with(r#"{"model":"tensorzero::embedding_model_name::bench-embed","input""#), "{body}");
    }
}
