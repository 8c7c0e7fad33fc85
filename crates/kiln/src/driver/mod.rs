//! Drivers: where builds run: the embedded engine, or a BuildKit-compatible daemon.

pub(crate) mod embedded;
pub(crate) mod remote;
