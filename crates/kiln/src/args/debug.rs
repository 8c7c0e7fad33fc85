//! `kiln debug …`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub(crate) enum DebugCommand {
    /// Print the ops of a binary LLB definition as JSON, one per line, with digests
    /// (like `buildctl debug dump-llb`).
    DumpLlb(DumpLlbArgs),
    /// Build a binary LLB definition and export its result, as `buildctl build` does
    /// with a definition on standard input.
    BuildLlb(BuildLlbArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BuildLlbArgs {
    /// The definition file; `-` or nothing reads standard input.
    pub(crate) file: Option<PathBuf>,
    /// Output destination (`type=local,dest=DIR`, `type=oci,dest=FILE`, …).
    #[arg(short = 'o', long = "output")]
    pub(crate) outputs: Vec<String>,
    /// A local source the definition names (`local://NAME`): `NAME=DIR`.
    #[arg(long = "local")]
    pub(crate) locals: Vec<String>,
    /// Progress output: auto, plain, tty, rawjson, quiet.
    #[arg(long, default_value = "auto")]
    pub(crate) progress: String,
    /// Ignore the cache.
    #[arg(long = "no-cache")]
    pub(crate) no_cache: bool,
    /// Grant an entitlement (`network.host`, `security.insecure`).
    #[arg(long = "allow")]
    pub(crate) allow: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DumpLlbArgs {
    /// The definition file; `-` or nothing reads standard input.
    pub(crate) file: Option<PathBuf>,
    /// Print a Graphviz dot graph instead of JSON.
    #[arg(long)]
    pub(crate) dot: bool,
}
