//! The Python-hosted peers of `--peers`: the LiteLLM proxy and TensorZero's
//! gateway, each installed at a pinned version into its own venv in the
//! cache folder, and their configs in front of `corelay-mock`.
//!
//! LiteLLM (research/peers.md §6) is the `litellm` CLI from
//! `litellm[proxy]`: FastAPI on uvicorn, `--num_workers` worker processes
//! (one per gateway CPU, as LiteLLM advises: "workers = CPU count"). With
//! more than one, uvicorn forks workers, which is why its CPU and RSS are
//! read over the process tree (`procfs`) and it is stopped as a process
//! group (`procs::spawn_group`).
//!
//! TensorZero's gateway is a Rust program, but it cannot be had here as a
//! binary of its own: crates.io's `tensorzero` is a 0.0.0 placeholder,
//! building its `gateway` from source needs its repository (about 900
//! crates plus git dependencies), and its releases are Docker images and
//! GitHub downloads, neither of which this machine can reach. Its PyPI
//! wheel, though, embeds the same Rust gateway, and
//! `tensorzero._start_http_gateway` serves it over HTTP on a 127.0.0.1 port
//! from inside a Python process. That is what is measured: the Rust
//! gateway's OpenAI-compatible routes, plus the idle Python interpreter
//! hosting it (which counts in its RSS). `TENSORZERO_LAUNCHER` starts
//! it and prints the address, which is how the harness learns the port.
//!
//! Both run with a cleared environment (only PATH, HOME set to the run's
//! folder, and their own settings), so a benchmark run hands them nothing
//! from the shell it was started in.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use super::procs;
use super::targets::Target;
use super::tools;

/// LiteLLM's release. Newer ones (1.109.x) need a `litellm-proxy-extras`
/// that the package index does not serve; 1.106.2 installs and is the one
/// research/peers.md ran here.
pub const LITELLM_VERSION: &str = "1.106.2";
/// TensorZero's release: the wheel research/peers.md ran here.
pub const TENSORZERO_VERSION: &str = "2026.6.0";
/// `python3 -m venv` plus `pip install` of litellm[proxy] took about a
/// minute here (860 MB); this bounds a slow index.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(1200);
/// Written into a venv once pip succeeded, holding the requirement: a venv
/// without it (pip stopped half way) is made again.
const INSTALLED_MARKER: &str = "corelay-bench-installed";

/// Starts TensorZero's embedded HTTP gateway with the config file given as
/// its argument, prints its base URL on one line, and sleeps until killed.
pub const TENSORZERO_LAUNCHER: &str = r#"import signal, sys
import tensorzero
gateway = tensorzero._start_http_gateway(config_file=sys.argv[1], clickhouse_url=None, postgres_url=None, valkey_url=None, async_setup=False)
print("tensorzero gateway listening on " + gateway.base_url, flush=True)
while True:
    signal.pause()
"#;
/// What the launcher prints before the base URL.
pub const TENSORZERO_READY: &str = "tensorzero gateway listening on ";

/// `name[extras]==version`, as pip takes it.
pub fn requirement(target: Target) -> String {
    match target {
        Target::Litellm => format!("litellm[proxy]=={LITELLM_VERSION}"),
        Target::Tensorzero => format!("tensorzero=={TENSORZERO_VERSION}"),
        Target::Mock | Target::Corelay | Target::Crabllm => unreachable!("{} is not a Python peer", target.name()),
    }
}

/// `name version` for the report.
pub fn version(target: Target) -> String {
    match target {
        Target::Litellm => format!("litellm {LITELLM_VERSION}"),
        Target::Tensorzero => format!("tensorzero {TENSORZERO_VERSION}"),
        Target::Mock | Target::Corelay | Target::Crabllm => unreachable!("{} is not a Python peer", target.name()),
    }
}

/// The venv of a peer in the cache, made and filled first if it is missing
/// (unless `install` is false). The version is in the folder's name, so a
/// new pin gets a new venv.
pub fn venv(cache: &Path, target: Target, install: bool) -> anyhow::Result<PathBuf> {
    let requirement = requirement(target);
    let version = requirement.rsplit("==").next().unwrap_or_default();
    let dir = cache.join(format!("venv-{}-{version}", target.name()));
    let marker = dir.join(INSTALLED_MARKER);
    if std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == requirement.as_str()) {
        return Ok(dir);
    }
    if !install {
        bail!("{} is not installed in {} and --no-install was given", requirement, dir.display());
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing the unfinished venv {}", dir.display()))?;
    }
    eprintln!("corelay-bench: installing {requirement} into {} (python3 -m venv, pip)", dir.display());
    let mut venv = Command::new("python3");
    venv.args(["-m", "venv"]).arg(&dir);
    run_install(&mut venv, "python3 -m venv").context("python3 -m venv failed (is python3-venv installed?)")?;
    let mut pip = Command::new(dir.join("bin/pip"));
    pip.args(["install", "--disable-pip-version-check", "--no-input", &requirement]);
    run_install(&mut pip, "pip install")?;
    std::fs::write(&marker, &requirement).with_context(|| format!("{}", marker.display()))?;
    Ok(dir)
}

/// Runs an install step as a recorded child (Ctrl-C stops it), its output
/// on the harness's stderr, bounded by `INSTALL_TIMEOUT`.
fn run_install(command: &mut Command, name: &str) -> anyhow::Result<()> {
    command.stdin(Stdio::null()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
    let pid = procs::spawn(name, command)?;
    let status = tools::wait(pid, INSTALL_TIMEOUT)?.with_context(|| format!("{name} ran over its time"))?;
    if !status.success() {
        bail!("{name} failed: {status}");
    }
    Ok(())
}

/// LiteLLM's config: the mock as an OpenAI-compatible provider (`openai/`
/// prefix, `api_base`), no retries, no key checks (like corelay's and
/// crabllm's bench configs), no telemetry.
pub fn litellm_config(mock_port: u16) -> String {
    let model = |name: &str| {
        format!(
            "  - model_name: {name}\n    litellm_params:\n      model: openai/{name}\n      \
             api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: mock-key\n"
        )
    };
    format!(
        "model_list:\n{}{}litellm_settings:\n  telemetry: false\n  num_retries: 0\n  request_timeout: 10\n\
         general_settings:\n  # No master key: every request is let in, as corelay and crabllm do in this\n  \
         # benchmark. LiteLLM refuses to start that way unless told.\n  \
         dangerously_permit_weak_or_unset_master_key: true\n",
        model("bench-chat"),
        model("bench-embed")
    )
}

/// `litellm` CLI arguments: loopback only, on `port`, `workers` processes.
pub fn litellm_args(config: &Path, port: u16, workers: u32) -> Vec<String> {
    vec![
        "--config".to_owned(),
        config.display().to_string(),
        "--host".to_owned(),
        "127.0.0.1".to_owned(),
        "--port".to_owned(),
        port.to_string(),
        "--num_workers".to_owned(),
        workers.to_string(),
    ]
}

/// TensorZero's config: the mock as an OpenAI provider of a chat and an
/// embedding model, observability (ClickHouse) off, as in TensorZero's own
/// benchmark.
pub fn tensorzero_config(mock_port: u16) -> String {
    let provider = |kind: &str, name: &str| {
        format!(
            "[{kind}.{name}]\nrouting = [\"mock\"]\n\n[{kind}.{name}.providers.mock]\ntype = \"openai\"\n\
             model_name = \"{name}\"\napi_base = \"http://127.0.0.1:{mock_port}/v1/\"\n\
             api_key_location = \"env::MOCK_API_KEY\"\n"
        )
    };
    format!(
        "[gateway]\nobservability.enabled = false\n\n{}\n{}",
        provider("models", "bench-chat"),
        provider("embedding_models", "bench-embed")
    )
}

/// The port in the launcher's line `... listening on http://127.0.0.1:PORT/openai/v1`;
/// None until it is printed, and for any host but 127.0.0.1.
pub fn tensorzero_port(log: &str) -> Option<u16> {
    let line = log.lines().find_map(|l| l.strip_prefix(TENSORZERO_READY))?;
    let rest = line.trim().strip_prefix("http://127.0.0.1:")?;
    rest.split('/').next()?.parse().ok()
}

/// The environment of a peer: nothing from the harness's own but the venv
/// on PATH and HOME in the run's folder.
pub fn env(target: Target, venv: &Path, home: &Path) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", venv.join("bin").display())),
        ("HOME", home.display().to_string()),
    ];
    match target {
        // The bundled price table instead of a download at start-up; uvicorn
        // at WARNING, so no access-log line per request (crabllm runs at
        // RUST_LOG=warn for the same reason; corelay logs nothing per request).
        Target::Litellm => {
            env.extend([("LITELLM_LOCAL_MODEL_COST_MAP", "True".to_owned()), ("LITELLM_LOG", "WARNING".to_owned())])
        }
        Target::Tensorzero => env.push(("MOCK_API_KEY", "mock-key".to_owned())),
        Target::Mock | Target::Corelay | Target::Crabllm => {}
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_are_the_pinned_versions() {
        assert!(requirement(Target::Litellm).ends_with(LITELLM_VERSION));
        assert!(requirement(Target::Tensorzero).ends_with(TENSORZERO_VERSION));
    }

    #[test]
    fn configs_point_at_the_mock_on_loopback() {
        let l = litellm_config(19999);
        assert!(l.contains("model: openai/bench-chat\n      api_base: http://127.0.0.1:19999/v1\n"), "{l}");
        assert!(l.contains("- model_name: bench-embed\n"), "{l}");
        let t = tensorzero_config(19999);
        assert!(t.contains("[embedding_models.bench-embed.providers.mock]"), "{t}");
        let table: toml::Table = t.parse().unwrap();
        let api_base = &table["models"]["bench-chat"]["providers"]["mock"]["api_base"];
        assert_eq!(api_base.as_str(), Some("http://127.0.0.1:19999/v1/"));
        let args = litellm_args(Path::new("c.yaml"), 14000, 2).join(" ");
        assert_eq!(args, "--config c.yaml --host 127.0.0.1 --port 14000 --num_workers 2");
    }

    #[test]
    fn the_tensorzero_port_comes_from_the_launchers_line() {
        let log = "INFO something\ntensorzero gateway listening on http://127.0.0.1:33711/openai/v1\n";
        assert_eq!(tensorzero_port(log), Some(33711));
        assert_eq!(tensorzero_port("INFO starting\n"), None);
        assert_eq!(tensorzero_port("tensorzero gateway listening on http://0.0.0.0:1/openai/v1\n"), None);
    }
}
