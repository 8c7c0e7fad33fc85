//! Composition root: builds a worker (store, registry client, runc executor), the
//! Dockerfile frontend and the exporters from config, and runs builds in-process.
//!
//! An [`Engine`] is a `kiln_api::Builder`: the CLI's embedded driver holds one as
//! `Box<dyn Builder>`, and `kilnd` serves one, adding the client's session through
//! [`SessionHooks`]. Nothing above this crate reaches the engine crates directly.
//!
//! This crate must not depend on `kiln-bake` or on either binary (the CLI's Bake files
//! are resolved before a build reaches the engine), and it reads no LLB op itself: the
//! worker does.

mod adapters;
pub mod config;
mod dockerfile;
pub mod dockerignore;
mod error;
mod export;
mod history;
mod remote_cache;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use fs_err as fs;
use kiln_api::build::{
    BuildContext, BuildRequest, BuildResult, CacheRecord, CheckWarning, DefinitionRequest, Event,
    Export, PruneOptions,
};
use kiln_api::history::HistoryRecord;
use kiln_api::{Builder, BuilderInfo, subrequests};
use kiln_dockerfile::convert::{self, ConvertOptions, ImageResolver, NamedContext, ResolvedImage};
use kiln_export::Exporter;
use kiln_llb::{LoadedDefinition, MarshalOptions, wire};
use kiln_registry::RegistryClient;
use kiln_worker::{SolveOptions, Worker, WorkerConfig};

use adapters::{ClientSecrets, Contexts, api_event, api_record, parse_filters};
pub use config::EngineConfig;
pub use dockerfile::api_range;
use dockerfile::{check_warnings, lint_checks, step_error, violation_error};
pub use error::Error;
use export::{layer_info, mtime_secs};
pub use kiln_dockerfile::{Error as DockerfileError, SourceRange};
pub use kiln_llb::Platform;
pub use kiln_registry::{CredentialSource, Credentials};
pub use kiln_remotecache::{ClientDirs, ClientStore, Error as CacheError};
use kiln_worker::build_sources;
pub use kiln_worker::{LocalSource, ResolveMode, Secrets, session_local_name};

/// What is told a build's check warnings.
pub type CheckSink = dyn Fn(&[CheckWarning]) + Send + Sync;

/// Where a build's check warnings go when they are known.
#[derive(Clone)]
pub struct CheckReport(pub Arc<CheckSink>);

impl std::fmt::Debug for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckReport")
    }
}

/// What a daemon adds to a client's request: the client's secrets and ssh agents,
/// reached through its session when a step needs one, and the build's own
/// cancellation (set when the client goes away).
#[derive(Clone, Default)]
pub struct SessionHooks {
    /// Where secrets and ssh agents come from instead of the request's maps.
    pub client_secrets: Option<Arc<dyn Secrets>>,
    /// This build's cancellation.
    pub cancelled: Option<Arc<AtomicBool>>,
    /// Told the build checks that fired as soon as the Dockerfile is converted, before
    /// anything runs (a daemon shows them as progress warnings, as BuildKit does).
    pub on_checks: Option<CheckReport>,
    /// Where registry credentials come from instead of the daemon's own docker
    /// configuration (the client's session).
    pub credentials: Option<Arc<dyn CredentialSource>>,
    /// Directories the daemon has just received from the client, with every entry
    /// under each as it wrote them: their sources select from these rather than
    /// walking the directories again.
    pub listings: Listings,
    /// Where `type=local` caches are: the client's directories, through its session.
    pub client_dirs: Option<Arc<dyn ClientDirs>>,
    /// The client session the build's directories come from, and the local name its
    /// context comes under: its local sources name both (`local.session`, and
    /// `contextkey` as the name) as BuildKit's frontend writes them, so a definition
    /// handed back later (a Bake target built on another) still finds them.
    pub lender: Option<Lender>,
}

/// A client session lending a build's directories.
#[derive(Debug, Clone)]
pub struct Lender {
    /// The session's id.
    pub session_id: String,
    /// The local name the build context is lent under (`context` unless the client
    /// chose another with `contextkey`).
    pub context_name: String,
}

/// Every entry under a directory (sorted, metadata as on disk).
pub type Listing = Arc<Vec<(String, kiln_llb::local::Entry)>>;

/// Directories with their listings.
pub type Listings = BTreeMap<PathBuf, Listing>;

/// A solved build not exported yet: its result's layers and image config per platform,
/// and what the build noted on the way. [`Engine::export`] sends it to outputs.
#[derive(Debug, Clone)]
pub struct Solved {
    /// One result per platform, in the order asked (a build for one platform has one).
    results: Vec<PlatformResult>,
    /// Whether several platforms were asked for: the exporters write one image per
    /// platform under an index (or one directory per platform).
    multi_platform: bool,
    /// The sources the build read, for build info.
    sources: Vec<serde_json::Value>,
    /// `SOURCE_DATE_EPOCH`, when the build has one.
    epoch: Option<i64>,
    /// The build checks that fired.
    pub checks: Vec<CheckWarning>,
    /// What the user should know (unused build args…).
    pub warnings: Vec<String>,
    /// The registry client acting for the client that solved it (pushes use it too).
    registry: Option<Arc<RegistryClient>>,
    /// The cache records of the solve (every platform's), when it has cache exports.
    records: Vec<kiln_worker::SolvedRecord>,
    /// Where its cache records go (`--cache-to`).
    cache_exports: Vec<kiln_remotecache::ExportOptions>,
    /// The caches it imported from (an export takes the blobs of results it reused
    /// from them without fetching).
    imports: Vec<Arc<kiln_remotecache::Importer>>,
    /// The client's directories, for `type=local` cache exports (a daemon's client).
    client_dirs: Option<Arc<dyn ClientDirs>>,
}

/// One platform's result.
#[derive(Debug, Clone)]
struct PlatformResult {
    /// The platform it was built for.
    platform: Platform,
    /// The result's snapshot layers, bottom first.
    chain: Vec<u64>,
    /// The key of the result (its cache record).
    key: Option<String>,
    /// The image config (without `created`, set at export).
    image: serde_json::Value,
    /// The LLB definition it was solved from, in BuildKit's wire format (what a
    /// gateway hands back with the ref); empty when there was none.
    definition: Vec<u8>,
}

impl Solved {
    /// The image config as JSON (what BuildKit's frontends return as
    /// `containerimage.config`); the first platform's.
    pub fn image_config(&self) -> Vec<u8> {
        serde_json::to_vec(&self.results[0].image).unwrap_or_default()
    }

    /// The LLB definition the first platform's result was solved from (BuildKit's
    /// `Ref.Definition()`); empty for an empty result.
    pub fn definition(&self) -> &[u8] {
        &self.results[0].definition
    }

    /// The same result with another image config (a client's frontend changed it).
    pub fn with_image_config(mut self, config: &[u8]) -> Result<Self, Error> {
        let mut image: serde_json::Value = serde_json::from_slice(config)
            .map_err(|e| Error::Usage(format!("the image config is not JSON: {e}")))?;
        if let Some(object) = image.as_object_mut() {
            object.remove("created");
        }
        self.results[0].image = image;
        Ok(self)
    }
}

/// A solve's remote caches.
struct SolveCaches {
    imports: Vec<Arc<kiln_remotecache::Importer>>,
    ports: Vec<Arc<dyn kiln_worker::CacheImport>>,
    exports: Vec<kiln_remotecache::ExportOptions>,
    records: std::sync::Mutex<Vec<kiln_worker::SolvedRecord>>,
}

impl SolveCaches {
    /// The records the solve noted, each key once (platforms solved side by side both
    /// note a step they share).
    fn solved_records(&self) -> Vec<kiln_worker::SolvedRecord> {
        let mut records =
            std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()));
        let mut seen = std::collections::HashSet::new();
        records.retain(|r| seen.insert(r.key.clone()));
        records
    }
}

/// The engine: one worker and the frontends and exporters around it.
pub struct Engine {
    worker: Worker,
    /// The engine's own registry client (the worker's).
    registry: Arc<RegistryClient>,
    platform: Platform,
    /// `worker.oci.platforms`: the platforms the worker shows instead of the detected.
    configured_platforms: Vec<Platform>,
    insecure_entitlements: Vec<String>,
    gc: Option<Vec<config::GcPolicy>>,
    /// Held while the engine is open: one process uses a state directory at a time.
    _lock: fs::File,
}

/// Locks the state directory, calling `on_wait` first if another process holds it.
fn lock_state(root: &Path, on_wait: &dyn Fn(&Path)) -> Result<fs::File, Error> {
    use rustix::fs::{FlockOperation, flock};
    fs::create_dir_all(root)
        .map_err(|e| Error::Usage(format!("creating {}: {e}", root.display())))?;
    let path = root.join("lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Usage(format!("opening {}: {e}", path.display())))?;
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        on_wait(root);
        flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| Error::Usage(format!("locking {}: {e}", path.display())))?;
    }
    Ok(file)
}

impl Engine {
    /// Opens the engine's state. Another process using the same state directory is
    /// waited for (`on_wait` is told first), so the store is never shared unlocked.
    pub fn open(config: EngineConfig, on_wait: &dyn Fn(&Path)) -> Result<Self, Error> {
        let lock = lock_state(&config.root, on_wait)?;
        let platform = Platform::host();
        let registry = Arc::new(
            RegistryClient::with_hosts(config.registries.clone().into_iter().collect())
                .map_err(|e| Error::Usage(format!("registry settings: {e}")))?,
        );
        let worker = Worker::open(
            WorkerConfig {
                root: config.root,
                runtime: config.runtime,
                parallelism: config.parallelism,
                platform: platform.clone(),
                default_network: if config.isolated_network {
                    kiln_worker::NetworkMode::None
                } else {
                    kiln_worker::NetworkMode::Host
                },
                cgroup_parent: config.cgroup_parent.clone(),
                resolv_conf: config.dns.as_ref().map(config::Dns::resolv_conf),
                snapshotter: config.snapshotter.clone(),
            },
            Arc::clone(&registry),
        )?;
        Ok(Self {
            worker,
            registry,
            platform,
            configured_platforms: config.platforms.clone(),
            gc: config.gc.clone(),
            insecure_entitlements: config.insecure_entitlements.clone(),
            _lock: lock,
        })
    }

    /// Builds a Dockerfile without exporting the result: converted once per asked
    /// platform, as BuildKit's Dockerfile frontend does, and every platform solved at
    /// once.
    pub fn solve_dockerfile(
        &self,
        request: &BuildRequest,
        hooks: &SessionHooks,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<Solved, Error> {
        self.check_entitlements(&request.entitlements)?;
        let registry = self.client_registry(hooks);
        // Before any work: bad cache options are refused, and imports start reading
        // while the Dockerfile is converted.
        let cache = self.start_caches(
            &request.cache_imports,
            &request.cache_exports,
            registry.as_ref(),
            hooks,
        )?;
        let dockerfile = fs::read(&request.dockerfile)
            .map_err(|e| Error::Usage(format!("reading the Dockerfile: {e}")))?;
        let dirs = BTreeMap::from([("dockerfile".to_owned(), request.dockerfile_dir())]);
        let report_checks = |checks: &[CheckWarning]| {
            if let Some(report) = &hooks.on_checks {
                (report.0)(checks);
            }
        };
        let targets: Vec<Option<&Platform>> = match request.platforms.as_slice() {
            [] => vec![None],
            platforms => platforms.iter().map(Some).collect(),
        };
        // Converted once per platform, side by side (each resolves its own images);
        // the first conversion's checks and errors are the Dockerfile's.
        let client = registry.as_deref().unwrap_or(self.worker.registry());
        let convert = |target: Option<&Platform>| {
            let mut dirs = dirs.clone();
            self.convert_for(
                request,
                &dockerfile,
                &mut dockerfile::LocalDirs {
                    context_name: hooks
                        .lender
                        .as_ref()
                        .map_or("context", |l| l.context_name.as_str())
                        .to_owned(),
                    session: hooks.lender.as_ref().map(|l| l.session_id.as_str()),
                    dirs: &mut dirs,
                },
                client,
                false,
                target,
            )
            .map(|conversion| (conversion, dirs))
        };
        let converted: Vec<Result<_, Error>> = match targets.as_slice() {
            [only] => vec![convert(*only)],
            all => std::thread::scope(|scope| {
                let running: Vec<_> = all
                    .iter()
                    .map(|target| scope.spawn(|| convert(*target)))
                    .collect();
                running
                    .into_iter()
                    .map(|thread| {
                        thread.join().unwrap_or_else(|_| {
                            Err(Error::Usage("a platform's conversion panicked".to_owned()))
                        })
                    })
                    .collect()
            }),
        };
        let mut conversions = Vec::new();
        let mut checks = Vec::new();
        let mut context_dirs = BTreeMap::new();
        for converted in converted {
            let mut conversion = match converted {
                Ok((conversion, dirs)) => {
                    context_dirs.extend(dirs);
                    conversion
                }
                Err(Error::Dockerfile { excerpt, error }) => {
                    report_checks(&lint_checks(
                        &error.warnings,
                        &dockerfile,
                        &request.dockerfile,
                    ));
                    return Err(Error::Dockerfile { excerpt, error });
                }
                Err(other) => return Err(other),
            };
            // The checks are the Dockerfile's, the same for every platform.
            if conversions.is_empty() {
                checks = check_warnings(&conversion, &dockerfile, &request.dockerfile);
                report_checks(&checks);
                if let Some(violation) = conversion.lint_violation.take() {
                    return Err(violation_error(violation));
                }
            }
            conversions.push(conversion);
        }
        let dirs = context_dirs;
        let contexts = Contexts {
            dirs,
            listings: hooks.listings.clone(),
        };
        let local_secrets = ClientSecrets {
            secrets: &request.secrets,
            ssh: &request.ssh,
        };
        let options = SolveOptions {
            no_cache: request.no_cache,
            progress: &|event| progress(api_event(event)),
            contexts: &contexts,
            secrets: match &hooks.client_secrets {
                Some(client) => client.as_ref(),
                None => &local_secrets,
            },
            entitlements: &request.entitlements,
            cancelled: hooks.cancelled.clone(),
            registry: registry.as_deref(),
            imports: &cache.ports,
            records: (!cache.exports.is_empty()).then_some(&cache.records),
            result_needed: result_needed(&request.outputs, &cache.exports),
        };
        let solve = |conversion: &convert::Conversion| {
            let definition = conversion.state.marshal(&MarshalOptions {
                platform: Some(conversion.platform.clone()),
                local_unique_id: None,
            });
            let definition_bytes = wire::encode_definition(&definition);
            let definition = LoadedDefinition::decode(&definition_bytes)?;
            let result = self
                .worker
                .solve(&definition, &options)
                .map_err(|e| step_error(e, &definition, &dockerfile, &request.dockerfile))?;
            let mut image =
                serde_json::to_value(&conversion.image).map_err(|e| Error::Usage(e.to_string()))?;
            if let Some(object) = image.as_object_mut() {
                object.remove("created");
            }
            let result = PlatformResult {
                platform: conversion.platform.clone(),
                key: result.as_ref().map(|r| r.key.clone()),
                chain: result.map(|r| r.chain).unwrap_or_default(),
                image,
                definition: definition_bytes,
            };
            Ok::<_, Error>((result, build_sources(&definition)))
        };
        // Platforms are solved side by side; a step they share (a stage on
        // $BUILDPLATFORM) is one vertex, run by the first to reach it and found in the
        // cache by the others.
        let solved: Vec<(PlatformResult, Vec<serde_json::Value>)> = match conversions.as_slice() {
            [only] => vec![solve(only)?],
            all => std::thread::scope(|scope| {
                let running: Vec<_> = all
                    .iter()
                    .map(|conversion| scope.spawn(|| solve(conversion)))
                    .collect();
                running
                    .into_iter()
                    .map(|thread| {
                        thread.join().unwrap_or_else(|_| {
                            Err(Error::Usage("a platform's solve panicked".to_owned()))
                        })
                    })
                    .collect::<Result<Vec<_>, Error>>()
            })?,
        };
        let mut warnings = Vec::new();
        if !conversions[0].unused_build_args.is_empty() {
            warnings.push(format!(
                "One or more build-args [{}] were not consumed",
                conversions[0].unused_build_args.join(" ")
            ));
        }
        let mut sources: Vec<serde_json::Value> = Vec::new();
        for source in solved.iter().flat_map(|(_, s)| s) {
            if !sources.contains(source) {
                sources.push(source.clone());
            }
        }
        Ok(Solved {
            results: solved.into_iter().map(|(result, _)| result).collect(),
            multi_platform: targets.len() > 1,
            sources,
            epoch: request
                .build_args
                .get("SOURCE_DATE_EPOCH")
                .and_then(|v| v.parse::<i64>().ok()),
            checks,
            warnings,
            registry,
            records: cache.solved_records(),
            cache_exports: cache.exports,
            imports: cache.imports,
            client_dirs: hooks.client_dirs.clone(),
        })
    }

    /// A solve's remote caches: the imports (being read from now on) and the exports
    /// (checked before any work, with the records they will need).
    fn start_caches(
        &self,
        imports: &[kiln_api::build::CacheOptionsEntry],
        exports: &[kiln_api::build::CacheOptionsEntry],
        registry: Option<&Arc<RegistryClient>>,
        hooks: &SessionHooks,
    ) -> Result<SolveCaches, Error> {
        let exports = remote_cache::parse_exports(exports)?;
        let imports = remote_cache::start_imports(
            imports,
            registry.unwrap_or(&self.registry),
            hooks.client_dirs.as_deref(),
        )?;
        Ok(SolveCaches {
            ports: remote_cache::import_ports(&imports),
            imports,
            exports,
            records: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The registry client acting for a daemon's client (with its credentials), when
    /// the hooks lend them.
    fn client_registry(&self, hooks: &SessionHooks) -> Option<Arc<RegistryClient>> {
        let credentials = hooks.credentials.clone()?;
        Some(Arc::new(
            self.worker.registry().with_credentials(credentials),
        ))
    }

    /// Solves an LLB definition without exporting its result.
    pub fn solve_definition(
        &self,
        request: &DefinitionRequest,
        hooks: &SessionHooks,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<Solved, Error> {
        self.check_entitlements(&request.entitlements)?;
        let definition = LoadedDefinition::decode(&request.definition)?;
        let registry = self.client_registry(hooks);
        let contexts = Contexts {
            dirs: request.locals.clone(),
            listings: hooks.listings.clone(),
        };
        let no_secrets = BTreeMap::new();
        let no_agents = BTreeMap::new();
        let local_secrets = ClientSecrets {
            secrets: &no_secrets,
            ssh: &no_agents,
        };
        let cache = self.start_caches(
            &request.cache_imports,
            &request.cache_exports,
            registry.as_ref(),
            hooks,
        )?;
        let result = self.worker.solve(
            &definition,
            &SolveOptions {
                no_cache: request.no_cache,
                progress: &|event| progress(api_event(event)),
                contexts: &contexts,
                secrets: match &hooks.client_secrets {
                    Some(client) => client.as_ref(),
                    None => &local_secrets,
                },
                entitlements: &request.entitlements,
                cancelled: hooks.cancelled.clone(),
                registry: registry.as_deref(),
                imports: &cache.ports,
                records: (!cache.exports.is_empty()).then_some(&cache.records),
                result_needed: result_needed(&request.outputs, &cache.exports),
            },
        )?;
        let mut solved = self.empty_result();
        solved.registry = registry;
        solved.results[0].key = result.as_ref().map(|r| r.key.clone());
        solved.results[0].chain = result.map(|r| r.chain).unwrap_or_default();
        solved.results[0].definition = request.definition.clone();
        solved.records = cache.solved_records();
        solved.cache_exports = cache.exports;
        solved.imports = cache.imports;
        solved.client_dirs = hooks.client_dirs.clone();
        solved.sources = build_sources(&definition);
        Ok(solved)
    }

    /// The local sources a definition reads (`local://NAME`), with their filters, for a
    /// daemon to fetch from its client first.
    pub fn local_sources(definition: &[u8]) -> Result<Vec<LocalSource>, Error> {
        Ok(kiln_worker::local_sources(&LoadedDefinition::decode(
            definition,
        )?))
    }

    /// Refuses a build asking for an entitlement the engine does not permit.
    fn check_entitlements(&self, asked: &[String]) -> Result<(), Error> {
        match asked
            .iter()
            .find(|e| !self.insecure_entitlements.contains(e))
        {
            Some(denied) => Err(Error::Usage(format!(
                "--allow {denied}: the engine does not permit it; add it to insecure-entitlements in the configuration file"
            ))),
            None => Ok(()),
        }
    }

    /// The flag that cancels builds when set (from a signal handler): running steps are
    /// killed, mounts released, and the build fails with "cancelled".
    pub fn cancellation(&self) -> Arc<AtomicBool> {
        self.worker.cancellation()
    }

    /// Kills and removes the containers and mounts of builds that never ended (a
    /// daemon that stops without waiting for them).
    pub fn release_leftovers(&self) {
        self.worker.release_leftovers();
    }

    /// Runs the configured garbage-collection policies, in order.
    fn collect_garbage(&self) -> Result<(), Error> {
        for policy in self.gc.iter().flatten() {
            let used = if policy.max_used.is_some() || policy.min_free.is_some() {
                self.worker.disk_usage()?.iter().map(|r| r.size).sum()
            } else {
                0
            };
            let free = match policy.min_free {
                Some(_) => rustix::fs::statvfs(self.worker.root())
                    .map_or(u64::MAX / 2, |s| s.f_bavail * s.f_frsize),
                None => u64::MAX / 2,
            };
            for prune in policy.prunes(used, free)? {
                self.worker.prune(&prune)?;
            }
        }
        Ok(())
    }

    /// An image's canonical name, manifest digest and config, for `platform` (this
    /// engine's when `None`), resolved as `mode` asks.
    pub fn resolve_image_config(
        &self,
        reference: &str,
        platform: Option<&Platform>,
        mode: ResolveMode,
        hooks: &SessionHooks,
    ) -> Result<(String, String, Vec<u8>), Error> {
        let platform = platform.unwrap_or(&self.platform);
        let registry = self.client_registry(hooks);
        Ok(self
            .worker
            .resolve_image_config(registry.as_deref(), reference, platform, mode)?)
    }

    /// A result with nothing in it (a client frontend that returns no ref), with the
    /// platform's bare image config.
    pub fn empty_result(&self) -> Solved {
        Solved {
            results: vec![PlatformResult {
                platform: self.platform.clone(),
                chain: Vec::new(),
                key: None,
                image: serde_json::json!({
                    "architecture": self.platform.architecture,
                    "os": self.platform.os,
                    "config": {},
                }),
                definition: Vec::new(),
            }],
            multi_platform: false,
            sources: Vec::new(),
            epoch: None,
            checks: Vec::new(),
            warnings: Vec::new(),
            registry: None,
            records: Vec::new(),
            cache_exports: Vec::new(),
            imports: Vec::new(),
            client_dirs: None,
        }
    }

    /// The platform this engine builds for when none is asked.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// The platforms the worker shows: `worker.oci.platforms` when configured, else the
    /// native one and those an emulator runs, as BuildKit detects them (probed when
    /// first asked, not at every start of the embedded engine).
    pub fn worker_platforms(&self) -> &[Platform] {
        match self.configured_platforms.as_slice() {
            [] => kiln_exec::archutil::supported_platforms(),
            configured => configured,
        }
    }
}

/// Whether a build reads its result's content: not when its only outputs are
/// `cacheonly` and it exports no cache (an imported result then stays where it is).
fn result_needed<T>(outputs: &[Export], cache_exports: &[T]) -> bool {
    outputs.is_empty() || !cache_exports.is_empty() || outputs.iter().any(|o| o.kind != "cacheonly")
}

impl Engine {
    /// Builds a Dockerfile and exports the result, with the daemon's `hooks`.
    pub fn build_with(
        &self,
        request: &BuildRequest,
        hooks: &SessionHooks,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<BuildResult, Error> {
        Self::check_exports(&request.outputs)?;
        let solved = self.solve_dockerfile(request, hooks, progress)?;
        let mut out = self.export(&solved, &request.outputs)?;
        out.checks = solved.checks;
        out.warnings.splice(0..0, solved.warnings);
        Ok(out)
    }

    /// The build cache's records that pass every filter.
    pub fn disk_usage(&self, filters: &[String]) -> Result<Vec<CacheRecord>, Error> {
        let filters = parse_filters(filters)?;
        Ok(self
            .worker
            .disk_usage()?
            .into_iter()
            .filter(|r| filters.iter().all(|f| f.selects(r)))
            .map(api_record)
            .collect())
    }

    /// Removes build-cache records; returns what was removed.
    pub fn prune(&self, options: &PruneOptions) -> Result<Vec<CacheRecord>, Error> {
        let options = kiln_worker::PruneOptions {
            all: options.all,
            keep_storage: options.keep_storage,
            filters: parse_filters(&options.filters)?,
        };
        Ok(self
            .worker
            .prune(&options)?
            .into_iter()
            .map(api_record)
            .collect())
    }
}

impl Builder for Engine {
    fn build(
        &self,
        request: &BuildRequest,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<BuildResult, kiln_api::Error> {
        let mut record = HistoryRecord::started(
            kiln_api::history::new_build_id(),
            "dockerfile.v0",
            request.frontend_attrs(),
        );
        let absolute = |path: &Path| {
            std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string()
        };
        record.local_paths = Some((absolute(&request.context), absolute(&request.dockerfile)));
        Ok(
            self.recorded(record, &request.outputs, progress, |progress| {
                self.build_with(request, &SessionHooks::default(), progress)
            })?,
        )
    }

    fn call(
        &self,
        request: &BuildRequest,
        subrequest: &str,
    ) -> Result<subrequests::Metadata, kiln_api::Error> {
        Ok(self.subrequest(request, subrequest)?)
    }

    fn build_definition(
        &self,
        request: &DefinitionRequest,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<BuildResult, kiln_api::Error> {
        Self::check_exports(&request.outputs)?;
        let record = HistoryRecord::started(kiln_api::history::new_build_id(), "", BTreeMap::new());
        Ok(
            self.recorded(record, &request.outputs, progress, |progress| {
                let solved = self.solve_definition(request, &SessionHooks::default(), progress)?;
                self.export(&solved, &request.outputs)
            })?,
        )
    }

    fn disk_usage(&self, filters: &[String]) -> Result<Vec<CacheRecord>, kiln_api::Error> {
        Ok(Engine::disk_usage(self, filters)?)
    }

    fn prune(&self, options: &PruneOptions) -> Result<Vec<CacheRecord>, kiln_api::Error> {
        Ok(Engine::prune(self, options)?)
    }

    fn history(&self) -> Result<Vec<HistoryRecord>, kiln_api::Error> {
        Ok(Engine::history(self)?)
    }

    fn info(&self) -> Result<BuilderInfo, kiln_api::Error> {
        Ok(BuilderInfo {
            version: format!("v{}", env!("CARGO_PKG_VERSION")),
            platforms: self
                .worker_platforms()
                .iter()
                .map(ToString::to_string)
                .collect(),
            // The rules garbage collection follows after each build.
            gc_policies: self
                .gc
                .iter()
                .flatten()
                .map(|p| kiln_api::GcPolicyInfo {
                    all: p.all,
                    filters: p.filters.clone(),
                    keep_duration_ns: p
                        .keep_duration
                        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
                    reserved_space: i64::try_from(p.keep_bytes).unwrap_or(i64::MAX),
                    max_used_space: p
                        .max_used
                        .map_or(0, |b| i64::try_from(b).unwrap_or(i64::MAX)),
                    min_free_space: p
                        .min_free
                        .map_or(0, |b| i64::try_from(b).unwrap_or(i64::MAX)),
                })
                .collect(),
            ..BuilderInfo::default()
        })
    }
}

impl From<Error> for kiln_api::Error {
    fn from(error: Error) -> Self {
        kiln_api::Error::Engine(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::dockerfile::rule_url;

    #[test]
    fn rule_urls() {
        assert_eq!(
            rule_url("FromAsCasing"),
            "https://docs.docker.com/go/dockerfile/rule/from-as-casing/"
        );
        assert_eq!(
            rule_url("JSONArgsRecommended"),
            "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
        );
        assert_eq!(
            rule_url("SecretsUsedInArgOrEnv"),
            "https://docs.docker.com/go/dockerfile/rule/secrets-used-in-arg-or-env/"
        );
    }
}
