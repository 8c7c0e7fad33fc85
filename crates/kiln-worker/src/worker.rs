//! The worker: its state (store, snapshots, metadata, executor), the results it
//! makes ([`Ref`]), and what it answers outside a solve (image configs, `du`, prune).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kiln_exec::{Executor, NetworkMode, Runc};
use kiln_llb::{Platform, pb};
use kiln_registry::RegistryClient;
use kiln_store::{ContentStore, MetadataDb, Snapshot, Snapshotter};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::source::image::{LayerInfo, ResolveMode};
use crate::usage::{self, CacheRecord, PruneOptions};
use crate::{Error, source};

/// A result: snapshot layers from the bottom up (empty for scratch) and a key that
/// changes whenever the content may have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// Snapshot layers, bottom first.
    pub chain: Vec<u64>,
    /// Content key.
    pub key: String,
}

impl Ref {
    /// A result made of `chain`, not keyed yet: the solve keys every result an op
    /// returns (`solve.rs`, `execute`).
    pub(crate) fn unkeyed(chain: Vec<u64>) -> Self {
        Self {
            chain,
            key: String::new(),
        }
    }

    pub(crate) fn snapshot(&self) -> Option<Snapshot> {
        (!self.chain.is_empty()).then(|| Snapshot {
            chain: self.chain.clone(),
        })
    }
}

/// Settings of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// State directory.
    pub root: PathBuf,
    /// The OCI runtime binary.
    pub runtime: PathBuf,
    /// How many vertices run at once.
    pub parallelism: usize,
    /// The platform images are pulled for.
    pub platform: Platform,
    /// The network of steps that choose none (buildkitd.toml's `networkMode`).
    pub default_network: NetworkMode,
    /// The cgroup steps go under when they name none (`defaultCgroupParent`).
    pub cgroup_parent: Option<String>,
    /// Steps' /etc/resolv.conf (from `[dns]`); `None`: the host's.
    pub resolv_conf: Option<String>,
    /// `snapshotter`: `overlayfs`, `native` or `auto` (overlay when it can be mounted).
    pub snapshotter: String,
}

/// Runs LLB ops on the local store.
pub struct Worker {
    pub(crate) content: ContentStore,
    pub(crate) db: MetadataDb,
    pub(crate) snapshots: Snapshotter,
    pub(crate) registry: Arc<RegistryClient>,
    pub(crate) executor: Box<dyn Executor>,
    pub(crate) config: WorkerConfig,
    /// Serialises users of the same cache mount (`sharing=locked`) and layer unpacking.
    pub(crate) locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Layers that cached steps reused (how often), until a solve's end records it.
    pub(crate) reused: Mutex<std::collections::BTreeMap<u64, u64>>,
    /// Cache-mount directories a running step holds with `sharing=private`.
    pub(crate) private_mounts: Mutex<std::collections::HashSet<PathBuf>>,
    /// Warnings for the user, until the engine takes them.
    warnings: Mutex<Vec<String>>,
}

impl Worker {
    /// The metadata database (the engine keeps its own records there too).
    pub fn metadata(&self) -> &MetadataDb {
        &self.db
    }
}

pub(crate) fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// A new snapshot layer on `parent`, filled by `fill`; removed again when `fill` fails
/// (a full disk, a bad archive, a cut download), so nothing half-written stays.
pub(crate) fn new_layer<T>(
    worker: &Worker,
    parent: Option<&Snapshot>,
    fill: impl FnOnce(&Snapshot) -> Result<T, Error>,
) -> Result<(Snapshot, T), Error> {
    let snapshot = worker.snapshots.create(parent)?;
    match fill(&snapshot) {
        Ok(value) => Ok((snapshot, value)),
        Err(error) => {
            let _ = worker.snapshots.remove_layer(snapshot.id());
            Err(error)
        }
    }
}

/// The platform an op runs for (`None`: the worker's).
pub(crate) fn op_platform(op: &pb::Op) -> Option<Platform> {
    op.platform.as_ref().map(|p| Platform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone(),
        os_version: p.os_version.clone(),
        os_features: p.os_features.clone(),
    })
}

pub(crate) const CACHE_TABLE: &str = "cache";

impl Worker {
    /// Opens a worker's state under `config.root`.
    pub fn open(config: WorkerConfig, registry: Arc<RegistryClient>) -> Result<Self, Error> {
        fs_err::create_dir_all(&config.root)?;
        let runc = Runc::new(&config.runtime, config.root.join("exec"))
            .with_resolv_conf(config.resolv_conf.clone());
        Self::open_with(config, registry, Box::new(runc))
    }

    /// Opens a worker that runs its steps' processes with `executor` (the worker's
    /// logic tests pass a fake that records them).
    pub fn open_with(
        config: WorkerConfig,
        registry: Arc<RegistryClient>,
        executor: Box<dyn Executor>,
    ) -> Result<Self, Error> {
        fs_err::create_dir_all(&config.root)?;
        let worker = Self {
            content: ContentStore::open(config.root.join("content"))?,
            db: MetadataDb::open(&config.root.join("metadata.redb"))?,
            snapshots: Snapshotter::open_with(config.root.join("snapshots"), &config.snapshotter)?,
            executor,
            registry,
            config,
            locks: Mutex::new(HashMap::new()),
            reused: Mutex::default(),
            private_mounts: Mutex::new(std::collections::HashSet::new()),
            warnings: Mutex::new(Vec::new()),
        };
        usage::remove_unrecorded_layers(&worker)?;
        if worker.config.snapshotter == "auto"
            && worker.snapshots.driver() == kiln_store::Driver::Native
        {
            worker.warn(
                "overlay mounts are refused here: using the native snapshotter, which copies (slower)"
                    .to_owned(),
            );
        }
        Ok(worker)
    }

    /// Notes a warning for the user.
    pub(crate) fn warn(&self, message: String) {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
    }

    /// The warnings noted since the last call.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.config.root
    }

    /// The content store (for exporters).
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The snapshotter (for exporters).
    pub fn snapshots(&self) -> &Snapshotter {
        &self.snapshots
    }

    /// Kills and removes the containers and mounts of work that never ended (a process
    /// that stops without waiting for it).
    pub fn release_leftovers(&self) {
        self.executor.remove_leftovers();
        let _ = self.snapshots.remove_leftover_mounts();
    }

    /// The flag that cancels the running build (a Ctrl-C handler sets it): running
    /// containers are killed, nothing new starts, and the build fails as cancelled.
    pub fn cancellation(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.executor.cancellation()
    }

    /// The registry client.
    pub fn registry(&self) -> &RegistryClient {
        &self.registry
    }

    pub(crate) fn lock(&self, key: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(key.to_owned()).or_default())
    }

    /// Resolves an image reference to its canonical name, digest and config (for the
    /// Dockerfile frontend's image resolver).
    pub fn resolve_image_config(
        &self,
        registry: Option<&RegistryClient>,
        reference: &str,
        platform: &Platform,
        mode: ResolveMode,
    ) -> Result<(String, String, Vec<u8>), Error> {
        let registry = registry.unwrap_or(&self.registry);
        source::image::resolve_config(self, registry, reference, platform, mode)
    }

    /// Every record of the build cache (`du`).
    pub fn disk_usage(&self) -> Result<Vec<CacheRecord>, Error> {
        usage::disk_usage(self)
    }

    /// Removes build-cache records (`prune`); returns what was removed.
    pub fn prune(&self, options: &PruneOptions) -> Result<Vec<CacheRecord>, Error> {
        usage::prune(self, options)
    }

    /// The blobs made of a snapshot layer (pulled or exported), the original first.
    pub fn layer_blobs(&self, id: u64) -> Vec<LayerInfo> {
        source::image::layer_blobs(self, id)
    }

    /// Records a blob made of a snapshot layer.
    pub fn add_layer_blob(&self, id: u64, info: &LayerInfo) -> Result<(), Error> {
        source::image::add_layer_blob(self, id, info)
    }
}
