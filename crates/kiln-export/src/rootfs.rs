//! The `local` and `tar` exporters: the result's files, not an image. The caller mounts
//! the result read-only; this copies the tree or writes it as a tar.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use fs_err as fs;

use crate::Error;
use crate::layout::write_file_atomically;
use crate::options::Dest;

/// Writes the tree at `root` (or nothing, for an empty result) as a tar.
pub fn export_tar(root: Option<&Path>, dest: &Dest) -> Result<(), Error> {
    export_tar_split(&[("", root)], dest)
}

/// Writes several trees as one tar, each under its directory (a multi-platform result:
/// `linux_amd64/`, `linux_arm_v7/`…, as BuildKit's `platform-split` names them); a tree
/// with an empty name is at the top.
pub fn export_tar_split(trees: &[(&str, Option<&Path>)], dest: &Dest) -> Result<(), Error> {
    let write = |out: &mut dyn Write| {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        for (dir, root) in trees {
            if !dir.is_empty() {
                let mut header = tar::Header::new_ustar();
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, format!("{dir}/"), io::empty())?;
            }
            if let Some(root) = root {
                append_tree(&mut builder, root, dir)?;
            }
        }
        builder.finish()?;
        Ok(())
    };
    match dest {
        Dest::File(path) => write_file_atomically(path, write),
        Dest::Stdout => {
            let mut out = io::BufWriter::new(io::stdout().lock());
            write(&mut out)?;
            Write::flush(&mut out)?;
            Ok(())
        }
        Dest::Dir(path) => Err(Error::Unsupported(format!(
            "the tar exporter writes a file, not the directory {}",
            path.display()
        ))),
    }
}

/// Writes a PAX header carrying `xattrs` (Go's `SCHILY.xattr.NAME` records) for the
/// entry that follows.
fn append_xattrs(
    builder: &mut tar::Builder<impl Write>,
    xattrs: &[(String, Vec<u8>)],
) -> io::Result<()> {
    if xattrs.is_empty() {
        return Ok(());
    }
    let records: Vec<(String, &[u8])> = xattrs
        .iter()
        .map(|(name, value)| (format!("SCHILY.xattr.{name}"), value.as_slice()))
        .collect();
    builder.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
}

/// A file's extended attributes worth keeping: not overlayfs's own
/// (`trusted.overlay.*`) nor the host's SELinux label.
fn tree_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names) else {
        return Vec::new();
    };
    names[..n]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|n| std::str::from_utf8(n).ok())
        .filter(|n| !n.starts_with("trusted.overlay.") && *n != "security.selinux")
        .filter_map(|n| Some((n.to_owned(), xattr(path, n)?)))
        .collect()
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(path, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Appends the tree at `root` under `prefix` (sorted, deterministic): every entry with
/// its owner, mode, mtime and extended attributes, hardlinks as links to the first name.
fn append_tree(
    builder: &mut tar::Builder<impl Write>,
    root: &Path,
    prefix: &str,
) -> Result<(), Error> {
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), prefix.to_owned())];
    let mut entries: Vec<(PathBuf, String)> = Vec::new();
    while let Some((path, rel)) = stack.pop() {
        let mut names: Vec<String> = fs::read_dir(&path)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names.into_iter().rev() {
            let child_rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let child = path.join(&name);
            if fs::symlink_metadata(&child)?.is_dir() {
                stack.push((child.clone(), child_rel.clone()));
            }
            entries.push((child, child_rel));
        }
    }
    entries.sort_by(|a, b| a.1.cmp(&b.1));
    for (path, rel) in entries {
        let meta = fs::symlink_metadata(&path)?;
        let mut header = tar::Header::new_ustar();
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
        header.set_mode(meta.mode() & 0o7777);
        header.set_mtime(meta.mtime().max(0) as u64);
        let file_type = meta.file_type();
        let xattrs = tree_xattrs(&path);
        if file_type.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            append_xattrs(builder, &xattrs)?;
            builder.append_data(&mut header, format!("{rel}/"), io::empty())?;
        } else if file_type.is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            let target = fs::read_link(&path)?;
            append_xattrs(builder, &xattrs)?;
            builder.append_link(&mut header, &rel, target)?;
        } else if file_type.is_file() {
            let id = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&id) {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_size(0);
                    builder.append_link(&mut header, &rel, first)?;
                    continue;
                }
                links.insert(id, rel.clone());
            }
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.len());
            append_xattrs(builder, &xattrs)?;
            builder.append_data(&mut header, &rel, fs::File::open(&path)?)?;
        } else if file_type.is_char_device() || file_type.is_block_device() || file_type.is_fifo() {
            header.set_entry_type(if file_type.is_char_device() {
                tar::EntryType::Char
            } else if file_type.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            });
            header.set_size(0);
            let _ = header.set_device_major(rustix::fs::major(meta.rdev()));
            let _ = header.set_device_minor(rustix::fs::minor(meta.rdev()));
            append_xattrs(builder, &xattrs)?;
            builder.append_data(&mut header, &rel, io::empty())?;
        }
    }
    Ok(())
}

/// Copies the tree at `root` into `dest` (created if missing; files already there with
/// other names are kept, as BuildKit's local exporter does).
pub fn export_local(root: Option<&Path>, dest: &Path) -> Result<(), Error> {
    fs::create_dir_all(dest)?;
    if let Some(root) = root {
        copy_dir(root, dest)?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), Error> {
    let mut entries: Vec<_> = fs::read_dir(from)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let source = entry.path();
        let target = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&source)?;
        let file_type = meta.file_type();
        // Replace what is in the way unless both are directories.
        if let Ok(existing) = fs::symlink_metadata(&target) {
            if !(existing.is_dir() && file_type.is_dir()) {
                if existing.is_dir() {
                    fs::remove_dir_all(&target)?;
                } else {
                    fs::remove_file(&target)?;
                }
            }
        }
        if file_type.is_dir() {
            fs::create_dir_all(&target)?;
            copy_dir(&source, &target)?;
        } else if file_type.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&source)?, &target)?;
        } else if file_type.is_file() {
            fs::copy(&source, &target)?;
        } else {
            // Devices, fifos and sockets are not files a user wants on the host.
            continue;
        }
        set_metadata(&target, &meta)?;
    }
    Ok(())
}

/// Owner (when running as root), mode and times of `meta` onto `path`.
fn set_metadata(path: &Path, meta: &std::fs::Metadata) -> Result<(), Error> {
    let is_link = meta.file_type().is_symlink();
    if rustix::process::geteuid().is_root() {
        let _ = std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()));
    }
    if !is_link {
        fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)?;
    Ok(())
}
