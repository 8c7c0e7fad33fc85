//! Listening: unix sockets (owned as configured) and TCP, with mutual TLS when given
//! certificates; plain TCP is served on loopback with a warning (as buildkitd warns)
//! and elsewhere only when explicitly asked. Every listener serves the same services;
//! SIGTERM or SIGINT stops them all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use kiln_api::proto::health::health_server::HealthServer;
use kiln_api::proto::moby::buildkit::v1::control_server::ControlServer;
use kiln_api::proto::moby::buildkit::v1::frontend::llb_bridge_server::LlbBridgeServer;
use kiln_api::session::{CONNECTION_WINDOW, STREAM_WINDOW};
use tokio::sync::watch;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::control::{ControlService, Daemon, HealthService};
use crate::gateway::LlbBridgeService;

/// `--tlscert`, `--tlskey`, `--tlscacert` (or `[grpc.tls]`).
pub(crate) struct TlsFiles {
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
    pub(crate) ca: Option<PathBuf>,
}

/// Who owns the unix sockets (`[grpc] uid/gid`, `--group`).
#[derive(Clone, Copy)]
pub(crate) struct SocketOwner {
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
}

/// The largest message kilnd takes (a big LLB definition or file chunk), as buildkitd.
const MAX_MESSAGE: usize = 16 << 20;

/// A group's id, from a number or a name in /etc/group.
pub(crate) fn group_id(group: &str) -> anyhow::Result<u32> {
    if let Ok(id) = group.parse() {
        return Ok(id);
    }
    let groups = fs_err::read_to_string("/etc/group")?;
    groups
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(group))
                .then(|| fields.nth(1).and_then(|id| id.parse().ok()))
                .flatten()
        })
        .with_context(|| format!("--group {group}: no such group in /etc/group"))
}

fn tls_config(files: &TlsFiles) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&files.cert, &files.key) else {
        if files.cert.is_some() || files.key.is_some() {
            bail!("TLS needs both a certificate (--tlscert) and its key (--tlskey)");
        }
        return Ok(None);
    };
    let read = |path: &Path| {
        fs_err::read(path).with_context(|| format!("reading the TLS file {}", path.display()))
    };
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
    if let Some(ca) = &files.ca {
        // Clients must show a certificate this CA signed.
        config = config.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(Some(config))
}

/// How long requests may take to end once the daemon stops (their builds cancelled)
/// before it stops anyway.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Where and how the daemon listens.
pub(crate) struct Listen<'a> {
    pub(crate) addresses: &'a [String],
    pub(crate) tls: &'a TlsFiles,
    pub(crate) owner: SocketOwner,
    pub(crate) insecure_plaintext_tcp: bool,
    /// `--debugaddr`: where the debug HTTP server listens.
    pub(crate) debug_address: Option<String>,
}

/// Serves the daemon on every address until SIGTERM or SIGINT.
pub(crate) async fn serve(daemon: Arc<Daemon>, listen: Listen<'_>) -> anyhow::Result<()> {
    let Listen {
        addresses,
        tls,
        owner,
        insecure_plaintext_tcp,
        debug_address,
    } = listen;
    let tls = tls_config(tls)?;
    let (stop, stopped) = watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    if let Some(address) = debug_address {
        let (daemon, stopped) = (Arc::clone(&daemon), stopped.clone());
        servers.spawn(async move {
            if let Err(e) = crate::debug::serve(&address, daemon, stopped).await {
                eprintln!("kilnd: warning: debug server: {e:#}");
            }
            Ok(())
        });
    }
    for address in addresses {
        let control = ControlServer::from_arc(Arc::new(ControlService::new(Arc::clone(&daemon))))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let health = HealthServer::new(HealthService);
        let bridge = LlbBridgeServer::new(LlbBridgeService::new(Arc::clone(&daemon)))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let mut shutdown = stopped.clone();
        let shutdown = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Some(path) = address.strip_prefix("unix://") {
            let listener = listen_unix(Path::new(path), owner)?;
            let router = Server::builder()
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .add_service(control)
                .add_service(bridge)
                .add_service(health);
            eprintln!("kilnd: running server on {address}");
            servers.spawn(async move {
                router
                    .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
                    .await
            });
        } else if let Some(host_port) = address.strip_prefix("tcp://") {
            let socket: SocketAddr = tokio::net::lookup_host(host_port)
                .await
                .with_context(|| format!("{address}: not a host:port"))?
                .next()
                .with_context(|| format!("{address}: no address"))?;
            let mut builder = Server::builder()
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW);
            match &tls {
                Some(config) => {
                    builder = builder
                        .tls_config(config.clone())
                        .with_context(|| format!("{address}: TLS settings"))?;
                }
                None if socket.ip().is_loopback() => eprintln!(
                    "kilnd: warning: TLS is not enabled for {address}. enabling mutual TLS authentication is highly recommended"
                ),
                None if insecure_plaintext_tcp => eprintln!(
                    "kilnd: warning: serving {address} without TLS (--insecure-plaintext-tcp): anyone who reaches it can run anything as root"
                ),
                None => bail!(
                    "{address}: refusing plain TCP on an address other than loopback; give --tlscert, --tlskey and --tlscacert (mutual TLS), or --insecure-plaintext-tcp to accept the risk"
                ),
            }
            let listener = tokio::net::TcpListener::bind(socket)
                .await
                .with_context(|| format!("listening on {address}"))?;
            let router = builder
                .add_service(control)
                .add_service(bridge)
                .add_service(health);
            eprintln!("kilnd: running server on {address}");
            servers.spawn(async move {
                router
                    .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
                    .await
            });
        } else {
            bail!("--addr {address}: use unix:///path or tcp://host:port");
        }
    }
    let stop_signal = stop_signal();
    tokio::pin!(stop_signal);
    loop {
        tokio::select! {
            _ = &mut stop_signal => break,
            done = servers.join_next() => match done {
                Some(done) => done.context("a server task failed")?.context("serving")?,
                None => break,
            },
        }
    }
    eprintln!("kilnd: stopping");
    // Builds are cancelled first (their steps killed, their mounts released): the
    // servers' graceful stop waits for the requests in flight, builds included.
    daemon.shutdown();
    let _ = stop.send(true);
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        eprintln!(
            "kilnd: requests still running {}s after the stop; stopping anyway",
            STOP_GRACE.as_secs()
        );
        servers.abort_all();
    }
    for address in addresses {
        if let Some(path) = address.strip_prefix("unix://") {
            let _ = fs_err::remove_file(path);
        }
    }
    Ok(())
}

/// Resolves at the first SIGTERM or SIGINT (never, if they cannot be watched).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// A unix socket at `path` (its directory made; a stale socket nobody answers on
/// replaced), mode 0660, owned as configured.
fn listen_unix(path: &Path, owner: SocketOwner) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "{}: another daemon is listening there; stop it or choose another --addr",
                path.display()
            );
        }
        fs_err::remove_file(path)?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("listening on {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt as _;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if owner.uid.is_some() || owner.gid.is_some() {
        rustix::fs::chown(
            path,
            owner.uid.map(rustix::fs::Uid::from_raw),
            owner.gid.map(rustix::fs::Gid::from_raw),
        )
        .with_context(|| format!("setting the owner of {}", path.display()))?;
    }
    Ok(listener)
}
