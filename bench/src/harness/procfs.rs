//! What the harness reads from `/proc`: the CPU time and peak RSS of a
//! measured process and of every process it started (its tree).
//!
//! CPU time is `utime + stime` from `/proc/PID/stat`, which the kernel sums
//! over every thread of the process, live and exited, so a multi-threaded
//! gateway (crabllm's tokio workers) is measured whole. A gateway that runs
//! worker processes (LiteLLM's uvicorn workers) is measured as its tree:
//! every live process whose chain of parents leads to the measured pid, each
//! counted with `utime + stime + cutime + cstime`. The last two hold the time
//! of children that process has already reaped, so a worker that exits
//! during a run still counts (in its parent's figure), and no time is
//! counted twice: a live process's own time is in its `utime` and `stime`
//! only. A descendant re-parented away from the tree (orphaned, then reaped
//! by init) is lost; the gateways measured here do not orphan their workers.
//!
//! Peak RSS is `VmHWM` from `/proc/PID/status`: a high-water mark the kernel
//! keeps, so one read just before the process is stopped is exact, where a
//! sample after the run (crabllm's `ps` method) can miss the peak. For a tree
//! the harness adds up the processes' VmHWM. That is an upper bound of the
//! tree's real peak: the processes may peak at different times, and pages
//! they share (a forked worker's copy-on-write heap, shared libraries) are
//! counted once per process. For a single process it is exact.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};

/// The fields of `/proc/PID/stat` the harness uses; times in clock ticks
/// (`CLK_TCK`, 100 a second on Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    /// utime + stime: the process's own threads.
    pub own_ticks: u64,
    /// cutime + cstime: children it has waited for.
    pub reaped_children_ticks: u64,
}

/// CPU time of a process tree, in clock ticks, and how many processes it
/// held when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeCpu {
    pub ticks: u64,
    pub processes: usize,
}

/// `utime + stime` of one process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    Ok(stat(pid)?.own_ticks)
}

/// CPU time of `root` and every live descendant (see the module doc).
pub fn tree_cpu(root: u32) -> anyhow::Result<TreeCpu> {
    // The root must be readable: a measured process that vanished is an error.
    stat(root)?;
    let mut ticks = 0;
    let tree = descendants(root);
    for &pid in &tree {
        // A descendant that exited since the scan has passed its time to its
        // parent's cutime, which is read after; skipping it loses nothing
        // that a later read would not see.
        if let Ok(s) = stat(pid) {
            ticks += s.own_ticks + s.reaped_children_ticks;
        }
    }
    Ok(TreeCpu { ticks, processes: tree.len() })
}

/// Peak resident set size (`VmHWM`) of a live process, in bytes.
pub fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = read(Path::new(&path))?;
    parse_vm_hwm_bytes(&text).with_context(|| format!("parsing {path}"))
}

/// VmHWM summed over `root` and its live descendants, in bytes: an upper
/// bound of the tree's peak (see the module doc).
pub fn tree_peak_rss_bytes(root: u32) -> anyhow::Result<u64> {
    let mut total = peak_rss_bytes(root)?;
    for pid in descendants(root).into_iter().skip(1) {
        // Zombies have no VmHWM line; processes may exit while being read.
        total += peak_rss_bytes(pid).unwrap_or(0);
    }
    Ok(total)
}

/// `root` first, then every process whose chain of parents leads to it,
/// from one scan of `/proc`.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parents = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if let Ok(s) = stat(pid) {
                parents.insert(pid, s.ppid);
            }
        }
    }
    tree_of(root, &parents)
}

/// The tree under `root` in a pid → parent map, root first, breadth first.
pub fn tree_of(root: u32, parents: &HashMap<u32, u32>) -> Vec<u32> {
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() {
        let parent = tree[next];
        let mut children: Vec<u32> =
            parents.iter().filter(|&(&pid, &ppid)| ppid == parent && pid != root).map(|(&pid, _)| pid).collect();
        children.sort_unstable();
        tree.extend(children);
        next += 1;
    }
    tree
}

/// Whether a process with this id exists (a zombie still counts).
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn stat(pid: u32) -> anyhow::Result<Stat> {
    let path = format!("/proc/{pid}/stat");
    let text = read(Path::new(&path))?;
    parse_stat(&text).with_context(|| format!("parsing {path}"))
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Fields 4 (ppid) and 14 to 17 (utime, stime, cutime, cstime) of
/// `/proc/PID/stat`. The second field, the command name, is in parentheses
/// and may itself hold spaces and parentheses, so counting starts after the
/// last `)`.
pub fn parse_stat(stat: &str) -> anyhow::Result<Stat> {
    let Some(close) = stat.rfind(')') else { bail!("no `)` after the command name") };
    // After ")": field 3 (state) is the first, ppid (4) the second, utime (14) the 12th.
    let fields: Vec<&str> = stat[close + 1..].split_ascii_whitespace().take(15).collect();
    let field = |index: usize, name: &str| -> anyhow::Result<u64> {
        let field = fields.get(index).with_context(|| format!("no {name} field"))?;
        field.parse().with_context(|| format!("{name} `{field}` is not a number"))
    };
    let ppid = u32::try_from(field(1, "ppid")?).context("ppid out of range")?;
    let own_ticks = field(11, "utime")? + field(12, "stime")?;
    let reaped_children_ticks = field(13, "cutime")? + field(14, "cstime")?;
    Ok(Stat { ppid, own_ticks, reaped_children_ticks })
}

/// The `VmHWM:  1234 kB` line of `/proc/PID/status`, in bytes.
pub fn parse_vm_hwm_bytes(status: &str) -> anyhow::Result<u64> {
    let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) else { bail!("no VmHWM line") };
    let mut words = line["VmHWM:".len()..].split_ascii_whitespace();
    let (Some(value), Some("kB")) = (words.next(), words.next()) else { bail!("unexpected VmHWM line `{line}`") };
    let kib: u64 = value.parse().with_context(|| format!("VmHWM `{value}` is not a number"))?;
    Ok(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        // A real line of a process named "a) b (c": ppid 1, utime 1500,
        // stime 250, cutime 40, cstime 2.
        let stat = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 3000 0 0 0 1500 250 40 2 20 0 3 0 \
                    100 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        assert_eq!(parse_stat(stat).unwrap(), Stat { ppid: 1, own_ticks: 1750, reaped_children_ticks: 42 });
        assert!(parse_stat("4242 (x S 1").is_err());
        assert!(parse_stat("4242 (x) S 1 2 3").is_err());
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tcorelay\nVmPeak:\t  100000 kB\nVmHWM:\t    7168 kB\nVmRSS:\t    6000 kB\n";
        assert_eq!(parse_vm_hwm_bytes(status).unwrap(), 7168 * 1024);
        assert!(parse_vm_hwm_bytes("Name:\tx\n").is_err());
        assert!(parse_vm_hwm_bytes("VmHWM:\t12 MB\n").is_err());
    }

    #[test]
    fn trees_follow_parents_breadth_first() {
        // 10 → {12, 11}; 11 → 13; 13 → 14; 20 is elsewhere.
        let parents = HashMap::from([(10, 1), (11, 10), (12, 10), (13, 11), (14, 13), (20, 1)]);
        assert_eq!(tree_of(10, &parents), [10, 11, 12, 13, 14]);
        assert_eq!(tree_of(13, &parents), [13, 14]);
        assert_eq!(tree_of(99, &parents), [99]);
    }

    #[test]
    fn this_process_is_measurable() {
        let me = std::process::id();
        assert!(alive(me));
        cpu_ticks(me).unwrap();
        assert!(peak_rss_bytes(me).unwrap() > 0);
        assert_eq!(descendants(me)[0], me);
        assert!(tree_cpu(me).unwrap().processes >= 1);
        // VmHWM only grows (other tests allocate meanwhile): read ours first.
        let own = peak_rss_bytes(me).unwrap();
        assert!(tree_peak_rss_bytes(me).unwrap() >= own);
    }
}
