//! File system helpers that never leave a root: path resolution that treats symlinks as
//! if the root were `/`, and the copy semantics of BuildKit's file ops.

use std::io;
use std::path::{Component, Path, PathBuf};

use fs_err as fs;
pub(crate) use kiln_store::tree::{CopySpec, Hardlinks, copy_dir_contents, copy_entry, set_times};

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

/// A path made safe to join under a root: no root, and a `..` at the root stays there,
/// as containerd's `fs.RootPath` clamps tar entries and hard link names.
pub(crate) fn clamp_relative(path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

pub(crate) use kiln_llb::patterns::match_component;

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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

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
        assert!(!match_component("[!a]x", "ax"));
    }

    #[test]
    fn relative_paths_cannot_escape() {
        assert_eq!(clamp_relative("/a/../b"), PathBuf::from("b"));
        assert_eq!(clamp_relative("../../x/../y"), PathBuf::from("y"));
        assert_eq!(clamp_relative(".."), PathBuf::new());
    }
}
