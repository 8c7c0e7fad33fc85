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
        /// Whether the exchange was cut (reset, ended early, timed out), so that trying
        /// again may pass; a refused connection or a TLS failure is not.
        transient: bool,
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
        /// The seconds its `Retry-After` header asked to wait.
        retry_after: Option<u64>,
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

impl Error {
    /// Whether trying again may pass: an exchange cut short, 429 (too many requests) or
    /// a 5xx answer. A wrong digest or a 4xx is the same on every try.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Http { transient, .. } => *transient,
            Error::Status { status, .. } => *status == 429 || (500..600).contains(status),
            _ => false,
        }
    }

    /// How long the registry asked to wait before the next try.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Status {
                retry_after: Some(seconds),
                ..
            } => Some(std::time::Duration::from_secs(*seconds)),
            _ => None,
        }
    }
}
