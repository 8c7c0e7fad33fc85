//! Directory trees as layers need them: copying an entry with everything it has
//! (owner, mode, times, extended attributes, hardlinks, devices), applying an overlay
//! layer (whiteouts and opaque directories) onto a tree, and writing the difference of
//! two trees as a layer. The native snapshotter and the worker's file ops share them.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use fs_err as fs;

/// What a copy overrides on every entry it copies (`None` keeps the source's).
#[derive(Debug, Clone, Default)]
pub struct CopySpec {
    /// Permission bits for every entry.
    pub mode: Option<u32>,
    /// A symbolic mode (`u+x,g-w`, `a=rX`) applied to each entry's own bits, as
    /// chmod(1) does; it wins over `mode`.
    pub symbolic_mode: Option<String>,
    /// Owner and group for every entry.
    pub chown: Option<(u32, u32)>,
    /// Modification time (nanoseconds since the epoch) for every entry.
    pub timestamp: Option<i64>,
    /// Regular files the copy leaves as they are (no owner, mode or time to change) may
    /// be hardlinked rather than copied: for copies between layers, which are never
    /// written once made.
    pub link: bool,
}

impl CopySpec {
    /// The permission bits an entry with `meta` gets.
    pub fn mode_of(&self, meta: &std::fs::Metadata) -> u32 {
        let own = meta.mode() & 0o7777;
        match (&self.symbolic_mode, self.mode) {
            (Some(symbolic), _) => apply_symbolic_mode(symbolic, own, meta.is_dir()).unwrap_or(own),
            (None, Some(mode)) => mode,
            (None, None) => own,
        }
    }

    /// Whether this copy leaves an entry with `meta` exactly as it is.
    fn keeps(&self, meta: &std::fs::Metadata) -> bool {
        self.chown
            .is_none_or(|owner| owner == (meta.uid(), meta.gid()))
            && self.mode_of(meta) == meta.mode() & 0o7777
            && self.timestamp.is_none_or(|ns| {
                ns.div_euclid(1_000_000_000) == meta.mtime()
                    && ns.rem_euclid(1_000_000_000) == meta.mtime_nsec()
            })
    }
}

/// Applies a symbolic mode to `mode`, as chmod(1): comma-separated clauses of who
/// (`u`, `g`, `o`, `a`; none means all), then one or more operations (`+`, `-`, `=`)
/// each with permissions (`r`, `w`, `x`, `X` (execute for directories and files some
/// class may execute), `s`, `t`) or a class to copy (`u`, `g`, `o`). `None` when the
/// text is not such a mode.
pub fn apply_symbolic_mode(symbolic: &str, mode: u32, is_dir: bool) -> Option<u32> {
    let mut mode = mode & 0o7777;
    for clause in symbolic.split(',') {
        let chars: Vec<char> = clause.chars().collect();
        let mut i = 0;
        let mut who = 0u32;
        while let Some(c) = chars.get(i).filter(|c| "ugoa".contains(**c)) {
            who |= match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                _ => 0o7777,
            };
            i += 1;
        }
        if who == 0 {
            who = 0o7777;
        }
        if i == chars.len() {
            return None;
        }
        while i < chars.len() {
            let op = chars[i];
            if !"+-=".contains(op) {
                return None;
            }
            i += 1;
            let mut perm = 0u32;
            if let Some(class) = chars.get(i).filter(|c| "ugo".contains(**c)) {
                let bits = match class {
                    'u' => (mode >> 6) & 7,
                    'g' => (mode >> 3) & 7,
                    _ => mode & 7,
                };
                perm = bits * 0o111;
                i += 1;
            } else {
                while let Some(c) = chars.get(i).filter(|c| "rwxXst".contains(**c)) {
                    perm |= match c {
                        'r' => 0o444,
                        'w' => 0o222,
                        'x' => 0o111,
                        'X' if is_dir || mode & 0o111 != 0 => 0o111,
                        's' => 0o6000,
                        't' => 0o1000,
                        _ => 0,
                    };
                    i += 1;
                }
            }
            let bits = perm & who;
            match op {
                '+' => mode |= bits,
                '-' => mode &= !bits,
                _ => mode = (mode & !who) | bits,
            }
        }
    }
    Some(mode)
}

/// Owner, extended attributes, mode and times of one entry onto another (as overlay's
/// copy-up gives a directory it copies).
pub fn copy_metadata(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    apply_metadata(src, dst, &meta, &CopySpec::default())
}

/// Files already copied in one operation, by (device, inode), so that hardlinked
/// sources stay hardlinked in the copy.
pub type Hardlinks = std::collections::HashMap<(u64, u64), PathBuf>;

/// Copies everything in the directory `from` into the directory `to`, as it is.
pub fn copy_dir_contents(from: &Path, to: &Path) -> io::Result<()> {
    let spec = CopySpec::default();
    let mut links = Hardlinks::new();
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        copy_entry(
            &entry.path(),
            &to.join(entry.file_name()),
            &spec,
            &mut links,
        )?;
    }
    Ok(())
}

/// Makes `dst` a directory: kept when it is one, replacing a file that is there.
/// Returns whether it was a directory already.
pub fn ensure_dir(dst: &Path) -> io::Result<bool> {
    if dst.is_dir() {
        return Ok(true);
    }
    if fs::symlink_metadata(dst).is_ok() {
        fs::remove_file(dst)?;
    }
    fs::create_dir(dst)?;
    Ok(false)
}

/// A directory's entry names, sorted (copies walk in a stable order).
pub fn sorted_names(dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
    let mut names = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

/// Copies one file system entry (recursively) from `src` to `dst` (both real paths),
/// keeping modes, owners, times, symlinks and hardlinks unless the spec overrides them.
pub fn copy_entry(
    src: &Path,
    dst: &Path,
    spec: &CopySpec,
    links: &mut Hardlinks,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    let file_type = meta.file_type();
    if file_type.is_file() && meta.nlink() > 1 {
        let id = (meta.dev(), meta.ino());
        if let Some(first) = links.get(&id) {
            if fs::symlink_metadata(dst).is_ok() {
                remove_any(dst)?;
            }
            return fs::hard_link(first, dst);
        }
        links.insert(id, dst.to_path_buf());
    }
    if file_type.is_dir() {
        ensure_dir(dst)?;
        for name in sorted_names(src)? {
            copy_entry(&src.join(&name), &dst.join(&name), spec, links)?;
        }
    } else if file_type.is_symlink() {
        let target = fs::read_link(src)?;
        if fs::symlink_metadata(dst).is_ok() {
            remove_any(dst)?;
        }
        symlink(target, dst)?;
    } else if file_type.is_file() {
        if spec.link && spec.keeps(&meta) {
            if fs::symlink_metadata(dst).is_ok() {
                remove_any(dst)?;
            }
            if fs::hard_link(src, dst).is_ok() {
                return Ok(());
            }
        }
        if fs::symlink_metadata(dst).is_ok_and(|m| !m.is_file()) {
            remove_any(dst)?;
        }
        fs::copy(src, dst)?;
    } else {
        // Devices, fifos and sockets are recreated rather than read.
        if fs::symlink_metadata(dst).is_ok() {
            remove_any(dst)?;
        }
        let mode = rustix::fs::Mode::from_raw_mode(meta.mode());
        let kind = rustix::fs::FileType::from_raw_mode(meta.mode());
        rustix::fs::mknodat(rustix::fs::CWD, dst, kind, mode, meta.rdev())
            .map_err(io::Error::from)?;
    }
    apply_metadata(src, dst, &meta, spec)
}

fn remove_any(path: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// Copies extended attributes (not overlayfs's own), as BuildKit's copy does.
fn copy_xattrs(src: &Path, dst: &Path) -> io::Result<()> {
    let Ok(listed) = kiln_oci::xattr::list(src) else {
        return Ok(());
    };
    for (name, value) in listed {
        if name.starts_with("trusted.overlay.") || name == "security.selinux" {
            continue;
        }
        match rustix::fs::lsetxattr(dst, &name, &value, rustix::fs::XattrFlags::empty()) {
            // A file system without extended attributes (or this namespace) keeps none.
            Err(rustix::io::Errno::OPNOTSUPP) => {}
            other => other.map_err(io::Error::from)?,
        }
    }
    Ok(())
}

/// Owner, extended attributes, mode and times of a copied entry.
fn apply_metadata(
    src: &Path,
    dst: &Path,
    meta: &std::fs::Metadata,
    spec: &CopySpec,
) -> io::Result<()> {
    let (uid, gid) = spec.chown.unwrap_or((meta.uid(), meta.gid()));
    rustix::fs::chownat(
        rustix::fs::CWD,
        dst,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)?;
    // After chown, which clears file capabilities.
    copy_xattrs(src, dst)?;
    if !meta.file_type().is_symlink() {
        let mode = spec.mode_of(meta);
        fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))?;
    }
    let (secs, nanos) = match spec.timestamp {
        Some(ns) => (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000)),
        None => (meta.mtime(), meta.mtime_nsec()),
    };
    set_times(dst, secs, nanos)
}

/// Sets atime and mtime without following a symlink.
pub fn set_times(path: &Path, secs: i64, nanos: i64) -> io::Result<()> {
    let time = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: nanos as _,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: time,
            last_modification: time,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

/// Whether an entry is an overlay whiteout (a 0/0 character device).
fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether a directory is marked opaque (it hides what the layers under it have).
pub fn is_opaque(dir: &Path) -> bool {
    let mut value = [0u8; 1];
    matches!(
        rustix::fs::lgetxattr(dir, "trusted.overlay.opaque", &mut value),
        Ok(1) if value[0] == b'y'
    )
}

/// Applies an overlay layer directory onto `target`, as overlayfs would show it on
/// top: whiteouts remove, opaque directories replace, everything else is copied over.
pub fn apply_layer(layer: &Path, target: &Path, links: &mut Hardlinks) -> io::Result<()> {
    for entry in fs::read_dir(layer)? {
        let entry = entry?;
        let src = entry.path();
        let dst = target.join(entry.file_name());
        let meta = fs::symlink_metadata(&src)?;
        if is_whiteout(&meta) {
            if fs::symlink_metadata(&dst).is_ok() {
                remove_any(&dst)?;
            }
        } else if meta.is_dir() && fs::symlink_metadata(&dst).is_ok_and(|m| m.is_dir()) {
            if is_opaque(&src) {
                remove_any(&dst)?;
                copy_entry(&src, &dst, &CopySpec::default(), links)?;
            } else {
                apply_layer(&src, &dst, links)?;
                apply_metadata(&src, &dst, &meta, &CopySpec::default())?;
            }
        } else {
            copy_entry(&src, &dst, &CopySpec::default(), links)?;
        }
    }
    Ok(())
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

/// Writes into `out` what turns `lower` into `upper` (either may be absent: empty), as
/// an overlay layer: what upper adds or changes, and a whiteout (a 0/0 character
/// device) for each path it lacks. Returns whether anything was written.
pub fn write_diff(
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
                    let inner = write_diff(Some(&l), Some(&u), &target, links)?;
                    if inner || !unchanged(&l, &u)? {
                        copy_metadata(&u, &target)?;
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

#[cfg(test)]
mod tests {
    use super::apply_symbolic_mode as chmod;

    #[test]
    fn symbolic_modes_as_chmod_applies_them() {
        assert_eq!(chmod("u+x", 0o644, false), Some(0o744));
        assert_eq!(chmod("u+x,g-r", 0o644, false), Some(0o704));
        assert_eq!(chmod("a=r", 0o755, false), Some(0o444));
        assert_eq!(chmod("go=u", 0o754, false), Some(0o777));
        assert_eq!(chmod("+X", 0o644, false), Some(0o644));
        assert_eq!(chmod("+X", 0o644, true), Some(0o755));
        assert_eq!(chmod("+X", 0o744, false), Some(0o755));
        assert_eq!(chmod("u+s", 0o755, false), Some(0o4755));
        assert_eq!(chmod("o-rwx", 0o777, false), Some(0o770));
        assert_eq!(chmod("ug+rw,o=", 0o401, false), Some(0o660));
        assert_eq!(chmod("u", 0o644, false), None);
        assert_eq!(chmod("u*x", 0o644, false), None);
    }
}
