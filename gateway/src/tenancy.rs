//! The control plane's side of tenancy: the usage ledger, its store, the
//! budgets, and answers to the shards' questions (`GET /v1/usage`).
//!
//! Shards record usage per key and model as answers finish, and report it
//! every `stats_interval_ms` (and once more when they stop). The control
//! plane merges it into an in-memory [`store::Ledger`] and writes the
//! ledger to the store every `usage_flush_ms`, and once more at shutdown, so
//! a clean stop loses nothing and a crash loses at most one flush interval
//! (with `redb`; `memory` keeps nothing across restarts). A failed write
//! keeps the batch for the next flush.
//!
//! With `redis` storage several instances share usage and limits: every
//! lease the control plane grants a shard is first reserved in Redis
//! (atomically, per key and window), so the instances together never grant
//! more than a limit. When Redis cannot be reached, grants come from this
//! instance's own book alone (said once in the log), usage stays in the
//! ledger, and both are written to Redis once it answers again: each
//! instance may then admit up to the limit on its own for the windows of the
//! outage.
//!
//! Budgets: after each flush the spend of every key with a budget (the
//! store's, plus what is not written yet) is compared with it; the set of
//! keys over budget goes to every shard, which then refuses them. The
//! overshoot is what the key's requests in flight spend before the next
//! check (`stats_interval_ms` after their usage is reported at most).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use store::{Ledger, Store, UsageQuery};

use crate::config::{Config, Key, StorageKind};
use crate::shard::Question;

/// The control plane's tenancy state.
pub struct Tenancy {
    store: Box<dyn Store>,
    /// Keys created through the admin API, by id (revoked ones included).
    records: std::collections::BTreeMap<String, store::KeyRecord>,
    /// The active ones, as shards use them.
    runtime: Arc<Vec<Key>>,
    /// The reservations of limits across instances (`redis` storage).
    shared: Option<Shared>,
    ledger: Ledger,
    config: Config,
    flush_every: Duration,
    last_flush: Instant,
    exhausted: Arc<HashSet<u64>>,
    /// Whether the last write failed (said once until one succeeds).
    failing: bool,
    /// Stored spend per key in its current budget window: read from the
    /// store once, then kept up to date from each batch this control plane
    /// writes, since it is the store's only writer (memory, redb). `None`
    /// with Redis, where other instances write too and the store is read on
    /// every check. Without it, a redb check scanned all of a key's rows of
    /// the window every flush: a `total` budget got slower every hour.
    spent: Option<std::collections::HashMap<store::KeyId, (store::BudgetWindow, u64)>>,
}

/// Limits shared through Redis.
struct Shared {
    redis: store::RedisStore,
    /// Units granted while Redis was away, per counter name: reserved once
    /// it answers again (for windows not over yet).
    unreserved: std::collections::HashMap<String, (u64, u64)>,
    /// Whether the last call failed (said once until one succeeds).
    down: bool,
    /// After a failure, Redis is left alone until then: a dead Redis costs
    /// each grant nothing instead of a connect timeout.
    retry_at: Option<Instant>,
}

/// How long Redis is left alone after a failed call.
const REDIS_RETRY_MS: u64 = 1_000;

impl Tenancy {
    /// Opens the configured store.
    pub fn open(config: &Config) -> Result<Tenancy, String> {
        let mut shared = None;
        let store: Box<dyn Store> = match &config.storage.kind {
            StorageKind::Memory => Box::new(store::MemoryStore::default()),
            StorageKind::Redb(path) => Box::new(
                store::RedbStore::open(path).map_err(|e| format!("cannot open the store {}: {e}", path.display()))?,
            ),
            StorageKind::Redis { url, key_prefix } => {
                let redis_config =
                    || store::RedisConfig { key_prefix: key_prefix.clone(), ..store::RedisConfig::new(url.expose()) };
                let open = |c| store::RedisStore::open(c).map_err(|e| format!("storage.url: {e}"));
                shared = Some(Shared {
                    redis: open(redis_config())?,
                    unreserved: Default::default(),
                    down: false,
                    retry_at: None,
                });
                Box::new(open(redis_config())?)
            }
        };
        let mut store = store;
        let spent = shared.is_none().then(Default::default);
        let records = match store.list_keys() {
            Ok(list) => list.into_iter().map(|r| (r.id.as_str().to_owned(), r)).collect(),
            // Redis away at startup: serve the config's keys, and pick the
            // stored ones up when it answers (`refresh_keys`).
            Err(e) if e.is_unavailable() && shared.is_some() => {
                eprintln!("corelay: storage: Redis is unavailable at startup ({e}); runtime keys come when it answers");
                Default::default()
            }
            Err(e) => return Err(format!("cannot read the stored keys: {e}")),
        };
        let mut tenancy = Tenancy {
            store,
            records,
            runtime: Arc::default(),
            shared,
            ledger: Ledger::default(),
            config: config.clone(),
            flush_every: Duration::from_millis(config.storage.usage_flush_ms),
            last_flush: Instant::now(),
            exhausted: Arc::default(),
            failing: false,
            spent,
        };
        tenancy.runtime = tenancy.active_keys();
        Ok(tenancy)
    }

    /// The keys created at run time that are not revoked, for the shards.
    pub fn runtime_keys(&self) -> Arc<Vec<Key>> {
        self.runtime.clone()
    }

    fn active_keys(&self) -> Arc<Vec<Key>> {
        Arc::new(self.records.values().filter(|r| !r.revoked).map(Key::from_record).collect())
    }

    /// A reloaded config: new keys and budgets.
    pub fn reload(&mut self, config: &Config) {
        self.config = config.clone();
        self.flush_every = Duration::from_millis(config.storage.usage_flush_ms);
    }

    /// Whether Redis is being left alone after a failed call.
    fn redis_resting(&self) -> bool {
        self.shared.as_ref().is_some_and(Shared::resting)
    }

    /// Reserves `units` of a counter in Redis before they are granted;
    /// returns how many may be granted (all of them without Redis, or when
    /// it is away).
    pub fn reserve(&mut self, id: &store::quota::CounterId, limit: u64, window: u64, units: u64) -> u64 {
        let Some(shared) = &mut self.shared else { return units };
        let name = counter_name(id, window);
        let window_end = (window + 1) * 60;
        if shared.resting() {
            shared.unreserved.entry(name).or_insert((window, 0)).1 += units;
            return units;
        }
        shared.settle(window);
        match shared.redis.reserve(&name, window_end, units, limit) {
            Ok(granted) => {
                shared.up();
                granted
            }
            Err(e) => {
                shared.went_down(&e);
                let debt = shared.unreserved.entry(name).or_insert((window, 0));
                debt.1 += units;
                units
            }
        }
    }

    /// Gives units back to Redis (a shard's unused lease).
    pub fn release(&mut self, id: &store::quota::CounterId, window: u64, units: u64) {
        let Some(shared) = &mut self.shared else { return };
        let name = counter_name(id, window);
        // Units granted while Redis was away were never reserved there: they
        // come off that debt, not off other instances' reservations.
        let mut units = units;
        if let Some((_, debt)) = shared.unreserved.get_mut(&name) {
            let paid = units.min(*debt);
            *debt -= paid;
            units -= paid;
        }
        if units == 0 || shared.resting() {
            return;
        }
        if let Err(e) = shared.redis.release(&name, units) {
            shared.went_down(&e);
        }
    }

    /// A shard's usage report.
    pub fn add_usage(&mut self, rows: &[store::UsageRow]) {
        self.ledger.merge_all(rows);
    }

    /// With Redis, keys created or changed by another instance: the stored
    /// records are read again (every tick), and the active keys that
    /// [`Tenancy::runtime_keys`] gives are rebuilt when they changed.
    pub fn refresh_keys(&mut self) {
        if self.shared.as_ref().is_none_or(Shared::resting) {
            return;
        }
        let records: std::collections::BTreeMap<String, store::KeyRecord> = match self.store.list_keys() {
            Ok(list) => list.into_iter().map(|r| (r.id.as_str().to_owned(), r)).collect(),
            Err(_) => return,
        };
        let same = records.len() == self.records.len()
            && records.iter().zip(&self.records).all(|((a, ra), (b, rb))| a == b && ra.to_bytes() == rb.to_bytes());
        if !same {
            self.records = records;
            self.runtime = self.active_keys();
        }
    }

    /// Called on every tick: flushes when due, then works out which keys
    /// are over budget ([`Tenancy::exhausted`]).
    pub fn tick(&mut self, now: Instant) {
        if now.duration_since(self.last_flush) < self.flush_every {
            return;
        }
        self.last_flush = now;
        self.flush();
        let exhausted = self.over_budget();
        if exhausted != *self.exhausted {
            self.exhausted = Arc::new(exhausted);
        }
    }

    /// The keys over budget, as last sent: sent again on every tick, so a
    /// shard whose channel was full when it changed still learns it.
    pub fn exhausted(&self) -> Arc<HashSet<u64>> {
        self.exhausted.clone()
    }

    /// Writes what the ledger holds to the store; on failure it stays for
    /// the next flush.
    pub fn flush(&mut self) {
        if self.redis_resting() {
            return;
        }
        let batch = self.ledger.take();
        if batch.is_empty() {
            return;
        }
        match self.store.append_usage(&batch).and_then(|()| self.store.flush()) {
            Ok(()) => {
                self.failing = false;
                self.count_spent(&batch);
            }
            Err(e) => {
                if !self.failing {
                    eprintln!("corelay: storage: cannot write usage ({e}); kept for the next flush");
                }
                self.failing = true;
                self.ledger.merge_all(&batch);
                if let Some(shared) = &mut self.shared {
                    shared.went_down(&e);
                }
            }
        }
    }

    /// Adds a batch just written to the running spend totals.
    fn count_spent(&mut self, batch: &[store::UsageRow]) {
        let Some(spent) = &mut self.spent else { return };
        for row in batch {
            if let Some((window, total)) = spent.get_mut(&row.key.key_id)
                && window.contains(row.key.hour_unix)
            {
                *total += row.counters.cost_micros;
            }
        }
    }

    /// A key's spend in `window` as the store has it: the running total
    /// when there is one for that window, else read (and kept, see
    /// [`Tenancy::spent`]).
    fn stored_spend(&mut self, id: &store::KeyId, window: &store::BudgetWindow) -> Result<u64, ()> {
        if let Some((kept, total)) = self.spent.as_ref().and_then(|s| s.get(id))
            && kept == window
        {
            return Ok(*total);
        }
        let total = self.store.spend_micros(id, window).map_err(drop)?;
        if let Some(spent) = &mut self.spent {
            spent.insert(id.clone(), (*window, total));
        }
        Ok(total)
    }

    /// The keys (by limit id) whose spend in their budget's current period
    /// reached the budget.
    fn over_budget(&mut self) -> HashSet<u64> {
        let now = crate::limits::unix_seconds();
        let mut over = HashSet::new();
        let budgeted: Vec<(store::KeyId, u64, store::Budget)> = (self.config.keys.iter().chain(self.runtime.iter()))
            .filter_map(|k| k.budget.map(|b| (k.ledger_id().clone(), k.limit_id(), b)))
            .collect();
        for (id, limit_id, budget) in &budgeted {
            let window = budget.period.window(now);
            let stored = if self.shared.as_ref().is_some_and(Shared::resting) {
                Err(())
            } else {
                self.stored_spend(id, &window)
            };
            let over_now = match stored {
                Ok(stored) => stored + self.ledger.spend_micros(id, &window) >= budget.usd_micros,
                // The store cannot say: the key keeps the verdict it had.
                Err(_) => self.exhausted.contains(limit_id),
            };
            if over_now {
                over.insert(*limit_id);
            }
        }
        over
    }

    /// Answers a shard's question: a status, a JSON body, and the new
    /// runtime keys when the question changed them.
    pub fn answer(&mut self, question: Question) -> (u16, Vec<u8>, Option<Arc<Vec<Key>>>) {
        match question {
            Question::Usage { key, name, from_unix, until_unix } => {
                let query = UsageQuery { key_id: Some(key), model: None, from_unix, until_unix };
                match self.usage_rows(&query) {
                    Ok(rows) => (200, usage_body(Some(&name), &rows), None),
                    Err(e) => (503, error_body(&format!("usage cannot be read now: {e}")), None),
                }
            }
            Question::Admin(op) => self.admin(op),
        }
    }

    /// The stored rows and those not written yet, merged.
    fn usage_rows(&mut self, query: &UsageQuery) -> Result<Vec<store::UsageRow>, store::StoreError> {
        let mut ledger = Ledger::default();
        // Once more on a failure: a connection that died with its server
        // (Redis restarted) fails one call, and the next one reconnects.
        let stored = self.store.query_usage(query).or_else(|_| self.store.query_usage(query))?;
        ledger.merge_all(&stored);
        ledger.merge_all(&self.ledger.query(query));
        Ok(ledger.query(query))
    }

    fn admin(&mut self, op: crate::admin::Op) -> (u16, Vec<u8>, Option<Arc<Vec<Key>>>) {
        use crate::admin::{Op, error_json, record_json};
        let unavailable =
            |e: store::StoreError| (503, error_body(&format!("the store cannot be written now: {e}")), None);
        let not_found = |id: &str| (404, error_json(&format!("no key `{id}`"), "key_not_found"), None);
        match op {
            Op::ListKeys => {
                let mut out = String::from("{\"object\":\"list\",\"data\":[");
                let mut first = true;
                for key in &self.config.keys {
                    if !std::mem::take(&mut first) {
                        out.push(',');
                    }
                    crate::admin::config_key_json(key, &mut out);
                }
                for record in self.records.values() {
                    if !std::mem::take(&mut first) {
                        out.push(',');
                    }
                    record_json(record, None, &mut out);
                }
                out.push_str("]}");
                (200, out.into_bytes(), None)
            }
            Op::GetKey(id) => match self.records.get(&id) {
                Some(record) => {
                    let mut out = String::new();
                    record_json(record, None, &mut out);
                    (200, out.into_bytes(), None)
                }
                None => not_found(&id),
            },
            Op::CreateKey(spec) => {
                let name = spec.name.clone().unwrap_or_default();
                let (mut record, secret) = match store::KeyRecord::create(name, crate::limits::unix_seconds()) {
                    Ok(created) => created,
                    Err(e) => return (500, error_body(&e.to_string()), None),
                };
                crate::admin::apply(&mut record, spec);
                if let Err(e) = self.store.save_key(&record) {
                    return unavailable(e);
                }
                let mut out = String::new();
                record_json(&record, Some(secret.expose()), &mut out);
                self.records.insert(record.id.as_str().to_owned(), record);
                self.runtime = self.active_keys();
                (201, out.into_bytes(), Some(self.runtime.clone()))
            }
            Op::UpdateKey(id, spec) => {
                // The stored record, not this instance's copy: another
                // instance sharing Redis may have changed or revoked it.
                let stored = match store::KeyId::parse(id.clone()) {
                    Ok(key_id) => match self.store.load_key(&key_id) {
                        Ok(r) => r,
                        Err(e) => return unavailable(e),
                    },
                    Err(_) => None,
                };
                let Some(mut record) = stored else { return not_found(&id) };
                crate::admin::apply(&mut record, spec);
                if let Err(e) = self.store.save_key(&record) {
                    return unavailable(e);
                }
                let mut out = String::new();
                record_json(&record, None, &mut out);
                self.records.insert(id, record);
                self.runtime = self.active_keys();
                (200, out.into_bytes(), Some(self.runtime.clone()))
            }
            Op::RevokeKey(id) => {
                let Ok(key_id) = store::KeyId::parse(id.clone()) else { return not_found(&id) };
                match self.store.revoke_key(&key_id) {
                    Ok(true) => {}
                    Ok(false) => return not_found(&id),
                    Err(e) => return unavailable(e),
                }
                let record = match self.store.load_key(&key_id) {
                    Ok(Some(r)) => r,
                    Ok(None) => return not_found(&id),
                    Err(e) => return unavailable(e),
                };
                let mut out = String::new();
                record_json(&record, None, &mut out);
                self.records.insert(id, record);
                self.runtime = self.active_keys();
                (200, out.into_bytes(), Some(self.runtime.clone()))
            }
            Op::Usage { key, model, from_unix, until_unix } => {
                let key_id = match key.map(store::KeyId::parse).transpose() {
                    Ok(k) => k,
                    Err(_) => return (400, error_json("`key` is not a key id", "invalid_key_id"), None),
                };
                let query = UsageQuery { key_id, model, from_unix, until_unix };
                match self.usage_rows(&query) {
                    Ok(rows) => (200, usage_body(None, &rows), None),
                    Err(e) => (503, error_body(&format!("usage cannot be read now: {e}")), None),
                }
            }
        }
    }
}

impl Shared {
    /// Whether Redis is being left alone after a failure.
    fn resting(&self) -> bool {
        self.retry_at.is_some_and(|at| Instant::now() < at)
    }

    fn up(&mut self) {
        self.retry_at = None;
        if self.down {
            eprintln!("corelay: storage: Redis answers again; limits are shared again");
        }
        self.down = false;
    }

    fn went_down(&mut self, e: &store::StoreError) {
        self.retry_at = Some(Instant::now() + Duration::from_millis(REDIS_RETRY_MS));
        if !self.down {
            eprintln!("corelay: storage: Redis is unavailable ({e}); limits are this instance's own until it returns");
        }
        self.down = true;
    }

    /// Reserves what was granted while Redis was away, for windows not
    /// over yet; older debts are dropped (their window's counter expired).
    fn settle(&mut self, window: u64) {
        self.unreserved.retain(|_, (w, _)| *w >= window);
        let debts: Vec<(String, u64, u64)> = self.unreserved.iter().map(|(n, &(w, u))| (n.clone(), w, u)).collect();
        for (name, w, units) in debts {
            if self.redis.reserve(&name, (w + 1) * 60, units, u64::MAX).is_err() {
                return;
            }
            self.unreserved.remove(&name);
        }
    }
}

/// The Redis counter of a limit in a window: the key's limit id, what is
/// counted, and the window (a minute), so each window starts from zero.
fn counter_name(id: &store::quota::CounterId, window: u64) -> String {
    let what = match id.measure {
        store::quota::Measure::Requests => "rpm",
        store::quota::Measure::Tokens => "tpm",
    };
    format!("{:016x}:{what}:{window}", id.key)
}

fn error_body(message: &str) -> Vec<u8> {
    crate::error::openai_error_body(message, "server_error", Some("storage_unavailable"))
}

/// Usage rows with their total, costs in USD: for one key,
/// `{"object":"usage","key":NAME,"data":[{model,hour_unix,...}],"total":{...}}`
/// (`/v1/usage`); for any keys (`name` `None`), `{"object":"list",
/// "data":[{key,model,hour_unix,...}],"total":{...}}` (`/admin/usage`).
fn usage_body(name: Option<&str>, rows: &[store::UsageRow]) -> Vec<u8> {
    use std::fmt::Write;
    let mut out = String::with_capacity(128 + rows.len() * 200);
    match name {
        Some(name) => {
            out.push_str("{\"object\":\"usage\",\"key\":");
            push_json_string(&mut out, name);
            out.push_str(",\"data\":[");
        }
        None => out.push_str("{\"object\":\"list\",\"data\":["),
    }
    let mut total = store::Counters::default();
    for (i, row) in rows.iter().enumerate() {
        out.push_str(if i > 0 { ",{" } else { "{" });
        if name.is_none() {
            out.push_str("\"key\":");
            push_json_string(&mut out, row.key.key_id.as_str());
            out.push(',');
        }
        out.push_str("\"model\":");
        push_json_string(&mut out, &row.key.model);
        let _ = write!(out, ",\"hour_unix\":{},", row.key.hour_unix);
        push_counters(&mut out, &row.counters);
        out.push('}');
        total.add(&row.counters);
    }
    out.push_str("],\"total\":{");
    push_counters(&mut out, &total);
    out.push_str("}}");
    out.into_bytes()
}

fn push_counters(out: &mut String, c: &store::Counters) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "\"requests\":{},\"prompt_tokens\":{},\"completion_tokens\":{},\"cached_tokens\":{},\"cache_write_tokens\":{},\"reasoning_tokens\":{},\"cost_usd\":{}.{:06}",
        c.requests,
        c.prompt_tokens,
        c.completion_tokens,
        c.cached_tokens,
        c.cache_write_tokens,
        c.reasoning_tokens,
        c.cost_micros / 1_000_000,
        c.cost_micros % 1_000_000
    );
}

fn push_json_string(out: &mut String, s: &str) {
    let mut bytes = Vec::with_capacity(s.len() + 2);
    translate::openai::write_json_string(&mut bytes, s);
    out.push_str(&String::from_utf8_lossy(&bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memory store that counts the spend reads it serves.
    struct Counting {
        inner: store::MemoryStore,
        spend_reads: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Store for Counting {
        fn load_key(&mut self, id: &store::KeyId) -> Result<Option<store::KeyRecord>, store::StoreError> {
            self.inner.load_key(id)
        }
        fn save_key(&mut self, record: &store::KeyRecord) -> Result<(), store::StoreError> {
            self.inner.save_key(record)
        }
        fn list_keys(&mut self) -> Result<Vec<store::KeyRecord>, store::StoreError> {
            self.inner.list_keys()
        }
        fn revoke_key(&mut self, id: &store::KeyId) -> Result<bool, store::StoreError> {
            self.inner.revoke_key(id)
        }
        fn append_usage(&mut self, batch: &[store::UsageRow]) -> Result<(), store::StoreError> {
            self.inner.append_usage(batch)
        }
        fn query_usage(&mut self, query: &UsageQuery) -> Result<Vec<store::UsageRow>, store::StoreError> {
            self.inner.query_usage(query)
        }
        fn spend_micros(&mut self, id: &store::KeyId, window: &store::BudgetWindow) -> Result<u64, store::StoreError> {
            self.spend_reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.spend_micros(id, window)
        }
        fn flush(&mut self) -> Result<(), store::StoreError> {
            self.inner.flush()
        }
    }

    #[test]
    fn budgets_read_the_store_once_and_keep_a_running_total() {
        let text = "[providers.m]\nkind = \"mock\"\nmodels = [\"m\"]\n[[keys]]\nname = \"t\"\nkey = \"sk-budgeted\"\nbudget_usd = 1.0\n";
        let config = crate::config::parse(text, |_| None).unwrap();
        let key = config.keys[0].clone();
        let mut tenancy = Tenancy::open(&config).unwrap();
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut earlier = store::MemoryStore::default();
        // Spend from before this process: 0.3 USD, found by the first read.
        let row = |cost| store::UsageRow {
            key: store::UsageKey::new(key.ledger_id().clone(), "m", crate::limits::unix_seconds() / 3600 * 3600),
            counters: store::Counters { requests: 1, cost_micros: cost, ..Default::default() },
        };
        earlier.append_usage(&[row(300_000)]).unwrap();
        tenancy.store = Box::new(Counting { inner: earlier, spend_reads: reads.clone() });
        let mut now = Instant::now();
        let mut tick = |tenancy: &mut Tenancy, cost| {
            tenancy.add_usage(&[row(cost)]);
            now += tenancy.flush_every;
            tenancy.tick(now);
            tenancy.exhausted().contains(&key.limit_id())
        };
        assert!(!tick(&mut tenancy, 300_000), "0.6 of 1.0 USD");
        assert!(!tick(&mut tenancy, 300_000), "0.9 of 1.0 USD");
        assert!(tick(&mut tenancy, 100_000), "1.0 of 1.0 USD: spent");
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1, "one read, then running totals");
        // What was written is all in the store.
        let window = store::BudgetPeriod::Total.window(0);
        assert_eq!(tenancy.store.spend_micros(key.ledger_id(), &window).unwrap(), 1_000_000);
    }

    #[test]
    fn usage_bodies_are_json_with_totals_in_usd() {
        let key = store::KeyId::parse("cfg-1").unwrap();
        let row = |model: &str, cost| store::UsageRow {
            key: store::UsageKey { key_id: key.clone(), model: model.into(), hour_unix: 3600 },
            counters: store::Counters {
                prompt_tokens: 10,
                completion_tokens: 5,
                requests: 1,
                cost_micros: cost,
                ..Default::default()
            },
        };
        let body = usage_body(Some("te\"am"), &[row("a", 1_500_000), row("b", 25)]);
        let v: sonic_rs::Value = sonic_rs::from_slice(&body).unwrap();
        use sonic_rs::{JsonContainerTrait, JsonValueTrait};
        assert_eq!(v["key"].as_str(), Some("te\"am"));
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert_eq!(v["total"]["requests"].as_u64(), Some(2));
        assert_eq!(v["total"]["prompt_tokens"].as_u64(), Some(20));
        assert_eq!(v["total"]["cost_usd"].as_f64(), Some(1.500025));
    }
}
