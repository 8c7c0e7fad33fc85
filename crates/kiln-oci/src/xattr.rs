//! Extended attributes of files, which image layers carry (PAX `SCHILY.xattr.` records)
//! and BuildKit's content checksums count.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

/// Whether the entry `name` of the open directory `dir` has extended attributes (not
/// following a symlink), asked relative to the directory: one path component to look
/// up however deep it is (Linux 6.13's `listxattrat`). `None` when the kernel cannot
/// answer that way (older kernels, seccomp): ask [`list`] by path then.
#[allow(unsafe_code)]
pub fn any_at(dir: BorrowedFd<'_>, name: &CStr) -> Option<bool> {
    const SYS_LISTXATTRAT: libc::c_long = 465;
    // A zero-sized list asks only for the names' total length.
    // SAFETY: `name` is NUL-terminated, and with a null list of size 0 the kernel
    // writes nothing.
    let length = unsafe {
        libc::syscall(
            SYS_LISTXATTRAT,
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            std::ptr::null_mut::<libc::c_char>(),
            0usize,
        )
    };
    if length >= 0 {
        return Some(length > 0);
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EOPNOTSUPP) => Some(false),
        _ => None,
    }
}

/// An entry's extended attributes (not following a symlink), sorted by name; none
/// where the file system keeps none. Names that are not UTF-8 are left out.
pub fn list(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let unsupported = |e: rustix::io::Errno| {
        matches!(e, rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NODATA)
    };
    let mut names = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let needed = rustix::fs::llistxattr_query(path).map_err(io::Error::from)?;
                names.resize(needed.max(names.len() * 2), 0);
            }
            Err(e) if unsupported(e) => return Ok(Vec::new()),
            Err(e) => return Err(io::Error::from(e)),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let mut value = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, name, &mut value) {
                Ok(len) => break Some(len),
                Err(rustix::io::Errno::RANGE) => {
                    let needed =
                        rustix::fs::lgetxattr_query(path, name).map_err(io::Error::from)?;
                    value.resize(needed.max(value.len() * 2), 0);
                }
                // Removed since it was listed.
                Err(e) if unsupported(e) => break None,
                Err(e) => return Err(io::Error::from(e)),
            }
        };
        if let Some(len) = len {
            value.truncate(len);
            out.push((name.to_owned(), value));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry with a user attribute has some, one without has none, asked relative
    /// to the open directory (or neither is known, on a kernel before 6.13).
    #[test]
    fn entries_with_attributes_are_told_apart_relative_to_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["tagged", "plain"] {
            fs_err::write(dir.path().join(name), name).unwrap();
        }
        rustix::fs::lsetxattr(
            dir.path().join("tagged"),
            "user.kiln",
            b"v1",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let fd = rustix::fs::open(
            dir.path(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        use std::os::fd::AsFd;
        let answers = (any_at(fd.as_fd(), c"tagged"), any_at(fd.as_fd(), c"plain"));
        let release = fs_err::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut version = release
            .split(['.', '-'])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let new_kernel = (version.next().unwrap_or(0), version.next().unwrap_or(0)) >= (6, 13);
        if new_kernel {
            assert_eq!(answers, (Some(true), Some(false)));
        } else {
            assert_eq!(answers, (None, None), "kernel {release}");
        }
        assert_eq!(
            list(&dir.path().join("tagged")).unwrap(),
            [("user.kiln".to_owned(), b"v1".to_vec())]
        );
    }
}
