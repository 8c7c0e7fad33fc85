//! The content store: blobs by sha256, written atomically and verified.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use fs_err as fs;
use sha2::{Digest as _, Sha256};

use crate::Error;

/// Lowercase hex of a sha256 state's result.
pub fn sha256_hex(hasher: Sha256) -> String {
    hex::encode(hasher.finalize())
}

/// Blobs by digest under `<root>/blobs/sha256/`.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

fn hex_of(digest: &str) -> Result<&str, Error> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| Error::BadDigest(digest.to_owned()))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::BadDigest(digest.to_owned()));
    }
    Ok(hex)
}

impl ContentStore {
    /// Opens (creating) a content store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        fs::create_dir_all(root.join("blobs/sha256"))?;
        fs::create_dir_all(root.join("ingest"))?;
        // Half-written blobs from an interrupted process are never valid: drop them.
        for entry in fs::read_dir(root.join("ingest"))? {
            let _ = fs::remove_file(entry?.path());
        }
        Ok(Self { root })
    }

    /// Where a blob lives (whether or not it exists).
    pub fn path(&self, digest: &str) -> Result<PathBuf, Error> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    /// Whether the blob is present.
    pub fn contains(&self, digest: &str) -> bool {
        self.path(digest).is_ok_and(|p| p.is_file())
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &str) -> Result<fs::File, Error> {
        Ok(fs::File::open(self.path(digest)?)?)
    }

    /// Every blob's digest and size.
    pub fn blobs(&self) -> Result<Vec<(String, u64)>, Error> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.root.join("blobs/sha256"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push((format!("sha256:{name}"), entry.metadata()?.len()));
        }
        Ok(out)
    }

    /// Deletes a blob (nothing may still need it).
    pub fn remove(&self, digest: &str) -> Result<(), Error> {
        match fs::remove_file(self.path(digest)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Reads a whole (small) blob.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>, Error> {
        Ok(fs::read(self.path(digest)?)?)
    }

    /// Starts writing a blob; [`BlobWriter::commit`] verifies and publishes it.
    pub fn writer(&self) -> Result<BlobWriter, Error> {
        let name = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let temp = self.root.join("ingest").join(name);
        Ok(BlobWriter {
            file: Some(fs::File::create(&temp)?),
            temp,
            hasher: Sha256::new(),
            size: 0,
            store: self.clone(),
        })
    }

    /// Writes `bytes` as a blob and returns its digest.
    pub fn write_all(&self, bytes: &[u8]) -> Result<String, Error> {
        let mut writer = self.writer()?;
        writer.write_all(bytes)?;
        writer.commit(None)
    }

    /// Copies `reader` into a blob, checking it against `expected` when given.
    pub fn copy_from(
        &self,
        reader: &mut impl Read,
        expected: Option<&str>,
    ) -> Result<String, Error> {
        let mut writer = self.writer()?;
        io::copy(reader, &mut writer)?;
        writer.commit(expected)
    }
}

/// A blob being written: hashed while written, published by [`BlobWriter::commit`].
#[derive(Debug)]
pub struct BlobWriter {
    file: Option<fs::File>,
    temp: PathBuf,
    hasher: Sha256,
    size: u64,
    store: ContentStore,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes, verifies against `expected` (when given) and renames into place.
    pub fn commit(mut self, expected: Option<&str>) -> Result<String, Error> {
        let file = self.file.take().expect("committed once");
        file.sync_all()?;
        drop(file);
        let digest = format!("sha256:{}", sha256_hex(std::mem::take(&mut self.hasher)));
        if let Some(expected) = expected.filter(|e| *e != digest) {
            let _ = fs::remove_file(&self.temp);
            return Err(Error::DigestMismatch {
                expected: expected.to_owned(),
                actual: digest,
            });
        }
        let target = self.store.path(&digest)?;
        fs::rename(&self.temp, &target)?;
        Ok(digest)
    }

    /// The temp file's path (for callers that need to read back while writing).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.as_mut().expect("open until commit").write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open until commit").flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs_err::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_verified_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = store.write_all(b"hello").unwrap();
        assert_eq!(
            digest,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(store.read(&digest).unwrap(), b"hello");
        let wrong = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        assert!(matches!(
            store.copy_from(&mut &b"other"[..], Some(wrong)),
            Err(Error::DigestMismatch { .. })
        ));
        assert!(!store.contains(wrong));
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
    }
}
