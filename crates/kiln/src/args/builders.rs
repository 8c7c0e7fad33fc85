//! `kiln ls` and `kiln inspect`: buildx's flags for listing and inspecting builders.

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Format the output: `table`, `json`, or a Go template (`table {{.Name}}\t{{.Status}}`
    /// for a table of those columns).
    #[arg(long, default_value = "table")]
    pub(crate) format: String,
    /// Don't truncate output.
    #[arg(long)]
    pub(crate) no_trunc: bool,
    #[command(flatten)]
    pub(crate) builder: super::builder::BuilderArgs,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Ensure builder has booted before inspecting (kiln's builders need no booting:
    /// a daemon that does not answer is an error).
    #[arg(long)]
    pub(crate) bootstrap: bool,
    /// The builder: `default` (the embedded engine) or a daemon's address; the
    /// current one when left out.
    pub(crate) name: Option<String>,
    #[command(flatten)]
    pub(crate) builder: super::builder::BuilderArgs,
}
