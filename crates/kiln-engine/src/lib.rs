//! Composition root: builds a worker (store, registry client, runc executor), the
//! Dockerfile frontend and the exporters from config, and runs builds in-process.
//!
//! An [`Engine`] is a `kiln_api::Builder`: the CLI's embedded driver holds one as
//! `Box<dyn Builder>`, and `kilnd` serves one, adding the client's session through
//! [`SessionHooks`]. Nothing above this crate reaches the engine crates directly.

pub mod config;
pub mod dockerignore;
mod error;
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
use kiln_api::{Builder, BuilderInfo};
use kiln_dockerfile::convert::{self, ConvertOptions, ImageResolver, NamedContext, ResolvedImage};
use kiln_export::Exporter;
use kiln_llb::{LoadedDefinition, MarshalOptions, wire};
use kiln_registry::RegistryClient;
use kiln_worker::{LocalContexts, SolveOptions, Worker, WorkerConfig};

pub use error::Error;
pub use kiln_dockerfile::{Error as DockerfileError, SourceRange};
pub use kiln_llb::Platform;
pub use kiln_registry::{CredentialSource, Credentials};
pub use kiln_worker::{ResolveMode, Secrets};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// State directory (`/var/lib/kiln` for root).
    pub root: PathBuf,
    /// The OCI runtime binary.
    pub runtime: PathBuf,
    /// How many steps run at once.
    pub parallelism: usize,
    /// Garbage collection after each build (`None`: off).
    pub gc: Option<Vec<config::GcPolicy>>,
    /// Entitlements builds may be granted (`insecure-entitlements`).
    pub insecure_entitlements: Vec<String>,
    /// Whether steps that choose no network get their own namespace (`networkMode =
    /// "none"`) rather than the host's.
    pub isolated_network: bool,
    /// `defaultCgroupParent`: the cgroup RUN steps are placed under.
    pub cgroup_parent: Option<String>,
    /// `[dns]`: RUN steps' resolv.conf instead of the host's.
    pub dns: Option<config::Dns>,
    /// `snapshotter`: `overlayfs`, `native` or `auto` (overlay when it can be mounted).
    pub snapshotter: String,
    /// `[registry."host"]`: mirrors, plain HTTP, TLS settings.
    pub registries: BTreeMap<String, kiln_registry::HostOptions>,
    /// `[grpc]`: where `kilnd` listens.
    pub grpc: config::GrpcSettings,
    /// `debug`: more detail in logs.
    pub debug: bool,
    /// `worker.oci.platforms`: the platforms the worker shows instead of those detected
    /// (the native one and those an emulator runs).
    pub platforms: Vec<Platform>,
    /// What the configuration file had that kiln does not use: for the user to see.
    pub notices: Vec<String>,
}

impl EngineConfig {
    /// The default state directory: `/var/lib/kiln` as root, else `$XDG_DATA_HOME/kiln`
    /// (or `~/.local/share/kiln`); `KILN_ROOT` overrides both.
    pub fn default_root() -> PathBuf {
        if let Some(root) = std::env::var_os("KILN_ROOT") {
            return PathBuf::from(root);
        }
        if rustix_uid() == 0 {
            return PathBuf::from("/var/lib/kiln");
        }
        std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("kiln")
    }
}

fn rustix_uid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            root: Self::default_root(),
            runtime: PathBuf::from("runc"),
            parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()),
            gc: None,
            // The embedded engine runs as its user: what that user asks for with --allow.
            insecure_entitlements: vec!["network.host".to_owned(), "security.insecure".to_owned()],
            isolated_network: false,
            cgroup_parent: None,
            dns: None,
            registries: BTreeMap::new(),
            grpc: config::GrpcSettings::default(),
            debug: false,
            snapshotter: "auto".to_owned(),
            platforms: Vec::new(),
            notices: Vec::new(),
        }
    }
}

impl EngineConfig {
    /// The defaults, then the configuration file: `path` when given (`--config`), else
    /// `$KILN_CONFIG`, else `/etc/kiln/kilnd.toml` (root) or
    /// `~/.config/kiln/kilnd.toml`; `KILN_ROOT` still chooses the state directory.
    pub fn load(path: Option<&Path>) -> Result<Self, Error> {
        Self::load_over(Self::default(), path)
    }

    /// As [`EngineConfig::load`], for a daemon: it grants builds no insecure
    /// entitlement unless its configuration permits one (buildkitd's default).
    pub fn load_for_daemon(path: Option<&Path>) -> Result<Self, Error> {
        let defaults = Self {
            insecure_entitlements: Vec::new(),
            ..Self::default()
        };
        Self::load_over(defaults, path)
    }

    fn load_over(mut config: Self, path: Option<&Path>) -> Result<Self, Error> {
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| config::default_path(rustix_uid() == 0));
        if let Some(path) = path {
            let settings = config::read(&path)?;
            config.notices = settings
                .notices
                .iter()
                .map(|n| format!("{}: {n}", path.display()))
                .collect();
            if let Some(runtime) = settings.runtime {
                config.runtime = runtime;
            }
            if let Some(snapshotter) = settings.snapshotter {
                config.snapshotter = snapshotter;
            }
            config.cgroup_parent = settings.cgroup_parent;
            config.dns = settings.dns;
            config.registries = settings.registries;
            config.grpc = settings.grpc;
            config.debug = settings.debug;
            config.platforms = settings.platforms;
            if let (Some(root), None) = (settings.root, std::env::var_os("KILN_ROOT")) {
                config.root = root;
            }
            if let Some(parallelism) = settings.parallelism {
                config.parallelism = parallelism.max(1);
            }
            config.gc = settings.gc;
            if let Some(entitlements) = settings.insecure_entitlements {
                config.insecure_entitlements = entitlements;
            }
            if let Some(isolated) = settings.isolated_network {
                config.isolated_network = isolated;
            }
        }
        Ok(config)
    }
}

/// A Dockerfile's lint: what BuildKit's `frontend.lint` subrequest reports.
#[derive(Debug, Clone)]
pub struct LintReport {
    /// The build checks that fired.
    pub checks: Vec<CheckWarning>,
    /// What stopped the conversion (a parse error, a `check=error=true` violation),
    /// with its lines when known.
    pub error: Option<kiln_dockerfile::Error>,
}

/// A stage a Dockerfile can build (BuildKit's `frontend.targets` entry).
#[derive(Debug, Clone)]
pub struct StageTarget {
    /// `AS name` (empty for an unnamed stage).
    pub name: String,
    /// The `# name description` comment before its FROM.
    pub description: String,
    /// What its FROM names, as written.
    pub base: String,
    /// `--platform`, as written.
    pub platform: String,
    /// Whether it is built when no target is named (the last stage).
    pub default: bool,
    /// Its FROM's lines.
    pub location: SourceRange,
}

/// Every stage of a Dockerfile, in order.
pub fn dockerfile_targets(source: &[u8]) -> Result<Vec<StageTarget>, kiln_dockerfile::Error> {
    let parsed = kiln_dockerfile::parser::parse(source)?;
    let stages = kiln_dockerfile::instructions::parse(&parsed)?.stages;
    let last = stages.len().saturating_sub(1);
    Ok(stages
        .into_iter()
        .enumerate()
        .map(|(i, stage)| StageTarget {
            name: stage.from.name.unwrap_or_default(),
            description: stage.from.comment,
            base: stage.from.base_name,
            platform: stage.from.platform.unwrap_or_default(),
            default: i == last,
            location: stage.location,
        })
        .collect())
}

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

/// A local source of a definition: which client directory, filtered how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSource {
    /// Its name (`local://NAME`).
    pub name: String,
    /// `local.includepattern`.
    pub include_patterns: Vec<String>,
    /// `local.excludepatterns`.
    pub exclude_patterns: Vec<String>,
    /// `local.followpaths`.
    pub follow_paths: Vec<String>,
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
}

impl Solved {
    /// The image config as JSON (what BuildKit's frontends return as
    /// `containerimage.config`); the first platform's.
    pub fn image_config(&self) -> Vec<u8> {
        serde_json::to_vec(&self.results[0].image).unwrap_or_default()
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

/// The directory of a platform's files in a multi-platform `local` or `tar` export:
/// `linux_arm_v7`, as BuildKit's `platform-split` names it.
fn platform_dir(platform: &Platform) -> String {
    platform.to_string().replace('/', "_")
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

struct Contexts {
    dirs: BTreeMap<String, PathBuf>,
    listings: Listings,
}

impl LocalContexts for Contexts {
    fn dir(&self, name: &str) -> Option<PathBuf> {
        self.dirs.get(name).cloned()
    }

    fn listing(&self, name: &str) -> Option<Listing> {
        self.listings.get(self.dirs.get(name)?).cloned()
    }
}

struct ClientSecrets<'a> {
    secrets: &'a BTreeMap<String, Vec<u8>>,
    ssh: &'a BTreeMap<String, PathBuf>,
}

impl Secrets for ClientSecrets<'_> {
    fn secret(&self, id: &str) -> Option<Vec<u8>> {
        self.secrets.get(id).cloned()
    }

    fn ssh_agent(&self, id: &str) -> Option<PathBuf> {
        self.ssh.get(id).cloned()
    }
}

struct Resolver<'a>(&'a Worker, &'a RegistryClient, ResolveMode);

impl ImageResolver for Resolver<'_> {
    fn resolve_image_config(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<ResolvedImage, String> {
        let (name, digest, config) = self
            .0
            .resolve_image_config(Some(self.1), reference, platform, self.2)
            .map_err(|e| e.to_string())?;
        Ok(ResolvedImage {
            reference: name,
            digest: Some(digest),
            config,
        })
    }
}

/// A failed step with the Dockerfile lines it came from, as BuildKit prints them:
/// `Dockerfile:7`, up to two lines of context either side, the failing lines marked.
fn step_error(
    error: kiln_worker::Error,
    definition: &LoadedDefinition,
    source: &[u8],
    path: &Path,
) -> Error {
    let kiln_worker::Error::Vertex {
        name,
        digest,
        source: cause,
    } = &error
    else {
        return Error::Worker(error);
    };
    let mut chain = cause.to_string();
    let mut next = std::error::Error::source(cause.as_ref());
    while let Some(e) = next {
        chain.push_str(&format!(": {e}"));
        next = e.source();
    }
    let range = digest
        .parse()
        .ok()
        .and_then(|d| definition.locations(&d))
        .and_then(|l| l.locations.first())
        .and_then(|l| l.ranges.first())
        .and_then(|r| Some((r.start?.line as usize, r.end?.line as usize)));
    let Some((start, end)) = range.filter(|(s, _)| *s > 0) else {
        return Error::Step {
            excerpt: String::new(),
            cause: format!("failed to solve: {name}: {chain}"),
        };
    };
    let excerpt = source_excerpt(source, &file_name(path), start, end);
    Error::Step {
        excerpt,
        cause: format!("failed to solve: {name}: {chain}"),
    }
}

/// The Dockerfile lines `start..=end` marked, with two lines of context either side,
/// as BuildKit prints them under an error or a check warning.
fn source_excerpt(source: &[u8], file: &str, start: usize, end: usize) -> String {
    let text = String::from_utf8_lossy(source);
    let lines: Vec<&str> = text.lines().collect();
    let mut excerpt = format!("{file}:{start}\n--------------------\n");
    for n in start.saturating_sub(2).max(1)..=(end + 2).min(lines.len()) {
        let marker = if (start..=end).contains(&n) {
            ">>>"
        } else {
            "   "
        };
        excerpt.push_str(&format!(
            "{n:>4} | {marker} {}\n",
            lines.get(n - 1).copied().unwrap_or_default()
        ));
    }
    excerpt.push_str("--------------------\n");
    excerpt
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or("Dockerfile".into(), |n| n.to_string_lossy().into_owned())
}

/// `FromAsCasing` → `https://docs.docker.com/go/dockerfile/rule/from-as-casing/`.
fn rule_url(rule: &str) -> String {
    let chars: Vec<char> = rule.chars().collect();
    let mut kebab = String::new();
    for (i, c) in chars.iter().enumerate() {
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let boundary = c.is_uppercase()
            && prev.is_some_and(|p| p.is_lowercase() || (p.is_uppercase() && next_lower));
        if boundary {
            kebab.push('-');
        }
        kebab.extend(c.to_lowercase());
    }
    format!("https://docs.docker.com/go/dockerfile/rule/{kebab}/")
}

fn check_warnings(
    conversion: &convert::Conversion,
    source: &[u8],
    path: &Path,
) -> Vec<CheckWarning> {
    lint_checks(&conversion.warnings, source, path)
}

fn lint_checks(warnings: &[convert::LintWarning], source: &[u8], path: &Path) -> Vec<CheckWarning> {
    warnings
        .iter()
        .map(|w| {
            let (start, end) = (
                w.location.start.line,
                w.location.end.line.max(w.location.start.line),
            );
            CheckWarning {
                rule: w.rule.clone(),
                message: w.message.clone(),
                url: rule_url(&w.rule),
                line: start,
                excerpt: if start > 0 {
                    source_excerpt(source, &file_name(path), start, end)
                } else {
                    String::new()
                },
                description: convert::rule_description(&w.rule).to_owned(),
                location: api_range(w.location),
            }
        })
        .collect()
}

/// A `check=error=true` violation as the build's error (it has no lines to show).
fn violation_error(error: kiln_dockerfile::Error) -> Error {
    Error::Dockerfile {
        excerpt: String::new(),
        error,
    }
}

/// When an image was made.
#[derive(Debug, Clone, Copy)]
struct Times {
    /// Its creation time (Unix seconds).
    created: i64,
    /// `SOURCE_DATE_EPOCH`, when the build has one.
    epoch: Option<i64>,
}

/// How the worker remembers a blob made of one of its layers.
fn layer_info(blob: &kiln_export::Blob) -> kiln_worker::LayerInfo {
    kiln_worker::LayerInfo {
        blob: blob.digest.clone(),
        media_type: blob.media_type.clone(),
        size: blob.size,
        diff_id: blob.diff_id.clone(),
        clamped_to: blob.clamped_to,
        tar_version: blob.tar_version,
        pulled: false,
        source: None,
        annotations: blob.annotations.clone(),
    }
}

/// The build's sources as BuildKit's build info lists them: images with their pinned
/// digests, git and http sources.
fn build_sources(definition: &LoadedDefinition) -> Vec<serde_json::Value> {
    let mut sources = Vec::new();
    for vertex in &definition.vertices {
        let Some(kiln_llb::pb::op::Op::Source(source)) = &vertex.op.op else {
            continue;
        };
        let id = source.identifier.as_str();
        let entry = if let Some(image) = id.strip_prefix("docker-image://") {
            let (reference, pin) = image.split_once('@').unwrap_or((image, ""));
            serde_json::json!({"type": "docker-image", "ref": reference, "pin": pin})
        } else if id.starts_with("git://") {
            serde_json::json!({"type": "git", "ref": id.trim_start_matches("git://")})
        } else if id.starts_with("https://") || id.starts_with("http://") {
            let pin = source
                .attrs
                .get("http.checksum")
                .cloned()
                .unwrap_or_default();
            serde_json::json!({"type": "http", "ref": id, "pin": pin})
        } else {
            continue;
        };
        if !sources.contains(&entry) {
            sources.push(entry);
        }
    }
    sources.sort_by_key(|s| s["ref"].to_string());
    sources
}

/// The image config with `moby.buildkit.buildinfo.v1` (base64 JSON of the sources).
fn with_buildinfo(image: &serde_json::Value, sources: &[serde_json::Value]) -> serde_json::Value {
    use base64::Engine as _;
    let info = serde_json::json!({"frontend": "dockerfile.v0", "sources": sources});
    let mut image = image.clone();
    if let Some(object) = image.as_object_mut() {
        object.insert(
            "moby.buildkit.buildinfo.v1".to_owned(),
            base64::engine::general_purpose::STANDARD
                .encode(info.to_string())
                .into(),
        );
    }
    image
}

/// A path of a result made relative, never leaving its root (symlinks are not
/// followed out of it: only `..` and absolute parts are removed).
fn clean_inside(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            part => out.push(part),
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn mtime_secs(path: &Path) -> Option<i64> {
    let modified = fs::metadata(path).ok()?.modified().ok()?;
    Some(
        modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_secs() as i64,
    )
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
                "context",
                &mut dirs,
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
        };
        let solve = |conversion: &convert::Conversion| {
            let definition = conversion.state.marshal(&MarshalOptions {
                platform: Some(conversion.platform.clone()),
                local_unique_id: None,
            });
            let definition = LoadedDefinition::decode(&wire::encode_definition(&definition))?;
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
        })
    }

    /// A solve's remote caches: the imports (being read from now on) and the exports
    /// (checked before any work, with the records they will need).
    fn start_caches(
        &self,
        imports: &[kiln_api::build::CacheOptionsEntry],
        exports: &[kiln_api::build::CacheOptionsEntry],
        registry: Option<&Arc<RegistryClient>>,
    ) -> Result<SolveCaches, Error> {
        let exports = remote_cache::parse_exports(exports)?;
        let imports = remote_cache::start_imports(imports, registry.unwrap_or(&self.registry))?;
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

    /// Refuses exporters that are unknown or have bad options, before any work.
    pub fn check_exports(exports: &[Export]) -> Result<(), Error> {
        parse_exports(exports).map(|_| ())
    }

    /// Exports a solved build to every output (then collects garbage).
    pub fn export(&self, solved: &Solved, exports: &[Export]) -> Result<BuildResult, Error> {
        let outputs = parse_exports(exports)?;
        let mut out = BuildResult::default();
        self.finish(&outputs, solved, &mut out)?;
        Ok(out)
    }

    /// A file of a solved result (`None` when it has none there); `range` limits
    /// what is read to `(offset, length)`.
    pub fn read_file(
        &self,
        solved: &Solved,
        path: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<Vec<u8>>, Error> {
        use std::io::{Read as _, Seek as _};
        let Some(mount) = self.mount_result(&solved.results[0].chain)? else {
            return Ok(None);
        };
        let Some(relative) = clean_inside(path) else {
            return Ok(None);
        };
        let Ok(mut file) = fs::File::open(mount.path().join(relative)) else {
            return Ok(None);
        };
        let mut data = Vec::new();
        let read = match range {
            Some((offset, length)) => file
                .seek(std::io::SeekFrom::Start(offset))
                .and_then(|_| file.take(length).read_to_end(&mut data)),
            None => file.read_to_end(&mut data),
        };
        read.map_err(|e| Error::Usage(format!("reading {path} of the result: {e}")))?;
        Ok(Some(data))
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
            },
        )?;
        let mut solved = self.empty_result();
        solved.registry = registry;
        solved.results[0].key = result.as_ref().map(|r| r.key.clone());
        solved.results[0].chain = result.map(|r| r.chain).unwrap_or_default();
        solved.records = cache.solved_records();
        solved.cache_exports = cache.exports;
        solved.imports = cache.imports;
        solved.sources = build_sources(&definition);
        Ok(solved)
    }

    /// The local sources a definition reads (`local://NAME`), with their filters, for a
    /// daemon to fetch from its client first.
    pub fn local_sources(definition: &[u8]) -> Result<Vec<LocalSource>, Error> {
        let definition = LoadedDefinition::decode(definition)?;
        let list = |source: &kiln_llb::pb::SourceOp, key: &str| -> Vec<String> {
            source
                .attrs
                .get(key)
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or_default()
        };
        let mut sources: Vec<LocalSource> = Vec::new();
        for vertex in &definition.vertices {
            let Some(kiln_llb::pb::op::Op::Source(source)) = &vertex.op.op else {
                continue;
            };
            let Some(name) = source.identifier.strip_prefix("local://") else {
                continue;
            };
            let local = LocalSource {
                name: name.to_owned(),
                include_patterns: list(source, "local.includepattern"),
                exclude_patterns: list(source, "local.excludepatterns"),
                follow_paths: list(source, "local.followpaths"),
            };
            if !sources.contains(&local) {
                sources.push(local);
            }
        }
        Ok(sources)
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

    /// A solved build's end: its result exported to every output, the worker's warnings
    /// passed on, and garbage collected.
    fn finish(
        &self,
        outputs: &[Exporter],
        solved: &Solved,
        out: &mut BuildResult,
    ) -> Result<(), Error> {
        let registry = solved.registry.as_deref().unwrap_or(self.worker.registry());
        let epoch = solved.epoch;
        // Without an epoch an image is as old as its newest layer, so a cached rebuild
        // is identical.
        let times = |result: &PlatformResult| Times {
            created: epoch.unwrap_or_else(|| {
                result
                    .chain
                    .last()
                    .and_then(|id| mtime_secs(&self.worker.snapshots().layer_dir(*id)))
                    .unwrap_or(0)
            }),
            epoch,
        };
        for output in outputs {
            let wants_buildinfo = output.image_options().is_some_and(|o| o.buildinfo);
            // Each platform's image config: build info and inline cache as asked.
            let mut images = Vec::with_capacity(solved.results.len());
            for result in &solved.results {
                let image = if wants_buildinfo {
                    with_buildinfo(&result.image, &solved.sources)
                } else {
                    result.image.clone()
                };
                images.push(match output.image_options() {
                    Some(options) => self.with_inline_cache(solved, result, image, options, out)?,
                    None => image,
                });
            }
            if solved.multi_platform {
                self.export_platforms(output, &solved.results, &images, &times, registry, out)?;
            } else {
                let result = &solved.results[0];
                self.export_one(
                    output,
                    &result.chain,
                    &images[0],
                    times(result),
                    registry,
                    out,
                )?;
            }
        }
        self.export_caches(solved, &solved.cache_exports, out)?;
        out.warnings.extend(self.worker.take_warnings());
        if let Err(e) = self.collect_garbage() {
            out.warnings.push(format!("garbage collection: {e}"));
        }
        Ok(())
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

    /// Runs the Dockerfile's build checks without building (`--check`).
    fn checks(&self, request: &BuildRequest) -> Result<Vec<CheckWarning>, Error> {
        let dockerfile = fs::read(&request.dockerfile)
            .map_err(|e| Error::Usage(format!("reading the Dockerfile: {e}")))?;
        let mut dirs = BTreeMap::new();
        let conversion = self.convert(
            request,
            &dockerfile,
            "context",
            &mut dirs,
            self.worker.registry(),
            request.platforms.first(),
        )?;
        Ok(check_warnings(
            &conversion,
            &dockerfile,
            &request.dockerfile,
        ))
    }

    /// Lints the Dockerfile as BuildKit's `frontend.lint` subrequest does: the checks
    /// that fire over every stage (or the target's), and the error that stops the
    /// conversion, which is part of the answer rather than a failure.
    pub fn lint(&self, request: &BuildRequest) -> Result<LintReport, Error> {
        let dockerfile = fs::read(&request.dockerfile)
            .map_err(|e| Error::Usage(format!("reading the Dockerfile: {e}")))?;
        let mut dirs = BTreeMap::new();
        let registry = self.worker.registry();
        let target_platform = request.platforms.first();
        match self.convert_for(
            request,
            &dockerfile,
            "context",
            &mut dirs,
            registry,
            true,
            target_platform,
        ) {
            Ok(conversion) => Ok(LintReport {
                checks: check_warnings(&conversion, &dockerfile, &request.dockerfile),
                error: conversion.lint_violation,
            }),
            Err(Error::Dockerfile { error, .. }) => Ok(LintReport {
                checks: lint_checks(&error.warnings, &dockerfile, &request.dockerfile),
                error: Some(error),
            }),
            Err(other) => Err(other),
        }
    }

    /// Converts a request's Dockerfile; its build context is the local source
    /// `context_name`, and every directory the build reads is added to `dirs`. Named
    /// contexts that are builds (Bake's `target:` links) are converted here too.
    fn convert(
        &self,
        request: &BuildRequest,
        dockerfile: &[u8],
        context_name: &str,
        dirs: &mut BTreeMap<String, PathBuf>,
        registry: &RegistryClient,
        target_platform: Option<&Platform>,
    ) -> Result<convert::Conversion, Error> {
        let conversion = self.convert_for(
            request,
            dockerfile,
            context_name,
            dirs,
            registry,
            false,
            target_platform,
        )?;
        match conversion.lint_violation {
            Some(violation) => Err(violation_error(violation)),
            None => Ok(conversion),
        }
    }

    /// [`Self::convert`] with a `check=error=true` violation kept with the conversion
    /// rather than failing it (the caller reports the warnings first, as BuildKit
    /// does); for a lint when `lint` is set: every stage when no target is named
    /// (BuildKit's `AllStages`); for `target_platform` (`None`: the engine's).
    #[allow(clippy::too_many_arguments)]
    fn convert_for(
        &self,
        request: &BuildRequest,
        dockerfile: &[u8],
        context_name: &str,
        dirs: &mut BTreeMap<String, PathBuf>,
        registry: &RegistryClient,
        lint: bool,
        target_platform: Option<&Platform>,
    ) -> Result<convert::Conversion, Error> {
        dirs.insert(context_name.to_owned(), request.context.clone());
        // `BUILDKIT_SYNTAX` overrides the directive, as in BuildKit.
        let syntax = request
            .build_args
            .get("BUILDKIT_SYNTAX")
            .map(|s| s.split(' ').next().unwrap_or_default().to_owned())
            .or_else(|| kiln_dockerfile::parser::detect_syntax(dockerfile).map(|(r, _)| r));
        if let Some(syntax) = syntax.filter(|s| !kiln_dockerfile::parser::is_builtin_syntax(s)) {
            return Err(Error::Usage(format!(
                "{}: the frontend {syntax} (from its syntax directive) is an external frontend, and kiln does not run external frontends yet; use docker/dockerfile:1 or remove the directive",
                request.dockerfile.display()
            )));
        }
        let mut named_contexts = BTreeMap::new();
        for (name, value) in &request.named_contexts {
            let context = match value {
                BuildContext::Image(reference) => NamedContext::Image(reference.clone()),
                BuildContext::Dir(dir) => {
                    if !dir.is_dir() {
                        return Err(Error::Usage(format!(
                            "named context {name}: {} is not a directory",
                            dir.display()
                        )));
                    }
                    dirs.insert(name.clone(), dir.clone());
                    NamedContext::Local {
                        name: name.clone(),
                        excludes: dockerignore::dir_excludes(dir),
                    }
                }
                BuildContext::OciLayout { path, selector } => {
                    let (digest, _, config) = kiln_worker::read_layout(
                        path,
                        selector,
                        target_platform.unwrap_or(&self.platform),
                    )?;
                    let image: convert::Image = serde_json::from_slice(&config).map_err(|e| {
                        Error::Usage(format!("named context {name}: its image config: {e}"))
                    })?;
                    // The layout is lent to the build like a local directory.
                    let store = format!("oci-layout-{name}");
                    dirs.insert(store.clone(), path.clone());
                    NamedContext::State {
                        state: Box::new(kiln_llb::State::oci_layout(
                            &format!("{store}@{digest}"),
                            kiln_llb::OciLayoutOptions {
                                store_id: Some(store.clone()),
                                op: kiln_llb::OpOptions::default()
                                    .custom_name(format!("[context {name}] oci-layout {digest}")),
                                ..kiln_llb::OciLayoutOptions::default()
                            },
                        )),
                        image: Some(Box::new(image)),
                    }
                }
                BuildContext::Http(url) => NamedContext::State {
                    state: Box::new(kiln_llb::State::http(
                        url,
                        kiln_llb::HttpOptions {
                            op: kiln_llb::OpOptions::default()
                                .custom_name(format!("[context {name}] {url}")),
                            ..kiln_llb::HttpOptions::default()
                        },
                    )),
                    image: None,
                },
                BuildContext::Git { url, reference } => NamedContext::State {
                    state: Box::new(kiln_llb::State::git(
                        url,
                        reference,
                        kiln_llb::GitOptions {
                            op: kiln_llb::OpOptions::default()
                                .custom_name(format!("[context {name}] {url}#{reference}")),
                            ..kiln_llb::GitOptions::default()
                        },
                    )),
                    image: None,
                },
                BuildContext::Build(linked) => {
                    let linked_dockerfile = fs::read(&linked.dockerfile).map_err(|e| {
                        Error::Usage(format!(
                            "named context {name}: reading {}: {e}",
                            linked.dockerfile.display()
                        ))
                    })?;
                    let conversion = self.convert(
                        linked,
                        &linked_dockerfile,
                        &format!("{context_name}:{name}"),
                        dirs,
                        registry,
                        target_platform,
                    )?;
                    NamedContext::State {
                        state: Box::new(conversion.state),
                        image: Some(Box::new(conversion.image)),
                    }
                }
            };
            named_contexts.insert(name.clone(), context);
        }
        let options = ConvertOptions {
            target: request.target.clone(),
            build_args: request.build_args.clone(),
            target_platform: target_platform.cloned(),
            build_platform: Some(self.platform.clone()),
            filename: Some(
                request
                    .dockerfile
                    .file_name()
                    .map_or("Dockerfile".into(), |n| n.to_string_lossy().into_owned()),
            ),
            context_excludes: dockerignore::context_excludes(&request.context, &request.dockerfile),
            context_name: Some(context_name.to_owned()),
            named_contexts,
            labels: request.labels.clone(),
            no_cache_filter: request.no_cache_filter.clone(),
            network: match request.run.network.as_deref() {
                None | Some("default" | "") => None,
                Some("none") => Some(kiln_llb::NetMode::None),
                Some("host") => Some(kiln_llb::NetMode::Host),
                Some(other) => {
                    return Err(Error::Usage(format!(
                        "--network {other:?}: use default, none or host"
                    )));
                }
            },
            extra_hosts: request.run.extra_hosts.clone(),
            ulimits: request.run.ulimits.clone(),
            shm_size: request.run.shm_size,
            cgroup_parent: request.run.cgroup_parent.clone(),
            force_pull: request.pull,
            multi_platform: request.platforms.len() > 1,
            all_stages: lint && request.target.as_deref().is_none_or(str::is_empty),
            keep_lint_violation: true,
            ..ConvertOptions::default()
        };
        let mode = if request.pull {
            ResolveMode::Pull
        } else {
            ResolveMode::Default
        };
        let resolver = Resolver(&self.worker, registry, mode);
        convert::convert(dockerfile, &options, &resolver).map_err(|error| {
            let excerpt = error.location.map_or_else(String::new, |range| {
                source_excerpt(
                    dockerfile,
                    &file_name(&request.dockerfile),
                    range.start.line,
                    range.end.line,
                )
            });
            Error::Dockerfile { excerpt, error }
        })
    }

    /// The result's layers, with the blobs already known for each. A layer is the
    /// difference from the layers it was made on (a merge may stack it on others), or,
    /// without that record (an older kiln's layer, or one whose parents are gone), from
    /// those below it here.
    fn layers(&self, chain: &[u64]) -> Vec<kiln_export::Layer> {
        let snapshots = self.worker.snapshots();
        chain
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let infos = self.worker.layer_blobs(*id);
                let parents = snapshots
                    .parents(*id)
                    .filter(|p| p.iter().all(|l| snapshots.layer_dir(*l).is_dir()))
                    .unwrap_or_else(|| chain[..i].to_vec());
                kiln_export::Layer {
                    dir: snapshots.layer_dir(*id),
                    lowers: parents
                        .iter()
                        .rev()
                        .map(|l| snapshots.layer_dir(*l))
                        .collect(),
                    pulled: infos.first().is_some_and(|info| info.pulled),
                    blobs: infos
                        .into_iter()
                        .map(|info| kiln_export::Blob {
                            digest: info.blob,
                            media_type: info.media_type,
                            size: info.size,
                            diff_id: info.diff_id,
                            clamped_to: info.clamped_to,
                            tar_version: info.tar_version,
                            source: info.source,
                            annotations: info.annotations,
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Assembles the image for an exporter and remembers the blobs it made.
    fn assemble(
        &self,
        chain: &[u64],
        image: &serde_json::Value,
        options: &kiln_export::ImageOptions,
        times: Times,
        out: &mut BuildResult,
    ) -> Result<kiln_export::Image, Error> {
        let epoch = options.source_date_epoch.or(times.epoch);
        let rewrite_epoch = epoch.filter(|_| options.rewrite_timestamp);
        if options.rewrite_timestamp && epoch.is_none() {
            out.warnings.push(
                "rewrite-timestamp has no effect without SOURCE_DATE_EPOCH (a build arg or source-date-epoch=)".to_owned(),
            );
        }
        let assembled = kiln_export::assemble(
            self.worker.content(),
            &self.layers(chain),
            image,
            options,
            &kiln_oci::rfc3339_utc(epoch.unwrap_or(times.created)),
            rewrite_epoch,
        )?;
        for (i, blob) in &assembled.made {
            self.worker.add_layer_blob(chain[*i], &layer_info(blob))?;
        }
        out.warnings.extend(options.notices.iter().cloned());
        if out.manifest_digest.is_none() {
            out.manifest_digest = Some(assembled.manifest.digest.clone());
            out.manifest = Some(assembled.manifest.clone());
            out.config_digest = Some(assembled.config.digest.clone());
            out.image_names = options.names.clone();
        }
        Ok(assembled)
    }

    /// Runs one exporter on a result.
    fn export_one(
        &self,
        output: &Exporter,
        chain: &[u64],
        image: &serde_json::Value,
        times: Times,
        registry: &RegistryClient,
        out: &mut BuildResult,
    ) -> Result<(), Error> {
        // The local and tar exporters read the result through a read-only mount.
        let with_root = |export: &dyn Fn(Option<&Path>) -> Result<(), kiln_export::Error>| {
            let mount = self.mount_result(chain)?;
            export(mount.as_ref().map(kiln_store::MountGuard::path)).map_err(Error::from)
        };
        match output {
            Exporter::CacheOnly => Ok(()),
            Exporter::Local { dest } => {
                with_root(&|root| kiln_export::rootfs::export_local(root, dest))
            }
            Exporter::Tar { dest } => {
                with_root(&|root| kiln_export::rootfs::export_tar(root, dest))
            }
            Exporter::Oci(archive) | Exporter::Docker(archive) => {
                let assembled = self.assemble(chain, image, &archive.image, times, out)?;
                let mtime = archive
                    .image
                    .source_date_epoch
                    .unwrap_or(times.created)
                    .max(0) as u64;
                kiln_export::layout::write_layout(
                    self.worker.content(),
                    &assembled,
                    &archive.image,
                    &archive.dest,
                    mtime,
                )?;
                Ok(())
            }
            Exporter::Image(export) => {
                let assembled = self.assemble(chain, image, &export.image, times, out)?;
                if out.manifest.as_ref() == Some(&assembled.manifest) {
                    out.image_names = export.image_names(&assembled.manifest.digest);
                }
                if export.push {
                    out.pushed.extend(kiln_export::push::push(
                        registry,
                        self.worker.content(),
                        &assembled,
                        export,
                    )?);
                }
                Ok(())
            }
        }
    }

    /// A result's files, mounted read-only (`None` for an empty result).
    fn mount_result(&self, chain: &[u64]) -> Result<Option<kiln_store::MountGuard>, Error> {
        if chain.is_empty() {
            return Ok(None);
        }
        let snapshot = kiln_store::Snapshot {
            chain: chain.to_vec(),
        };
        let mount = self
            .worker
            .snapshots()
            .mount_readonly(&snapshot)
            .map_err(kiln_worker::Error::from)?;
        Ok(Some(mount))
    }

    /// Runs one exporter on a multi-platform result: one image per platform under an
    /// index, or one `os_arch[_variant]` directory per platform, as BuildKit's
    /// exporters write them.
    fn export_platforms(
        &self,
        output: &Exporter,
        results: &[PlatformResult],
        images: &[serde_json::Value],
        times: &dyn Fn(&PlatformResult) -> Times,
        registry: &RegistryClient,
        out: &mut BuildResult,
    ) -> Result<(), Error> {
        let assemble_all = |options: &kiln_export::ImageOptions,
                            out: &mut BuildResult|
         -> Result<kiln_export::MultiPlatformImage, Error> {
            let first_export = out.manifest_digest.is_none();
            let mut assembled = Vec::new();
            for (result, image) in results.iter().zip(images) {
                assembled.push(self.assemble(&result.chain, image, options, times(result), out)?);
            }
            let multi = kiln_export::assemble_index(self.worker.content(), assembled, options)?;
            // The build's digest is the index's, as BuildKit reports it.
            if first_export {
                out.manifest_digest = Some(multi.index.digest.clone());
                out.manifest = Some(multi.index.clone());
                out.config_digest = None;
            }
            Ok(multi)
        };
        match output {
            Exporter::CacheOnly => Ok(()),
            Exporter::Local { dest } => {
                for result in results {
                    let mount = self.mount_result(&result.chain)?;
                    kiln_export::rootfs::export_local(
                        mount.as_ref().map(kiln_store::MountGuard::path),
                        &dest.join(platform_dir(&result.platform)),
                    )?;
                }
                Ok(())
            }
            Exporter::Tar { dest } => {
                let mounts = results
                    .iter()
                    .map(|r| self.mount_result(&r.chain))
                    .collect::<Result<Vec<_>, Error>>()?;
                let dirs: Vec<String> = results.iter().map(|r| platform_dir(&r.platform)).collect();
                let trees: Vec<(&str, Option<&Path>)> = dirs
                    .iter()
                    .zip(&mounts)
                    .map(|(dir, mount)| {
                        (
                            dir.as_str(),
                            mount.as_ref().map(kiln_store::MountGuard::path),
                        )
                    })
                    .collect();
                kiln_export::rootfs::export_tar_split(&trees, dest)?;
                Ok(())
            }
            Exporter::Docker(_) => Err(Error::Usage(
                "docker exporter does not currently support exporting manifest lists".to_owned(),
            )),
            Exporter::Oci(archive) => {
                let multi = assemble_all(&archive.image, out)?;
                let mtime = archive
                    .image
                    .source_date_epoch
                    .unwrap_or(times(&results[0]).created)
                    .max(0) as u64;
                kiln_export::layout::write_index_layout(
                    self.worker.content(),
                    &multi,
                    &archive.image,
                    &archive.dest,
                    mtime,
                )?;
                Ok(())
            }
            Exporter::Image(export) => {
                let multi = assemble_all(&export.image, out)?;
                if out.manifest.as_ref() == Some(&multi.index) {
                    out.image_names = export.image_names(&multi.index.digest);
                }
                if export.push {
                    out.pushed.extend(kiln_export::push::push_index(
                        registry,
                        self.worker.content(),
                        &multi,
                        export,
                    )?);
                }
                Ok(())
            }
        }
    }
}

/// A Dockerfile range as the front door's.
pub fn api_range(range: SourceRange) -> kiln_api::build::SourceRange {
    let position = |p: kiln_dockerfile::Position| kiln_api::build::Position {
        line: p.line,
        character: p.character,
    };
    kiln_api::build::SourceRange {
        start: position(range.start),
        end: position(range.end),
    }
}

/// The typed exporters of a request's exports.
fn parse_exports(exports: &[Export]) -> Result<Vec<Exporter>, Error> {
    exports
        .iter()
        .map(|export| Exporter::parse(&export.kind, &export.attrs).map_err(Error::from))
        .collect()
}

/// The worker's progress event as the front door's.
fn api_event(event: kiln_worker::Event) -> Event {
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

fn api_record(record: kiln_worker::CacheRecord) -> CacheRecord {
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
fn parse_filters(texts: &[String]) -> Result<Vec<kiln_worker::PruneFilter>, Error> {
    texts
        .iter()
        .flat_map(|t| t.split(','))
        .filter(|t| !t.trim().is_empty())
        .map(|t| kiln_worker::PruneFilter::parse(t).map_err(Error::from))
        .collect()
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
        Ok(self.build_with(request, &SessionHooks::default(), progress)?)
    }

    fn check(&self, request: &BuildRequest) -> Result<Vec<CheckWarning>, kiln_api::Error> {
        Ok(self.checks(request)?)
    }

    fn build_definition(
        &self,
        request: &DefinitionRequest,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<BuildResult, kiln_api::Error> {
        Self::check_exports(&request.outputs)?;
        let solved = self.solve_definition(request, &SessionHooks::default(), progress)?;
        Ok(self.export(&solved, &request.outputs)?)
    }

    fn disk_usage(&self, filters: &[String]) -> Result<Vec<CacheRecord>, kiln_api::Error> {
        Ok(Engine::disk_usage(self, filters)?)
    }

    fn prune(&self, options: &PruneOptions) -> Result<Vec<CacheRecord>, kiln_api::Error> {
        Ok(Engine::prune(self, options)?)
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
    use super::*;

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
