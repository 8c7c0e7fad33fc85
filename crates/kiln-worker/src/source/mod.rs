//! Source ops: images from registries, local contexts, http downloads, git.

pub(crate) mod dockerignore;
pub(crate) mod image;
pub(crate) mod local;
pub(crate) mod remote;
