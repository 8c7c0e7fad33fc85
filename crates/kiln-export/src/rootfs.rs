//! The `local` and `tar` exporters: the result's files, not an image. The caller mounts
//! the result read-only; this copies the tree or writes it as a tar.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use fs_err as fs;

use crate::Error;
use crate::layer::write_tar;
use crate::layout::write_file_atomically;
use crate::options::Dest;

/// Writes the tree at `root` (or nothing, for an empty result) as a tar.
pub fn export_tar(root: Option<&Path>, dest: &Dest) -> Result<(), Error> {
    let write = |out: &mut dyn std::io::Write| match root {
        Some(root) => write_tar(root, &[], None, out),
        None => {
            tar::Builder::new(out).finish()?;
            Ok(())
        }
    };
    match dest {
        Dest::File(path) => write_file_atomically(path, write),
        Dest::Stdout => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            write(&mut out)?;
            std::io::Write::flush(&mut out)?;
            Ok(())
        }
        Dest::Dir(path) => Err(Error::Unsupported(format!(
            "the tar exporter writes a file, not the directory {}",
            path.display()
        ))),
    }
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
    .map_err(std::io::Error::from)?;
    Ok(())
}
