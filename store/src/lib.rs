//! Tenancy state for corelay: virtual keys, quotas, the usage ledger and the
//! response cache, with redb and Redis persistence.
//!
//! Nothing lives here yet: the data-plane issue keeps its `[[keys]]` table
//! and counters in the gateway's shard state. The tenancy issue fills this
//! crate. Its rules are fixed already: it never depends on monoio or on the
//! gateway, and its persistence runs on the control plane only, so shards
//! never wait on a disk or a network.
