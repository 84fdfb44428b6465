//! Lease accounting for per-minute limits (RPM, TPM), kept by the control
//! plane for every shard of one instance.
//!
//! A shard admits requests against a lease: units it may spend in the
//! current window without asking anyone. When its lease runs out it asks
//! for more, and [`Book::grant`] carves the grant out of what the window has
//! left: never more than the limit in total, and never more than a fraction
//! of what is left at once, so that a shard cannot hoard the window while
//! another one starves. Units a shard did not use come back with
//! [`Book::release`]; units spent beyond the lease (tokens are known only
//! once an answer is done) are recorded with [`Book::overdraw`], so later
//! grants shrink by them. The invariant the gateway's tests check is
//! admitted ≤ granted ≤ limit for requests.
//!
//! Windows are numbered (the gateway uses wall-clock minutes since the
//! epoch); a request for a newer window starts the counter over, and one for
//! an older window gets nothing.

use std::collections::HashMap;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    Requests,
    Tokens,
}

/// One limited counter: a key (by a stable id), what it counts, and
/// optionally the model it is limited for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterId {
    pub key: u64,
    pub measure: Measure,
}

#[derive(Debug, Clone)]
struct Counter {
    window: u64,
    limit: u64,
    /// Granted in this window and not given back, plus overdrafts.
    granted: u64,
    /// Per shard: what it holds of `granted`.
    held: Vec<u64>,
}

/// The control plane's book of every counter's current window.
#[derive(Debug, Clone)]
pub struct Book {
    shards: usize,
    counters: HashMap<CounterId, Counter>,
}

impl Book {
    /// A book for an instance of `shards` shards.
    pub fn new(shards: usize) -> Book {
        Book { shards: shards.max(1), counters: HashMap::new() }
    }

    fn counter(&mut self, id: CounterId, limit: u64, window: u64) -> Option<&mut Counter> {
        let shards = self.shards;
        let counter =
            self.counters.entry(id).or_insert_with(|| Counter { window, limit, granted: 0, held: vec![0; shards] });
        if window < counter.window {
            return None;
        }
        if window > counter.window {
            *counter = Counter { window, limit, granted: 0, held: vec![0; shards] };
        }
        counter.limit = limit;
        Some(counter)
    }

    /// A shard's lease for `id` ran out: the units it may now admit in
    /// `window` (0 means refuse). A grant is at most an even share of what
    /// is left among twice the shards (and at least 1 while anything is
    /// left), so the last units of a window go one at a time, exactly.
    pub fn grant(&mut self, id: CounterId, limit: u64, window: u64, shard: usize) -> u64 {
        let shards = self.shards as u64;
        let Some(counter) = self.counter(id, limit, window) else { return 0 };
        let left = counter.limit.saturating_sub(counter.granted);
        if left == 0 {
            return 0;
        }
        let grant = (left / (2 * shards)).max(1).min(left);
        counter.granted += grant;
        if let Some(held) = counter.held.get_mut(shard) {
            *held += grant;
        }
        grant
    }

    /// A shard gives back `units` of its lease that it did not use.
    pub fn release(&mut self, id: &CounterId, window: u64, shard: usize, units: u64) {
        let Some(counter) = self.counters.get_mut(id) else { return };
        if counter.window != window {
            return;
        }
        let Some(held) = counter.held.get_mut(shard) else { return };
        let units = units.min(*held);
        *held -= units;
        counter.granted -= units;
    }

    /// A shard spent `units` beyond its lease (an answer used more tokens
    /// than it held). They count as granted, so the window's later grants
    /// shrink by them; the total may then pass the limit by that much.
    pub fn overdraw(&mut self, id: CounterId, limit: u64, window: u64, units: u64) {
        if let Some(counter) = self.counter(id, limit, window) {
            counter.granted = counter.granted.saturating_add(units);
        }
    }

    /// What `id` has left in `window` (the limit when it has no counter).
    pub fn remaining(&self, id: &CounterId, limit: u64, window: u64) -> u64 {
        match self.counters.get(id) {
            Some(c) if c.window == window => c.limit.saturating_sub(c.granted),
            Some(c) if c.window > window => 0,
            _ => limit,
        }
    }

    /// Forgets counters of windows before `window`.
    pub fn expire(&mut self, window: u64) {
        self.counters.retain(|_, c| c.window >= window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpm(key: u64) -> CounterId {
        CounterId { key, measure: Measure::Requests }
    }

    #[test]
    fn grants_never_pass_the_limit_and_end_one_at_a_time() {
        let mut book = Book::new(2);
        let mut grants = Vec::new();
        loop {
            let g = book.grant(rpm(1), 20, 7, grants.len() % 2);
            if g == 0 {
                break;
            }
            grants.push(g);
        }
        assert_eq!(grants.iter().sum::<u64>(), 20);
        assert_eq!(grants[0], 5, "a quarter of what is left with two shards");
        assert_eq!(&grants[grants.len() - 3..], &[1, 1, 1]);
        assert_eq!(book.remaining(&rpm(1), 20, 7), 0);
        // Another key is counted apart.
        assert_eq!(book.grant(rpm(2), 20, 7, 0), 5);
    }

    #[test]
    fn released_units_are_granted_again_and_windows_start_over() {
        let mut book = Book::new(2);
        while book.grant(rpm(1), 10, 3, 0) > 0 {}
        assert_eq!(book.grant(rpm(1), 10, 3, 1), 0);
        book.release(&rpm(1), 3, 0, 4);
        assert_eq!(book.remaining(&rpm(1), 10, 3), 4);
        let regranted: u64 = std::iter::from_fn(|| Some(book.grant(rpm(1), 10, 3, 1))).take_while(|&g| g > 0).sum();
        assert_eq!(regranted, 4);
        // A shard cannot give back more than it holds.
        book.release(&rpm(1), 3, 1, 100);
        assert_eq!(book.remaining(&rpm(1), 10, 3), 4);
        // A stale window gets nothing; a new one starts over.
        assert_eq!(book.grant(rpm(1), 10, 2, 0), 0);
        assert_eq!(book.grant(rpm(1), 10, 4, 0), 2);
        book.release(&rpm(1), 3, 0, 1);
        assert_eq!(book.remaining(&rpm(1), 10, 4), 8, "a release for an old window changes nothing");
        book.expire(5);
        assert_eq!(book.remaining(&rpm(1), 10, 5), 10);
    }

    #[test]
    fn overdrafts_shrink_later_grants() {
        let tpm = CounterId { key: 1, measure: Measure::Tokens };
        let mut book = Book::new(1);
        assert_eq!(book.grant(tpm.clone(), 1000, 1, 0), 500);
        book.overdraw(tpm.clone(), 1000, 1, 450);
        assert_eq!(book.remaining(&tpm, 1000, 1), 50);
        book.overdraw(tpm.clone(), 1000, 1, 100);
        assert_eq!(book.remaining(&tpm, 1000, 1), 0);
        assert_eq!(book.grant(tpm, 1000, 1, 0), 0);
    }

    #[test]
    fn many_shards_asking_in_turn_never_get_more_than_the_limit() {
        for shards in 1..6 {
            for limit in [1, 2, 3, 7, 100, 1001] {
                let mut book = Book::new(shards);
                let mut total = 0;
                let mut turn = 0;
                loop {
                    let g = book.grant(rpm(9), limit, 1, turn % shards);
                    turn += 1;
                    if g == 0 {
                        break;
                    }
                    total += g;
                }
                assert_eq!(total, limit, "{shards} shards, limit {limit}");
            }
        }
    }
}
