//! The usage ledger: token and cost counters per key, model and hour.
//!
//! A row is keyed by (key id, model, start of the hour in unix seconds) and
//! holds counters that only grow. Hourly rows keep the ledger small (one row
//! per key and model that was used in an hour, however many requests) while
//! still answering "what did this key spend today" exactly, because daily
//! and monthly budget windows start on an hour.
//!
//! [`Ledger`] is the in-memory form: shards' usage deltas are merged into
//! one on the control plane, which hands its rows to a [`crate::Store`] in
//! a batch ([`Ledger::take`]) every flush interval. The same type answers
//! queries over rows, so [`crate::MemoryStore`] is a `Ledger` and the other
//! stores reuse its grouping helpers. Counters saturate rather than wrap:
//! a ledger that reaches `u64::MAX` tokens is wrong by an amount nobody
//! will be billed for, which beats a counter that restarts at zero.

use std::collections::BTreeMap;

use crate::keys::{BudgetWindow, KeyId};
use crate::pricing::Usage;

const SECONDS_PER_HOUR: u64 = 3_600;

/// The start of the hour that contains `at_unix`.
pub fn hour_start(at_unix: u64) -> u64 {
    at_unix - at_unix % SECONDS_PER_HOUR
}

/// What a ledger row is keyed by. Ordered by key, then model, then hour, so
/// a key's rows are contiguous in every store.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsageKey {
    pub key_id: KeyId,
    pub model: String,
    /// Unix seconds, a multiple of 3,600.
    pub hour_unix: u64,
}

impl UsageKey {
    /// The row for a request at `at_unix`.
    pub fn new(key_id: KeyId, model: impl Into<String>, at_unix: u64) -> UsageKey {
        UsageKey { key_id, model: model.into(), hour_unix: hour_start(at_unix) }
    }
}

/// A row's counters. Token fields follow [`Usage`]: cached and cache-write
/// tokens are inside `prompt_tokens`, reasoning inside `completion_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub requests: u64,
    pub cost_micros: u64,
}

impl Counters {
    /// The number of counters, and their order in [`Counters::to_array`].
    pub const LEN: usize = 7;
    /// Field names in [`Counters::to_array`]'s order (Redis hash fields).
    pub const NAMES: [&'static str; Counters::LEN] = [
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "requests",
        "cost_micros",
    ];

    /// One request's counters.
    pub fn request(usage: &Usage, cost_micros: u64) -> Counters {
        Counters {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_tokens: usage.cached_tokens,
            cache_write_tokens: usage.cache_write_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            requests: 1,
            cost_micros,
        }
    }

    pub fn add(&mut self, other: &Counters) {
        let mut sum = self.to_array();
        for (s, o) in sum.iter_mut().zip(other.to_array()) {
            *s = s.saturating_add(o);
        }
        *self = Counters::from_array(sum);
    }

    pub fn is_zero(&self) -> bool {
        *self == Counters::default()
    }

    pub fn to_array(&self) -> [u64; Counters::LEN] {
        [
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.requests,
            self.cost_micros,
        ]
    }

    pub fn from_array(a: [u64; Counters::LEN]) -> Counters {
        let [
            prompt_tokens,
            completion_tokens,
            cached_tokens,
            cache_write_tokens,
            reasoning_tokens,
            requests,
            cost_micros,
        ] = a;
        Counters {
            prompt_tokens,
            completion_tokens,
            cached_tokens,
            cache_write_tokens,
            reasoning_tokens,
            requests,
            cost_micros,
        }
    }
}

/// One ledger row: a delta to add when appended, a total when queried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    pub key: UsageKey,
    pub counters: Counters,
}

/// Which rows a query selects. Every filter left `None` selects all. The
/// time range selects rows by their hour: `from_unix` is rounded down to
/// its hour and included, `until_unix` is excluded, so `[from, until)` of a
/// day gives that day's 24 hours.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageQuery {
    pub key_id: Option<KeyId>,
    pub model: Option<String>,
    pub from_unix: Option<u64>,
    pub until_unix: Option<u64>,
}

impl UsageQuery {
    /// Every row.
    pub fn all() -> UsageQuery {
        UsageQuery::default()
    }

    pub fn key(mut self, key_id: KeyId) -> UsageQuery {
        self.key_id = Some(key_id);
        self
    }

    pub fn model(mut self, model: impl Into<String>) -> UsageQuery {
        self.model = Some(model.into());
        self
    }

    pub fn between(mut self, from_unix: u64, until_unix: u64) -> UsageQuery {
        self.from_unix = Some(from_unix);
        self.until_unix = Some(until_unix);
        self
    }

    /// The rows of one budget window of one key.
    pub fn window(key_id: KeyId, window: &BudgetWindow) -> UsageQuery {
        UsageQuery {
            key_id: Some(key_id),
            model: None,
            from_unix: Some(window.start_unix),
            until_unix: window.end_unix,
        }
    }

    pub fn matches(&self, key: &UsageKey) -> bool {
        self.key_id.as_ref().is_none_or(|k| *k == key.key_id)
            && self.model.as_ref().is_none_or(|m| *m == key.model)
            && self.from_unix.is_none_or(|from| key.hour_unix >= hour_start(from))
            && self.until_unix.is_none_or(|until| key.hour_unix < until)
    }
}

/// The sum of `rows`' counters.
pub fn totals<'r>(rows: impl IntoIterator<Item = &'r UsageRow>) -> Counters {
    let mut sum = Counters::default();
    for row in rows {
        sum.add(&row.counters);
    }
    sum
}

/// `rows`' counters summed per key.
pub fn totals_by_key<'r>(rows: impl IntoIterator<Item = &'r UsageRow>) -> BTreeMap<KeyId, Counters> {
    let mut out: BTreeMap<KeyId, Counters> = BTreeMap::new();
    for row in rows {
        out.entry(row.key.key_id.clone()).or_default().add(&row.counters);
    }
    out
}

/// `rows`' counters summed per model.
pub fn totals_by_model<'r>(rows: impl IntoIterator<Item = &'r UsageRow>) -> BTreeMap<String, Counters> {
    let mut out: BTreeMap<String, Counters> = BTreeMap::new();
    for row in rows {
        out.entry(row.key.model.clone()).or_default().add(&row.counters);
    }
    out
}

/// Usage rows in memory, merged as deltas arrive.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    rows: BTreeMap<UsageKey, Counters>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Counts one request of `key_id` on `model` at `at_unix`.
    pub fn add(&mut self, key_id: &KeyId, model: &str, at_unix: u64, usage: &Usage, cost_micros: u64) {
        let key = UsageKey::new(key_id.clone(), model, at_unix);
        self.rows.entry(key).or_default().add(&Counters::request(usage, cost_micros));
    }

    /// Adds a row's counters into the row with the same key.
    pub fn merge(&mut self, row: &UsageRow) {
        match self.rows.get_mut(&row.key) {
            Some(c) => c.add(&row.counters),
            None => {
                self.rows.insert(row.key.clone(), row.counters);
            }
        }
    }

    pub fn merge_all<'r>(&mut self, rows: impl IntoIterator<Item = &'r UsageRow>) {
        for row in rows {
            self.merge(row);
        }
    }

    /// Every row, leaving the ledger empty: the batch to flush.
    pub fn take(&mut self) -> Vec<UsageRow> {
        std::mem::take(&mut self.rows).into_iter().map(|(key, counters)| UsageRow { key, counters }).collect()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows `query` selects, in key order.
    pub fn query(&self, query: &UsageQuery) -> Vec<UsageRow> {
        let selected = self.rows.iter().filter(|(k, _)| query.matches(k));
        selected.map(|(key, counters)| UsageRow { key: key.clone(), counters: *counters }).collect()
    }

    /// The counters of the rows `query` selects, summed.
    pub fn totals(&self, query: &UsageQuery) -> Counters {
        let mut sum = Counters::default();
        for (_, c) in self.rows.iter().filter(|(k, _)| query.matches(k)) {
            sum.add(c);
        }
        sum
    }

    /// What `key_id` spent in `window`, in micro-USD.
    pub fn spend_micros(&self, key_id: &KeyId, window: &BudgetWindow) -> u64 {
        self.totals(&UsageQuery::window(key_id.clone(), window)).cost_micros
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::BudgetPeriod;

    fn id(s: &str) -> KeyId {
        KeyId::parse(s).unwrap()
    }

    fn usage(prompt: u64, completion: u64) -> Usage {
        Usage { prompt_tokens: prompt, completion_tokens: completion, ..Usage::default() }
    }

    // 2024-02-29T00:00:00Z
    const DAY: u64 = 1_709_164_800;

    fn sample() -> Ledger {
        let mut l = Ledger::new();
        l.add(&id("a"), "gpt-4o", DAY + 10, &usage(100, 10), 1_000);
        l.add(&id("a"), "gpt-4o", DAY + 3_599, &usage(50, 5), 500);
        l.add(&id("a"), "gpt-4o", DAY + 3_600, &usage(1, 1), 1);
        l.add(&id("a"), "claude-sonnet-4", DAY + 7_200, &usage(7, 7), 70);
        l.add(&id("b"), "gpt-4o", DAY - 1, &usage(1_000, 0), 9_000);
        l
    }

    #[test]
    fn requests_in_one_hour_merge_into_one_row() {
        let l = sample();
        assert_eq!(l.len(), 4);
        let row = &l.query(&UsageQuery::all().key(id("a")).model("gpt-4o").between(DAY, DAY + 1))[0];
        assert_eq!(row.key.hour_unix, DAY);
        assert_eq!(
            row.counters,
            Counters {
                prompt_tokens: 150,
                completion_tokens: 15,
                requests: 2,
                cost_micros: 1_500,
                ..Counters::default()
            }
        );
    }

    #[test]
    fn queries_by_key_model_and_time() {
        let l = sample();
        assert_eq!(l.totals(&UsageQuery::all()).requests, 5);
        assert_eq!(l.totals(&UsageQuery::all().key(id("a"))).requests, 4);
        assert_eq!(l.totals(&UsageQuery::all().model("gpt-4o")).cost_micros, 10_501);
        // `from` is rounded down to its hour; `until` is exclusive.
        assert_eq!(l.totals(&UsageQuery::all().between(DAY + 1_800, DAY + 3_600)).requests, 2);
        assert_eq!(l.totals(&UsageQuery::all().between(DAY, DAY + 3_601)).requests, 3);
        assert_eq!(l.totals(&UsageQuery::all().between(DAY + 7_200, u64::MAX)).requests, 1);
        assert!(l.query(&UsageQuery::all().key(id("nobody"))).is_empty());
        let rows = l.query(&UsageQuery::all());
        let by_key = totals_by_key(&rows);
        assert_eq!(by_key[&id("a")].cost_micros, 1_571);
        assert_eq!(by_key[&id("b")].cost_micros, 9_000);
        let by_model = totals_by_model(&rows);
        assert_eq!(by_model["gpt-4o"].requests, 4);
        assert_eq!(by_model["claude-sonnet-4"].prompt_tokens, 7);
        assert_eq!(totals(&rows), l.totals(&UsageQuery::all()));
    }

    #[test]
    fn spend_per_budget_window() {
        let l = sample();
        let today = BudgetPeriod::Daily.window(DAY + 5);
        assert_eq!(l.spend_micros(&id("a"), &today), 1_571);
        assert_eq!(l.spend_micros(&id("b"), &today), 0, "b spent yesterday");
        let yesterday = BudgetPeriod::Daily.window(DAY - 1);
        assert_eq!(l.spend_micros(&id("b"), &yesterday), 9_000);
        assert_eq!(l.spend_micros(&id("a"), &yesterday), 0);
        // February 2024 contains both days; the total window everything.
        assert_eq!(l.spend_micros(&id("b"), &BudgetPeriod::Monthly.window(DAY)), 9_000);
        assert_eq!(l.spend_micros(&id("a"), &BudgetPeriod::Total.window(DAY)), 1_571);
    }

    #[test]
    fn take_empties_and_merge_adds_back() {
        let mut l = sample();
        let before = l.totals(&UsageQuery::all());
        let batch = l.take();
        assert!(l.is_empty());
        assert_eq!(batch.len(), 4);
        l.merge_all(&batch);
        l.merge_all(&batch);
        let after = l.totals(&UsageQuery::all());
        assert_eq!(after.requests, 2 * before.requests);
        assert_eq!(after.cost_micros, 2 * before.cost_micros);
    }

    #[test]
    fn counters_saturate() {
        let mut c = Counters { cost_micros: u64::MAX - 1, ..Counters::default() };
        c.add(&Counters { cost_micros: 5, requests: 1, ..Counters::default() });
        assert_eq!(c.cost_micros, u64::MAX);
        assert_eq!(c.requests, 1);
        assert_eq!(Counters::from_array(c.to_array()), c);
        assert!(Counters::default().is_zero() && !c.is_zero());
    }

    #[test]
    fn hour_starts() {
        assert_eq!(hour_start(0), 0);
        assert_eq!(hour_start(3_599), 0);
        assert_eq!(hour_start(3_600), 3_600);
        assert_eq!(UsageKey::new(id("k"), "m", DAY + 4_000).hour_unix, DAY + 3_600);
    }
}
