//! Source ops: images from registries, local contexts.

pub(crate) mod dockerignore;
pub(crate) mod image;
pub(crate) mod local;
