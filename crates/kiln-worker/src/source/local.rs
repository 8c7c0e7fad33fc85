//! `local://NAME`: a directory the client provides, filtered by `.dockerignore`
//! patterns and followed paths, checksummed by content and copied into a snapshot.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fs_err as fs;
use kiln_llb::pb;
use sha2::{Digest as _, Sha256};

use super::dockerignore::Matcher;
use crate::fsutil::{CopySpec, copy_entry};
use crate::{Error, LocalContexts, Ref, Worker};

fn json_list(source: &pb::SourceOp, key: &str) -> Vec<String> {
    source
        .attrs
        .get(key)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

/// The entries of the context the op selects, relative paths in walk order.
fn select(dir: &Path, source: &pb::SourceOp) -> Result<Vec<String>, Error> {
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
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let path = if rel.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(&rel)
        };
        let mut names: Vec<String> = fs::read_dir(&path)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names.into_iter().rev() {
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if !wanted(&child) {
                continue;
            }
            let meta = fs::symlink_metadata(dir.join(&child))?;
            let ignored = !excludes.is_empty() && excludes.matches(&child);
            if meta.is_dir() {
                // Excluded directories may still hold re-included files.
                stack.push(child.clone());
                if !ignored {
                    out.push(child);
                }
            } else if !ignored {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn context_dir(contexts: &dyn LocalContexts, name: &str) -> Result<PathBuf, Error> {
    contexts.dir(name).ok_or_else(|| {
        Error::Source(format!(
            "local source {name:?} was not provided by the client"
        ))
    })
}

/// A checksum of the selected content: names, types, modes and bytes (not times).
pub(crate) fn checksum(
    contexts: &dyn LocalContexts,
    name: &str,
    source: &pb::SourceOp,
) -> Result<String, Error> {
    let dir = context_dir(contexts, name)?;
    let mut hasher = Sha256::new();
    for rel in select(&dir, source)? {
        let path = dir.join(&rel);
        let meta = fs::symlink_metadata(&path)?;
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hasher.update(meta.mode().to_le_bytes());
        if meta.file_type().is_symlink() {
            hasher.update(fs::read_link(&path)?.to_string_lossy().as_bytes());
        } else if meta.is_file() {
            let mut file = fs::File::open(&path)?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        }
        hasher.update([0xff]);
    }
    Ok(kiln_store::sha256_hex(hasher))
}

/// Copies the selected content into a new snapshot.
pub(crate) fn load(
    worker: &Worker,
    contexts: &dyn LocalContexts,
    name: &str,
    source: &pb::SourceOp,
) -> Result<Ref, Error> {
    let dir = context_dir(contexts, name)?;
    let snapshot = worker.snapshots.create(None)?;
    let upper = worker.snapshots.layer_dir(snapshot.id());
    let spec = CopySpec::default();
    let mut links = crate::fsutil::Hardlinks::new();
    for rel in select(&dir, source)? {
        let src = dir.join(&rel);
        let dst = upper.join(&rel);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent)?;
        }
        if fs::symlink_metadata(&src)?.is_dir() {
            if !dst.exists() {
                fs::create_dir(&dst)?;
            }
            let meta = fs::symlink_metadata(&src)?;
            fs::set_permissions(&dst, meta.permissions())?;
        } else {
            copy_entry(&src, &dst, &spec, &mut links)?;
        }
    }
    Ok(Ref {
        chain: snapshot.chain,
        key: String::new(),
    })
}
