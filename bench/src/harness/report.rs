//! The Markdown report: one table per scenario kind, then corelay's ratios
//! to each peer (crabllm, and LiteLLM and TensorZero with `--peers`), and
//! the four criteria against crabllm, each marked pass or fail.

use std::fmt::Write;

use super::charts::{self, Chart};
use super::oha::Load;
use super::run::Measurement;
use super::targets::Target;

/// What the report header says about the run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub started_utc: String,
    pub command: String,
    pub machine: String,
    pub corelay_commit: String,
    pub oha_version: String,
    pub crabllm_version: String,
    /// The peers of `--peers` that ran, each with its version and how.
    pub peers: Vec<String>,
    pub gateway_cpus: String,
    pub load_cpus: String,
    pub duration_s: f64,
    /// Runs of each (scenario, target), merged in the tables (`merge`).
    pub repeat: u32,
    pub crabllm_rust_log: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    CpuPerRequest,
    P99,
    /// P99 less the mock's P99 in the same scenario: what crabllm's own
    /// harness calls overhead (research/crabllm.md §9.2).
    P99OverMock,
    PeakRss,
    OkPerSecond,
}

impl Metric {
    pub fn value(self, m: &Measurement) -> Option<f64> {
        match self {
            Metric::CpuPerRequest => m.cpu_us_per_request,
            Metric::P99 | Metric::P99OverMock => m.outcome.p99_us,
            Metric::PeakRss => Some(m.peak_rss_bytes as f64),
            Metric::OkPerSecond => Some(m.outcome.ok_per_s),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Metric::CpuPerRequest => "CPU per request",
            Metric::P99 => "P99",
            Metric::P99OverMock => "P99 above the mock's",
            Metric::PeakRss => "peak RSS",
            Metric::OkPerSecond => "streams per second",
        }
    }
}

/// A bound on corelay's value over the peer's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

impl Bound {
    pub fn holds(self, ratio: f64) -> bool {
        match self {
            Bound::AtMost(limit) => ratio <= limit,
            Bound::AtLeast(limit) => ratio >= limit,
        }
    }
}

/// One of the acceptance criteria: corelay / crabllm on a metric
/// of a scenario.
#[derive(Debug, Clone, Copy)]
pub struct Criterion {
    pub scenario: &'static str,
    pub metric: Metric,
    pub bound: Bound,
    pub bound_text: &'static str,
}

/// Issue 6: at 5,000 RPS, chat-minimal and chat-stream, CPU per request at
/// most 1/5 of crabllm's, P99 at most 1/2, peak RSS at most 1/3; for 100
/// concurrent streams, at least 4× crabllm's streams per second. The P99
/// bound is judged twice: on the latencies as measured, and on what each
/// gateway adds to the mock's own (crabllm's definition of overhead).
pub const CRITERIA: [Criterion; 9] = [
    Criterion {
        scenario: "chat-minimal@5000",
        metric: Metric::CpuPerRequest,
        bound: Bound::AtMost(0.2),
        bound_text: "≤ 1/5",
    },
    Criterion {
        scenario: "chat-stream@5000",
        metric: Metric::CpuPerRequest,
        bound: Bound::AtMost(0.2),
        bound_text: "≤ 1/5",
    },
    Criterion { scenario: "chat-minimal@5000", metric: Metric::P99, bound: Bound::AtMost(0.5), bound_text: "≤ 1/2" },
    Criterion { scenario: "chat-stream@5000", metric: Metric::P99, bound: Bound::AtMost(0.5), bound_text: "≤ 1/2" },
    Criterion {
        scenario: "chat-minimal@5000",
        metric: Metric::PeakRss,
        bound: Bound::AtMost(1.0 / 3.0),
        bound_text: "≤ 1/3",
    },
    Criterion {
        scenario: "chat-stream@5000",
        metric: Metric::PeakRss,
        bound: Bound::AtMost(1.0 / 3.0),
        bound_text: "≤ 1/3",
    },
    Criterion {
        scenario: "concurrent-100",
        metric: Metric::OkPerSecond,
        bound: Bound::AtLeast(4.0),
        bound_text: "≥ 4",
    },
    Criterion {
        scenario: "chat-minimal@5000",
        metric: Metric::P99OverMock,
        bound: Bound::AtMost(0.5),
        bound_text: "≤ 1/2",
    },
    Criterion {
        scenario: "chat-stream@5000",
        metric: Metric::P99OverMock,
        bound: Bound::AtMost(0.5),
        bound_text: "≤ 1/2",
    },
];

/// How a criterion came out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Pass {
        ours: f64,
        theirs: f64,
        ratio: f64,
    },
    Fail {
        ours: f64,
        theirs: f64,
        ratio: f64,
    },
    /// A run is missing or has no value (e.g. no response at all).
    NotMeasured,
}

/// `ours / theirs`; None when either is missing or the divisor is not positive.
pub fn ratio(ours: Option<f64>, theirs: Option<f64>) -> Option<f64> {
    match (ours, theirs) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

fn find<'a>(runs: &'a [Measurement], scenario: &str, target: Target) -> Option<&'a Measurement> {
    runs.iter().find(|m| m.scenario.name == scenario && m.target == target)
}

pub fn judge(runs: &[Measurement], c: &Criterion, peer: Target) -> Verdict {
    let value = |target| find(runs, c.scenario, target).and_then(|m| c.metric.value(m));
    let (mut ours, mut theirs) = (value(Target::Corelay), value(peer));
    if c.metric == Metric::P99OverMock {
        let floor = find(runs, c.scenario, Target::Mock).and_then(|m| m.outcome.p99_us);
        let above = |v: Option<f64>| floor.and_then(|f| v.map(|v| (v - f).max(0.0)));
        (ours, theirs) = (above(ours), above(theirs));
    }
    match (ours, theirs, ratio(ours, theirs)) {
        (Some(ours), Some(theirs), Some(r)) if c.bound.holds(r) => Verdict::Pass { ours, theirs, ratio: r },
        (Some(ours), Some(theirs), Some(r)) => Verdict::Fail { ours, theirs, ratio: r },
        _ => Verdict::NotMeasured,
    }
}

/// The whole report.
///
/// `runs` has one measurement per (scenario, target), merged over the
/// `repetitions` when runs repeat (`repetitions` is empty otherwise).
pub fn markdown(
    meta: &Meta,
    runs: &[Measurement],
    repetitions: &[Measurement],
    charts: &[Chart],
    failures: &[String],
) -> String {
    let mut out = String::new();
    header(&mut out, meta);
    tables(&mut out, runs);
    each_run(&mut out, repetitions);
    chart_links(&mut out, runs, charts);
    if !failures.is_empty() {
        let _ = writeln!(out, "## Runs that failed\n");
        for f in failures {
            let _ = writeln!(out, "- {f}");
        }
        out.push('\n');
    }
    ratios(&mut out, runs);
    out
}

fn header(out: &mut String, meta: &Meta) {
    let _ = writeln!(out, "# corelay benchmark, {}\n", meta.started_utc);
    let _ = writeln!(out, "- Command: `{}`", meta.command);
    let _ = writeln!(out, "- Machine: {}", meta.machine);
    let _ = writeln!(
        out,
        "- corelay: commit {}; crabllm: {}; oha: {}",
        meta.corelay_commit, meta.crabllm_version, meta.oha_version
    );
    for peer in &meta.peers {
        let _ = writeln!(out, "- Peer: {peer}");
    }
    let _ = writeln!(
        out,
        "- Pinning (taskset): each gateway on CPUs {}; corelay-mock and oha on CPUs {}. {} s per run, after a warm-up; \
         one oha and mock thread per load CPU; fresh processes for every run.",
        meta.gateway_cpus, meta.load_cpus, meta.duration_s
    );
    let _ = writeln!(
        out,
        "- Latency is oha's, in ms. CPU is the measured process's utime + stime over the run, per response \
         (for a process tree, see below). Peak RSS is its VmHWM. The `mock` row is corelay-mock alone (the floor), measured on the load CPUs. \
         `+lc` runs use oha's `--latency-correction`. crabllm runs with `RUST_LOG={}` \
         (at `warn` it writes no per-request log line; corelay writes none). An achieved rate below 98% of the \
         offered one is marked: that target was saturated.",
        meta.crabllm_rust_log
    );
    let _ = writeln!(
        out,
        "- A target that runs worker processes (LiteLLM with more than one gateway CPU) is measured as a process \
         tree: CPU is utime + stime of every process under it, plus what they reaped (cutime + cstime); peak RSS \
         is the sum of their VmHWM, an upper bound of the tree's peak (shared pages count once per process). The \
         run's JSON says how many processes were counted. LiteLLM runs with `LITELLM_LOG=WARNING` (no access-log \
         line per request), TensorZero with its default logging (none per request)."
    );
    if meta.repeat > 1 {
        let _ = writeln!(
            out,
            "- Each (scenario, target) ran {} times, with fresh processes each time, and the tables, ratios and \
             charts merge those runs: latency percentiles come from one HdrHistogram of every request of every run \
             (oha's per-request CSV; 3 significant digits), CPU per request is all the CPU time over all the \
             responses, the achieved rate all the 2xx answers over all the runs' time, peak RSS the highest run's. \
             oha's CSV lists only requests that got an answer, so here `errors` counts non-2xx answers and no \
             transport error or deadline abort. \"Each run\" lists the runs one by one.",
            meta.repeat
        );
    }
    out.push('\n');
}

/// The runs one by one, when they repeat: their spread.
fn each_run(out: &mut String, repetitions: &[Measurement]) {
    if repetitions.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Each run\n");
    let _ = writeln!(
        out,
        "| scenario | target | run | achieved rps | errors | P50 | P99 | max | CPU µs/req | peak RSS MB |"
    );
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for m in repetitions {
        let o = &m.outcome;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            m.scenario.name,
            m.target.name(),
            m.repetition,
            achieved(m),
            o.errors,
            ms(o.p50_us),
            ms(o.p99_us),
            ms(o.max_us),
            m.cpu_us_per_request.map_or("–".to_owned(), |v| format!("{v:.1}")),
            m.peak_rss_bytes as f64 / 1048576.0,
        );
    }
    out.push('\n');
}

fn tables(out: &mut String, runs: &[Measurement]) {
    let mut names: Vec<&str> = Vec::new();
    for m in runs {
        if !names.contains(&m.scenario.name.as_str()) {
            names.push(&m.scenario.name);
        }
    }
    let _ = writeln!(out, "## Results\n");
    let _ = writeln!(
        out,
        "| scenario | target | achieved rps | 2xx | errors | P50 | P90 | P99 | P99.9 | max | CPU µs/req | peak RSS MB |"
    );
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for name in names {
        for m in runs.iter().filter(|m| m.scenario.name == name) {
            let o = &m.outcome;
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
                m.target.name(),
                achieved(m),
                o.ok,
                o.errors,
                ms(o.p50_us),
                ms(o.p90_us),
                ms(o.p99_us),
                ms(o.p99_9_us),
                ms(o.max_us),
                m.cpu_us_per_request.map_or("–".to_owned(), |v| format!("{v:.1}")),
                m.peak_rss_bytes as f64 / 1048576.0,
            );
        }
    }
    out.push('\n');
}

/// The charts beside the report, with their legend in words (a chart drawn
/// without a font has none of its own).
fn chart_links(out: &mut String, runs: &[Measurement], charts: &[Chart]) {
    if charts.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Charts\n");
    let legend: Vec<String> = Target::ALL
        .into_iter()
        .filter(|&t| runs.iter().any(|m| m.target == t))
        .map(|t| format!("{} {}", t.name(), charts::colour_name(t)))
        .collect();
    let _ = writeln!(
        out,
        "Colours: {}. Value axes are logarithmic. In the latency charts, circles are P50 and triangles P99.\n",
        legend.join(", ")
    );
    for chart in charts {
        let _ = writeln!(out, "![{}]({})\n", chart.title, chart.file);
    }
}

fn ratios(out: &mut String, runs: &[Measurement]) {
    let _ = writeln!(out, "## corelay / each peer\n");
    let _ = writeln!(out, "Below 1 is corelay's advantage, except for achieved rps, where above 1 is.\n");
    for peer in [Target::Crabllm, Target::Litellm, Target::Tensorzero] {
        if !runs.iter().any(|m| m.target == peer) || !runs.iter().any(|m| m.target == Target::Corelay) {
            continue;
        }
        let _ = writeln!(out, "### {}\n", peer.name());
        let _ = writeln!(out, "| scenario | CPU per request | P99 | peak RSS | achieved rps |");
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: |");
        for m in runs.iter().filter(|m| m.target == Target::Corelay) {
            let Some(p) = find(runs, &m.scenario.name, peer) else { continue };
            let cell = |metric: Metric| ratio(metric.value(m), metric.value(p)).map_or("–".to_owned(), ratio_text);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                m.scenario.name,
                cell(Metric::CpuPerRequest),
                cell(Metric::P99),
                cell(Metric::PeakRss),
                cell(Metric::OkPerSecond)
            );
        }
        out.push('\n');
        if peer == Target::Crabllm {
            criteria(out, runs, peer);
        }
    }
}

/// Issue 6's criteria, stated against crabllm.
fn criteria(out: &mut String, runs: &[Measurement], peer: Target) {
    let _ = writeln!(out, "Issue 6's criteria (corelay / {}):\n", peer.name());
    let _ = writeln!(out, "| scenario | metric | corelay | {} | ratio | wanted | verdict |", peer.name());
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | --- | --- |");
    for c in &CRITERIA {
        let row = match judge(runs, c, peer) {
            Verdict::Pass { ours, theirs, ratio } => verdict_row(c, ours, theirs, ratio, "**pass**"),
            Verdict::Fail { ours, theirs, ratio } => verdict_row(c, ours, theirs, ratio, "**FAIL**"),
            Verdict::NotMeasured => {
                format!("| {} | {} | – | – | – | {} | not measured |", c.scenario, c.metric.label(), c.bound_text)
            }
        };
        let _ = writeln!(out, "{row}");
    }
    floor_note(out, runs, peer);
    out.push('\n');
}

/// What the floor (corelay-mock alone, on the same load CPUs) says of each
/// criterion the peer is compared on:
/// - a gateway cannot serve more than the mock alone does, so the mock's
///   rate over the peer's caps any throughput ratio;
/// - a relay handles two connections per request where the mock handles
///   one, so the mock's CPU per request shows what the kernel alone costs.
fn floor_note(out: &mut String, runs: &[Measurement], peer: Target) {
    for c in &CRITERIA {
        let Some(floor) = find(runs, c.scenario, Target::Mock) else { continue };
        let Some(theirs) = find(runs, c.scenario, peer) else { continue };
        let name = peer.name();
        let line = match c.metric {
            Metric::OkPerSecond => ratio(Some(floor.outcome.ok_per_s), Some(theirs.outcome.ok_per_s)).map(|cap| {
                format!(
                    "{}: corelay-mock alone served {:.0}/s with this pinning, so no gateway could reach more than \
                     {cap:.2}× {name}'s rate here.",
                    c.scenario, floor.outcome.ok_per_s
                )
            }),
            Metric::CpuPerRequest => floor.cpu_us_per_request.map(|f| {
                format!(
                    "{}: corelay-mock alone used {f:.1} µs of CPU per request with one connection per request; \
                     a relay has two.",
                    c.scenario
                )
            }),
            Metric::P99 | Metric::P99OverMock | Metric::PeakRss => None,
        };
        if let Some(line) = line {
            let _ = writeln!(out, "\n{line}");
        }
    }
}

fn verdict_row(c: &Criterion, ours: f64, theirs: f64, ratio: f64, verdict: &str) -> String {
    format!(
        "| {} | {} | {} | {} | {ratio:.3} | {} | {verdict} |",
        c.scenario,
        c.metric.label(),
        value_text(c.metric, ours),
        value_text(c.metric, theirs),
        c.bound_text
    )
}

fn value_text(metric: Metric, v: f64) -> String {
    match metric {
        Metric::CpuPerRequest => format!("{v:.1} µs"),
        Metric::P99 | Metric::P99OverMock => format!("{:.3} ms", v / 1000.0),
        Metric::PeakRss => format!("{:.1} MB", v / 1048576.0),
        Metric::OkPerSecond => format!("{v:.0}/s"),
    }
}

/// The achieved rate, marked when an open-loop run fell short of its offer.
fn achieved(m: &Measurement) -> String {
    match m.scenario.load {
        Load::Rate { rps, .. } if m.outcome.ok_per_s < 0.98 * f64::from(rps) => {
            format!("**{:.0}** (of {rps})", m.outcome.ok_per_s)
        }
        _ => format!("{:.0}", m.outcome.ok_per_s),
    }
}

/// A ratio with three significant digits, however small: 0.562, 0.0457,
/// 0.0000454 (LiteLLM's latencies are thousands of times corelay's).
pub fn ratio_text(r: f64) -> String {
    if r >= 0.1 || r <= 0.0 || !r.is_finite() {
        return format!("{r:.3}");
    }
    let decimals = (2.0 - r.log10().floor()) as usize;
    format!("{r:.decimals$}")
}

fn ms(us: Option<f64>) -> String {
    us.map_or("–".to_owned(), |v| format!("{:.3}", v / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_needs_both_values_and_a_positive_divisor() {
        assert_eq!(ratio(Some(1.0), Some(4.0)), Some(0.25));
        assert_eq!(ratio(None, Some(4.0)), None);
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(Some(f64::NAN), Some(1.0)), None);
    }

    #[test]
    fn small_ratios_keep_three_significant_digits() {
        assert_eq!(ratio_text(0.5623), "0.562");
        assert_eq!(ratio_text(124.048), "124.048");
        assert_eq!(ratio_text(0.04567), "0.0457");
        assert_eq!(ratio_text(0.0000454), "0.0000454");
        assert_eq!(ratio_text(0.0), "0.000");
    }

    #[test]
    fn bounds_are_inclusive() {
        assert!(Bound::AtMost(0.2).holds(0.2));
        assert!(!Bound::AtMost(0.2).holds(0.2001));
        assert!(Bound::AtLeast(4.0).holds(4.0));
        assert!(!Bound::AtLeast(4.0).holds(3.99));
        // 1/3 exactly: 10 MB against 30 MB passes.
        assert!(Bound::AtMost(1.0 / 3.0).holds(10.0 / 30.0));
    }

    fn run(scenario: &str, target: Target, cpu_us: f64, p99_us: f64, rss_mb: u64, ok_per_s: f64) -> Measurement {
        crate::harness::fixtures::measurement(scenario, target, p99_us, p99_us, cpu_us, rss_mb, ok_per_s)
    }

    #[test]
    fn criteria_compare_corelay_to_the_peer() {
        let runs = [
            run("chat-minimal@5000", Target::Corelay, 10.0, 400.0, 10, 5000.0),
            run("chat-minimal@5000", Target::Crabllm, 100.0, 800.0, 60, 5000.0),
            run("concurrent-100", Target::Corelay, 20.0, 1.0, 10, 18000.0),
            run("concurrent-100", Target::Crabllm, 200.0, 1.0, 100, 5000.0),
            run("concurrent-100", Target::Mock, 5.0, 1.0, 4, 19000.0),
            run("chat-minimal@5000", Target::Mock, 7.5, 150.0, 4, 5000.0),
        ];
        let verdicts: Vec<Verdict> = CRITERIA.iter().map(|c| judge(&runs, c, Target::Crabllm)).collect();
        // CPU 10/100 passes 1/5; P99 400/800 is exactly 1/2 and passes; RSS 10/60 passes 1/3.
        assert_eq!(verdicts[0], Verdict::Pass { ours: 10.0, theirs: 100.0, ratio: 0.1 });
        assert_eq!(verdicts[2], Verdict::Pass { ours: 400.0, theirs: 800.0, ratio: 0.5 });
        assert!(matches!(verdicts[4], Verdict::Pass { .. }));
        // chat-stream was not run.
        assert_eq!(verdicts[1], Verdict::NotMeasured);
        // 18000/5000 = 3.6 streams per second: short of 4x.
        assert_eq!(verdicts[6], Verdict::Fail { ours: 18000.0, theirs: 5000.0, ratio: 3.6 });
        let text = markdown(
            &Meta {
                started_utc: "t".into(),
                command: "c".into(),
                machine: "m".into(),
                corelay_commit: "x".into(),
                oha_version: "o".into(),
                crabllm_version: "v".into(),
                peers: Vec::new(),
                gateway_cpus: "0".into(),
                load_cpus: "1".into(),
                duration_s: 1.0,
                repeat: 1,
                crabllm_rust_log: "warn".into(),
            },
            &runs,
            &[],
            &[Chart { file: "peak-rss.png".into(), title: "Peak RSS".into() }],
            &[],
        );
        assert!(text.contains("Colours: mock grey, corelay blue, crabllm orange."), "{text}");
        assert!(text.contains("![Peak RSS](peak-rss.png)"), "{text}");
        assert!(
            text.contains("| concurrent-100 | streams per second | 18000/s | 5000/s | 3.600 | ≥ 4 | **FAIL** |"),
            "{text}"
        );
        assert!(text.contains("| chat-stream@5000 | P99 | – | – | – | ≤ 1/2 | not measured |"), "{text}");
        // Above the mock's 150 µs, corelay added 250 and crabllm 650.
        let Verdict::Pass { ours, theirs, ratio } = verdicts[7] else { panic!("{:?}", verdicts[7]) };
        assert!((ours - 250.0).abs() < 1e-6 && (theirs - 650.0).abs() < 1e-6 && (ratio - 250.0 / 650.0).abs() < 1e-9);
        assert!(
            text.contains(
                "| chat-minimal@5000 | P99 above the mock's | 0.250 ms | 0.650 ms | 0.385 | ≤ 1/2 | **pass** |"
            ),
            "{text}"
        );
        assert!(text.contains("chat-minimal@5000: corelay-mock alone used 7.5 µs of CPU per request"), "{text}");
        assert!(text.contains("no gateway could reach more than 3.80× crabllm's rate here"), "{text}");
    }
}
