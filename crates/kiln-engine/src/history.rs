//! The builds this engine ran: a record each in the metadata database, the newest
//! and the pinned ones kept (BuildKit's history keeps 50 by default).

use std::sync::Mutex;
use std::time::SystemTime;

use kiln_api::build::{BuildResult, Event, Export};
use kiln_api::history::{HistoryRecord, StepCounter};

use crate::{Engine, Error};

const HISTORY_TABLE: &str = "build-history-v1";

/// How many unpinned records are kept (BuildKit's `history.maxEntries` default).
const MAX_ENTRIES: usize = 50;

impl Engine {
    /// Keeps a build's record (replacing an earlier one of the same id); the oldest
    /// unpinned records beyond the limit go.
    pub fn record_history(&self, record: &HistoryRecord) -> Result<(), Error> {
        let db = self.worker.metadata();
        let json = serde_json::to_vec(record).map_err(|e| Error::Usage(e.to_string()))?;
        db.put(HISTORY_TABLE, &record.id, &json)
            .map_err(Error::History)?;
        let beyond: Vec<String> = self
            .history()?
            .into_iter()
            .filter(|r| !r.pinned)
            .skip(MAX_ENTRIES)
            .map(|r| r.id)
            .collect();
        for id in beyond {
            db.remove(HISTORY_TABLE, &id).map_err(Error::History)?;
        }
        Ok(())
    }

    /// Runs a build, then keeps its record: its steps, exporters and their answer, or
    /// its error. A record that cannot be kept does not fail the build (it warns).
    pub(crate) fn recorded(
        &self,
        mut record: HistoryRecord,
        outputs: &[Export],
        progress: &(dyn Fn(Event) + Sync),
        build: impl FnOnce(&(dyn Fn(Event) + Sync)) -> Result<BuildResult, Error>,
    ) -> Result<BuildResult, Error> {
        let steps = Mutex::new(StepCounter::default());
        let mut result = build(&|event| {
            steps
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .observe(&event);
            progress(event);
        });
        record.completed_at = Some(SystemTime::now());
        record.steps = steps
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .counts();
        record.exporters = outputs
            .iter()
            .map(|e| (e.kind.clone(), e.attrs.clone()))
            .collect();
        match &result {
            Ok(result) => record.exporter_response = result.exporter_response(),
            Err(error) => record.error = Some(kiln_oci::report::chain(error)),
        }
        if let (Err(error), Ok(result)) = (self.record_history(&record), &mut result) {
            result
                .warnings
                .push(format!("the build's history record was not kept: {error}"));
        }
        result
    }

    /// Every kept record, newest first.
    pub fn history(&self) -> Result<Vec<HistoryRecord>, Error> {
        let mut records: Vec<HistoryRecord> = self
            .worker
            .metadata()
            .entries(HISTORY_TABLE)
            .map_err(Error::History)?
            .into_iter()
            // A record this version cannot read is left out, not an error.
            .filter_map(|(_, json)| serde_json::from_slice(&json).ok())
            .collect();
        records.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(records)
    }

    /// Pins or unpins a record, or deletes it; the record as it was, if there was one.
    pub fn update_history(
        &self,
        id: &str,
        pinned: bool,
        delete: bool,
    ) -> Result<Option<HistoryRecord>, Error> {
        let Some(record) = self.history()?.into_iter().find(|r| r.id == id) else {
            return Ok(None);
        };
        let db = self.worker.metadata();
        if delete {
            db.remove(HISTORY_TABLE, id).map_err(Error::History)?;
        } else if record.pinned != pinned {
            let pinned = HistoryRecord {
                pinned,
                ..record.clone()
            };
            let json = serde_json::to_vec(&pinned).map_err(|e| Error::Usage(e.to_string()))?;
            db.put(HISTORY_TABLE, id, &json).map_err(Error::History)?;
        }
        Ok(Some(record))
    }
}
