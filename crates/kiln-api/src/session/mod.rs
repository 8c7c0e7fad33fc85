//! The session transport: `Control.Session` carries HTTP/2 frames in `BytesMessage`s;
//! the client serves gRPC on its end (file sync, secrets, auth, ssh…) and the daemon
//! calls it on the other.

use std::sync::Mutex;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::{Stream, StreamExt as _};
use tonic::transport::{Channel, Endpoint, Uri};

pub mod attachables;
mod auth;
pub mod content;
pub mod filesync;
mod fsmode;
pub mod oci_layout;
pub mod sshforward;
pub mod upload;

use crate::proto::moby::buildkit::v1::BytesMessage;

/// gRPC metadata a client sends when it opens a session (BuildKit's `session` package).
pub mod headers {
    /// The session's id, which solve requests name.
    pub const UUID: &str = "x-docker-expose-session-uuid";
    /// A name for people (the client's working directory, usually).
    pub const NAME: &str = "x-docker-expose-session-name";
    /// The key builds of the same project share (local sources are reused by it).
    pub const SHARED_KEY: &str = "x-docker-expose-session-sharedkey";
    /// Every gRPC method the client serves, one value each.
    pub const METHOD: &str = "x-docker-expose-session-grpc-method";
    /// On a gateway (LLBBridge) call: the client-driven build it belongs to.
    pub const BUILD_ID: &str = "buildkit-controlapi-buildid";
}

/// How much of the byte pipe is buffered in each direction.
const PIPE_BUFFER: usize = 256 * 1024;

/// One byte pipe over a session's message streams: bytes written to the returned end go
/// out as `BytesMessage`s through `outbound`, and the data of `inbound`'s messages can be
/// read from it. The pipe closes when either stream ends; the receiver returned with it
/// resolves when the peer's stream has ended (the session is over).
pub fn duplex<S, E>(
    mut inbound: S,
    outbound: mpsc::Sender<BytesMessage>,
) -> (DuplexStream, oneshot::Receiver<()>)
where
    S: Stream<Item = Result<BytesMessage, E>> + Send + Unpin + 'static,
    E: Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(PIPE_BUFFER);
    let (mut read_half, mut write_half) = tokio::io::split(theirs);
    let (ended, closed) = oneshot::channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = inbound.next().await {
            if write_half.write_all(&message.data).await.is_err() {
                break;
            }
        }
        let _ = write_half.shutdown().await;
        let _ = ended.send(());
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match read_half.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let message = BytesMessage {
                        data: buf[..n].to_vec(),
                    };
                    if outbound.send(message).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    (ours, closed)
}

/// The HTTP/2 flow-control windows of every connection kiln opens or serves (the
/// client's to the daemon, and the session's inside it): a context's stat list and
/// files travel without stopping for the receiver's window updates, which through a
/// session's two layers take a round trip each (HTTP/2's default is 64 KiB).
pub const STREAM_WINDOW: u32 = 8 << 20;
/// See [`STREAM_WINDOW`]: the whole connection's.
pub const CONNECTION_WINDOW: u32 = 16 << 20;

/// A gRPC channel over a session's byte pipe: the daemon's way to call the services the
/// client serves. The pipe carries one HTTP/2 connection; it is not reconnected.
pub async fn channel(pipe: DuplexStream) -> Result<Channel, tonic::transport::Error> {
    let pipe = Mutex::new(Some(pipe));
    Endpoint::from_static("http://session")
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let taken = pipe.lock().unwrap_or_else(|e| e.into_inner()).take();
            async move {
                taken.map(TokioIo::new).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotConnected,
                        "the session's connection is closed",
                    )
                })
            }
        }))
        .await
}
