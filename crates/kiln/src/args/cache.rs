//! `kiln du` and `kiln prune`: buildx's flags.

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct DuArgs {
    /// Provide filter values (`type==regular`, `until=24h`, `description~=RUN`).
    #[arg(long = "filter")]
    pub(crate) filters: Vec<String>,
    /// Provide a more verbose output.
    #[arg(long)]
    pub(crate) verbose: bool,
    #[command(flatten)]
    pub(crate) builder: super::builder::BuilderArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Include internal records (image configs and manifests).
    #[arg(short = 'a', long)]
    pub(crate) all: bool,
    /// Provide filter values (`type==exec.cachemount`, `until=24h`).
    #[arg(long = "filter")]
    pub(crate) filters: Vec<String>,
    /// Amount of disk space to keep for cache (`10gb`).
    #[arg(long = "keep-storage")]
    pub(crate) keep_storage: Option<String>,
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub(crate) force: bool,
    /// Provide a more verbose output.
    #[arg(long)]
    pub(crate) verbose: bool,
    #[command(flatten)]
    pub(crate) builder: super::builder::BuilderArgs,
}
