//! Command-line flags of `corelay-bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::targets::Target;

/// Seconds per run with `--quick` unless `--duration` is given: five
/// scenarios by three targets then take about two minutes.
pub const QUICK_DURATION_S: f64 = 7.0;
/// Seconds per run otherwise: crabllm's default.
pub const FULL_DURATION_S: f64 = 30.0;

/// Runs crabllm's benchmark scenarios against corelay-mock alone, corelay
/// and crabllm on loopback, and writes JSON per run and a Markdown report.
#[derive(Parser, Debug, Clone)]
#[command(name = "corelay-bench", version, about)]
pub struct Args {
    /// The two-minute subset: chat-minimal and chat-stream at 5,000 RPS
    /// (with and without latency correction) and 100 concurrent streams.
    #[arg(long)]
    pub quick: bool,

    /// Seconds of each measured run (default 30, or 7 with --quick).
    #[arg(long, value_parser = parse_seconds)]
    pub duration: Option<f64>,

    /// CPUs of every gateway, as `taskset -c` takes them (`0`, `0-3`, `0,2`).
    #[arg(long, default_value = "0", value_parser = parse_cpus)]
    pub gateway_cpus: String,

    /// CPUs of corelay-mock and oha.
    #[arg(long, default_value = "1", value_parser = parse_cpus)]
    pub load_cpus: String,

    /// What to measure, comma-separated: mock (the floor), corelay, crabllm;
    /// with --peers also litellm, tensorzero.
    #[arg(long, value_delimiter = ',', default_value = "mock,corelay,crabllm", value_parser = Target::parse)]
    pub targets: Vec<Target>,

    /// Also measure the LiteLLM proxy and TensorZero's gateway, installed
    /// at pinned versions into Python venvs in the cache on first use
    /// (python3 -m venv, pip). With --targets naming litellm or tensorzero,
    /// only those named.
    #[arg(long)]
    pub peers: bool,

    /// Runs nothing: writes the report (and charts) of an earlier results
    /// folder again from its `meta.json` and run files, as this build's
    /// report code writes them.
    #[arg(long, value_name = "DIR")]
    pub report_from: Option<PathBuf>,

    /// Only the scenarios whose name contains one of these (repeatable).
    #[arg(long = "scenario")]
    pub scenarios: Vec<String>,

    /// Runs of each (scenario, target), each with fresh processes. Above 1,
    /// oha writes per-request latencies (CSV), merged over the runs in one
    /// HdrHistogram for the report's percentiles; oha's CSV has no
    /// transport errors, so those are not counted then.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,

    /// Print the selected scenario names and exit.
    #[arg(long)]
    pub list: bool,

    /// Results folder (default bench/results/<UTC time>).
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Fail instead of installing a missing oha or crabllm.
    #[arg(long)]
    pub no_install: bool,

    /// Requests of the warm-up before each run.
    #[arg(long, default_value_t = 500)]
    pub warmup_requests: u32,

    /// RUST_LOG of crabllm: `warn` leaves out its per-request INFO line
    /// (corelay logs nothing per request); `info` is its default.
    #[arg(long, default_value = "warn")]
    pub crabllm_rust_log: String,

    /// corelay binary (default: beside corelay-bench).
    #[arg(long)]
    pub corelay_bin: Option<PathBuf>,

    /// corelay-mock binary (default: beside corelay-bench).
    #[arg(long)]
    pub mock_bin: Option<PathBuf>,
}

impl Args {
    /// The targets to run: `--targets`, plus the peers with `--peers`
    /// unless `--targets` names some. A peer needs `--peers`, which is what
    /// allows installing it.
    pub fn targets(&self) -> Result<Vec<Target>, String> {
        let names_a_peer = self.targets.iter().any(|t| t.is_peer());
        if names_a_peer && !self.peers {
            return Err(
                "litellm and tensorzero are peers: add --peers (it installs them into venvs in the cache)".into()
            );
        }
        let mut targets = self.targets.clone();
        if self.peers && !names_a_peer {
            targets.extend(Target::PEERS);
        }
        targets.dedup();
        Ok(targets)
    }

    pub fn duration(&self) -> Duration {
        let default = if self.quick { QUICK_DURATION_S } else { FULL_DURATION_S };
        Duration::from_secs_f64(self.duration.unwrap_or(default))
    }
}

/// How many CPUs a `taskset -c` list names: `1`, `0-3`, `0,2-3`.
pub fn cpu_count(list: &str) -> Result<u32, String> {
    let mut count = 0;
    for part in list.split(',') {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let parse =
            |s: &str| s.trim().parse::<u32>().map_err(|_| format!("`{list}` is not a CPU list like 0, 0-3 or 0,2"));
        let (first, last) = (parse(first)?, parse(last)?);
        if last < first {
            return Err(format!("`{part}` in `{list}` is an empty range"));
        }
        count += last - first + 1;
    }
    Ok(count)
}

fn parse_cpus(s: &str) -> Result<String, String> {
    cpu_count(s).map(|_| s.to_owned())
}

/// A run length: more than zero, at most an hour, so every run is bounded.
fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v > 0.0 && v <= 3600.0 { Ok(v) } else { Err(format!("{v} is not between 0 and 3600 seconds")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_quick() {
        let args = Args::try_parse_from(["corelay-bench"]).unwrap();
        assert_eq!(args.targets().unwrap(), Target::DEFAULT);
        assert_eq!((args.gateway_cpus.as_str(), args.load_cpus.as_str()), ("0", "1"));
        assert_eq!(args.duration(), Duration::from_secs(30));
        let quick = Args::try_parse_from(["corelay-bench", "--quick"]).unwrap();
        assert_eq!(quick.duration(), Duration::from_secs(7));
        let short =
            Args::try_parse_from(["corelay-bench", "--quick", "--duration", "1.5", "--targets", "mock"]).unwrap();
        assert_eq!((short.duration(), short.targets), (Duration::from_millis(1500), vec![Target::Mock]));
        assert!(Args::try_parse_from(["corelay-bench", "--duration", "0"]).is_err());
        assert_eq!(args.repeat, 1);
        assert!(Args::try_parse_from(["corelay-bench", "--repeat", "0"]).is_err());
        assert!(Args::try_parse_from(["corelay-bench", "--targets", "bifrost"]).is_err());
        assert!(Args::try_parse_from(["corelay-bench", "--gateway-cpus", "0;1"]).is_err());
    }

    #[test]
    fn peers_come_with_the_flag_only() {
        let targets = |args: &[&str]| {
            let mut all = vec!["corelay-bench"];
            all.extend(args);
            Args::try_parse_from(all).unwrap().targets()
        };
        assert_eq!(targets(&["--peers"]).unwrap(), Target::ALL);
        assert_eq!(targets(&["--peers", "--targets", "corelay,litellm"]).unwrap(), [Target::Corelay, Target::Litellm]);
        assert!(targets(&["--targets", "tensorzero"]).is_err());
        assert_eq!(targets(&["--targets", "mock"]).unwrap(), [Target::Mock]);
    }

    #[test]
    fn cpu_lists_count_like_taskset() {
        assert_eq!(cpu_count("1"), Ok(1));
        assert_eq!(cpu_count("0-3"), Ok(4));
        assert_eq!(cpu_count("0,2-3"), Ok(3));
        assert!(cpu_count("3-1").is_err());
        assert!(cpu_count("").is_err());
        assert!(cpu_count("a").is_err());
    }
}
