//! Command-line arguments (clap), one module per command.

pub(crate) mod bake;
pub(crate) mod build;
pub(crate) mod builder;
pub(crate) mod builders;
pub(crate) mod cache;
pub(crate) mod debug;
pub(crate) mod history;
pub(crate) mod imagetools;

use clap::{Parser, Subcommand};

/// kiln: build container images as docker buildx does, with BuildKit's LLB inside.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about)]
pub(crate) struct Cli {
    /// The engine's configuration file, in buildkitd.toml's format (default:
    /// $KILN_CONFIG, else /etc/kiln/kilnd.toml as root, ~/.config/kiln/kilnd.toml
    /// otherwise).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start a build.
    Build(Box<build::BuildArgs>),
    /// Build from a file (HCL, JSON or Compose).
    Bake(bake::BakeArgs),
    /// Disk usage of the build cache.
    Du(cache::DuArgs),
    /// Remove build cache.
    Prune(cache::PruneArgs),
    /// List builder instances.
    Ls(builders::LsArgs),
    /// Inspect current builder instance.
    Inspect(builders::InspectArgs),
    /// Tools for looking inside builds.
    #[command(subcommand)]
    Debug(debug::DebugCommand),
    /// Commands to work on build records.
    #[command(subcommand)]
    History(history::HistoryCommand),
    /// Commands to work on images in registry.
    #[command(subcommand)]
    Imagetools(imagetools::ImagetoolsCommand),
}
