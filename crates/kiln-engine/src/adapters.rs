//! Where the engine meets the worker's ports and answers: a build's directories and
//! secrets as the worker asks for them, and the worker's progress events, cache records
//! and prune filters in the front door's (`kiln-api`) types.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_api::build::{CacheRecord, Event};
use kiln_worker::{LocalContexts, Secrets, session_local_name};

use crate::{Error, Listing, Listings};

pub(crate) struct Contexts {
    pub(crate) dirs: BTreeMap<String, PathBuf>,
    pub(crate) listings: Listings,
}

impl Contexts {
    /// A directory lent by another session is known by its session too; the build's
    /// own (and the embedded engine's) by name alone.
    fn find(&self, name: &str, session: Option<&str>) -> Option<&PathBuf> {
        session
            .and_then(|session| self.dirs.get(&session_local_name(name, session)))
            .or_else(|| self.dirs.get(name))
    }
}

impl LocalContexts for Contexts {
    fn dir(&self, name: &str, session: Option<&str>) -> Option<PathBuf> {
        self.find(name, session).cloned()
    }

    fn listing(&self, name: &str, session: Option<&str>) -> Option<Listing> {
        self.listings.get(self.find(name, session)?).cloned()
    }
}

pub(crate) struct ClientSecrets<'a> {
    pub(crate) secrets: &'a BTreeMap<String, Vec<u8>>,
    pub(crate) ssh: &'a BTreeMap<String, PathBuf>,
}

impl Secrets for ClientSecrets<'_> {
    fn secret(&self, id: &str) -> Option<Vec<u8>> {
        self.secrets.get(id).cloned()
    }

    fn ssh_agent(&self, id: &str) -> Option<PathBuf> {
        self.ssh.get(id).cloned()
    }
}

/// The worker's progress event as the front door's.
pub(crate) fn api_event(event: kiln_worker::Event) -> Event {
    use kiln_worker::Event as Worker;
    match event {
        Worker::Started { digest, name } => Event::Started { digest, name },
        Worker::Cached { digest, name } => Event::Cached { digest, name },
        Worker::Done { digest, duration } => Event::Done { digest, duration },
        Worker::Failed {
            digest,
            error,
            duration,
        } => Event::Failed {
            digest,
            error,
            duration,
        },
        Worker::Log { digest, data } => Event::Log { digest, data },
    }
}

pub(crate) fn api_record(record: kiln_worker::CacheRecord) -> CacheRecord {
    CacheRecord {
        id: record.id,
        kind: record.kind,
        description: record.description,
        size: record.size,
        created: record.created,
        last_used: record.last_used,
        usage_count: record.usage_count,
        parents: record.parents,
    }
}

/// Filters as clients send them; one text may hold several, comma-separated.
pub(crate) fn parse_filters(texts: &[String]) -> Result<Vec<kiln_worker::PruneFilter>, Error> {
    texts
        .iter()
        .flat_map(|t| t.split(','))
        .filter(|t| !t.trim().is_empty())
        .map(|t| kiln_worker::PruneFilter::parse(t).map_err(Error::from))
        .collect()
}
