//! The store's one error type.
//!
//! Every fallible call of this crate returns [`StoreError`]. The control
//! plane needs to tell two things apart: a backend that is unreachable for
//! now (Redis down, a connection reset: try again on the next tick, keep the
//! batch) and data that can never be read (a corrupt record: report it, do
//! not retry). [`StoreError::is_unavailable`] says which.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database failed (I/O, a full disk, a corrupt file).
    #[error("redb: {0}")]
    Redb(#[from] redb::Error),
    /// Redis failed or could not be reached. `connection_lost` is true when
    /// the connection was dropped because of it; the next call reconnects.
    #[error("redis: {source}")]
    Redis {
        #[source]
        source: redis::RedisError,
        connection_lost: bool,
    },
    /// A stored value that this version cannot read.
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// A key id that is not `[A-Za-z0-9_-]{1,64}`.
    #[error("invalid key id `{0}`: 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`")]
    InvalidKeyId(String),
    /// A configured price that is negative, not a number, or implausibly
    /// high (see `pricing::PRICE_USD_PER_MTOK_MAX`).
    #[error("invalid price `{field}` = {value}: USD per million tokens, from 0 to 100000")]
    InvalidPrice { field: &'static str, value: f64 },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

impl StoreError {
    /// True when the backend could not be reached and a later retry may
    /// succeed with the same input.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Redis { connection_lost, .. } => *connection_lost,
            StoreError::Redb(redb::Error::Io(_)) => true,
            _ => false,
        }
    }

    pub(crate) fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt { what, detail: detail.to_string() }
    }
}

// redb has one error type per kind of call; each converts into `redb::Error`.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::Redb(e.into())
            }
        }
    )*};
}
from_redb!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);
