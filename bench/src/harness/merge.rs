//! `--repeat N`: the runs of one (scenario, target) folded into one
//! measurement, which the report's tables, ratios and charts then use.
//!
//! Latency percentiles are not averaged (an average of P99s is no P99):
//! every request's latency of every run goes into one HdrHistogram (3
//! significant digits), and the merged percentiles are read from it. Counts
//! and CPU time are summed, so CPU per request is all the CPU time over all
//! the responses; the achieved rate is all the 2xx answers over all the
//! runs' time; peak RSS is the highest of the runs'. The report also lists
//! each run, so their spread shows.

use super::oha::{self, Outcome};
use super::run::{self, Measurement};

/// One measurement per (scenario, target), in the order first seen.
pub fn merge(runs: &[Measurement]) -> Vec<Measurement> {
    let mut groups: Vec<Vec<&Measurement>> = Vec::new();
    for m in runs {
        match groups.iter_mut().find(|g| g[0].scenario.name == m.scenario.name && g[0].target == m.target) {
            Some(group) => group.push(m),
            None => groups.push(vec![m]),
        }
    }
    groups.into_iter().map(|group| merge_group(&group)).collect()
}

fn merge_group(group: &[&Measurement]) -> Measurement {
    let first = group[0];
    if group.len() == 1 {
        return first.clone();
    }
    let mut outcome = Outcome {
        duration_s: 0.0,
        responses: 0,
        ok: 0,
        errors: 0,
        deadline_aborts: 0,
        ok_per_s: 0.0,
        p50_us: None,
        p90_us: None,
        p99_us: None,
        p99_9_us: None,
        max_us: None,
        statuses: Default::default(),
        error_kinds: Default::default(),
        transport_errors_counted: group.iter().all(|m| m.outcome.transport_errors_counted),
    };
    let mut latency = oha::latency_histogram();
    let (mut cpu_s, mut peak_rss_bytes, mut processes, mut pids) = (0.0, 0, 0, Vec::new());
    for m in group {
        let o = &m.outcome;
        outcome.duration_s += o.duration_s;
        outcome.responses += o.responses;
        outcome.ok += o.ok;
        outcome.errors += o.errors;
        outcome.deadline_aborts += o.deadline_aborts;
        for (status, n) in &o.statuses {
            *outcome.statuses.entry(status.clone()).or_default() += n;
        }
        for (kind, n) in &o.error_kinds {
            *outcome.error_kinds.entry(kind.clone()).or_default() += n;
        }
        if let Some(h) = &m.latency {
            // Same bounds on both sides (oha::latency_histogram), so adding
            // cannot fail.
            let _ = latency.add(h);
        }
        cpu_s += m.cpu_s;
        peak_rss_bytes = peak_rss_bytes.max(m.peak_rss_bytes);
        processes = processes.max(m.processes);
        pids.extend(&m.pids);
    }
    if outcome.duration_s > 0.0 {
        outcome.ok_per_s = outcome.ok as f64 / outcome.duration_s;
    }
    oha::set_percentiles(&mut outcome, &latency);
    Measurement {
        scenario: first.scenario.clone(),
        target: first.target,
        cpu_us_per_request: run::cpu_per_request_us(cpu_s, outcome.responses),
        cpu_s,
        peak_rss_bytes,
        processes,
        measured: first.measured,
        outcome,
        pids,
        repetition: 0,
        latency: Some(latency),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::harness::scenarios;
    use crate::harness::targets::Target;

    fn run(target: Target, repetition: u32, latencies_us: &[u64], cpu_s: f64, rss_mb: u64) -> Measurement {
        let mut csv = "request-start,DNS,DNS+dialup,Response-delay,request-duration,bytes,status\n".to_owned();
        for us in latencies_us {
            csv.push_str(&format!("0,0,0,0,{},281,200\n", *us as f64 / 1e6));
        }
        let (outcome, latency) = oha::parse_csv(&csv, Duration::from_secs(1)).unwrap();
        Measurement {
            scenario: scenarios::quick().remove(0),
            target,
            cpu_us_per_request: run::cpu_per_request_us(cpu_s, outcome.responses),
            cpu_s,
            peak_rss_bytes: rss_mb * 1048576,
            processes: 1,
            measured: target.name(),
            outcome,
            pids: vec![repetition],
            repetition,
            latency: Some(latency),
        }
    }

    #[test]
    fn percentiles_come_from_every_request_and_counts_add_up() {
        // Run 1: 99 fast requests. Run 2: one slow one. Averaging the two
        // runs' P99s would say about 5 ms; over the 100 requests the P99 is
        // still fast and only the maximum is slow.
        let fast = vec![100; 99];
        let runs = [
            run(Target::Corelay, 1, &fast, 0.001, 9),
            run(Target::Crabllm, 1, &[200], 0.002, 60),
            run(Target::Corelay, 2, &[10_000], 0.001, 10),
        ];
        let merged = merge(&runs);
        assert_eq!(merged.len(), 2);
        let corelay = &merged[0];
        assert_eq!((corelay.target, corelay.outcome.responses, corelay.outcome.ok), (Target::Corelay, 100, 100));
        assert!((corelay.outcome.p99_us.unwrap() - 100.0).abs() < 0.1, "{:?}", corelay.outcome.p99_us);
        assert!((corelay.outcome.max_us.unwrap() - 10_000.0).abs() < 10.0, "{:?}", corelay.outcome.max_us);
        // 2 ms of CPU over 100 responses; 100 answers over 2 s; the higher RSS.
        assert!((corelay.cpu_us_per_request.unwrap() - 20.0).abs() < 1e-9);
        assert!((corelay.outcome.ok_per_s - 50.0).abs() < 1e-9);
        assert_eq!(corelay.peak_rss_bytes, 10 * 1048576);
        assert_eq!(corelay.pids, [1, 2]);
        assert!(!corelay.outcome.transport_errors_counted);
        // A single run is kept as it is.
        assert_eq!(merged[1].outcome, runs[1].outcome);
    }
}
