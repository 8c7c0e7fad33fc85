//! `kiln imagetools create|inspect`: buildx's flags.

use std::path::PathBuf;

use clap::{ArgAction, Args, Subcommand};

#[derive(Debug, Subcommand)]
pub(crate) enum ImagetoolsCommand {
    /// Create a new image based on source images.
    Create(CreateArgs),
    /// Show details of an image in the registry.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Read source descriptor from file.
    #[arg(short = 'f', long = "file")]
    pub(crate) files: Vec<PathBuf>,
    /// Set reference for new image.
    #[arg(short = 't', long = "tag")]
    pub(crate) tags: Vec<String>,
    /// Show final image instead of pushing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Append to existing manifest.
    #[arg(long)]
    pub(crate) append: bool,
    /// Add annotation to the image (`index:KEY=VALUE`,
    /// `manifest-descriptor[PLATFORM]:KEY=VALUE`).
    #[arg(long = "annotation")]
    pub(crate) annotations: Vec<String>,
    /// When only a single source is specified, prefer outputting an image index or
    /// manifest list instead of performing a carbon copy.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) prefer_index: bool,
    /// Set type of progress output (accepted; lines are printed).
    #[arg(long, default_value = "auto")]
    pub(crate) progress: String,
    /// Source images: references, digests (`sha256:…`) or descriptors (JSON).
    pub(crate) sources: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Show original, unformatted JSON manifest.
    #[arg(long)]
    pub(crate) raw: bool,
    /// Format the output using the given Go template (`{{json .Manifest}}`,
    /// `{{json .Image}}`, `{{json .Provenance}}`, `{{json .SBOM}}`, `{{range …}}`).
    #[arg(long)]
    pub(crate) format: Option<String>,
    /// The image.
    pub(crate) name: String,
}
