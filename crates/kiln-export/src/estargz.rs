//! eStargz layers: the layer tar with every entry in a gzip member of its own, then a
//! table of contents (`stargz.index.json`, in a tar entry of its own member) and a
//! footer member whose gzip extra field says where the TOC starts. Any gzip reader
//! sees an ordinary tar; lazy-pulling snapshotters read the TOC and fetch files by
//! offset. The format is stargz-snapshotter's (`estargz`), written here from its spec.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use flate2::Compression as Level;
use kiln_store::sha256_hex;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::Error;

/// The TOC's name in the layer.
const TOC_NAME: &str = "stargz.index.json";
/// The first entry, saying no files are prioritized.
const NO_PREFETCH_LANDMARK: &str = ".no.prefetch.landmark";
/// Layer annotation: the TOC JSON's digest.
pub const TOC_DIGEST_ANNOTATION: &str = "containerd.io/snapshot/stargz/toc.digest";
/// Layer annotation: the uncompressed size.
pub const UNCOMPRESSED_SIZE_ANNOTATION: &str = "io.containers.estargz.uncompressed-size";

/// What writing an eStargz blob produced.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    /// Digest of the uncompressed stream (the diff id).
    pub(crate) diff_id: String,
    /// Annotations the manifest's layer descriptor carries.
    pub(crate) annotations: BTreeMap<String, String>,
}

/// Counts and hashes what is written, for offsets and digests.
struct Counter<W> {
    inner: W,
    written: u64,
    hasher: Sha256,
}

impl<W: Write> Write for Counter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `bytes` as one gzip member.
fn member(out: &mut impl Write, bytes: &[u8], level: Level) -> io::Result<()> {
    let mut gz = flate2::write::GzEncoder::new(out, level);
    gz.write_all(bytes)?;
    gz.finish()?;
    Ok(())
}

/// A tar header block plus padded data for a small regular file (no end-of-archive).
fn tar_file(name: &str, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_path(name)?;
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_mtime(0);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(512 + data.len().div_ceil(512) * 512, 0);
    Ok(out)
}

fn entry_type(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Directory => "dir",
        tar::EntryType::Symlink => "symlink",
        tar::EntryType::Link => "hardlink",
        tar::EntryType::Char => "char",
        tar::EntryType::Block => "block",
        tar::EntryType::Fifo => "fifo",
        _ => "reg",
    }
}

/// Converts a layer tar (read from `tar_bytes`) into an eStargz blob written to `out`.
pub(crate) fn write(
    tar_bytes: &[u8],
    out: &mut impl Write,
    level: Level,
) -> Result<Written, Error> {
    let mut out = Counter {
        inner: out,
        written: 0,
        hasher: Sha256::new(),
    };
    let mut uncompressed = Sha256::new();
    let mut uncompressed_size = 0u64;
    let mut entries: Vec<Value> = Vec::new();

    let landmark = tar_file(NO_PREFETCH_LANDMARK, &[0x0f])?;
    entries.push(json!({
        "name": NO_PREFETCH_LANDMARK, "type": "reg", "size": 1, "mode": 0o644,
        "offset": out.written, "digest": format!("sha256:{}", sha256_hex(Sha256::new_with_prefix([0x0f]))),
    }));
    uncompressed.update(&landmark);
    uncompressed_size += landmark.len() as u64;
    member(&mut out, &landmark, level)?;

    // Each entry's bytes run from the end of the previous one (extension headers
    // included) to the end of its padded data.
    let mut archive = tar::Archive::new(tar_bytes);
    let mut start = 0usize;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header = entry.header().clone();
        let size = entry.size();
        let data_start = entry.raw_file_position() as usize;
        let end = data_start + size.div_ceil(512) as usize * 512;
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_end_matches('/')
            .to_owned();
        let link = entry
            .link_name()?
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut content = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut content)?;
        let offset = out.written;
        let bytes = &tar_bytes[start..end.min(tar_bytes.len())];
        uncompressed.update(bytes);
        uncompressed_size += bytes.len() as u64;
        member(&mut out, bytes, level)?;
        start = end;

        let kind = entry_type(header.entry_type());
        let mut toc = json!({
            "name": name,
            "type": kind,
            "mode": header.mode().unwrap_or(0),
            "uid": header.uid().unwrap_or(0),
            "gid": header.gid().unwrap_or(0),
            "modtime": kiln_oci::rfc3339_utc(header.mtime().unwrap_or(0) as i64),
        });
        if kind == "reg" {
            toc["size"] = json!(size);
            toc["offset"] = json!(offset);
            toc["digest"] = json!(format!(
                "sha256:{}",
                sha256_hex(Sha256::new_with_prefix(&content))
            ));
        }
        if !link.is_empty() {
            toc["linkName"] = json!(link);
        }
        if kind == "char" || kind == "block" {
            toc["devMajor"] = json!(header.device_major().ok().flatten().unwrap_or(0));
            toc["devMinor"] = json!(header.device_minor().ok().flatten().unwrap_or(0));
        }
        entries.push(toc);
    }

    // The TOC: its own tar entry, then the end-of-archive blocks, in one member.
    let toc_json = serde_json::to_vec(&json!({"version": 1, "entries": entries}))
        .map_err(|e| Error::Config(e.to_string()))?;
    let toc_offset = out.written;
    let mut toc_tar = tar_file(TOC_NAME, &toc_json)?;
    toc_tar.extend_from_slice(&[0u8; 1024]);
    uncompressed.update(&toc_tar);
    uncompressed_size += toc_tar.len() as u64;
    member(&mut out, &toc_tar, level)?;

    // The footer: an empty member whose extra field holds the TOC's offset.
    let mut footer = vec![
        0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, 26, 0, b'S', b'G', 22, 0,
    ];
    footer.extend_from_slice(format!("{toc_offset:016x}STARGZ").as_bytes());
    footer.extend_from_slice(&[1, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.write_all(&footer)?;

    Ok(Written {
        diff_id: format!("sha256:{}", sha256_hex(uncompressed)),
        annotations: BTreeMap::from([
            (
                TOC_DIGEST_ANNOTATION.to_owned(),
                format!("sha256:{}", sha256_hex(Sha256::new_with_prefix(&toc_json))),
            ),
            (
                UNCOMPRESSED_SIZE_ANNOTATION.to_owned(),
                uncompressed_size.to_string(),
            ),
        ]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_points_at_the_toc_and_the_whole_is_one_tar() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(5);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "dir/hello.txt", &b"hello"[..])
            .unwrap();
        builder.finish().unwrap();
        let tar = builder.into_inner().unwrap();

        let mut blob = Vec::new();
        let written = write(&tar, &mut blob, Level::default()).unwrap();
        let footer = &blob[blob.len() - 51..];
        assert_eq!(&footer[32..38], b"STARGZ");
        let offset =
            u64::from_str_radix(std::str::from_utf8(&footer[16..32]).unwrap(), 16).unwrap();

        // The TOC member decompresses to the index's tar entry.
        let mut toc_tar = Vec::new();
        flate2::read::GzDecoder::new(&blob[offset as usize..])
            .read_to_end(&mut toc_tar)
            .unwrap();
        let mut toc_archive = tar::Archive::new(toc_tar.as_slice());
        let mut toc_entry = toc_archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(toc_entry.path().unwrap().to_str(), Some(TOC_NAME));
        let mut toc_json = Vec::new();
        toc_entry.read_to_end(&mut toc_json).unwrap();
        let toc: Value = serde_json::from_slice(&toc_json).unwrap();
        let hello = toc["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "dir/hello.txt")
            .unwrap()
            .clone();
        // The entry's member holds its header and data.
        let mut member_tar = Vec::new();
        flate2::read::GzDecoder::new(&blob[hello["offset"].as_u64().unwrap() as usize..])
            .read_to_end(&mut member_tar)
            .unwrap();
        assert_eq!(&member_tar[512..517], b"hello");
        assert_eq!(
            written.annotations[TOC_DIGEST_ANNOTATION],
            format!("sha256:{}", sha256_hex(Sha256::new_with_prefix(&toc_json)))
        );

        // A plain multi-member reader sees one tar: landmark, file, TOC.
        let mut all = Vec::new();
        flate2::read::MultiGzDecoder::new(blob.as_slice())
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(
            written.diff_id,
            format!("sha256:{}", sha256_hex(Sha256::new_with_prefix(&all)))
        );
        let names: Vec<String> = tar::Archive::new(all.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [NO_PREFETCH_LANDMARK, "dir/hello.txt", TOC_NAME]);
    }
}
