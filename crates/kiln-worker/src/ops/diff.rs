//! Diff: the changes that turn `lower` into `upper`, as layers a merge can stack on
//! anything. When lower's layers are the bottom of upper's (a state and a later state
//! of it, the usual case), the diff is upper's remaining layers, reused as they are, as
//! BuildKit does. Otherwise the two trees are compared and the changes written to a
//! new layer: what upper adds or changes, and a whiteout for each path it lacks.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use fs_err as fs;
use kiln_llb::pb;

use crate::fsutil::{CopySpec, Hardlinks, copy_entry, set_times};
use crate::{Error, Ref, Worker};

/// Runs a diff op.
pub(crate) fn run(worker: &Worker, diff: &pb::DiffOp, inputs: &[Ref]) -> Result<Ref, Error> {
    let input = |index: Option<i64>| -> Result<Ref, Error> {
        match index {
            None | Some(-1) => Ok(Ref::default()),
            Some(i) => usize::try_from(i)
                .ok()
                .and_then(|i| inputs.get(i))
                .cloned()
                .ok_or_else(|| Error::Unsupported(format!("diff input {i} does not exist"))),
        }
    };
    let lower = input(diff.lower.map(|l| l.input))?;
    let upper = input(diff.upper.map(|u| u.input))?;
    if upper.chain.starts_with(&lower.chain) {
        return Ok(Ref {
            chain: upper.chain[lower.chain.len()..].to_vec(),
            key: String::new(),
        });
    }
    let lower_mount = lower
        .snapshot()
        .map(|s| worker.snapshots.mount_readonly(&s))
        .transpose()?;
    let upper_mount = upper
        .snapshot()
        .map(|s| worker.snapshots.mount_readonly(&s))
        .transpose()?;
    let layer = worker.snapshots.create_on(&[])?;
    let written = compare(
        lower_mount.as_ref().map(|m| m.path()),
        upper_mount.as_ref().map(|m| m.path()),
        &worker.snapshots.layer_dir(layer.id()),
        &mut Hardlinks::new(),
    );
    if let Err(e) = written {
        let _ = worker.snapshots.remove_layer(layer.id());
        return Err(e.into());
    }
    Ok(Ref {
        chain: layer.chain,
        key: String::new(),
    })
}

/// Entry names of a directory (none when it does not exist).
fn names(dir: Option<&Path>) -> io::Result<BTreeSet<std::ffi::OsString>> {
    let mut out = BTreeSet::new();
    if let Some(dir) = dir {
        for entry in fs::read_dir(dir)? {
            out.insert(entry?.file_name());
        }
    }
    Ok(out)
}

/// Whether two entries are the same for a diff: type, mode, owner, size, device,
/// modification time and (for symlinks) target, as continuity's differ decides.
fn unchanged(lower: &Path, upper: &Path) -> io::Result<bool> {
    let (l, u) = (fs::symlink_metadata(lower)?, fs::symlink_metadata(upper)?);
    let same = l.mode() == u.mode()
        && l.uid() == u.uid()
        && l.gid() == u.gid()
        && l.rdev() == u.rdev()
        && (l.is_dir() || l.size() == u.size())
        && l.mtime() == u.mtime()
        && l.mtime_nsec() == u.mtime_nsec();
    if same && l.file_type().is_symlink() {
        return Ok(fs::read_link(lower)? == fs::read_link(upper)?);
    }
    Ok(same)
}

/// Writes into `out` what turns `lower` into `upper` (either may be absent: empty).
/// Returns whether anything was written.
fn compare(
    lower: Option<&Path>,
    upper: Option<&Path>,
    out: &Path,
    links: &mut Hardlinks,
) -> io::Result<bool> {
    let spec = CopySpec::default();
    let lower_names = names(lower)?;
    let upper_names = names(upper)?;
    let mut wrote = false;
    for name in lower_names.union(&upper_names) {
        let target = out.join(name);
        let l = lower
            .map(|d| d.join(name))
            .filter(|_| lower_names.contains(name));
        let u = upper
            .map(|d| d.join(name))
            .filter(|_| upper_names.contains(name));
        match (l, u) {
            (Some(_), None) => {
                // A whiteout: overlay's character device 0/0.
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &target,
                    rustix::fs::FileType::CharacterDevice,
                    rustix::fs::Mode::empty(),
                    0,
                )
                .map_err(io::Error::from)?;
                wrote = true;
            }
            (None, Some(u)) => {
                copy_entry(&u, &target, &spec, links)?;
                wrote = true;
            }
            (Some(l), Some(u)) => {
                let (lm, um) = (fs::symlink_metadata(&l)?, fs::symlink_metadata(&u)?);
                if lm.is_dir() && um.is_dir() {
                    // Both directories: only the changes inside, and the directory
                    // itself when its own metadata changed or it holds changes.
                    fs::create_dir(&target)?;
                    let inner = compare(Some(&l), Some(&u), &target, links)?;
                    if inner || !unchanged(&l, &u)? {
                        copy_dir_metadata(&u, &target)?;
                        wrote = true;
                    } else {
                        fs::remove_dir(&target)?;
                    }
                } else if !unchanged(&l, &u)? {
                    copy_entry(&u, &target, &spec, links)?;
                    wrote = true;
                }
            }
            (None, None) => {}
        }
    }
    Ok(wrote)
}

/// A directory's owner, mode and times onto another (its contents already written).
fn copy_dir_metadata(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::symlink_metadata(from)?;
    rustix::fs::chown(
        to,
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
    )
    .map_err(io::Error::from)?;
    fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    set_times(to, meta.mtime(), meta.mtime_nsec())
}
