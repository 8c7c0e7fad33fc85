//! Writing a solve's records to a backend: layer blobs first (a few at a time, each
//! skipped when the backend has it), then the config, then the manifest that names
//! them, so a reader never sees a manifest whose blobs are missing. A result reused
//! from an import without being fetched (a step skipped because a later one hit) is
//! exported with the import's blobs: fetched (verified) only if the target lacks them.

use kiln_oci::Descriptor;
use kiln_store::ContentStore;

use crate::format::{
    CACHE_CONFIG_MEDIA_TYPE, ExportRecord, annotate_layers, build_config, build_manifest,
};
use crate::{CacheBackend, Error, ExportOptions, Importer, Layout};

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// The cache manifest (or index) written, for the backends that keep one (what
    /// BuildKit answers as `cache.manifest`); `None` for an annotated config or when
    /// there was nothing to export.
    pub manifest: Option<Descriptor>,
    /// How many records.
    pub records: usize,
    /// How many layer blobs.
    pub blobs: usize,
}

/// Exports `records` to `backend` as `options` say; their blobs are in `store`, or in
/// one of `imports`.
pub fn export(
    backend: &dyn CacheBackend,
    store: &ContentStore,
    imports: &[&Importer],
    records: &[ExportRecord],
    options: &ExportOptions,
) -> Result<ExportSummary, Error> {
    let (mut config, blobs) = build_config(records);
    // As BuildKit: no layers, nothing worth exporting.
    if config.layers.is_empty() {
        return Ok(ExportSummary::default());
    }
    upload(backend, store, imports, &blobs)?;
    let encode = |config: &crate::format::CacheConfig| {
        serde_json::to_vec(config).map_err(|e| Error::Invalid {
            what: "config",
            message: e.to_string(),
        })
    };
    if backend.layout() == Layout::AnnotatedConfig {
        annotate_layers(&mut config, &blobs, options.layers.oci_mediatypes);
        let bytes = encode(&config)?;
        backend.write_manifest(&bytes, CACHE_CONFIG_MEDIA_TYPE)?;
        return Ok(ExportSummary {
            manifest: None,
            records: config.records.len(),
            blobs: blobs.len(),
        });
    }
    let config_bytes = encode(&config)?;
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
    Ok(ExportSummary {
        manifest: Some(Descriptor {
            media_type: media_type.to_owned(),
            digest: sha256_digest(&manifest),
            size: manifest.len() as u64,
            ..Descriptor::default()
        }),
        records: config.records.len(),
        blobs: blobs.len(),
    })
}

/// `sha256:` and the hex digest of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut hasher, bytes);
    format!("sha256:{}", kiln_store::sha256_hex(hasher))
}

/// Uploads blobs side by side; the first failure is returned.
fn upload(
    backend: &dyn CacheBackend,
    store: &ContentStore,
    imports: &[&Importer],
    blobs: &[Descriptor],
) -> Result<(), Error> {
    kiln_store::parallel::for_each_at_once(
        blobs,
        backend.upload_parallelism(),
        |blob| {
            if !store.contains(&blob.digest) {
                if backend.has_blob(blob)? {
                    return Ok(());
                }
                fetch_into_store(store, imports, blob)?;
            }
            let mut file = store.open_blob(&blob.digest)?;
            backend.write_blob(blob, &mut file)
        },
        || Error::Invalid {
            what: "upload",
            message: "an upload thread panicked".to_owned(),
        },
    )
}

/// Fetches a blob from the first import that has it into the store, verified.
fn fetch_into_store(
    store: &ContentStore,
    imports: &[&Importer],
    blob: &Descriptor,
) -> Result<(), Error> {
    let mut last = None;
    for import in imports {
        let mut writer = store.writer()?;
        match import.fetch(blob, &mut writer) {
            Ok(()) => {
                writer.commit(Some(&blob.digest))?;
                return Ok(());
            }
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::NotFound(format!("blob {} is in no store or import", blob.digest))
    }))
}
