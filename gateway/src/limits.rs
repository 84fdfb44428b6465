//! Per-key rate limits (RPM, TPM) admitted on each shard against leases.
//!
//! A shard holds, per limited counter, a lease: units it may spend in the
//! current one-minute window (minutes since the Unix epoch, so every shard
//! and instance agrees on the window). A request within its lease is
//! admitted with a decrement: no lock, no channel. When the lease is empty
//! the shard asks the control plane, which carves a grant out of the
//! window's remaining quota (`store::quota::Book`); the request awaits the
//! answer (other requests keep being served), and one ask per counter is in
//! flight at a time, however many requests wait on it. A grant of 0 means
//! the window is spent: 429 until the next minute.
//!
//! Requests count one unit at admission. Tokens are known only when an
//! answer is done: admission checks that the token lease is not spent, and
//! the answer's tokens are charged afterwards; tokens beyond the lease are
//! reported as an overdraft, so the window's later grants shrink by them.
//! A lease left untouched for `LEASE_IDLE_MS` goes back to the control
//! plane, so traffic that moves to another shard still reaches the limit.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use store::quota::{CounterId, Measure};

use crate::shard::{Report, Shard};

/// How long a lease may sit untouched before it goes back.
pub const LEASE_IDLE_MS: u64 = 2_000;

/// How long a request waits for the control plane's grant before it is
/// refused (the control plane answers in microseconds; this is a stall).
const GRANT_WAIT_MS: u64 = 1_000;

/// How many times a request asks again when other waiters took the grant.
const GRANT_ROUNDS_MAX: usize = 8;

/// The current window: wall-clock minutes since the Unix epoch.
pub fn current_window() -> u64 {
    unix_seconds() / 60
}

/// Wall-clock seconds since the Unix epoch.
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Seconds until the next window, at least 1.
pub fn seconds_to_next_window() -> u64 {
    (60 - unix_seconds() % 60).max(1)
}

#[derive(Debug)]
struct Lease {
    window: u64,
    remaining: u64,
    used_at: Instant,
}

/// How long a refusal of the control plane stands on the shard: requests
/// for a spent counter are refused at once meanwhile, instead of each
/// asking again (a client hammering a spent key costs the control plane
/// nothing). Short, because units given back by other shards become
/// grantable again.
const REFUSAL_HOLD_MS: u64 = 100;

/// An ask out to the control plane, and the requests waiting on its grant.
struct Waiting {
    asked_at: Instant,
    waiters: Vec<local_sync::oneshot::Sender<u64>>,
}

/// One shard's leases and the requests waiting for grants.
#[derive(Default)]
pub struct Leases {
    leases: RefCell<HashMap<CounterId, Lease>>,
    waiting: RefCell<HashMap<CounterId, Waiting>>,
    /// Counters the control plane refused, until when.
    refused: RefCell<HashMap<CounterId, Instant>>,
}

impl Leases {
    /// Takes `units` from the lease when it holds them: the whole admission
    /// of a request within its lease.
    pub fn take(&self, id: &CounterId, window: u64, units: u64) -> bool {
        let mut leases = self.leases.borrow_mut();
        match leases.get_mut(id) {
            Some(lease) if lease.window == window && lease.remaining >= units.max(1) => {
                lease.remaining -= units;
                lease.used_at = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Gives back `units` taken from the lease of `id` (a request admitted
    /// by one limit and refused by the next).
    pub fn refund(&self, id: &CounterId, window: u64, units: u64) {
        if let Some(lease) = self.leases.borrow_mut().get_mut(id).filter(|l| l.window == window) {
            lease.remaining += units;
        }
    }

    /// Waits for a grant of `id`; `true` when no ask is out yet (or the one
    /// out is older than a grant ever takes: its answer was lost), so the
    /// caller must send one.
    fn wait(&self, id: &CounterId, now: Instant) -> (local_sync::oneshot::Receiver<u64>, bool) {
        let (tx, rx) = local_sync::oneshot::channel();
        let mut waiting = self.waiting.borrow_mut();
        let entry = waiting.entry(id.clone()).or_insert_with(|| Waiting { asked_at: now, waiters: Vec::new() });
        let stale = now.duration_since(entry.asked_at) >= Duration::from_millis(GRANT_WAIT_MS);
        if stale {
            // Those waiters gave up long ago; dropping them ends their waits.
            entry.waiters.clear();
        }
        let ask = entry.waiters.is_empty();
        if ask {
            entry.asked_at = now;
        }
        entry.waiters.push(tx);
        (rx, ask)
    }

    /// Whether the control plane refused `id` a moment ago.
    fn recently_refused(&self, id: &CounterId, now: Instant) -> bool {
        self.refused.borrow().get(id).is_some_and(|&until| now < until)
    }

    /// The control plane's grant for `id` arrived: the lease grows and the
    /// requests waiting on it retry.
    pub fn granted(&self, id: CounterId, window: u64, units: u64) {
        {
            let mut leases = self.leases.borrow_mut();
            let lease = leases.entry(id.clone()).or_insert(Lease { window, remaining: 0, used_at: Instant::now() });
            if lease.window < window {
                *lease = Lease { window, remaining: 0, used_at: Instant::now() };
            }
            if lease.window == window {
                lease.remaining += units;
                lease.used_at = Instant::now();
            }
        }
        if units == 0 {
            self.refused.borrow_mut().insert(id.clone(), Instant::now() + Duration::from_millis(REFUSAL_HOLD_MS));
        } else {
            self.refused.borrow_mut().remove(&id);
        }
        for waiter in self.waiting.borrow_mut().remove(&id).map(|w| w.waiters).unwrap_or_default() {
            let _ = waiter.send(units);
        }
    }

    /// Charges `units` spent after the fact (an answer's tokens); returns
    /// what the lease could not cover.
    fn spend(&self, id: &CounterId, window: u64, units: u64) -> u64 {
        let mut leases = self.leases.borrow_mut();
        match leases.get_mut(id) {
            Some(lease) if lease.window == window => {
                let covered = units.min(lease.remaining);
                lease.remaining -= covered;
                lease.used_at = Instant::now();
                units - covered
            }
            _ => units,
        }
    }

    /// Takes back the leases of the current window untouched for `idle`:
    /// (counter, window, units) to return to the control plane. Leases of
    /// past windows are dropped (their window's counter is gone).
    pub fn reclaim_idle(&self, now: Instant, idle: Duration) -> Vec<(CounterId, u64, u64)> {
        let window = current_window();
        let mut back = Vec::new();
        self.leases.borrow_mut().retain(|id, lease| {
            if lease.window < window {
                return false;
            }
            if now.duration_since(lease.used_at) >= idle {
                if lease.remaining > 0 {
                    back.push((id.clone(), lease.window, lease.remaining));
                }
                return false;
            }
            true
        });
        back
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub measure: Measure,
    pub limit: u64,
    /// Seconds until the window ends.
    pub retry_after: u64,
}

/// Admits a request against the key's `limit` of `measure`: takes `units`
/// (0: only checks that the lease is not spent) from the shard's lease,
/// asking the control plane for more when it is empty.
pub async fn admit(shard: &Shard, key: u64, measure: Measure, limit: u64, units: u64) -> Result<(), Refused> {
    let id = CounterId { key, measure };
    let refused = || Refused { measure, limit, retry_after: seconds_to_next_window() };
    for _ in 0..GRANT_ROUNDS_MAX {
        let window = current_window();
        if shard.leases.take(&id, window, units) {
            return Ok(());
        }
        let now = Instant::now();
        if shard.leases.recently_refused(&id, now) {
            return Err(refused());
        }
        let (grant, ask) = shard.leases.wait(&id, now);
        if ask && !shard.report(Report::Lease { shard: shard.id, id: id.clone(), limit, window }) {
            // The control plane's channel is full: no grant will come.
            shard.leases.granted(id.clone(), window, 0);
        }
        match monoio::time::timeout(Duration::from_millis(GRANT_WAIT_MS), grant).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Err(refused()),
            Ok(Ok(_)) => {}
        }
    }
    Err(refused())
}

/// Charges an answer's tokens to the key's token lease; what the lease does
/// not cover goes to the control plane as an overdraft.
pub fn charge_tokens(shard: &Shard, key: u64, limit: u64, tokens: u64) {
    let id = CounterId { key, measure: Measure::Tokens };
    let window = current_window();
    let over = shard.leases.spend(&id, window, tokens);
    if over > 0 {
        shard.report(Report::Overdraw { id, limit, window, units: over });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> CounterId {
        CounterId { key: 1, measure: Measure::Requests }
    }

    #[test]
    fn a_lease_is_taken_unit_by_unit_within_its_window() {
        let leases = Leases::default();
        assert!(!leases.take(&id(), 10, 1), "no lease yet");
        leases.granted(id(), 10, 2);
        assert!(leases.take(&id(), 10, 1));
        assert!(!leases.take(&id(), 11, 1), "another window");
        assert!(leases.take(&id(), 10, 1));
        assert!(!leases.take(&id(), 10, 1), "spent");
        // A grant for a newer window replaces the lease.
        leases.granted(id(), 11, 1);
        assert!(leases.take(&id(), 11, 1));
        // Checking (0 units) needs something left, and takes nothing.
        leases.granted(id(), 11, 1);
        assert!(leases.take(&id(), 11, 0));
        assert!(leases.take(&id(), 11, 1));
    }

    #[test]
    fn waiters_share_one_ask_and_all_wake_on_the_grant() {
        let leases = Leases::default();
        let now = Instant::now();
        let (mut a, first) = leases.wait(&id(), now);
        let (mut b, second) = leases.wait(&id(), now);
        assert!(first && !second, "one ask per counter");
        leases.granted(id(), 3, 5);
        assert_eq!(a.try_recv().ok(), Some(5));
        assert_eq!(b.try_recv().ok(), Some(5));
        let (_, again) = leases.wait(&id(), now);
        assert!(again, "the next wait asks again");
    }

    #[test]
    fn a_lost_grant_does_not_block_the_counter_and_a_refusal_stands_a_moment() {
        let leases = Leases::default();
        let t0 = Instant::now();
        let (_a, first) = leases.wait(&id(), t0);
        assert!(first);
        // The grant never comes (a dropped message): a wait a second later
        // asks again instead of queueing forever.
        let (_, again) = leases.wait(&id(), t0 + Duration::from_millis(GRANT_WAIT_MS + 1));
        assert!(again);
        leases.granted(id(), 3, 0);
        let now = Instant::now();
        assert!(leases.recently_refused(&id(), now));
        assert!(!leases.recently_refused(&id(), now + Duration::from_millis(REFUSAL_HOLD_MS + 1)));
        leases.granted(id(), 3, 1);
        assert!(!leases.recently_refused(&id(), Instant::now()));
    }

    #[test]
    fn spending_beyond_the_lease_reports_the_overdraft() {
        let tokens = CounterId { key: 1, measure: Measure::Tokens };
        let leases = Leases::default();
        leases.granted(tokens.clone(), 4, 100);
        assert_eq!(leases.spend(&tokens, 4, 60), 0);
        assert_eq!(leases.spend(&tokens, 4, 60), 20);
        assert_eq!(leases.spend(&tokens, 5, 7), 7, "no lease in that window");
    }

    #[test]
    fn idle_leases_are_given_back() {
        let leases = Leases::default();
        let window = current_window();
        leases.granted(id(), window, 4);
        leases.granted(CounterId { key: 2, measure: Measure::Requests }, window - 1, 9);
        let now = Instant::now();
        assert!(leases.reclaim_idle(now, Duration::from_secs(60)).is_empty());
        let back = leases.reclaim_idle(now + Duration::from_secs(61), Duration::from_secs(60));
        assert_eq!(back, vec![(id(), window, 4)]);
        assert!(!leases.take(&id(), window, 1));
    }
}
