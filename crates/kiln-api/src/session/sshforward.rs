//! ssh-agent forwarding over a session (`moby.sshforward.v1.SSH`): the daemon listens
//! on a unix socket a step mounts, and each connection to it becomes a
//! `ForwardAgent` stream to the client, which joins it to its own agent's socket.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::proto::moby::sshforward::v1::ssh_client::SshClient;
use crate::proto::moby::sshforward::v1::{
    BytesMessage, CheckAgentRequest, CheckAgentResponse, ssh_server,
};

/// The metadata key naming the agent a stream is for.
const SSH_ID: &str = "buildkit.ssh.id";

/// Joins a connection to a message stream both ways until either side ends.
async fn join<S>(connection: UnixStream, mut inbound: S, outbound: mpsc::Sender<BytesMessage>)
where
    S: tokio_stream::Stream<Item = Result<BytesMessage, Status>> + Unpin,
{
    let (mut read, mut write) = connection.into_split();
    let to_stream = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match read.read(&mut buf).await {
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
    };
    let from_stream = async move {
        while let Some(Ok(message)) = inbound.next().await {
            if write.write_all(&message.data).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    };
    tokio::join!(to_stream, from_stream);
}

/// The daemon's side: a unix socket at `path` whose connections reach the client's
/// agent `id`; it serves until the returned task is aborted.
pub async fn agent_socket(
    channel: Channel,
    id: &str,
    path: &Path,
) -> Result<tokio::task::JoinHandle<()>, std::io::Error> {
    let listener = UnixListener::bind(path)?;
    let id = id.to_owned();
    Ok(tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            let mut client = SshClient::new(channel.clone());
            let id = id.clone();
            tokio::spawn(async move {
                let (outbound, messages) = mpsc::channel(16);
                let mut request = Request::new(ReceiverStream::new(messages));
                if let Ok(value) = MetadataValue::try_from(id.as_str()) {
                    request.metadata_mut().insert(SSH_ID, value);
                }
                // The client answers once it has connected to its agent.
                let call = tokio::spawn(async move { client.forward_agent(request).await });
                if let Ok(Ok(response)) = call.await {
                    join(connection, response.into_inner(), outbound).await;
                }
            });
        }
    }))
}

/// Whether the client has the agent `id`.
pub async fn check_agent(channel: Channel, id: &str) -> Result<(), Status> {
    SshClient::new(channel)
        .check_agent(CheckAgentRequest { id: id.to_owned() })
        .await
        .map(|_| ())
}

/// The client's side: its agents' sockets by id (`--ssh default=$SSH_AUTH_SOCK`).
#[derive(Debug, Clone, Default)]
pub struct Agents(pub std::collections::BTreeMap<String, PathBuf>);

type Messages =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<BytesMessage, Status>> + Send>>;

#[tonic::async_trait]
impl ssh_server::Ssh for Agents {
    async fn check_agent(
        &self,
        request: Request<CheckAgentRequest>,
    ) -> Result<Response<CheckAgentResponse>, Status> {
        let id = request.into_inner().id;
        let id = if id.is_empty() {
            "default".to_owned()
        } else {
            id
        };
        if self.0.contains_key(&id) {
            Ok(Response::new(CheckAgentResponse {}))
        } else {
            Err(Status::not_found(format!("unset ssh forward key {id}")))
        }
    }

    type ForwardAgentStream = Messages;

    async fn forward_agent(
        &self,
        request: Request<tonic::Streaming<BytesMessage>>,
    ) -> Result<Response<Self::ForwardAgentStream>, Status> {
        let id = request
            .metadata()
            .get(SSH_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .unwrap_or("default")
            .to_owned();
        let socket = self
            .0
            .get(&id)
            .ok_or_else(|| Status::not_found(format!("unset ssh forward key {id}")))?;
        let connection = UnixStream::connect(socket)
            .await
            .map_err(|e| Status::unavailable(format!("{}: {e}", socket.display())))?;
        let (outbound, messages) = mpsc::channel(16);
        let inbound = request.into_inner();
        tokio::spawn(join(connection, inbound, outbound));
        Ok(Response::new(Box::pin(
            ReceiverStream::new(messages).map(Ok),
        )))
    }
}
