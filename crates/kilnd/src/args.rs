//! buildkitd's command line, so that kilnd starts where buildkitd does (BuildKit's and
//! buildx's test harnesses, systemd units, the docker-container driver). Flags for parts
//! kiln does not have are accepted and reported, or refused when they ask for them.

use std::path::PathBuf;

use clap::{ArgAction, Parser};

#[derive(Debug, Parser)]
#[command(
    name = "kilnd",
    about = "kilnd: the kiln daemon, serving BuildKit's API (a drop-in buildkitd)",
    disable_version_flag = true
)]
pub(crate) struct Args {
    /// Print the version (buildkitd's four fields).
    #[arg(short = 'v', long)]
    pub(crate) version: bool,
    /// Configuration file (buildkitd.toml's format).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// More detail in logs.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) debug: Option<bool>,
    /// Accepted (tracing is not built).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) trace: Option<bool>,
    /// State directory.
    #[arg(long)]
    pub(crate) root: Option<PathBuf>,
    /// Listening address (`unix:///path`, `tcp://host:port`); repeatable.
    #[arg(long = "addr")]
    pub(crate) addr: Vec<String>,
    /// Group (name or id) of the unix sockets.
    #[arg(long)]
    pub(crate) group: Option<String>,
    /// Debug HTTP server address (`unix:///path`, `tcp://host:port`, `host:port`;
    /// also `BUILDKITD_DEBUGADDR`): serves `/debug/pprof/goroutine`.
    #[arg(long)]
    pub(crate) debugaddr: Option<String>,
    /// Server certificate (TCP).
    #[arg(long)]
    pub(crate) tlscert: Option<PathBuf>,
    /// Server key.
    #[arg(long)]
    pub(crate) tlskey: Option<PathBuf>,
    /// CA that client certificates must be signed by (mutual TLS).
    #[arg(long)]
    pub(crate) tlscacert: Option<PathBuf>,
    /// At most this many client sessions open at once (kilnd's own flag); a client
    /// beyond it is refused with RESOURCE_EXHAUSTED, naming the limit.
    #[arg(long = "max-sessions", default_value_t = 512)]
    pub(crate) max_sessions: usize,
    /// Entitlements builds may be granted (`network.host`, `security.insecure`).
    #[arg(long = "allow-insecure-entitlement")]
    pub(crate) allow_insecure_entitlement: Vec<String>,
    /// Accepted: `text` or `json`.
    #[arg(long = "log-format")]
    pub(crate) log_format: Option<String>,
    /// Refused: kilnd runs as root.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) rootless: Option<bool>,
    /// Accepted (tracing is not built).
    #[arg(long = "otel-socket-path")]
    pub(crate) otel_socket_path: Option<String>,
    /// Accepted (devices are not built).
    #[arg(long = "cdi-disabled", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) cdi_disabled: Option<bool>,
    /// Accepted (devices are not built).
    #[arg(long = "cdi-spec-dir")]
    pub(crate) cdi_spec_dir: Vec<String>,
    /// Accepted.
    #[arg(long = "save-cache-debug", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) save_cache_debug: Option<bool>,
    /// The OCI worker (kiln's only worker): it cannot be turned off.
    #[arg(long = "oci-worker", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) oci_worker: Option<bool>,
    /// Worker labels, `key=value`.
    #[arg(long = "oci-worker-labels")]
    pub(crate) oci_worker_labels: Vec<String>,
    /// `overlayfs`, `native` or `auto`.
    #[arg(long = "oci-worker-snapshotter")]
    pub(crate) oci_worker_snapshotter: Option<String>,
    /// Accepted (proxy snapshotters are not built).
    #[arg(long = "oci-worker-proxy-snapshotter-path")]
    pub(crate) oci_worker_proxy_snapshotter_path: Option<String>,
    /// The worker's platforms, instead of those detected (`worker.oci.platforms`).
    #[arg(long = "oci-worker-platform")]
    pub(crate) oci_worker_platform: Vec<String>,
    /// `host`, `auto` or `none` (CNI is not built).
    #[arg(long = "oci-worker-net")]
    pub(crate) oci_worker_net: Option<String>,
    /// Accepted (CNI is not built).
    #[arg(long = "oci-cni-config-path")]
    pub(crate) oci_cni_config_path: Option<String>,
    /// Accepted (CNI is not built).
    #[arg(long = "oci-cni-binary-dir")]
    pub(crate) oci_cni_binary_dir: Option<String>,
    /// Accepted (CNI is not built).
    #[arg(long = "oci-cni-pool-size")]
    pub(crate) oci_cni_pool_size: Option<String>,
    /// The OCI runtime binary.
    #[arg(long = "oci-worker-binary")]
    pub(crate) oci_worker_binary: Option<PathBuf>,
    /// Accepted (AppArmor profiles are not built).
    #[arg(long = "oci-worker-apparmor-profile")]
    pub(crate) oci_worker_apparmor_profile: Option<String>,
    /// Accepted (SELinux labels are not built).
    #[arg(long = "oci-worker-selinux", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) oci_worker_selinux: Option<bool>,
    /// Steps run at once.
    #[arg(long = "oci-max-parallelism")]
    pub(crate) oci_max_parallelism: Option<String>,
    /// Refused: steps always run in their own process namespace.
    #[arg(long = "oci-worker-no-process-sandbox", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) oci_worker_no_process_sandbox: Option<bool>,
    /// Garbage collection after builds.
    #[arg(long = "oci-worker-gc", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) oci_worker_gc: Option<bool>,
    /// The cache size GC keeps (MB, or with a unit).
    #[arg(long = "oci-worker-gc-keepstorage")]
    pub(crate) oci_worker_gc_keepstorage: Option<String>,
    /// The containerd worker: kilnd has none, so only `false` is accepted.
    #[arg(long = "containerd-worker", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) containerd_worker: Option<bool>,
    /// Accepted with `--containerd-worker=false`.
    #[arg(long = "containerd-worker-addr")]
    pub(crate) containerd_worker_addr: Option<String>,
    /// Accepted with `--containerd-worker=false`.
    #[arg(long = "containerd-worker-labels")]
    pub(crate) containerd_worker_labels: Vec<String>,
    /// Accepted with `--containerd-worker=false`.
    #[arg(long = "containerd-worker-platform")]
    pub(crate) containerd_worker_platform: Vec<String>,
    /// Accepted with `--containerd-worker=false`.
    #[arg(long = "containerd-worker-namespace")]
    pub(crate) containerd_worker_namespace: Option<String>,
    /// Accepted with `--containerd-worker=false`.
    #[arg(long = "containerd-worker-runtime")]
    pub(crate) containerd_worker_runtime: Option<String>,
    /// Accepted with `--containerd-worker=false`.
    #[arg(long = "containerd-worker-net")]
    pub(crate) containerd_worker_net: Option<String>,
    /// Accepted with `--containerd-worker=false`.
    #[arg(long = "containerd-worker-snapshotter")]
    pub(crate) containerd_worker_snapshotter: Option<String>,
    /// Accepted with `--containerd-worker=false`.
    #[arg(long = "containerd-worker-gc", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub(crate) containerd_worker_gc: Option<bool>,
    /// Accepted with `--containerd-worker=false`.
    #[arg(long = "containerd-worker-gc-keepstorage")]
    pub(crate) containerd_worker_gc_keepstorage: Option<String>,
    /// Serve plain TCP on addresses other than loopback without TLS (the build API
    /// runs anything as root: only on a network you trust).
    #[arg(long = "insecure-plaintext-tcp")]
    pub(crate) insecure_plaintext_tcp: bool,
}
