//! Tenancy state for corelay: virtual keys, prices, the usage ledger, and
//! their persistence in memory, redb or Redis.
//!
//! - [`keys`]: a virtual key's record ([`KeyRecord`]: id, name, SHA-256 of
//!   the secret, model allowlist, RPM/TPM limits, budget, expiry,
//!   metadata), secret generation and checking, and the UTC calendar of
//!   budget periods.
//! - [`pricing`]: USD prices per million tokens, a built-in table with
//!   config overrides ([`PriceTable`]), and [`pricing::cost_micros`], the
//!   integer cost of a request's [`Usage`].
//! - [`ledger`]: usage counters per key, model and hour ([`Ledger`] in
//!   memory), with queries by key, model and time, and spend per budget
//!   window.
//! - [`quota`]: lease accounting for per-minute limits across the shards
//!   of one instance (the control plane's book of grants).
//! - [`cache`]: one shard's response cache ([`ResponseCache`]): answers by
//!   the SHA-256 of a request's identifying parts, least recently used out
//!   first, each for a fixed time.
//! - [`backend`]: the [`Store`] trait the control plane persists through,
//!   and its implementations [`MemoryStore`], [`RedbStore`] and
//!   [`RedisStore`] (which also holds the atomic rate-limit reservation
//!   used to carve leases across instances).
//!
//! What this crate deliberately does not do: it never depends on monoio,
//! on any async runtime, or on another workspace crate; it reads no clock
//! (every time is an argument, in unix seconds); and its persistence is
//! synchronous because it runs only on the gateway's control-plane thread.
//! Shards never call a [`Store`], so they never wait on a disk or a
//! network. The lease protocol between shards and the control plane
//! (DESIGN.md, "Keys, limits and budgets across cores") builds on this
//! crate's counters and on [`RedisStore::reserve`] across instances.
//!
//! Units are in names: `_unix` is seconds since 1970 UTC, `_micros` is
//! micro-USD, `_per_mtok` is per million tokens.

pub mod backend;
pub mod cache;
mod error;
pub mod keys;
pub mod ledger;
pub mod pricing;
pub mod quota;

pub use backend::{MemoryStore, RedbStore, RedisConfig, RedisStore, Store};
pub use cache::{CacheKey, CacheLimits, Cached, ResponseCache};
pub use error::StoreError;
pub use keys::{Budget, BudgetPeriod, BudgetWindow, KeyId, KeyRecord, KeyState, ModelAllowlist, Secret};
pub use ledger::{Counters, Ledger, UsageKey, UsageQuery, UsageRow};
pub use pricing::{Price, PriceTable, Usage};
