//! OCI/Docker image model: platforms and image references so far; digests, descriptors,
//! media types, image/index/config, OCI layout and layer tars join as they get code.
//!
//! This crate is the vocabulary at the bottom of the workspace: it depends on no other
//! kiln crate.

mod platform;
mod reference;

pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError};
