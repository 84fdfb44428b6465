//! [`MemoryStore`]: keys and usage in memory, lost when the process ends.
//!
//! It is what corelay runs with when no storage is configured (keys then
//! come from the config file only), and the reference implementation the
//! persistent stores are tested against.

use std::collections::BTreeMap;

use super::Store;
use crate::StoreError;
use crate::keys::{BudgetWindow, KeyId, KeyRecord};
use crate::ledger::{Ledger, UsageQuery, UsageRow};

#[derive(Debug, Default)]
pub struct MemoryStore {
    keys: BTreeMap<KeyId, KeyRecord>,
    ledger: Ledger,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl Store for MemoryStore {
    fn load_key(&mut self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.keys.get(id).cloned())
    }

    fn save_key(&mut self, record: &KeyRecord) -> Result<(), StoreError> {
        self.keys.insert(record.id.clone(), record.clone());
        Ok(())
    }

    fn list_keys(&mut self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(self.keys.values().cloned().collect())
    }

    fn revoke_key(&mut self, id: &KeyId) -> Result<bool, StoreError> {
        Ok(self.keys.get_mut(id).map(|r| r.revoked = true).is_some())
    }

    fn append_usage(&mut self, batch: &[UsageRow]) -> Result<(), StoreError> {
        self.ledger.merge_all(batch);
        Ok(())
    }

    fn query_usage(&mut self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        Ok(self.ledger.query(query))
    }

    fn spend_micros(&mut self, key_id: &KeyId, window: &BudgetWindow) -> Result<u64, StoreError> {
        Ok(self.ledger.spend_micros(key_id, window))
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{BudgetPeriod, digest};
    use crate::ledger::{Counters, UsageKey};

    #[test]
    fn keys_and_usage_round_trip() {
        let mut s = MemoryStore::new();
        let id = KeyId::parse("k1").unwrap();
        let record = KeyRecord::new(id.clone(), "one", digest("secret-1"), 10);
        assert_eq!(s.load_key(&id).unwrap(), None);
        assert!(!s.revoke_key(&id).unwrap());
        s.save_key(&record).unwrap();
        assert_eq!(s.load_key(&id).unwrap().as_ref(), Some(&record));
        assert!(s.revoke_key(&id).unwrap());
        assert!(s.list_keys().unwrap()[0].revoked);

        let row = UsageRow {
            key: UsageKey::new(id.clone(), "gpt-4o", 7_200),
            counters: Counters { requests: 1, cost_micros: 5, ..Counters::default() },
        };
        s.append_usage(&[row.clone(), row]).unwrap();
        let rows = s.query_usage(&UsageQuery::all()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].counters.requests, 2);
        assert_eq!(s.spend_micros(&id, &BudgetPeriod::Daily.window(7_200)).unwrap(), 10);
        s.flush().unwrap();
    }
}
