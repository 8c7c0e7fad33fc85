//! `type=local`: an OCI layout directory as BuildKit's client writes it: blobs under
//! `blobs/sha256/`, the cache manifest named in `index.json` by its tag
//! (`org.opencontainers.image.ref.name`, default `latest`), and `oci-layout`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use fs_err as fs;
use kiln_oci::{Descriptor, Index, media_type};
use kiln_store::ContentStore;

use crate::{CacheBackend, Error};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

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

    fn read_index(&self) -> Result<Option<Index>, Error> {
        let path = self.dir.join("index.json");
        if !path.is_file() {
            return Ok(None);
        }
        serde_json::from_slice(&fs::read(&path)?)
            .map(Some)
            .map_err(|e| Error::Invalid {
                what: "index.json",
                message: format!("{}: {e}", path.display()),
            })
    }

    /// Writes `bytes` to `path` through a temporary file, so readers see all or nothing.
    fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
        let temp = path.with_extension(format!("tmp-{}", std::process::id()));
        fs::write(&temp, bytes)?;
        fs::rename(&temp, path)?;
        Ok(())
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
                let index = self.read_index()?.ok_or_else(|| {
                    Error::NotFound(format!(
                        "no cache in {} (no index.json): export one there with --cache-to type=local,dest={}",
                        self.dir.display(),
                        self.dir.display()
                    ))
                })?;
                index
                    .manifests
                    .iter()
                    .find(|d| d.annotations.get(REF_NAME) == Some(&self.tag))
                    .map(|d| d.digest.clone())
                    .ok_or_else(|| {
                        Error::NotFound(format!(
                            "no cache tagged {} in {}",
                            self.tag,
                            self.dir.join("index.json").display()
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
        let store = self.store()?;
        let digest = store.write_all(bytes)?;
        let mut index = self.read_index()?.unwrap_or_else(|| Index {
            schema_version: 2,
            media_type: media_type::OCI_INDEX.to_owned(),
            ..Index::default()
        });
        // The tag moves to the new manifest, as containerd's `ociindex` puts it.
        index
            .manifests
            .retain(|d| d.annotations.get(REF_NAME) != Some(&self.tag));
        index.manifests.push(Descriptor {
            media_type: media.to_owned(),
            digest,
            size: bytes.len() as u64,
            annotations: [(REF_NAME.to_owned(), self.tag.clone())].into(),
            ..Descriptor::default()
        });
        let encoded = serde_json::to_vec(&index).map_err(|e| Error::Invalid {
            what: "index.json",
            message: e.to_string(),
        })?;
        Self::write_atomically(&self.dir.join("index.json"), &encoded)?;
        Self::write_atomically(
            &self.dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
