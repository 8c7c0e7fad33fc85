//! The client's end of a session: the gRPC services a client serves to the daemon
//! (BuildKit's "attachables") over the session's connection — its directories
//! (`FileSync`), the places its results go (`FileSend`), its secrets, uploads, and
//! health.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf as _, BufMut as _};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::filesync::{self, Inbound};
use super::fsmode;
use crate::proto::fsutil::types::{Packet, Stat};
use crate::proto::health::health_check_response::ServingStatus;
use crate::proto::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse, health_server,
};
use crate::proto::moby::buildkit::secrets::v1::{
    GetSecretRequest, GetSecretResponse, secrets_server,
};
use crate::proto::moby::filesync::packet::file_sync_server;
use crate::proto::moby::filesync::v1::BytesMessage;

/// Where one exporter's result goes on the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// A directory (`local`): the result's files, merged into it.
    Dir(PathBuf),
    /// A file (`tar`, `oci`, `docker`), written to a temp name and renamed.
    File(PathBuf),
    /// Standard output.
    Stdout,
}

/// What a client lends the daemon through its session.
#[derive(Debug, Clone, Default)]
pub struct Attachables {
    /// Local directories by name (`context`, `dockerfile`, named contexts).
    pub dirs: BTreeMap<String, PathBuf>,
    /// Secrets by id.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// Where each exporter's result goes, by exporter index.
    pub outputs: BTreeMap<usize, OutputTarget>,
    /// ssh agents' sockets by id (`--ssh`).
    pub ssh: BTreeMap<String, PathBuf>,
    /// Answer the daemon's requests for registry credentials from this user's docker
    /// configuration.
    pub registry_auth: bool,
    /// Content stores by id (`local:DIR` → DIR): the `type=local` cache directories.
    pub content_stores: BTreeMap<String, PathBuf>,
    /// Files lent as `http://buildkit-session/ID` (a context archive).
    pub uploads: super::upload::Uploads,
}

impl Attachables {
    /// The gRPC methods these serve (the session's `grpc-method` headers).
    pub fn methods(&self) -> Vec<&'static str> {
        let mut methods = vec!["/grpc.health.v1.Health/Check"];
        if !self.dirs.is_empty() {
            methods.push("/moby.filesync.v1.FileSync/DiffCopy");
        }
        if !self.outputs.is_empty() {
            methods.push("/moby.filesync.v1.FileSend/DiffCopy");
        }
        methods.push("/moby.buildkit.secrets.v1.Secrets/GetSecret");
        if self.registry_auth {
            methods.push("/moby.filesync.v1.Auth/Credentials");
        }
        if !self.ssh.is_empty() {
            methods.push("/moby.sshforward.v1.SSH/CheckAgent");
            methods.push("/moby.sshforward.v1.SSH/ForwardAgent");
        }
        if !self.content_stores.is_empty() {
            methods.extend(super::content::METHODS);
        }
        if !self.uploads.is_empty() {
            methods.push(super::upload::PULL);
        }
        methods
    }

    /// Serves these on a session's connection until the daemon closes it.
    pub async fn serve(self, pipe: DuplexStream) -> Result<(), tonic::transport::Error> {
        let lent = Arc::new(self);
        tonic::transport::Server::builder()
            .initial_stream_window_size(super::STREAM_WINDOW)
            .initial_connection_window_size(super::CONNECTION_WINDOW)
            .add_service(
                file_sync_server::FileSyncServer::from_arc(Arc::clone(&lent))
                    .max_decoding_message_size(usize::MAX),
            )
            .add_service(FileSendService {
                outputs: Arc::new(lent.outputs.clone()),
            })
            .add_service(secrets_server::SecretsServer::from_arc(Arc::clone(&lent)))
            .add_service(
                crate::proto::moby::sshforward::v1::ssh_server::SshServer::new(
                    super::sshforward::Agents(lent.ssh.clone()),
                ),
            )
            .add_service(
                crate::proto::moby::filesync::v1::auth_server::AuthServer::new(
                    super::auth::DockerConfigAuth,
                ),
            )
            .add_service(super::content::ContentService::new(
                lent.content_stores.clone(),
            ))
            .add_service(lent.uploads.clone().service())
            .add_service(health_server::HealthServer::new(Healthy))
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(SessionIo(pipe))))
            .await
    }
}

/// A session's byte pipe as a server connection.
struct SessionIo(DuplexStream);

impl tonic::transport::server::Connected for SessionIo {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for SessionIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SessionIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A header's values, URL-decoded when the sender marked them `KEY-encoded`.
fn header_values(metadata: &MetadataMap, key: &str) -> Vec<String> {
    let encoded = metadata
        .get(format!("{key}-encoded").as_str())
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "1" || v == "true");
    metadata
        .get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            if encoded {
                query_unescape(v)
            } else {
                v.to_owned()
            }
        })
        .collect()
}

/// Go's `url.QueryUnescape` (malformed escapes kept as they are).
fn query_unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The packets of a channel of batches, one at a time.
struct Unbatched {
    batches: mpsc::Receiver<Vec<Packet>>,
    current: std::vec::IntoIter<Packet>,
}

impl Stream for Unbatched {
    type Item = Packet;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Packet>> {
        loop {
            if let Some(packet) = self.current.next() {
                return Poll::Ready(Some(packet));
            }
            match self.batches.poll_recv(cx) {
                Poll::Ready(Some(batch)) => self.current = batch.into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// How many stat packets go out together while a walk goes on.
const STAT_BATCH: usize = 512;

/// Sends the stat list of a local directory to `to_daemon` as the client sends it, in
/// batches as the walk goes on (the daemon compares while the client walks): what the
/// filter selects, in the walk's order, hardlinks pointing at their first path.
/// Returns the entries' paths, by id, for the files the daemon asks for.
fn stream_stats(
    dir: &std::path::Path,
    filter: &kiln_llb::local::Filter,
    to_daemon: &mpsc::Sender<Vec<Packet>>,
) -> Result<Vec<PathBuf>, Status> {
    use kiln_llb::local::SelectError;
    // On the walk's reading threads: each entry's extended attributes (looked up by
    // path unless the walk knows there are none) and a symlink's target.
    let enrich = |rel: &str, entry: &kiln_llb::local::Entry, has_xattrs: Option<bool>| {
        let path = dir.join(rel);
        let xattrs = if has_xattrs == Some(false) {
            HashMap::new()
        } else {
            filesync::sent_xattrs(&path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?
        };
        let linkname = if entry.is_symlink() {
            fs_err::read_link(&path)?.to_string_lossy().into_owned()
        } else {
            String::new()
        };
        Ok::<_, SelectError>((xattrs, linkname))
    };
    let mut first_link: HashMap<u64, String> = HashMap::new();
    let mut paths = Vec::new();
    let mut batch = Vec::with_capacity(STAT_BATCH);
    let gone = || SelectError::Io(std::io::Error::other("the daemon stopped listening"));
    let mut emit = |rel: String,
                    entry: kiln_llb::local::Entry,
                    (xattrs, mut linkname): (HashMap<String, Vec<u8>>, String)| {
        if entry.is_file() && !entry.socket {
            match first_link.get(&entry.ino) {
                Some(first) => linkname = first.clone(),
                None => {
                    first_link.insert(entry.ino, rel.clone());
                }
            }
        }
        paths.push(dir.join(&rel));
        let rdev = entry.rdev;
        let stat = Stat {
            path: rel,
            mode: fsmode::from_unix(entry.mode),
            uid: entry.uid,
            gid: entry.gid,
            size: entry.size as i64,
            mod_time: entry.mtime * 1_000_000_000 + entry.mtime_nsec,
            linkname,
            devmajor: i64::from(rustix::fs::major(rdev)),
            devminor: i64::from(rustix::fs::minor(rdev)),
            xattrs,
        };
        batch.push(Packet {
            r#type: crate::proto::fsutil::types::packet::PacketType::PacketStat as i32,
            stat: Some(stat),
            ..Packet::default()
        });
        if batch.len() == STAT_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(STAT_BATCH));
            to_daemon.blocking_send(full).map_err(|_| gone())?;
        }
        Ok(())
    };
    kiln_llb::local::select_to_send(dir, filter, &enrich, &mut emit)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    if !batch.is_empty() {
        to_daemon
            .blocking_send(batch)
            .map_err(|_| Status::unavailable(gone().to_string()))?;
    }
    Ok(paths)
}

type PacketStream = Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send>>;

#[tonic::async_trait]
impl file_sync_server::FileSync for Attachables {
    type DiffCopyStream = PacketStream;

    /// The daemon asks for one of the client's directories, filtered.
    async fn diff_copy(
        &self,
        request: Request<tonic::Streaming<Packet>>,
    ) -> Result<Response<Self::DiffCopyStream>, Status> {
        let metadata = request.metadata();
        let name = header_values(metadata, "dir-name")
            .into_iter()
            .next()
            .unwrap_or_default();
        let dir = self
            .dirs
            .get(&name)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no access allowed to dir {name:?}")))?;
        let filter = kiln_llb::local::Filter {
            include_patterns: header_values(metadata, "include-patterns"),
            exclude_patterns: header_values(metadata, "exclude-patterns"),
            follow_paths: header_values(metadata, "followpaths"),
        };
        let inbound: Inbound = Box::pin(request.into_inner());
        // The stat list goes out in batches while the walk goes on (one wakeup per
        // batch, not per entry), then the end of the list and the files asked for.
        let (stat_batches, listed) = mpsc::channel::<Vec<Packet>>(16);
        let (to_daemon, outbound) = mpsc::channel(1024);
        tokio::spawn(async move {
            let what = format!("sending {name}");
            let sent = async {
                let paths =
                    tokio::task::spawn_blocking(move || stream_stats(&dir, &filter, &stat_batches))
                        .await
                        .map_err(|e| filesync::Error::Protocol {
                            what: what.clone(),
                            message: e.to_string(),
                        })?
                        .map_err(|status| filesync::Error::Protocol {
                            what: what.clone(),
                            message: status.message().to_owned(),
                        })?;
                filesync::send_stats(Vec::new(), &to_daemon, &what).await?;
                filesync::serve_requests(&paths, inbound, &to_daemon, &what).await
            };
            if let Err(e) = sent.await {
                let _ = to_daemon
                    .send(Packet {
                        r#type: crate::proto::fsutil::types::packet::PacketType::PacketErr as i32,
                        data: e.to_string().into_bytes(),
                        ..Packet::default()
                    })
                    .await;
            }
        });
        Ok(Response::new(Box::pin(
            Unbatched {
                batches: listed,
                current: Vec::new().into_iter(),
            }
            .chain(ReceiverStream::new(outbound))
            .map(Ok),
        )))
    }

    type TarStreamStream = PacketStream;

    async fn tar_stream(
        &self,
        _request: Request<tonic::Streaming<Packet>>,
    ) -> Result<Response<Self::TarStreamStream>, Status> {
        Err(Status::unimplemented(
            "the tar stream protocol is not served; use diffcopy",
        ))
    }
}

#[tonic::async_trait]
impl secrets_server::Secrets for Attachables {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = request.into_inner().id;
        self.secrets
            .get(&id)
            .map(|data| Response::new(GetSecretResponse { data: data.clone() }))
            .ok_or_else(|| Status::not_found(format!("secret {id} not found")))
    }
}

struct Healthy;

#[tonic::async_trait]
impl health_server::Health for Healthy {
    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Ok(Response::new(HealthListResponse::default()))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let serving = HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        };
        Ok(Response::new(Box::pin(tokio_stream::once(Ok(serving)))))
    }
}

/// Messages as raw bytes: `FileSend.DiffCopy` carries fsutil packets for a directory
/// output and byte messages for a file output, on the one method.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// `FileSend`: where the daemon sends the client's results.
#[derive(Clone)]
struct FileSendService {
    outputs: Arc<BTreeMap<usize, OutputTarget>>,
}

impl tonic::server::NamedService for FileSendService {
    const NAME: &'static str = "moby.filesync.v1.FileSend";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type RawStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>, Status>> + Send>>;

impl<B> tower::Service<http::Request<B>> for FileSendService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != "/moby.filesync.v1.FileSend/DiffCopy" {
            return Box::pin(async {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            });
        }
        let method = DiffCopy {
            outputs: Arc::clone(&self.outputs),
        };
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_max_message_size_config(Some(usize::MAX), Some(usize::MAX));
            Ok(grpc.streaming(method, request).await)
        })
    }
}

struct DiffCopy {
    outputs: Arc<BTreeMap<usize, OutputTarget>>,
}

impl tonic::server::StreamingService<Vec<u8>> for DiffCopy {
    type Response = Vec<u8>;
    type ResponseStream = RawStream;
    type Future = BoxFuture<Result<Response<RawStream>, Status>>;

    fn call(&mut self, request: Request<tonic::Streaming<Vec<u8>>>) -> Self::Future {
        let outputs = Arc::clone(&self.outputs);
        Box::pin(async move {
            let id: usize = request
                .metadata()
                .get("buildkit-attachable-exporter-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let target = outputs
                .get(&id)
                .cloned()
                .ok_or_else(|| Status::not_found(format!("exporter {id} not found")))?;
            let mut inbound = request.into_inner();
            let (to_daemon, outbound) = mpsc::channel::<Vec<u8>>(64);
            match target {
                OutputTarget::Dir(dir) => {
                    let packets: Inbound = Box::pin(async_stream_map(inbound));
                    let (to_sender, mut replies) = mpsc::channel::<Packet>(64);
                    tokio::spawn(async move {
                        while let Some(packet) = replies.recv().await {
                            if to_daemon.send(packet.encode_to_vec()).await.is_err() {
                                break;
                            }
                        }
                    });
                    tokio::spawn(async move {
                        let what = format!("receiving the result into {}", dir.display());
                        if let Err(e) =
                            filesync::receive_packets(packets, to_sender, &dir, true, None, &what)
                                .await
                        {
                            eprintln!("kiln: {e}");
                        }
                    });
                }
                OutputTarget::File(_) | OutputTarget::Stdout => {
                    tokio::spawn(async move {
                        let written = async {
                            let mut sink = Sink::open(&target)?;
                            while let Some(message) = inbound.next().await {
                                let message = message?;
                                let data = BytesMessage::decode(message.as_slice())
                                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                                sink.write(&data.data)?;
                            }
                            sink.finish()
                        };
                        if let Err(status) = written.await {
                            eprintln!("kiln: writing the result: {}", status.message());
                        }
                        drop(to_daemon);
                    });
                }
            }
            let stream: RawStream = Box::pin(ReceiverStream::new(outbound).map(Ok));
            Ok(Response::new(stream))
        })
    }
}

/// Raw messages as fsutil packets.
fn async_stream_map(
    inbound: tonic::Streaming<Vec<u8>>,
) -> impl Stream<Item = Result<Packet, Status>> + Send {
    inbound.map(|message| {
        let message = message?;
        Packet::decode(message.as_slice()).map_err(|e| Status::invalid_argument(e.to_string()))
    })
}

/// A file output being written: a temp file renamed into place at the end, or stdout.
enum Sink {
    File {
        temp: tempfile::NamedTempFile,
        path: PathBuf,
    },
    Stdout(std::io::Stdout),
}

impl Sink {
    fn open(target: &OutputTarget) -> Result<Self, Status> {
        match target {
            OutputTarget::File(path) => {
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."));
                let temp = tempfile::NamedTempFile::new_in(dir)
                    .map_err(|e| Status::unavailable(format!("{}: {e}", dir.display())))?;
                Ok(Self::File {
                    temp,
                    path: path.clone(),
                })
            }
            _ => Ok(Self::Stdout(std::io::stdout())),
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), Status> {
        let written = match self {
            Self::File { temp, .. } => temp.write_all(data),
            Self::Stdout(out) => out.write_all(data),
        };
        written.map_err(|e| Status::unavailable(e.to_string()))
    }

    fn finish(self) -> Result<(), Status> {
        match self {
            Self::File { temp, path } => temp
                .persist(&path)
                .map(|_| ())
                .map_err(|e| Status::unavailable(format!("{}: {e}", path.display()))),
            Self::Stdout(mut out) => out.flush().map_err(|e| Status::unavailable(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_as_go_does() {
        assert_eq!(query_unescape("a+b%2F%C3%A9"), "a b/é");
        assert_eq!(query_unescape("100%"), "100%");
    }
}
