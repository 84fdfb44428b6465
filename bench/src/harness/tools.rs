//! Finding, or installing, the programs the harness drives.
//!
//! The harness builds nothing of corelay itself (`just bench` builds the
//! release binaries first); it finds `corelay` and `corelay-mock` beside its
//! own executable. Third-party tools come from `cargo install --locked`
//! into the cache folder (`bench/.cache`, ignored by git; `CORELAY_BENCH_CACHE`
//! moves it), at pinned versions so a rerun measures the same programs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use super::procs;

/// Environment variable that moves the cache folder.
pub const CACHE_ENV: &str = "CORELAY_BENCH_CACHE";
/// The crabllm release measured: the one our teardown (research/crabllm.md) read.
pub const CRABLLM_VERSION: &str = "0.0.25";
/// oha's release; `--locked` because its newest dependencies need a newer rustc.
pub const OHA_VERSION: &str = "1.16.0";
/// Where another checkout on the development machine installs shared tools.
const SHARED_TOOLS_BIN: &str = "/work/tools/bin";
/// A `cargo install` of crabllm takes about 17 minutes on 2 cores.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(3600);

/// The cache folder: `$CORELAY_BENCH_CACHE`, else `bench/.cache`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os(CACHE_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache"),
    }
}

/// A binary built with the harness, in the same target folder.
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating corelay-bench")?;
    let path = me.with_file_name(name);
    if !path.is_file() {
        bail!(
            "{} not found: build it first (`just bench` does: cargo build --release -p gateway -p bench)",
            path.display()
        );
    }
    Ok(path)
}

/// oha: `$OHA`, else on PATH, else the cache, else the shared tools folder,
/// else installed into the cache (unless `install` is false).
pub fn oha(cache: &Path, install: bool) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("OHA").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let candidates = on_path("oha").into_iter().chain([cache.join("bin/oha"), Path::new(SHARED_TOOLS_BIN).join("oha")]);
    if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
        return Ok(found);
    }
    if !install {
        bail!("oha not found (PATH, {}, {SHARED_TOOLS_BIN}) and --no-install was given", cache.display());
    }
    cargo_install(cache, "oha", OHA_VERSION)?;
    Ok(cache.join("bin/oha"))
}

/// The `crabllm` binary from the cache, installed there first if missing.
pub fn crabllm(cache: &Path, install: bool) -> anyhow::Result<PathBuf> {
    let path = cache.join("bin/crabllm");
    if path.is_file() {
        return Ok(path);
    }
    if !install {
        bail!("{} not found and --no-install was given", path.display());
    }
    cargo_install(cache, "crabllm", CRABLLM_VERSION)?;
    Ok(path)
}

/// The first line of `PROGRAM --version`, for the report.
pub fn version(program: &Path) -> String {
    let out = Command::new(program).arg("--version").stdin(Stdio::null()).output();
    match out {
        Ok(out) => String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").trim().to_owned(),
        Err(_) => String::new(),
    }
}

/// The version `cargo install` recorded for a crate in the cache
/// (`.crates.toml`), for programs without `--version` (crabllm 0.0.25).
pub fn installed_version(cache: &Path, krate: &str) -> Option<String> {
    let text = std::fs::read_to_string(cache.join(".crates.toml")).ok()?;
    parse_installed_version(&text, krate)
}

/// `"crabllm 0.0.25 (registry+...)" = ["crabllm"]` gives `crabllm 0.0.25`.
pub fn parse_installed_version(crates_toml: &str, krate: &str) -> Option<String> {
    let prefix = format!("\"{krate} ");
    let line = crates_toml.lines().find(|l| l.starts_with(&prefix))?;
    let version = line[prefix.len()..].split_whitespace().next()?;
    Some(format!("{krate} {version}"))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// `cargo install --locked CRATE --version V --root CACHE`, as a recorded
/// child so Ctrl-C stops it too.
fn cargo_install(cache: &Path, krate: &str, version: &str) -> anyhow::Result<()> {
    eprintln!("corelay-bench: installing {krate} {version} into {} (cargo install --locked)", cache.display());
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.args(["install", "--locked", krate, "--version", version, "--root"]).arg(cache).stdin(Stdio::null());
    let pid = procs::spawn(&format!("cargo install {krate}"), &mut command)?;
    let status = wait(pid, INSTALL_TIMEOUT)?.with_context(|| format!("cargo install {krate} ran over its time"))?;
    if !status.success() {
        bail!("cargo install {krate} failed: {status}");
    }
    Ok(())
}

/// Waits for a recorded child to exit, at most `limit`; stops it on timeout
/// and returns None.
pub fn wait(pid: u32, limit: Duration) -> anyhow::Result<Option<std::process::ExitStatus>> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = procs::try_wait(pid)? {
            procs::reap(pid);
            return Ok(Some(status));
        }
        if std::time::Instant::now() >= deadline {
            procs::stop(pid);
            return Ok(None);
        }
        pause(Duration::from_millis(20));
    }
}

/// A plain sleep: the harness is a blocking program, not a shard.
pub fn pause(d: Duration) {
    std::thread::sleep(d);
}

#[cfg(test)]
mod tests {
    #[test]
    fn installed_versions_come_from_crates_toml() {
        let text = "[v1]\n\"crabllm 0.0.25 (registry+https://github.com/rust-lang/crates.io-index)\" = [\"crabllm\"]\n";
        assert_eq!(super::parse_installed_version(text, "crabllm").as_deref(), Some("crabllm 0.0.25"));
        assert_eq!(super::parse_installed_version(text, "oha"), None);
    }
}
