//! Tenancy state for corelay: virtual keys, quotas, the usage ledger and the
//! response cache, with redb and Redis persistence.
//!
//! Its rules: it never depends on monoio or on the gateway, and its state is
//! kept by the gateway's control plane only, so shards never wait on a disk,
//! a network or a lock.
//!
//! - [`quota`]: lease accounting for per-minute limits across shards.

pub mod quota;
