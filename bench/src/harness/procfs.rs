//! What the harness reads from `/proc`: a process's CPU time and its peak RSS.
//!
//! CPU time is `utime + stime` from `/proc/PID/stat`, which the kernel sums
//! over every thread of the process, live and exited, so a multi-threaded
//! gateway (crabllm's tokio workers) is measured whole. Peak RSS is `VmHWM`
//! from `/proc/PID/status`: a high-water mark the kernel keeps, so one read
//! just before the process is stopped is exact, where a sample after the run
//! (crabllm's `ps` method) can miss the peak.

use std::path::Path;

use anyhow::{Context, bail};

/// `utime + stime` of a process, in clock ticks (`CLK_TCK`, 100 a second on
/// Linux).
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = read(Path::new(&path))?;
    parse_cpu_ticks(&text).with_context(|| format!("parsing {path}"))
}

/// Peak resident set size (`VmHWM`) of a live process, in bytes.
pub fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = read(Path::new(&path))?;
    parse_vm_hwm_bytes(&text).with_context(|| format!("parsing {path}"))
}

/// Whether a process with this id exists (a zombie still counts).
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Fields 14 and 15 (utime, stime) of `/proc/PID/stat`. The second field,
/// the command name, is in parentheses and may itself hold spaces and
/// parentheses, so counting starts after the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    let Some(close) = stat.rfind(')') else { bail!("no `)` after the command name") };
    // After ")": field 3 (state) is the first, so utime (14) is the 12th.
    let mut fields = stat[close + 1..].split_ascii_whitespace().skip(11);
    let mut next = |name: &str| -> anyhow::Result<u64> {
        let field = fields.next().with_context(|| format!("no {name} field"))?;
        field.parse().with_context(|| format!("{name} `{field}` is not a number"))
    };
    let utime = next("utime")?;
    let stime = next("stime")?;
    Ok(utime + stime)
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
    fn cpu_ticks_count_from_the_last_parenthesis() {
        // A real line of a process named "a) b (c", utime 1500 and stime 250.
        let stat = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 3000 0 0 0 1500 250 0 0 20 0 3 0 \
                    100 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        assert_eq!(parse_cpu_ticks(stat).unwrap(), 1750);
        assert!(parse_cpu_ticks("4242 (x S 1").is_err());
        assert!(parse_cpu_ticks("4242 (x) S 1 2 3").is_err());
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tcorelay\nVmPeak:\t  100000 kB\nVmHWM:\t    7168 kB\nVmRSS:\t    6000 kB\n";
        assert_eq!(parse_vm_hwm_bytes(status).unwrap(), 7168 * 1024);
        assert!(parse_vm_hwm_bytes("Name:\tx\n").is_err());
        assert!(parse_vm_hwm_bytes("VmHWM:\t12 MB\n").is_err());
    }

    #[test]
    fn this_process_is_measurable() {
        let me = std::process::id();
        assert!(alive(me));
        cpu_ticks(me).unwrap();
        assert!(peak_rss_bytes(me).unwrap() > 0);
    }
}
