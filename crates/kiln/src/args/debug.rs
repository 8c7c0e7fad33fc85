//! `kiln debug …`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub(crate) enum DebugCommand {
    /// Print the ops of a binary LLB definition as JSON, one per line, with digests
    /// (like `buildctl debug dump-llb`).
    DumpLlb(DumpLlbArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DumpLlbArgs {
    /// The definition file; `-` or nothing reads standard input.
    pub(crate) file: Option<PathBuf>,
    /// Print a Graphviz dot graph instead of JSON.
    #[arg(long)]
    pub(crate) dot: bool,
}
