//! Drivers: where builds run: the embedded engine, or a BuildKit-compatible daemon.
//! Either way the commands get a `Box<dyn Builder>` and never know which.

pub(crate) mod embedded;
pub(crate) mod remote;

use kiln_api::Builder;

/// The builder to use: the daemon `remote` names, else the embedded engine.
pub(crate) fn open(remote: Option<&remote::Remote>) -> anyhow::Result<Box<dyn Builder>> {
    match remote {
        Some(remote) => Ok(Box::new(remote.connect()?)),
        None => embedded::open(),
    }
}
