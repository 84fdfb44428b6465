//! The things measured: the mock alone (the floor), corelay, and crabllm,
//! each in front of `corelay-mock`, with the same provider settings as
//! crabllm's own benchmark config (one OpenAI provider, no retries, no keys,
//! no extensions), so each gateway does the same work per request.

use std::path::Path;

use serde::Serialize;

use super::scenarios::{Scenario, Upstream};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// `corelay-mock` itself, requests straight at it.
    Mock,
    Corelay,
    Crabllm,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Mock, Target::Corelay, Target::Crabllm];

    pub fn name(self) -> &'static str {
        match self {
            Target::Mock => "mock",
            Target::Corelay => "corelay",
            Target::Crabllm => "crabllm",
        }
    }

    pub fn parse(name: &str) -> Result<Target, String> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| format!("unknown target `{name}` (expected mock, corelay or crabllm)"))
    }

    /// Whether this target can serve the scenario. The mock alone speaks
    /// one dialect, so it has no translation floor; crabllm 0.0.25 cannot
    /// stream across dialects and has no Bedrock provider (research/crabllm.md
    /// W1), so translation is corelay's alone.
    pub fn serves(self, scenario: &Scenario) -> bool {
        match self {
            Target::Corelay => true,
            Target::Mock | Target::Crabllm => scenario.upstream == Upstream::OpenAi,
        }
    }
}

/// corelay's config: the shape of `config/bench.toml` on the given ports,
/// with the provider in the scenario's dialect.
pub fn corelay_config(listen_port: u16, mock_port: u16, upstream: Upstream) -> String {
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
    format!(
        "listen = \"127.0.0.1:{listen_port}\"\nshards = \"auto\"\n\n[providers.mock]\n{provider}\nmax_retries = 0\ntimeout = 10\n"
    )
}

/// crabllm's config: its `config/bench.toml` on the given ports.
pub fn crabllm_config(listen_port: u16, mock_port: u16) -> String {
    format!(
        "listen = \"127.0.0.1:{listen_port}\"\n\n[providers.mock]\nkind = \"openai\"\n\
         base_url = \"http://127.0.0.1:{mock_port}/v1\"\napi_key = \"mock-key\"\n\
         models = [\"bench-chat\", \"bench-embed\"]\nmax_retries = 0\ntimeout = 10\n"
    )
}

/// The command line of a gateway, after `taskset -c CPUS`.
pub fn gateway_args(target: Target, config: &Path) -> Vec<String> {
    let config = config.display().to_string();
    match target {
        Target::Corelay | Target::Crabllm => vec!["serve".to_owned(), "--config".to_owned(), config],
        Target::Mock => unreachable!("the mock is started as the upstream, not as a gateway"),
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
        Target::Corelay | Target::Mock => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_bind_loopback_only() {
        for upstream in [Upstream::OpenAi, Upstream::Anthropic, Upstream::Bedrock] {
            let c = corelay_config(18080, 19999, upstream);
            assert!(c.starts_with("listen = \"127.0.0.1:18080\"\n"), "{c}");
            assert!(c.contains("http://127.0.0.1:19999"), "{c}");
            assert!(c.parse::<toml::Table>().is_ok(), "{c}");
        }
        let c = crabllm_config(18081, 19999);
        assert!(c.starts_with("listen = \"127.0.0.1:18081\"\n"));
        assert!(c.parse::<toml::Table>().is_ok(), "{c}");
    }

    #[test]
    fn targets_parse_by_name() {
        for t in Target::ALL {
            assert_eq!(Target::parse(t.name()), Ok(t));
        }
        assert!(Target::parse("litellm").is_err());
    }
}
