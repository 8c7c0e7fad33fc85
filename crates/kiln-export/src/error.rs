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
    /// An exporter option is wrong.
    #[error("--output type={exporter}: {message}")]
    Option {
        /// The exporter type.
        exporter: String,
        /// What is wrong.
        message: String,
    },
    /// Something asked for is not supported yet.
    #[error("{0}")]
    Unsupported(String),
    /// Pushing to a registry failed.
    #[error("pushing {name}")]
    Push {
        /// The image name.
        name: String,
        /// Why.
        source: kiln_registry::Error,
    },
    /// The image config given is not valid.
    #[error("invalid image config: {0}")]
    Config(String),
}
