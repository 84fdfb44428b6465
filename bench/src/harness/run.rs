//! One measurement: start the mock (and the gateway) for a scenario, warm
//! up, run oha, and read the measured process tree's CPU time and peak RSS
//! (`procfs`), then stop everything that was started.
//!
//! Each (scenario, target) pair gets fresh processes, so the peak RSS of a
//! run is that run's own (VmHWM only ever grows) and no run inherits another's
//! pools or heap. Targets take turns within a scenario, so slow drift on a
//! shared machine spreads over all of them.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::oha::{self, Invocation, Outcome};
use super::scenarios::Scenario;
use super::targets::{self, Target};
use super::tools::{self, pause};
use super::{peers, procfs, procs};

/// How long a server may take to accept connections after it is started.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// The Python peers import hundreds of modules first: LiteLLM took about
/// 6 s to answer here on an idle CPU.
const PEER_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// LiteLLM's liveness route: 200 once its app has started.
const LITELLM_READY_PATH: &str = "/health/liveliness";
/// oha's run ends at its `-z`; this is the most it may take beyond that to
/// close and print (streams in flight are cancelled, not awaited).
const OHA_GRACE: Duration = Duration::from_secs(20);
/// Bound on the warm-up, which is a fixed number of requests (LiteLLM
/// serves one or two hundred a second on one CPU).
const WARMUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything a run needs that does not change between runs.
#[derive(Debug, Clone)]
pub struct Setup {
    pub oha: PathBuf,
    pub mock: PathBuf,
    pub corelay: Option<PathBuf>,
    pub crabllm: Option<PathBuf>,
    /// The venvs of the peers (`peers::venv`), when they run.
    pub litellm_venv: Option<PathBuf>,
    pub tensorzero_venv: Option<PathBuf>,
    pub gateway_cpus: String,
    /// CPUs in `gateway_cpus`: LiteLLM's worker processes.
    pub gateway_threads: u32,
    pub load_cpus: String,
    /// Threads of oha and of the mock: one per load CPU. oha's own default
    /// counts the machine's cores, ignoring `taskset`.
    pub load_threads: u32,
    pub duration: Duration,
    /// Runs of each (scenario, target); above 1, oha writes per-request CSV
    /// and the runs' latencies are merged (`merge`).
    pub repeat: u32,
    pub warmup_requests: u32,
    /// `RUST_LOG` of crabllm.
    pub crabllm_rust_log: String,
    /// `CLK_TCK`: the unit of /proc's CPU times.
    pub ticks_per_s: u64,
    /// Where configs, logs and oha's raw output go.
    pub dir: PathBuf,
}

impl Setup {
    /// Whether what `target` needs was found or installed.
    pub fn has(&self, target: Target) -> bool {
        match target {
            Target::Mock => true,
            Target::Corelay => self.corelay.is_some(),
            Target::Crabllm => self.crabllm.is_some(),
            Target::Litellm => self.litellm_venv.is_some(),
            Target::Tensorzero => self.tensorzero_venv.is_some(),
        }
    }
}

/// The result of one (scenario, target) run, as written to its JSON file.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub scenario: Scenario,
    pub target: Target,
    pub outcome: Outcome,
    /// CPU time (user + system) of the measured process and its
    /// descendants over the run, divided by the responses it gave, in
    /// microseconds.
    pub cpu_us_per_request: Option<f64>,
    pub cpu_s: f64,
    /// VmHWM of the measured process, summed over its descendants if it
    /// has any, read just before it was stopped.
    pub peak_rss_bytes: u64,
    /// Processes in the measured tree at the end of the run (1 unless the
    /// gateway runs worker processes).
    pub processes: usize,
    /// The process measured: the gateway, or the mock for the floor.
    pub measured: &'static str,
    /// Every process the run started, for the record.
    pub pids: Vec<u32>,
    /// Which of `--repeat` runs this is, from 1.
    pub repetition: u32,
    /// Every latency, in ns, when oha wrote per-request CSV (`--repeat`).
    #[serde(skip)]
    pub latency: Option<Histogram<u64>>,
}

/// A run file as [`Measurement`]'s `Serialize` wrote it.
#[derive(serde::Deserialize)]
struct Stored {
    scenario: StoredScenario,
    target: Target,
    outcome: Outcome,
    cpu_us_per_request: Option<f64>,
    cpu_s: f64,
    peak_rss_bytes: u64,
    processes: usize,
    pids: Vec<u32>,
    repetition: u32,
}

#[derive(serde::Deserialize)]
struct StoredScenario {
    name: String,
}

impl Measurement {
    /// A run file read back (`--report-from`). Its scenario is found by
    /// name among this build's scenarios.
    pub fn from_json(text: &[u8]) -> anyhow::Result<Measurement> {
        let stored: Stored = sonic_rs::from_slice(text)?;
        let name = &stored.scenario.name;
        let scenario = super::scenarios::full()
            .into_iter()
            .chain(super::scenarios::quick())
            .find(|s| s.name == *name)
            .ok_or_else(|| anyhow::anyhow!("no scenario `{name}` in this build"))?;
        let target = stored.target;
        Ok(Measurement {
            scenario,
            target,
            outcome: stored.outcome,
            cpu_us_per_request: stored.cpu_us_per_request,
            cpu_s: stored.cpu_s,
            peak_rss_bytes: stored.peak_rss_bytes,
            processes: stored.processes,
            measured: measured_name(target),
            pids: stored.pids,
            repetition: stored.repetition,
            latency: None,
        })
    }
}

/// The process a run of `target` measures.
fn measured_name(target: Target) -> &'static str {
    if target == Target::Mock { "corelay-mock" } else { target.name() }
}

/// Runs one scenario against one target and stops everything it started,
/// whether it succeeds or not.
pub fn measure(setup: &Setup, scenario: &Scenario, target: Target, repetition: u32) -> anyhow::Result<Measurement> {
    let mut started = Vec::new();
    let result = measure_inner(setup, scenario, target, repetition, &mut started);
    for &pid in started.iter().rev() {
        procs::stop(pid);
    }
    result.map(|mut m| {
        m.pids = started;
        m
    })
}

fn measure_inner(
    setup: &Setup,
    scenario: &Scenario,
    target: Target,
    repetition: u32,
    started: &mut Vec<u32>,
) -> anyhow::Result<Measurement> {
    let stem = run_stem(&scenario.name, target, repetition, setup.repeat);
    let mock_port = free_port()?;
    let mock = start_mock(setup, scenario, mock_port, &stem)?;
    started.push(mock);
    wait_ready(mock, mock_port, "corelay-mock", READY_TIMEOUT)?;

    let (measured_pid, port) = match target {
        Target::Mock => (mock, mock_port),
        Target::Corelay | Target::Crabllm | Target::Litellm | Target::Tensorzero => {
            let (gateway, ready) = start_gateway(setup, scenario, target, mock_port, &stem)?;
            started.push(gateway);
            (gateway, await_ready(gateway, &ready, target.name())?)
        }
    };
    let (path, body) = target.request(scenario);
    let url = format!("http://127.0.0.1:{port}{path}");

    warm_up(setup, &url, &body, &stem, started)?;
    let before = procfs::tree_cpu(measured_pid)?;
    let invocation = Invocation {
        url: &url,
        body: &body,
        load: scenario.load,
        duration: setup.duration,
        latency_correction: scenario.latency_correction,
        per_request: setup.repeat > 1,
    };
    let out = setup.dir.join(format!("{stem}.oha.{}", if invocation.per_request { "csv" } else { "json" }));
    run_oha(setup, &invocation.args(), &out, setup.duration + OHA_GRACE, "oha", started)?;
    // A gateway that died under load (LiteLLM's Python once segfaulted here)
    // is a failed run, said as such rather than as a /proc read error.
    if let Some(status) = procs::try_wait(measured_pid)? {
        bail!("{} exited during the run ({status}); its log is {stem}.*.log", target.name());
    }
    let after = procfs::tree_cpu(measured_pid)?;
    let peak_rss_bytes = procfs::tree_peak_rss_bytes(measured_pid)?;

    let text = std::fs::read_to_string(&out).with_context(|| format!("{}", out.display()))?;
    let (outcome, latency) = if invocation.per_request {
        oha::parse_csv(&text, setup.duration).map(|(o, h)| (o, Some(h)))
    } else {
        oha::parse(&text).map(|o| (o, None))
    }
    .with_context(|| format!("{}", out.display()))?;
    let cpu_s = after.ticks.saturating_sub(before.ticks) as f64 / setup.ticks_per_s as f64;
    Ok(Measurement {
        scenario: scenario.clone(),
        target,
        cpu_us_per_request: cpu_per_request_us(cpu_s, outcome.responses),
        cpu_s,
        peak_rss_bytes,
        processes: after.processes,
        measured: measured_name(target),
        outcome,
        pids: Vec::new(),
        repetition,
        latency,
    })
}

/// `SCENARIO__TARGET`, and `__rN` when runs repeat: the file names of a run.
pub fn run_stem(scenario: &str, target: Target, repetition: u32, repeat: u32) -> String {
    let stem = format!("{}__{}", file_safe(scenario), target.name());
    if repeat > 1 { format!("{stem}__r{repetition}") } else { stem }
}

/// CPU seconds over `responses`, in microseconds; None without responses.
pub fn cpu_per_request_us(cpu_s: f64, responses: u64) -> Option<f64> {
    (responses > 0).then(|| cpu_s * 1e6 / responses as f64)
}

fn start_mock(setup: &Setup, scenario: &Scenario, port: u16, stem: &str) -> anyhow::Result<u32> {
    let mut command = pinned(&setup.load_cpus, &setup.mock);
    command.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--dialect", scenario.upstream.dialect()]);
    command.args(["--chunks", &scenario.mock_chunks.to_string(), "--threads", &setup.load_threads.to_string()]);
    logged(&mut command, &setup.dir.join(format!("{stem}.mock.log")))?;
    procs::spawn("corelay-mock", &mut command)
}

/// How to tell that a started gateway serves.
#[derive(Debug, Clone)]
enum Ready {
    /// It accepts connections on this port.
    Accepts(u16),
    /// A GET of this path on this port answers 200.
    HttpOk(u16, &'static str),
    /// It prints its address into this log (TensorZero's random port),
    /// then accepts there.
    Announced(PathBuf),
}

/// Starts a gateway in front of the mock; returns its pid, recorded, and
/// how to know it is ready.
fn start_gateway(
    setup: &Setup,
    scenario: &Scenario,
    target: Target,
    mock_port: u16,
    stem: &str,
) -> anyhow::Result<(u32, Ready)> {
    let log = setup.dir.join(format!("{stem}.{}.log", target.name()));
    match target {
        Target::Corelay | Target::Crabllm => {
            let port = free_port()?;
            let (bin, config) = match target {
                Target::Corelay => {
                    (&setup.corelay, targets::corelay_config(port, mock_port, scenario.upstream, scenario.cached))
                }
                _ => (&setup.crabllm, targets::crabllm_config(port, mock_port, scenario.cached)),
            };
            let Some(bin) = bin else { bail!("no {} binary was located", target.name()) };
            let config_path = write_config(setup, stem, target, "toml", &config)?;
            let mut command = pinned(&setup.gateway_cpus, bin);
            command
                .args(targets::gateway_args(target, &config_path))
                .envs(targets::gateway_env(target, &setup.crabllm_rust_log));
            // crabllm may write files beside its working directory; keep them in
            // the run's folder.
            command.current_dir(&setup.dir);
            logged(&mut command, &log)?;
            Ok((procs::spawn(target.name(), &mut command)?, Ready::Accepts(port)))
        }
        Target::Litellm => {
            let Some(venv) = &setup.litellm_venv else { bail!("LiteLLM's venv was not set up") };
            let port = free_port()?;
            let config_path = write_config(setup, stem, target, "yaml", &peers::litellm_config(mock_port))?;
            let mut command = pinned(&setup.gateway_cpus, &venv.join("bin/litellm"));
            command.args(peers::litellm_args(&config_path, port, setup.gateway_threads));
            command.env_clear().envs(peers::env(target, venv, &setup.dir)).current_dir(&setup.dir);
            logged(&mut command, &log)?;
            Ok((procs::spawn_group(target.name(), &mut command)?, Ready::HttpOk(port, LITELLM_READY_PATH)))
        }
        Target::Tensorzero => {
            let Some(venv) = &setup.tensorzero_venv else { bail!("TensorZero's venv was not set up") };
            let config_path = write_config(setup, stem, target, "toml", &peers::tensorzero_config(mock_port))?;
            let launcher = setup.dir.join("tensorzero_launcher.py");
            std::fs::write(&launcher, peers::TENSORZERO_LAUNCHER).with_context(|| format!("{}", launcher.display()))?;
            let mut command = pinned(&setup.gateway_cpus, &venv.join("bin/python"));
            command.arg(&launcher).arg(&config_path);
            command.env_clear().envs(peers::env(target, venv, &setup.dir)).current_dir(&setup.dir);
            logged(&mut command, &log)?;
            Ok((procs::spawn_group(target.name(), &mut command)?, Ready::Announced(log)))
        }
        Target::Mock => unreachable!("the mock is not a gateway"),
    }
}

fn write_config(setup: &Setup, stem: &str, target: Target, ext: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = setup.dir.join(format!("{stem}.{}.{ext}", target.name()));
    std::fs::write(&path, text).with_context(|| format!("{}", path.display()))?;
    Ok(path)
}

/// Waits until a started gateway serves; returns its port.
fn await_ready(pid: u32, ready: &Ready, name: &str) -> anyhow::Result<u16> {
    match ready {
        Ready::Accepts(port) => wait_ready(pid, *port, name, READY_TIMEOUT).map(|()| *port),
        Ready::HttpOk(port, path) => {
            let deadline = Instant::now() + PEER_READY_TIMEOUT;
            wait_until(pid, name, deadline, || http_ok(*port, path))?;
            Ok(*port)
        }
        Ready::Announced(log) => {
            let deadline = Instant::now() + PEER_READY_TIMEOUT;
            let mut port = None;
            wait_until(pid, name, deadline, || {
                port = std::fs::read_to_string(log).ok().and_then(|text| peers::tensorzero_port(&text));
                port.is_some()
            })?;
            let port = port.context("no port")?;
            wait_ready(pid, port, name, PEER_READY_TIMEOUT).map(|()| port)
        }
    }
}

fn warm_up(setup: &Setup, url: &str, body: &str, stem: &str, started: &mut Vec<u32>) -> anyhow::Result<()> {
    let mut args = oha::warmup_args(url, body, setup.warmup_requests);
    args.splice(0..0, ["--output-format".to_owned(), "json".to_owned()]);
    let path = setup.dir.join(format!("{stem}.warmup.json"));
    run_oha(setup, &args, &path, WARMUP_TIMEOUT, "oha warm-up", started)?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let outcome = oha::parse(&text).context("warm-up output")?;
    if outcome.ok == 0 {
        bail!(
            "no 2xx answer in the warm-up to {url} ({:?} {:?}); see the logs in {}",
            outcome.statuses,
            outcome.error_kinds,
            setup.dir.display()
        );
    }
    Ok(())
}

/// Runs oha pinned to the load CPUs, its stdout to `out`, bounded by `limit`.
fn run_oha(
    setup: &Setup,
    args: &[String],
    out: &Path,
    limit: Duration,
    name: &str,
    started: &mut Vec<u32>,
) -> anyhow::Result<()> {
    let mut command = pinned(&setup.load_cpus, &setup.oha);
    command.args(["--worker-threads", &setup.load_threads.to_string()]).args(args).stdin(Stdio::null());
    command.stdout(File::create(out).with_context(|| format!("{}", out.display()))?);
    command.stderr(File::create(out.with_extension("stderr"))?);
    let pid = procs::spawn(name, &mut command)?;
    started.push(pid);
    match tools::wait(pid, limit)? {
        Some(status) if status.success() => Ok(()),
        Some(status) => bail!("{name} failed ({status}); see {}", out.with_extension("stderr").display()),
        None => bail!("{name} ran over its {} s limit and was stopped", limit.as_secs()),
    }
}

/// `taskset -c CPUS PROGRAM`: every process of a run is pinned the same way.
fn pinned(cpus: &str, program: &Path) -> Command {
    let mut command = Command::new("taskset");
    command.args(["-c", cpus]).arg(program).stdin(Stdio::null());
    command
}

fn logged(command: &mut Command, path: &Path) -> anyhow::Result<()> {
    let log = File::create(path).with_context(|| format!("{}", path.display()))?;
    command.stderr(log.try_clone()?).stdout(log);
    Ok(())
}

/// A port that was free a moment ago, on loopback. Another process could
/// take it before the server binds; then the server fails to start and the
/// run says so.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until something accepts on `port`, failing early if `pid` exits.
fn wait_ready(pid: u32, port: u16, name: &str, limit: Duration) -> anyhow::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_until(pid, name, Instant::now() + limit, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    })
    .with_context(|| format!("{name} on port {port}"))
}

/// Polls `ready` until it holds, failing if `pid` exits or the deadline passes.
fn wait_until(pid: u32, name: &str, deadline: Instant, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(status) = procs::try_wait(pid)? {
            bail!("{name} exited ({status}) before it was ready");
        }
        if Instant::now() >= deadline {
            bail!("{name} was not ready in time");
        }
        pause(Duration::from_millis(20));
    }
}

/// Whether `GET path` on the port answers 200 (HTTP/1.1, one connection).
fn http_ok(port: u16, path: &str) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let timeout = Some(Duration::from_secs(2));
    if stream.set_read_timeout(timeout).and(stream.set_write_timeout(timeout)).is_err() {
        return false;
    }
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut status = [0u8; 12];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_exact(&mut status).is_ok()
        && (&status == b"HTTP/1.1 200" || &status == b"HTTP/1.0 200")
}

fn file_safe(name: &str) -> String {
    name.replace(['@', '+'], "_")
}

/// `CLK_TCK` from `getconf`, else Linux's USER_HZ of 100.
pub fn ticks_per_s() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").stdin(Stdio::null()).output();
    out.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_file_reads_back_as_it_was_written() {
        let m = crate::harness::fixtures::measurement(
            "chat-stream@5000+lc",
            Target::Crabllm,
            120.0,
            450.0,
            41.7,
            64,
            4998.0,
        );
        let text = sonic_rs::to_string_pretty(&m).unwrap();
        let back = Measurement::from_json(text.as_bytes()).unwrap();
        assert_eq!((back.scenario.name.as_str(), back.target), ("chat-stream@5000+lc", Target::Crabllm));
        assert!(back.scenario.latency_correction);
        assert_eq!(back.outcome, m.outcome);
        assert_eq!(
            (back.cpu_us_per_request, back.peak_rss_bytes, back.measured),
            (Some(41.7), 64 * 1048576, "crabllm")
        );
        // A scenario this build does not know is an error that names it.
        let renamed = text.replace("chat-stream@5000+lc", "chat-gone@1");
        let e = Measurement::from_json(renamed.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("chat-gone@1"), "{e}");
    }
}
