//! Store errors.

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong in the local store.
#[derive(Debug, Error)]
pub enum Error {
    /// File system access failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A blob's content does not match the digest it was written under.
    #[error("content of blob does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the caller expected.
        expected: String,
        /// The digest of what was written.
        actual: String,
    },
    /// A digest string that is not `sha256:<hex>`.
    #[error("unsupported or malformed digest {0:?}")]
    BadDigest(String),
    /// The metadata database failed.
    #[error("metadata database: {0}")]
    Db(String),
    /// A mount or unmount failed.
    #[error("mounting {target}")]
    Mount {
        /// Where.
        target: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A snapshot that does not exist.
    #[error("snapshot {0} not found")]
    NoSnapshot(u64),
}

macro_rules! db_error {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Db(e.to_string())
            }
        }
    )*};
}

db_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
