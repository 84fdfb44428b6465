//! `RedisStore`'s own primitives against a real redis-server: rate-limit
//! reservations (atomic under concurrency, expiring, releasable), spend
//! counters that expire with their window, and a connection that is lost
//! and found again.

use std::time::{SystemTime, UNIX_EPOCH};

use store::keys::digest;
use store::{BudgetPeriod, Counters, KeyId, KeyRecord, RedisConfig, RedisStore, Store, UsageKey, UsageQuery, UsageRow};

use crate::support::RedisServer;

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn open(server: &RedisServer) -> RedisStore {
    RedisStore::open(RedisConfig::new(server.url())).unwrap()
}

#[test]
fn concurrent_reservers_never_get_more_than_the_limit() {
    let Some(server) = RedisServer::start() else { return };
    const LIMIT: u64 = 1_000;
    const THREADS: u64 = 8;
    let window_end = now_unix() + 600;
    let granted: Vec<(u64, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let mut store = open(&server);
                scope.spawn(move || {
                    // Each thread asks for 1 to 8 units at a time until refused.
                    let (mut total, mut calls) = (0, 0);
                    loop {
                        let want = 1 + (t + calls) % 8;
                        let grant = store.reserve("key_a:1700000000", window_end, want, LIMIT).unwrap();
                        assert!(grant <= want, "granted {grant} for {want}");
                        calls += 1;
                        if grant == 0 {
                            return (total, calls);
                        }
                        total += grant;
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: u64 = granted.iter().map(|(g, _)| g).sum();
    assert_eq!(total, LIMIT, "every unit granted once, none twice: {granted:?}");
    assert!(granted.iter().filter(|(g, _)| *g > 0).count() > 1, "the threads really competed: {granted:?}");
    let mut store = open(&server);
    assert_eq!(store.reserved("key_a:1700000000").unwrap(), LIMIT);
    assert_eq!(store.reserve("key_a:1700000000", window_end, 1, LIMIT).unwrap(), 0);
    // A limit lowered below what was granted grants nothing and takes nothing back.
    assert_eq!(store.reserve("key_a:1700000000", window_end, 5, 10).unwrap(), 0);
    assert_eq!(store.reserved("key_a:1700000000").unwrap(), LIMIT);
}

#[test]
fn reservations_expire_at_the_window_end() {
    let Some(server) = RedisServer::start() else { return };
    let mut store = open(&server);
    let now = now_unix();
    assert_eq!(store.reserve("w1", now + 100, 3, 10).unwrap(), 3);
    let ttl = store.reserved_ttl_s("w1").unwrap().unwrap();
    assert!((95..=100).contains(&ttl), "ttl {ttl}");
    // Each reservation sets the expiry again (the end is the same window's).
    assert_eq!(store.reserve("w1", now + 200, 3, 10).unwrap(), 3);
    assert!(store.reserved_ttl_s("w1").unwrap().unwrap() > 150);
    // A window that has already ended leaves no counter behind.
    assert_eq!(store.reserve("w0", now - 1, 4, 10).unwrap(), 4);
    assert_eq!(store.reserved("w0").unwrap(), 0);
    assert_eq!(store.reserved_ttl_s("w0").unwrap(), None);
    // A limit of 0 grants nothing and creates nothing.
    assert_eq!(store.reserve("w2", now + 100, 4, 0).unwrap(), 0);
    assert_eq!(store.reserved_ttl_s("w2").unwrap(), None);
}

#[test]
fn released_units_can_be_reserved_again() {
    let Some(server) = RedisServer::start() else { return };
    let mut store = open(&server);
    let end = now_unix() + 300;
    assert_eq!(store.reserve("r", end, 10, 10).unwrap(), 10);
    assert_eq!(store.reserve("r", end, 1, 10).unwrap(), 0);
    assert_eq!(store.release("r", 4).unwrap(), 4);
    assert_eq!(store.reserved("r").unwrap(), 6);
    assert_eq!(store.reserve("r", end, 5, 10).unwrap(), 4, "only what was released");
    // Releasing more than was reserved stops at zero.
    assert_eq!(store.release("r", 1_000).unwrap(), 10);
    assert_eq!(store.reserved("r").unwrap(), 0);
    assert!(store.reserved_ttl_s("r").unwrap().is_some(), "a release keeps the expiry");
    // Releasing into a counter that is gone (expired) creates none without expiry.
    assert_eq!(store.release("gone", 3).unwrap(), 0);
    assert_eq!(store.reserved_ttl_s("gone").unwrap(), None);
    assert_eq!(store.reserved("gone").unwrap(), 0);
}

#[test]
fn spend_counters_expire_with_their_window() {
    let Some(server) = RedisServer::start() else { return };
    let mut store = open(&server);
    let key = KeyId::parse("key_spend").unwrap();
    let now = now_unix();
    let row = |at: u64| UsageRow {
        key: UsageKey::new(key.clone(), "gpt-4o", at),
        counters: Counters { requests: 1, cost_micros: 100, ..Counters::default() },
    };
    // One row today, one 40 days ago: the old windows have ended.
    store.append_usage(&[row(now), row(now - 40 * 86_400)]).unwrap();
    assert_eq!(store.spend_micros(&key, &BudgetPeriod::Daily.window(now)).unwrap(), 100);
    assert_eq!(store.spend_micros(&key, &BudgetPeriod::Monthly.window(now)).unwrap(), 100);
    assert_eq!(store.spend_micros(&key, &BudgetPeriod::Total.window(now)).unwrap(), 200);
    assert_eq!(store.spend_micros(&key, &BudgetPeriod::Daily.window(now - 40 * 86_400)).unwrap(), 0);
    // The usage rows themselves are kept.
    assert_eq!(store.query_usage(&UsageQuery::all().key(key)).unwrap().len(), 2);
}

#[test]
fn a_killed_redis_gives_errors_and_a_restarted_one_works_with_the_same_client() {
    let Some(mut server) = RedisServer::start() else { return };
    let mut store = open(&server);
    let end = now_unix() + 300;
    let record = KeyRecord::new(KeyId::parse("key_k").unwrap(), "k", digest("secret-k"), 0);
    store.save_key(&record).unwrap();
    assert_eq!(store.reserve("c", end, 2, 10).unwrap(), 2);

    server.kill();
    // Every kind of call fails with an error value, and says Redis is unavailable.
    let errors = [
        store.reserve("c", end, 2, 10).unwrap_err(),
        store.release("c", 1).unwrap_err(),
        store.load_key(&record.id).unwrap_err(),
        store.list_keys().unwrap_err(),
        store.save_key(&record).unwrap_err(),
        store
            .append_usage(&[UsageRow { key: UsageKey::new(record.id.clone(), "m", 0), counters: Counters::default() }])
            .unwrap_err(),
        store.ping().unwrap_err(),
    ];
    for e in &errors {
        assert!(e.is_unavailable(), "{e}");
    }

    server.restart();
    // The same client connects again on its next call. The new server is
    // empty (nothing persists in these tests).
    store.ping().unwrap();
    assert_eq!(store.load_key(&record.id).unwrap(), None);
    assert_eq!(store.reserve("c", end, 2, 10).unwrap(), 2);
    store.save_key(&record).unwrap();
    assert_eq!(store.list_keys().unwrap(), vec![record]);
}

#[test]
fn a_server_error_is_reported_and_is_not_a_lost_connection() {
    let Some(server) = RedisServer::start() else { return };
    // Two prefixes chosen so that a reservation counter of one store is the
    // key-record hash of the other: GET on a hash is a WRONGTYPE error.
    let mut records =
        RedisStore::open(RedisConfig { key_prefix: "limit:".into(), ..RedisConfig::new(server.url()) }).unwrap();
    records.save_key(&KeyRecord::new(KeyId::parse("x").unwrap(), "x", digest("secret-x"), 0)).unwrap();
    let mut limits =
        RedisStore::open(RedisConfig { key_prefix: String::new(), ..RedisConfig::new(server.url()) }).unwrap();
    let err = limits.reserve("key:x", now_unix() + 60, 1, 1).unwrap_err();
    assert!(!err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    assert_eq!(limits.reserve("other", now_unix() + 60, 1, 1).unwrap(), 1);
}
