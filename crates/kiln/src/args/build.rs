//! `kiln build`: buildx's flags.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Build context: a directory, or `-` for a tar archive (or a Dockerfile) on stdin.
    #[arg(default_value = ".")]
    pub(crate) context: PathBuf,
    /// Name and optionally a tag (`name:tag`).
    #[arg(short = 't', long = "tag")]
    pub(crate) tags: Vec<String>,
    /// Name of the Dockerfile (default: `PATH/Dockerfile`; `-` reads it from stdin).
    #[arg(short = 'f', long = "file")]
    pub(crate) file: Option<PathBuf>,
    /// Set build-time variables (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg")]
    pub(crate) build_args: Vec<String>,
    /// Additional build contexts (`NAME=DIR` or `NAME=docker-image://REF`).
    #[arg(long = "build-context")]
    pub(crate) build_contexts: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// Output destination (`type=local,dest=DIR`, `type=oci,dest=FILE`, `type=image,push=true`, `DIR`, `-`).
    #[arg(short = 'o', long = "output")]
    pub(crate) outputs: Vec<String>,
    /// Shorthand for `--output=type=docker`: load the image into Docker.
    #[arg(long)]
    pub(crate) load: bool,
    /// Shorthand for `--output=type=registry`: push the image.
    #[arg(long)]
    pub(crate) push: bool,
    /// Type of progress output (`auto`, `plain`, `tty`, `quiet`).
    #[arg(long, default_value = "auto")]
    pub(crate) progress: String,
    /// Do not use cache when building the image.
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Secret to expose to the build (`id=mysecret[,src=/local/secret]` or `id=x,env=VAR`).
    #[arg(long = "secret")]
    pub(crate) secrets: Vec<String>,
    /// SSH agent socket or keys to expose to the build (`default|<id>[=<socket>]`).
    #[arg(long = "ssh")]
    pub(crate) ssh: Vec<String>,
    /// Allow extra privileged entitlements (`network.host`, `security.insecure`).
    #[arg(long = "allow")]
    pub(crate) allow: Vec<String>,
    /// Write build result metadata (image digests, names) to a file.
    #[arg(long = "metadata-file")]
    pub(crate) metadata_file: Option<PathBuf>,
    /// Write the image ID (the config digest) to a file.
    #[arg(long)]
    pub(crate) iidfile: Option<PathBuf>,
    /// Run the Dockerfile's build checks only (same as `--call=check`).
    #[arg(long)]
    pub(crate) check: bool,
    /// Set method for evaluating build (`build`, `check`, `outline`, `targets`;
    /// `,format=json` for the answer's JSON).
    #[arg(long, default_value = "build")]
    pub(crate) call: String,
    /// Set target platform for build
    #[arg(long)]
    pub(crate) platform: Vec<String>,
    /// Set metadata for an image (`KEY=VALUE`).
    #[arg(long = "label")]
    pub(crate) labels: Vec<String>,
    /// Add annotation to the image (`KEY=VALUE`, or `manifest:KEY=VALUE` style types).
    #[arg(long = "annotation")]
    pub(crate) annotations: Vec<String>,
    /// Do not cache specified stages.
    #[arg(long = "no-cache-filter")]
    pub(crate) no_cache_filter: Vec<String>,
    /// Always attempt to pull all referenced images (without it, a registry that cannot
    /// be reached is answered from the last resolution, with a warning).
    #[arg(long)]
    pub(crate) pull: bool,
    /// Set the networking mode for the RUN instructions (`default`, `none`, `host`).
    #[arg(long)]
    pub(crate) network: Option<String>,
    /// Add a custom host-to-IP mapping (`host:ip`).
    #[arg(long = "add-host")]
    pub(crate) add_hosts: Vec<String>,
    /// Ulimit options (`nofile=1024:2048`).
    #[arg(long = "ulimit")]
    pub(crate) ulimits: Vec<String>,
    /// Shared memory size for build containers (`64m`).
    #[arg(long = "shm-size")]
    pub(crate) shm_size: Option<String>,
    /// Set the parent cgroup for the RUN instructions during build.
    #[arg(long = "cgroup-parent")]
    pub(crate) cgroup_parent: Option<String>,
    /// External cache sources (not supported yet).
    #[arg(long = "cache-from")]
    pub(crate) cache_from: Vec<String>,
    /// Cache export destinations (not supported yet).
    #[arg(long = "cache-to")]
    pub(crate) cache_to: Vec<String>,
    #[command(flatten)]
    pub(crate) builder: super::builder::BuilderArgs,
    /// Suppress the build output and print the image ID on success.
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,
}
