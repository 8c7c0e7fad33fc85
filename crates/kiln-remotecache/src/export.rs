//! Writing a solve's records to a backend: layer blobs first (a few at a time, each
//! skipped when the backend has it), then the config, then the manifest that names
//! them, so a reader never sees a manifest whose blobs are missing.

use std::sync::atomic::{AtomicUsize, Ordering};

use kiln_oci::Descriptor;
use kiln_store::ContentStore;

use crate::format::{CACHE_CONFIG_MEDIA_TYPE, ExportRecord, build_config, build_manifest};
use crate::{CacheBackend, Error, ExportOptions};

/// How many blobs are uploaded at once.
const PARALLEL_UPLOADS: usize = 4;

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// The manifest's (or index's) digest; `None` when there was nothing to export.
    pub manifest_digest: Option<String>,
    /// How many records.
    pub records: usize,
    /// How many layer blobs.
    pub blobs: usize,
}

/// Exports `records` (their blobs in `store`) to `backend` as `options` say.
pub fn export(
    backend: &dyn CacheBackend,
    store: &ContentStore,
    records: &[ExportRecord],
    options: &ExportOptions,
) -> Result<ExportSummary, Error> {
    let (config, blobs) = build_config(records);
    // As BuildKit: no layers, nothing worth exporting.
    if config.layers.is_empty() {
        return Ok(ExportSummary::default());
    }
    upload(backend, store, &blobs)?;
    let config_bytes = serde_json::to_vec(&config).map_err(|e| Error::Invalid {
        what: "config",
        message: e.to_string(),
    })?;
    let config_descriptor = Descriptor {
        media_type: CACHE_CONFIG_MEDIA_TYPE.to_owned(),
        digest: store.write_all(&config_bytes)?,
        size: config_bytes.len() as u64,
        ..Descriptor::default()
    };
    backend.write_blob(&config_descriptor, &mut config_bytes.as_slice())?;
    let (manifest, media_type) = build_manifest(
        &config_descriptor,
        &blobs,
        options.image_manifest,
        options.layers.oci_mediatypes,
    )?;
    backend.write_manifest(&manifest, media_type)?;
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut hasher, &manifest);
    Ok(ExportSummary {
        manifest_digest: Some(format!("sha256:{}", kiln_store::sha256_hex(hasher))),
        records: config.records.len(),
        blobs: blobs.len(),
    })
}

/// Uploads blobs side by side; the first failure is returned.
fn upload(
    backend: &dyn CacheBackend,
    store: &ContentStore,
    blobs: &[Descriptor],
) -> Result<(), Error> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..PARALLEL_UPLOADS.min(blobs.len()))
            .map(|_| {
                scope.spawn(|| -> Result<(), Error> {
                    while let Some(blob) = blobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let mut file = store.open_blob(&blob.digest)?;
                        backend.write_blob(blob, &mut file)?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join().unwrap_or_else(|_| {
                Err(Error::Invalid {
                    what: "upload",
                    message: "an upload thread panicked".to_owned(),
                })
            })
        })
    })
}
