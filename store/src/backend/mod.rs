//! Where keys and usage are kept: the [`Store`] trait and its three
//! implementations.
//!
//! The control plane owns one `Box<dyn Store>` and is its only caller, so
//! the trait is synchronous and takes `&mut self`: no locks, no runtime, and
//! a blocking call (an fsync, a Redis round trip) stalls only the control
//! plane, never a shard. Shards never see a store; they get key tables and
//! flags from the control plane by message.
//!
//! - [`MemoryStore`]: everything in memory, nothing survives the process.
//!   The default without `[storage]`, and the reference the other two are
//!   tested against.
//! - [`RedbStore`]: one redb file. Each call that writes is one write
//!   transaction (one fsync), so a batch of usage rows costs one commit.
//! - [`RedisStore`]: shared by several corelay instances, with atomic
//!   counters for spend and a reservation primitive for rate-limit leases.
//!
//! Every store must answer the same calls the same way; the integration
//! tests run one suite over all three.

mod memory;
mod redb_store;
mod redis_store;

pub use memory::MemoryStore;
pub use redb_store::RedbStore;
pub use redis_store::{RedisConfig, RedisStore};

use crate::StoreError;
use crate::keys::{BudgetWindow, KeyId, KeyRecord};
use crate::ledger::{UsageQuery, UsageRow};

/// Persistence for the control plane: key records and the usage ledger.
pub trait Store: Send {
    /// The record with this id, revoked or not.
    fn load_key(&mut self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;
    /// Inserts the record, or replaces the one with the same id.
    fn save_key(&mut self, record: &KeyRecord) -> Result<(), StoreError>;
    /// Every record, in id order.
    fn list_keys(&mut self) -> Result<Vec<KeyRecord>, StoreError>;
    /// Marks the key revoked (the record stays, so its usage keeps a name).
    /// False when there is no such key.
    fn revoke_key(&mut self, id: &KeyId) -> Result<bool, StoreError>;
    /// Adds each row's counters to the stored row with the same key, all or
    /// nothing: on an error no row of the batch was applied (the caller
    /// keeps the batch and retries it).
    fn append_usage(&mut self, batch: &[UsageRow]) -> Result<(), StoreError>;
    /// The stored rows `query` selects, in key order (key id, model, hour).
    fn query_usage(&mut self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError>;
    /// What the key spent in the window, in micro-USD: the cost of its
    /// usage rows whose hour lies in the window. Meant for current windows:
    /// [`RedisStore`] keeps a counter per window that expires when the
    /// window ends, so it answers 0 for a window that is over (its usage
    /// rows stay, for [`Store::query_usage`]).
    fn spend_micros(&mut self, key_id: &KeyId, window: &BudgetWindow) -> Result<u64, StoreError>;
    /// Makes everything written so far durable. Every store here commits
    /// each call as it goes, so this is a no-op for them; it is the
    /// shutdown hook a buffering store would need.
    fn flush(&mut self) -> Result<(), StoreError>;
}
