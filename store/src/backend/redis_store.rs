//! [`RedisStore`]: keys, usage and shared counters in Redis, so several
//! corelay instances share keys, limits and budgets.
//!
//! Synchronous client (the `redis` crate without any async runtime), one
//! connection, used only from the control plane. A call that loses the
//! connection (Redis restarted, a reset, a timeout) returns an error with
//! `connection_lost` set and drops the connection; the next call connects
//! again. Nothing here panics on a network failure.
//!
//! Layout, every name under [`RedisConfig::key_prefix`] (`P`, `corelay:` by
//! default):
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `P key:{id}` | hash | a key record, one field per attribute, so revoking is one `HSET` |
//! | `P keys` | set | every key id |
//! | `P usage:{hour}:{id}:{model}` | hash | a usage row's counters, added with `HINCRBY` |
//! | `P usage_rows`, `P usage_rows:{id}` | sorted sets | the usage rows (member `{hour}:{id}:{model}`, score the hour), for queries by time and by key |
//! | `P spend:{id}:daily:{start}`, `P spend:{id}:monthly:{start}`, `P spend:{id}:total` | strings | micro-USD spent in a budget window, `INCRBY`, expiring at the window's end |
//! | `P limit:{counter}` | string | a rate-limit window's units granted so far ([`RedisStore::reserve`]) |
//!
//! A key id has no `:` ([`KeyId`]'s charset), so a usage member splits
//! back into its hour, id and model (which may contain `:`) unambiguously.
//! One batch of usage rows is one `MULTI`/`EXEC`: all of it or none.
//!
//! Redis counts in signed 64-bit integers and Lua in doubles, so counter
//! increments are clamped to `i64::MAX` and reservation amounts to 2⁵³;
//! neither bound is near a real limit.

use std::collections::HashMap;
use std::time::Duration;

use redis::{Connection, ErrorKind, RedisError, RedisResult, Script};

use super::Store;
use crate::StoreError;
use crate::keys::{Budget, BudgetPeriod, BudgetWindow, KeyId, KeyRecord, ModelAllowlist, digest_from_hex, to_hex};
use crate::ledger::{Counters, UsageKey, UsageQuery, UsageRow};

/// Where Redis is and how long to wait for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prepended to every key name, so instances of one deployment share
    /// state and other users of the same Redis do not collide with it.
    pub key_prefix: String,
    pub connect_timeout_ms: u64,
    /// For each read and write on the connection.
    pub io_timeout_ms: u64,
}

impl RedisConfig {
    pub const KEY_PREFIX_DEFAULT: &'static str = "corelay:";
    pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 1_000;
    pub const IO_TIMEOUT_MS_DEFAULT: u64 = 1_000;

    /// The defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            key_prefix: RedisConfig::KEY_PREFIX_DEFAULT.to_owned(),
            connect_timeout_ms: RedisConfig::CONNECT_TIMEOUT_MS_DEFAULT,
            io_timeout_ms: RedisConfig::IO_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// Grants `min(want, limit - used)` (never below 0), adds it to `used`, and
/// sets the counter to expire at the window's end. KEYS[1] = counter;
/// ARGV = want, limit, window end (unix seconds).
const RESERVE_LUA: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
local grant = tonumber(ARGV[2]) - used
if grant > want then grant = want end
if grant < 0 then grant = 0 end
if grant > 0 then redis.call('INCRBY', KEYS[1], grant) end
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return grant
";

/// Takes back up to `n` units, never below 0, keeping the expiry. A
/// counter that has expired stays absent: `DECRBY` on a missing key would
/// create one with no expiry. KEYS[1] = counter; ARGV[1] = n.
const RELEASE_LUA: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if n > used then n = used end
if n > 0 then redis.call('DECRBY', KEYS[1], n) end
return n
";

/// Sets `revoked` on an existing record only: `HSET` alone would create a
/// record with nothing but that field. KEYS[1] = the record's hash.
const REVOKE_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'revoked', '1')
return 1
";

/// Lua numbers are doubles: integers are exact up to 2^53.
const LUA_INTEGER_MAX: u64 = 1 << 53;

pub struct RedisStore {
    client: redis::Client,
    conn: Option<Connection>,
    config: RedisConfig,
    reserve: Script,
    release: Script,
    revoke: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: show only the prefix.
        f.debug_struct("RedisStore").field("key_prefix", &self.config.key_prefix).finish_non_exhaustive()
    }
}

/// Whether an error leaves the connection usable. A server's error reply
/// (a wrong type, a failing script) and a reply of an unexpected type
/// leave the protocol in step; anything else (I/O, a timeout, an
/// unparseable reply) may not, so the connection is dropped.
fn connection_survives(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension | ErrorKind::UnexpectedReturnType)
}

impl RedisStore {
    /// Checks the URL; connects on the first call, so corelay can start
    /// while Redis is down and catch up when it is back.
    pub fn open(config: RedisConfig) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|source| StoreError::Redis { source, connection_lost: false })?;
        Ok(RedisStore {
            client,
            conn: None,
            config,
            reserve: Script::new(RESERVE_LUA),
            release: Script::new(RELEASE_LUA),
            revoke: Script::new(REVOKE_LUA),
        })
    }

    /// Runs `f` on the connection, connecting first if there is none, and
    /// drops the connection when an error may have left it out of step.
    fn run<T>(&mut self, f: impl FnOnce(&mut Connection, &Scripts<'_>) -> RedisResult<T>) -> Result<T, StoreError> {
        let lost = |source| StoreError::Redis { source, connection_lost: true };
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let io = Some(Duration::from_millis(self.config.io_timeout_ms));
                let conn = self
                    .client
                    .get_connection_with_timeout(Duration::from_millis(self.config.connect_timeout_ms))
                    .map_err(lost)?;
                conn.set_read_timeout(io).map_err(lost)?;
                conn.set_write_timeout(io).map_err(lost)?;
                self.conn.insert(conn)
            }
        };
        let scripts = Scripts { reserve: &self.reserve, release: &self.release, revoke: &self.revoke };
        match f(conn, &scripts) {
            Ok(v) => Ok(v),
            Err(source) => {
                let connection_lost = !connection_survives(&source);
                if connection_lost {
                    self.conn = None;
                }
                Err(StoreError::Redis { source, connection_lost })
            }
        }
    }

    /// Round trip to Redis: connects if needed.
    pub fn ping(&mut self) -> Result<(), StoreError> {
        self.run(|c, _| redis::cmd("PING").query::<()>(c))
    }

    /// Grants up to `want` units of the rate-limit window counted by
    /// `counter` (named by the caller, unique per key and window), without
    /// letting all grants of the window exceed `limit`: atomically,
    /// `grant = min(want, limit - used)`, `used += grant`, and the counter
    /// expires at `window_end_unix`. A grant of 0 means the window is
    /// spent. Clocks of instances sharing the counter may differ: a caller
    /// that fears an early expiry passes a later end, which is harmless
    /// since the counter's name carries its window.
    pub fn reserve(&mut self, counter: &str, window_end_unix: u64, want: u64, limit: u64) -> Result<u64, StoreError> {
        let key = format!("{}limit:{counter}", self.config.key_prefix);
        let (want, limit) = (want.min(LUA_INTEGER_MAX), limit.min(LUA_INTEGER_MAX));
        self.run(|c, s| s.reserve.key(&key).arg(want).arg(limit).arg(window_end_unix).invoke(c))
    }

    /// Gives back up to `n` units of `counter` that were reserved but not
    /// used; returns how many were given back (less than `n` only if the
    /// counter expired or held less).
    pub fn release(&mut self, counter: &str, n: u64) -> Result<u64, StoreError> {
        let key = format!("{}limit:{counter}", self.config.key_prefix);
        let n = n.min(LUA_INTEGER_MAX);
        self.run(|c, s| s.release.key(&key).arg(n).invoke(c))
    }

    /// The units of `counter` granted so far (0 once it has expired).
    pub fn reserved(&mut self, counter: &str) -> Result<u64, StoreError> {
        let key = format!("{}limit:{counter}", self.config.key_prefix);
        self.run(|c, _| redis::cmd("GET").arg(&key).query::<Option<u64>>(c).map(Option::unwrap_or_default))
    }

    /// Seconds until `counter` expires: `None` if it does not exist or has
    /// no expiry.
    pub fn reserved_ttl_s(&mut self, counter: &str) -> Result<Option<u64>, StoreError> {
        let key = format!("{}limit:{counter}", self.config.key_prefix);
        let ttl: i64 = self.run(|c, _| redis::cmd("TTL").arg(&key).query(c))?;
        Ok(u64::try_from(ttl).ok())
    }

    fn record_key(&self, id: &KeyId) -> String {
        format!("{}key:{id}", self.config.key_prefix)
    }
}

/// The counter of what `key_id` spent in `window`.
fn spend_key(prefix: &str, key_id: &KeyId, window: &BudgetWindow) -> String {
    match window.period {
        BudgetPeriod::Total => format!("{prefix}spend:{key_id}:total"),
        period => format!("{prefix}spend:{key_id}:{}:{}", period.as_str(), window.start_unix),
    }
}

/// The scripts, lent to [`RedisStore::run`]'s closure beside the connection.
struct Scripts<'s> {
    reserve: &'s Script,
    release: &'s Script,
    revoke: &'s Script,
}

fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------
// Usage rows.

fn usage_member(key: &UsageKey) -> String {
    format!("{}:{}:{}", key.hour_unix, key.key_id, key.model)
}

fn parse_usage_member(member: &str) -> Result<UsageKey, StoreError> {
    let bad = || StoreError::corrupt("usage row name", member);
    let mut parts = member.splitn(3, ':');
    let (Some(hour), Some(id), Some(model)) = (parts.next(), parts.next(), parts.next()) else { return Err(bad()) };
    Ok(UsageKey {
        key_id: KeyId::parse(id).map_err(|_| bad())?,
        model: model.to_owned(),
        hour_unix: hour.parse().map_err(|_| bad())?,
    })
}

/// Adds one row's commands to an atomic pipeline.
fn add_row(pipe: &mut redis::Pipeline, prefix: &str, row: &UsageRow) {
    let member = usage_member(&row.key);
    let hash = format!("{prefix}usage:{member}");
    for (field, n) in Counters::NAMES.iter().zip(row.counters.to_array()) {
        // `requests` always, so the row's hash exists even when all is zero.
        if n > 0 || *field == "requests" {
            pipe.cmd("HINCRBY").arg(&hash).arg(*field).arg(clamp_i64(n)).ignore();
        }
    }
    let id = &row.key.key_id;
    pipe.cmd("ZADD").arg(format!("{prefix}usage_rows")).arg(row.key.hour_unix).arg(&member).ignore();
    pipe.cmd("ZADD").arg(format!("{prefix}usage_rows:{id}")).arg(row.key.hour_unix).arg(&member).ignore();
    let cost = row.counters.cost_micros;
    if cost == 0 {
        return;
    }
    for period in [BudgetPeriod::Daily, BudgetPeriod::Monthly, BudgetPeriod::Total] {
        let window = period.window(row.key.hour_unix);
        let key = spend_key(prefix, id, &window);
        pipe.cmd("INCRBY").arg(&key).arg(clamp_i64(cost)).ignore();
        if let Some(end) = window.end_unix {
            pipe.cmd("EXPIREAT").arg(&key).arg(end).ignore();
        }
    }
}

// ---------------------------------------------------------------------------
// Key records as hashes.

fn record_fields(r: &KeyRecord) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("v", "1".to_owned()),
        ("name", r.name.clone()),
        ("secret_sha256", to_hex(&r.secret_sha256)),
        ("models", sonic_rs::to_string(&r.models.patterns()).expect("a list of strings serializes")),
        ("created_at", r.created_at.to_string()),
        ("revoked", if r.revoked { "1" } else { "0" }.to_owned()),
    ];
    if let Some(rpm) = r.rpm {
        f.push(("rpm", rpm.to_string()));
    }
    if let Some(tpm) = r.tpm {
        f.push(("tpm", tpm.to_string()));
    }
    if let Some(b) = r.budget {
        f.push(("budget_usd_micros", b.usd_micros.to_string()));
        f.push(("budget_period", b.period.as_str().to_owned()));
    }
    if let Some(at) = r.expires_at {
        f.push(("expires_at", at.to_string()));
    }
    if !r.metadata.is_empty() {
        f.push(("metadata", sonic_rs::to_string(&r.metadata).expect("a map of strings serializes")));
    }
    f
}

fn record_from_fields(id: KeyId, h: &HashMap<String, String>) -> Result<KeyRecord, StoreError> {
    let bad = |field: &str| StoreError::corrupt("key record", format!("{id}: field `{field}`"));
    let req = |field: &'static str| h.get(field).ok_or_else(|| bad(field));
    fn num<T: std::str::FromStr>(h: &HashMap<String, String>, field: &str) -> Result<Option<T>, ()> {
        h.get(field).map(|v| v.parse().map_err(|_| ())).transpose()
    }
    if req("v")? != "1" {
        return Err(bad("v"));
    }
    let models: Vec<String> = sonic_rs::from_str(req("models")?).map_err(|_| bad("models"))?;
    let budget = match (num(h, "budget_usd_micros").map_err(|_| bad("budget_usd_micros"))?, h.get("budget_period")) {
        (Some(usd_micros), Some(p)) => {
            Some(Budget { usd_micros, period: BudgetPeriod::parse(p).ok_or_else(|| bad("budget_period"))? })
        }
        (None, None) => None,
        _ => return Err(bad("budget_period")),
    };
    Ok(KeyRecord {
        name: req("name")?.clone(),
        secret_sha256: digest_from_hex(req("secret_sha256")?).ok_or_else(|| bad("secret_sha256"))?,
        models: ModelAllowlist::parse(&models),
        rpm: num(h, "rpm").map_err(|_| bad("rpm"))?,
        tpm: num(h, "tpm").map_err(|_| bad("tpm"))?,
        budget,
        expires_at: num(h, "expires_at").map_err(|_| bad("expires_at"))?,
        metadata: match h.get("metadata") {
            Some(m) => sonic_rs::from_str(m).map_err(|_| bad("metadata"))?,
            None => Default::default(),
        },
        created_at: req("created_at")?.parse().map_err(|_| bad("created_at"))?,
        revoked: req("revoked")? == "1",
        id,
    })
}

impl Store for RedisStore {
    fn load_key(&mut self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let key = self.record_key(id);
        let h: HashMap<String, String> = self.run(|c, _| redis::cmd("HGETALL").arg(&key).query(c))?;
        if h.is_empty() {
            return Ok(None);
        }
        record_from_fields(id.clone(), &h).map(Some)
    }

    fn save_key(&mut self, record: &KeyRecord) -> Result<(), StoreError> {
        let key = self.record_key(&record.id);
        let index = format!("{}keys", self.config.key_prefix);
        let fields = record_fields(record);
        self.run(|c, _| {
            let mut pipe = redis::pipe();
            pipe.atomic().cmd("DEL").arg(&key).ignore();
            pipe.cmd("HSET").arg(&key).arg(&fields[..]).ignore();
            pipe.cmd("SADD").arg(&index).arg(record.id.as_str()).ignore();
            pipe.query::<()>(c)
        })
    }

    fn list_keys(&mut self) -> Result<Vec<KeyRecord>, StoreError> {
        let index = format!("{}keys", self.config.key_prefix);
        let mut ids: Vec<String> = self.run(|c, _| redis::cmd("SMEMBERS").arg(&index).query(c))?;
        ids.sort();
        let ids = ids.into_iter().map(KeyId::parse).collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            // An empty pipeline is a client error in the redis crate.
            return Ok(Vec::new());
        }
        let names: Vec<String> = ids.iter().map(|id| self.record_key(id)).collect();
        let hashes: Vec<HashMap<String, String>> = self.run(|c, _| {
            let mut pipe = redis::pipe();
            for name in &names {
                pipe.cmd("HGETALL").arg(name);
            }
            pipe.query(c)
        })?;
        // An id whose hash is gone (deleted by hand) is skipped, not an error.
        let present = ids.into_iter().zip(hashes).filter(|(_, h)| !h.is_empty());
        present.map(|(id, h)| record_from_fields(id, &h)).collect()
    }

    fn revoke_key(&mut self, id: &KeyId) -> Result<bool, StoreError> {
        let key = self.record_key(id);
        let done: i64 = self.run(|c, s| s.revoke.key(&key).invoke(c))?;
        Ok(done == 1)
    }

    fn append_usage(&mut self, batch: &[UsageRow]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for row in batch {
            add_row(&mut pipe, &self.config.key_prefix, row);
        }
        self.run(|c, _| pipe.query::<()>(c))
    }

    fn query_usage(&mut self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        let p = self.config.key_prefix.clone();
        let index = match &query.key_id {
            Some(id) => format!("{p}usage_rows:{id}"),
            None => format!("{p}usage_rows"),
        };
        let min = query.from_unix.map_or("-inf".to_owned(), |f| crate::ledger::hour_start(f).to_string());
        let max = query.until_unix.map_or("+inf".to_owned(), |u| format!("({u}"));
        let members: Vec<String> =
            self.run(|c, _| redis::cmd("ZRANGEBYSCORE").arg(&index).arg(&min).arg(&max).query(c))?;
        let mut keys = Vec::with_capacity(members.len());
        for m in &members {
            let key = parse_usage_member(m)?;
            if query.matches(&key) {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let hashes: Vec<String> = keys.iter().map(|k| format!("{p}usage:{}", usage_member(k))).collect();
        let values: Vec<Vec<Option<u64>>> = self.run(|c, _| {
            let mut pipe = redis::pipe();
            for h in &hashes {
                pipe.cmd("HMGET").arg(h).arg(&Counters::NAMES[..]);
            }
            pipe.query(c)
        })?;
        let mut rows: Vec<UsageRow> = keys
            .into_iter()
            .zip(values)
            .map(|(key, v)| {
                let mut a = [0u64; Counters::LEN];
                for (slot, n) in a.iter_mut().zip(v) {
                    *slot = n.unwrap_or(0);
                }
                UsageRow { key, counters: Counters::from_array(a) }
            })
            .collect();
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(rows)
    }

    fn spend_micros(&mut self, key_id: &KeyId, window: &BudgetWindow) -> Result<u64, StoreError> {
        let key = spend_key(&self.config.key_prefix, key_id, window);
        self.run(|c, _| redis::cmd("GET").arg(&key).query::<Option<u64>>(c).map(Option::unwrap_or_default))
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        // Every call was applied by Redis before it returned.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::digest;

    #[test]
    fn records_round_trip_through_hash_fields() {
        let id = KeyId::parse("key_x").unwrap();
        let mut r = KeyRecord::new(id.clone(), "name: with \"quotes\"", digest("secret-x"), 42);
        let fields = |r: &KeyRecord| record_fields(r).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(record_from_fields(id.clone(), &fields(&r)).unwrap(), r);
        r.models = ModelAllowlist::parse(&["gpt-*", "o3"]);
        r.rpm = Some(1);
        r.tpm = Some(u64::MAX);
        r.budget = Some(Budget { usd_micros: 5, period: BudgetPeriod::Daily });
        r.expires_at = Some(99);
        r.metadata.insert("a:b".into(), "c".into());
        r.revoked = true;
        assert_eq!(record_from_fields(id.clone(), &fields(&r)).unwrap(), r);

        let mut broken: HashMap<String, String> = fields(&r);
        broken.remove("budget_period");
        assert!(record_from_fields(id.clone(), &broken).is_err());
        let mut broken: HashMap<String, String> = fields(&r);
        broken.insert("rpm".into(), "lots".into());
        let err = record_from_fields(id, &broken).unwrap_err().to_string();
        assert!(err.contains("rpm"), "{err}");
    }

    #[test]
    fn usage_members_split_back_even_with_colons_in_the_model() {
        let key = UsageKey::new(KeyId::parse("k-1").unwrap(), "anthropic.claude-3-5-sonnet-20240620-v1:0", 7_300);
        assert_eq!(usage_member(&key), "7200:k-1:anthropic.claude-3-5-sonnet-20240620-v1:0");
        assert_eq!(parse_usage_member(&usage_member(&key)).unwrap(), key);
        for bad in ["", "12", "x:k:m", "1:bad id:m"] {
            assert!(parse_usage_member(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_transport_errors_drop_the_connection() {
        let server = RedisError::from((ErrorKind::Server(redis::ServerErrorKind::ResponseError), "WRONGTYPE"));
        assert!(connection_survives(&server));
        let io = RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert!(!connection_survives(&io));
    }

    #[test]
    fn a_bad_url_is_an_error_and_nothing_connects_before_the_first_call() {
        assert!(RedisStore::open(RedisConfig::new("not a url")).is_err());
        let s = RedisStore::open(RedisConfig::new("redis://127.0.0.1:1/")).unwrap();
        assert!(s.conn.is_none());
        assert!(!format!("{s:?}").contains("127.0.0.1"));
    }

    #[test]
    fn an_unreachable_server_is_an_unavailable_error() {
        // Port 1 on loopback: nothing listens there, so connect is refused at once.
        let mut s = RedisStore::open(RedisConfig::new("redis://127.0.0.1:1/")).unwrap();
        let err = s.ping().unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(s.reserve("c", 0, 1, 1).unwrap_err().is_unavailable());
    }
}
