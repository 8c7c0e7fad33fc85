//! Extended attributes of files, which image layers carry (PAX `SCHILY.xattr.` records)
//! and BuildKit's content checksums count.

use std::io;
use std::path::Path;

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
