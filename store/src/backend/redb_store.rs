//! [`RedbStore`]: keys and usage in one redb file.
//!
//! Two tables, each named with its format version so a later layout gets
//! new tables instead of misreading old ones:
//!
//! - `keys_v1`: key id → the record's JSON ([`KeyRecord::to_bytes`]);
//! - `usage_v1`: (key id, model, hour start) → the seven counters, in
//!   [`Counters::to_array`]'s order. The tuple key sorts by key id first,
//!   so one key's rows are one range scan.
//!
//! Every call that writes is one write transaction committed with redb's
//! default durability (fsync on commit), so a batch of usage rows costs one
//! commit however many rows it has, and a batch is applied whole or not at
//! all. redb allows one writer at a time and blocks on `begin_write`; the
//! control plane is the only writer, so that never waits. Measured on the
//! project's VM (`../shared/research/tech.md`): 1,000 records per commit
//! run at about 880k records/s, one record per commit at 4.3k commits/s;
//! hence batches.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::Store;
use crate::StoreError;
use crate::keys::{BudgetWindow, KeyId, KeyRecord};
use crate::ledger::{Counters, UsageKey, UsageQuery, UsageRow};

const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys_v1");
type UsageTableKey = (&'static str, &'static str, u64);
const USAGE: TableDefinition<UsageTableKey, [u64; Counters::LEN]> = TableDefinition::new("usage_v1");

pub struct RedbStore {
    db: Database,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbStore")
    }
}

impl RedbStore {
    /// Opens the database at `path`, creating the file and its tables if
    /// they do not exist.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        let db = Database::create(path)?;
        // Create both tables up front so read transactions never meet a
        // missing table.
        let w = db.begin_write()?;
        w.open_table(KEYS)?;
        w.open_table(USAGE)?;
        w.commit()?;
        Ok(RedbStore { db })
    }
}

fn usage_row(key: (&str, &str, u64), counters: [u64; Counters::LEN]) -> Result<UsageRow, StoreError> {
    let (id, model, hour_unix) = key;
    let key_id = KeyId::parse(id).map_err(|e| StoreError::corrupt("usage row", e))?;
    Ok(UsageRow {
        key: UsageKey { key_id, model: model.to_owned(), hour_unix },
        counters: Counters::from_array(counters),
    })
}

impl Store for RedbStore {
    fn load_key(&mut self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let r = self.db.begin_read()?;
        let table = r.open_table(KEYS)?;
        let Some(bytes) = table.get(id.as_str())? else { return Ok(None) };
        KeyRecord::from_bytes(bytes.value()).map(Some)
    }

    fn save_key(&mut self, record: &KeyRecord) -> Result<(), StoreError> {
        let w = self.db.begin_write()?;
        w.open_table(KEYS)?.insert(record.id.as_str(), record.to_bytes().as_slice())?;
        w.commit()?;
        Ok(())
    }

    fn list_keys(&mut self) -> Result<Vec<KeyRecord>, StoreError> {
        let r = self.db.begin_read()?;
        let table = r.open_table(KEYS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, bytes) = entry?;
            out.push(KeyRecord::from_bytes(bytes.value())?);
        }
        Ok(out)
    }

    fn revoke_key(&mut self, id: &KeyId) -> Result<bool, StoreError> {
        let w = self.db.begin_write()?;
        {
            let mut table = w.open_table(KEYS)?;
            let record = match table.get(id.as_str())? {
                Some(bytes) => KeyRecord::from_bytes(bytes.value())?,
                None => return Ok(false), // dropping `w` aborts it: no commit, no fsync
            };
            let revoked = KeyRecord { revoked: true, ..record };
            table.insert(id.as_str(), revoked.to_bytes().as_slice())?;
        }
        w.commit()?;
        Ok(true)
    }

    fn append_usage(&mut self, batch: &[UsageRow]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let w = self.db.begin_write()?;
        {
            let mut table = w.open_table(USAGE)?;
            for row in batch {
                let key = (row.key.key_id.as_str(), row.key.model.as_str(), row.key.hour_unix);
                let mut counters = match table.get(key)? {
                    Some(v) => Counters::from_array(v.value()),
                    None => Counters::default(),
                };
                counters.add(&row.counters);
                table.insert(key, counters.to_array())?;
            }
        }
        // An error before this point drops `w`, which aborts the transaction:
        // the batch is all or nothing.
        w.commit()?;
        Ok(())
    }

    fn query_usage(&mut self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        let r = self.db.begin_read()?;
        let table = r.open_table(USAGE)?;
        let mut out = Vec::new();
        let entries = match &query.key_id {
            // One key's rows are contiguous: start at its first and stop at
            // the first row of another key.
            Some(id) => table.range((id.as_str(), "", 0u64)..)?,
            None => table.iter()?,
        };
        for entry in entries {
            let (k, v) = entry?;
            let k = k.value();
            if query.key_id.as_ref().is_some_and(|id| id.as_str() != k.0) {
                break;
            }
            let row = usage_row(k, v.value())?;
            if query.matches(&row.key) {
                out.push(row);
            }
        }
        Ok(out)
    }

    fn spend_micros(&mut self, key_id: &KeyId, window: &BudgetWindow) -> Result<u64, StoreError> {
        let rows = self.query_usage(&UsageQuery::window(key_id.clone(), window))?;
        Ok(crate::ledger::totals(&rows).cost_micros)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        // Every write was committed durably when it was made.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{BudgetPeriod, digest};

    /// A path under the system temp directory, removed when dropped.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str) -> TempFile {
            let unique = format!("corelay-store-{}-{name}-{}", std::process::id(), KeyId::generate().unwrap());
            TempFile(std::env::temp_dir().join(unique))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn row(id: &str, model: &str, at: u64, cost: u64) -> UsageRow {
        UsageRow {
            key: UsageKey::new(KeyId::parse(id).unwrap(), model, at),
            counters: Counters { prompt_tokens: 10, requests: 1, cost_micros: cost, ..Counters::default() },
        }
    }

    #[test]
    fn everything_survives_a_reopen() {
        let file = TempFile::new("reopen");
        let id = KeyId::parse("key_1").unwrap();
        let mut record = KeyRecord::new(id.clone(), "one", digest("secret-1"), 10);
        record.rpm = Some(5);
        {
            let mut s = RedbStore::open(&file.0).unwrap();
            s.save_key(&record).unwrap();
            s.append_usage(&[row("key_1", "gpt-4o", 3_600, 7), row("key_1", "gpt-4o", 3_700, 8)]).unwrap();
            s.flush().unwrap();
        }
        let mut s = RedbStore::open(&file.0).unwrap();
        assert_eq!(s.load_key(&id).unwrap(), Some(record));
        let rows = s.query_usage(&UsageQuery::all()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].counters.cost_micros, 15);
        assert_eq!(rows[0].counters.requests, 2);
        assert_eq!(s.spend_micros(&id, &BudgetPeriod::Total.window(0)).unwrap(), 15);
    }

    #[test]
    fn a_key_range_scan_stops_at_the_next_key() {
        let file = TempFile::new("range");
        let mut s = RedbStore::open(&file.0).unwrap();
        // "a" sorts right before "a-b" and "ab": the scan for "a" must not run into them.
        let batch = [row("a", "m", 0, 1), row("a-b", "m", 0, 2), row("ab", "", 0, 4), row("b", "m", 0, 8)];
        s.append_usage(&batch).unwrap();
        let q = |id: &str| UsageQuery::all().key(KeyId::parse(id).unwrap());
        let cost = |s: &mut RedbStore, id: &str| crate::ledger::totals(&s.query_usage(&q(id)).unwrap()).cost_micros;
        assert_eq!(cost(&mut s, "a"), 1);
        assert_eq!(cost(&mut s, "a-b"), 2);
        assert_eq!(cost(&mut s, "ab"), 4);
        assert_eq!(cost(&mut s, "b"), 8);
        assert_eq!(cost(&mut s, "c"), 0);
    }
}
