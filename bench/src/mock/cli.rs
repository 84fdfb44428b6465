//! Command-line flags of `corelay-mock`.
//!
//! The first four flags mirror crabllm-bench's mock so its benchmark scripts
//! run unchanged against ours; the others are ours. `--error-rate` answers
//! the dialect's overloaded error rather than crabllm-bench's plain 500, since
//! that is what a gateway's retries must handle (`--error-status 500` gives
//! the old answer), and draws from a PRNG seeded by `--seed`, so a run
//! repeats.
//! `--chunks` means content events of the OpenAI stream (role and finish
//! chunks included, as crabllm-bench counts them) and text deltas in the
//! other dialects.

use std::time::Duration;

use clap::Parser;

/// A mock LLM provider (OpenAI, Anthropic, Gemini, Bedrock or Ollama wire
/// format) for tests and load benchmarks.
#[derive(Parser, Debug, Clone)]
#[command(name = "corelay-mock", version, about)]
pub struct Args {
    /// Address to bind. Loopback by default so a test run never exposes it.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// Port to bind; 0 picks a free one (the listening line reports it).
    #[arg(short, long, default_value_t = 9999)]
    pub port: u16,

    /// Content events per streamed chat completion (before usage and [DONE]).
    #[arg(short, long, default_value_t = 20)]
    pub chunks: u32,

    /// Milliseconds between stream events, and before a non-stream reply.
    #[arg(short, long, default_value_t = 0)]
    pub delay: u64,

    /// Fraction (0.0 to 1.0) of model requests answered with the dialect's
    /// overloaded error (Anthropic 529 overloaded_error; 503 elsewhere).
    #[arg(short, long, default_value_t = 0.0, value_parser = parse_rate)]
    pub error_rate: f64,

    /// Seed of the `--error-rate` draws: the same seed fails the same
    /// requests (numbered in arrival order) on every run.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,

    /// Answer `--error-rate` failures with this status (in the dialect's
    /// error shape) instead of the overloaded error.
    #[arg(long, value_parser = clap::value_parser!(u16).range(400..=599))]
    pub error_status: Option<u16>,

    /// A name sent back in an `x-mock-name` header on every answer and shown
    /// by `/mock/stats`, so a test with several mocks sees which one served.
    #[arg(long, value_parser = parse_name)]
    pub name: Option<String>,

    /// Worker threads, each with its own monoio runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,

    /// Provider wire format to imitate: openai, anthropic, gemini, bedrock or
    /// ollama.
    #[arg(long, default_value = "openai", value_parser = parse_dialect)]
    pub dialect: Dialect,
}

/// The wire formats the mock can speak, one per provider the gateway talks
/// to (Azure is the OpenAI dialect under its own paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
    Bedrock,
    Ollama,
}

/// The `--seed` when none is given: fixed, so runs repeat by default.
pub const DEFAULT_SEED: u64 = 0x6d6f_636b;
/// Longest `--name`.
const NAME_BYTES_MAX: usize = 64;

/// What every connection needs from the flags. `Copy` so each worker thread
/// and task owns its own copy instead of sharing through an `Arc`.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub chunks: u32,
    pub delay: Duration,
    pub error_rate: f64,
    pub seed: u64,
    pub error_status: Option<u16>,
    pub dialect: Dialect,
}

impl Args {
    pub fn config(&self) -> Config {
        Config {
            chunks: self.chunks,
            delay: Duration::from_millis(self.delay),
            error_rate: self.error_rate,
            seed: self.seed,
            error_status: self.error_status,
            dialect: self.dialect,
        }
    }
}

/// A name that is safe as a header value: printable ASCII, 1 to 64 bytes.
fn parse_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s.len() <= NAME_BYTES_MAX && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if ok { Ok(s.to_owned()) } else { Err(format!("a name is 1 to {NAME_BYTES_MAX} printable ASCII characters")) }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&rate) { Ok(rate) } else { Err(format!("{rate} is not between 0.0 and 1.0")) }
}

fn parse_dialect(s: &str) -> Result<Dialect, String> {
    match s {
        "openai" => Ok(Dialect::OpenAi),
        "anthropic" => Ok(Dialect::Anthropic),
        "gemini" => Ok(Dialect::Gemini),
        "bedrock" => Ok(Dialect::Bedrock),
        "ollama" => Ok(Dialect::Ollama),
        other => Err(format!("unknown dialect `{other}` (expected openai, anthropic, gemini, bedrock or ollama)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_crabllm_bench() {
        let args = Args::try_parse_from(["corelay-mock"]).unwrap();
        assert_eq!(args.host, "127.0.0.1");
        assert_eq!(args.port, 9999);
        assert_eq!(args.chunks, 20);
        assert_eq!(args.delay, 0);
        assert_eq!(args.error_rate, 0.0);
        assert_eq!(args.threads, 1);
        assert_eq!(args.dialect, Dialect::OpenAi);
        assert_eq!((args.seed, args.error_status, args.name), (DEFAULT_SEED, None, None));
    }

    #[test]
    fn name_seed_and_error_status_parse() {
        let args =
            Args::try_parse_from(["corelay-mock", "--name", "mock b", "--seed", "7", "--error-status", "500"]).unwrap();
        assert_eq!(args.name.as_deref(), Some("mock b"));
        assert_eq!((args.config().seed, args.config().error_status), (7, Some(500)));
        for bad in [&["--name", ""][..], &["--name", "a\nb"], &["--error-status", "200"], &["--seed", "-1"]] {
            let argv = std::iter::once("corelay-mock").chain(bad.iter().copied());
            assert!(Args::try_parse_from(argv).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_dialect_parses_and_unknown_ones_fail() {
        for (name, dialect) in [
            ("openai", Dialect::OpenAi),
            ("anthropic", Dialect::Anthropic),
            ("gemini", Dialect::Gemini),
            ("bedrock", Dialect::Bedrock),
            ("ollama", Dialect::Ollama),
        ] {
            let args = Args::try_parse_from(["corelay-mock", "--dialect", name]).unwrap();
            assert_eq!(args.config().dialect, dialect);
        }
        let err = Args::try_parse_from(["corelay-mock", "--dialect", "cohere"]).unwrap_err();
        assert!(err.to_string().contains("unknown dialect `cohere`"), "{err}");
    }

    #[test]
    fn error_rate_is_a_fraction() {
        assert!(Args::try_parse_from(["corelay-mock", "-e", "1.5"]).is_err());
        let args = Args::try_parse_from(["corelay-mock", "-e", "0.25"]).unwrap();
        assert_eq!(args.error_rate, 0.25);
    }
}
