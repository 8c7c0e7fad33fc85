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
    #[error(
        "process {command:?} did not complete successfully: exit code: {code}{}{}{}",
        exit_hint(*code, *oom_killed),
        runtime_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default(),
        full_state.as_ref().map(|state| format!(
            " (no space was left on the filesystem of kiln's state, {}: `kiln prune` frees what the build cache holds)",
            state.display()
        )).unwrap_or_default()
    )]
    ProcessFailed {
        /// The command, arguments joined by spaces.
        command: String,
        /// Its exit code (128 + the signal for a process a signal ended).
        code: i32,
        /// The kernel's out-of-memory killer ended it.
        oom_killed: bool,
        /// Why runc could not set up or start the container, in its words.
        runtime_error: Option<String>,
        /// The state directory, when its filesystem was full as the process ended (what
        /// most likely made it fail).
        full_state: Option<std::path::PathBuf>,
    },
    /// An op kiln does not run yet, or a malformed one.
    #[error("{0}")]
    Unsupported(String),
    /// A source that could not be read (missing file, unknown context, …).
    #[error("{0}")]
    Source(String),
    /// A write found no space left on the filesystem of kiln's state.
    #[error(
        "no space left on the filesystem of kiln's state, {} (`kiln prune` frees what the build cache holds)",
        state.display()
    )]
    NoSpace {
        /// The state directory.
        state: std::path::PathBuf,
        /// The write that failed.
        source: Box<Error>,
    },
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

impl From<kiln_llb::local::SelectError> for Error {
    fn from(error: kiln_llb::local::SelectError) -> Self {
        match error {
            kiln_llb::local::SelectError::Io(e) => Self::Io(e),
            kiln_llb::local::SelectError::Pattern(e) => Self::Source(e.to_string()),
        }
    }
}

impl From<kiln_llb::patterns::PatternError> for Error {
    fn from(error: kiln_llb::patterns::PatternError) -> Self {
        Self::Source(error.to_string())
    }
}

/// What an exit code says beyond its number: the signal that ended the process, and
/// whether that was the out-of-memory killer.
fn exit_hint(code: i32, oom_killed: bool) -> String {
    if oom_killed {
        return " (killed by the out-of-memory killer: the step needs more memory than the machine, or its cgroup, allows)".to_owned();
    }
    let signal = match code - 128 {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return String::new(),
    };
    format!(" (killed by {signal})")
}
