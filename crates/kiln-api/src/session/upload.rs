//! Uploads over a session (`moby.upload.v1.Upload`): a client lends a stream of bytes
//! under `http://buildkit-session/ID` (buildx does so for a build context piped to it
//! as a tar archive), and the daemon pulls it when a build names that URL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::proto::moby::upload::v1::upload_client::UploadClient;
use crate::proto::moby::upload::v1::{BytesMessage, upload_server};

/// The gRPC method a client serves uploads on.
pub const PULL: &str = "/moby.upload.v1.Upload/Pull";

/// The host of the URLs uploads are named by.
pub const HOST: &str = "buildkit-session";

/// Largest piece sent in one message (as BuildKit's uploadprovider sends).
const CHUNK: usize = 3 << 20;

/// The upload's id in a `http://buildkit-session/ID` URL, or `None` for another URL.
pub fn upload_id(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/')?;
    (host == HOST).then_some(path)
}

/// The daemon's side: pulls the upload `url` (`http://buildkit-session/ID`) from the
/// client at the end of `channel` into `out`; returns how many bytes came.
pub async fn pull(
    channel: Channel,
    url: &str,
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> Result<u64, Status> {
    let id = upload_id(url)
        .ok_or_else(|| Status::invalid_argument(format!("{url:?} names no upload")))?;
    let path = format!("/{id}");
    let mut request = Request::new(tokio_stream::empty::<BytesMessage>());
    for (key, value) in [("urlpath", path.as_str()), ("urlhost", HOST)] {
        let value = value
            .parse()
            .map_err(|_| Status::invalid_argument(format!("{url:?}: not an ASCII URL")))?;
        request.metadata_mut().insert(key, value);
    }
    let mut stream = UploadClient::new(channel)
        .max_decoding_message_size(CHUNK + 1024)
        .pull(request)
        .await?
        .into_inner();
    let mut received = 0u64;
    while let Some(message) = stream.next().await {
        let data = message?.data;
        out.write_all(&data)
            .await
            .map_err(|e| Status::internal(format!("writing the upload {url}: {e}")))?;
        received += data.len() as u64;
    }
    out.flush()
        .await
        .map_err(|e| Status::internal(format!("writing the upload {url}: {e}")))?;
    Ok(received)
}

/// The client's side: files it lends by upload id, each served once (BuildKit's
/// uploadprovider forgets an upload when it is pulled).
#[derive(Debug, Default, Clone)]
pub struct Uploads(Arc<Mutex<BTreeMap<String, PathBuf>>>);

impl Uploads {
    /// Lends `file` and returns the URL a build names it by.
    pub fn add(&self, id: &str, file: PathBuf) -> String {
        self.lock().insert(id.to_owned(), file);
        format!("http://{HOST}/{id}")
    }

    /// Whether nothing is lent.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PathBuf>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The gRPC service serving these.
    pub fn service(self) -> upload_server::UploadServer<Self> {
        upload_server::UploadServer::new(self)
    }
}

#[tonic::async_trait]
impl upload_server::Upload for Uploads {
    type PullStream = ReceiverStream<Result<BytesMessage, Status>>;

    async fn pull(
        &self,
        request: Request<tonic::Streaming<BytesMessage>>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let path = request
            .metadata()
            .get("urlpath")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let id = path.rsplit('/').next().unwrap_or_default();
        let file = self
            .lock()
            .remove(id)
            .ok_or_else(|| Status::not_found(format!("no http response from session for {id}")))?;
        let mut reader = tokio::fs::File::open(&file)
            .await
            .map_err(|e| Status::internal(format!("{}: {e}", file.display())))?;
        let (sender, receiver) = mpsc::channel(2);
        tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                let message = match reader.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => Ok(BytesMessage {
                        data: buf[..n].to_vec(),
                    }),
                    Err(e) => Err(Status::internal(format!("{}: {e}", file.display()))),
                };
                let failed = message.is_err();
                if sender.send(message).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}
