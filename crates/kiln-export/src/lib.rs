//! Exporters: turn a result's layers and an image config into an image, and write it
//! where the user asked: `image`/`registry` (pushed), `oci`, `docker`, `local`, `tar`,
//! `cacheonly`.
//!
//! - [`options`]: an output's attributes into a typed [`Exporter`].
//! - [`layer`]: a snapshot layer as a tar diff (`diff`: BuildKit's overlay differ and
//!   containerd's tar writer; `gotar`: Go's `archive/tar` headers), compressed (gzip, zstd or none) and
//!   hashed in one pass; recompression of existing blobs.
//! - [`image`]: config, manifest (OCI or Docker media types) and annotations.
//! - [`index`]: a multi-platform result's images under an index or manifest list.
//! - [`layout`]: the OCI layout (plus Docker's manifest.json) as a tar or directory.
//! - [`rootfs`]: the result's files as a directory or tar.
//! - [`push`]: blobs and manifest to a registry.
//!
//! This crate takes plain data (directories, blobs, JSON); it never sees LLB.

mod diff;
mod error;
pub mod estargz;
mod gojson;
mod gotar;
pub mod image;
pub mod index;
pub mod layer;
pub mod layout;
pub mod options;
mod pgzip;
pub mod push;
pub mod rootfs;

pub use error::Error;
pub use image::{Image, assemble, choose_blob};
pub use index::{MultiPlatformImage, assemble_index};
pub use layer::{Blob, Layer};
pub use options::{ArchiveExport, Dest, Exporter, ImageExport, ImageOptions};
