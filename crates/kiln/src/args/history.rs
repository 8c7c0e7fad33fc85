//! `kiln history`: buildx's `history` commands.

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub(crate) enum HistoryCommand {
    /// List build records.
    Ls(HistoryLsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct HistoryLsArgs {
    /// Format the output (`table` or `json`).
    #[arg(long, default_value = "table")]
    pub(crate) format: String,
    /// Don't truncate output.
    #[arg(long)]
    pub(crate) no_trunc: bool,
    #[command(flatten)]
    pub(crate) builder: super::builder::BuilderArgs,
}
