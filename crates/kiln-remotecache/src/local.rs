//! `type=local`: an OCI layout directory as BuildKit's client writes it: blobs under
//! `blobs/sha256/`, the cache manifest named in `index.json` by its tag
//! (`org.opencontainers.image.ref.name`, default `latest`), and `oci-layout`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_oci::{Descriptor, layout};
use kiln_store::ContentStore;

use crate::{CacheBackend, ClientStore, Error};

/// A cache in a local directory.
#[derive(Debug)]
pub struct LocalCache {
    dir: PathBuf,
    tag: String,
    digest: Option<String>,
    /// The directory as a content store, opened once: opening clears half-written
    /// blobs, which would be other uploads' of this export.
    store: std::sync::Mutex<Option<ContentStore>>,
}

impl LocalCache {
    /// The cache tagged `tag` in `dir`, or the manifest `digest` when given.
    pub fn new(dir: &Path, tag: &str, digest: Option<&str>) -> Self {
        Self {
            dir: dir.to_path_buf(),
            tag: tag.to_owned(),
            digest: digest.map(str::to_owned),
            store: std::sync::Mutex::new(None),
        }
    }

    fn store(&self) -> Result<ContentStore, Error> {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = &*store {
            return Ok(store.clone());
        }
        let opened = ContentStore::open(&self.dir)?;
        *store = Some(opened.clone());
        Ok(opened)
    }
}

impl CacheBackend for LocalCache {
    fn read_manifest(&self) -> Result<Vec<u8>, Error> {
        // Reading never creates the directory (opening it as a store would).
        if !self.dir.is_dir() {
            return Err(Error::NotFound(format!(
                "no cache in {}: no such directory",
                self.dir.display()
            )));
        }
        let digest = match &self.digest {
            Some(digest) => digest.clone(),
            None => {
                let index = self.dir.join("index.json");
                if !index.is_file() {
                    return Err(Error::NotFound(format!(
                        "no cache in {} (no index.json): export one there with --cache-to type=local,dest={}",
                        self.dir.display(),
                        self.dir.display()
                    )));
                }
                layout::tagged(&self.dir, &self.tag)
                    .map_err(|e| Error::Invalid {
                        what: "index.json",
                        message: e.to_string(),
                    })?
                    .map(|d| d.digest)
                    .ok_or_else(|| {
                        Error::NotFound(format!(
                            "no cache tagged {} in {}",
                            self.tag,
                            index.display()
                        ))
                    })?
            }
        };
        let store = self.store()?;
        let bytes = store.read(&digest).map_err(|e| {
            Error::NotFound(format!(
                "cache manifest {digest} in {}: {e}",
                self.dir.display()
            ))
        })?;
        // The manifest is checked against its digest like every blob.
        let mut check = store.writer()?;
        check.write_all(&bytes)?;
        check.commit(Some(&digest))?;
        Ok(bytes)
    }

    fn read_blob(&self, blob: &Descriptor, out: &mut dyn Write) -> Result<(), Error> {
        let mut file = self.store()?.open_blob(&blob.digest)?;
        std::io::copy(&mut file, out)?;
        Ok(())
    }

    fn has_blob(&self, blob: &Descriptor) -> Result<bool, Error> {
        Ok(self.store()?.contains(&blob.digest))
    }

    fn write_blob(&self, blob: &Descriptor, content: &mut (dyn Read + Send)) -> Result<(), Error> {
        let store = self.store()?;
        if !store.contains(&blob.digest) {
            store.copy_from(&mut &mut *content, Some(&blob.digest))?;
        }
        Ok(())
    }

    fn write_manifest(&self, bytes: &[u8], media: &str) -> Result<(), Error> {
        let digest = self.store()?.write_all(bytes)?;
        let manifest = Descriptor {
            media_type: media.to_owned(),
            digest,
            size: bytes.len() as u64,
            ..Descriptor::default()
        };
        Ok(layout::put_tagged(&self.dir, &manifest, &self.tag)?)
    }
}

/// A `type=local` cache in a remote client's directory, through the client's
/// content store: BuildKit's daemon-side local cache. The client reads the tag from
/// index.json before the build (an import arrives named by its manifest's digest) and
/// sets it after (from the manifest the build answers).
#[derive(Debug)]
pub struct ClientCache {
    dir: PathBuf,
    store: Arc<dyn ClientStore>,
    digest: Option<String>,
}

impl ClientCache {
    /// The cache in the client's `dir`, reached through `store`; an import's manifest
    /// is `digest`.
    pub fn new(dir: &Path, store: Arc<dyn ClientStore>, digest: Option<&str>) -> Self {
        Self {
            dir: dir.to_path_buf(),
            store,
            digest: digest.map(str::to_owned),
        }
    }
}

impl CacheBackend for ClientCache {
    fn read_manifest(&self) -> Result<Vec<u8>, Error> {
        let digest = self.digest.as_deref().ok_or_else(|| {
            Error::Options(format!(
                "local cache importer requires explicit digest: the client names the manifest of {} (its index.json tag)",
                self.dir.display()
            ))
        })?;
        if self.store.size(digest)?.is_none() {
            return Err(Error::NotFound(format!(
                "no cache manifest {digest} in {}",
                self.dir.display()
            )));
        }
        let mut bytes = Vec::new();
        self.store.read(digest, &mut bytes)?;
        let read = crate::export::sha256_digest(&bytes);
        if read != digest {
            return Err(Error::Invalid {
                what: "manifest",
                message: format!("{} in {} has digest {read}", digest, self.dir.display()),
            });
        }
        Ok(bytes)
    }

    fn read_blob(&self, blob: &Descriptor, out: &mut dyn Write) -> Result<(), Error> {
        self.store.read(&blob.digest, out)
    }

    fn has_blob(&self, blob: &Descriptor) -> Result<bool, Error> {
        Ok(self.store.size(&blob.digest)?.is_some())
    }

    fn write_blob(&self, blob: &Descriptor, content: &mut (dyn Read + Send)) -> Result<(), Error> {
        self.store.write(&blob.digest, blob.size, content)
    }

    fn write_manifest(&self, bytes: &[u8], _media: &str) -> Result<(), Error> {
        let digest = crate::export::sha256_digest(bytes);
        self.store
            .write(&digest, bytes.len() as u64, &mut &bytes[..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fs_err as fs;
    use kiln_oci::{Index, media_type};

    use kiln_solver::cache_key::{self, Link};

    use super::*;
    use crate::format::{ANNOTATION_UNCOMPRESSED, ExportRecord, ExportResult};
    use crate::{CacheMode, ExportOptions, ExportTarget, Importer, LayerOptions};

    fn options(dest: &Path) -> ExportOptions {
        ExportOptions {
            target: ExportTarget::Local {
                dest: dest.to_path_buf(),
                tag: "latest".to_owned(),
            },
            mode: CacheMode::Max,
            ignore_error: false,
            layers: LayerOptions {
                compression: kiln_oci::Compression::Gzip,
                compression_level: None,
                force_compression: false,
                oci_mediatypes: true,
            },
            image_manifest: true,
        }
    }

    #[test]
    fn an_export_is_read_back_by_key_and_retagging_moves_the_tag() {
        let temp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(temp.path().join("state")).unwrap();
        let blob = |bytes: &[u8]| Descriptor {
            media_type: media_type::OCI_LAYER_GZIP.to_owned(),
            digest: store.write_all(bytes).unwrap(),
            size: bytes.len() as u64,
            annotations: [(ANNOTATION_UNCOMPRESSED.to_owned(), "sha256:00".to_owned())].into(),
            ..Descriptor::default()
        };
        let (one, two) = (blob(b"one"), blob(b"two"));
        let source = cache_key::root_key(&cache_key::digest_of(b"source"), 0);
        let step_digest = cache_key::root_key(&cache_key::digest_of(b"step"), 0);
        let link = Link {
            selector: String::new(),
            key: source.clone(),
        };
        let step = cache_key::record_key(&step_digest, std::slice::from_ref(&link));
        let records = vec![
            ExportRecord {
                key: source.clone(),
                digest: source.clone(),
                inputs: vec![],
                result: None,
            },
            ExportRecord {
                key: step.clone(),
                digest: step_digest,
                inputs: vec![vec![link]],
                result: Some(ExportResult {
                    layers: vec![one.clone(), two.clone()],
                    created_at: "1970-01-01T00:01:40Z".to_owned(),
                }),
            },
        ];
        let dir = temp.path().join("cache");
        let cache = LocalCache::new(&dir, "latest", None);
        let summary = crate::export(&cache, &store, &[], &records, &options(&dir)).unwrap();
        assert_eq!((summary.records, summary.blobs), (2, 2));
        // Exported again: the tag names the new manifest only.
        crate::export(&cache, &store, &[], &records[1..], &options(&dir)).unwrap();
        let index: Index =
            serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
        assert_eq!(index.manifests.len(), 1);

        let importer = Importer::start("test", Arc::new(LocalCache::new(&dir, "latest", None)));
        let found = importer.lookup(&step).unwrap().unwrap();
        assert_eq!(
            found.layers.iter().map(|l| &l.digest).collect::<Vec<_>>(),
            [&one.digest, &two.digest]
        );
        assert_eq!(found.created, Some(100));
        let mut fetched = Vec::new();
        importer.fetch(&found.layers[1], &mut fetched).unwrap();
        assert_eq!(fetched, b"two");

        // A missing tag is a clear error, not a panic.
        let missing = Importer::start("test", Arc::new(LocalCache::new(&dir, "other", None)));
        let error = missing.lookup(&step).unwrap_err().to_string();
        assert!(error.contains("no cache tagged other"), "{error}");
    }
}
