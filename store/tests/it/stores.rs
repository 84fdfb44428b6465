//! One behaviour for every store: the same calls against `MemoryStore`,
//! `RedbStore` and `RedisStore` (on a real redis-server) must give the same
//! answers, checked against an in-memory `Ledger` as the reference.

use store::keys::digest;
use store::{
    Budget, BudgetPeriod, Counters, KeyId, KeyRecord, Ledger, MemoryStore, ModelAllowlist, RedbStore, RedisConfig,
    RedisStore, Store, Usage, UsageKey, UsageQuery, UsageRow,
};

use crate::support::{RedisServer, TempDir};

fn id(s: &str) -> KeyId {
    KeyId::parse(s).unwrap()
}

// 2099-01-31T23:00:00Z: the last hour of a day and of a month, far enough
// ahead that no store has expired a window yet (Redis drops a spend
// counter when its window ends).
const JAN31_23H: u64 = 4_073_583_600;
const HOUR: u64 = 3_600;

fn records() -> Vec<KeyRecord> {
    let mut full = KeyRecord::new(id("key_full"), "full", digest("secret-full"), 1_000);
    full.models = ModelAllowlist::parse(&["gpt-4o", "claude-*"]);
    full.rpm = Some(60);
    full.tpm = Some(90_000);
    full.budget = Some(Budget { usd_micros: 10_000_000, period: BudgetPeriod::Monthly });
    full.expires_at = Some(2_000_000_000);
    full.metadata.insert("team".into(), "search".into());
    vec![
        full,
        KeyRecord::new(id("key_bare"), "bare", digest("secret-bare"), 2_000),
        KeyRecord::new(id("config-key"), "from the config file", digest("secret-config"), 0),
    ]
}

fn usage(prompt: u64, completion: u64, cached: u64) -> Usage {
    Usage { prompt_tokens: prompt, completion_tokens: completion, cached_tokens: cached, ..Usage::default() }
}

/// Two batches of deltas over two keys, three models (one with a `:` in
/// its name), and hours on both sides of a day's and a month's end.
fn batches() -> [Vec<UsageRow>; 2] {
    let mut first = Ledger::new();
    first.add(&id("key_full"), "gpt-4o", JAN31_23H + 5, &usage(100, 20, 10), 450);
    first.add(&id("key_full"), "gpt-4o", JAN31_23H + 3_000, &usage(50, 5, 0), 175);
    first.add(&id("key_full"), "anthropic.claude-sonnet-4-20250514-v1:0", JAN31_23H + HOUR, &usage(9, 9, 0), 162);
    first.add(&id("key_bare"), "gpt-4o", JAN31_23H + 2 * HOUR, &usage(1, 1, 0), 0);
    let mut second = Ledger::new();
    second.add(&id("key_full"), "gpt-4o", JAN31_23H + 60, &usage(1_000, 0, 0), 2_500);
    second.add(&id("key_bare"), "gpt-4o-mini", JAN31_23H - 30 * 24 * HOUR, &usage(7, 3, 0), 3);
    second.add(&id("key_full"), "gpt-4o", JAN31_23H + 25 * HOUR, &usage(2, 2, 2), 9);
    [first.take(), second.take()]
}

fn sorted(mut rows: Vec<UsageRow>) -> Vec<UsageRow> {
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    rows
}

fn check_keys(s: &mut dyn Store) {
    assert!(s.list_keys().unwrap().is_empty());
    assert_eq!(s.load_key(&id("key_full")).unwrap(), None);
    assert!(!s.revoke_key(&id("key_full")).unwrap(), "revoking an unknown key");
    assert_eq!(s.load_key(&id("key_full")).unwrap(), None, "revoking creates nothing");

    let records = records();
    for r in &records {
        s.save_key(r).unwrap();
    }
    for r in &records {
        assert_eq!(s.load_key(&r.id).unwrap().as_ref(), Some(r));
    }
    let mut expected = records.clone();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(s.list_keys().unwrap(), expected, "every record, in id order");

    // Saving again replaces the whole record: fields it no longer has go.
    let mut changed = KeyRecord::new(id("key_full"), "renamed", digest("rotated"), 1_000);
    changed.tpm = Some(1);
    s.save_key(&changed).unwrap();
    assert_eq!(s.load_key(&changed.id).unwrap(), Some(changed.clone()));
    assert_eq!(s.list_keys().unwrap().len(), 3);

    assert!(s.revoke_key(&id("key_bare")).unwrap());
    let revoked = s.load_key(&id("key_bare")).unwrap().unwrap();
    assert!(revoked.revoked);
    assert_eq!(KeyRecord { revoked: false, ..revoked }, records[1]);
    assert!(!s.load_key(&id("key_full")).unwrap().unwrap().revoked);
}

fn check_usage(s: &mut dyn Store) {
    let mut reference = Ledger::new();
    assert!(s.query_usage(&UsageQuery::all()).unwrap().is_empty());
    s.append_usage(&[]).unwrap();
    for batch in batches() {
        s.append_usage(&batch).unwrap();
        reference.merge_all(&batch);
    }
    let queries = [
        UsageQuery::all(),
        UsageQuery::all().key(id("key_full")),
        UsageQuery::all().key(id("key_bare")),
        UsageQuery::all().key(id("nobody")),
        UsageQuery::all().model("gpt-4o"),
        UsageQuery::all().model("anthropic.claude-sonnet-4-20250514-v1:0"),
        UsageQuery::all().between(JAN31_23H + 1_800, JAN31_23H + HOUR),
        UsageQuery::all().between(JAN31_23H + HOUR, u64::MAX),
        UsageQuery::all().key(id("key_full")).model("gpt-4o").between(JAN31_23H, JAN31_23H + 2 * HOUR),
    ];
    for q in &queries {
        assert_eq!(sorted(s.query_usage(q).unwrap()), reference.query(q), "{q:?}");
    }
    // Rows that were merged: two batches hit the same (key, model, hour).
    let merged =
        s.query_usage(&UsageQuery::all().key(id("key_full")).model("gpt-4o").between(JAN31_23H, JAN31_23H + 1));
    let merged = merged.unwrap();
    assert_eq!(merged.len(), 1);
    assert_eq!(
        merged[0],
        UsageRow {
            key: UsageKey::new(id("key_full"), "gpt-4o", JAN31_23H),
            counters: Counters {
                prompt_tokens: 1_150,
                completion_tokens: 25,
                cached_tokens: 10,
                requests: 3,
                cost_micros: 3_125,
                ..Counters::default()
            },
        }
    );

    for key in [id("key_full"), id("key_bare"), id("nobody")] {
        for at in [JAN31_23H - 30 * 24 * HOUR, JAN31_23H, JAN31_23H + HOUR, JAN31_23H + 25 * HOUR] {
            for period in [BudgetPeriod::Daily, BudgetPeriod::Monthly, BudgetPeriod::Total] {
                let window = period.window(at);
                let expected = reference.spend_micros(&key, &window);
                assert_eq!(s.spend_micros(&key, &window).unwrap(), expected, "{key} {window:?}");
            }
        }
    }
    // Worked by hand for one key: January holds 450 + 175 + 2,500 µ$.
    assert_eq!(s.spend_micros(&id("key_full"), &BudgetPeriod::Monthly.window(JAN31_23H)).unwrap(), 3_125);
    assert_eq!(s.spend_micros(&id("key_full"), &BudgetPeriod::Daily.window(JAN31_23H + HOUR)).unwrap(), 162);
    assert_eq!(s.spend_micros(&id("key_full"), &BudgetPeriod::Total.window(0)).unwrap(), 3_296);
    s.flush().unwrap();
}

fn conformance(s: &mut dyn Store) {
    check_keys(s);
    check_usage(s);
}

#[test]
fn memory_store() {
    conformance(&mut MemoryStore::new());
}

#[test]
fn redb_store() {
    let dir = TempDir::new("conformance");
    conformance(&mut RedbStore::open(dir.path().join("corelay.redb")).unwrap());
}

#[test]
fn redb_store_keeps_everything_across_a_reopen() {
    let dir = TempDir::new("reopen");
    let path = dir.path().join("corelay.redb");
    let mut before = RedbStore::open(&path).unwrap();
    conformance(&mut before);
    let keys = before.list_keys().unwrap();
    let rows = before.query_usage(&UsageQuery::all()).unwrap();
    before.flush().unwrap();
    drop(before);

    let mut after = RedbStore::open(&path).unwrap();
    assert_eq!(after.list_keys().unwrap(), keys);
    assert_eq!(after.query_usage(&UsageQuery::all()).unwrap(), rows);
    assert!(!rows.is_empty());
}

#[test]
fn redis_store() {
    let Some(server) = RedisServer::start() else { return };
    conformance(&mut RedisStore::open(RedisConfig::new(server.url())).unwrap());
}

#[test]
fn redis_stores_with_other_prefixes_do_not_see_each_other() {
    let Some(server) = RedisServer::start() else { return };
    let mut a = RedisStore::open(RedisConfig::new(server.url())).unwrap();
    let mut b =
        RedisStore::open(RedisConfig { key_prefix: "other:".into(), ..RedisConfig::new(server.url()) }).unwrap();
    a.save_key(&records()[0]).unwrap();
    assert_eq!(a.list_keys().unwrap().len(), 1);
    assert!(b.list_keys().unwrap().is_empty());
    conformance(&mut b);
}
