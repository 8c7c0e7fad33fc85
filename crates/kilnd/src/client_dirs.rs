//! A client's `type=local` cache directories, reached through its session's content
//! store (`local:DIR`), as BuildKit's daemon reaches them: the engine's import reads
//! blobs from there and its export writes them there; the client keeps index.json.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_api::session::content::{self, ContentClient};
use kiln_engine::{CacheError, ClientDirs, ClientStore};

use crate::session::Session;

/// The directories of one session's client.
#[derive(Debug)]
pub(crate) struct SessionDirs {
    session: Arc<Session>,
    runtime: tokio::runtime::Handle,
}

impl SessionDirs {
    pub(crate) fn new(session: &Arc<Session>) -> Self {
        Self {
            session: Arc::clone(session),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl ClientDirs for SessionDirs {
    fn store(&self, dir: &Path) -> Result<Arc<dyn ClientStore>, CacheError> {
        let failed = |cause: String| CacheError::Client {
            context: format!("the client's cache directory {}", dir.display()),
            cause,
        };
        if !content::METHODS.iter().all(|m| self.session.serves(m)) {
            return Err(failed(
                "the client lends no content store through its session (a BuildKit-compatible client lends one for --cache-to/--cache-from type=local)".to_owned(),
            ));
        }
        let client =
            ContentClient::new(self.session.channel.clone(), &content::local_store_id(dir))
                .map_err(|status| failed(status.message().to_owned()))?;
        Ok(Arc::new(SessionStore {
            dir: dir.to_path_buf(),
            client,
            runtime: self.runtime.clone(),
        }))
    }
}

/// One directory's content store. Called from the engine's threads, never from the
/// runtime's: each call waits for its answer there.
#[derive(Debug)]
struct SessionStore {
    dir: PathBuf,
    client: ContentClient,
    runtime: tokio::runtime::Handle,
}

impl SessionStore {
    fn failed(&self, what: &str, status: &tonic::Status) -> CacheError {
        CacheError::Client {
            context: format!("{what} in the client's {}", self.dir.display()),
            cause: status.message().to_owned(),
        }
    }
}

impl ClientStore for SessionStore {
    fn size(&self, digest: &str) -> Result<Option<u64>, CacheError> {
        let mut client = self.client.clone();
        self.runtime
            .block_on(client.info(digest))
            .map_err(|s| self.failed(&format!("looking up {digest}"), &s))
    }

    fn read(&self, digest: &str, out: &mut dyn Write) -> Result<(), CacheError> {
        let mut client = self.client.clone();
        self.runtime
            .block_on(client.read(digest, out))
            .map_err(|s| self.failed(&format!("reading {digest}"), &s))
    }

    fn write(
        &self,
        digest: &str,
        size: u64,
        content: &mut (dyn Read + Send),
    ) -> Result<(), CacheError> {
        let mut client = self.client.clone();
        // The write's name, as BuildKit's export names its blobs' writes.
        let reference = format!("kiln-{digest}");
        self.runtime
            .block_on(client.write(&reference, digest, size, content))
            .map_err(|s| self.failed(&format!("writing {digest}"), &s))
    }
}
