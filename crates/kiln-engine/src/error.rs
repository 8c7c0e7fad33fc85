//! Engine errors.

use thiserror::Error;

/// What can go wrong in a build.
#[derive(Debug, Error)]
pub enum Error {
    /// A problem with the request itself.
    #[error("{0}")]
    Usage(String),
    /// The Dockerfile cannot be read or converted.
    #[error(transparent)]
    Dockerfile(kiln_dockerfile::Error),
    /// LLB failed to load.
    #[error(transparent)]
    Llb(#[from] kiln_llb::Error),
    /// A step failed.
    #[error(transparent)]
    Worker(#[from] kiln_worker::Error),
    /// Exporting failed.
    #[error("exporting: {0}")]
    Export(#[from] kiln_export::Error),
}
