//! `corelay-bench` end to end, in a tiny mode: one-second runs against the
//! mock alone (no gateway, no crabllm), asserting that the report is
//! written and that no process it started outlives it, whether it finishes
//! or is stopped by Ctrl-C (SIGINT) mid-run.
//!
//! These need oha, which CI does not install: without it they print why and
//! pass. They take a few seconds; the real benchmark never runs in tests.
//! One more runs LiteLLM with two worker processes, if a `--peers` run has
//! installed it into the cache already (tests install nothing), and checks
//! that its workers are stopped with it.

#![allow(clippy::disallowed_methods)] // blocking file reads and sleeps in a test

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BENCH: &str = env!("CARGO_BIN_EXE_corelay-bench");
const MOCK: &str = env!("CARGO_BIN_EXE_corelay-mock");
/// Longest a tiny run may take before the test fails instead of hanging.
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// LiteLLM takes several seconds to start, and serves about 150 requests a
/// second on one CPU.
const PEER_RUN_LIMIT: Duration = Duration::from_secs(180);

/// oha as the harness finds it, or None (and a message) to skip.
fn oha() -> Option<PathBuf> {
    let from_env = std::env::var_os("OHA").filter(|p| !p.is_empty()).map(PathBuf::from);
    let on_path = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join("oha")).find(|p| p.is_file()));
    let found = from_env.or(on_path).or_else(|| Some(PathBuf::from("/work/tools/bin/oha")).filter(|p| p.is_file()));
    if found.is_none() {
        eprintln!("skipped: oha is not installed (cargo install --locked oha), so corelay-bench cannot run");
    }
    found
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("corelay-bench-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn bench(oha: &Path, out: &Path, seconds: &str, scenario: &str) -> Command {
    let mut command = Command::new(BENCH);
    command
        .args(["--quick", "--targets", "mock", "--no-install", "--warmup-requests", "20", "--duration", seconds])
        .args(["--scenario", scenario, "--mock-bin", MOCK, "--out"])
        .arg(out)
        .env("OHA", oha)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// The pids the harness logged, with their names.
fn logged_pids(out: &Path) -> Vec<(u32, String)> {
    let text = std::fs::read_to_string(out.join("pids")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(pid, name)| (pid.parse().expect("pid"), name.to_owned()))
        .collect()
}

fn assert_all_gone(pids: &[(u32, String)]) {
    assert!(!pids.is_empty(), "the harness logged no process");
    for (pid, name) in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "{name} (pid {pid}) is still running");
    }
}

fn wait_bounded(child: &mut std::process::Child) -> ExitStatus {
    wait_within(child, RUN_LIMIT)
}

fn wait_within(child: &mut std::process::Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("corelay-bench ran over {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_tiny_run_writes_its_report_and_leaves_no_process() {
    let Some(oha) = oha() else { return };
    let out = out_dir("tiny");
    let mut child = bench(&oha, &out, "1", "chat-minimal@5000").spawn().unwrap();
    let status = wait_bounded(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| chat-minimal@5000 | mock |"), "{report}");
    assert!(report.contains("| chat-minimal@5000+lc | mock |"), "{report}");
    let run = std::fs::read_to_string(out.join("chat-minimal_5000__mock.json")).unwrap();
    assert!(run.contains("\"peak_rss_bytes\""), "{run}");
    let pids = logged_pids(&out);
    assert_eq!(pids.iter().filter(|(_, n)| n == "corelay-mock").count(), 2, "{pids:?}");
    assert_all_gone(&pids);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn repeated_runs_are_merged_from_ohas_per_request_csv() {
    let Some(oha) = oha() else { return };
    let out = out_dir("repeat");
    let mut child = bench(&oha, &out, "1", "concurrent-100").args(["--repeat", "2"]).spawn().unwrap();
    let status = wait_bounded(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("ran 2 times"), "{report}");
    assert!(report.contains("| concurrent-100 | mock | 2 |"), "{report}");
    for run in 1..=2 {
        let csv = std::fs::read_to_string(out.join(format!("concurrent-100__mock__r{run}.oha.csv"))).unwrap();
        assert!(csv.starts_with("request-start,"), "{csv}");
    }
    assert_all_gone(&logged_pids(&out));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn ctrl_c_mid_run_stops_every_process() {
    let Some(oha) = oha() else { return };
    let out = out_dir("sigint");
    let mut child = bench(&oha, &out, "20", "concurrent-100").spawn().unwrap();
    // Wait for the measured oha run to start: the mock and oha are running.
    let deadline = Instant::now() + RUN_LIMIT;
    while !logged_pids(&out).iter().any(|(_, n)| n == "oha") {
        assert!(Instant::now() < deadline, "the measured run never started");
        assert!(child.try_wait().unwrap().is_none(), "corelay-bench exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = wait_bounded(&mut child);
    assert_eq!(status.code(), Some(130), "{status}");
    assert_all_gone(&logged_pids(&out));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_peers_run_stops_litellms_workers() {
    let Some(oha) = oha() else { return };
    let cache = bench::harness::tools::cache_dir();
    let venv = cache.join(format!("venv-litellm-{}", bench::harness::peers::LITELLM_VERSION));
    if !venv.join("corelay-bench-installed").is_file() {
        eprintln!(
            "skipped: LiteLLM is not installed in {} (a `corelay-bench --peers` run installs it; tests do not)",
            cache.display()
        );
        return;
    }
    let out = out_dir("peers");
    let mut command = Command::new(BENCH);
    // Two gateway CPUs: LiteLLM runs two uvicorn worker processes.
    command
        .args(["--quick", "--peers", "--targets", "litellm", "--no-install", "--gateway-cpus", "0-1"])
        .args([
            "--warmup-requests",
            "20",
            "--duration",
            "1",
            "--scenario",
            "concurrent-100",
            "--mock-bin",
            MOCK,
            "--out",
        ])
        .arg(&out)
        .env("OHA", oha)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let status = wait_within(&mut child, PEER_RUN_LIMIT);
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| concurrent-100 | litellm |"), "{report}");
    let run = std::fs::read_to_string(out.join("concurrent-100__litellm.json")).unwrap();
    assert!(!run.contains("\"processes\": 1,"), "LiteLLM ran no worker process: {run}");
    let pids = logged_pids(&out);
    assert!(pids.iter().any(|(_, n)| n.starts_with("litellm (descendant of")), "{pids:?}");
    assert_all_gone(&pids);
    let _ = std::fs::remove_dir_all(&out);
}
