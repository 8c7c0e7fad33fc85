//! Layers: an overlay upper directory as a tar diff (whiteouts and opaque directories
//! in the OCI form), compressed into the content store in one pass.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fs_err as fs;
use kiln_oci::Compression;
use kiln_store::{BlobWriter, ContentStore};
use sha2::{Digest as _, Sha256};

use crate::Error;

/// A layer blob in the content store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Digest of the compressed blob.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: String,
    /// The `rewrite-timestamp` epoch its file times were clamped to, if any.
    pub clamped_to: Option<i64>,
    /// The `registry/repository` it was pulled from, if any (pushes mount it from there).
    pub source: Option<String>,
    /// Annotations of its manifest descriptor (eStargz's TOC digest and size).
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// A layer to export: its directory, and the blobs already made of it (a pulled base
/// layer's, or ones exported before, in any compression).
#[derive(Debug, Clone)]
pub struct Layer {
    /// The overlay upper directory.
    pub dir: PathBuf,
    /// The layers under it, nearest first: a file overlay copied up without changing it
    /// (a hardlink to a lower file does that) is left out of the diff.
    pub lowers: Vec<PathBuf>,
    /// Known blobs, the original first.
    pub blobs: Vec<Blob>,
    /// Whether it came from a registry (its original blob is the image's own).
    pub pulled: bool,
}

/// Hashes what passes through on its way to `inner`.
struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
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

/// A file's extended attributes worth keeping in a layer: not overlayfs's own
/// (`trusted.overlay.*`) nor the host's SELinux label.
fn layer_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
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

/// Whether the nearest lower layer holding `rel` has it as the same regular file.
fn unchanged_copy_up(path: &Path, meta: &std::fs::Metadata, rel: &str, lowers: &[PathBuf]) -> bool {
    for lower in lowers {
        let candidate = lower.join(rel);
        let Ok(lower_meta) = fs::symlink_metadata(&candidate) else {
            continue;
        };
        // One inode (a hardlinked copy): the same file, nothing to read.
        if lower_meta.dev() == meta.dev() && lower_meta.ino() == meta.ino() {
            return true;
        }
        let same = lower_meta.is_file()
            && lower_meta.len() == meta.len()
            && lower_meta.mode() == meta.mode()
            && lower_meta.uid() == meta.uid()
            && lower_meta.gid() == meta.gid()
            && lower_meta.mtime() == meta.mtime()
            && lower_meta.mtime_nsec() == meta.mtime_nsec();
        return same && fs::read(&candidate).ok() == fs::read(path).ok();
    }
    false
}

/// Writes the tar of `dir` (sorted, deterministic) into `out`; overlay whiteouts become
/// OCI whiteout entries. A mounted tree (no whiteouts) gives a plain tar of its files.
/// `clamp`: no entry is newer than this (Unix seconds; `rewrite-timestamp`).
pub(crate) fn write_tar(
    dir: &Path,
    lowers: &[PathBuf],
    clamp: Option<i64>,
    out: impl Write,
) -> Result<(), Error> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
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
        let mtime = clamp.map_or(meta.mtime(), |c| meta.mtime().min(c));
        header.set_mtime(mtime.max(0) as u64);
        let file_type = meta.file_type();
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_char_device() && meta.rdev() == 0 {
            // An overlay whiteout: the OCI form is an empty `.wh.<name>` file.
            let (parent, name) = rel
                .rsplit_once('/')
                .map_or(("", rel.as_str()), |(p, n)| (p, n));
            let wh = if parent.is_empty() {
                format!(".wh.{name}")
            } else {
                format!("{parent}/.wh.{name}")
            };
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(0);
            header.set_mode(0);
            builder.append_data(&mut header, wh, io::empty())?;
            continue;
        }
        let xattrs = layer_xattrs(&path);
        if file_type.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            append_xattrs(&mut builder, &xattrs)?;
            builder.append_data(&mut header, format!("{rel}/"), io::empty())?;
            if xattr(&path, "trusted.overlay.opaque").as_deref() == Some(b"y") {
                let mut wh = tar::Header::new_ustar();
                wh.set_entry_type(tar::EntryType::Regular);
                wh.set_size(0);
                wh.set_mode(0);
                builder.append_data(&mut wh, format!("{rel}/.wh..wh..opq"), io::empty())?;
            }
        } else if file_type.is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            let target = fs::read_link(&path)?;
            append_xattrs(&mut builder, &xattrs)?;
            builder.append_link(&mut header, &rel, target)?;
        } else if file_type.is_file() {
            if meta.nlink() > 1 && unchanged_copy_up(&path, &meta, &rel, lowers) {
                continue;
            }
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
            append_xattrs(&mut builder, &xattrs)?;
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
            append_xattrs(&mut builder, &xattrs)?;
            builder.append_data(&mut header, &rel, io::empty())?;
        }
    }
    builder.finish()?;
    Ok(())
}

/// Compression threads: every core.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A compressor in front of a blob being written.
enum Encoder {
    Plain(BlobWriter),
    Gzip(crate::pgzip::ParallelGzip<BlobWriter>),
    Zstd(zstd::Encoder<'static, BlobWriter>),
}

impl Encoder {
    fn new(
        writer: BlobWriter,
        compression: Compression,
        level: Option<u32>,
    ) -> Result<Self, Error> {
        Ok(match compression {
            Compression::Uncompressed => Self::Plain(writer),
            Compression::Gzip => Self::Gzip(crate::pgzip::ParallelGzip::new(
                writer,
                level.map_or(flate2::Compression::default(), flate2::Compression::new),
                threads(),
            )?),
            Compression::Zstd => {
                // zstd's default level 3, as BuildKit's default.
                let mut encoder = zstd::Encoder::new(writer, level.map_or(3, |l| l as i32))?;
                if threads() > 1 {
                    encoder.multithread(threads() as u32)?;
                }
                Self::Zstd(encoder)
            }
            Compression::Estargz => {
                unreachable!("eStargz blobs are written by store_estargz")
            }
        })
    }

    fn finish(self) -> Result<BlobWriter, Error> {
        Ok(match self {
            Self::Plain(w) => w,
            Self::Gzip(e) => e.finish()?,
            Self::Zstd(e) => e.finish()?,
        })
    }
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(buf),
            Self::Gzip(e) => e.write(buf),
            Self::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Gzip(e) => e.flush(),
            Self::Zstd(e) => e.flush(),
        }
    }
}

/// How a layer blob is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerFormat {
    /// Its compression.
    pub compression: Compression,
    /// The compression level, when given.
    pub level: Option<u32>,
    /// OCI media types instead of Docker's.
    pub oci: bool,
    /// No file time newer than this (`rewrite-timestamp` with `SOURCE_DATE_EPOCH`).
    pub clamp: Option<i64>,
}

/// Compresses a tar stream produced by `write` into the store: the tar is hashed (its
/// diff id) and the compressed stream hashed and stored (the blob digest) in one pass.
fn store_layer(
    store: &ContentStore,
    format: &LayerFormat,
    write: impl FnOnce(&mut dyn Write) -> Result<(), Error>,
) -> Result<Blob, Error> {
    if format.compression == Compression::Estargz {
        return store_estargz(store, format, write);
    }
    let encoder = Encoder::new(store.writer()?, format.compression, format.level)?;
    let mut tar_hash = HashWriter {
        inner: io::BufWriter::with_capacity(256 * 1024, encoder),
        hasher: Sha256::new(),
    };
    write(&mut tar_hash)?;
    let diff_id = format!("sha256:{}", kiln_store::sha256_hex(tar_hash.hasher));
    let encoder = tar_hash
        .inner
        .into_inner()
        .map_err(|e| Error::Io(e.into_error()))?;
    let writer = encoder.finish()?;
    let size = writer.size();
    let digest = writer.commit(None)?;
    Ok(Blob {
        digest,
        media_type: format.compression.layer_media_type(format.oci).to_owned(),
        size,
        diff_id,
        clamped_to: None,
        source: None,
        annotations: Default::default(),
    })
}

/// An eStargz blob: the tar is made in memory, then cut into gzip members with a TOC.
fn store_estargz(
    store: &ContentStore,
    format: &LayerFormat,
    write: impl FnOnce(&mut dyn Write) -> Result<(), Error>,
) -> Result<Blob, Error> {
    let mut tar = Vec::new();
    write(&mut tar)?;
    let mut writer = io::BufWriter::with_capacity(256 * 1024, store.writer()?);
    let level = format
        .level
        .map_or(flate2::Compression::default(), flate2::Compression::new);
    let written = crate::estargz::write(&tar, &mut writer, level)?;
    let writer = writer.into_inner().map_err(|e| Error::Io(e.into_error()))?;
    let size = writer.size();
    Ok(Blob {
        digest: writer.commit(None)?,
        media_type: Compression::Estargz.layer_media_type(format.oci).to_owned(),
        size,
        diff_id: written.diff_id,
        clamped_to: None,
        source: None,
        annotations: written.annotations,
    })
}

/// Writes `dir` (a layer directory over `lowers`) as a layer blob.
pub fn write_layer(
    store: &ContentStore,
    dir: &Path,
    lowers: &[PathBuf],
    format: &LayerFormat,
) -> Result<Blob, Error> {
    let mut blob = store_layer(store, format, |out| {
        write_tar(dir, lowers, format.clamp, out)
    })?;
    blob.clamped_to = format.clamp;
    Ok(blob)
}

/// The same layer in another compression: the stored blob decompressed and compressed
/// again (its diff id does not change).
pub fn recompress(store: &ContentStore, blob: &Blob, format: &LayerFormat) -> Result<Blob, Error> {
    let from = Compression::of_media_type(&blob.media_type).ok_or_else(|| {
        Error::Unsupported(format!(
            "cannot recompress a layer of type {}",
            blob.media_type
        ))
    })?;
    let file = io::BufReader::new(store.open_blob(&blob.digest)?);
    let mut tar: Box<dyn io::Read> = match from {
        Compression::Uncompressed => Box::new(file),
        Compression::Gzip | Compression::Estargz => {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        }
        Compression::Zstd => Box::new(zstd::Decoder::with_buffer(file)?),
    };
    let mut out = store_layer(store, format, |out| {
        io::copy(&mut tar, out)?;
        Ok(())
    })?;
    out.clamped_to = blob.clamped_to;
    // eStargz adds its index and landmark to the tar: another diff id, by design.
    if format.compression != Compression::Estargz && out.diff_id != blob.diff_id {
        return Err(Error::Unsupported(format!(
            "layer {} decompresses to {}, not its diff id {}",
            blob.digest, out.diff_id, blob.diff_id
        )));
    }
    Ok(out)
}
