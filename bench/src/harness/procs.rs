//! Every process the harness starts, and the guarantee that it stops them.
//!
//! Children are spawned through [`spawn`] or [`spawn_group`], which record
//! them in one process-wide table while holding its lock, so no child exists
//! unrecorded. Three paths stop them, each by process id, never by a name:
//! - the normal path, [`stop`] per child once its run is over;
//! - a [`Reaper`] guard in `main`, whose `Drop` runs on return and while a
//!   panic unwinds;
//! - a signal thread ([`on_signals_stop_all`]): SIGINT (Ctrl-C), SIGTERM and
//!   SIGHUP stop everything, then exit with 130.
//!
//! Stopping a child sends SIGKILL to its pid. A child started with
//! [`spawn_group`] (a gateway that runs worker processes: LiteLLM's uvicorn)
//! leads a process group of its own, whose id is its pid; stopping it sends
//! SIGKILL to that group and to every descendant found under it in `/proc`
//! (in case one left the group), then waits until they are gone, so no worker
//! outlives its run or takes CPU from the next one.
//!
//! Once stopping has begun, the spawns refuse, so the main thread cannot
//! start a child between the signal thread's sweep and its exit.
//! The pid of every child, and of every descendant of a group found when it
//! is stopped, is also appended to an optional log file, so a test can check
//! afterwards that none of them survived.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};
// The lock is taken a handful of times a second, never on a data path.
use std::sync::Mutex;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill as send, killpg};
use nix::unistd::Pid;

use super::procfs;

/// How long a stopped group's processes may take to disappear.
const GROUP_GONE_TIMEOUT: Duration = Duration::from_secs(5);

struct Recorded {
    name: String,
    child: Child,
    /// The child leads its own process group (pgid = its pid).
    group: bool,
}

struct Table {
    children: Vec<Recorded>,
    stopping: bool,
    pid_log: Option<File>,
}

static TABLE: Mutex<Table> = Mutex::new(Table { children: Vec::new(), stopping: false, pid_log: None });

fn table() -> std::sync::MutexGuard<'static, Table> {
    // A panic while holding the lock leaves the table consistent (each
    // operation is one push or one remove), so a poisoned lock is still used:
    // the children must be stopped all the same.
    TABLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Appends "PID NAME" of every child spawned from now on to `path`.
pub fn log_pids_to(path: &std::path::Path) -> anyhow::Result<()> {
    let file =
        OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("{}", path.display()))?;
    table().pid_log = Some(file);
    Ok(())
}

/// Starts `command` and records it under `name`; returns its pid.
pub fn spawn(name: &str, command: &mut Command) -> anyhow::Result<u32> {
    record(name, command, false)
}

/// Starts `command` as the leader of a new process group and records it;
/// stopping it stops the group and every descendant.
pub fn spawn_group(name: &str, command: &mut Command) -> anyhow::Result<u32> {
    command.process_group(0);
    record(name, command, true)
}

fn record(name: &str, command: &mut Command, group: bool) -> anyhow::Result<u32> {
    let mut table = table();
    if table.stopping {
        bail!("stopping: not starting {name}");
    }
    let child = command.spawn().with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
    let pid = child.id();
    if let Some(log) = table.pid_log.as_mut() {
        // The log is for checking afterwards; failing to write it must not
        // leave the child unrecorded in the table.
        let _ = writeln!(log, "{pid} {name}");
    }
    table.children.push(Recorded { name: name.to_owned(), child, group });
    Ok(pid)
}

/// The exit status of a recorded child, if it has exited (it stays recorded
/// until [`stop`] or [`reap`]).
pub fn try_wait(pid: u32) -> anyhow::Result<Option<ExitStatus>> {
    let mut table = table();
    let Some(r) = table.children.iter_mut().find(|r| r.child.id() == pid) else {
        bail!("no child with pid {pid}");
    };
    r.child.try_wait().with_context(|| format!("waiting for {}", r.name))
}

/// Forgets a child that has exited (after [`try_wait`] said so).
pub fn reap(pid: u32) {
    table().children.retain(|r| r.child.id() != pid);
}

/// Stops one child (and its group, if it leads one), then waits, so no
/// zombie is left.
pub fn stop(pid: u32) {
    let mut table = table();
    if let Some(i) = table.children.iter().position(|r| r.child.id() == pid) {
        let recorded = table.children.swap_remove(i);
        kill(recorded, &mut table.pid_log);
    }
}

/// Stops every recorded child and refuses new ones.
pub fn stop_all() {
    let mut table = table();
    table.stopping = true;
    let children: Vec<Recorded> = table.children.drain(..).collect();
    for recorded in children {
        kill(recorded, &mut table.pid_log);
    }
}

fn kill(mut recorded: Recorded, pid_log: &mut Option<File>) {
    let pid = recorded.child.id();
    let descendants = if recorded.group { procfs::descendants(pid).split_off(1) } else { Vec::new() };
    if let Some(log) = pid_log.as_mut() {
        for d in &descendants {
            let _ = writeln!(log, "{d} {} (descendant of {pid})", recorded.name);
        }
    }
    if recorded.group {
        // The group's id is the leader's pid (spawn_group). Errors mean
        // every member has exited already.
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        for &d in &descendants {
            let _ = send(Pid::from_raw(d as i32), Signal::SIGKILL);
        }
    }
    // Errors mean the process already exited; wait() then just reaps it.
    let _ = recorded.child.kill();
    let _ = recorded.child.wait();
    // The descendants are not our children: init reaps them once their
    // parent, the leader, is gone. Wait (bounded) until it has.
    let deadline = Instant::now() + GROUP_GONE_TIMEOUT;
    while descendants.iter().any(|&d| procfs::alive(d)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops every child when dropped: on return from `main` and on a panic.
#[derive(Debug)]
pub struct Reaper;

impl Drop for Reaper {
    fn drop(&mut self) {
        stop_all();
    }
}

/// Starts a thread that, on SIGINT, SIGTERM or SIGHUP, stops every child and
/// exits with status 130.
pub fn on_signals_stop_all() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new().name("signals".to_owned()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            eprintln!("corelay-bench: signal {signal}, stopping every process it started");
            stop_all();
            std::process::exit(130);
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopping_a_group_stops_its_descendants() {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 30 & sleep 30 & wait"]).stdin(std::process::Stdio::null());
        let pid = spawn_group("sh", &mut command).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let tree = loop {
            let tree = procfs::descendants(pid);
            if tree.len() >= 3 {
                break tree;
            }
            assert!(Instant::now() < deadline, "the two sleeps never started: {tree:?}");
            std::thread::sleep(Duration::from_millis(10));
        };
        stop(pid);
        for p in tree {
            assert!(!procfs::alive(p), "pid {p} of the group survived");
        }
    }
}
