//! `local://NAME`: a directory the client provides, filtered by `.dockerignore`
//! patterns and followed paths, checksummed by content and copied into a snapshot.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fs_err as fs;
use kiln_llb::local::{Entry, Filter, select, select_listed};
use kiln_llb::pb;
use sha2::{Digest as _, Sha256};

use crate::contenthash::{Index, Record, Tree as _, counted_xattrs, file_sha256};
use crate::fsutil::{CopySpec, copy_entry};
use crate::{Error, LocalContexts, Ref, Worker};

fn context_dir(
    contexts: &dyn LocalContexts,
    name: &str,
    session: Option<&str>,
) -> Result<PathBuf, Error> {
    contexts.dir(name, session).ok_or_else(|| {
        Error::Source(format!(
            "local source {name:?} was not provided by the client"
        ))
    })
}

/// Per context directory and filter: what its last scan learned of each file (stamp
/// and content digest), one record read with one lookup, so the next scan reads only
/// the files that changed and writes nothing when none did.
const CONTEXT_DIGESTS_TABLE: &str = "context-digests-v2";

/// What says a file is unchanged since it was hashed: size, modification time, inode
/// and mode (BuildKit's content cache trusts the same stat fields, inode aside).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ino: u64,
    mode: u32,
}

/// The stamp as the last load of a context remembers it.
impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}.{}:{}:{}",
            self.size, self.mtime, self.mtime_nsec, self.ino, self.mode
        )
    }
}

impl Stamp {
    const ENCODED_LEN: usize = 8 * 4 + 4;

    fn of(meta: &Entry) -> Self {
        Self {
            size: meta.size,
            mtime: meta.mtime,
            mtime_nsec: meta.mtime_nsec,
            ino: meta.ino,
            mode: meta.mode,
        }
    }
}

/// The files of a context's last scan, sorted by path as the walk sorts them:
/// `(path, stamp, sha256)`, borrowed from the record's bytes.
struct KnownDigests<'a> {
    files: Vec<(&'a str, Stamp, [u8; 32])>,
    /// Where the next lookup starts: the walk asks in the same order.
    cursor: usize,
}

impl<'a> KnownDigests<'a> {
    /// Reads a record written by [`KnownDigests::encode`]; a damaged one reads as
    /// empty (everything is hashed again).
    fn decode(mut bytes: &'a [u8]) -> Self {
        let mut files = Vec::new();
        while !bytes.is_empty() {
            match Self::decode_file(&mut bytes) {
                Some(file) => files.push(file),
                None => {
                    return Self {
                        files: Vec::new(),
                        cursor: 0,
                    };
                }
            }
        }
        Self { files, cursor: 0 }
    }

    fn decode_file(bytes: &mut &'a [u8]) -> Option<(&'a str, Stamp, [u8; 32])> {
        fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
            let (head, rest) = bytes.split_first_chunk::<N>()?;
            *bytes = rest;
            Some(*head)
        }
        let len = u32::from_le_bytes(take(bytes)?) as usize;
        let (path, rest) = bytes.split_at_checked(len)?;
        *bytes = rest;
        let path = std::str::from_utf8(path).ok()?;
        let stamp = Stamp {
            size: u64::from_le_bytes(take(bytes)?),
            mtime: i64::from_le_bytes(take(bytes)?),
            mtime_nsec: i64::from_le_bytes(take(bytes)?),
            ino: u64::from_le_bytes(take(bytes)?),
            mode: u32::from_le_bytes(take(bytes)?),
        };
        Some((path, stamp, take(bytes)?))
    }

    fn encode<'b>(files: impl Iterator<Item = (&'b str, Stamp, [u8; 32])>) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, stamp, digest) in files {
            out.reserve(4 + path.len() + Stamp::ENCODED_LEN + 32);
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(path.as_bytes());
            out.extend_from_slice(&stamp.size.to_le_bytes());
            out.extend_from_slice(&stamp.mtime.to_le_bytes());
            out.extend_from_slice(&stamp.mtime_nsec.to_le_bytes());
            out.extend_from_slice(&stamp.ino.to_le_bytes());
            out.extend_from_slice(&stamp.mode.to_le_bytes());
            out.extend_from_slice(&digest);
        }
        out
    }

    /// The digest remembered for `path` if its stamp is still `stamp`.
    fn get(&mut self, path: &str, stamp: Stamp) -> Option<[u8; 32]> {
        let at = match self.files.get(self.cursor) {
            Some((p, ..)) if *p == path => self.cursor,
            _ => self
                .files
                .binary_search_by(|(p, ..)| kiln_llb::local::path_order(p, path))
                .ok()?,
        };
        self.cursor = at + 1;
        let (_, known, digest) = self.files[at];
        (known == stamp).then_some(digest)
    }
}

/// The extended attributes of a context entry a checksum counts, as BuildKit's daemon
/// has them after the transfer: as of a snapshot's entry, but for macOS's `com.apple.`
/// ones (fsutil's client never sends them) and a file capability (the receiver's chown
/// after setting the attributes clears it).
fn context_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut xattrs = counted_xattrs(path)?;
    xattrs.retain(|(name, _)| !name.starts_with("com.apple.") && name != "security.capability");
    Ok(xattrs)
}

/// The record of a context entry as the client sends it: owned by root.
fn context_record(meta: &Entry) -> Record {
    let mut record = Record::from_mode(meta.mode, 0, 0, meta.rdev);
    if meta.is_file() {
        record.size = meta.size;
    }
    record
}

/// One selected entry of a context: its metadata as sent, a file's content digest and
/// a symlink's target.
pub(crate) struct ScannedEntry {
    rel: String,
    meta: Entry,
    digest: [u8; 32],
    link: String,
}

/// A walk of a context: the entries the source selects, with what its checksum and
/// its load need, so the directory is walked once per build.
pub(crate) struct Scan {
    dir: PathBuf,
    entries: Vec<ScannedEntry>,
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
    let session = source.attrs.get("local.session").map(String::as_str);
    let dir = context_dir(contexts, name, session)?;
    let filter = Filter::of_source(source);
    let record_key = format!(
        "{}\0{:?}\0{:?}\0{:?}",
        dir.display(),
        filter.include_patterns,
        filter.exclude_patterns,
        filter.follow_paths
    );
    let record = worker.db.get(CONTEXT_DIGESTS_TABLE, &record_key)?;
    let mut known = KnownDigests::decode(record.as_deref().unwrap_or_default());
    let mut files_changed = false;
    let mut file_count = 0;
    let mut hasher = Sha256::new();
    let mut entries = Vec::new();
    let selected = match contexts.listing(name, session) {
        Some(listing) => select_listed(&dir, &listing, &filter)?,
        None => select(&dir, &filter)?,
    };
    for (rel, meta) in selected {
        let mut entry = ScannedEntry {
            rel,
            meta,
            digest: [0; 32],
            link: String::new(),
        };
        hasher.update(entry.rel.as_bytes());
        hasher.update([0]);
        hasher.update(meta.mode.to_le_bytes());
        if meta.is_symlink() {
            entry.link = fs::read_link(dir.join(&entry.rel))?
                .to_string_lossy()
                .into_owned();
            hasher.update(entry.link.as_bytes());
        } else if meta.socket {
            entry.digest = Sha256::new().finalize().into();
            hasher.update(hex::encode(entry.digest).as_bytes());
        } else if meta.is_file() {
            file_count += 1;
            entry.digest = match known.get(&entry.rel, Stamp::of(&meta)) {
                Some(digest) => digest,
                None => {
                    files_changed = true;
                    let path = dir.join(&entry.rel);
                    let mut record = context_record(&meta);
                    record.xattrs = context_xattrs(&path)?;
                    file_sha256(&path, &record.tar_header())?
                }
            };
            let mut hex_digest = [0u8; 64];
            hex::encode_to_slice(entry.digest, &mut hex_digest).expect("64 bytes for 32");
            hasher.update(hex_digest);
        }
        hasher.update([0xff]);
        entries.push(entry);
    }
    if files_changed || file_count != known.files.len() {
        let files = entries
            .iter()
            .filter(|e| e.meta.is_file() && !e.meta.socket)
            .map(|e| (e.rel.as_str(), Stamp::of(&e.meta), e.digest));
        worker.db.put(
            CONTEXT_DIGESTS_TABLE,
            &record_key,
            &KnownDigests::encode(files),
        )?;
    }
    Ok(Scan {
        dir,
        entries,
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
    let (snapshot, ()) = crate::new_layer(worker, None, |snapshot| {
        copy_context(worker, scan, snapshot)
    })?;
    Ok(Ref::unkeyed(snapshot.chain))
}

/// Copies a scanned context into its new layer (hard links to the previous load's
/// unchanged files), with the layer's content index and the stamps of what it copied.
fn copy_context(worker: &Worker, scan: Scan, snapshot: &kiln_store::Snapshot) -> Result<(), Error> {
    let Scan { dir, entries, .. } = scan;
    let key = dir.to_string_lossy().into_owned();
    let previous: Option<LoadedContext> = worker
        .db
        .get(CONTEXT_LAYERS_TABLE, &key)?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .filter(|p: &LoadedContext| worker.snapshots.layer_dir(p.layer).is_dir());
    let upper = worker.snapshots.layer_dir(snapshot.id());
    // Everything root's, as the client sends it.
    let spec = CopySpec {
        chown: Some((0, 0)),
        ..CopySpec::default()
    };
    let mut links = crate::fsutil::Hardlinks::new();
    let mut stamps = HashMap::new();
    let mut dirs = Vec::new();
    let mut records = BTreeMap::new();
    for ScannedEntry {
        rel,
        meta,
        digest,
        link,
    } in entries
    {
        let src = dir.join(&rel);
        let mut record = context_record(&meta);
        if meta.is_file() && !meta.socket {
            record.digest = format!("sha256:{}", hex::encode(digest));
        } else {
            // A file's digest covers its attributes already.
            record.xattrs = context_xattrs(&src)?;
        }
        record.link = link;
        records.insert(rel.clone(), record);
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
            let stamp = Stamp::of(&meta).to_string();
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
    // BuildKit's incremental transfer never sends a directory's changed metadata again
    // (its receiver keeps the header it first hashed), so while the previous load is
    // kept a directory keeps the record it had there: a chmod of a copied directory
    // alone leaves the copy cached, as in BuildKit.
    if let Some(index) = previous
        .as_ref()
        .and_then(|p| Index::load(&worker.snapshots.layer_root(p.layer)))
    {
        for (rel, record) in records.iter_mut().filter(|(_, r)| r.kind == 'd') {
            if let Some(kept) = index.record(rel)?.filter(|r| r.kind == 'd') {
                *record = kept;
            }
        }
    }
    // The layer's content index: what checksums of its parts read instead of files.
    let root = fs::symlink_metadata(&upper)?;
    let mut root = Record::from_mode(root.mode(), root.uid(), root.gid(), 0);
    root.digest = crate::contenthash::context_root_digest();
    records.insert(String::new(), root);
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_digests_hold_while_the_stamp_does() {
        let stamp = Stamp {
            size: 3,
            mtime: 1,
            mtime_nsec: 2,
            ino: 4,
            mode: 0o100644,
        };
        let bytes =
            KnownDigests::encode([("a", stamp, [1; 32]), ("b/c", stamp, [2; 32])].into_iter());
        let mut known = KnownDigests::decode(&bytes);
        assert_eq!(known.get("a", stamp), Some([1; 32]));
        assert_eq!(known.get("b/c", Stamp { mtime: 9, ..stamp }), None);
        // Asked out of the walk's order: found all the same.
        assert_eq!(known.get("a", stamp), Some([1; 32]));
        assert_eq!(known.get("b", stamp), None);
        // A damaged record is no record: everything is hashed again.
        assert!(
            KnownDigests::decode(&bytes[..bytes.len() - 1])
                .files
                .is_empty()
        );
    }
}
