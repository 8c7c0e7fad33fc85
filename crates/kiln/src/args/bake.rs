//! `kiln bake`: buildx bake's flags.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct BakeArgs {
    /// Targets or groups to build (names or patterns); `default` when none.
    pub(crate) targets: Vec<String>,
    /// Build definition files (default: compose and docker-bake files in the current directory).
    #[arg(short = 'f', long = "file")]
    pub(crate) files: Vec<PathBuf>,
    /// Override target values (`targetpattern.key=value`, `key+=value` appends).
    #[arg(long = "set")]
    pub(crate) sets: Vec<String>,
    /// Print the resolved options as JSON instead of building.
    #[arg(long)]
    pub(crate) print: bool,
    /// List targets or variables (`targets`, `variables`, or
    /// `type=targets|variables[,format=table|json]`) instead of building.
    #[arg(long)]
    pub(crate) list: Option<String>,
    /// Deprecated: `--list=targets`.
    #[arg(long, hide = true)]
    pub(crate) list_targets: bool,
    /// Deprecated: `--list=variables`.
    #[arg(long, hide = true)]
    pub(crate) list_variables: bool,
    /// Do not use cache when building the image.
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Always attempt to pull all referenced images.
    #[arg(long)]
    pub(crate) pull: bool,
    /// Shorthand for `--set=*.attest=type=sbom` (`true`, `false` or attestation options).
    #[arg(long)]
    pub(crate) sbom: Option<String>,
    /// Shorthand for `--set=*.attest=type=provenance` (`true`, `false` or `mode=max` ...).
    #[arg(long)]
    pub(crate) provenance: Option<String>,
    /// Shorthand for `--set=*.output=type=docker`.
    #[arg(long)]
    pub(crate) load: bool,
    /// Shorthand for `--set=*.output=type=registry`.
    #[arg(long)]
    pub(crate) push: bool,
    /// Set method for evaluating build (`build`, `check`, `outline`, `targets`).
    #[arg(long)]
    pub(crate) call: Option<String>,
    /// Shorthand for `--call=check`.
    #[arg(long)]
    pub(crate) check: bool,
    /// Allow extra privileged entitlements (`network.host`, `security.insecure`).
    #[arg(long = "allow")]
    pub(crate) allow: Vec<String>,
    /// Write build result metadata, one object per target, to a file.
    #[arg(long = "metadata-file")]
    pub(crate) metadata_file: Option<PathBuf>,
    /// Type of progress output.
    #[arg(long, default_value = "auto")]
    pub(crate) progress: String,
    /// Where the targets build: the embedded builder or a daemon.
    #[command(flatten)]
    pub(crate) builder: super::builder::BuilderArgs,
}
