//! kilnd: the kiln engine served over BuildKit's gRPC API, so that `buildctl`,
//! `docker buildx` (remote driver) and `kiln` drive it as they drive buildkitd.
//!
//! `args` is buildkitd's command line; `server` listens (unix sockets, TCP with mutual
//! TLS) and serves `control` (BuildKit's `Control` service) and health checks; the
//! engine is one `kiln_engine::Engine`, shared by every client. kilnd owns its state
//! directory while it runs.
//!
//! kilnd depends on `kiln-engine` and `kiln-api` only: what a build does is the
//! engine's, what goes over the wire is the API's.

mod args;
mod client_dirs;
mod control;
mod debug;
mod gateway;
mod jobs;
mod remote_context;
mod server;
mod session;
mod subrequests;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Parser as _;
use kiln_engine::{Engine, EngineConfig};

/// The BuildKit release whose API kilnd serves (clients gate features on it).
pub(crate) const BUILDKIT_API_VERSION: &str = "v0.24.0";

/// Whether this program was started under buildkitd's name (a symlink), where
/// buildkitd's defaults apply.
fn started_as_buildkitd() -> bool {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|n| n == "buildkitd")
}

fn main() {
    kiln_api::memory::use_one_malloc_arena();
    let args = args::Args::parse();
    if args.version {
        let name = if started_as_buildkitd() {
            "buildkitd"
        } else {
            "kilnd"
        };
        println!(
            "{name} github.com/moby/buildkit {BUILDKIT_API_VERSION} kiln-{}",
            env!("CARGO_PKG_VERSION")
        );
        return;
    }
    if let Err(error) = run(args) {
        eprintln!("kilnd: {error:#}");
        std::process::exit(1);
    }
}

/// Raises the open-files limit to its hard limit, as Go programs (buildkitd) do at
/// start: many clients at once each hold a few.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

fn run(args: args::Args) -> anyhow::Result<()> {
    raise_open_files_limit();
    let config = engine_config(&args)?;
    for notice in &config.notices {
        eprintln!("kilnd: warning: {notice}");
    }
    let addresses = if !args.addr.is_empty() {
        args.addr.clone()
    } else if !config.grpc.addresses.is_empty() {
        config.grpc.addresses.clone()
    } else if started_as_buildkitd() {
        vec!["unix:///run/buildkit/buildkitd.sock".to_owned()]
    } else {
        vec!["unix:///run/kiln/kilnd.sock".to_owned()]
    };
    let tls = server::TlsFiles {
        cert: args.tlscert.clone().or(config.grpc.tls_cert.clone()),
        key: args.tlskey.clone().or(config.grpc.tls_key.clone()),
        ca: args.tlscacert.clone().or(config.grpc.tls_ca.clone()),
    };
    let socket_owner = server::SocketOwner {
        uid: config.grpc.uid,
        gid: match &args.group {
            Some(group) => Some(server::group_id(group)?),
            None => config.grpc.gid,
        },
    };
    let labels = args
        .oci_worker_labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--oci-worker-labels {l:?}: use key=value"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let root = config.root.clone();
    let gc = config.gc.clone();
    let engine = Engine::open(config, &|root| {
        eprintln!(
            "kilnd: waiting for another kiln process to release {}",
            root.display()
        );
    })
    .context("opening the engine")?;
    let daemon = Arc::new(control::Daemon::new(
        engine,
        root,
        labels,
        gc,
        args.max_sessions,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let listen = server::Listen {
        addresses: &addresses,
        tls: &tls,
        owner: socket_owner,
        insecure_plaintext_tcp: args.insecure_plaintext_tcp,
        debug_address: args
            .debugaddr
            .clone()
            .or_else(|| std::env::var("BUILDKITD_DEBUGADDR").ok())
            .filter(|a| !a.is_empty()),
    };
    let served = runtime.block_on(server::serve(Arc::clone(&daemon), listen));
    // Engine work that did not end when cancelled is not waited for; what it held
    // (containers, mounts) is released here, as the next start would.
    runtime.shutdown_timeout(STOP_WAIT);
    daemon.release_leftovers();
    served
}

/// How long the daemon waits, once stopped, for engine work still running.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The engine's settings: the configuration file, then the flags over it.
fn engine_config(args: &args::Args) -> anyhow::Result<EngineConfig> {
    // A daemon grants only what its configuration or flags permit (buildkitd's
    // default is none), unlike the embedded engine that runs as its user.
    let mut config = EngineConfig::load_for_daemon(args.config.as_deref())?;
    config
        .insecure_entitlements
        .extend(args.allow_insecure_entitlement.iter().cloned());
    if let Some(root) = &args.root {
        config.root = root.clone();
    }
    if let Some(debug) = args.debug {
        config.debug = debug;
    }
    if args.oci_worker == Some(false) {
        bail!("--oci-worker=false: the OCI worker is kilnd's only worker");
    }
    if args.containerd_worker == Some(true) {
        bail!("--containerd-worker: kilnd has no containerd worker; use --containerd-worker=false");
    }
    if args.rootless == Some(true) {
        bail!("--rootless: kilnd runs as root only");
    }
    if args.oci_worker_no_process_sandbox == Some(true) {
        bail!(
            "--oci-worker-no-process-sandbox: kilnd always runs steps in their own process namespace"
        );
    }
    if let Some(snapshotter) = &args.oci_worker_snapshotter {
        match snapshotter.as_str() {
            "overlayfs" | "native" | "auto" => config.snapshotter = snapshotter.clone(),
            other => bail!("--oci-worker-snapshotter {other:?}: use overlayfs, native or auto"),
        }
    }
    if let Some(binary) = &args.oci_worker_binary {
        config.runtime = binary.clone();
    }
    match args.oci_worker_net.as_deref() {
        None | Some("auto" | "host") => {}
        Some("none") => config.isolated_network = true,
        Some(other) => {
            bail!("--oci-worker-net {other:?}: use host, auto or none (CNI is not built)")
        }
    }
    if let Some(parallelism) = &args.oci_max_parallelism {
        config.parallelism = match parallelism.as_str() {
            "cpus" => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n
                .parse::<usize>()
                .with_context(|| format!("--oci-max-parallelism {n:?}: a number or cpus"))?
                .max(1),
        };
    }
    if args.oci_worker_gc == Some(false) {
        config.gc = None;
    } else if let Some(keep) = &args.oci_worker_gc_keepstorage {
        let bytes = match keep.parse::<u64>() {
            Ok(megabytes) => megabytes * 1_000_000,
            Err(_) => kiln_engine::config::parse_size(keep)
                .with_context(|| format!("--oci-worker-gc-keepstorage {keep:?}"))?,
        };
        config.gc = Some(kiln_engine::config::default_policies(bytes));
    } else if args.oci_worker_gc == Some(true) && config.gc.is_none() {
        config.gc = Some(kiln_engine::config::default_policies(10_000_000_000));
    }
    if !args.oci_worker_platform.is_empty() {
        config.platforms = args
            .oci_worker_platform
            .iter()
            .flat_map(|list| list.split(','))
            .map(|p| {
                p.trim()
                    .parse()
                    .with_context(|| format!("--oci-worker-platform {p:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    for (flag, given) in [
        ("--trace", args.trace == Some(true)),
        ("--otel-socket-path", args.otel_socket_path.is_some()),
        ("--cdi-spec-dir", !args.cdi_spec_dir.is_empty()),
        (
            "--oci-worker-apparmor-profile",
            args.oci_worker_apparmor_profile.is_some(),
        ),
        (
            "--oci-worker-selinux",
            args.oci_worker_selinux == Some(true),
        ),
        (
            "--oci-worker-proxy-snapshotter-path",
            args.oci_worker_proxy_snapshotter_path.is_some(),
        ),
        ("--oci-cni-config-path", args.oci_cni_config_path.is_some()),
    ] {
        if given {
            eprintln!("kilnd: warning: {flag} is not used by kilnd yet (ignored)");
        }
    }
    Ok(config)
}
