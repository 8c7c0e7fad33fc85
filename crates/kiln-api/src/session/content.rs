//! containerd's `Content` service over a session, as BuildKit lends a client's
//! directories to its daemon (`session/content`): a `type=local` cache directory is
//! the content store `local:DIR`, chosen per call by the `buildkit-attachable-store-id`
//! header. The client serves [`ContentService`] (blobs under `DIR/blobs/sha256/`); the
//! daemon calls it with [`ContentClient`] to read an import's blobs and write an
//! export's. Only what BuildKit's cache import and export use is served: `Info`,
//! `Read` and `Write`.
//!
//! The messages are containerd's `api/services/content/v1/content.proto`, written out
//! here with their field numbers (the BuildKit proto crate does not carry them).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

/// The header naming the store a call is for.
pub const STORE_ID_HEADER: &str = "buildkit-attachable-store-id";

/// The store id of a client's local cache directory (`local:` + the path as given).
pub fn local_store_id(dir: &Path) -> String {
    format!("local:{}", dir.display())
}

const SERVICE: &str = "containerd.services.content.v1.Content";
const INFO: &str = "/containerd.services.content.v1.Content/Info";
const READ: &str = "/containerd.services.content.v1.Content/Read";
const WRITE: &str = "/containerd.services.content.v1.Content/Write";

/// The methods [`ContentService`] serves (the session's `grpc-method` headers).
pub const METHODS: [&str; 3] = [INFO, READ, WRITE];

/// How much one `Read` or `Write` message carries (containerd's buffer size, well
/// under gRPC's default 4 MiB message limit).
const CHUNK: usize = 1 << 20;

/// `containerd.services.content.v1.Info` (times and labels are not used here).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Info {
    /// The blob's digest.
    #[prost(string, tag = "1")]
    pub digest: String,
    /// Its size in bytes.
    #[prost(int64, tag = "2")]
    pub size: i64,
}

/// `InfoRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InfoRequest {
    /// The blob asked about.
    #[prost(string, tag = "1")]
    pub digest: String,
}

/// `InfoResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InfoResponse {
    /// The blob's info.
    #[prost(message, optional, tag = "1")]
    pub info: Option<Info>,
}

/// `ReadContentRequest`: `size` bytes from `offset` (0: to the end).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadContentRequest {
    /// The blob to read.
    #[prost(string, tag = "1")]
    pub digest: String,
    /// Where to start.
    #[prost(int64, tag = "2")]
    pub offset: i64,
    /// How much (0 or less: the rest).
    #[prost(int64, tag = "3")]
    pub size: i64,
}

/// `ReadContentResponse`: one piece of the blob.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadContentResponse {
    /// Where the piece starts in the blob.
    #[prost(int64, tag = "1")]
    pub offset: i64,
    /// The bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// `WriteAction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum WriteAction {
    /// Ask where the write stands.
    Stat = 0,
    /// Write data at an offset.
    Write = 1,
    /// Write the last data and check the whole blob against the expected digest.
    Commit = 2,
}

/// `WriteContentRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteContentRequest {
    /// What to do.
    #[prost(enumeration = "WriteAction", tag = "1")]
    pub action: i32,
    /// The write's name (the first message must have one).
    #[prost(string, tag = "2")]
    pub r#ref: String,
    /// The blob's whole size, when known.
    #[prost(int64, tag = "3")]
    pub total: i64,
    /// The blob's digest, when known.
    #[prost(string, tag = "4")]
    pub expected: String,
    /// Where `data` goes.
    #[prost(int64, tag = "5")]
    pub offset: i64,
    /// The bytes.
    #[prost(bytes = "vec", tag = "6")]
    pub data: Vec<u8>,
    /// Labels for the committed blob.
    #[prost(map = "string, string", tag = "7")]
    pub labels: std::collections::HashMap<String, String>,
}

/// `WriteContentResponse`: where the write stands after a request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteContentResponse {
    /// The request's action.
    #[prost(enumeration = "WriteAction", tag = "1")]
    pub action: i32,
    /// Bytes written so far.
    #[prost(int64, tag = "4")]
    pub offset: i64,
    /// The blob's size, when known.
    #[prost(int64, tag = "5")]
    pub total: i64,
    /// The digest of what was written (after a commit, the blob's).
    #[prost(string, tag = "6")]
    pub digest: String,
}

/// The largest message either way (a `Write` or `Read` carries at most [`CHUNK`]).
const MAX_MESSAGE: usize = 8 << 20;

fn codec<E, D>() -> tonic_prost::ProstCodec<E, D> {
    tonic_prost::ProstCodec::default()
}

/// One method's server side.
fn server<E, D>() -> tonic::server::Grpc<tonic_prost::ProstCodec<E, D>>
where
    tonic_prost::ProstCodec<E, D>: tonic::codec::Codec,
{
    tonic::server::Grpc::new(codec())
        .apply_max_message_size_config(Some(MAX_MESSAGE), Some(MAX_MESSAGE))
}

pub(super) fn sha256_digest(hasher: Sha256) -> String {
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Whether `digest` is `sha256:` and 64 hex digits: the only digests that name blobs.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The path of blob `digest` under a store directory; only sha256 digests of 64 hex
/// digits are blobs (nothing else may reach the file system).
pub(super) fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, Status> {
    if !is_sha256_digest(digest) {
        return Err(Status::invalid_argument(format!(
            "{digest:?} failed validation"
        )));
    }
    Ok(dir.join("blobs/sha256").join(&digest["sha256:".len()..]))
}

fn io_status(what: &str, error: &std::io::Error) -> Status {
    match error.kind() {
        std::io::ErrorKind::NotFound => Status::not_found(format!("{what}: not found")),
        _ => Status::unavailable(format!("{what}: {error}")),
    }
}

// ---------------------------------------------------------------------------------
// The client's side: the service.

/// The content stores a client lends, by store id (`local:DIR` → DIR).
#[derive(Debug, Clone, Default)]
pub struct ContentService {
    stores: Arc<BTreeMap<String, PathBuf>>,
}

impl ContentService {
    /// Serves `stores` (store id → directory).
    pub fn new(stores: BTreeMap<String, PathBuf>) -> Self {
        Self {
            stores: Arc::new(stores),
        }
    }

    fn store<T>(&self, request: &Request<T>) -> Result<PathBuf, Status> {
        let id = request
            .metadata()
            .get(STORE_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Status::invalid_argument(format!("request lacks metadata {STORE_ID_HEADER:?}"))
            })?;
        self.stores
            .get(id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("unknown store {id}")))
    }
}

impl tonic::server::NamedService for ContentService {
    const NAME: &'static str = SERVICE;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type MessageStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl<B> tower::Service<http::Request<B>> for ContentService
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
        let service = self.clone();
        let path = request.uri().path().to_owned();
        Box::pin(async move {
            Ok(match path.as_str() {
                INFO => server().unary(InfoMethod(service), request).await,
                READ => {
                    server()
                        .server_streaming(ReadMethod(service), request)
                        .await
                }
                WRITE => server().streaming(WriteMethod(service), request).await,
                _ => Status::unimplemented(format!("{path} is not served")).into_http(),
            })
        })
    }
}

struct InfoMethod(ContentService);

impl tonic::server::UnaryService<InfoRequest> for InfoMethod {
    type Response = InfoResponse;
    type Future = BoxFuture<Result<Response<InfoResponse>, Status>>;

    fn call(&mut self, request: Request<InfoRequest>) -> Self::Future {
        let store = self.0.store(&request);
        Box::pin(async move {
            let digest = request.into_inner().digest;
            let path = blob_path(&store?, &digest)?;
            let meta = tokio::fs::metadata(&path)
                .await
                .map_err(|e| io_status(&format!("content digest {digest}"), &e))?;
            Ok(Response::new(InfoResponse {
                info: Some(Info {
                    digest,
                    size: meta.len() as i64,
                }),
            }))
        })
    }
}

struct ReadMethod(ContentService);

impl tonic::server::ServerStreamingService<ReadContentRequest> for ReadMethod {
    type Response = ReadContentResponse;
    type ResponseStream = MessageStream<ReadContentResponse>;
    type Future = BoxFuture<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<ReadContentRequest>) -> Self::Future {
        let store = self.0.store(&request);
        Box::pin(async move {
            let asked = request.into_inner();
            let path = blob_path(&store?, &asked.digest)?;
            let what = format!("content digest {}", asked.digest);
            let mut file = fs_err::File::open(&path).map_err(|e| io_status(&what, &e))?;
            let len = file.metadata().map_err(|e| io_status(&what, &e))?.len() as i64;
            let offset = asked.offset.max(0);
            if offset > len {
                return Err(Status::out_of_range(format!(
                    "read past object length {len} bytes"
                )));
            }
            let size = if asked.size <= 0 || offset + asked.size > len {
                len - offset
            } else {
                asked.size
            };
            let (pieces, stream) = mpsc::channel(4);
            tokio::task::spawn_blocking(move || {
                let sent = (|| {
                    use std::io::Seek as _;
                    file.seek(std::io::SeekFrom::Start(offset as u64))?;
                    let mut at = offset;
                    let mut left = size;
                    while left > 0 {
                        let mut data = vec![0; CHUNK.min(left as usize)];
                        file.read_exact(&mut data)?;
                        let n = data.len() as i64;
                        let piece = ReadContentResponse { offset: at, data };
                        if pieces.blocking_send(Ok(piece)).is_err() {
                            break;
                        }
                        at += n;
                        left -= n;
                    }
                    Ok::<_, std::io::Error>(())
                })();
                if let Err(e) = sent {
                    let _ = pieces.blocking_send(Err(io_status(&what, &e)));
                }
            });
            let stream: Self::ResponseStream = Box::pin(ReceiverStream::new(stream));
            Ok(Response::new(stream))
        })
    }
}

struct WriteMethod(ContentService);

impl tonic::server::StreamingService<WriteContentRequest> for WriteMethod {
    type Response = WriteContentResponse;
    type ResponseStream = MessageStream<WriteContentResponse>;
    type Future = BoxFuture<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<tonic::Streaming<WriteContentRequest>>) -> Self::Future {
        let store = self.0.store(&request);
        Box::pin(async move {
            let dir = store?;
            let mut requests = request.into_inner();
            let (answers, stream) = mpsc::channel(16);
            tokio::spawn(async move {
                let mut ingest = None;
                while let Some(next) = requests.next().await {
                    let answer = match next {
                        // File work off the runtime's threads; the write's state goes
                        // along and comes back.
                        Ok(asked) => {
                            let dir = dir.clone();
                            let step = tokio::task::spawn_blocking(move || {
                                let answer = write_step(&dir, &mut ingest, asked);
                                (answer, ingest)
                            });
                            match step.await {
                                Ok((answer, state)) => {
                                    ingest = state;
                                    answer
                                }
                                Err(e) => {
                                    ingest = None;
                                    Err(Status::internal(format!("writing a blob: {e}")))
                                }
                            }
                        }
                        Err(status) => Err(status),
                    };
                    let (failed, committed) = match &answer {
                        Ok(a) => (false, a.action == WriteAction::Commit as i32),
                        Err(_) => (true, false),
                    };
                    if answers.send(answer).await.is_err() || failed || committed {
                        break;
                    }
                }
            });
            let stream: Self::ResponseStream = Box::pin(ReceiverStream::new(stream));
            Ok(Response::new(stream))
        })
    }
}

/// A blob being received: a temp file in `DIR/ingest`, hashed as it is written.
struct Ingest {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    offset: i64,
    total: i64,
    expected: String,
}

/// One request of a `Write` stream, as containerd's content server handles it: the
/// first names the write; a known expected digest that the store has already ends
/// the write with `AlreadyExists`; data must continue where the write stands; a
/// commit checks size and digest and moves the blob into place.
fn write_step(
    dir: &Path,
    ingest: &mut Option<Ingest>,
    asked: WriteContentRequest,
) -> Result<WriteContentResponse, Status> {
    let exists = |digest: &str| -> Result<bool, Status> {
        Ok(!digest.is_empty() && blob_path(dir, digest)?.is_file())
    };
    let write = match ingest {
        Some(write) => write,
        None => {
            if asked.r#ref.is_empty() {
                return Err(Status::invalid_argument(
                    "first message must have a reference",
                ));
            }
            if exists(&asked.expected)? {
                return Err(Status::already_exists(format!(
                    "blob with expected digest {} exists",
                    asked.expected
                )));
            }
            let ingest_dir = dir.join("ingest");
            fs_err::create_dir_all(&ingest_dir).map_err(|e| io_status("ingest", &e))?;
            let file = tempfile::NamedTempFile::new_in(&ingest_dir)
                .map_err(|e| io_status(&ingest_dir.display().to_string(), &e))?;
            ingest.insert(Ingest {
                file,
                hasher: Sha256::new(),
                offset: 0,
                total: asked.total,
                expected: asked.expected.clone(),
            })
        }
    };
    if !asked.expected.is_empty() {
        if exists(&asked.expected)? {
            return Err(Status::already_exists(format!(
                "blob with expected digest {} exists",
                asked.expected
            )));
        }
        write.expected = asked.expected.clone();
    }
    if asked.total > 0 {
        write.total = asked.total;
    }
    let action = WriteAction::try_from(asked.action)
        .map_err(|_| Status::invalid_argument(format!("unknown write action {}", asked.action)))?;
    if action != WriteAction::Stat {
        if asked.offset > 0 && asked.offset != write.offset {
            return Err(Status::out_of_range(format!(
                "write @{} must occur at current offset {}",
                asked.offset, write.offset
            )));
        }
        if asked.offset == 0 && write.offset > 0 {
            // Starting over.
            write
                .file
                .as_file()
                .set_len(0)
                .map_err(|e| io_status("ingest", &e))?;
            use std::io::Seek as _;
            write
                .file
                .as_file_mut()
                .seek(std::io::SeekFrom::Start(0))
                .map_err(|e| io_status("ingest", &e))?;
            write.hasher = Sha256::new();
            write.offset = 0;
        }
        if !asked.data.is_empty() {
            write
                .file
                .write_all(&asked.data)
                .map_err(|e| io_status("ingest", &e))?;
            write.hasher.update(&asked.data);
            write.offset += asked.data.len() as i64;
        }
    }
    let digest = sha256_digest(write.hasher.clone());
    if action == WriteAction::Commit {
        if write.total > 0 && write.offset != write.total {
            return Err(Status::failed_precondition(format!(
                "unexpected commit size {}, expected {}",
                write.offset, write.total
            )));
        }
        if !write.expected.is_empty() && digest != write.expected {
            return Err(Status::failed_precondition(format!(
                "unexpected commit digest {digest}, expected {}",
                write.expected
            )));
        }
        let path = blob_path(dir, &digest)?;
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent).map_err(|e| io_status("blobs", &e))?;
        }
        let Some(done) = ingest.take() else {
            unreachable!("the write was opened above");
        };
        done.file
            .persist(&path)
            .map_err(|e| io_status(&path.display().to_string(), &e.error))?;
        return Ok(WriteContentResponse {
            action: action as i32,
            offset: done.offset,
            total: done.total,
            digest,
        });
    }
    Ok(WriteContentResponse {
        action: action as i32,
        offset: write.offset,
        total: write.total,
        digest,
    })
}

// ---------------------------------------------------------------------------------
// The daemon's side: calls to the client's store.

/// Calls to one of a client's content stores over its session.
#[derive(Debug, Clone)]
pub struct ContentClient {
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
    store_id: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

impl ContentClient {
    /// The store `store_id` (`local:DIR`) of the client at the end of `channel`.
    pub fn new(channel: tonic::transport::Channel, store_id: &str) -> Result<Self, Status> {
        let store_id = store_id.parse().map_err(|_| {
            Status::invalid_argument(format!(
                "{store_id:?}: a client directory must be named in printable ASCII"
            ))
        })?;
        Ok(Self {
            grpc: tonic::client::Grpc::new(channel)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            store_id,
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert(STORE_ID_HEADER, self.store_id.clone());
        request
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("the client's session: {e}")))
    }

    /// The blob's size; `None` when the store does not have it.
    pub async fn info(&mut self, digest: &str) -> Result<Option<u64>, Status> {
        self.ready().await?;
        let request = self.request(InfoRequest {
            digest: digest.to_owned(),
        });
        let path = http::uri::PathAndQuery::from_static(INFO);
        match self
            .grpc
            .unary::<_, InfoResponse, _>(request, path, codec())
            .await
        {
            Ok(answer) => Ok(Some(
                answer.into_inner().info.map_or(0, |i| i.size.max(0) as u64),
            )),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(status),
        }
    }

    /// Reads the whole blob into `out`, piece by piece in order.
    pub async fn read<W: std::io::Write + ?Sized>(
        &mut self,
        digest: &str,
        out: &mut W,
    ) -> Result<(), Status> {
        self.ready().await?;
        let request = self.request(ReadContentRequest {
            digest: digest.to_owned(),
            offset: 0,
            size: 0,
        });
        let path = http::uri::PathAndQuery::from_static(READ);
        let mut pieces = self
            .grpc
            .server_streaming::<_, ReadContentResponse, _>(request, path, codec())
            .await?
            .into_inner();
        let mut at = 0i64;
        while let Some(piece) = pieces.message().await? {
            if piece.offset != at {
                return Err(Status::data_loss(format!(
                    "reading {digest}: a piece at {} where {at} was due",
                    piece.offset
                )));
            }
            out.write_all(&piece.data)
                .map_err(|e| Status::unavailable(format!("reading {digest}: {e}")))?;
            at += piece.data.len() as i64;
        }
        Ok(())
    }

    /// Writes blob `digest` of `size` bytes from `content` under the write name
    /// `reference`; the store checks the digest at commit. A store that has the blob
    /// already is done at once.
    pub async fn write(
        &mut self,
        reference: &str,
        digest: &str,
        size: u64,
        content: &mut (dyn Read + Send),
    ) -> Result<(), Status> {
        self.ready().await?;
        let (requests, outgoing) = mpsc::channel(4);
        let request = self.request(ReceiverStream::new(outgoing));
        let path = http::uri::PathAndQuery::from_static(WRITE);
        let total = i64::try_from(size).unwrap_or(i64::MAX);
        // The requests go out while the answers come back (containerd's server answers
        // each in order); the file is read on this thread between sends.
        let feed = async move {
            let first = WriteContentRequest {
                action: WriteAction::Stat as i32,
                r#ref: reference.to_owned(),
                total,
                expected: digest.to_owned(),
                ..WriteContentRequest::default()
            };
            if requests.send(first).await.is_err() {
                return Ok(());
            }
            let mut offset = 0i64;
            loop {
                let mut data = vec![0; CHUNK];
                let n = read_full(content, &mut data)
                    .map_err(|e| Status::unavailable(format!("reading {digest}: {e}")))?;
                if n == 0 {
                    break;
                }
                data.truncate(n);
                let piece = WriteContentRequest {
                    action: WriteAction::Write as i32,
                    offset,
                    data,
                    ..WriteContentRequest::default()
                };
                offset += n as i64;
                if requests.send(piece).await.is_err() {
                    return Ok(());
                }
            }
            let commit = WriteContentRequest {
                action: WriteAction::Commit as i32,
                total,
                offset,
                expected: digest.to_owned(),
                ..WriteContentRequest::default()
            };
            let _ = requests.send(commit).await;
            Ok::<_, Status>(())
        };
        let grpc = &mut self.grpc;
        let answers = async move {
            let mut answers = grpc
                .streaming::<_, WriteContentRequest, WriteContentResponse, _>(
                    request,
                    path,
                    codec(),
                )
                .await?
                .into_inner();
            let mut committed = None;
            while let Some(answer) = answers.message().await? {
                if answer.action == WriteAction::Commit as i32 {
                    committed = Some(answer);
                    break;
                }
            }
            Ok::<_, Status>(committed)
        };
        let (fed, answered) = tokio::join!(feed, answers);
        match answered {
            Err(status) if status.code() == tonic::Code::AlreadyExists => return Ok(()),
            Err(status) => return Err(status),
            Ok(None) => {
                fed?;
                return Err(Status::data_loss(format!(
                    "writing {digest}: the client's store ended the write before its commit"
                )));
            }
            Ok(Some(answer)) if answer.digest != digest => {
                return Err(Status::data_loss(format!(
                    "writing {digest}: the client's store committed {}",
                    answer.digest
                )));
            }
            Ok(Some(_)) => {}
        }
        fed
    }
}

/// Fills `buf` from `content` unless it ends first; how much was read.
fn read_full(content: &mut (dyn Read + Send), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match content.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_digests_reach_the_file_system() {
        let dir = Path::new("/cache");
        assert!(blob_path(dir, "sha256:../../etc/passwd").is_err());
        assert!(blob_path(dir, "md5:00").is_err());
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            blob_path(dir, &good).unwrap(),
            Path::new("/cache/blobs/sha256").join("a".repeat(64))
        );
    }

    #[test]
    fn a_write_checks_offsets_and_the_digest_and_lands_whole() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"hello content";
        let digest = sha256_digest(Sha256::new_with_prefix(data));
        let mut ingest = None;
        let step = |ingest: &mut Option<Ingest>, request| write_step(dir.path(), ingest, request);
        let stat = step(
            &mut ingest,
            WriteContentRequest {
                action: WriteAction::Stat as i32,
                r#ref: "layer".to_owned(),
                total: data.len() as i64,
                expected: digest.clone(),
                ..WriteContentRequest::default()
            },
        )
        .unwrap();
        assert_eq!(stat.offset, 0);
        step(
            &mut ingest,
            WriteContentRequest {
                action: WriteAction::Write as i32,
                data: data[..5].to_vec(),
                ..WriteContentRequest::default()
            },
        )
        .unwrap();
        let skipped = step(
            &mut ingest,
            WriteContentRequest {
                action: WriteAction::Write as i32,
                offset: 9,
                data: b"x".to_vec(),
                ..WriteContentRequest::default()
            },
        )
        .unwrap_err();
        assert_eq!(skipped.code(), tonic::Code::OutOfRange);
        let committed = step(
            &mut ingest,
            WriteContentRequest {
                action: WriteAction::Commit as i32,
                offset: 5,
                data: data[5..].to_vec(),
                expected: digest.clone(),
                ..WriteContentRequest::default()
            },
        )
        .unwrap();
        assert_eq!(committed.digest, digest);
        assert_eq!(
            fs_err::read(blob_path(dir.path(), &digest).unwrap()).unwrap(),
            data
        );
        // Written again: the store has it.
        let again = step(
            &mut None,
            WriteContentRequest {
                r#ref: "layer".to_owned(),
                expected: digest.clone(),
                ..WriteContentRequest::default()
            },
        )
        .unwrap_err();
        assert_eq!(again.code(), tonic::Code::AlreadyExists);
        // A commit whose bytes do not match the digest leaves no blob.
        let wrong = format!("sha256:{}", "0".repeat(64));
        let mut ingest = None;
        let error = step(
            &mut ingest,
            WriteContentRequest {
                action: WriteAction::Commit as i32,
                r#ref: "bad".to_owned(),
                expected: wrong.clone(),
                data: b"other".to_vec(),
                ..WriteContentRequest::default()
            },
        )
        .unwrap_err();
        assert_eq!(error.code(), tonic::Code::FailedPrecondition);
        assert!(!blob_path(dir.path(), &wrong).unwrap().exists());
    }
}
