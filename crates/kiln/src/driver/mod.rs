//! Drivers: where builds run. Only the embedded engine exists so far.

pub(crate) mod embedded;
