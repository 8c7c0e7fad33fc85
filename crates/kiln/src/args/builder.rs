//! Which builder a command runs on: buildx's `--builder`, plus buildctl's `--addr` and
//! TLS flags for a BuildKit-compatible daemon reached directly.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct BuilderArgs {
    /// Override the configured builder instance: the embedded builder (default), or a
    /// BuildKit-compatible daemon's address (`unix:///path`, `tcp://host:port`).
    #[arg(long)]
    pub(crate) builder: Option<String>,
    /// A BuildKit-compatible daemon to build on (as `--builder ADDRESS`; the
    /// `BUILDKIT_HOST` variable says the same).
    #[arg(long)]
    pub(crate) addr: Option<String>,
    /// The CA the daemon's certificate must be signed by (TCP with TLS).
    #[arg(long)]
    pub(crate) tlscacert: Option<PathBuf>,
    /// The client certificate shown to the daemon (mutual TLS).
    #[arg(long)]
    pub(crate) tlscert: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long)]
    pub(crate) tlskey: Option<PathBuf>,
    /// The name the daemon's certificate must carry (default: its host).
    #[arg(long)]
    pub(crate) tlsservername: Option<String>,
}

impl BuilderArgs {
    /// The daemon these flags (or `BUILDKIT_HOST`) name, if any; a builder's name
    /// other than the embedded one's is refused (builders are not managed yet).
    pub(crate) fn remote(&self) -> anyhow::Result<Option<crate::driver::remote::Remote>> {
        if let Some(builder) = self
            .builder
            .as_deref()
            .filter(|b| !matches!(*b, "default" | "kiln") && !b.contains("://"))
        {
            anyhow::bail!(
                "--builder {builder:?}: named builders are not supported yet; use the embedded builder (default) or a daemon's address (unix:///path, tcp://host:port)"
            );
        }
        Ok(crate::driver::remote::Remote::choose(
            self.addr.as_deref().or(self.builder.as_deref()),
            kiln_api::client::TlsFiles {
                ca: self.tlscacert.clone(),
                cert: self.tlscert.clone(),
                key: self.tlskey.clone(),
                server_name: self.tlsservername.clone(),
            },
        ))
    }
}
