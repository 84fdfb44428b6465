//! Which deployment serves a request, and what happens when it fails.
//!
//! A request names a model (or an alias of one). Its [`Plan`] lists the
//! deployments that may serve it, in the order they are tried: first the
//! model's own deployments, one picked by weighted random choice and the
//! others after it by weight, then each fallback model's deployments the
//! same way. [`Attempts`] walks the plan for one request: a deployment that
//! fails with a retryable error is left for the next one at once, and is
//! tried again (up to its `max_retries`) only after every deployment of its
//! group has had its turn, after an exponential backoff with full jitter
//! that a provider's `Retry-After` raises. No attempt starts after
//! `retry_deadline_ms`.
//!
//! Each shard keeps a circuit breaker per deployment ([`Breakers`]): after
//! `breaker_failures` consecutive failures the deployment is skipped for
//! `breaker_cooldown_ms`, then one request probes it. A breaker that opens
//! or closes tells the control plane, which tells every shard, so all cores
//! learn of a dead provider as soon as one does. Breaker state needs no
//! lock: a shard's own requests are its only writers.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use crate::config::{Config, Deployment, RoutingLimits};
use crate::error::GatewayError;

/// What a breaker that changed tells the other shards, for the deployments
/// of one config generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Skip the deployment for this long from when the verdict is applied.
    Open { cooldown: Duration },
    /// A probe succeeded: serve it again.
    Closed,
}

/// One deployment's breaker on one shard.
#[derive(Debug, Clone, Default)]
struct Breaker {
    failures: u32,
    /// Open until then. Letting a probe through moves it one cooldown on,
    /// so a probe that never reports back (its client left) is followed by
    /// another one cooldown later.
    open_until: Option<Instant>,
    /// A probe is out: its failure reopens the breaker at once.
    half_open: bool,
}

/// Whether a breaker lets a request through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Yes,
    /// The cooldown is over: this request is the probe.
    Probe,
    No {
        remaining: Duration,
    },
}

/// A shard's breakers, one per deployment of its config generation.
#[derive(Debug, Default)]
pub struct Breakers {
    state: RefCell<(u64, Vec<Breaker>)>,
}

impl Breakers {
    /// Starts over for a new config generation (deployment indexes change).
    pub fn reset(&self, generation: u64, deployments: usize) {
        *self.state.borrow_mut() = (generation, vec![Breaker::default(); deployments]);
    }

    fn with<T>(&self, generation: u64, deployment: usize, f: impl FnOnce(&mut Breaker) -> T) -> Option<T> {
        let mut state = self.state.borrow_mut();
        let (current, breakers) = &mut *state;
        if *current != generation {
            return None;
        }
        breakers.get_mut(deployment).map(f)
    }

    pub fn admit(&self, generation: u64, deployment: usize, now: Instant, limits: &RoutingLimits) -> Admission {
        self.with(generation, deployment, |b| match b.open_until {
            None => Admission::Yes,
            Some(until) if now < until => Admission::No { remaining: until - now },
            Some(_) => {
                b.open_until = Some(now + Duration::from_millis(limits.breaker_cooldown_ms));
                b.half_open = true;
                Admission::Probe
            }
        })
        .unwrap_or(Admission::Yes)
    }

    /// A request to the deployment succeeded. Returns the verdict to share
    /// when this closed an open breaker.
    pub fn succeeded(&self, generation: u64, deployment: usize) -> Option<Verdict> {
        self.with(generation, deployment, |b| {
            let was_open = b.open_until.is_some();
            *b = Breaker::default();
            was_open.then_some(Verdict::Closed)
        })
        .flatten()
    }

    /// A request to the deployment failed in a way that says the provider
    /// is in trouble. Returns the verdict to share when this opened it.
    pub fn failed(&self, generation: u64, deployment: usize, now: Instant, limits: &RoutingLimits) -> Option<Verdict> {
        let cooldown = Duration::from_millis(limits.breaker_cooldown_ms);
        self.with(generation, deployment, |b| {
            b.failures = b.failures.saturating_add(1);
            // A failed probe reopens at once; otherwise the threshold counts.
            if b.half_open || (b.open_until.is_none() && b.failures >= limits.breaker_failures) {
                b.open_until = Some(now + cooldown);
                b.half_open = false;
                return Some(Verdict::Open { cooldown });
            }
            None
        })
        .flatten()
    }

    /// Applies another shard's verdict.
    pub fn apply(&self, generation: u64, deployment: usize, verdict: Verdict, now: Instant) {
        self.with(generation, deployment, |b| match verdict {
            Verdict::Open { cooldown } => {
                let until = now + cooldown;
                b.open_until = Some(b.open_until.map_or(until, |u| u.max(until)));
                b.half_open = false;
            }
            Verdict::Closed => *b = Breaker::default(),
        });
    }
}

/// One deployment a request may go to, and the public model it serves
/// there (the requested model, or a fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'c> {
    pub deployment: usize,
    pub model: &'c str,
    /// Which model of the plan: 0 for the requested one, then fallbacks.
    pub group: usize,
}

/// The deployments that may serve a request, in the order they are tried.
#[derive(Debug, Clone, Default)]
pub struct Plan<'c> {
    pub candidates: Vec<Candidate<'c>>,
}

impl<'c> Plan<'c> {
    /// The plan for `model`, a served model (aliases already resolved).
    /// `random` draws a number below its argument.
    pub fn new(config: &'c Config, model: &'c str, mut random: impl FnMut(u64) -> u64) -> Plan<'c> {
        let mut plan = Plan::default();
        let fallbacks = config.fallbacks.get(model).map_or(&[][..], Vec::as_slice);
        let models = std::iter::once(model).chain(fallbacks.iter().map(String::as_str));
        for (group, name) in models.enumerate() {
            let Some(served_by) = config.routes.get(name) else { continue };
            let first = plan.candidates.len();
            plan.candidates.extend(served_by.iter().map(|&deployment| Candidate { deployment, model: name, group }));
            order_by_weight(&mut plan.candidates[first..], &config.deployments, &mut random);
        }
        plan
    }
}

/// Weighted random choice for the first place; the others follow by weight,
/// heaviest first (ties keep the config's order).
fn order_by_weight(group: &mut [Candidate<'_>], deployments: &[Deployment], random: &mut impl FnMut(u64) -> u64) {
    if group.len() < 2 {
        return;
    }
    let weight = |c: &Candidate<'_>| u64::from(deployments[c.deployment].weight);
    let total: u64 = group.iter().map(weight).sum();
    let mut ticket = random(total);
    let mut chosen = group.len() - 1;
    for (i, c) in group.iter().enumerate() {
        if ticket < weight(c) {
            chosen = i;
            break;
        }
        ticket -= weight(c);
    }
    group[..=chosen].rotate_right(1);
    group[1..].sort_by_key(|c| std::cmp::Reverse(weight(c)));
}

/// The wait before the `retry`-th retry of a deployment (0 for the first):
/// a uniform draw below `min(max, base * 2^retry)` (full jitter), raised to
/// the provider's `Retry-After` when it gave one.
pub fn backoff(
    retry: u32,
    limits: &RoutingLimits,
    retry_after: Option<Duration>,
    random: impl FnOnce(u64) -> u64,
) -> Duration {
    let ceiling = limits.retry_backoff_base_ms.saturating_mul(1 << retry.min(20)).min(limits.retry_backoff_max_ms);
    let drawn = Duration::from_millis(random(ceiling + 1));
    // Past the deadline a wait means no retry at all; capping it there keeps
    // the arithmetic of an absurd Retry-After in range.
    let cap = Duration::from_millis(limits.retry_deadline_ms);
    retry_after.map_or(drawn, |floor| drawn.max(floor.min(cap)))
}

/// One request's walk through its plan. See the module docs.
pub struct Attempts<'c> {
    plan: Plan<'c>,
    /// Per candidate, by position in the plan: one allocation per request.
    slots: Vec<Slot>,
    /// The candidate of the attempt in flight.
    current: Option<usize>,
    /// The group being tried; fallbacks start once it is exhausted.
    group: usize,
    pub total: u32,
    deadline: Instant,
    /// The failure that is answered when no attempt is left.
    pub last_error: Option<GatewayError>,
    /// The shortest wait until a skipped (cooling) deployment comes back.
    cooling: Option<Duration>,
}

/// One candidate's state in a request's walk.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Attempts made.
    made: u32,
    /// The `Retry-After` its provider last asked for.
    retry_after: Option<Duration>,
    /// Found cooling down, or past the deadline: not tried again.
    skipped: bool,
}

/// Where the next attempt goes, or why there is none.
pub enum Next<'c> {
    /// Try this candidate after waiting `wait`.
    Go { candidate: Candidate<'c>, wait: Duration },
    /// Nothing left to try.
    Exhausted,
}

impl<'c> Attempts<'c> {
    pub fn new(plan: Plan<'c>, started: Instant, limits: &RoutingLimits) -> Attempts<'c> {
        let n = plan.candidates.len();
        Attempts {
            plan,
            slots: vec![Slot::default(); n],
            current: None,
            group: 0,
            total: 0,
            deadline: started + Duration::from_millis(limits.retry_deadline_ms),
            last_error: None,
            cooling: None,
        }
    }

    /// Picks the next attempt: a candidate of the current group never tried,
    /// else the least-tried one with retries left (after a backoff), else
    /// the next group. A candidate whose breaker is open is skipped for the
    /// rest of the request.
    pub fn next(
        &mut self,
        config: &Config,
        mut admit: impl FnMut(usize) -> Admission,
        now: Instant,
        random: &mut impl FnMut(u64) -> u64,
    ) -> Next<'c> {
        let groups = self.plan.candidates.last().map_or(0, |c| c.group + 1);
        while self.group < groups {
            let pick = (0..self.plan.candidates.len())
                .filter(|&i| {
                    let c = &self.plan.candidates[i];
                    c.group == self.group
                        && !self.slots[i].skipped
                        && self.slots[i].made <= config.deployments[c.deployment].max_retries
                })
                .min_by_key(|&i| self.slots[i].made);
            let Some(i) = pick else {
                self.group += 1;
                continue;
            };
            let candidate = self.plan.candidates[i];
            let wait = match self.slots[i].made {
                0 => Duration::ZERO,
                n => backoff(n - 1, &config.routing, self.slots[i].retry_after, &mut *random),
            };
            if now.checked_add(wait).is_none_or(|at| at >= self.deadline) {
                // Not this one again; a fallback may still be in time.
                self.slots[i].skipped = true;
                continue;
            }
            // Asked last: a breaker's probe is spent only on an attempt that
            // is really made.
            match admit(candidate.deployment) {
                Admission::Yes | Admission::Probe => {}
                Admission::No { remaining } => {
                    self.slots[i].skipped = true;
                    self.cooling = Some(self.cooling.map_or(remaining, |c| c.min(remaining)));
                    continue;
                }
            }
            self.slots[i].made += 1;
            self.total += 1;
            self.current = Some(i);
            return Next::Go { candidate, wait };
        }
        Next::Exhausted
    }

    /// The attempt in flight failed with a retryable error; `retry_after`
    /// is what the provider asked for.
    pub fn failed(&mut self, error: GatewayError, retry_after: Option<Duration>) {
        if let Some(i) = self.current.take() {
            self.slots[i].retry_after = retry_after;
        }
        self.last_error = Some(error);
    }

    /// The error to answer when nothing is left: the last failure, or a 503
    /// when every deployment was cooling down.
    pub fn exhausted(self, model: &str) -> GatewayError {
        match self.last_error {
            Some(e) => e,
            None => GatewayError::NoHealthyDeployment {
                model: model.to_owned(),
                retry_after: self.cooling.unwrap_or_default(),
            },
        }
    }
}

#[cfg(test)]
mod tests;
