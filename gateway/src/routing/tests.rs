use std::time::{Duration, Instant};

use super::*;
use crate::config::{Config, parse};

fn config(extra: &str) -> Config {
    let text = format!(
        r#"
[routing]
retry_backoff_base_ms = 100
retry_backoff_max_ms = 1000
retry_deadline_ms = 10000
breaker_failures = 3
breaker_cooldown_ms = 5000

[providers.a]
kind = "mock"
models = ["m"]
weight = 1
max_retries = 1

[providers.b]
kind = "mock"
models = ["m"]
weight = 3
max_retries = 0

[providers.c]
kind = "mock"
models = ["other"]
max_retries = 0

[fallbacks]
m = ["fast"]

[aliases]
fast = "other"
{extra}"#
    );
    parse(&text, |_| None).unwrap()
}

fn index(config: &Config, name: &str) -> usize {
    config.deployments.iter().position(|d| d.name == name).unwrap()
}

#[test]
fn the_plan_puts_the_weighted_pick_first_then_by_weight_then_fallbacks() {
    let c = config("");
    let (a, b, other) = (index(&c, "a"), index(&c, "b"), index(&c, "c"));
    // Tickets 0 of 4 fall on `a` (weight 1), 1 to 3 on `b` (weight 3).
    let plan = Plan::new(&c, "m", |total| {
        assert_eq!(total, 4);
        0
    });
    let order: Vec<(usize, &str, usize)> = plan.candidates.iter().map(|c| (c.deployment, c.model, c.group)).collect();
    assert_eq!(order, vec![(a, "m", 0), (b, "m", 0), (other, "other", 1)]);
    let plan = Plan::new(&c, "m", |_| 2);
    assert_eq!(plan.candidates.iter().map(|c| c.deployment).collect::<Vec<_>>(), vec![b, a, other]);
    // Weighted: over many draws `b` comes first about three times in four.
    let mut firsts = 0;
    for i in 0..4000u64 {
        let plan = Plan::new(&c, "m", |total| (i * 7919) % total);
        firsts += u32::from(plan.candidates[0].deployment == b);
    }
    assert!((2900..=3100).contains(&firsts), "{firsts}");
}

#[test]
fn fallbacks_resolve_aliases_and_refuse_unknown_or_self() {
    let c = config("");
    assert_eq!(c.fallbacks.get("m"), Some(&vec!["other".to_owned()]));
    let text = "[providers.a]\nkind = \"mock\"\nmodels = [\"m\"]\n[fallbacks]\nm = [\"nope\"]";
    assert!(parse(text, |_| None).unwrap_err().to_string().contains("`nope` is not served"));
    let text = "[providers.a]\nkind = \"mock\"\nmodels = [\"m\"]\n[aliases]\nx = \"m\"\n[fallbacks]\nm = [\"x\"]";
    assert!(parse(text, |_| None).unwrap_err().to_string().contains("itself"));
}

#[test]
fn backoff_is_full_jitter_under_a_doubling_ceiling_raised_by_retry_after() {
    let c = config("");
    let limits = &c.routing;
    let ceiling = |retry| {
        let mut seen = 0;
        let wait = backoff(retry, limits, None, |bound| {
            seen = bound;
            bound - 1
        });
        assert_eq!(wait, Duration::from_millis(seen - 1));
        seen - 1
    };
    assert_eq!((ceiling(0), ceiling(1), ceiling(2), ceiling(3), ceiling(10)), (100, 200, 400, 800, 1000));
    assert_eq!(backoff(0, limits, None, |_| 0), Duration::ZERO);
    assert_eq!(backoff(0, limits, Some(Duration::from_secs(2)), |_| 50), Duration::from_secs(2));
    assert_eq!(backoff(3, limits, Some(Duration::from_millis(10)), |_| 700), Duration::from_millis(700));
}

#[test]
fn a_breaker_opens_after_consecutive_failures_lets_one_probe_through_and_closes_on_success() {
    let c = config("");
    let limits = &c.routing;
    let breakers = Breakers::default();
    breakers.reset(7, 3);
    let t0 = Instant::now();
    assert_eq!(breakers.failed(7, 1, t0, limits), None);
    assert_eq!(breakers.succeeded(7, 1), None, "a success resets the count");
    assert_eq!(breakers.failed(7, 1, t0, limits), None);
    assert_eq!(breakers.failed(7, 1, t0, limits), None);
    let opened = breakers.failed(7, 1, t0, limits);
    assert_eq!(opened, Some(Verdict::Open { cooldown: Duration::from_millis(5000) }));
    assert_eq!(
        breakers.admit(7, 1, t0 + Duration::from_secs(1), limits),
        Admission::No { remaining: Duration::from_secs(4) }
    );
    assert_eq!(breakers.admit(7, 0, t0, limits), Admission::Yes, "other deployments are not affected");
    // After the cooldown: one probe, and no second one while it is out.
    let later = t0 + Duration::from_secs(6);
    assert_eq!(breakers.admit(7, 1, later, limits), Admission::Probe);
    assert!(matches!(breakers.admit(7, 1, later, limits), Admission::No { .. }));
    // A failed probe reopens at once.
    assert!(breakers.failed(7, 1, later, limits).is_some());
    let after = later + Duration::from_secs(6);
    assert_eq!(breakers.admit(7, 1, after, limits), Admission::Probe);
    assert_eq!(breakers.succeeded(7, 1), Some(Verdict::Closed));
    assert_eq!(breakers.admit(7, 1, after, limits), Admission::Yes);
    // Another generation's verdicts and questions are ignored.
    breakers.apply(6, 1, Verdict::Open { cooldown: Duration::from_secs(60) }, after);
    assert_eq!(breakers.admit(7, 1, after, limits), Admission::Yes);
    breakers.apply(7, 1, Verdict::Open { cooldown: Duration::from_secs(60) }, after);
    assert!(matches!(breakers.admit(7, 1, after, limits), Admission::No { .. }));
    breakers.apply(7, 1, Verdict::Closed, after);
    assert_eq!(breakers.admit(7, 1, after, limits), Admission::Yes);
}

#[test]
fn attempts_try_every_deployment_once_then_retry_with_backoff_then_fall_back() {
    let c = config("");
    let (a, b, other) = (index(&c, "a"), index(&c, "b"), index(&c, "c"));
    let plan = Plan::new(&c, "m", |_| 0);
    let now = Instant::now();
    let mut attempts = Attempts::new(plan, now, &c.routing);
    let mut random = |bound: u64| bound / 2;
    let mut order = Vec::new();
    while let Next::Go { candidate, wait } = attempts.next(&c, |_| Admission::Yes, now, &mut random) {
        order.push((candidate.deployment, wait));
        attempts.failed(GatewayError::Internal("x".into()), None);
    }
    // a and b once each; a again (max_retries 1) after a backoff; b has no
    // retries; then the fallback model's deployment.
    assert_eq!(
        order,
        vec![(a, Duration::ZERO), (b, Duration::ZERO), (a, Duration::from_millis(50)), (other, Duration::ZERO)]
    );
    assert_eq!(attempts.total, 4);
    assert!(matches!(attempts.exhausted("m"), GatewayError::Internal(_)));
}

#[test]
fn attempts_skip_cooling_deployments_and_stop_at_the_deadline() {
    let c = config("");
    let (a, b, other) = (index(&c, "a"), index(&c, "b"), index(&c, "c"));
    let now = Instant::now();
    let mut random = |bound: u64| bound - 1;
    // Every deployment cooling: a 503 saying when one comes back.
    let mut attempts = Attempts::new(Plan::new(&c, "m", |_| 0), now, &c.routing);
    let cooling = |d: usize| Admission::No { remaining: Duration::from_millis(if d == b { 900 } else { 2500 }) };
    assert!(matches!(attempts.next(&c, cooling, now, &mut random), Next::Exhausted));
    match attempts.exhausted("m") {
        GatewayError::NoHealthyDeployment { retry_after, .. } => assert_eq!(retry_after, Duration::from_millis(900)),
        e => panic!("{e:?}"),
    }
    // `a` cooling: `b`, then the fallback.
    let mut attempts = Attempts::new(Plan::new(&c, "m", |_| 0), now, &c.routing);
    let admit = |d: usize| if d == a { Admission::No { remaining: Duration::from_secs(1) } } else { Admission::Yes };
    let mut order = Vec::new();
    while let Next::Go { candidate, .. } = attempts.next(&c, admit, now, &mut random) {
        order.push(candidate.deployment);
        attempts.failed(GatewayError::Internal("x".into()), None);
    }
    assert_eq!(order, vec![b, other]);
    // A Retry-After beyond the deadline: no retry of `a`, the fallback instead.
    let mut attempts = Attempts::new(Plan::new(&c, "m", |_| 0), now, &c.routing);
    let Next::Go { .. } = attempts.next(&c, |_| Admission::Yes, now, &mut random) else { panic!() };
    attempts.failed(GatewayError::Internal("x".into()), Some(Duration::from_secs(30)));
    let Next::Go { candidate, .. } = attempts.next(&c, |_| Admission::Yes, now, &mut random) else { panic!() };
    assert_eq!(candidate.deployment, b);
    attempts.failed(GatewayError::Internal("x".into()), None);
    assert!(
        matches!(attempts.next(&c, |_| Admission::Yes, now, &mut random), Next::Go { candidate, .. } if candidate.deployment == other)
    );
}
