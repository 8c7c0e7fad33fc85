//! File system helpers that never leave a root: path resolution that treats symlinks as
//! if the root were `/`, and the copy semantics of BuildKit's file ops.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use fs_err as fs;

/// Resolves `path` inside `root` as a process chrooted at `root` would: `..` stops at
/// the root, and symlinks (absolute or relative) are followed inside it. The last
/// component is followed only with `follow_last`.
pub(crate) fn resolve_in_root(root: &Path, path: &str, follow_last: bool) -> io::Result<PathBuf> {
    let mut resolved: Vec<String> = Vec::new();
    let mut pending: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .rev()
        .collect();
    let mut links = 0;
    while let Some(component) = pending.pop() {
        match component.as_str() {
            "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = resolved
            .iter()
            .fold(root.to_path_buf(), |p, c| p.join(c))
            .join(&component);
        let is_last = pending.is_empty();
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() && (!is_last || follow_last) => {
                links += 1;
                if links > 40 {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links: {path}"
                    )));
                }
                let target = fs::read_link(&candidate)?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    resolved.clear();
                }
                pending.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned)
                        .rev(),
                );
            }
            _ => resolved.push(component),
        }
    }
    Ok(resolved.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

/// A path made safe to join under a root: no root, no `..` escaping it.
pub(crate) fn clean_relative(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            _ => {}
        }
    }
    Some(out)
}

/// What a copy overrides on every entry it copies (`None` keeps the source's).
#[derive(Debug, Clone, Default)]
pub(crate) struct CopySpec {
    pub(crate) mode: Option<u32>,
    pub(crate) chown: Option<(u32, u32)>,
    pub(crate) timestamp: Option<i64>,
}

/// Go's `filepath.Match` for one path component.
pub(crate) fn match_component(pattern: &str, name: &str) -> bool {
    fn matches(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| matches(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && matches(&p[1..], &n[1..]),
            Some('[') => {
                let Some(close) = p.iter().skip(1).position(|c| *c == ']').map(|i| i + 1) else {
                    return false;
                };
                let Some(&c) = n.first() else { return false };
                let class = &p[1..close];
                let (negate, class) = match class.first() {
                    Some('^' | '!') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut found = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        found |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        found |= class[i] == c;
                        i += 1;
                    }
                }
                found != negate && matches(&p[close + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && matches(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && matches(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches(&p, &n)
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The source paths (relative to `root`) that `pattern` names, expanding wildcards.
pub(crate) fn expand_sources(
    root: &Path,
    pattern: &str,
    allow_wildcard: bool,
) -> io::Result<Vec<String>> {
    let components: Vec<&str> = pattern
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if !allow_wildcard || !components.iter().any(|c| has_wildcard(c)) {
        return Ok(vec![components.join("/")]);
    }
    let mut found = vec![String::new()];
    for component in components {
        let mut next = Vec::new();
        for prefix in &found {
            if !has_wildcard(component) {
                next.push(if prefix.is_empty() {
                    component.to_owned()
                } else {
                    format!("{prefix}/{component}")
                });
                continue;
            }
            let dir = resolve_in_root(root, prefix, true)?;
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names.into_iter().filter(|n| match_component(component, n)) {
                next.push(if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                });
            }
        }
        found = next;
    }
    found.retain(|p| {
        fs::symlink_metadata(resolve_in_root(root, p, false).unwrap_or_default()).is_ok()
    });
    Ok(found)
}

/// Files already copied in one operation, by (device, inode), so that hardlinked
/// sources stay hardlinked in the copy.
pub(crate) type Hardlinks = std::collections::HashMap<(u64, u64), PathBuf>;

/// Copies one file system entry (recursively) from `src` to `dst` (both real paths),
/// keeping modes, owners, times, symlinks and hardlinks unless the spec overrides them.
/// Copies everything in the directory `from` into the directory `to`, as it is.
pub(crate) fn copy_dir_contents(from: &Path, to: &Path) -> io::Result<()> {
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

pub(crate) fn copy_entry(
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
        if !dst.is_dir() {
            if fs::symlink_metadata(dst).is_ok() {
                fs::remove_file(dst)?;
            }
            fs::create_dir(dst)?;
        }
        let mut names: Vec<_> = fs::read_dir(src)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            copy_entry(&src.join(&name), &dst.join(&name), spec, links)?;
        }
    } else if file_type.is_symlink() {
        let target = fs::read_link(src)?;
        if fs::symlink_metadata(dst).is_ok() {
            remove_any(dst)?;
        }
        symlink(target, dst)?;
    } else if file_type.is_file() {
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
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(src, &mut names) else {
        return Ok(());
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if name.starts_with("trusted.overlay.") || name == "security.selinux" {
            continue;
        }
        let mut value = vec![0u8; 64 * 1024];
        if let Ok(len) = rustix::fs::lgetxattr(src, name, &mut value) {
            match rustix::fs::lsetxattr(dst, name, &value[..len], rustix::fs::XattrFlags::empty()) {
                // A file system without extended attributes (or this namespace) keeps none.
                Err(rustix::io::Errno::OPNOTSUPP) => {}
                other => other.map_err(io::Error::from)?,
            }
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
        let mode = spec.mode.unwrap_or(meta.mode() & 0o7777);
        fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))?;
    }
    let (secs, nanos) = match spec.timestamp {
        Some(ns) => (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000)),
        None => (meta.mtime(), meta.mtime_nsec()),
    };
    set_times(dst, secs, nanos)
}

/// Sets atime and mtime without following a symlink.
pub(crate) fn set_times(path: &Path, secs: i64, nanos: i64) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("real")).unwrap();
        symlink("/etc", root.join("escape")).unwrap();
        symlink("../../../real", root.join("rel")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/escape/passwd", true).unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve_in_root(root, "rel/x", true).unwrap(),
            root.join("real/x")
        );
        assert_eq!(
            resolve_in_root(root, "../../x", true).unwrap(),
            root.join("x")
        );
        assert_eq!(
            resolve_in_root(root, "escape", false).unwrap(),
            root.join("escape")
        );
    }

    #[test]
    fn glob_components() {
        assert!(match_component("*.txt", "a.txt"));
        assert!(!match_component("*.txt", "a.md"));
        assert!(match_component("file?.[ch]", "file1.c"));
        assert!(match_component("[!a]x", "bx"));
        assert!(!match_component("[!a]x", "ax"));
    }

    #[test]
    fn relative_paths_cannot_escape() {
        assert_eq!(clean_relative("/a/../b"), Some(PathBuf::from("b")));
        assert_eq!(clean_relative("../x"), None);
    }
}
