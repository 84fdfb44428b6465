//! Every process the harness starts, and the guarantee that it stops them.
//!
//! Children are spawned through [`spawn`], which records them in one
//! process-wide table while holding its lock, so no child exists unrecorded.
//! Three paths stop them, each by process id (`Child::kill` sends SIGKILL to
//! that pid, never to a name or a group):
//! - the normal path, [`stop`] per child once its run is over;
//! - a [`Reaper`] guard in `main`, whose `Drop` runs on return and while a
//!   panic unwinds;
//! - a signal thread ([`on_signals_stop_all`]): SIGINT (Ctrl-C), SIGTERM and
//!   SIGHUP stop everything, then exit with 130.
//!
//! Once stopping has begun, [`spawn`] refuses, so the main thread cannot
//! start a child between the signal thread's sweep and its exit.
//! The pid of every child is also appended to an optional log file, so a
//! test can check afterwards that none of them survived.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::process::{Child, Command, ExitStatus};
// The lock is taken a handful of times a second, never on a data path.
use std::sync::Mutex;

use anyhow::{Context, bail};

struct Table {
    children: Vec<(String, Child)>,
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
    table.children.push((name.to_owned(), child));
    Ok(pid)
}

/// The exit status of a recorded child, if it has exited (it stays recorded
/// until [`stop`] or [`reap`]).
pub fn try_wait(pid: u32) -> anyhow::Result<Option<ExitStatus>> {
    let mut table = table();
    let Some((name, child)) = table.children.iter_mut().find(|(_, c)| c.id() == pid) else {
        bail!("no child with pid {pid}");
    };
    child.try_wait().with_context(|| format!("waiting for {name}"))
}

/// Forgets a child that has exited (after [`try_wait`] said so).
pub fn reap(pid: u32) {
    table().children.retain(|(_, c)| c.id() != pid);
}

/// Stops one child: SIGKILL to its pid, then wait, so no zombie is left.
pub fn stop(pid: u32) {
    let mut table = table();
    if let Some(i) = table.children.iter().position(|(_, c)| c.id() == pid) {
        let (_, mut child) = table.children.swap_remove(i);
        kill(&mut child);
    }
}

/// Stops every recorded child and refuses new ones.
pub fn stop_all() {
    let mut table = table();
    table.stopping = true;
    for (_, mut child) in table.children.drain(..) {
        kill(&mut child);
    }
}

fn kill(child: &mut Child) {
    // Errors mean the process already exited; wait() then just reaps it.
    let _ = child.kill();
    let _ = child.wait();
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
