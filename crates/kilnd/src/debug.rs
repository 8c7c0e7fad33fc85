//! The debug address (`--debugaddr`, `BUILDKITD_DEBUGADDR`): a minimal HTTP server.
//! BuildKit's test harness fetches `/debug/pprof/goroutine` from it when a test hangs,
//! and fails badly when nothing answers; kilnd answers with the solves running and its
//! threads with what each waits in, the nearest it has to Go's goroutine dump.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;

use crate::control::Daemon;

/// The largest request head read.
const MAX_HEAD: usize = 16 << 10;

/// Serves `address` (`unix:///path`, `tcp://host:port` or `host:port`) until `stopped`.
pub(crate) async fn serve(
    address: &str,
    daemon: Arc<Daemon>,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let listener = Listener::bind(address).await?;
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return Ok(()),
            accepted = listener.accept(Arc::clone(&daemon)) => accepted?,
        }
    }
}

enum Listener {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
}

impl Listener {
    async fn bind(address: &str) -> anyhow::Result<Self> {
        let context = || format!("--debugaddr {address}");
        if let Some(path) = address.strip_prefix("unix://") {
            let _ = fs_err::remove_file(path);
            let listener = tokio::net::UnixListener::bind(path).with_context(context)?;
            return Ok(Self::Unix(listener));
        }
        let host_port = address.strip_prefix("tcp://").unwrap_or(address);
        let listener = tokio::net::TcpListener::bind(host_port)
            .await
            .with_context(context)?;
        Ok(Self::Tcp(listener))
    }

    /// Accepts one connection and answers it on its own task.
    async fn accept(&self, daemon: Arc<Daemon>) -> anyhow::Result<()> {
        match self {
            Self::Unix(listener) => {
                let (stream, _) = listener.accept().await?;
                tokio::spawn(answer(stream, daemon));
            }
            Self::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                tokio::spawn(answer(stream, daemon));
            }
        }
        Ok(())
    }
}

/// Reads one request and writes its response (the connection is closed after it).
async fn answer(mut stream: impl AsyncRead + AsyncWrite + Unpin, daemon: Arc<Daemon>) {
    let Some(path) = read_request_path(&mut stream).await else {
        return;
    };
    let (status, body) = match path.split('?').next().unwrap_or_default() {
        "/debug/pprof/goroutine" => ("200 OK", goroutine_dump(&daemon)),
        _ => ("404 Not Found", "404 page not found\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The path of an HTTP request's first line, once its head has been read.
async fn read_request_path(stream: &mut (impl AsyncRead + Unpin)) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut request_line = head.lines().next()?.split_whitespace();
    (request_line.next()? == "GET").then_some(())?;
    request_line.next().map(str::to_owned)
}

/// The solves running, then each thread: its name, state and kernel wait channel.
fn goroutine_dump(daemon: &Daemon) -> String {
    let mut text = String::from("kilnd: solves running:\n");
    for id in daemon.jobs.running() {
        text.push_str(&format!("  {id}\n"));
    }
    text.push_str("kilnd: threads (name, state, wait channel):\n");
    let mut tasks: Vec<_> = fs_err::read_dir("/proc/self/task")
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    tasks.sort();
    for task in tasks {
        let read = |name: &str| {
            fs_err::read_to_string(task.join(name))
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let state = read("status")
            .lines()
            .find_map(|l| l.strip_prefix("State:").map(|s| s.trim().to_owned()))
            .unwrap_or_default();
        let id = task.file_name().unwrap_or_default().to_string_lossy();
        text.push_str(&format!(
            "  {id} {} [{state}] {}\n",
            read("comm"),
            read("wchan")
        ));
    }
    text
}
