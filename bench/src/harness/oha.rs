//! Driving oha and reading its JSON summary.
//!
//! The invocation is crabllm's (`oha -z DURATION -q RATE -c 50`, JSON output)
//! so our numbers and theirs come from the same client doing the same thing;
//! `--latency-correction` gives the variant that is not open to coordinated
//! omission. oha reports seconds; everything here is converted to
//! microseconds once, on the way in.
//!
//! When `-z` ends a run, oha cancels the requests still in flight and lists
//! them as "aborted due to deadline" (at most one per connection). Those are
//! the client's doing, not the gateway's, so they are counted apart from
//! errors.
//!
//! With `--repeat`, oha writes its per-request CSV instead (`--output-format
//! csv`): one line per request that got a response, with its latency, so the
//! latencies of several runs can be merged in one HdrHistogram (`merge`).
//! oha 1.16 writes one format per run, and its CSV leaves out requests that
//! got no response, so in that mode transport errors and deadline aborts are
//! not counted (`Outcome::transport_errors_counted`).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// oha's label for requests it cancelled itself when the `-z` window closed.
const DEADLINE_ABORT: &str = "aborted due to deadline";

/// How the load is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Load {
    /// Open loop: `rps` requests a second over `connections` connections.
    Rate { rps: u32, connections: u32 },
    /// Closed loop: `connections` requests always in flight, each sent as
    /// soon as the last one on its connection ends.
    Closed { connections: u32 },
}

/// One measured oha run: the flags that differ between runs.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub url: &'a str,
    pub body: &'a str,
    pub load: Load,
    pub duration: Duration,
    pub latency_correction: bool,
    /// Per-request CSV instead of the JSON summary.
    pub per_request: bool,
}

impl Invocation<'_> {
    /// oha's arguments (without the program name).
    pub fn args(&self) -> Vec<String> {
        let format = if self.per_request { "csv" } else { "json" };
        let mut args = vec!["--no-tui".to_owned(), "--output-format".to_owned(), format.to_owned()];
        args.extend(["-z".to_owned(), format!("{}ms", self.duration.as_millis())]);
        match self.load {
            Load::Rate { rps, connections } => {
                args.extend(["-q".to_owned(), rps.to_string(), "-c".to_owned(), connections.to_string()]);
            }
            Load::Closed { connections } => args.extend(["-c".to_owned(), connections.to_string()]),
        }
        if self.latency_correction {
            args.push("--latency-correction".to_owned());
        }
        args.extend(post_args(self.url, self.body));
        args
    }
}

/// The warm-up before a measured run: a fixed number of requests, as
/// crabllm's harness does (`-n 100`), so pools and allocators are warm.
pub fn warmup_args(url: &str, body: &str, requests: u32) -> Vec<String> {
    let mut args = vec!["--no-tui".to_owned(), "-n".to_owned(), requests.to_string(), "-c".to_owned(), "50".to_owned()];
    args.extend(post_args(url, body));
    args
}

fn post_args(url: &str, body: &str) -> [String; 7] {
    [
        "-m".to_owned(),
        "POST".to_owned(),
        "-H".to_owned(),
        "Content-Type: application/json".to_owned(),
        "-d".to_owned(),
        body.to_owned(),
        url.to_owned(),
    ]
}

/// The parts of oha's JSON output the harness uses.
#[derive(Debug, Deserialize)]
struct Raw {
    summary: RawSummary,
    #[serde(rename = "latencyPercentiles")]
    latency_percentiles: BTreeMap<String, Option<f64>>,
    #[serde(rename = "statusCodeDistribution", default)]
    status_code_distribution: BTreeMap<String, u64>,
    #[serde(rename = "errorDistribution", default)]
    error_distribution: BTreeMap<String, u64>,
}

/// oha writes NaN (no request finished) as `null`, hence the options.
#[derive(Debug, Deserialize)]
struct RawSummary {
    total: f64,
    slowest: Option<f64>,
}

/// What one run measured, from the client's side.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Outcome {
    /// Length of the run as oha measured it.
    pub duration_s: f64,
    /// Responses received, whatever their status.
    pub responses: u64,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Responses with another status, plus transport errors (deadline
    /// aborts excluded).
    pub errors: u64,
    /// Requests oha cancelled itself when the run's time was up.
    pub deadline_aborts: u64,
    /// 2xx responses per second: the achieved rate.
    pub ok_per_s: f64,
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p99_9_us: Option<f64>,
    pub max_us: Option<f64>,
    pub statuses: BTreeMap<String, u64>,
    /// Transport errors by oha's description, deadline aborts included.
    pub error_kinds: BTreeMap<String, u64>,
    /// False when the run came from oha's per-request CSV, which lists no
    /// transport error: `errors` then counts non-2xx answers only.
    pub transport_errors_counted: bool,
}

/// Latencies in nanoseconds, from 1 ns to an hour, 3 significant digits
/// (at most 0.1% off).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid HdrHistogram bounds")
}

/// The percentiles of a histogram of nanoseconds, in microseconds, into an
/// outcome.
pub fn set_percentiles(outcome: &mut Outcome, latency: &Histogram<u64>) {
    let us = |ns: u64| (!latency.is_empty()).then_some(ns as f64 / 1000.0);
    outcome.p50_us = us(latency.value_at_quantile(0.5));
    outcome.p90_us = us(latency.value_at_quantile(0.9));
    outcome.p99_us = us(latency.value_at_quantile(0.99));
    outcome.p99_9_us = us(latency.value_at_quantile(0.999));
    outcome.max_us = us(latency.max());
}

/// Parses oha's `--output-format csv` output of a run that lasted
/// `duration`: the outcome, and every latency in a histogram.
pub fn parse_csv(csv: &str, duration: Duration) -> anyhow::Result<(Outcome, Histogram<u64>)> {
    let mut lines = csv.lines();
    let header = lines.next().context("empty CSV")?;
    let columns: Vec<&str> = header.split(',').collect();
    let column = |name: &str| columns.iter().position(|c| *c == name).with_context(|| format!("no {name} column"));
    let (duration_col, status_col) = (column("request-duration")?, column("status")?);
    let mut latency = latency_histogram();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let (Some(seconds), Some(status)) = (fields.get(duration_col), fields.get(status_col)) else {
            bail!("line {} has {} fields", i + 2, fields.len());
        };
        let seconds: f64 = seconds.parse().with_context(|| format!("line {}: duration `{seconds}`", i + 2))?;
        // Clamped into the histogram's range: 0 ns becomes 1 ns.
        let ns = (seconds * 1e9).round().clamp(1.0, latency.high() as f64) as u64;
        latency.record(ns).context("recording a latency")?;
        *statuses.entry((*status).to_owned()).or_default() += 1;
    }
    let responses: u64 = statuses.values().sum();
    let ok: u64 = statuses.iter().filter(|(code, _)| code.starts_with('2')).map(|(_, n)| n).sum();
    let duration_s = duration.as_secs_f64();
    let mut outcome = Outcome {
        duration_s,
        responses,
        ok,
        errors: responses - ok,
        deadline_aborts: 0,
        ok_per_s: if duration_s > 0.0 { ok as f64 / duration_s } else { 0.0 },
        p50_us: None,
        p90_us: None,
        p99_us: None,
        p99_9_us: None,
        max_us: None,
        statuses,
        error_kinds: BTreeMap::new(),
        transport_errors_counted: false,
    };
    set_percentiles(&mut outcome, &latency);
    Ok((outcome, latency))
}

/// Parses oha's `--output-format json` output.
pub fn parse(json: &str) -> anyhow::Result<Outcome> {
    let raw: Raw = sonic_rs::from_str(json).context("oha's JSON output")?;
    let responses = raw.status_code_distribution.values().sum();
    let ok = raw.status_code_distribution.iter().filter(|(code, _)| code.starts_with('2')).map(|(_, n)| n).sum();
    let deadline_aborts = raw.error_distribution.get(DEADLINE_ABORT).copied().unwrap_or(0);
    let transport_errors: u64 = raw.error_distribution.values().sum::<u64>() - deadline_aborts;
    let percentile_us = |key: &str| raw.latency_percentiles.get(key).copied().flatten().map(|s| s * 1e6);
    let duration_s = raw.summary.total;
    Ok(Outcome {
        duration_s,
        responses,
        ok,
        errors: responses - ok + transport_errors,
        deadline_aborts,
        ok_per_s: if duration_s > 0.0 { ok as f64 / duration_s } else { 0.0 },
        p50_us: percentile_us("p50"),
        p90_us: percentile_us("p90"),
        p99_us: percentile_us("p99"),
        p99_9_us: percentile_us("p99.9"),
        max_us: raw.summary.slowest.map(|s| s * 1e6),
        statuses: raw.status_code_distribution,
        error_kinds: raw.error_distribution,
        transport_errors_counted: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from a real `oha 1.x --output-format json` run.
    const SAMPLE: &str = r#"{
      "summary": {"successRate": 1.0, "total": 10.0012, "slowest": 0.0105, "fastest": 0.00004,
                  "average": 0.0002, "requestsPerSec": 4999.6, "totalData": 14000000,
                  "sizePerRequest": 280, "sizePerSec": 1399800.0},
      "responseTimeHistogram": {"0.00004": 1, "0.0105": 2},
      "latencyPercentiles": {"p10": 0.00005, "p25": 0.00006, "p50": 0.00008, "p75": 0.0001,
                             "p90": 0.00015, "p95": 0.0002, "p99": 0.0005, "p99.9": 0.002, "p99.99": 0.008},
      "rps": {"mean": 5000.0, "stddev": 10.0, "max": 5100.0, "min": 4900.0, "percentiles": {}},
      "details": {"DNSDialup": {"average": 0.0, "fastest": 0.0, "slowest": 0.0},
                  "DNSLookup": {"average": 0.0, "fastest": 0.0, "slowest": 0.0}},
      "statusCodeDistribution": {"200": 49990, "502": 4},
      "errorDistribution": {"aborted due to deadline": 6, "connection closed before message completed": 2}
    }"#;

    #[test]
    fn parses_percentiles_in_microseconds_and_counts() {
        let o = parse(SAMPLE).unwrap();
        assert_eq!((o.responses, o.ok, o.errors, o.deadline_aborts), (49994, 49990, 6, 6));
        assert!((o.p50_us.unwrap() - 80.0).abs() < 1e-9);
        assert!((o.p99_us.unwrap() - 500.0).abs() < 1e-9);
        assert!((o.p99_9_us.unwrap() - 2000.0).abs() < 1e-9);
        assert!((o.max_us.unwrap() - 10500.0).abs() < 1e-9);
        assert!((o.ok_per_s - 49990.0 / 10.0012).abs() < 1e-9);
    }

    #[test]
    fn a_run_without_answers_has_no_percentiles() {
        let json = r#"{"summary": {"total": 1.0, "slowest": null},
                       "latencyPercentiles": {"p50": null, "p99": null},
                       "statusCodeDistribution": {},
                       "errorDistribution": {"connection refused": 12}}"#;
        let o = parse(json).unwrap();
        assert_eq!((o.responses, o.ok, o.errors), (0, 0, 12));
        assert_eq!((o.p50_us, o.max_us, o.ok_per_s), (None, None, 0.0));
    }

    #[test]
    fn arguments_follow_crabllms_invocation() {
        let inv = Invocation {
            url: "http://127.0.0.1:1/v1/chat/completions",
            body: "{}",
            load: Load::Rate { rps: 5000, connections: 50 },
            duration: Duration::from_secs(10),
            latency_correction: true,
            per_request: false,
        };
        let args = inv.args().join(" ");
        assert!(
            args.starts_with("--no-tui --output-format json -z 10000ms -q 5000 -c 50 --latency-correction -m POST")
        );
        assert!(args.ends_with("-d {} http://127.0.0.1:1/v1/chat/completions"), "{args}");
        let closed = Invocation { load: Load::Closed { connections: 100 }, latency_correction: false, ..inv };
        assert!(!closed.args().contains(&"-q".to_owned()));
        let csv = Invocation { per_request: true, ..closed };
        assert!(csv.args().join(" ").starts_with("--no-tui --output-format csv -z"));
    }

    /// Trimmed from a real `oha 1.16 --output-format csv` run.
    const CSV: &str = "request-start,DNS,DNS+dialup,Response-delay,request-duration,bytes,status\n\
                       0.000348,0.000029805,0.00019462,0.00066328,0.00066335,281,200\n\
                       0.000734597,0.000016384,0.00006675,0.000232517,0.000233398,281,200\n\
                       0.000976698,0,0,0.000065918,0.000066389,281,200\n\
                       0.001012321,0,0,0.000088492,0.000088563,281,502\n";

    #[test]
    fn per_request_csv_gives_counts_and_percentiles() {
        let (o, latency) = parse_csv(CSV, Duration::from_secs(2)).unwrap();
        assert_eq!((o.responses, o.ok, o.errors, o.deadline_aborts), (4, 3, 1, 0));
        assert!(!o.transport_errors_counted);
        assert_eq!(latency.len(), 4);
        assert!((o.ok_per_s - 1.5).abs() < 1e-9);
        // 3 significant digits: within 0.1% of the true values.
        assert!((o.p50_us.unwrap() - 88.563).abs() < 0.1, "{:?}", o.p50_us);
        assert!((o.max_us.unwrap() - 663.35).abs() < 0.7, "{:?}", o.max_us);
        assert!(parse_csv("", Duration::from_secs(1)).is_err());
        assert!(parse_csv("a,b\n", Duration::from_secs(1)).is_err());
        let (empty, _) = parse_csv(CSV.lines().next().unwrap(), Duration::from_secs(1)).unwrap();
        assert_eq!((empty.responses, empty.p99_us), (0, None));
    }
}
