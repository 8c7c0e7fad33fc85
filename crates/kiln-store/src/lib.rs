//! Local state: a content store of blobs by digest, a metadata database, and
//! snapshots on overlayfs.
//!
//! - [`ContentStore`]: blobs under `content/blobs/sha256/<hex>`, written to a temp file,
//!   verified against their digest, then renamed, so a blob on disk is always complete.
//! - [`MetadataDb`]: a redb database (`metadata.redb`) of small records by key.
//! - [`Snapshotter`]: filesystem snapshots as overlay layers; each snapshot is one upper
//!   directory on top of its parents', mounted with overlayfs when needed.
//!
//! This crate must not depend on the solver, worker, exec or registry crates.

mod content;
mod db;
mod error;
pub mod parallel;
mod snapshot;
pub mod tree;

pub use content::{BlobWriter, ContentStore, sha256_hex};
pub use db::MetadataDb;
pub use error::Error;
pub use snapshot::{Driver, MountGuard, Snapshot, SnapshotId, Snapshotter};
