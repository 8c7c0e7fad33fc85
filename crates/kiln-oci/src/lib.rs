//! OCI/Docker image model: platforms, image references, descriptors, manifests, indexes,
//! image configs (`image`), media types and compressions, and reading an OCI layout
//! (`layout`; layer tars are written by `kiln-export`). Also the docker
//! configuration's registry credentials (`docker_config`), which the registry client
//! and a client's session both read (the lowest crate both reach), and Go's syntaxes
//! and table layout (`go`, `tabwriter`) that every crate printing or parsing as
//! BuildKit does shares.
//!
//! This crate is the vocabulary at the bottom of the workspace: it depends on no other
//! kiln crate.

mod compression;
pub mod docker_config;
pub mod go;
pub mod image;
pub mod layout;
pub mod manifest;
mod platform;
mod reference;
pub mod report;
pub mod tabwriter;
mod time;
pub mod xattr;

pub use compression::{Compression, convert_layer_media_type};
pub use manifest::{Descriptor, DescriptorPlatform, Index, Manifest, media_type};
pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError};
pub use time::{civil_from_days, days_from_civil, rfc3339_nano_utc, rfc3339_utc};
