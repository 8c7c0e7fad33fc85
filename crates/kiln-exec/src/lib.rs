//! Run one process in a container: generate an OCI runtime spec, run it with the `runc`
//! binary, stream its output, report its exit code.
//!
//! The rootfs and every mount source are plain directories the caller prepared (the
//! worker mounts snapshots); this crate never sees LLB, snapshots or the store.

pub mod archutil;
pub mod emulator;
mod error;
mod runc;
mod seccomp;
mod spec;
mod user;

pub use error::Error;
pub use runc::{Exit, OutputStream, Runc, mount_points};
pub use spec::{Mount, MountKind, NetworkMode, Process};
pub use user::{User, resolve_user};

/// Runs one process in a container: the port the worker runs steps through. [`Runc`]
/// is the real one; the worker's logic tests put a recording fake in its place.
pub trait Executor: Send + Sync {
    /// Runs `process` on `rootfs` with `mounts` and returns how it ended. Output is
    /// passed to `output` as it arrives (stdout and stderr from two threads, each in
    /// order).
    fn run(
        &self,
        id: &str,
        rootfs: &std::path::Path,
        process: &Process,
        mounts: &[Mount],
        output: &(dyn Fn(OutputStream, &[u8]) + Sync),
    ) -> Result<Exit, Error>;

    /// The flag that cancels running and future processes when set.
    fn cancellation(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool>;

    /// Kills and removes what runs that never ended left (those of a process that
    /// died).
    fn remove_leftovers(&self);
}
