//! `local://NAME`: a directory the client provides, filtered by `.dockerignore`
//! patterns and followed paths, checksummed by content and copied into a snapshot.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fs_err as fs;
use kiln_llb::pb;
use sha2::{Digest as _, Sha256};

use super::dockerignore::Matcher;
use crate::contenthash::{Index, Record};
use crate::fsutil::{CopySpec, copy_entry};
use crate::{Error, LocalContexts, Ref, Worker};

fn json_list(source: &pb::SourceOp, key: &str) -> Vec<String> {
    source
        .attrs
        .get(key)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

/// What the walk of a context keeps of an entry's metadata.
#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    rdev: u64,
}

impl Entry {
    fn kind(&self) -> rustix::fs::FileType {
        rustix::fs::FileType::from_raw_mode(self.mode)
    }
    fn is_dir(&self) -> bool {
        self.kind() == rustix::fs::FileType::Directory
    }
    fn is_file(&self) -> bool {
        self.kind() == rustix::fs::FileType::RegularFile
    }
    fn is_symlink(&self) -> bool {
        self.kind() == rustix::fs::FileType::Symlink
    }
}

impl From<&std::fs::Metadata> for Entry {
    fn from(meta: &std::fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ino: meta.ino(),
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev(),
        }
    }
}

/// A directory's entries (names) with their metadata, each looked up relative to the
/// open directory: one path component per lookup, however deep the context.
fn read_dir_entries(path: &Path) -> Result<Vec<(String, Entry)>, Error> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let fd = rustix::fs::openat(
        rustix::fs::CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    })?;
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd).map_err(std::io::Error::from)? {
        let entry = entry.map_err(std::io::Error::from)?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let stat = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(std::io::Error::from)?;
        out.push((
            name.to_string_lossy().into_owned(),
            Entry {
                size: stat.st_size as u64,
                mtime: stat.st_mtime as i64,
                mtime_nsec: stat.st_mtime_nsec as i64,
                ino: stat.st_ino as u64,
                mode: stat.st_mode as u32,
                uid: stat.st_uid,
                gid: stat.st_gid,
                rdev: stat.st_rdev as u64,
            },
        ));
    }
    Ok(out)
}

/// The entries of the context the op selects, sorted relative paths with their
/// metadata (each entry is looked at once).
fn select(dir: &Path, source: &pb::SourceOp) -> Result<Vec<(String, Entry)>, Error> {
    let excludes = Matcher::new(&json_list(source, "local.excludepatterns"));
    let follow: Vec<String> = json_list(source, "local.followpaths");
    let wanted = |rel: &str| -> bool {
        if follow.is_empty() {
            return true;
        }
        follow.iter().any(|f| {
            let f = f.trim_end_matches('/');
            rel == f
                || rel.starts_with(&format!("{f}/"))
                || f.starts_with(&format!("{rel}/"))
                || f.split('/')
                    .zip(rel.split('/'))
                    .all(|(p, r)| crate::fsutil::match_component(p, r))
        })
    };
    // Directories are read by a few threads at once, taking them from one queue: a
    // large context is mostly waiting on the kernel's lookups, which run in parallel.
    // (directories waiting, directories being read); a reader that finds none waiting
    // sleeps until another adds some or the last one finishes.
    let queue = std::sync::Mutex::new((vec![String::new()], 0usize));
    let changed = std::sync::Condvar::new();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let walk = || -> Result<Vec<(String, Entry)>, Error> {
        let mut out = Vec::new();
        loop {
            let rel = {
                let mut state = queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(rel) = state.0.pop() {
                        state.1 += 1;
                        break rel;
                    }
                    if state.1 == 0 {
                        return Ok(out);
                    }
                    state = changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            };
            let path = if rel.is_empty() {
                dir.to_path_buf()
            } else {
                dir.join(&rel)
            };
            let entries = read_dir_entries(&path);
            let mut subdirs = Vec::new();
            if let Ok(entries) = &entries {
                for (name, meta) in entries {
                    let child = if rel.is_empty() {
                        name.clone()
                    } else {
                        format!("{rel}/{name}")
                    };
                    if !wanted(&child) {
                        continue;
                    }
                    let ignored = !excludes.is_empty() && excludes.matches(&child);
                    if meta.is_dir() {
                        // Excluded directories may still hold re-included files.
                        subdirs.push(child.clone());
                    }
                    if !ignored {
                        out.push((child, *meta));
                    }
                }
            }
            let mut state = queue.lock().unwrap_or_else(|e| e.into_inner());
            state.0.extend(subdirs);
            state.1 -= 1;
            if let Err(e) = entries {
                // Stop the others too: nothing more to read.
                state.0.clear();
                changed.notify_all();
                return Err(e);
            }
            changed.notify_all();
        }
    };
    let mut out = Vec::new();
    std::thread::scope(|scope| -> Result<(), Error> {
        let workers: Vec<_> = (0..threads).map(|_| scope.spawn(walk)).collect();
        for worker in workers {
            out.extend(worker.join().unwrap_or_else(|_| {
                Err(Error::Unsupported("the context walk panicked".to_owned()))
            })?);
        }
        Ok(())
    })?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

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
    let entries = select(&dir, source)?;
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
    let spec = CopySpec::default();
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
            dirs.push((dst, meta.mtime, meta.mtime_nsec));
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
    // Directories keep their times, once what they hold is in place (BuildKit's context
    // transfer sets a directory's times after its content too).
    for (dst, mtime, mtime_nsec) in dirs {
        crate::fsutil::set_times(&dst, mtime, mtime_nsec)?;
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
