//! `local://NAME`: a directory the client provides, filtered by `.dockerignore`
//! patterns and followed paths, checksummed by content and copied into a snapshot.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fs_err as fs;
use kiln_llb::local::{Entry, Filter, select};
use kiln_llb::pb;
use sha2::{Digest as _, Sha256};

use crate::contenthash::{Index, Record};
use crate::fsutil::{CopySpec, copy_entry};
use crate::{Error, LocalContexts, Ref, Worker};

fn context_dir(contexts: &dyn LocalContexts, name: &str) -> Result<PathBuf, Error> {
    contexts.dir(name).ok_or_else(|| {
        Error::Source(format!(
            "local source {name:?} was not provided by the client"
        ))
    })
}

/// Where files' content digests are remembered between builds, by absolute path.
const FILE_HASHES_TABLE: &str = "file-hashes";

/// What says a file is unchanged since it was hashed: size, modification time, inode
/// and mode (BuildKit's content cache trusts the same stat fields, inode aside).
fn file_stamp(meta: &Entry) -> String {
    format!(
        "{}:{}.{}:{}:{}",
        meta.size, meta.mtime, meta.mtime_nsec, meta.ino, meta.mode
    )
}

/// A file's content digest, read only when its stamp changed since it was last hashed.
fn file_digest(
    path: &Path,
    meta: &Entry,
    known: &HashMap<String, Vec<u8>>,
    learned: &mut Vec<(String, Vec<u8>)>,
) -> Result<String, Error> {
    let key = path.to_string_lossy().into_owned();
    let stamp = file_stamp(meta);
    if let Some(record) = known.get(&key).and_then(|r| std::str::from_utf8(r).ok()) {
        if let Some(digest) = record
            .strip_prefix(&stamp)
            .and_then(|r| r.strip_prefix(' '))
        {
            return Ok(digest.to_owned());
        }
    }
    let mut hasher = Sha256::new();
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = kiln_store::sha256_hex(hasher);
    learned.push((key, format!("{stamp} {digest}").into_bytes()));
    Ok(digest)
}

/// A walk of a context: the entries the source selects, with what its checksum and
/// its load need, so the directory is walked once per build.
pub(crate) struct Scan {
    dir: PathBuf,
    entries: Vec<(String, Entry)>,
    /// What the content index of the loaded layer says of each entry.
    records: BTreeMap<String, Record>,
    /// The checksum of the selected content: names, types, modes and bytes (not
    /// times or owners).
    pub(crate) checksum: String,
}

/// Walks and checksums the selected content. A file whose size, times, inode and
/// mode are as when it was last hashed is not read again: its digest is remembered in
/// the metadata database.
pub(crate) fn scan(
    worker: &Worker,
    contexts: &dyn LocalContexts,
    name: &str,
    source: &pb::SourceOp,
) -> Result<Scan, Error> {
    let dir = context_dir(contexts, name)?;
    let known: HashMap<String, Vec<u8>> =
        worker.db.entries(FILE_HASHES_TABLE)?.into_iter().collect();
    let mut learned = Vec::new();
    let mut hasher = Sha256::new();
    let entries = select(&dir, &Filter::of_source(source))?;
    let mut records = BTreeMap::new();
    for (rel, meta) in &entries {
        let path = dir.join(rel);
        let mut record = Record::from_mode(meta.mode, meta.uid, meta.gid, meta.rdev);
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hasher.update(meta.mode.to_le_bytes());
        if meta.is_symlink() {
            record.link = fs::read_link(&path)?.to_string_lossy().into_owned();
            hasher.update(record.link.as_bytes());
        } else if meta.socket {
            record.digest = kiln_store::sha256_hex(Sha256::new());
            hasher.update(record.digest.as_bytes());
        } else if meta.is_file() {
            record.digest = file_digest(&path, meta, &known, &mut learned)?;
            hasher.update(record.digest.as_bytes());
        }
        hasher.update([0xff]);
        records.insert(rel.clone(), record);
    }
    worker.db.put_many(FILE_HASHES_TABLE, &learned)?;
    Ok(Scan {
        dir,
        entries,
        records,
        checksum: kiln_store::sha256_hex(hasher),
    })
}

/// The last snapshot each context directory was loaded into, with the stamp of every
/// file it copied: the next load links the files whose stamp has not changed.
const CONTEXT_LAYERS_TABLE: &str = "context-layers";

#[derive(serde::Serialize, serde::Deserialize)]
struct LoadedContext {
    layer: u64,
    stamps: HashMap<String, String>,
}

/// Copies the selected content into a new snapshot. Files unchanged since the last
/// load of the same directory (same size, times, inode and mode, as the digest cache
/// trusts) are hardlinked from that load's snapshot rather than copied: layers are
/// never written after they are made, so they can share unchanged files, and a
/// one-file change to a large context costs one copy, as BuildKit's incremental
/// context transfer does.
pub(crate) fn load(worker: &Worker, scan: Scan) -> Result<Ref, Error> {
    let Scan {
        dir,
        entries,
        mut records,
        ..
    } = scan;
    let key = dir.to_string_lossy().into_owned();
    let previous: Option<LoadedContext> = worker
        .db
        .get(CONTEXT_LAYERS_TABLE, &key)?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .filter(|p: &LoadedContext| worker.snapshots.layer_dir(p.layer).is_dir());
    let snapshot = worker.snapshots.create(None)?;
    let upper = worker.snapshots.layer_dir(snapshot.id());
    // Everything root's, as the client sends it.
    let spec = CopySpec {
        chown: Some((0, 0)),
        ..CopySpec::default()
    };
    let mut links = crate::fsutil::Hardlinks::new();
    let mut stamps = HashMap::new();
    let mut dirs = Vec::new();
    for (rel, meta) in entries {
        let src = dir.join(&rel);
        let dst = upper.join(&rel);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent)?;
        }
        if meta.is_dir() {
            if !dst.exists() {
                fs::create_dir(&dst)?;
            }
            fs::set_permissions(
                &dst,
                <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(
                    meta.mode & 0o7777,
                ),
            )?;
            dirs.push((dst, meta));
            continue;
        }
        if meta.socket {
            // A socket: an empty file with its permission bits and time.
            fs::write(&dst, b"")?;
            fs::set_permissions(
                &dst,
                <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(
                    meta.mode & 0o7777,
                ),
            )?;
            crate::fsutil::set_times(&dst, meta.mtime, meta.mtime_nsec)?;
            continue;
        }
        if meta.is_file() {
            let stamp = file_stamp(&meta);
            let linked = previous.as_ref().is_some_and(|p| {
                p.stamps.get(&rel) == Some(&stamp)
                    && fs::hard_link(worker.snapshots.layer_dir(p.layer).join(&rel), &dst).is_ok()
            });
            stamps.insert(rel, stamp);
            if linked {
                continue;
            }
        }
        copy_entry(&src, &dst, &spec, &mut links)?;
    }
    // Directories keep their times too, set once nothing more is written into them.
    for (dir, meta) in dirs.iter().rev() {
        crate::fsutil::set_times(dir, meta.mtime, meta.mtime_nsec)?;
    }
    // The layer's content index: what checksums of its parts read instead of files.
    let root = fs::symlink_metadata(&upper)?;
    records.insert(
        String::new(),
        Record::from_mode(root.mode(), root.uid(), root.gid(), 0),
    );
    Index::new(records).save(&worker.snapshots.layer_root(snapshot.id()))?;
    let loaded = LoadedContext {
        layer: snapshot.id(),
        stamps,
    };
    worker.db.put(
        CONTEXT_LAYERS_TABLE,
        &key,
        &serde_json::to_vec(&loaded).unwrap_or_default(),
    )?;
    Ok(Ref {
        chain: snapshot.chain,
        key: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_files_are_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "one").unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        let mut learned = Vec::new();
        let first = file_digest(&path, &Entry::from(&meta), &HashMap::new(), &mut learned).unwrap();
        let known: HashMap<String, Vec<u8>> = learned.into_iter().collect();

        // Same size and time, other bytes: the remembered digest is used (not read).
        fs::write(&path, "two").unwrap();
        crate::fsutil::set_times(&path, meta.mtime(), meta.mtime_nsec()).unwrap();
        let same_stamp = fs::symlink_metadata(&path).unwrap();
        let mut none = Vec::new();
        assert_eq!(
            file_digest(&path, &Entry::from(&same_stamp), &known, &mut none).unwrap(),
            first
        );
        assert!(none.is_empty());

        // A new time: read again, and learned.
        crate::fsutil::set_times(&path, meta.mtime() + 1, 0).unwrap();
        let touched = fs::symlink_metadata(&path).unwrap();
        let mut again = Vec::new();
        assert_ne!(
            file_digest(&path, &Entry::from(&touched), &known, &mut again).unwrap(),
            first
        );
        assert_eq!(again.len(), 1);
    }
}
