//! Engine errors.

use thiserror::Error;

/// What can go wrong in a build.
#[derive(Debug, Error)]
pub enum Error {
    /// A problem with the request itself.
    #[error("{0}")]
    Usage(String),
    /// The Dockerfile cannot be read or converted; printed as BuildKit prints it, under
    /// the lines it is about when they are known.
    #[error("{excerpt}failed to solve: {error}")]
    Dockerfile {
        /// BuildKit's excerpt (`Dockerfile:7`, the lines around it, the line marked),
        /// or nothing.
        excerpt: String,
        /// What is wrong.
        error: kiln_dockerfile::Error,
    },
    /// LLB failed to load.
    #[error(transparent)]
    Llb(#[from] kiln_llb::Error),
    /// A step failed.
    #[error(transparent)]
    Worker(#[from] kiln_worker::Error),
    /// A step failed, printed under the Dockerfile lines it came from when they are
    /// known (`failed to solve: <step>: <why>` as a chain).
    #[error("{excerpt}failed to solve")]
    Step {
        /// BuildKit's excerpt: `Dockerfile:7`, the lines around it, the line marked; or
        /// nothing.
        excerpt: String,
        /// The step's error (`kiln_worker::Error::Vertex`: its name, then its causes).
        #[source]
        source: kiln_worker::Error,
    },
    /// Exporting failed.
    #[error("exporting")]
    Export(#[from] kiln_export::Error),
    /// A remote cache could not be read or written.
    #[error(transparent)]
    RemoteCache(#[from] kiln_remotecache::Error),
    /// The build history could not be read or written.
    #[error("keeping the build history")]
    History(#[source] kiln_store::Error),
    /// A frontend subrequest the Dockerfile frontend does not answer.
    #[error("unsupported request {0}")]
    UnknownSubrequest(String),
}
