//! Open sessions, by id: a client opens one (`Control.Session`) before or while it asks
//! for a solve that names it, and the solve calls the client's services through it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tonic::transport::Channel;

/// One client's session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: String,
    /// The key the client's builds of one project share.
    pub(crate) shared_key: String,
    /// The gRPC methods the client serves (`/moby.filesync.v1.FileSync/DiffCopy`, …).
    pub(crate) methods: Vec<String>,
    /// The connection to the client's services.
    pub(crate) channel: Channel,
}

impl Session {
    /// Whether the client serves `method` (a full gRPC path).
    pub(crate) fn serves(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }
}

/// The open sessions.
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, Arc<Session>>>,
    changed: Notify,
    /// Session streams alive (connected or still connecting), and how many may be.
    streams: Arc<AtomicUsize>,
    limit: usize,
}

/// One admitted session stream; its place is freed when dropped.
pub(crate) struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long a solve waits for the session it names to be opened.
const SESSION_WAIT: Duration = Duration::from_secs(10);

impl Sessions {
    /// No sessions yet; at most `limit` at once.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            open: Mutex::default(),
            changed: Notify::new(),
            streams: Arc::default(),
            limit,
        }
    }

    /// A place for one more session stream, or the limit when all are taken.
    pub(crate) fn admit(&self) -> Result<Admitted, usize> {
        let taken = self.streams.fetch_add(1, Ordering::SeqCst);
        let admitted = Admitted(Arc::clone(&self.streams));
        if taken >= self.limit {
            return Err(self.limit);
        }
        Ok(admitted)
    }

    pub(crate) fn insert(&self, session: Session) {
        self.lock().insert(session.id.clone(), Arc::new(session));
        self.changed.notify_waiters();
    }

    pub(crate) fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The session `id`, waiting a little for the client to open it.
    pub(crate) async fn get(&self, id: &str) -> Option<Arc<Session>> {
        let deadline = tokio::time::Instant::now() + SESSION_WAIT;
        loop {
            let changed = self.changed.notified();
            if let Some(session) = self.lock().get(id) {
                return Some(Arc::clone(session));
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return None;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}
