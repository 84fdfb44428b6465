//! `corelay-bench`: crabllm's benchmark, run side by side on one machine.
//!
//! For each scenario (`scenarios`) and each target (`targets`: the mock
//! alone, corelay, crabllm, and with `--peers` LiteLLM and TensorZero from
//! Python venvs, `peers`), one run (`run`): fresh `corelay-mock` and
//! gateway processes on loopback, pinned with `taskset` (gateway on
//! `--gateway-cpus`, mock and oha on `--load-cpus`), a warm-up, then oha for
//! a bounded time. Each run's numbers go to `RUN.json` in the results folder,
//! and all of them into `report.md` (`report`) with corelay's ratios to each
//! peer. Every process started is recorded and stopped by pid (a gateway
//! with worker processes: by its process group) on every path, Ctrl-C and
//! panics included (`procs`).
//!
//! This is a blocking program that starts and watches processes, far from
//! any shard: the workspace's bans on blocking calls and std locks
//! (`clippy.toml`, written for the shards' data path) are lifted for this
//! module and its children, here, in one place.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod charts;
pub mod cli;
#[cfg(test)]
mod fixtures;
pub mod merge;
pub mod oha;
pub mod peers;
pub mod procfs;
pub mod procs;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod targets;
pub mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

use cli::Args;
use run::{Measurement, Setup};
use targets::Target;

/// Runs the benchmark the flags describe; returns the results folder.
pub fn main(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.report_from {
        return report_again(dir);
    }
    let _reaper = procs::Reaper;
    procs::on_signals_stop_all()?;

    let scenarios = scenarios::select(if args.quick { scenarios::quick() } else { scenarios::full() }, &args.scenarios);
    if args.list {
        for s in &scenarios {
            println!("{}", s.name);
        }
        return Ok(PathBuf::new());
    }
    anyhow::ensure!(!scenarios.is_empty(), "no scenario matches {:?} (see --list)", args.scenarios);
    let targets = args.targets().map_err(anyhow::Error::msg)?;

    let started_utc = utc_stamp(std::time::SystemTime::now());
    let dir =
        args.out.clone().unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("results").join(&started_utc));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    procs::log_pids_to(&dir.join("pids"))?;

    let mut failures = Vec::new();
    let setup = setup(args, &targets, &dir, &mut failures)?;
    // A peer that could not be installed is left out, said once in the report.
    let targets: Vec<Target> = targets.into_iter().filter(|&t| setup.has(t)).collect();
    let meta = meta(args, &setup, &targets, started_utc);
    eprintln!(
        "corelay-bench: {} scenarios × {:?}, {} s each; results in {}",
        scenarios.len(),
        target_names(&targets),
        args.duration().as_secs_f64(),
        dir.display()
    );

    let repetitions = run_all(&setup, &scenarios, &targets, &mut failures)?;
    let runs = merge::merge(&repetitions);
    let repetitions = if setup.repeat > 1 { repetitions } else { Vec::new() };

    std::fs::write(dir.join("meta.json"), sonic_rs::to_string_pretty(&meta)?)?;
    let (charts, chart_failures) = charts::draw(&dir, &runs);
    failures.extend(chart_failures.into_iter().map(|f| format!("chart {f}")));
    let report = report::markdown(&meta, &runs, &repetitions, &charts, &failures);
    std::fs::write(dir.join("report.md"), &report)?;
    println!("{report}");
    eprintln!("corelay-bench: report in {}", dir.join("report.md").display());
    Ok(dir)
}

/// `--report-from DIR`: the report of an earlier run, written again from
/// its files (runs that left no file are listed as without a result).
fn report_again(dir: &Path) -> anyhow::Result<PathBuf> {
    let meta_path = dir.join("meta.json");
    let meta: report::Meta =
        sonic_rs::from_slice(&std::fs::read(&meta_path).with_context(|| format!("reading {}", meta_path.display()))?)
            .with_context(|| format!("parsing {}", meta_path.display()))?;
    // Merged latencies come from oha's per-request CSV, which is not kept.
    anyhow::ensure!(meta.repeat == 1, "--report-from reads runs made with --repeat 1 only");
    let mut repetitions = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        // Run files are STEM.json; STEM.oha.json, STEM.warmup.json and
        // meta.json are not.
        if !name.ends_with(".json") || name.matches('.').count() != 1 || name == "meta.json" {
            continue;
        }
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        repetitions.push(run::Measurement::from_json(&text).with_context(|| format!("parsing {}", path.display()))?);
    }
    anyhow::ensure!(!repetitions.is_empty(), "no run files in {}", dir.display());
    // The order of a run: scenarios as listed, targets in their order.
    let order: Vec<String> = scenarios::full().into_iter().chain(scenarios::quick()).map(|s| s.name).collect();
    let rank = |m: &Measurement| {
        let scenario = order.iter().position(|n| *n == m.scenario.name).unwrap_or(usize::MAX);
        let target = Target::ALL.iter().position(|&t| t == m.target).unwrap_or(usize::MAX);
        (scenario, m.repetition, target)
    };
    repetitions.sort_by_key(rank);
    let runs = merge::merge(&repetitions);
    let (charts, chart_failures) = charts::draw(dir, &runs);
    let failures: Vec<String> = chart_failures.into_iter().map(|f| format!("chart {f}")).collect();
    let report = report::markdown(&meta, &runs, &[], &charts, &failures);
    std::fs::write(dir.join("report.md"), &report)?;
    println!("{report}");
    eprintln!("corelay-bench: report written again in {}", dir.join("report.md").display());
    Ok(dir.to_owned())
}

/// Every run: per scenario, `--repeat` rounds in which the targets take
/// turns, so slow drift on a shared machine spreads over all of them. Each
/// run's JSON is written as it ends; a failed run is pushed to `failures`.
fn run_all(
    setup: &Setup,
    scenarios: &[scenarios::Scenario],
    targets: &[Target],
    failures: &mut Vec<String>,
) -> anyhow::Result<Vec<Measurement>> {
    let mut runs = Vec::new();
    for scenario in scenarios {
        for repetition in 1..=setup.repeat {
            for &target in targets.iter().filter(|t| t.serves(scenario)) {
                let round = if setup.repeat > 1 { format!(" #{repetition}") } else { String::new() };
                eprint!("  {:<24} {:<14} ", scenario.name, format!("{}{round}", target.name()));
                match run::measure(setup, scenario, target, repetition) {
                    Ok(m) => {
                        eprintln!("{}", one_line(&m));
                        let stem = run::run_stem(&scenario.name, target, repetition, setup.repeat);
                        std::fs::write(setup.dir.join(format!("{stem}.json")), sonic_rs::to_string_pretty(&m)?)?;
                        runs.push(m);
                    }
                    Err(e) => {
                        eprintln!("failed: {e:#}");
                        failures.push(format!("{} / {}{round}: {e:#}", scenario.name, target.name()));
                    }
                }
            }
        }
    }
    Ok(runs)
}

/// Locates or installs what the targets need. A peer's failed install is
/// pushed to `failures` and leaves its venv unset; anything else is fatal.
fn setup(args: &Args, targets: &[Target], dir: &Path, failures: &mut Vec<String>) -> anyhow::Result<Setup> {
    let cache = tools::cache_dir();
    let wants = |t: Target| targets.contains(&t);
    let corelay = match &args.corelay_bin {
        Some(p) => Some(p.clone()),
        None if wants(Target::Corelay) => Some(tools::sibling("corelay")?),
        None => None,
    };
    let crabllm = if wants(Target::Crabllm) { Some(tools::crabllm(&cache, !args.no_install)?) } else { None };
    let mock = match &args.mock_bin {
        Some(p) => p.clone(),
        None => tools::sibling("corelay-mock")?,
    };
    let mut venv = |t: Target| -> Option<PathBuf> {
        if !wants(t) {
            return None;
        }
        peers::venv(&cache, t, !args.no_install)
            .map_err(|e| failures.push(format!("{}: not measured, its install failed: {e:#}", t.name())))
            .ok()
    };
    let (litellm_venv, tensorzero_venv) = (venv(Target::Litellm), venv(Target::Tensorzero));
    Ok(Setup {
        oha: tools::oha(&cache, !args.no_install)?,
        mock,
        corelay,
        crabllm,
        litellm_venv,
        tensorzero_venv,
        gateway_cpus: args.gateway_cpus.clone(),
        gateway_threads: cli::cpu_count(&args.gateway_cpus).map_err(anyhow::Error::msg)?,
        load_cpus: args.load_cpus.clone(),
        load_threads: cli::cpu_count(&args.load_cpus).map_err(anyhow::Error::msg)?,
        duration: args.duration(),
        repeat: args.repeat,
        warmup_requests: args.warmup_requests,
        crabllm_rust_log: args.crabllm_rust_log.clone(),
        ticks_per_s: run::ticks_per_s(),
        dir: dir.to_owned(),
    })
}

fn meta(args: &Args, setup: &Setup, targets: &[Target], started_utc: String) -> report::Meta {
    let command = std::env::args().skip(1).fold("corelay-bench".to_owned(), |acc, a| acc + " " + &a);
    report::Meta {
        started_utc,
        command,
        machine: machine(),
        corelay_commit: git_commit(),
        oha_version: tools::version(&setup.oha),
        crabllm_version: match &setup.crabllm {
            None => "not run".to_owned(),
            Some(bin) => {
                tools::installed_version(&tools::cache_dir(), "crabllm").unwrap_or_else(|| bin.display().to_string())
            }
        },
        peers: targets.iter().filter(|t| t.is_peer()).map(|&t| peer_text(t, setup.gateway_threads)).collect(),
        gateway_cpus: args.gateway_cpus.clone(),
        load_cpus: args.load_cpus.clone(),
        duration_s: args.duration().as_secs_f64(),
        repeat: args.repeat,
        crabllm_rust_log: args.crabllm_rust_log.clone(),
    }
}

/// How a peer ran, for the report header.
fn peer_text(target: Target, workers: u32) -> String {
    match target {
        Target::Litellm => format!(
            "{} (the `litellm` proxy CLI, uvicorn, {workers} worker process{}, LITELLM_LOG=WARNING)",
            peers::version(target),
            if workers == 1 { "" } else { "es" }
        ),
        _ => format!(
            "{} (its Rust gateway as embedded in the PyPI wheel, served by `_start_http_gateway` inside a Python process)",
            peers::version(target)
        ),
    }
}

fn one_line(m: &Measurement) -> String {
    let o = &m.outcome;
    let ms = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.3}", v / 1000.0));
    format!(
        "{:>7.0} rps  err {:<4} p50 {} p99 {} ms  cpu {} µs/req  rss {:.1} MB",
        o.ok_per_s,
        o.errors,
        ms(o.p50_us),
        ms(o.p99_us),
        m.cpu_us_per_request.map_or("–".to_owned(), |v| format!("{v:.1}")),
        m.peak_rss_bytes as f64 / 1048576.0
    )
}

fn target_names(targets: &[Target]) -> Vec<&'static str> {
    targets.iter().map(|t| t.name()).collect()
}

/// "CPU model, N CPUs, Linux RELEASE", from /proc.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim();
    let cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    // Other work on the machine skews every figure; the load average at the
    // start says how quiet it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{model}, {cpus} CPUs, Linux {}; load average at start {}", kernel.trim(), load.join(" "))
}

fn git_commit() -> String {
    let out = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "describe", "--always", "--dirty"])
        .stdin(Stdio::null())
        .output();
    out.ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `2026-12-01T14-41-47Z`: UTC, sortable, safe in a file name.
pub fn utc_stamp(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn utc_stamps() {
        assert_eq!(super::utc_stamp(UNIX_EPOCH), "1970-01-01T00-00-00Z");
        // 2024-02-29 12:34:56 UTC, a leap day.
        assert_eq!(super::utc_stamp(UNIX_EPOCH + Duration::from_secs(1_709_210_096)), "2024-02-29T12-34-56Z");
    }
}
