//! Worker errors: what failed, and in which vertex.

use thiserror::Error;

/// What can go wrong running LLB.
#[derive(Debug, Error)]
pub enum Error {
    /// File system access failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] kiln_store::Error),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] kiln_registry::Error),
    /// Running a process failed.
    #[error(transparent)]
    Exec(#[from] kiln_exec::Error),
    /// The definition is not valid LLB.
    #[error(transparent)]
    Llb(#[from] kiln_llb::Error),
    /// A process exited with a non-zero code.
    #[error("process {command:?} did not complete successfully: exit code: {code}")]
    ProcessFailed {
        /// The command, arguments joined by spaces.
        command: String,
        /// Its exit code.
        code: i32,
    },
    /// An op kiln does not run yet, or a malformed one.
    #[error("{0}")]
    Unsupported(String),
    /// A source that could not be read (missing file, unknown context, …).
    #[error("{0}")]
    Source(String),
    /// A failure in one vertex, with its name for the user.
    #[error("{name}")]
    Vertex {
        /// The vertex's name (its custom name, e.g. `[2/3] RUN make`).
        name: String,
        /// Its digest.
        digest: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
}
