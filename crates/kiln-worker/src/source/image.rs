//! `docker-image://REF`: resolve on the registry, fetch each layer blob into the content
//! store (verified), and unpack it into a snapshot layer of its own.

use std::collections::HashSet;
use std::io::{self, Read};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use fs_err as fs;
use kiln_llb::pb;
use kiln_oci::{Platform, Reference, media_type};
use kiln_registry::{RegistryClient, Resolved};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::fsutil::{clamp_relative, resolve_in_root, set_times};
use crate::{Error, Ref, Worker, sha256_hex};

pub(crate) const LAYERS_TABLE: &str = "layers";
pub(crate) const CHAINS_TABLE: &str = "layer-chains";

/// How a snapshot layer is exported: its blob and its uncompressed digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Compressed blob digest in the content store.
    pub blob: String,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: String,
    /// The `rewrite-timestamp` epoch its file times were clamped to, if any.
    #[serde(default)]
    pub clamped_to: Option<i64>,
    /// Which tar writer made it (`kiln_export::layer::TAR_VERSION`; 0: an older one, or
    /// pulled).
    #[serde(default)]
    pub tar_version: u32,
    /// Whether it is the blob the layer was pulled as.
    #[serde(default)]
    pub pulled: bool,
    /// Where it was pulled from (`registry/repository`), for cross-repository mounts.
    #[serde(default)]
    pub source: Option<String>,
    /// Annotations of its manifest descriptor (eStargz's TOC digest and size).
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// The blobs known for a snapshot layer (the original first) that are still stored.
pub(crate) fn layer_blobs(worker: &Worker, id: u64) -> Vec<LayerInfo> {
    let Some(bytes) = worker.db.get(LAYERS_TABLE, &id.to_string()).ok().flatten() else {
        return Vec::new();
    };
    // Records written before layers had several blobs hold one object.
    let blobs: Vec<LayerInfo> = serde_json::from_slice(&bytes)
        .or_else(|_| serde_json::from_slice::<LayerInfo>(&bytes).map(|one| vec![one]))
        .unwrap_or_default();
    blobs
        .into_iter()
        .filter(|info| worker.content.contains(&info.blob))
        .collect()
}

/// Records one more blob of a snapshot layer (another compression of the same diff).
pub(crate) fn add_layer_blob(worker: &Worker, id: u64, info: &LayerInfo) -> Result<(), Error> {
    let mut blobs = layer_blobs(worker, id);
    if blobs.iter().any(|b| b.blob == info.blob) {
        return Ok(());
    }
    blobs.push(info.clone());
    let bytes = serde_json::to_vec(&blobs).map_err(|e| Error::Unsupported(e.to_string()))?;
    worker.db.put(LAYERS_TABLE, &id.to_string(), &bytes)?;
    Ok(())
}

fn parse(reference: &str) -> Result<Reference, Error> {
    reference
        .parse()
        .map_err(|e: kiln_oci::ReferenceError| Error::Source(e.to_string()))
}

/// References resolved before, by reference and platform: what `resolve-mode=local`
/// uses, and what a build falls back on when the registry cannot be reached.
pub(crate) const RESOLVED_TABLE: &str = "resolved-images";

/// How an image reference is resolved (LLB's `image.resolvemode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResolveMode {
    /// Ask the registry; when it cannot be reached, use what it said last time (with a
    /// warning).
    #[default]
    Default,
    /// Always ask the registry (`--pull`, `image.resolvemode=pull`).
    Pull,
    /// Use what the registry said last time when known (`image.resolvemode=local`).
    Local,
}

impl ResolveMode {
    /// The mode an image source's attributes ask for.
    pub fn of_source(source: &pb::SourceOp) -> Self {
        match source.attrs.get("image.resolvemode").map(String::as_str) {
            Some("pull") => Self::Pull,
            Some("local") => Self::Local,
            _ => Self::Default,
        }
    }

    /// The mode BuildKit's gateway names (`ResolveMode` of a resolve request): `None`
    /// for a name it does not know.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "" | "default" => Some(Self::Default),
            "pull" => Some(Self::Pull),
            "local" => Some(Self::Local),
            _ => None,
        }
    }
}

/// A resolution kept in [`RESOLVED_TABLE`]; the config is in the content store.
#[derive(Serialize, Deserialize)]
struct Remembered {
    digest: String,
    manifest_digest: String,
    manifest: kiln_oci::Manifest,
}

fn remembered(worker: &Worker, key: &str) -> Option<Resolved> {
    let bytes = worker.db.get(RESOLVED_TABLE, key).ok()??;
    let kept: Remembered = serde_json::from_slice(&bytes).ok()?;
    let config = fs_err::read(worker.content.path(&kept.manifest.config.digest).ok()?).ok()?;
    Some(Resolved {
        digest: kept.digest,
        manifest_digest: kept.manifest_digest,
        manifest: kept.manifest,
        config,
    })
}

fn remember(worker: &Worker, key: &str, resolved: &Resolved) -> Result<(), Error> {
    if !worker.content.contains(&resolved.manifest.config.digest) {
        let mut writer = worker.content.writer()?;
        io::Write::write_all(&mut writer, &resolved.config)?;
        writer.commit(Some(&resolved.manifest.config.digest))?;
    }
    let kept = Remembered {
        digest: resolved.digest.clone(),
        manifest_digest: resolved.manifest_digest.clone(),
        manifest: resolved.manifest.clone(),
    };
    let bytes = serde_json::to_vec(&kept).unwrap_or_default();
    // The usual answer is the one remembered: no write (and no sync) for it.
    if worker.db.get(RESOLVED_TABLE, key)?.as_deref() != Some(bytes.as_slice()) {
        worker.db.put(RESOLVED_TABLE, key, &bytes)?;
    }
    Ok(())
}

/// Resolves a reference for a platform in `mode`, keeping what the registry said.
fn resolve(
    worker: &Worker,
    registry: &RegistryClient,
    parsed: &Reference,
    platform: &Platform,
    mode: ResolveMode,
) -> Result<Resolved, Error> {
    let key = format!("{parsed} {platform}");
    if mode == ResolveMode::Local {
        if let Some(resolved) = remembered(worker, &key) {
            return Ok(resolved);
        }
    }
    match registry.resolve(parsed, platform) {
        Ok(resolved) => {
            remember(worker, &key, &resolved)?;
            Ok(resolved)
        }
        Err(error @ kiln_registry::Error::Http { .. }) if mode == ResolveMode::Default => {
            match remembered(worker, &key) {
                Some(resolved) => {
                    worker.warn(format!(
                        "{parsed}: the registry cannot be reached ({error}); using {} as resolved before (--pull refuses this)",
                        resolved.digest
                    ));
                    Ok(resolved)
                }
                None => Err(error.into()),
            }
        }
        Err(error) => Err(error.into()),
    }
}

/// BuildKit's cache key of an image source (`mainManifestKey`): the digest the
/// reference resolves to (an index's for a multi-platform image), the platform and the
/// layer limit. A pinned reference (as the Dockerfile frontend writes them) needs no
/// registry.
pub(crate) fn cache_key(
    worker: &Worker,
    registry: &RegistryClient,
    reference: &str,
    platform: &Platform,
    source: &pb::SourceOp,
) -> Result<String, Error> {
    let parsed = parse(reference)?;
    let digest = match &parsed.digest {
        Some(digest) => digest.clone(),
        None => {
            resolve(
                worker,
                registry,
                &parsed,
                platform,
                ResolveMode::of_source(source),
            )?
            .digest
        }
    };
    Ok(main_manifest_key(&digest, platform, source))
}

/// BuildKit's `mainManifestKey` of an image source whose main manifest (or index) is
/// `digest`: that digest, the platform and the layer limit, for registry images and
/// OCI layouts alike.
pub(crate) fn main_manifest_key(
    digest: &str,
    platform: &Platform,
    source: &pb::SourceOp,
) -> String {
    let limit = source
        .attrs
        .get("image.layerlimit")
        .and_then(|l| l.parse::<i64>().ok());
    let json = crate::go_json::Object::new()
        .string("Digest", digest)
        .string("OS", &platform.os)
        .string("Arch", &platform.architecture)
        .some_string("Variant", &platform.variant)
        .some_string("OSVersion", &platform.os_version)
        .some_strings("OSFeatures", &platform.os_features)
        .some("Limit", limit.map(|l| l.to_string()))
        .finish();
    kiln_solver::cache_key::digest_of(json.as_bytes())
}

/// The canonical name, the digest it resolved to, and the config (for the frontend).
pub(crate) fn resolve_config(
    worker: &Worker,
    registry: &RegistryClient,
    reference: &str,
    platform: &Platform,
    mode: ResolveMode,
) -> Result<(String, String, Vec<u8>), Error> {
    let parsed = parse(reference)?;
    let resolved = resolve(worker, registry, &parsed, platform, mode)?;
    let mut name = parsed.clone();
    name.digest = None;
    Ok((name.to_string(), resolved.digest, resolved.config))
}

/// Pulls `platform`'s image through `registry` (the build's client's credentials) and
/// returns its layers as snapshots.
pub(crate) fn pull(
    worker: &Worker,
    registry: &RegistryClient,
    reference: &str,
    platform: &Platform,
    mode: ResolveMode,
    log: &(dyn Fn(&[u8]) + Sync),
) -> Result<Ref, Error> {
    let parsed = parse(reference)?;
    let resolved = resolve(worker, registry, &parsed, platform, mode)?;
    let origin = format!("{}/{}", parsed.domain, parsed.path);
    unpack_image(
        worker,
        &resolved.manifest.layers,
        Some(&origin),
        &|layer, out| {
            let mut progress = Progress {
                inner: out,
                digest: &layer.digest,
                total: layer.size,
                done: 0,
                reported: 0,
                log,
            };
            progress.report();
            registry.fetch_blob(&parsed, &layer.digest, &mut progress)?;
            progress.report();
            Ok(())
        },
    )
}

/// Where a layer blob comes from when the store does not have it yet.
type FetchBlob<'a> =
    dyn Fn(&kiln_oci::Descriptor, &mut dyn io::Write) -> Result<(), Error> + Sync + 'a;

/// How many blobs of one image are fetched at once.
const PARALLEL_FETCHES: usize = 3;

/// The snapshot layer a chain of layer digests was unpacked into, when it still is.
fn unpacked_layer(worker: &Worker, chain_key: &str) -> Result<Option<u64>, Error> {
    Ok(worker
        .db
        .get(CHAINS_TABLE, chain_key)?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|id| worker.snapshots.layer_dir(*id).is_dir()))
}

/// Fetches one layer blob into the store (verified), unless it is there already.
fn fetch_blob(
    worker: &Worker,
    layer: &kiln_oci::Descriptor,
    fetch: &FetchBlob<'_>,
) -> Result<(), Error> {
    let lock = worker.lock(&format!("blob {}", layer.digest));
    let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
    if !worker.content.contains(&layer.digest) {
        let mut writer = worker.content.writer()?;
        fetch(layer, &mut writer)?;
        writer.commit(Some(&layer.digest))?;
    }
    Ok(())
}

/// Fetches the blobs of the layers not unpacked yet that the store lacks, a few at a
/// time, each verified into the store.
fn fetch_missing(
    worker: &Worker,
    layers: &[kiln_oci::Descriptor],
    fetch: &FetchBlob<'_>,
) -> Result<(), Error> {
    let mut chain_key = String::new();
    let mut missing = Vec::new();
    for layer in layers {
        chain_key = sha256_hex(&[chain_key.as_bytes(), layer.digest.as_bytes()]);
        if unpacked_layer(worker, &chain_key)?.is_none() && !worker.content.contains(&layer.digest)
        {
            missing.push(layer);
        }
    }
    kiln_store::parallel::for_each_at_once(
        &missing,
        PARALLEL_FETCHES,
        |layer| fetch_blob(worker, layer, fetch),
        || Error::Unsupported("a fetch panicked".to_owned()),
    )
}

/// A remote cache's result as a snapshot chain, as an image's layers are unpacked.
pub(crate) fn unpack_layers(
    worker: &Worker,
    layers: &[kiln_oci::Descriptor],
    fetch: &FetchBlob<'_>,
) -> Result<Ref, Error> {
    unpack_image(worker, layers, None, fetch)
}

/// An image's layers as a snapshot chain: layers unpacked before are reused (by their
/// chain of digests), missing blobs fetched and verified into the store.
fn unpack_image(
    worker: &Worker,
    layers: &[kiln_oci::Descriptor],
    origin: Option<&str>,
    fetch: &FetchBlob<'_>,
) -> Result<Ref, Error> {
    // Blobs come in parallel; layers, each on the ones before, are unpacked in order.
    fetch_missing(worker, layers, fetch)?;
    let mut chain: Vec<u64> = Vec::new();
    let mut chain_key = String::new();
    for layer in layers {
        chain_key = sha256_hex(&[chain_key.as_bytes(), layer.digest.as_bytes()]);
        let lock = worker.lock(&format!("layer {chain_key}"));
        let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = unpacked_layer(worker, &chain_key)? {
            chain.push(id);
            continue;
        }
        // Fetched above, unless it went in between.
        fetch_blob(worker, layer, fetch)?;
        let parent = (!chain.is_empty()).then(|| kiln_store::Snapshot {
            chain: chain.clone(),
        });
        let (snapshot, ()) = crate::new_layer(worker, parent.as_ref(), |snapshot| {
            let blob = worker.content.open_blob(&layer.digest)?;
            let diff_id = if chain.is_empty() {
                // Nothing below: the layer's own directory is its whole view, no mount
                // needed (and no whiteout can apply), as containerd applies a first layer.
                apply_layer(
                    &worker.snapshots.layer_dir(snapshot.id()),
                    blob,
                    &layer.media_type,
                )?
            } else {
                let mount = worker.snapshots.mount(snapshot)?;
                let diff_id = apply_layer(mount.path(), blob, &layer.media_type)?;
                mount.commit()?;
                diff_id
            };
            let media = if layer.media_type == media_type::DOCKER_LAYER_GZIP {
                media_type::OCI_LAYER_GZIP.to_owned()
            } else {
                layer.media_type.clone()
            };
            add_layer_blob(
                worker,
                snapshot.id(),
                &LayerInfo {
                    blob: layer.digest.clone(),
                    media_type: media,
                    size: layer.size,
                    diff_id,
                    clamped_to: None,
                    tar_version: 0,
                    pulled: true,
                    source: origin.map(str::to_owned),
                    annotations: layer.annotations.clone(),
                },
            )?;
            worker.db.put(
                CHAINS_TABLE,
                &chain_key,
                snapshot.id().to_string().as_bytes(),
            )?;
            Ok(())
        })?;
        chain.push(snapshot.id());
    }
    Ok(Ref::unkeyed(chain))
}

/// The digest of what `selector` names in the OCI layout `dir` (a digest as it is, a
/// tag or nothing by index.json): an image's main manifest or index, as BuildKit keys it.
pub(crate) fn layout_main_digest(dir: &Path, selector: &str) -> Result<String, Error> {
    if selector.starts_with("sha256:") {
        return Ok(selector.to_owned());
    }
    let invalid = |what: &str| Error::Source(format!("OCI layout {}: {what}", dir.display()));
    let index: kiln_oci::Index = serde_json::from_slice(&fs::read(dir.join("index.json"))?)
        .map_err(|e| invalid(&format!("index.json: {e}")))?;
    index
        .manifests
        .iter()
        .find(|m| {
            selector.is_empty()
                || m.annotations
                    .get(kiln_oci::layout::REF_NAME)
                    .is_some_and(|tag| tag == selector)
        })
        .map(|m| m.digest.clone())
        .ok_or_else(|| invalid(&format!("no image {selector:?}")))
}

/// An image in an OCI layout directory (`oci-layout://` named contexts): the manifest
/// `selector` names (a digest, a tag, or nothing for the only one) for `platform`.
pub fn read_layout(
    dir: &Path,
    selector: &str,
    platform: &Platform,
) -> Result<(String, kiln_oci::Manifest, Vec<u8>), Error> {
    let invalid = |what: &str| Error::Source(format!("OCI layout {}: {what}", dir.display()));
    let blob = |digest: &str| -> Result<Vec<u8>, Error> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| invalid(&format!("bad digest {digest}")))?;
        let bytes = fs::read(dir.join("blobs/sha256").join(hex))?;
        if sha256_digest(&bytes) != digest {
            return Err(invalid(&format!("blob {digest} does not match its digest")));
        }
        Ok(bytes)
    };
    let index: kiln_oci::Index = serde_json::from_slice(&fs::read(dir.join("index.json"))?)
        .map_err(|e| invalid(&format!("index.json: {e}")))?;
    let chosen = kiln_oci::layout::select(&index, selector)
        .ok_or_else(|| invalid(&format!("no image {selector:?}")))?;
    let mut digest = chosen.digest.clone();
    let mut bytes = blob(&digest)?;
    if media_type::is_index(&chosen.media_type) {
        let nested: kiln_oci::Index =
            serde_json::from_slice(&bytes).map_err(|e| invalid(&e.to_string()))?;
        let manifest = nested
            .manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == platform.os && p.architecture == platform.architecture)
            })
            .ok_or_else(|| invalid(&format!("no manifest for {platform}")))?;
        digest = manifest.digest.clone();
        bytes = blob(&digest)?;
    }
    let manifest: kiln_oci::Manifest =
        serde_json::from_slice(&bytes).map_err(|e| invalid(&e.to_string()))?;
    let config = blob(&manifest.config.digest)?;
    Ok((digest, manifest, config))
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        kiln_store::sha256_hex(Sha256::new_with_prefix(bytes))
    )
}

/// Unpacks the image `selector` of the layout directory `dir`.
pub(crate) fn pull_layout(worker: &Worker, dir: &Path, selector: &str) -> Result<Ref, Error> {
    let (_, manifest, _) = read_layout(dir, selector, &worker.config.platform)?;
    unpack_image(worker, &manifest.layers, None, &|layer, out| {
        let hex = layer.digest.trim_start_matches("sha256:");
        io::copy(
            &mut fs::File::open(dir.join("blobs/sha256").join(hex))?,
            out,
        )?;
        Ok(())
    })
}

/// Hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A blob being pulled, reported in bytes as it arrives (`sha256:… 12.6MB / 40.1MB`),
/// every 8 MB and at the start and end.
struct Progress<'a, W> {
    inner: W,
    digest: &'a str,
    total: u64,
    done: u64,
    reported: u64,
    log: &'a dyn Fn(&[u8]),
}

impl<W> Progress<'_, W> {
    fn report(&mut self) {
        let mb = |bytes: u64| bytes as f64 / 1e6;
        let short = self.digest.get(..19).unwrap_or(self.digest);
        (self.log)(
            format!("{short} {:.1}MB / {:.1}MB\n", mb(self.done), mb(self.total)).as_bytes(),
        );
        self.reported = self.done;
    }
}

impl<W: io::Write> io::Write for Progress<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        if self.done - self.reported >= 8_000_000 {
            self.report();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Applies a layer tar onto a mounted snapshot (the merged view, so whiteouts simply
/// delete) and returns its diff id.
pub(crate) fn apply_layer(root: &Path, blob: impl Read, media: &str) -> Result<String, Error> {
    let decompressed: Box<dyn Read> = if media.ends_with("gzip") {
        // eStargz layers are several gzip members in a row.
        Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(blob)))
    } else if media.ends_with("zstd") {
        Box::new(zstd::Decoder::new(blob)?)
    } else {
        Box::new(io::BufReader::new(blob))
    };
    let mut hashing = HashingReader {
        inner: decompressed,
        hasher: Sha256::new(),
    };
    let options = ExtractOptions {
        owner: None,
        whiteouts: true,
    };
    extract_tar(root, &mut hashing, &options)?;
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(format!("sha256:{}", kiln_store::sha256_hex(hashing.hasher)))
}

fn remove_path(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    }
}

/// How [`extract_tar`] treats what it unpacks.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExtractOptions {
    /// Give every entry this owner instead of the archive's (`ADD --chown`).
    pub(crate) owner: Option<(u32, u32)>,
    /// Apply `.wh.` entries as overlay whiteouts (image layers), rather than
    /// unpacking them as the files they are (an archive that ADD unpacks).
    pub(crate) whiteouts: bool,
}

/// Extracts a tar stream under `root`, never writing outside it.
pub(crate) fn extract_tar(
    root: &Path,
    reader: &mut dyn Read,
    options: &ExtractOptions,
) -> Result<(), Error> {
    let mut archive = tar::Archive::new(reader);
    let mut written: HashSet<PathBuf> = HashSet::new();
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw_path = entry.path()?.to_string_lossy().into_owned();
        let rel = clamp_relative(&raw_path);
        let Some(file_name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let parent_rel = rel
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = resolve_in_root(root, &parent_rel, true)?;
        if let Some(hidden) = file_name.strip_prefix(".wh.").filter(|_| options.whiteouts) {
            if hidden == ".wh..opq" {
                if let Ok(children) = fs::read_dir(&parent) {
                    for child in children.filter_map(|c| c.ok()) {
                        if !written.contains(&child.path()) {
                            remove_path(&child.path())?;
                        }
                    }
                }
            } else {
                remove_path(&parent.join(hidden))?;
            }
            continue;
        }
        fs::create_dir_all(&parent)?;
        let dst = parent.join(&file_name);
        // PAX `SCHILY.xattr.NAME` records, as Go's archive/tar writes extended attributes.
        let xattrs: Option<Vec<(String, Vec<u8>)>> = entry.pax_extensions()?.map(|records| {
            records
                .filter_map(|r| r.ok())
                .filter_map(|r| {
                    let name = r.key().ok()?.strip_prefix("SCHILY.xattr.")?.to_owned();
                    Some((name, r.value_bytes().to_vec()))
                })
                .collect()
        });
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let (uid, gid) = options.owner.unwrap_or((
            header.uid().unwrap_or(0) as u32,
            header.gid().unwrap_or(0) as u32,
        ));
        let mtime = header.mtime().unwrap_or(0) as i64;
        let kind = header.entry_type();
        match kind {
            tar::EntryType::Directory => {
                if fs::symlink_metadata(&dst).is_ok_and(|m| !m.is_dir()) {
                    remove_path(&dst)?;
                }
                if !dst.exists() {
                    fs::create_dir(&dst)?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_path(&dst)?;
                let mut file = fs::File::create(&dst)?;
                io::copy(&mut entry, &mut file)?;
            }
            tar::EntryType::Symlink => {
                remove_path(&dst)?;
                let target = entry
                    .link_name()?
                    .map(|t| t.to_path_buf())
                    .unwrap_or_default();
                symlink(target, &dst)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let target_rel = clamp_relative(&target);
                let source = resolve_in_root(root, &target_rel.to_string_lossy(), false)?;
                remove_path(&dst)?;
                fs::hard_link(&source, &dst)?;
                written.insert(dst);
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                remove_path(&dst)?;
                let file_type = match kind {
                    tar::EntryType::Char => rustix::fs::FileType::CharacterDevice,
                    tar::EntryType::Block => rustix::fs::FileType::BlockDevice,
                    _ => rustix::fs::FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &dst,
                    file_type,
                    rustix::fs::Mode::from_raw_mode(mode),
                    dev,
                )
                .map_err(io::Error::from)?;
            }
            _ => continue,
        }
        rustix::fs::chownat(
            rustix::fs::CWD,
            &dst,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io::Error::from)?;
        if kind != tar::EntryType::Symlink {
            fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode))?;
        }
        // Extended attributes (file capabilities, ...) after chown, which clears
        // capabilities.
        if let Some(extensions) = xattrs {
            for (name, value) in extensions {
                match rustix::fs::lsetxattr(&dst, &name, &value, rustix::fs::XattrFlags::empty()) {
                    Err(rustix::io::Errno::OPNOTSUPP) => {}
                    other => other.map_err(|e| {
                        Error::Source(format!("setting {name} on {}: {e}", dst.display()))
                    })?,
                }
            }
        }
        if kind == tar::EntryType::Directory {
            dir_times.push((dst.clone(), mtime));
        } else {
            set_times(&dst, mtime, 0)?;
        }
        written.insert(dst);
    }
    // Directory times last: writing into a directory changes its mtime.
    dir_times.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (dir, mtime) in dir_times {
        set_times(&dir, mtime, 0)?;
    }
    Ok(())
}
