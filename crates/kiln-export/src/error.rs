//! Export errors.

use thiserror::Error;

/// What can go wrong exporting.
#[derive(Debug, Error)]
pub enum Error {
    /// File system access failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The content store failed.
    #[error(transparent)]
    Store(#[from] kiln_store::Error),
    /// The image config given is not valid.
    #[error("invalid image config: {0}")]
    Config(String),
}
