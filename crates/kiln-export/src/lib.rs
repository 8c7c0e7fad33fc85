//! Exporters: turn a result's layers and an image config into an image, and write it
//! where the user asked (only the `oci` archive exporter so far).
//!
//! - [`layer`]: a snapshot layer (an overlay upper directory) as a tar diff, whiteouts
//!   converted, gzip-compressed, hashed in one pass.
//! - [`oci`]: config, manifest and index assembled and written as an OCI layout tar.
//!
//! This crate takes plain data (directories, blobs, JSON); it never sees LLB.

mod error;
pub mod layer;
pub mod oci;

pub use error::Error;
pub use layer::{Blob, Layer};
pub use oci::{ExportResult, OciOptions, write_oci_archive};
