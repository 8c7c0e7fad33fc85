//! Cache import/export: the cache-record format of BuildKit and its backends inline,
//! registry, local, s3, azblob and gha (the last three behind the cargo features of
//! their names).
//!
//! - [`ExportOptions`] / [`ImportOptions`]: `--cache-to` / `--cache-from` attributes,
//!   parsed once.
//! - [`format`]: the `application/vnd.buildkit.cacheconfig.v0` config, the manifest or
//!   index listing it with the layer blobs, and [`CacheIndex`], results by key.
//! - [`CacheBackend`]: where a cache's manifest and blobs live, one file per backend
//!   ([`LocalCache`], [`RegistryCache`], [`S3Config::open`], [`AzblobConfig::open`],
//!   [`GhaConfig::open`]);
//!   [`inline`] puts the records in the image's config instead.
//! - [`export()`] writes a solve's records and their layer blobs to a backend;
//!   [`Importer`] reads a cache in the background and answers lookups by key.
//!
//! Keys are `kiln_solver::cache_key`'s. This crate takes plain records and blobs from
//! the content store: it never sees LLB, snapshots or the worker (the engine maps the
//! worker's records and import port onto it).

pub mod azblob;
mod error;
mod export;
pub mod format;
pub mod gha;
mod import;
pub mod inline;
mod local;
#[cfg(feature = "cloud")]
mod objects;
mod options;
mod registry;
pub mod s3;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use kiln_oci::Descriptor;
use kiln_registry::RegistryClient;

pub use azblob::AzblobConfig;
pub use error::Error;
pub use export::{ExportSummary, export};
pub use format::{CacheIndex, CachedResult, ExportRecord, ExportResult};
pub use gha::GhaConfig;
pub use import::Importer;
pub use local::{ClientCache, LocalCache};
pub use options::{
    CacheMode, ExportOptions, ExportTarget, ImportOptions, ImportSource, LayerOptions, Secret,
};
pub use registry::RegistryCache;
pub use s3::S3Config;

/// How a backend keeps the description of a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// An OCI image manifest or index listing the config blob and the layer blobs
    /// (registry, local).
    Manifest,
    /// The config itself, each layer described in it (media type, size, uncompressed
    /// digest, creation time), as BuildKit keeps a cache in s3, azblob and gha.
    AnnotatedConfig,
}

/// Where a cache's manifest (or index) and blobs are kept.
pub trait CacheBackend: Send + Sync {
    /// How the cache is described.
    fn layout(&self) -> Layout {
        Layout::Manifest
    }
    /// How many blobs an export uploads at once.
    fn upload_parallelism(&self) -> usize {
        4
    }
    /// The cache manifest's (or index's) bytes.
    fn read_manifest(&self) -> Result<Vec<u8>, Error>;
    /// Writes a blob to `out` (the caller verifies it).
    fn read_blob(&self, blob: &Descriptor, out: &mut dyn Write) -> Result<(), Error>;
    /// Whether it holds a blob already.
    fn has_blob(&self, blob: &Descriptor) -> Result<bool, Error>;
    /// Stores a blob, unless it is there already.
    fn write_blob(&self, blob: &Descriptor, content: &mut (dyn Read + Send)) -> Result<(), Error>;
    /// Stores the manifest under the cache's name (after every blob it lists).
    fn write_manifest(&self, bytes: &[u8], media_type: &str) -> Result<(), Error>;
}

/// A client's content store, when the builder runs apart from its client: a daemon
/// reaches a `type=local` cache directory through the client's session (BuildKit's
/// `local:DIR` store). Blobs by digest; the client keeps the directory's index.json.
pub trait ClientStore: Send + Sync + std::fmt::Debug {
    /// The blob's size; `None` when the store lacks it.
    fn size(&self, digest: &str) -> Result<Option<u64>, Error>;
    /// Writes the blob to `out`.
    fn read(&self, digest: &str, out: &mut dyn Write) -> Result<(), Error>;
    /// Stores a blob of `size` bytes (the store checks `digest`); a blob it has
    /// already is kept.
    fn write(&self, digest: &str, size: u64, content: &mut (dyn Read + Send)) -> Result<(), Error>;
}

/// A remote client's directories as content stores.
pub trait ClientDirs: Send + Sync + std::fmt::Debug {
    /// The store of the client's directory `dir` (as the client named it).
    fn store(&self, dir: &Path) -> Result<Arc<dyn ClientStore>, Error>;
}

impl ImportSource {
    /// The backend an import reads (`registry` for `type=registry`; `client` for
    /// `type=local` when the directory is a remote client's).
    pub fn open(
        &self,
        registry: &Arc<RegistryClient>,
        client: Option<&dyn ClientDirs>,
    ) -> Result<Arc<dyn CacheBackend>, Error> {
        Ok(match self {
            Self::Local { src, tag, digest } => match client {
                Some(client) => {
                    Arc::new(ClientCache::new(src, client.store(src)?, digest.as_deref()))
                }
                None => Arc::new(LocalCache::new(src, tag, digest.as_deref())),
            },
            Self::Registry {
                reference,
                insecure,
            } => Arc::new(RegistryCache::new(
                Arc::clone(registry),
                reference.clone(),
                *insecure,
            )),
            Self::S3(config) => config.open()?,
            Self::Azblob(config) => config.open(false)?,
            Self::Gha(config) => config.open()?,
        })
    }
}

impl ExportTarget {
    /// The backend an export writes, `None` for `type=inline` (the image carries it);
    /// `client` for `type=local` when the directory is a remote client's.
    pub fn open(
        &self,
        registry: &Arc<RegistryClient>,
        client: Option<&dyn ClientDirs>,
    ) -> Result<Option<Arc<dyn CacheBackend>>, Error> {
        Ok(Some(match self {
            Self::Inline => return Ok(None),
            Self::Local { dest, tag } => match client {
                Some(client) => Arc::new(ClientCache::new(dest, client.store(dest)?, None)),
                None => Arc::new(LocalCache::new(dest, tag, None)),
            },
            Self::Registry {
                reference,
                insecure,
            } => Arc::new(RegistryCache::new(
                Arc::clone(registry),
                reference.clone(),
                *insecure,
            )),
            Self::S3(config) => config.open()?,
            Self::Azblob(config) => config.open(true)?,
            Self::Gha(config) => config.open()?,
        }))
    }

    /// How a user names the export in messages (no credentials).
    pub fn display_name(&self) -> String {
        match self {
            Self::Local { dest, .. } => format!("type=local,dest={}", dest.display()),
            Self::Registry { reference, .. } => format!("type=registry,ref={reference}"),
            Self::Inline => "type=inline".to_owned(),
            Self::S3(config) => {
                format!("type=s3,bucket={},prefix={}", config.bucket, config.prefix)
            }
            Self::Azblob(config) => format!(
                "type=azblob,account_url={},container={}",
                config.account_url, config.container
            ),
            Self::Gha(config) => format!("type=gha,scope={}", config.scope),
        }
    }
}
