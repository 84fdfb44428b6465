//! The response cache of one shard: whole answers kept under the SHA-256 of
//! what identifies a request, least recently used first out, each for a
//! fixed time.
//!
//! What goes into a key is the gateway's policy ([`key_of`] only hashes the
//! parts it is given, each prefixed by its length so that two different
//! splits of the same bytes never meet). This module only keeps answers:
//! - an entry lives `ttl_ms` from when it was stored, and an expired one is
//!   dropped when it is next asked for;
//! - the entries of one cache weigh at most `bytes_max` (body, content type
//!   and [`ENTRY_OVERHEAD_BYTES`] each): storing past it evicts the least
//!   recently used;
//! - an answer heavier than `entry_bytes_max` is not kept at all.
//!
//! A cache belongs to one thread, and the gateway gives each shard its own,
//! which is why a hit costs no lock. Answers are `Arc`s: a hit can be
//! written out after the cache is borrowed again, and one answer can sit in
//! every shard's cache without being copied ([`ResponseCache::insert`]).
//! Time is an argument (`now_ms`, any monotonic origin shared by the
//! caches), never read here.
//!
//! The least-recently-used order is a doubly linked list threaded through a
//! slab of slots, so a hit, a store and an eviction are each O(1).

use std::collections::HashMap;
use std::sync::Arc;

/// The SHA-256 of a request's identifying parts.
pub type CacheKey = [u8; 32];

/// What one entry costs besides its bytes: its slot, its index entry and
/// the allocations' headers, roughly.
pub const ENTRY_OVERHEAD_BYTES: usize = 160;

/// The SHA-256 of `parts`, each prefixed by its length (8 bytes, little
/// endian).
pub fn key_of(parts: &[&[u8]]) -> CacheKey {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        digest.update(&(part.len() as u64).to_le_bytes());
        digest.update(part);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.finish().as_ref());
    key
}

/// A kept answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Cached {
    pub content_type: Box<[u8]>,
    pub body: Box<[u8]>,
    /// When it was stored (the caller's clock), for the `age` of a hit.
    pub stored_ms: u64,
}

impl Cached {
    fn weight(&self) -> usize {
        self.body.len() + self.content_type.len() + ENTRY_OVERHEAD_BYTES
    }
}

/// The limits of one cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    pub ttl_ms: u64,
    pub bytes_max: usize,
    pub entry_bytes_max: usize,
}

/// What [`ResponseCache::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Kept; this many older entries were evicted to make room.
    Kept { evicted: usize },
    /// Heavier than `entry_bytes_max` (or than the whole cache): not kept.
    TooLarge,
}

/// Marks the end of the list.
const NIL: usize = usize::MAX;

struct Slot {
    key: CacheKey,
    value: Option<Arc<Cached>>,
    /// Toward the most recently used end.
    newer: usize,
    /// Toward the least recently used end.
    older: usize,
}

/// One shard's answers (see the module docs).
pub struct ResponseCache {
    limits: CacheLimits,
    index: HashMap<CacheKey, usize>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    newest: usize,
    oldest: usize,
    bytes: usize,
}

impl ResponseCache {
    pub fn new(limits: CacheLimits) -> ResponseCache {
        ResponseCache {
            limits,
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
            bytes: 0,
        }
    }

    pub fn limits(&self) -> CacheLimits {
        self.limits
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// What the kept entries weigh (see the module docs).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The answer kept under `key`, unless it expired (it is then dropped).
    /// A hit becomes the most recently used entry.
    pub fn get(&mut self, key: &CacheKey, now_ms: u64) -> Option<Arc<Cached>> {
        let &slot = self.index.get(key)?;
        let value = self.slots[slot].value.as_ref().expect("an indexed slot holds a value");
        if now_ms.saturating_sub(value.stored_ms) >= self.limits.ttl_ms {
            self.remove(slot);
            return None;
        }
        let value = value.clone();
        self.unlink(slot);
        self.push_newest(slot);
        Some(value)
    }

    /// Keeps an answer under `key` (replacing what was there), evicting the
    /// least recently used entries until the cache fits its `bytes_max`.
    pub fn put(&mut self, key: CacheKey, content_type: &[u8], body: &[u8], now_ms: u64) -> Stored {
        self.insert(key, Arc::new(Cached { content_type: content_type.into(), body: body.into(), stored_ms: now_ms }))
    }

    /// [`put`](Self::put) for an answer already built, perhaps kept by
    /// another cache too: the bytes are shared, each cache counts them.
    pub fn insert(&mut self, key: CacheKey, value: Arc<Cached>) -> Stored {
        let weight = value.weight();
        if value.body.len() > self.limits.entry_bytes_max || weight > self.limits.bytes_max {
            return Stored::TooLarge;
        }
        if let Some(&old) = self.index.get(&key) {
            self.remove(old);
        }
        let mut evicted = 0;
        while self.bytes + weight > self.limits.bytes_max && self.oldest != NIL {
            self.remove(self.oldest);
            evicted += 1;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Slot { key, value: Some(value), newer: NIL, older: NIL };
                slot
            }
            None => {
                self.slots.push(Slot { key, value: Some(value), newer: NIL, older: NIL });
                self.slots.len() - 1
            }
        };
        self.bytes += weight;
        self.index.insert(key, slot);
        self.push_newest(slot);
        Stored::Kept { evicted }
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.free.clear();
        self.newest = NIL;
        self.oldest = NIL;
        self.bytes = 0;
    }

    fn remove(&mut self, slot: usize) {
        self.unlink(slot);
        let entry = &mut self.slots[slot];
        if let Some(value) = entry.value.take() {
            self.bytes -= value.weight();
        }
        self.index.remove(&entry.key);
        self.free.push(slot);
    }

    fn unlink(&mut self, slot: usize) {
        let (newer, older) = (self.slots[slot].newer, self.slots[slot].older);
        match newer {
            NIL => self.newest = older,
            n => self.slots[n].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.slots[o].newer = newer,
        }
        self.slots[slot].newer = NIL;
        self.slots[slot].older = NIL;
    }

    fn push_newest(&mut self, slot: usize) {
        self.slots[slot].older = self.newest;
        self.slots[slot].newer = NIL;
        match self.newest {
            NIL => self.oldest = slot,
            n => self.slots[n].newer = slot,
        }
        self.newest = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: CacheLimits = CacheLimits { ttl_ms: 1_000, bytes_max: 10_000, entry_bytes_max: 4_000 };

    fn key(n: u8) -> CacheKey {
        key_of(&[&[n]])
    }

    /// The keys from most to least recently used, walking the list both
    /// ways (so a broken link shows).
    fn order(cache: &ResponseCache) -> Vec<CacheKey> {
        let mut forward = Vec::new();
        let mut at = cache.newest;
        while at != NIL {
            forward.push(cache.slots[at].key);
            at = cache.slots[at].older;
        }
        let mut backward = Vec::new();
        let mut at = cache.oldest;
        while at != NIL {
            backward.push(cache.slots[at].key);
            at = cache.slots[at].newer;
        }
        backward.reverse();
        assert_eq!(forward, backward, "the list's two directions disagree");
        assert_eq!(forward.len(), cache.len());
        forward
    }

    #[test]
    fn keys_separate_their_parts() {
        assert_eq!(key_of(&[b"ab", b"c"]), key_of(&[b"ab", b"c"]));
        assert_ne!(key_of(&[b"ab", b"c"]), key_of(&[b"a", b"bc"]));
        assert_ne!(key_of(&[b"abc"]), key_of(&[b"abc", b""]));
    }

    #[test]
    fn a_kept_answer_comes_back_until_it_expires() {
        let mut cache = ResponseCache::new(LIMITS);
        assert_eq!(cache.put(key(1), b"application/json", b"{\"a\":1}", 100), Stored::Kept { evicted: 0 });
        let hit = cache.get(&key(1), 1_099).expect("fresh");
        assert_eq!((&*hit.content_type, &*hit.body, hit.stored_ms), (&b"application/json"[..], &b"{\"a\":1}"[..], 100));
        assert_eq!(cache.get(&key(2), 1_099), None);
        // 1,000 ms after it was stored, it is gone, and its bytes with it.
        assert_eq!(cache.get(&key(1), 1_100), None);
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
    }

    #[test]
    fn storing_again_replaces_and_refreshes() {
        let mut cache = ResponseCache::new(LIMITS);
        cache.put(key(1), b"a", b"old", 0);
        cache.put(key(1), b"a", b"newer", 900);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes(), 1 + 5 + ENTRY_OVERHEAD_BYTES);
        assert_eq!(&*cache.get(&key(1), 1_500).expect("stored at 900").body, b"newer");
    }

    #[test]
    fn the_least_recently_used_go_first() {
        // Room for three entries of 2,000 bytes.
        let mut cache = ResponseCache::new(CacheLimits { bytes_max: 3 * (2_001 + ENTRY_OVERHEAD_BYTES), ..LIMITS });
        let body = vec![b'x'; 2_000];
        for n in 1..=3 {
            assert_eq!(cache.put(key(n), b"a", &body, 0), Stored::Kept { evicted: 0 });
        }
        assert_eq!(order(&cache), vec![key(3), key(2), key(1)]);
        // A hit on 1 makes 2 the oldest, and 2 is what the fourth evicts.
        cache.get(&key(1), 1).unwrap();
        assert_eq!(order(&cache), vec![key(1), key(3), key(2)]);
        assert_eq!(cache.put(key(4), b"a", &body, 2), Stored::Kept { evicted: 1 });
        assert_eq!(order(&cache), vec![key(4), key(1), key(3)]);
        assert!(cache.get(&key(2), 3).is_none());
        assert_eq!(cache.bytes(), 3 * (2_001 + ENTRY_OVERHEAD_BYTES));
        // A bigger one evicts as many as it needs.
        let big = vec![b'y'; 4_000];
        assert_eq!(cache.put(key(5), b"a", &big, 4), Stored::Kept { evicted: 2 });
        assert_eq!(order(&cache), vec![key(5), key(4)]);
        assert!(cache.bytes() <= cache.limits().bytes_max);
    }

    #[test]
    fn one_answer_sits_in_two_caches_without_a_copy() {
        let (mut a, mut b) = (ResponseCache::new(LIMITS), ResponseCache::new(LIMITS));
        let answer =
            Arc::new(Cached { content_type: b"a".as_slice().into(), body: b"body".as_slice().into(), stored_ms: 5 });
        assert_eq!(a.insert(key(1), answer.clone()), Stored::Kept { evicted: 0 });
        assert_eq!(b.insert(key(1), answer.clone()), Stored::Kept { evicted: 0 });
        assert!(Arc::ptr_eq(&a.get(&key(1), 6).unwrap(), &b.get(&key(1), 6).unwrap()));
        // Each cache counts it; expiry still runs from when it was first kept.
        assert_eq!(a.bytes(), b.bytes());
        assert!(b.get(&key(1), 1_005).is_none());
        assert!(a.get(&key(1), 1_004).is_some());
    }

    #[test]
    fn answers_too_heavy_are_not_kept() {
        let mut cache = ResponseCache::new(LIMITS);
        cache.put(key(1), b"a", b"small", 0);
        assert_eq!(cache.put(key(2), b"a", &vec![0; 4_001], 0), Stored::TooLarge);
        // Nothing was evicted for it.
        assert_eq!(order(&cache), vec![key(1)]);
        let tiny = ResponseCache::new(CacheLimits { bytes_max: 100, ..LIMITS }).put(key(3), b"a", b"b", 0);
        assert_eq!(tiny, Stored::TooLarge);
    }

    #[test]
    fn slots_are_reused_and_clear_empties() {
        let mut cache = ResponseCache::new(LIMITS);
        for round in 0..50u64 {
            let n = (round % 5) as u8;
            cache.put(key(n), b"a", b"body", round * 300);
            let _ = cache.get(&key(n.wrapping_sub(1) % 5), round * 300);
            order(&cache);
        }
        // Expired entries were replaced in place: the slab never grew past
        // the entries alive at once.
        assert!(cache.slots.len() <= 5, "{} slots", cache.slots.len());
        cache.clear();
        assert_eq!((cache.len(), cache.bytes(), order(&cache)), (0, 0, vec![]));
        assert_eq!(cache.put(key(9), b"a", b"b", 0), Stored::Kept { evicted: 0 });
    }
}
