//! Exec errors.

use thiserror::Error;

/// What can go wrong running a process.
#[derive(Debug, Error)]
pub enum Error {
    /// File system access failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The OCI runtime is not installed.
    #[error(
        "the OCI runtime {runtime:?} was not found: install runc (apt-get install runc), or name another runtime with `binary` under [worker.oci] in kilnd.toml"
    )]
    RuntimeMissing {
        /// The runtime binary.
        runtime: String,
    },
    /// runc could not be started.
    #[error("starting {runtime}")]
    Spawn {
        /// The runtime binary.
        runtime: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A user or group that the image does not define.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// A group that the image does not define.
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    /// A process of a platform this machine neither runs nor has an emulator for.
    #[error(
        "no emulator for {platform}: processes of that platform cannot run here; install QEMU user emulation (apt-get install qemu-user-static binfmt-support), or build for a platform this machine runs"
    )]
    NoEmulator {
        /// The platform, `os/arch[/variant]`.
        platform: String,
    },
    /// The build was cancelled (Ctrl-C); the container was killed.
    #[error("cancelled")]
    Cancelled,
}
