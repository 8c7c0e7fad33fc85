//! Bake errors.

use thiserror::Error;

/// What can go wrong reading or resolving Bake files.
#[derive(Debug, Error)]
pub enum Error {
    /// A file that cannot be read.
    #[error("{0}")]
    Io(String),
    /// An HCL (or JSON) syntax or evaluation problem, `Summary; Detail` as buildx words it.
    #[error("{0}")]
    Hcl(String),
    /// Anything else, in buildx's words.
    #[error("{0}")]
    Invalid(String),
}
