//! The metadata database: small records by key in a redb file, one table per kind.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::Error;

/// A redb database of `table → key → bytes` records.
#[derive(Debug)]
pub struct MetadataDb {
    db: Database,
}

impl MetadataDb {
    /// Opens (creating) the database file.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Ok(Self {
            db: Database::create(path)?,
        })
    }

    /// The record under `key` in `table`, if any.
    pub fn get(&self, table: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let definition: TableDefinition<&str, &[u8]> = TableDefinition::new(table);
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(definition) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Stores `value` under `key` in `table` (durably, in one transaction).
    pub fn put(&self, table: &str, key: &str, value: &[u8]) -> Result<(), Error> {
        let definition: TableDefinition<&str, &[u8]> = TableDefinition::new(table);
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(definition)?;
            table.insert(key, value)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Stores many records in one transaction (one commit, however many).
    pub fn put_many(&self, table: &str, records: &[(String, Vec<u8>)]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let definition: TableDefinition<&str, &[u8]> = TableDefinition::new(table);
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(definition)?;
            for (key, value) in records {
                table.insert(key.as_str(), value.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Stores records of several tables in one transaction: all of them land, or none
    /// (a process killed in between leaves neither half).
    pub fn put_batch(&self, records: &[(&str, &str, &[u8])]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        for (table, key, value) in records {
            let definition: TableDefinition<&str, &[u8]> = TableDefinition::new(table);
            let mut table = txn.open_table(definition)?;
            table.insert(*key, *value)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Rewrites records of `table` in one transaction (one sync however many): `update`
    /// gets each key's current value, if any, and returns the new one (`None` leaves
    /// the record as it is).
    pub fn update_many<'k>(
        &self,
        table: &str,
        keys: impl IntoIterator<Item = &'k str>,
        mut update: impl FnMut(&str, Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<(), Error> {
        let definition: TableDefinition<&str, &[u8]> = TableDefinition::new(table);
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(definition)?;
            for key in keys {
                let current = table.get(key)?.map(|v| v.value().to_vec());
                if let Some(new) = update(key, current.as_deref()) {
                    table.insert(key, new.as_slice())?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Removes the record under `key`, if any.
    pub fn remove(&self, table: &str, key: &str) -> Result<(), Error> {
        let definition: TableDefinition<&str, &[u8]> = TableDefinition::new(table);
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(definition)?;
            table.remove(key)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Every `(key, value)` of a table.
    pub fn entries(&self, table: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let definition: TableDefinition<&str, &[u8]> = TableDefinition::new(table);
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(definition) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        {
            let db = MetadataDb::open(&path).unwrap();
            assert_eq!(db.get("t", "k").unwrap(), None);
            db.put("t", "k", b"v").unwrap();
        }
        let db = MetadataDb::open(&path).unwrap();
        assert_eq!(db.get("t", "k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(db.entries("t").unwrap().len(), 1);
        db.remove("t", "k").unwrap();
        assert_eq!(db.get("t", "k").unwrap(), None);
        db.put_batch(&[("t", "a", b"1"), ("u", "b", b"2")]).unwrap();
        assert_eq!(db.get("t", "a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(db.get("u", "b").unwrap().as_deref(), Some(&b"2"[..]));
        db.update_many("t", ["a", "new", "left"], |key, old| match key {
            "left" => None,
            _ => Some([old.unwrap_or(b"0"), b"+"].concat()),
        })
        .unwrap();
        assert_eq!(db.get("t", "a").unwrap().as_deref(), Some(&b"1+"[..]));
        assert_eq!(db.get("t", "new").unwrap().as_deref(), Some(&b"0+"[..]));
        assert_eq!(db.get("t", "left").unwrap(), None);
    }
}
