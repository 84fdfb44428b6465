//! Test fixtures shared by the report's and the charts' tests: a
//! measurement as a run would have produced it.

use super::run::Measurement;
use super::targets::Target;

/// A measurement of `target` in `scenario` (a name from the full set), with
/// these latencies (µs), CPU per request (µs), peak RSS (MB) and 2xx count
/// per second of a one-second run.
pub fn measurement(
    scenario: &str,
    target: Target,
    p50_us: f64,
    p99_us: f64,
    cpu_us: f64,
    rss_mb: u64,
    ok_per_s: f64,
) -> Measurement {
    let scenario = super::scenarios::full().into_iter().find(|s| s.name == scenario).unwrap();
    let json = format!(
        r#"{{"summary": {{"total": 1.0, "slowest": 0.1}},
            "latencyPercentiles": {{"p50": {}, "p99": {}}},
            "statusCodeDistribution": {{"200": {ok_per_s}}}, "errorDistribution": {{}}}}"#,
        p50_us / 1e6,
        p99_us / 1e6
    );
    Measurement {
        scenario,
        target,
        outcome: super::oha::parse(&json).unwrap(),
        cpu_us_per_request: Some(cpu_us),
        cpu_s: 1.0,
        peak_rss_bytes: rss_mb * 1048576,
        measured: target.name(),
        processes: 1,
        pids: Vec::new(),
        repetition: 1,
        latency: None,
    }
}
