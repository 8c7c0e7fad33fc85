//! Layers: an overlay upper directory as a tar diff (BuildKit's, see [`crate::diff`]),
//! compressed into the content store in one pass.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

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
    /// Which tar writer made it from a layer directory ([`TAR_VERSION`] now, 0 before
    /// kiln wrote BuildKit's bytes); a pulled blob keeps 0.
    pub tar_version: u32,
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

/// The version of the tar writer: blobs made by an older one (other bytes for the same
/// layer) are not reused, so an image has the same digest whichever kiln cached it.
pub const TAR_VERSION: u32 = 1;

/// Writes the layer diff of the upper directory `dir` over `lowers` (nearest first)
/// into `out`, byte for byte as BuildKit writes it (see [`crate::diff`]). `clamp`: no
/// entry is newer than this (Unix seconds; `rewrite-timestamp`).
pub(crate) fn write_tar(
    dir: &Path,
    lowers: &[PathBuf],
    clamp: Option<i64>,
    out: impl Write,
) -> Result<(), Error> {
    crate::diff::write_diff(dir, lowers, clamp, out)
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
        tar_version: 0,
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
        tar_version: 0,
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
    blob.tar_version = TAR_VERSION;
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
    out.tar_version = blob.tar_version;
    // eStargz adds its index and landmark to the tar: another diff id, by design.
    if format.compression != Compression::Estargz && out.diff_id != blob.diff_id {
        return Err(Error::Unsupported(format!(
            "layer {} decompresses to {}, not its diff id {}",
            blob.digest, out.diff_id, blob.diff_id
        )));
    }
    Ok(out)
}
