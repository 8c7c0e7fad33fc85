//! The one interface behind every front door: the CLI holds a `Box<dyn Builder>` and
//! does not know whether the engine runs in its own process (the embedded driver) or
//! in a daemon it reaches over BuildKit's gRPC API ([`crate::remote::RemoteBuilder`]).

use crate::build::{
    BuildRequest, BuildResult, CacheRecord, DefinitionRequest, Event, PruneOptions,
};

/// What can go wrong asking a builder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The in-process engine failed (its error keeps its causes).
    #[error(transparent)]
    Engine(Box<dyn std::error::Error + Send + Sync>),
    /// The daemon answered with an error (its message carries the causes).
    #[error("{0}")]
    Daemon(String),
    /// The daemon could not be reached or spoke wrongly.
    #[error(transparent)]
    Client(crate::client::Error),
    /// This builder cannot do what was asked.
    #[error("{0}")]
    Unsupported(String),
    /// A `type=local` cache directory of the client's could not be read or updated.
    #[error("cache directory {}", dir.display())]
    CacheDir {
        /// The directory.
        dir: std::path::PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::client::Error> for Error {
    fn from(error: crate::client::Error) -> Self {
        match error {
            crate::client::Error::Status(status) => Self::Daemon(status.message().to_owned()),
            other => Self::Client(other),
        }
    }
}

/// Who a builder is (BuildKit's `Info` and `ListWorkers`, in short).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuilderInfo {
    /// The version as BuildKit's `Info` reports it and buildx shows it (`v0.24.0`);
    /// kiln's own version for the embedded engine.
    pub version: String,
    /// The platforms its workers build for (`linux/amd64` …), each once.
    pub platforms: Vec<String>,
    /// Its workers' ids, sorted (none for the embedded engine).
    pub worker_ids: Vec<String>,
    /// The first worker's labels (`org.mobyproject.buildkit.worker.…`).
    pub labels: std::collections::BTreeMap<String, String>,
    /// The first worker's garbage-collection rules.
    pub gc_policies: Vec<GcPolicyInfo>,
}

/// A garbage-collection rule (BuildKit's `GCPolicy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPolicyInfo {
    /// Every record, internal ones included.
    pub all: bool,
    /// Prune filters (`type==source.local,…`).
    pub filters: Vec<String>,
    /// Records unused for longer than this go (nanoseconds; 0: no limit).
    pub keep_duration_ns: i64,
    /// Bytes always kept.
    pub reserved_space: i64,
    /// The cache is pruned down to this.
    pub max_used_space: i64,
    /// The cache is pruned until the disk has this much free.
    pub min_free_space: i64,
}

/// A builder: builds, reports progress, and keeps a build cache.
pub trait Builder: Sync {
    /// Builds a Dockerfile and exports the result; `progress` sees every step.
    fn build(
        &self,
        request: &BuildRequest,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<BuildResult, Error>;

    /// Asks the Dockerfile frontend a question instead of building (buildx's `--call`):
    /// `subrequest` names it (`frontend.lint`, `frontend.outline`, `frontend.targets`,
    /// `frontend.subrequests.describe`); the answer is its result's metadata
    /// ([`crate::subrequests`]).
    fn call(
        &self,
        request: &BuildRequest,
        subrequest: &str,
    ) -> Result<crate::subrequests::Metadata, Error>;

    /// Solves an LLB definition and exports its result.
    fn build_definition(
        &self,
        request: &DefinitionRequest,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<BuildResult, Error>;

    /// The build cache's records that pass every filter (`du --filter`, as buildx
    /// passes them).
    fn disk_usage(&self, filters: &[String]) -> Result<Vec<CacheRecord>, Error>;

    /// Removes build-cache records; returns what was removed.
    fn prune(&self, options: &PruneOptions) -> Result<Vec<CacheRecord>, Error>;

    /// The builder's version and platforms.
    fn info(&self) -> Result<BuilderInfo, Error>;

    /// The builds it ran and runs, newest first.
    fn history(&self) -> Result<Vec<crate::history::HistoryRecord>, Error>;
}
