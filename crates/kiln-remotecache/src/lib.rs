//! Cache import/export: the cache-record format of BuildKit and its backends inline,
//! registry and local (gha, s3 and azblob are later slices).
//!
//! - [`ExportOptions`] / [`ImportOptions`]: `--cache-to` / `--cache-from` attributes,
//!   parsed once.
//! - [`format`]: the `application/vnd.buildkit.cacheconfig.v0` config, the manifest or
//!   index listing it with the layer blobs, and [`CacheIndex`], results by key.
//! - [`CacheBackend`]: where a cache's manifest and blobs live, one file per backend
//!   ([`LocalCache`], [`RegistryCache`]); [`inline`] puts the records in the image's
//!   config instead.
//! - [`export()`] writes a solve's records and their layer blobs to a backend;
//!   [`Importer`] reads a cache in the background and answers lookups by key.
//!
//! Keys are `kiln_solver::cache_key`'s. This crate takes plain records and blobs from
//! the content store: it never sees LLB, snapshots or the worker (the engine maps the
//! worker's records and import port onto it).

mod error;
mod export;
pub mod format;
mod import;
pub mod inline;
mod local;
mod options;
mod registry;

use std::io::{Read, Write};

use kiln_oci::Descriptor;

pub use error::Error;
pub use export::{ExportSummary, export};
pub use format::{CacheIndex, CachedResult, ExportRecord, ExportResult};
pub use import::Importer;
pub use local::LocalCache;
pub use options::{
    CacheMode, ExportOptions, ExportTarget, ImportOptions, ImportSource, LayerOptions,
};
pub use registry::RegistryCache;

/// Where a cache's manifest (or index) and blobs are kept.
pub trait CacheBackend: Send + Sync {
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
