//! OCI/Docker image model: platforms, image references, descriptors, manifests, indexes
//! and media types; OCI layout and layer tars join as they get code.
//!
//! This crate is the vocabulary at the bottom of the workspace: it depends on no other
//! kiln crate.

mod compression;
pub mod manifest;
mod platform;
mod reference;
mod time;

pub use compression::{Compression, convert_layer_media_type};
pub use manifest::{Descriptor, DescriptorPlatform, Index, Manifest, media_type};
pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError};
pub use time::{civil_from_days, days_from_civil, rfc3339_utc};
