//! The remote driver: builds run on a BuildKit-compatible daemon (kilnd or
//! buildkitd) at an address, through `kiln_api`'s [`RemoteBuilder`].

use kiln_api::client::TlsFiles;
use kiln_api::remote::RemoteBuilder;

/// Where a remote build goes: the daemon's address and how to reach it.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    pub(crate) address: String,
    pub(crate) tls: TlsFiles,
}

impl Remote {
    /// The daemon to use, if any: `--builder` given as an address, else
    /// `BUILDKIT_HOST`.
    pub(crate) fn choose(builder: Option<&str>, tls: TlsFiles) -> Option<Self> {
        let address = builder
            .filter(|b| b.contains("://"))
            .map(str::to_owned)
            .or_else(|| {
                std::env::var("BUILDKIT_HOST")
                    .ok()
                    .filter(|h| !h.is_empty())
            })?;
        Some(Self { address, tls })
    }

    /// The builder that drives this daemon.
    pub(crate) fn connect(&self) -> anyhow::Result<RemoteBuilder> {
        Ok(RemoteBuilder::new(&self.address, self.tls.clone())?)
    }
}
