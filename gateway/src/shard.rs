//! A shard: one thread, one monoio runtime, one listener, its own state.
//!
//! Shards share nothing on the data path. A shard's config snapshot, key
//! table, DNS table and connection pool are its own (`Rc`, `RefCell`); the
//! control plane replaces them by sending a [`Command`], and requests already
//! running finish on the values they started with. Counters are plain
//! `Cell`s, reported to the control plane on a tick.
//!
//! Deployments are numbered in the order of the config file's provider
//! names, so a reload that adds or removes a provider renumbers them. Every
//! index is therefore read with the generation it belongs to: a request
//! takes one snapshot once its head has arrived and keeps it; its addresses
//! are those resolved for that snapshot's generation; and the pool, which
//! belongs to one generation, lends and takes back only connections opened
//! for that generation's deployment of that index (see `upstream::Pool`).
//!
//! Control input arrives on a bounded crossbeam channel. Crossbeam cannot be
//! awaited, so each send is followed by a ring on a flume doorbell that the
//! shard awaits: a command is seen at once, and an idle shard does not wake.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Key};
use crate::limits::Leases;
use crate::routing::{Breakers, Verdict};
use crate::upstream::Pool;
use store::quota::CounterId;

/// What the control plane tells a shard.
#[derive(Clone)]
pub enum Command {
    /// A new configuration with its resolved addresses; the shard swaps it
    /// in for new requests.
    Config(Arc<Snapshot>),
    /// Freshly resolved provider addresses for the config of this generation.
    Dns(u64, Arc<DnsTable>),
    /// Counters summed over all shards, for `/metrics`.
    Totals(Arc<Totals>),
    /// A shard's circuit breaker for a deployment of this generation
    /// opened or closed: every shard follows.
    Health { generation: u64, deployment: usize, verdict: Verdict },
    /// The control plane's answer to this shard's [`Report::Lease`]: the
    /// units it may admit in the window (0: refuse).
    Grant { id: CounterId, window: u64, units: u64 },
    /// The keys (by limit id) whose budget is spent.
    Exhausted(Arc<HashSet<u64>>),
    /// Every key created at run time (revoked ones left out).
    Keys(Arc<Vec<Key>>),
    /// The answer to this shard's [`Report::Ask`]: a status and a JSON body.
    Answer { ticket: u64, status: u16, body: Vec<u8> },
    /// An answer another shard kept, for this shard's cache too (the bytes
    /// are shared, not copied), if this shard still runs `generation` and
    /// the cache was not cleared since `epoch`.
    CacheEntry { generation: u64, epoch: u64, key: store::CacheKey, entry: Arc<store::Cached> },
    /// Stop accepting, finish what is in flight, stop.
    Drain,
}

/// What a shard asks the control plane on a client's behalf.
#[derive(Debug, Clone)]
pub enum Question {
    /// A key's usage by model and hour, between two unix times.
    Usage { key: store::KeyId, name: String, from_unix: Option<u64>, until_unix: Option<u64> },
    /// An admin API call (see [`crate::admin`]).
    Admin(crate::admin::Op),
}

/// What a shard tells the control plane.
#[derive(Debug)]
pub enum Report {
    /// The shard's counters since it started.
    Counters { shard: usize, values: [u64; COUNTERS] },
    /// The shard finished draining.
    Stopped { shard: usize },
    /// This shard's breaker for a deployment opened or closed.
    Health { generation: u64, deployment: usize, verdict: Verdict },
    /// The shard's lease for a limited counter ran out.
    Lease { shard: usize, id: CounterId, limit: u64, window: u64 },
    /// The shard gives back units of a lease it did not use.
    Release { shard: usize, id: CounterId, window: u64, units: u64 },
    /// The shard spent units beyond its lease (an answer's tokens).
    Overdraw { id: CounterId, limit: u64, window: u64, units: u64 },
    /// Usage since the last report, by key, model and hour.
    Usage { rows: Vec<store::UsageRow> },
    /// A question to answer with [`Command::Answer`].
    Ask { shard: usize, ticket: u64, question: Question },
    /// The shard kept an answer in its response cache: for the others.
    CacheEntry { shard: usize, generation: u64, epoch: u64, key: store::CacheKey, entry: Arc<store::Cached> },
}

/// Usage not reported yet: per key index (`None`: no keys), per served
/// model, the summed usage and the request count.
/// Usage not reported yet: per key (by limit id; 0 for requests without a
/// key), its ledger id and, per served model, the summed usage and the
/// request count.
type UsageByKey = HashMap<u64, (store::KeyId, HashMap<String, (store::Usage, u64)>)>;

/// Where the control plane's answer (status, JSON body) goes.
type AnswerSender = local_sync::oneshot::Sender<(u16, Vec<u8>)>;

/// How long a request waits for the control plane's answer to a question.
const ASK_WAIT_MS: u64 = 2_000;

/// The ledger's key for requests made with no key (a config without keys).
pub fn anonymous_key() -> store::KeyId {
    store::KeyId::parse("anonymous").expect("a valid literal id")
}

/// A configuration with everything derived from it that shards need.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Counts reloads; DNS tables name the generation they were resolved
    /// for, so a table is never applied to another config's deployments.
    pub generation: u64,
    pub config: Config,
    /// TLS client config per deployment (https deployments only).
    pub tls: Vec<Option<Arc<rustls::ClientConfig>>>,
    /// Addresses per deployment as resolved when this snapshot was built.
    /// The shard's refreshed table replaces them while this generation is
    /// current; a request that outlives its generation keeps these.
    pub dns: DnsTable,
}

impl Snapshot {
    pub fn new(
        generation: u64,
        config: Config,
        tls: Vec<Option<Arc<rustls::ClientConfig>>>,
        dns: DnsTable,
    ) -> Snapshot {
        Snapshot { generation, config, tls, dns }
    }

    /// A connection pool for this snapshot's deployments.
    fn pool(&self) -> Pool {
        let origins = self.config.deployments.iter().map(|d| d.kind.endpoint().map(|e| e.origin())).collect();
        Pool::new(self.generation, origins, &self.config.upstream)
    }
}

/// Every key a shard accepts: the config's `[[keys]]` and the keys created
/// at run time through the admin API, found by the SHA-256 of the secret.
#[derive(Debug, Default)]
pub struct KeyTable {
    pub keys: Vec<Key>,
    by_digest: HashMap<[u8; 32], usize>,
    /// Keys are managed at run time (an `admin_token` is set, or keys are
    /// shared through Redis): a key is required even while none exists, so
    /// revoking the last one never opens the gateway.
    managed: bool,
}

impl KeyTable {
    /// The config's keys, then the runtime ones (a runtime key never shares
    /// a digest with a config key: the config's wins).
    pub fn build(config: &Config, runtime: &[Key]) -> KeyTable {
        // Keys shared through Redis may exist that this instance has not
        // read yet: fail closed there too.
        let shared = matches!(config.storage.kind, crate::config::StorageKind::Redis { .. });
        let mut table = KeyTable { managed: config.admin_token.is_some() || shared, ..KeyTable::default() };
        let config = &config.keys;
        for key in config.iter().chain(runtime) {
            if !table.by_digest.contains_key(&key.secret_sha256) {
                table.by_digest.insert(key.secret_sha256, table.keys.len());
                table.keys.push(key.clone());
            }
        }
        table
    }

    pub fn find(&self, digest: &[u8; 32]) -> Option<&Key> {
        self.by_digest.get(digest).map(|&i| &self.keys[i])
    }

    /// Whether requests must present a key: some key exists, or keys are
    /// managed through the admin API.
    pub fn auth_required(&self) -> bool {
        self.managed || !self.keys.is_empty()
    }
}

/// Resolved addresses per deployment, by index (empty for the mock kind).
pub type DnsTable = Vec<Vec<SocketAddr>>;

/// Counters summed over every shard.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub values: [u64; COUNTERS],
    pub shards: usize,
}

macro_rules! counters {
    ($($name:ident => $text:literal,)*) => {
        /// What a shard counts.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Counter { $($name,)* }
        pub const COUNTER_NAMES: &[&str] = &[$($text,)*];
    };
}

counters! {
    Requests => "requests",
    Responses2xx => "responses_2xx",
    Responses4xx => "responses_4xx",
    Responses5xx => "responses_5xx",
    ResponseErrors => "response_errors",
    Streams => "streams",
    UpstreamConnects => "upstream_connects",
    UpstreamReuses => "upstream_reuses",
    UpstreamRetries => "upstream_retries",
    BreakerOpens => "breaker_opens",
    ClientsGone => "clients_gone_waiting",
    PromptTokens => "prompt_tokens",
    CompletionTokens => "completion_tokens",
    Panics => "panics",
    ConnectionsAccepted => "connections_accepted",
    ConnectionsRefused => "connections_refused",
    CacheHits => "cache_hits",
    CacheMisses => "cache_misses",
}

pub const COUNTERS: usize = COUNTER_NAMES.len();

/// One shard's state.
pub struct Shard {
    pub id: usize,
    snapshot: RefCell<Rc<Snapshot>>,
    dns: RefCell<Rc<DnsTable>>,
    pool: RefCell<Rc<Pool>>,
    totals: RefCell<Arc<Totals>>,
    counters: [Cell<u64>; COUNTERS],
    draining: Cell<bool>,
    in_flight: Cell<usize>,
    pub connections: Cell<usize>,
    /// Circuit breakers of this shard, per deployment.
    pub breakers: Breakers,
    /// Rate-limit leases of this shard, per limited counter.
    pub leases: Leases,
    /// Usage since the last report: per key index (`None`: no keys), per
    /// served model, the summed usage and the request count.
    usage: RefCell<UsageByKey>,
    /// Rows a full channel sent back, for the next report.
    unreported: RefCell<Vec<store::UsageRow>>,
    /// Keys whose budget is spent, by limit id.
    exhausted: RefCell<Arc<HashSet<u64>>>,
    /// The keys this shard accepts (see [`KeyTable`]).
    keys: RefCell<Rc<KeyTable>>,
    /// The keys created at run time, as the control plane last sent them.
    runtime_keys: RefCell<Arc<Vec<Key>>>,
    /// Questions out to the control plane, by ticket.
    asks: RefCell<HashMap<u64, AnswerSender>>,
    next_ticket: Cell<u64>,
    /// Where breaker verdicts go, to reach the other shards.
    reports: Option<crossbeam_channel::Sender<Report>>,
    /// Whole answers kept for repeated requests (`None`: no `[cache]`);
    /// reach it through [`Shard::cache`].
    cache: RefCell<Option<store::ResponseCache>>,
    /// The [`crate::cache::epoch`] the cache was last emptied for.
    cache_epoch: Cell<u64>,
    /// When a failed accept was last logged (once a second at most).
    pub accept_error_logged: Cell<Option<std::time::Instant>>,
}

/// Marks a request in flight until dropped.
pub struct InFlight<'a>(&'a Shard);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get() - 1);
    }
}

impl Shard {
    pub fn new(
        id: usize,
        snapshot: &Snapshot,
        runtime_keys: Arc<Vec<Key>>,
        reports: Option<crossbeam_channel::Sender<Report>>,
    ) -> Shard {
        // A deep copy per shard: reference counts touched on every request
        // must not be shared with other cores.
        let snapshot = Rc::new(snapshot.clone());
        let pool = Rc::new(snapshot.pool());
        let keys = Rc::new(KeyTable::build(&snapshot.config, &runtime_keys));
        let breakers = Breakers::default();
        breakers.reset(snapshot.generation, snapshot.config.deployments.len());
        let cache = snapshot.config.cache.as_ref().map(|c| store::ResponseCache::new(c.limits));
        Shard {
            id,
            dns: RefCell::new(Rc::new(snapshot.dns.clone())),
            snapshot: RefCell::new(snapshot),
            pool: RefCell::new(pool),
            totals: RefCell::new(Arc::new(Totals::default())),
            counters: std::array::from_fn(|_| Cell::new(0)),
            draining: Cell::new(false),
            in_flight: Cell::new(0),
            connections: Cell::new(0),
            breakers,
            leases: Leases::default(),
            usage: RefCell::default(),
            unreported: RefCell::default(),
            keys: RefCell::new(keys),
            runtime_keys: RefCell::new(runtime_keys),
            exhausted: RefCell::default(),
            asks: RefCell::default(),
            next_ticket: Cell::new(0),
            reports,
            cache: RefCell::new(cache),
            cache_epoch: Cell::new(crate::cache::epoch()),
            accept_error_logged: Cell::new(None),
        }
    }

    /// The keys this shard accepts now.
    pub fn keys(&self) -> Rc<KeyTable> {
        self.keys.borrow().clone()
    }

    fn rebuild_keys(&self) {
        let table = KeyTable::build(&self.snapshot.borrow().config, &self.runtime_keys.borrow());
        *self.keys.borrow_mut() = Rc::new(table);
    }

    /// Adds an answer's usage to what the next report carries.
    pub fn record_usage(&self, key: Option<&Key>, model: &str, usage: &translate::Usage) {
        let mut all = self.usage.borrow_mut();
        let (_, models) = all
            .entry(key.map_or(0, Key::limit_id))
            .or_insert_with(|| (key.map_or_else(anonymous_key, |k| k.ledger_id().clone()), HashMap::new()));
        let entry = match models.get_mut(model) {
            Some(entry) => entry,
            None => models.entry(model.to_owned()).or_default(),
        };
        {
            let (sum, requests) = entry;
            sum.prompt_tokens += usage.prompt_tokens;
            sum.completion_tokens += usage.completion_tokens;
            sum.cached_tokens += usage.cached_tokens;
            sum.cache_write_tokens += usage.cache_write_tokens;
            sum.reasoning_tokens += usage.reasoning_tokens;
            *requests += 1;
        }
    }

    /// The usage recorded since the last call (and rows that could not be
    /// reported before), as ledger rows of the hour `at_unix` falls in,
    /// priced with the shard's config.
    pub fn take_usage(&self, at_unix: u64) -> Vec<store::UsageRow> {
        let snapshot = self.snapshot();
        let prices = &snapshot.config.prices;
        let all = std::mem::take(&mut *self.usage.borrow_mut());
        let mut rows = std::mem::take(&mut *self.unreported.borrow_mut());
        for (_, (key_id, models)) in all {
            for (model, (usage, requests)) in models {
                let counters = store::Counters {
                    prompt_tokens: usage.prompt_tokens,
                    completion_tokens: usage.completion_tokens,
                    cached_tokens: usage.cached_tokens,
                    cache_write_tokens: usage.cache_write_tokens,
                    reasoning_tokens: usage.reasoning_tokens,
                    requests,
                    // The price of the served name, else of the name its
                    // provider knows it by (`upstream_models`).
                    cost_micros: prices
                        .cost_micros(&model, &usage)
                        .or_else(|| {
                            let deployment =
                                &snapshot.config.deployments[*snapshot.config.routes.get(&model)?.first()?];
                            prices.cost_micros(deployment.upstream_model(&model), &usage)
                        })
                        .unwrap_or(0),
                };
                let key =
                    store::UsageKey { key_id: key_id.clone(), model, hour_unix: store::ledger::hour_start(at_unix) };
                rows.push(store::UsageRow { key, counters });
            }
        }
        rows
    }

    /// Keeps rows that could not be reported (a full channel) for the next
    /// report.
    pub fn restore_usage(&self, rows: Vec<store::UsageRow>) {
        self.unreported.borrow_mut().extend(rows);
    }

    /// Whether the key (by limit id) has spent its budget.
    pub fn is_exhausted(&self, limit_id: u64) -> bool {
        self.exhausted.borrow().contains(&limit_id)
    }

    /// Asks the control plane; `None` when it did not answer in time.
    pub async fn ask(&self, question: Question) -> Option<(u16, Vec<u8>)> {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        let (tx, rx) = local_sync::oneshot::channel();
        self.asks.borrow_mut().insert(ticket, tx);
        if !self.report(Report::Ask { shard: self.id, ticket, question }) {
            self.asks.borrow_mut().remove(&ticket);
            return None;
        }
        let answer = monoio::time::timeout(Duration::from_millis(ASK_WAIT_MS), rx).await;
        self.asks.borrow_mut().remove(&ticket);
        answer.ok()?.ok()
    }

    /// Sends a report to the control plane without blocking; `false` when
    /// it could not go (the channel is full, or there is no control plane).
    pub fn report(&self, report: Report) -> bool {
        self.try_report(report).is_none()
    }

    /// As [`Shard::report`], giving the report back when it could not go.
    fn try_report(&self, report: Report) -> Option<Report> {
        let Some(reports) = &self.reports else { return Some(report) };
        match reports.try_send(report) {
            Ok(()) => None,
            Err(crossbeam_channel::TrySendError::Full(r) | crossbeam_channel::TrySendError::Disconnected(r)) => Some(r),
        }
    }

    /// Tells the other shards (through the control plane) that this shard's
    /// breaker for a deployment opened or closed. Never blocks: a full
    /// channel drops the verdict, and the other shards learn from their own
    /// failures instead.
    pub fn share_verdict(&self, generation: u64, deployment: usize, verdict: Verdict) {
        if let Some(reports) = &self.reports {
            let _ = reports.try_send(Report::Health { generation, deployment, verdict });
        }
    }

    /// Keeps an answer in this shard's response cache and sends it to the
    /// other shards (through the control plane), if the cache is on and the
    /// answer's config is still this shard's. Never blocks: a full channel
    /// drops the copy for the others, which then only miss once more.
    pub fn keep_answer(&self, generation: u64, epoch: u64, key: store::CacheKey, entry: store::Cached) {
        if generation != self.snapshot.borrow().generation || epoch != crate::cache::epoch() {
            return;
        }
        let entry = Arc::new(entry);
        let kept = match self.cache().as_mut() {
            Some(cache) => cache.insert(key, entry.clone()),
            None => return,
        };
        // Copies for the others ride the channel that carries leases and
        // admin calls: only while it is mostly empty.
        if matches!(kept, store::cache::Stored::Kept { .. })
            && let Some(reports) = &self.reports
            && has_room(reports)
        {
            let _ = reports.try_send(Report::CacheEntry { shard: self.id, generation, epoch, key, entry });
        }
    }

    /// The response cache, emptied first if `DELETE /admin/cache` came since
    /// this shard last looked.
    pub fn cache(&self) -> std::cell::RefMut<'_, Option<store::ResponseCache>> {
        let mut cache = self.cache.borrow_mut();
        let epoch = crate::cache::epoch();
        if epoch != self.cache_epoch.get() {
            if let Some(cache) = cache.as_mut() {
                cache.clear();
            }
            self.cache_epoch.set(epoch);
        }
        cache
    }

    pub fn snapshot(&self) -> Rc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// The freshest addresses for the deployments of `generation`, while it
    /// is the current one; `None` once a reload replaced it (the request
    /// then uses its snapshot's own table).
    pub fn dns_of(&self, generation: u64) -> Option<Rc<DnsTable>> {
        (self.snapshot.borrow().generation == generation).then(|| self.dns.borrow().clone())
    }

    pub fn pool(&self) -> Rc<Pool> {
        self.pool.borrow().clone()
    }

    pub fn totals(&self) -> Arc<Totals> {
        self.totals.borrow().clone()
    }

    pub fn count(&self, counter: Counter, n: u64) {
        let c = &self.counters[counter as usize];
        c.set(c.get() + n);
    }

    pub fn count_status(&self, status: u16) {
        match status {
            200..=299 => self.count(Counter::Responses2xx, 1),
            400..=499 => self.count(Counter::Responses4xx, 1),
            500..=599 => self.count(Counter::Responses5xx, 1),
            _ => {}
        }
    }

    pub fn counter_values(&self) -> [u64; COUNTERS] {
        std::array::from_fn(|i| self.counters[i].get())
    }

    pub fn begin_request(&self) -> InFlight<'_> {
        self.in_flight.set(self.in_flight.get() + 1);
        self.count(Counter::Requests, 1);
        InFlight(self)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Applies one command. Returns true for `Drain`.
    pub fn apply(&self, command: Command) -> bool {
        match command {
            Command::Config(snapshot) => {
                // Usage recorded under the old config's key indexes goes out
                // with them first.
                let rows = self.take_usage(crate::limits::unix_seconds());
                if !rows.is_empty()
                    && let Some(Report::Usage { rows }) = self.try_report(Report::Usage { rows })
                {
                    // The channel is full: kept for the next report.
                    self.restore_usage(rows);
                }
                let snapshot = Rc::new((*snapshot).clone());
                let runtime = self.runtime_keys.borrow().clone();
                *self.keys.borrow_mut() = Rc::new(KeyTable::build(&snapshot.config, &runtime));
                *self.dns.borrow_mut() = Rc::new(snapshot.dns.clone());
                // Deployment indexes may have changed: a fresh pool of the
                // new generation. Connections of the old one still in use
                // are refused by it when their requests end.
                *self.pool.borrow_mut() = Rc::new(snapshot.pool());
                self.breakers.reset(snapshot.generation, snapshot.config.deployments.len());
                // Models may point elsewhere now: nothing kept answers again.
                *self.cache.borrow_mut() = snapshot.config.cache.as_ref().map(|c| store::ResponseCache::new(c.limits));
                *self.snapshot.borrow_mut() = snapshot;
            }
            Command::Dns(generation, table) => {
                if generation == self.snapshot.borrow().generation {
                    *self.dns.borrow_mut() = Rc::new((*table).clone());
                }
            }
            Command::Totals(totals) => *self.totals.borrow_mut() = totals,
            Command::Health { generation, deployment, verdict } => {
                self.breakers.apply(generation, deployment, verdict, std::time::Instant::now());
            }
            Command::Grant { id, window, units } => self.leases.granted(id, window, units),
            Command::Exhausted(keys) => *self.exhausted.borrow_mut() = keys,
            Command::Keys(keys) => {
                if !Arc::ptr_eq(&keys, &self.runtime_keys.borrow()) {
                    *self.runtime_keys.borrow_mut() = keys;
                    self.rebuild_keys();
                }
            }
            Command::Answer { ticket, status, body } => {
                if let Some(waiter) = self.asks.borrow_mut().remove(&ticket) {
                    let _ = waiter.send((status, body));
                }
            }
            Command::CacheEntry { generation, epoch, key, entry } => {
                if generation == self.snapshot.borrow().generation
                    && epoch == crate::cache::epoch()
                    && let Some(cache) = self.cache().as_mut()
                {
                    cache.insert(key, entry);
                }
            }
            Command::Drain => {
                self.draining.set(true);
                return true;
            }
        }
        false
    }

    pub fn stats_interval(&self) -> Duration {
        Duration::from_millis(self.snapshot.borrow().config.upstream.stats_interval_ms)
    }
}

/// Whether a channel is under a quarter full: room for what may be
/// dropped (cache copies) without crowding out what may not.
pub fn has_room<T>(channel: &crossbeam_channel::Sender<T>) -> bool {
    channel.capacity().is_none_or(|capacity| channel.len() * 4 < capacity)
}
