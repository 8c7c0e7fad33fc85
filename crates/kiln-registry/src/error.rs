//! Registry errors.

use thiserror::Error;

/// What can go wrong talking to a registry.
#[derive(Debug, Error)]
pub enum Error {
    /// The HTTP exchange failed (connection, TLS, …).
    #[error("{url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// The registry answered with an error status.
    #[error("{url}: {status} {body}")]
    Status {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The content does not match its digest.
    #[error("{what} {expected}: content has digest {actual}")]
    DigestMismatch {
        /// Manifest or blob.
        what: &'static str,
        /// The digest asked for.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
    /// A manifest or index that cannot be decoded.
    #[error("invalid {what} from {reference}: {message}")]
    Invalid {
        /// What was decoded.
        what: &'static str,
        /// The reference.
        reference: String,
        /// Why.
        message: String,
    },
    /// No manifest for the platform in an index.
    #[error("{reference}: no match for platform {platform} in manifest list")]
    NoPlatform {
        /// The reference.
        reference: String,
        /// The platform asked for.
        platform: String,
    },
    /// Writing fetched content failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
