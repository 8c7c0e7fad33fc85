//! Disk usage and pruning of the build cache, in BuildKit's record model: every
//! snapshot layer is a record (type, description, creation, last use, size with its
//! blobs), and so is every cache mount. `prune` removes records, least recently used
//! first when it keeps some storage, together with the layers built on them, the
//! cache entries that named them and the blobs only they used.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fs_err as fs;
use serde::{Deserialize, Serialize};

use crate::source::image::{CHAINS_TABLE, LAYERS_TABLE};
use crate::{CACHE_TABLE, Error, LayerInfo, Ref, Worker};

const USAGE_TABLE: &str = "usage";

/// The record type of layers made by ops and pulls (BuildKit's `regular`).
pub(crate) const REGULAR: &str = "regular";
/// The record type of a local source's snapshot.
pub(crate) const SOURCE_LOCAL: &str = "source.local";
/// The record type of a cache mount (`RUN --mount=type=cache`).
const CACHE_MOUNT: &str = "exec.cachemount";
/// The record type of blobs no layer owns (image configs, manifests).
const INTERNAL: &str = "internal";

/// What is remembered of a layer's use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Usage {
    kind: String,
    description: String,
    created: i64,
    last_used: i64,
    count: u64,
    /// The layer's bytes on disk, measured once when it was made (layers do not change
    /// afterwards), so `du`, `prune` and GC do not walk every layer each time.
    #[serde(default)]
    size: Option<u64>,
}

impl Usage {
    fn used(&mut self, now: i64, times: u64) {
        if self.kind.is_empty() {
            self.kind = REGULAR.to_owned();
        }
        self.last_used = now;
        self.count += times;
    }
}

/// One build-cache record, as `du` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRecord {
    /// Its id (a layer's number, a cache mount's key, or `content`).
    pub id: String,
    /// `regular`, `source.local`, `exec.cachemount` or `internal`.
    pub kind: String,
    /// What made it (the step's name).
    pub description: String,
    /// Bytes on disk (blocks), its blobs included.
    pub size: u64,
    /// When it was made (Unix seconds).
    pub created: i64,
    /// When a build last used it (Unix seconds).
    pub last_used: i64,
    /// How many builds used it.
    pub usage_count: u64,
    /// The layers under it, nearest last.
    pub parents: Vec<String>,
}

/// Which records `prune` removes.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Also internal records (`--all`).
    pub all: bool,
    /// Keep this many bytes, removing the least recently used first (0: remove all).
    pub keep_storage: u64,
    /// `--filter`s, all of which a record must match.
    pub filters: Vec<PruneFilter>,
}

/// A `--filter` of BuildKit's prune and du: `type==X`, `type!=X`, `id==X`,
/// `description~=X`, `until=DURATION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PruneFilter {
    /// The record type is (or is not) this.
    Type {
        /// Whether it must equal (`==`) or differ (`!=`).
        equal: bool,
        /// The type.
        kind: String,
    },
    /// The record's id.
    Id(String),
    /// Its description contains this.
    Description(String),
    /// Last used longer ago than this.
    Until(Duration),
}

impl PruneFilter {
    /// Parses a filter as buildx passes it.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = || {
            Error::Unsupported(format!(
                "invalid filter {text:?}: use type==X, type!=X, id==X, description~=X or until=DURATION"
            ))
        };
        let (key, op, value) = ["!=", "~=", "==", "="]
            .iter()
            .find_map(|op| text.split_once(op).map(|(k, v)| (k.trim(), *op, v.trim())))
            .ok_or_else(bad)?;
        Ok(match (key, op) {
            ("type", "!=") => Self::Type {
                equal: false,
                kind: value.to_owned(),
            },
            ("type", "==" | "=") => Self::Type {
                equal: true,
                kind: value.to_owned(),
            },
            ("id", "==" | "=") => Self::Id(value.to_owned()),
            ("description", "~=" | "==" | "=") => Self::Description(value.to_owned()),
            ("until", "=" | "==") => Self::Until(parse_duration(value).ok_or_else(bad)?),
            _ => return Err(bad()),
        })
    }

    /// Whether a record passes this filter.
    pub fn selects(&self, record: &CacheRecord) -> bool {
        self.matches(record, now())
    }

    fn matches(&self, record: &CacheRecord, now: i64) -> bool {
        match self {
            Self::Type { equal, kind } => (record.kind == *kind) == *equal,
            Self::Id(id) => record.id == *id,
            Self::Description(text) => record.description.contains(text.as_str()),
            Self::Until(age) => now - record.last_used >= age.as_secs() as i64,
        }
    }
}

/// A positive Go duration as `until=` takes it: `24h`, `90m`, `1h30m`, `3600s`.
fn parse_duration(text: &str) -> Option<Duration> {
    let nanos = kiln_oci::go::parse_duration(text).ok()?;
    (nanos > 0).then(|| Duration::from_nanos(nanos as u64))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn mtime(path: &Path) -> i64 {
    fs::metadata(path).map_or(0, |m| m.mtime())
}

/// Bytes a directory tree takes on disk (hardlinked files counted once).
fn disk_size(root: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total += meta.blocks() * 512;
        if meta.is_dir() {
            if let Ok(entries) = fs::read_dir(&path) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        }
    }
    total
}

/// The record type of a layer a step made (`source.local`, `regular`, …).
pub(crate) fn layer_kind(worker: &Worker, id: u64) -> Option<String> {
    let bytes = worker.db.get(USAGE_TABLE, &id.to_string()).ok()??;
    serde_json::from_slice::<Usage>(&bytes)
        .ok()
        .map(|usage| usage.kind)
}

/// Removes layers no record names: the work of a step or an unpack that a killed
/// process never finished (its record is written only once the layer is complete).
/// Run at start, by the process that holds the state directory.
pub(crate) fn remove_unrecorded_layers(worker: &Worker) -> Result<Vec<u64>, Error> {
    let mut recorded: BTreeSet<u64> = BTreeSet::new();
    for (_, bytes) in worker.db.entries(CACHE_TABLE)? {
        let refs: Vec<Ref> = serde_json::from_slice(&bytes).unwrap_or_default();
        recorded.extend(refs.iter().flat_map(|r| r.chain.iter().copied()));
    }
    for (_, bytes) in worker.db.entries(CHAINS_TABLE)? {
        if let Ok(id) = String::from_utf8_lossy(&bytes).parse::<u64>() {
            recorded.insert(id);
        }
    }
    for (key, _) in worker.db.entries(USAGE_TABLE)? {
        if let Ok(id) = key.parse::<u64>() {
            recorded.insert(id);
        }
    }
    let mut removed = Vec::new();
    for id in worker.snapshots.layer_ids()? {
        if !recorded.contains(&id) {
            worker.db.remove(LAYERS_TABLE, &id.to_string())?;
            worker.snapshots.remove_layer(id)?;
            removed.push(id);
        }
    }
    Ok(removed)
}

/// Notes that a cached step reused its layers; [`write_reuse`] records it.
pub(crate) fn note_reuse(worker: &Worker, refs: &[Ref]) {
    let mut reused = worker.reused.lock().unwrap_or_else(|e| e.into_inner());
    for id in refs.iter().filter_map(|r| r.chain.last()) {
        *reused.entry(*id).or_default() += 1;
    }
}

/// Records the reuse a solve noted when the solve ends, however it ends.
pub(crate) struct ReuseWriter<'a>(pub(crate) &'a Worker);

impl Drop for ReuseWriter<'_> {
    fn drop(&mut self) {
        write_reuse(self.0);
    }
}

/// Records the reuse noted since the last call, in one transaction: a build of cached
/// steps syncs the database once, not once a step. Usage is advisory: a failed write
/// must not fail the build, and a process killed before it loses only LRU precision.
fn write_reuse(worker: &Worker) {
    let reused = std::mem::take(&mut *worker.reused.lock().unwrap_or_else(|e| e.into_inner()));
    if reused.is_empty() {
        return;
    }
    let now = now();
    let keys: Vec<String> = reused.keys().map(u64::to_string).collect();
    let _ = worker
        .db
        .update_many(USAGE_TABLE, keys.iter().map(String::as_str), |key, old| {
            let times = key.parse().ok().and_then(|id| reused.get(&id))?;
            let mut usage: Usage = old
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            usage.used(now, *times);
            serde_json::to_vec(&usage).ok()
        });
}

/// Records a step's result (`key` → `refs`) together with the usage of the layers it
/// made, in one transaction: a process killed in between leaves no layer that a
/// record names without its type and description.
pub(crate) fn record_made(
    worker: &Worker,
    key: &str,
    refs: &[Ref],
    made: (&str, &str),
) -> Result<(), Error> {
    let result = serde_json::to_vec(refs).map_err(|e| Error::Unsupported(e.to_string()))?;
    let usage = usage_records(worker, refs, made);
    let mut batch: Vec<(&str, &str, &[u8])> = vec![(CACHE_TABLE, key, result.as_slice())];
    batch.extend(
        usage
            .iter()
            .map(|(key, bytes)| (USAGE_TABLE, key.as_str(), bytes.as_slice())),
    );
    worker.db.put_batch(&batch)?;
    Ok(())
}

/// The usage records of `refs`' own layers after one more use.
fn usage_records(
    worker: &Worker,
    refs: &[Ref],
    (kind, description): (&str, &str),
) -> Vec<(String, Vec<u8>)> {
    let now = now();
    let mut out = Vec::new();
    for id in refs.iter().filter_map(|r| r.chain.last()) {
        let key = id.to_string();
        let mut usage: Usage = worker
            .db
            .get(USAGE_TABLE, &key)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if usage.created == 0 {
            usage.kind = kind.to_owned();
            usage.description = description.to_owned();
            usage.created = now;
            usage.size = Some(disk_size(&worker.snapshots.layer_root(*id)));
        }
        usage.used(now, 1);
        if let Ok(bytes) = serde_json::to_vec(&usage) {
            out.push((key, bytes));
        }
    }
    out
}

/// The layers under each layer, from the cache records' chains.
fn parents(worker: &Worker) -> Result<BTreeMap<u64, Vec<u64>>, Error> {
    let mut out = BTreeMap::new();
    for (_, bytes) in worker.db.entries(CACHE_TABLE)? {
        let refs: Vec<Ref> = serde_json::from_slice(&bytes).unwrap_or_default();
        for chain in refs.iter().map(|r| &r.chain) {
            for (i, id) in chain.iter().enumerate() {
                out.entry(*id).or_insert_with(|| chain[..i].to_vec());
            }
        }
    }
    Ok(out)
}

fn layer_blobs(worker: &Worker) -> Result<BTreeMap<u64, Vec<LayerInfo>>, Error> {
    let mut out = BTreeMap::new();
    for (key, _) in worker.db.entries(LAYERS_TABLE)? {
        if let Ok(id) = key.parse() {
            out.insert(id, worker.layer_blobs(id));
        }
    }
    Ok(out)
}

/// Every record of the build cache.
pub(crate) fn disk_usage(worker: &Worker) -> Result<Vec<CacheRecord>, Error> {
    let parents = parents(worker)?;
    let blobs = layer_blobs(worker)?;
    let usage: BTreeMap<String, Usage> = worker
        .db
        .entries(USAGE_TABLE)?
        .into_iter()
        .filter_map(|(k, v)| Some((k, serde_json::from_slice(&v).ok()?)))
        .collect();
    let mut owned = BTreeSet::new();
    let mut records = Vec::new();
    for id in worker.snapshots.layer_ids()? {
        let root = worker.snapshots.layer_root(id);
        let info = usage
            .get(&id.to_string())
            .cloned()
            .unwrap_or_else(|| Usage {
                kind: REGULAR.to_owned(),
                created: mtime(&root),
                last_used: mtime(&root),
                ..Usage::default()
            });
        let mut size = info.size.unwrap_or_else(|| disk_size(&root));
        for blob in blobs.get(&id).into_iter().flatten() {
            if owned.insert(blob.blob.clone()) {
                size += worker
                    .content
                    .path(&blob.blob)
                    .ok()
                    .map_or(0, |p| disk_size(&p));
            }
        }
        records.push(CacheRecord {
            id: id.to_string(),
            kind: info.kind,
            description: info.description,
            size,
            created: info.created,
            last_used: info.last_used,
            usage_count: info.count,
            parents: parents
                .get(&id)
                .into_iter()
                .flatten()
                .map(u64::to_string)
                .collect(),
        });
    }
    if let Ok(entries) = fs::read_dir(worker.config.root.join("cachemounts")) {
        for entry in entries.flatten() {
            let path = entry.path();
            records.push(CacheRecord {
                id: entry
                    .file_name()
                    .to_string_lossy()
                    .chars()
                    .take(25)
                    .collect(),
                kind: CACHE_MOUNT.to_owned(),
                description: "cached mount".to_owned(),
                size: disk_size(&path),
                created: mtime(&path),
                last_used: mtime(&path),
                usage_count: 0,
                parents: Vec::new(),
            });
        }
    }
    let unowned: Vec<(String, u64)> = worker
        .content
        .blobs()?
        .into_iter()
        .filter(|(digest, _)| !owned.contains(digest))
        .collect();
    if !unowned.is_empty() {
        records.push(CacheRecord {
            id: "content".to_owned(),
            kind: INTERNAL.to_owned(),
            description: "image configs, manifests and other blobs".to_owned(),
            size: unowned.iter().map(|(_, s)| s).sum(),
            created: 0,
            last_used: 0,
            usage_count: 0,
            parents: Vec::new(),
        });
    }
    Ok(records)
}

/// Removes the records `options` select (with what depends on them); returns them.
pub(crate) fn prune(worker: &Worker, options: &PruneOptions) -> Result<Vec<CacheRecord>, Error> {
    let records = disk_usage(worker)?;
    let now = now();
    let mut candidates: Vec<&CacheRecord> = records
        .iter()
        .filter(|r| options.all || r.kind != INTERNAL)
        .filter(|r| options.filters.iter().all(|f| f.matches(r, now)))
        .collect();
    candidates.sort_by_key(|r| r.last_used);
    let mut chosen: BTreeSet<String> = BTreeSet::new();
    // `keep_storage` bounds what the filters select, as BuildKit's keepBytes does.
    let mut total: u64 = candidates.iter().map(|r| r.size).sum();
    for record in candidates {
        if options.keep_storage > 0 && total <= options.keep_storage {
            break;
        }
        if chosen.insert(record.id.clone()) {
            total = total.saturating_sub(record.size);
        }
        // Layers built on a removed layer go with it.
        for child in records.iter().filter(|r| r.parents.contains(&record.id)) {
            if chosen.insert(child.id.clone()) {
                total = total.saturating_sub(child.size);
            }
        }
    }
    let removed: Vec<CacheRecord> = records
        .iter()
        .filter(|r| chosen.contains(&r.id))
        .cloned()
        .collect();
    // Every record but cache mounts and loose blobs is a layer, named by its number.
    let removed_layers: BTreeSet<u64> = removed
        .iter()
        .filter(|r| r.kind != CACHE_MOUNT && r.kind != INTERNAL)
        .filter_map(|r| r.id.parse().ok())
        .collect();
    // Records first, then data: an interrupted prune leaves no record of missing data.
    for (key, bytes) in worker.db.entries(CACHE_TABLE)? {
        let refs: Vec<Ref> = serde_json::from_slice(&bytes).unwrap_or_default();
        if refs
            .iter()
            .flat_map(|r| &r.chain)
            .any(|id| removed_layers.contains(id))
        {
            worker.db.remove(CACHE_TABLE, &key)?;
        }
    }
    for (key, bytes) in worker.db.entries(CHAINS_TABLE)? {
        let id = String::from_utf8_lossy(&bytes).parse::<u64>().ok();
        if id.is_some_and(|id| removed_layers.contains(&id)) {
            worker.db.remove(CHAINS_TABLE, &key)?;
        }
    }
    let blobs = layer_blobs(worker)?;
    for id in &removed_layers {
        worker.db.remove(LAYERS_TABLE, &id.to_string())?;
        worker.db.remove(USAGE_TABLE, &id.to_string())?;
        worker.snapshots.remove_layer(*id)?;
    }
    // Blobs that only removed layers used, and with `internal` every unowned blob.
    let kept: BTreeSet<&str> = blobs
        .iter()
        .filter(|(id, _)| !removed_layers.contains(id))
        .flat_map(|(_, infos)| infos.iter().map(|i| i.blob.as_str()))
        .collect();
    let internal = chosen.contains("content");
    let from_removed: BTreeSet<&str> = blobs
        .iter()
        .filter(|(id, _)| removed_layers.contains(id))
        .flat_map(|(_, infos)| infos.iter().map(|i| i.blob.as_str()))
        .collect();
    for (digest, _) in worker.content.blobs()? {
        if !kept.contains(digest.as_str()) && (internal || from_removed.contains(digest.as_str())) {
            worker.content.remove(&digest)?;
        }
    }
    if let Ok(entries) = fs::read_dir(worker.config.root.join("cachemounts")) {
        for entry in entries.flatten() {
            let id: String = entry
                .file_name()
                .to_string_lossy()
                .chars()
                .take(25)
                .collect();
            if removed.iter().any(|r| r.kind == CACHE_MOUNT && r.id == id) {
                fs::remove_dir_all(entry.path())?;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert_eq!(
            PruneFilter::parse("type==exec.cachemount").unwrap(),
            PruneFilter::Type {
                equal: true,
                kind: "exec.cachemount".into()
            }
        );
        assert_eq!(
            PruneFilter::parse("type!=regular").unwrap(),
            PruneFilter::Type {
                equal: false,
                kind: "regular".into()
            }
        );
        assert_eq!(
            PruneFilter::parse("until=1h30m").unwrap(),
            PruneFilter::Until(Duration::from_secs(5400))
        );
        assert!(PruneFilter::parse("colour=red").is_err());
        assert!(PruneFilter::parse("until=soon").is_err());
    }
}
