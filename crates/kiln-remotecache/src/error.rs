//! What can go wrong importing or exporting a remote cache.

/// A remote cache error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--cache-to`/`--cache-from` option that is missing, unknown or invalid.
    #[error("{0}")]
    Options(String),
    /// The cache's manifest, index or config cannot be read as BuildKit writes them.
    #[error("invalid cache {what}: {message}")]
    Invalid {
        /// What was read.
        what: &'static str,
        /// Why it is invalid.
        message: String,
    },
    /// No cache under the name given.
    #[error("{0}")]
    NotFound(String),
    /// Reading or writing a local directory.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The content store (blobs of the local state, or a local cache directory).
    #[error(transparent)]
    Store(#[from] kiln_store::Error),
    /// The registry.
    #[error(transparent)]
    Registry(#[from] kiln_registry::Error),
    /// A remote client's directory, reached through its session.
    #[error("{context}: {cause}")]
    Client {
        /// The directory and what was being done.
        context: String,
        /// What went wrong on the way.
        cause: String,
    },
    /// An object store (s3, azblob).
    #[error("{context}: {cause}")]
    Cloud {
        /// The cache and what was being done.
        context: String,
        /// What the store answered.
        cause: String,
    },
}
