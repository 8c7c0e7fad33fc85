//! What `type=s3` and `type=azblob` share: a cache kept as objects in a bucket (or
//! container) the way BuildKit keeps it there. The cache config itself, its layers
//! described inline ([`crate::Layout::AnnotatedConfig`]), is the object
//! `<manifests>/<name>`; each blob is `<blobs>/<digest>`. Export writes every name;
//! import reads the first (s3) or all of them, combined (azblob).
//!
//! object_store is async and kiln's backends are called from plain threads: each call
//! runs as a task on one small runtime shared by every object cache, and the calling
//! thread waits for it. Blobs stream both ways in bounded chunks.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt as _;
use kiln_oci::Descriptor;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, WriteMultipart};

use crate::{CacheBackend, Error, Layout};

/// Blobs at most this big are written in one request; bigger ones in parts this big
/// (S3 wants parts of at least 5 MiB).
const PART_SIZE: usize = 8 << 20;
/// Parts of one blob uploaded at once.
const PARTS_IN_FLIGHT: usize = 3;

/// The runtime every object cache's requests run on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // reqwest is built without a crypto provider of its own: kiln's is ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kiln-objects")
            .enable_all()
            .build()
            .expect("a tokio runtime for object caches")
    })
}

/// Runs `future` on the object caches' runtime and waits for it. Works from any
/// thread, including one a tokio runtime of the caller's (kilnd) blocks on.
pub(crate) fn run<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = send.send(future.await);
    });
    receive.recv().expect("an object cache task ran to its end")
}

/// Retries as kiln's registry client retries: five tries, 0.5 to 4 s apart, so an
/// unreachable store fails in seconds, not object_store's default three minutes.
pub(crate) fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(4),
            base: 2.0,
        },
        max_retries: 4,
        retry_timeout: Duration::from_secs(60),
    }
}

/// Makes sure the runtime (and the crypto provider it installs) is ready before a
/// builder makes an HTTP client.
pub(crate) fn prepare() {
    runtime();
}

/// Where a cache's objects are, and how names join.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// The manifest objects' keys, one per name; export writes each.
    pub manifests: Vec<String>,
    /// Import reads every name and combines them (azblob), else only the first (s3).
    pub import_every_name: bool,
    /// The key prefix of blobs (the digest follows).
    pub blobs: String,
}

/// A cache in an object store.
pub(crate) struct ObjectCache {
    /// `s3` or `azblob`, for messages.
    backend: &'static str,
    /// Where the cache is, for messages (`s3://bucket/prefix`).
    location: String,
    store: Arc<dyn ObjectStore>,
    keys: Keys,
    /// Blobs older than this are written again by an export (S3's `touch_refresh`).
    touch_refresh: Option<Duration>,
    upload_parallelism: usize,
    /// The blobs there (key → last modified), listed once, with what this cache wrote
    /// since; `None` when they cannot be listed (each blob is then asked for alone).
    listed: OnceLock<Option<Mutex<HashMap<String, SystemTime>>>>,
}

impl ObjectCache {
    pub(crate) fn new(
        backend: &'static str,
        location: String,
        store: Arc<dyn ObjectStore>,
        keys: Keys,
        touch_refresh: Option<Duration>,
        upload_parallelism: usize,
    ) -> Self {
        Self {
            backend,
            location,
            store,
            keys,
            touch_refresh,
            upload_parallelism,
            listed: OnceLock::new(),
        }
    }

    /// The blobs under the blobs prefix, in one listing (paged by the store) rather
    /// than a request per blob; `None` when the prefix is not a folder or listing
    /// fails.
    fn listed_blobs(&self) -> Option<&Mutex<HashMap<String, SystemTime>>> {
        self.listed
            .get_or_init(|| {
                let folder = self.keys.blobs.strip_suffix('/')?;
                let store = Arc::clone(&self.store);
                let prefix = ObjectPath::from(folder);
                let listed = run(async move {
                    store
                        .list(Some(&prefix))
                        .collect::<Vec<_>>()
                        .await
                        .into_iter()
                        .collect::<Result<Vec<_>, _>>()
                })
                .ok()?;
                Some(Mutex::new(
                    listed
                        .into_iter()
                        .map(|meta| (meta.location.to_string(), meta.last_modified.into()))
                        .collect(),
                ))
            })
            .as_ref()
    }

    /// Whether a blob last written at `modified` is due for `touch_refresh`.
    fn stale(&self, modified: SystemTime) -> bool {
        self.touch_refresh
            .is_some_and(|refresh| modified.elapsed().is_ok_and(|age| age > refresh))
    }

    fn blob_path(&self, blob: &Descriptor) -> ObjectPath {
        ObjectPath::from(format!("{}{}", self.keys.blobs, blob.digest))
    }

    fn streamed(&self, digest: &str, doing: &str, error: Streamed) -> Error {
        match error {
            Streamed::Store(e) => self.failed(format!("{doing} {digest}"), e),
            Streamed::Local(e) => Error::Io(e),
        }
    }

    fn failed(&self, doing: String, cause: object_store::Error) -> Error {
        Error::Cloud {
            context: format!("{} cache at {}: {doing}", self.backend, self.location),
            cause: cause.to_string(),
        }
    }
}

impl CacheBackend for ObjectCache {
    fn layout(&self) -> Layout {
        Layout::AnnotatedConfig
    }

    fn upload_parallelism(&self) -> usize {
        self.upload_parallelism
    }

    fn read_manifest(&self) -> Result<Vec<u8>, Error> {
        let names = if self.keys.import_every_name {
            &self.keys.manifests[..]
        } else {
            &self.keys.manifests[..1]
        };
        let mut found = Vec::new();
        for key in names {
            let store = Arc::clone(&self.store);
            let path = ObjectPath::from(key.as_str());
            match run(async move { store.get(&path).await?.bytes().await }) {
                Ok(bytes) => found.push(bytes.to_vec()),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.failed(format!("reading {key}"), e)),
            }
        }
        match found.len() {
            0 => Err(Error::NotFound(format!(
                "no cache at {} (object {}): export one there with --cache-to type={}",
                self.location,
                names.join(", "),
                self.backend
            ))),
            1 => Ok(found.remove(0)),
            _ => crate::format::merge_config_bytes(&found),
        }
    }

    fn read_blob(&self, blob: &Descriptor, out: &mut dyn Write) -> Result<(), Error> {
        download(Arc::clone(&self.store), self.blob_path(blob), out)
            .map_err(|e| self.streamed(&blob.digest, "reading", e))
    }

    /// A blob older than `touch_refresh` counts as missing, so an export writes it
    /// again and a bucket's expiry rules keep it (BuildKit copies it onto itself, which
    /// S3 refuses for an object whose metadata stays the same).
    fn has_blob(&self, blob: &Descriptor) -> Result<bool, Error> {
        let path = self.blob_path(blob);
        if let Some(listed) = self.listed_blobs() {
            let listed = listed.lock().unwrap_or_else(|e| e.into_inner());
            return Ok(listed
                .get(path.as_ref())
                .is_some_and(|modified| !self.stale(*modified)));
        }
        let store = Arc::clone(&self.store);
        let found = match run(async move { store.head(&path).await }) {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(self.failed(format!("looking for {}", blob.digest), e)),
        };
        Ok(!self.stale(SystemTime::from(found.last_modified)))
    }

    fn write_blob(&self, blob: &Descriptor, content: &mut (dyn Read + Send)) -> Result<(), Error> {
        if self.has_blob(blob)? {
            return Ok(());
        }
        let path = self.blob_path(blob);
        upload(Arc::clone(&self.store), path.clone(), content)
            .map_err(|e| self.streamed(&blob.digest, "writing", e))?;
        if let Some(listed) = self.listed_blobs() {
            listed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(path.to_string(), SystemTime::now());
        }
        Ok(())
    }

    fn write_manifest(&self, bytes: &[u8], _media_type: &str) -> Result<(), Error> {
        for key in &self.keys.manifests {
            let store = Arc::clone(&self.store);
            let path = ObjectPath::from(key.as_str());
            let payload = Bytes::copy_from_slice(bytes);
            run(async move { store.put(&path, payload.into()).await.map(drop) })
                .map_err(|e| self.failed(format!("writing {key}"), e))?;
        }
        Ok(())
    }
}

/// What the upload task of a big blob is sent.
enum Part {
    Data(Bytes),
    /// Every part was sent: complete the upload.
    End,
}

/// Up to [`PART_SIZE`] bytes of `content` (fewer only at its end).
fn read_part(content: &mut (dyn Read + Send)) -> std::io::Result<Vec<u8>> {
    let mut part = Vec::with_capacity(PART_SIZE);
    content.take(PART_SIZE as u64).read_to_end(&mut part)?;
    Ok(part)
}

/// Why a streamed transfer failed: the store, or kiln's own side of it.
pub(crate) enum Streamed<E = object_store::Error> {
    Store(E),
    Local(std::io::Error),
}

impl<E> From<std::io::Error> for Streamed<E> {
    fn from(e: std::io::Error) -> Self {
        Self::Local(e)
    }
}

/// Streams the object at `path` into `out`, a few chunks buffered at most.
pub(crate) fn download(
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    out: &mut dyn Write,
) -> Result<(), Streamed> {
    write_stream(
        async move { Ok(store.get(&path).await?.into_stream()) },
        out,
    )
}

/// Writes the chunks of the stream `open` opens (run on the shared runtime) to `out` on
/// the calling thread, a few chunks ahead at most; stops the stream when `out` fails.
pub(crate) fn write_stream<S, E>(
    open: impl Future<Output = Result<S, E>> + Send + 'static,
    out: &mut dyn Write,
) -> Result<(), Streamed<E>>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Send + 'static,
{
    let (chunks, mut receive) = tokio::sync::mpsc::channel::<Result<Bytes, E>>(4);
    runtime().spawn(async move {
        let mut stream = match open.await {
            Ok(stream) => Box::pin(stream),
            Err(e) => {
                let _ = chunks.send(Err(e)).await;
                return;
            }
        };
        while let Some(chunk) = stream.next().await {
            // The reader gone (it failed writing): stop.
            if chunks.send(chunk).await.is_err() {
                return;
            }
        }
    });
    while let Some(chunk) = receive.blocking_recv() {
        out.write_all(&chunk.map_err(Streamed::Store)?)?;
    }
    Ok(())
}

/// Writes `content` to `path`: in one request when it is small, else in parts that go
/// to an upload task through a short queue, so memory stays bounded whatever the size.
/// Only `Part::End` completes a multipart upload: a read error, or a caller gone,
/// aborts it, so no object holds part of a blob.
pub(crate) fn upload(
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    content: &mut (dyn Read + Send),
) -> Result<(), Streamed> {
    let first = read_part(content)?;
    if first.len() < PART_SIZE {
        return run(async move { store.put(&path, first.into()).await.map(drop) })
            .map_err(Streamed::Store);
    }
    let (parts, mut queue) = tokio::sync::mpsc::channel::<Part>(1);
    let (done, finished) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let result = async {
            let upload = store.put_multipart(&path).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            loop {
                match queue.recv().await {
                    Some(Part::Data(bytes)) => {
                        if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                            writer.abort().await?;
                            return Err(e);
                        }
                        writer.put(bytes);
                    }
                    Some(Part::End) => return writer.finish().await.map(drop),
                    None => return writer.abort().await,
                }
            }
        }
        .await;
        let _ = done.send(result);
    });
    let mut part = first;
    let read = loop {
        let last = part.len() < PART_SIZE;
        // The task stopped taking parts: its result says why.
        if parts.blocking_send(Part::Data(Bytes::from(part))).is_err() {
            break Ok(());
        }
        if last {
            let _ = parts.blocking_send(Part::End);
            break Ok(());
        }
        match read_part(content) {
            Ok(next) => part = next,
            Err(e) => break Err(e),
        }
    };
    drop(parts);
    let uploaded = finished.recv().expect("the upload task reports");
    read?;
    uploaded.map_err(Streamed::Store)
}
