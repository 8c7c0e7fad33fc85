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
pub use runc::{Executor, Exit, OutputStream, mount_points};
pub use spec::{Mount, MountKind, NetworkMode, Process};
pub use user::{User, resolve_user};
