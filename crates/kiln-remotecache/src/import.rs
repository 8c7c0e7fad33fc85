//! Reading a cache in the background: [`Importer::start`] returns at once and loads the
//! manifest and config on a thread of its own; a lookup waits for it only when it comes
//! (a step the local cache answers never asks). Layer blobs are fetched one by one, by
//! the worker, for the results it reuses.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};

use kiln_oci::Descriptor;

use crate::format::{
    CacheConfig, CacheIndex, CachedResult, Listed, annotated_layers, parse_manifest,
};
use crate::{CacheBackend, Error, Layout, inline};

/// The largest config (or image config) read, against a hostile cache.
const MAX_CONFIG_SIZE: u64 = 64 << 20;

type Loaded = Option<Result<Arc<CacheIndex>, String>>;

/// A cache being (or having been) read.
pub struct Importer {
    name: String,
    backend: Arc<dyn CacheBackend>,
    loaded: Arc<(Mutex<Loaded>, Condvar)>,
}

impl std::fmt::Debug for Importer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("name", &self.name)
            .finish()
    }
}

impl Importer {
    /// Starts reading the cache of `backend` (`name` as the user wrote it).
    pub fn start(name: &str, backend: Arc<dyn CacheBackend>) -> Self {
        let loaded: Arc<(Mutex<Loaded>, Condvar)> = Arc::default();
        let (thread_backend, thread_loaded) = (Arc::clone(&backend), Arc::clone(&loaded));
        std::thread::spawn(move || {
            let result = load(thread_backend.as_ref())
                .map(Arc::new)
                .map_err(|e| e.to_string());
            let (slot, ready) = &*thread_loaded;
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            ready.notify_all();
        });
        Self {
            name: name.to_owned(),
            backend,
            loaded,
        }
    }

    /// How the user named the cache.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cache's index, once read (waits for it).
    pub fn index(&self) -> Result<Arc<CacheIndex>, Error> {
        let (slot, ready) = &*self.loaded;
        let mut loaded = slot.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(result) = &*loaded {
                return result.clone().map_err(Error::NotFound);
            }
            loaded = ready.wait(loaded).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The result recorded under `key` (waits for the cache to be read).
    pub fn lookup(&self, key: &str) -> Result<Option<CachedResult>, Error> {
        Ok(self.index()?.get(key).cloned())
    }

    /// Per input of the record keyed `key`, the content record it links to, if any.
    pub fn content_links(&self, key: &str) -> Result<Option<Vec<Option<String>>>, Error> {
        Ok(self.index()?.content_links(key).cloned())
    }

    /// Writes a layer blob to `out` (the caller verifies its digest).
    pub fn fetch(&self, blob: &Descriptor, out: &mut dyn Write) -> Result<(), Error> {
        self.backend.read_blob(blob, out)
    }
}

/// A small blob, checked against its digest.
fn read_verified(
    backend: &dyn CacheBackend,
    blob: &Descriptor,
    what: &'static str,
) -> Result<Vec<u8>, Error> {
    if blob.size > MAX_CONFIG_SIZE {
        return Err(Error::Invalid {
            what,
            message: format!(
                "{} is {} bytes, more than a cache config may be",
                blob.digest, blob.size
            ),
        });
    }
    let mut bytes = Vec::new();
    backend.read_blob(blob, &mut bytes)?;
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut hasher, &bytes);
    let actual = format!("sha256:{}", kiln_store::sha256_hex(hasher));
    if actual != blob.digest {
        return Err(Error::Invalid {
            what,
            message: format!("{} has digest {actual}", blob.digest),
        });
    }
    Ok(bytes)
}

/// Reads a cache's manifest and config into an index.
fn load(backend: &dyn CacheBackend) -> Result<CacheIndex, Error> {
    let manifest = backend.read_manifest()?;
    if backend.layout() == Layout::AnnotatedConfig {
        if manifest.len() as u64 > MAX_CONFIG_SIZE {
            return Err(Error::Invalid {
                what: "config",
                message: format!("{} bytes, more than a cache config may be", manifest.len()),
            });
        }
        let config = parse_config(&manifest)?;
        return Ok(CacheIndex::new(&config, &annotated_layers(&config)?));
    }
    match parse_manifest(&manifest)? {
        Listed::Cache { config, layers } => {
            let config = parse_config(&read_verified(backend, &config, "config")?)?;
            Ok(CacheIndex::new(&config, &layers))
        }
        Listed::Image(image) => {
            let bytes = read_verified(backend, &image.config, "image config")?;
            let config = inline::from_image(&image, &bytes)?.ok_or_else(|| Error::Invalid {
                what: "manifest",
                message: "an image without an inline cache (build it with --cache-to type=inline)"
                    .to_owned(),
            })?;
            Ok(CacheIndex::new(&config, &image.layers))
        }
    }
}

fn parse_config(bytes: &[u8]) -> Result<CacheConfig, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Invalid {
        what: "config",
        message: e.to_string(),
    })
}
