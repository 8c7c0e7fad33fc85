//! The remote builder: builds run on a BuildKit-compatible daemon (kilnd or
//! buildkitd) at an address. A Dockerfile build becomes BuildKit's solve of the
//! `dockerfile.v0` frontend with its attributes (as buildx sends them); the context,
//! Dockerfile, named local contexts, secrets and output places are lent through the
//! session; progress comes back as BuildKit's status updates.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use sha2::Digest as _;

use crate::build::{
    BuildContext, BuildRequest, BuildResult, CacheRecord, DefinitionRequest, Event, Export,
    PruneOptions,
};
use crate::builder::{Builder, BuilderInfo, Error};
use crate::client::{Client, FrontendSolve, TlsFiles};
use crate::proto::moby::buildkit::v1 as control;
use crate::session::attachables::{Attachables, OutputTarget};
use crate::session::content::local_store_id;

/// A daemon at an address (`unix://…`, `tcp://…` with TLS), driven as a [`Builder`].
pub struct RemoteBuilder {
    address: String,
    tls: TlsFiles,
    runtime: tokio::runtime::Runtime,
}

impl RemoteBuilder {
    /// A builder for the daemon at `address`; nothing is dialled until it is used.
    pub fn new(address: &str, tls: TlsFiles) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Unsupported(format!("starting the client runtime: {e}")))?;
        Ok(Self {
            address: address.to_owned(),
            tls,
            runtime,
        })
    }

    async fn client(&self) -> Result<Client, Error> {
        Ok(Client::connect(&self.address, &self.tls).await?)
    }

    /// Runs one solve with a session lending `attachables`; `progress` sees its steps.
    fn solve(
        &self,
        solve: control::SolveRequest,
        attachables: Attachables,
        shared_key: &str,
        caches: LocalCaches,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<BuildResult, Error> {
        self.with_progress(progress, |on_status| async {
            let response = self
                .client()
                .await?
                .solve(solve, attachables, shared_key, on_status)
                .await?;
            finish(&response, caches)
        })
    }

    /// Runs `work` on the client's runtime, the status updates it is given turned into
    /// events for `progress` as they come.
    fn with_progress<F, Work>(
        &self,
        progress: &(dyn Fn(Event) + Sync),
        work: F,
    ) -> Result<BuildResult, Error>
    where
        F: FnOnce(Box<dyn Fn(control::StatusResponse) + Send>) -> Work,
        Work: Future<Output = Result<BuildResult, Error>>,
    {
        let (events_in, events_out) = std::sync::mpsc::channel::<control::StatusResponse>();
        let state = Mutex::new(StatusEvents::default());
        std::thread::scope(|scope| {
            let printer = scope.spawn(|| {
                for update in events_out {
                    let events = state
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .events(update);
                    for event in events {
                        progress(event);
                    }
                }
            });
            let on_status = Box::new(move |update| {
                let _ = events_in.send(update);
            });
            let result = self.runtime.block_on(work(on_status));
            let _ = printer.join();
            result
        })
    }
}

/// What a Dockerfile build lends the daemon through its session besides directories:
/// secrets, ssh, registry credentials, and the content stores `stores` (local caches).
fn lent(request: &BuildRequest, stores: BTreeMap<String, PathBuf>) -> Attachables {
    Attachables {
        secrets: request.secrets.clone(),
        ssh: request.ssh.clone(),
        registry_auth: true,
        content_stores: stores,
        ..Attachables::default()
    }
}

/// A Dockerfile build as the frontend's attributes, its directories (context,
/// Dockerfile, named local contexts) and OCI layouts added to what the session lends.
/// A build another is built on (Bake's `target:` link) becomes an input, solved first
/// with its directories in a session of its own (as buildx has each target in its
/// own): BuildKit's frontend reads the context only as `context`.
fn frontend_solve(request: &BuildRequest, lent: &mut Attachables) -> Result<FrontendSolve, Error> {
    let mut root = linked_solve(request, lent)?;
    for (name, dir) in root
        .own_session
        .take()
        .map(|(dirs, _)| dirs)
        .into_iter()
        .flatten()
    {
        lent.dirs.insert(name, dir);
    }
    Ok(root)
}

/// A build's solve, with its directories in a session of its own; its secrets, ssh
/// agents and OCI layouts are lent by the build's session.
fn linked_solve(request: &BuildRequest, lent: &mut Attachables) -> Result<FrontendSolve, Error> {
    let mut attrs = frontend_attrs(request)?;
    let mut dirs = BTreeMap::new();
    match &request.context_url {
        // The daemon fetches the context.
        Some(url) => {
            attrs.insert("context".to_owned(), url.clone());
            // A git URL with a query (`?ref=…&subdir=…`) needs a frontend that reads it.
            if url.contains('?') && matches!(kiln_llb::GitRef::parse(url), Ok(Some(_))) {
                attrs.insert(
                    "frontend.caps".to_owned(),
                    "moby.buildkit.frontend.gitquerystring".to_owned(),
                );
            }
        }
        None => {
            dirs.insert("context".to_owned(), request.context.clone());
        }
    }
    // A Dockerfile inside a fetched context is read from there; any other is lent.
    if request.context_url.is_none() || request.dockerfile.is_absolute() {
        dirs.insert("dockerfile".to_owned(), request.dockerfile_dir());
        if request.context_url.is_some() {
            attrs.insert("dockerfilekey".to_owned(), "dockerfile".to_owned());
        }
    }
    for (key, value) in &request.secrets {
        lent.secrets.insert(key.clone(), value.clone());
    }
    for (key, value) in &request.ssh {
        lent.ssh.insert(key.clone(), value.clone());
    }
    let mut inputs = Vec::new();
    for (name, context) in &request.named_contexts {
        match context {
            BuildContext::Dir(dir) => {
                dirs.insert(name.clone(), dir.clone());
            }
            BuildContext::OciLayout { path, selector } => {
                let (_, store) = lent_layout(name, path, selector)?;
                lent.content_stores.insert(store, path.clone());
            }
            BuildContext::Build(linked) => {
                inputs.push((name.clone(), linked_solve(linked, lent)?));
            }
            _ => {}
        }
    }
    Ok(FrontendSolve {
        attrs,
        own_session: Some((dirs, shared_key(request))),
        inputs,
    })
}

/// What a build and the builds it is built on are granted (`--allow`), each once.
fn entitlements(request: &BuildRequest) -> Vec<String> {
    let mut granted = request.entitlements.clone();
    for context in request.named_contexts.values() {
        if let BuildContext::Build(linked) = context {
            for entitlement in entitlements(linked) {
                if !granted.contains(&entitlement) {
                    granted.push(entitlement);
                }
            }
        }
    }
    granted
}

/// The session key of a build: builds of one directory share it, so the daemon keeps
/// their files between builds and transfers only what changed.
fn shared_key(request: &BuildRequest) -> String {
    std::fs::canonicalize(&request.context)
        .unwrap_or_else(|_| request.context.clone())
        .display()
        .to_string()
}

impl Builder for RemoteBuilder {
    fn build(
        &self,
        request: &BuildRequest,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<BuildResult, Error> {
        let (exporters, outputs) = exporters(&request.outputs)?;
        let (cache, caches) = cache_options(&request.cache_imports, &request.cache_exports)?;
        let mut attachables = lent(request, caches.stores.clone());
        attachables.outputs = outputs;
        let mut root = frontend_solve(request, &mut attachables)?;
        if !cache.imports.is_empty() {
            // The frontend's own solves import what this names (buildctl and buildx
            // send both).
            root.attrs
                .insert("cache-imports".to_owned(), cache_imports_json(&cache));
        }
        let solve = control::SolveRequest {
            frontend: "dockerfile.v0".to_owned(),
            exporters,
            entitlements: entitlements(request),
            cache: Some(cache),
            ..control::SolveRequest::default()
        };
        if root.inputs.is_empty() {
            let solve = control::SolveRequest {
                frontend_attrs: root.attrs,
                ..solve
            };
            return self.solve(solve, attachables, &shared_key(request), caches, progress);
        }
        // Built on other builds: through the gateway, as buildx builds Bake's links.
        self.with_progress(progress, |on_status| async {
            let response = self
                .client()
                .await?
                .solve_frontends(solve, root, attachables, &shared_key(request), on_status)
                .await?;
            finish(&response, caches)
        })
    }

    fn call(
        &self,
        request: &BuildRequest,
        subrequest: &str,
    ) -> Result<crate::subrequests::Metadata, Error> {
        let mut attachables = lent(request, BTreeMap::new());
        // Builds linked as named contexts are not solved for a subrequest.
        let mut frontend_attrs = frontend_solve(request, &mut attachables)?.attrs;
        frontend_attrs.insert(
            crate::subrequests::REQUEST_ID.to_owned(),
            subrequest.to_owned(),
        );
        // As buildx asks: a frontend without subrequests may pass them on.
        frontend_attrs.insert(
            "frontend.caps".to_owned(),
            "moby.buildkit.frontend.subrequests+forward".to_owned(),
        );
        self.runtime.block_on(async {
            Ok(self
                .client()
                .await?
                .call(frontend_attrs, attachables, &shared_key(request))
                .await?)
        })
    }

    fn build_definition(
        &self,
        request: &DefinitionRequest,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<BuildResult, Error> {
        let (exporters, outputs) = exporters(&request.outputs)?;
        let (cache, caches) = cache_options(&request.cache_imports, &request.cache_exports)?;
        let mut frontend_attrs = HashMap::new();
        if request.no_cache {
            frontend_attrs.insert("no-cache".to_owned(), String::new());
        }
        let solve = control::SolveRequest {
            definition: Some(
                prost::Message::decode(request.definition.as_slice()).map_err(|e| {
                    Error::Unsupported(format!("the LLB definition does not decode: {e}"))
                })?,
            ),
            frontend_attrs,
            exporters,
            entitlements: request.entitlements.clone(),
            cache: Some(cache),
            ..control::SolveRequest::default()
        };
        let attachables = Attachables {
            dirs: request.locals.clone(),
            outputs,
            registry_auth: true,
            content_stores: caches.stores.clone(),
            ..Attachables::default()
        };
        self.solve(solve, attachables, "", caches, progress)
    }

    fn disk_usage(&self, filters: &[String]) -> Result<Vec<CacheRecord>, Error> {
        let records = self.runtime.block_on(async {
            Ok::<_, Error>(self.client().await?.disk_usage(filters.to_vec()).await?)
        })?;
        Ok(records.iter().map(cache_record).collect())
    }

    fn prune(&self, options: &PruneOptions) -> Result<Vec<CacheRecord>, Error> {
        let request = control::PruneRequest {
            filter: options.filters.clone(),
            all: options.all,
            reserved_space: i64::try_from(options.keep_storage).unwrap_or(i64::MAX),
            ..control::PruneRequest::default()
        };
        let removed = self
            .runtime
            .block_on(async { Ok::<_, Error>(self.client().await?.prune(request).await?) })?;
        Ok(removed.iter().map(cache_record).collect())
    }

    fn info(&self) -> Result<BuilderInfo, Error> {
        let (info, workers) = self.runtime.block_on(async {
            let client = self.client().await?;
            Ok::<_, Error>((client.info().await?, client.workers().await?))
        })?;
        let version = info.buildkit_version.map(|v| v.version).unwrap_or_default();
        let platforms = workers
            .iter()
            .flat_map(|w| &w.platforms)
            .map(|p| {
                let mut text = format!("{}/{}", p.os, p.architecture);
                if !p.variant.is_empty() {
                    text = format!("{text}/{}", p.variant);
                }
                text
            })
            .fold(Vec::new(), |mut all: Vec<String>, p| {
                // Each platform once, in the workers' order (buildx's `Dedupe`).
                if !all.contains(&p) {
                    all.push(p);
                }
                all
            });
        let mut worker_ids: Vec<String> = workers.iter().map(|w| w.id.clone()).collect();
        worker_ids.sort();
        // As buildx: the first worker's labels and rules.
        let first = workers.first();
        Ok(BuilderInfo {
            version,
            platforms,
            worker_ids,
            labels: first
                .map(|w| w.labels.clone().into_iter().collect())
                .unwrap_or_default(),
            gc_policies: first
                .map(|w| {
                    w.gc_policy
                        .iter()
                        .map(|p| crate::builder::GcPolicyInfo {
                            all: p.all,
                            filters: p.filters.clone(),
                            keep_duration_ns: p.keep_duration,
                            reserved_space: p.reserved_space,
                            max_used_space: p.max_used_space,
                            min_free_space: p.min_free_space,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    fn history(&self) -> Result<Vec<crate::history::HistoryRecord>, Error> {
        let records = self
            .runtime
            .block_on(async { Ok::<_, Error>(self.client().await?.history().await?) })?;
        let mut records: Vec<_> = records
            .into_iter()
            .map(crate::history::HistoryRecord::from_proto)
            .collect();
        records.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(records)
    }
}

fn unix_seconds(timestamp: &Option<crate::proto::google::protobuf::Timestamp>) -> i64 {
    timestamp.as_ref().map_or(0, |t| t.seconds)
}

fn cache_record(record: &control::UsageRecord) -> CacheRecord {
    CacheRecord {
        id: record.id.clone(),
        kind: record.record_type.clone(),
        description: record.description.clone(),
        size: u64::try_from(record.size).unwrap_or_default(),
        created: unix_seconds(&record.created_at),
        last_used: unix_seconds(&record.last_used_at),
        usage_count: u64::try_from(record.usage_count).unwrap_or_default(),
        parents: record.parents.clone(),
    }
}

/// A remote build's `type=local` caches: their directories, lent to the daemon as
/// content stores (`local:DIR`), and the tags to set in the exports' index.json once
/// the daemon answers which manifest it wrote (BuildKit's client does the same).
#[derive(Debug, Default)]
struct LocalCaches {
    stores: BTreeMap<String, PathBuf>,
    tags: Vec<(PathBuf, String)>,
    /// Imports left out (no cache there yet), said as BuildKit's client says it.
    warnings: Vec<String>,
}

/// The Solve request's cache imports and exports (`--cache-from`/`--cache-to`). A
/// `local` import is named by its manifest's digest, read here from the directory's
/// index.json (the daemon reads the blobs through the session).
fn cache_options(
    imports: &[crate::build::CacheOptionsEntry],
    exports: &[crate::build::CacheOptionsEntry],
) -> Result<(control::CacheOptions, LocalCaches), Error> {
    let mut caches = LocalCaches::default();
    let entry = |entry: &crate::build::CacheOptionsEntry| control::CacheOptionsEntry {
        r#type: entry.kind.clone(),
        attrs: entry.attrs.clone().into_iter().collect(),
    };
    let tag_of = |attrs: &BTreeMap<String, String>| {
        attrs
            .get("tag")
            .cloned()
            .unwrap_or_else(|| "latest".to_owned())
    };
    let mut export_entries = Vec::new();
    for export in exports {
        if export.kind == "local" {
            let dest = export
                .attrs
                .get("dest")
                .filter(|d| !d.is_empty())
                .ok_or_else(|| {
                    Error::Unsupported("--cache-to type=local requires dest".to_owned())
                })?;
            let dir = PathBuf::from(dest);
            fs_err::create_dir_all(&dir).map_err(|source| Error::CacheDir {
                dir: dir.clone(),
                source,
            })?;
            caches.stores.insert(local_store_id(&dir), dir.clone());
            caches.tags.push((dir, tag_of(&export.attrs)));
        }
        export_entries.push(entry(export));
    }
    let mut import_entries = Vec::new();
    for import in imports {
        let mut sent = entry(import);
        if import.kind == "local" {
            let src = import
                .attrs
                .get("src")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    Error::Unsupported("--cache-from type=local requires src".to_owned())
                })?;
            let dir = PathBuf::from(src);
            if import.attrs.get("digest").is_none_or(String::is_empty) {
                let tag = tag_of(&import.attrs);
                match kiln_oci::layout::tagged(&dir, &tag) {
                    Ok(Some(manifest)) => {
                        sent.attrs.insert("digest".to_owned(), manifest.digest);
                    }
                    Ok(None) => {
                        caches.warnings.push(format!(
                            "local cache import at {src} not found: no cache tagged {tag} (export one with --cache-to type=local,dest={src})"
                        ));
                        continue;
                    }
                    Err(e) => {
                        caches
                            .warnings
                            .push(format!("local cache import at {src} not found: {e}"));
                        continue;
                    }
                }
            }
            caches.stores.insert(local_store_id(&dir), dir);
        }
        import_entries.push(sent);
    }
    let options = control::CacheOptions {
        imports: import_entries,
        exports: export_entries,
        ..control::CacheOptions::default()
    };
    Ok((options, caches))
}

/// The cache imports as a frontend reads them (`cache-imports`): Go's JSON of
/// BuildKit's `CacheOptionsEntry` list.
fn cache_imports_json(cache: &control::CacheOptions) -> String {
    let entries: Vec<serde_json::Value> = cache
        .imports
        .iter()
        .map(|entry| {
            let attrs: BTreeMap<&String, &String> = entry.attrs.iter().collect();
            serde_json::json!({ "Type": entry.r#type, "Attrs": attrs })
        })
        .collect();
    serde_json::Value::Array(entries).to_string()
}

/// What a solve's answer says, the local caches' index.json tags set to the cache
/// manifest the daemon wrote.
fn finish(response: &HashMap<String, String>, caches: LocalCaches) -> Result<BuildResult, Error> {
    let mut result = result_of(response);
    result.warnings.extend(caches.warnings);
    if let Some(manifest) = &result.cache_manifest {
        for (dir, tag) in &caches.tags {
            kiln_oci::layout::put_tagged(dir, manifest, tag).map_err(|source| Error::CacheDir {
                dir: dir.clone(),
                source,
            })?;
        }
    }
    Ok(result)
}

/// The frontend attributes of a Dockerfile build, as buildx sets them.
pub(crate) fn frontend_attrs(request: &BuildRequest) -> Result<HashMap<String, String>, Error> {
    let mut attrs = HashMap::new();
    // A path inside a context the daemon fetches is sent whole.
    let filename = match &request.context_url {
        Some(_) if request.dockerfile.is_relative() => {
            request.dockerfile.to_string_lossy().into_owned()
        }
        _ => request
            .dockerfile
            .file_name()
            .map_or("Dockerfile".into(), |n| n.to_string_lossy().into_owned()),
    };
    attrs.insert("filename".to_owned(), filename);
    for (key, value) in &request.build_args {
        attrs.insert(format!("build-arg:{key}"), value.clone());
    }
    for (key, value) in &request.labels {
        attrs.insert(format!("label:{key}"), value.clone());
    }
    if let Some(target) = &request.target {
        attrs.insert("target".to_owned(), target.clone());
    }
    if !request.platforms.is_empty() {
        let platforms: Vec<String> = request.platforms.iter().map(ToString::to_string).collect();
        attrs.insert("platform".to_owned(), platforms.join(","));
    }
    if request.no_cache {
        attrs.insert("no-cache".to_owned(), String::new());
    } else if !request.no_cache_filter.is_empty() {
        attrs.insert("no-cache".to_owned(), request.no_cache_filter.join(","));
    }
    if request.pull {
        attrs.insert("image-resolve-mode".to_owned(), "pull".to_owned());
    }
    let run = &request.run;
    if let Some(network) = run.network.as_deref().filter(|n| *n != "default") {
        attrs.insert("force-network-mode".to_owned(), network.to_owned());
    }
    if !run.extra_hosts.is_empty() {
        let hosts: Vec<String> = run
            .extra_hosts
            .iter()
            .map(|(name, address)| format!("{name}={address}"))
            .collect();
        attrs.insert("add-hosts".to_owned(), hosts.join(","));
    }
    if !run.ulimits.is_empty() {
        let limits: Vec<String> = run
            .ulimits
            .iter()
            .map(|(name, soft, hard)| format!("{name}={soft}:{hard}"))
            .collect();
        attrs.insert("ulimit".to_owned(), limits.join(","));
    }
    if run.shm_size > 0 {
        attrs.insert("shm-size".to_owned(), run.shm_size.to_string());
    }
    if let Some(parent) = &run.cgroup_parent {
        attrs.insert("cgroup-parent".to_owned(), parent.clone());
    }
    for (name, context) in &request.named_contexts {
        let value = match context {
            BuildContext::Image(reference) => format!("docker-image://{reference}"),
            BuildContext::Dir(_) => format!("local:{name}"),
            BuildContext::Http(url) => url.clone(),
            BuildContext::Git { url, reference } => format!("{url}#{reference}"),
            BuildContext::OciLayout { path, selector } => lent_layout(name, path, selector)?.0,
            // Solved first, and sent as a frontend input (see `frontend_solve`).
            BuildContext::Build(_) => continue,
            BuildContext::Definition { .. } => {
                return Err(Error::Unsupported(format!(
                    "--build-context {name}: a definition is not sent as a named context by this client"
                )));
            }
        };
        attrs.insert(format!("context:{name}"), value);
    }
    Ok(attrs)
}

/// An OCI layout named context as buildx lends one: the attribute's value
/// (`oci-layout://STORE[:TAG]@DIGEST`, the digest resolved here) and the content
/// store's id (`oci:STORE`), which the session serves from the layout directory.
fn lent_layout(
    name: &str,
    path: &std::path::Path,
    selector: &str,
) -> Result<(String, String), Error> {
    let unreadable = |what: String| {
        Error::Unsupported(format!(
            "--build-context {name}: the OCI layout {}: {what}",
            path.display()
        ))
    };
    let (tag, digest) = if selector.starts_with("sha256:") {
        (String::new(), selector.to_owned())
    } else {
        let index = kiln_oci::layout::read_index(path)
            .map_err(|e| unreadable(e.to_string()))?
            .ok_or_else(|| unreadable("no index.json".to_owned()))?;
        // As the embedded engine reads one: the tagged image, else the first.
        let entry = kiln_oci::layout::select(&index, selector)
            .ok_or_else(|| unreadable(format!("no image tagged {selector:?}")))?;
        (selector.to_owned(), entry.digest.clone())
    };
    // A store name that is a valid reference name, the same for the same directory.
    let hash = sha2::Sha256::digest(path.display().to_string().as_bytes());
    let store: String = hash.iter().take(12).map(|b| format!("{b:02x}")).collect();
    let tag = if tag.is_empty() {
        tag
    } else {
        format!(":{tag}")
    };
    Ok((
        format!("oci-layout://{store}{tag}@{digest}"),
        format!("oci:{store}"),
    ))
}

/// The request's exporters as a daemon takes them, and where each result goes here.
fn exporters(
    exports: &[Export],
) -> Result<(Vec<control::Exporter>, BTreeMap<usize, OutputTarget>), Error> {
    let mut exporters = Vec::new();
    let mut targets = BTreeMap::new();
    for (index, export) in exports.iter().enumerate() {
        let mut attrs = export.attrs.clone();
        let dest = attrs.remove("dest");
        let stdout = dest.as_deref().is_none_or(|d| d == "-");
        match export.kind.as_str() {
            "local" => {
                let dest = dest.ok_or_else(|| {
                    Error::Unsupported("dest is required for local exporter".to_owned())
                })?;
                targets.insert(index, OutputTarget::Dir(dest.into()));
            }
            "tar" | "oci" | "docker" => {
                if attrs.get("tar").is_some_and(|t| t == "false") {
                    return Err(Error::Unsupported(format!(
                        "{} with tar=false: writing an OCI layout directory from a remote builder is not supported yet",
                        export.kind
                    )));
                }
                let target = match dest {
                    Some(dest) if !stdout => OutputTarget::File(dest.into()),
                    _ => OutputTarget::Stdout,
                };
                targets.insert(index, target);
            }
            // Not an exporter: a build that opts out of any (as buildx drops it).
            "cacheonly" => continue,
            _ => {}
        }
        exporters.push(control::Exporter {
            r#type: export.kind.clone(),
            attrs: attrs.into_iter().collect(),
        });
    }
    Ok((exporters, targets))
}

/// BuildKit's status updates as the engine's progress events: a vertex is announced
/// when it starts (or is found cached) and ends once.
#[derive(Default)]
struct StatusEvents {
    started: HashMap<String, SystemTime>,
    ended: std::collections::HashSet<String>,
}

fn time_of(timestamp: &Option<crate::proto::google::protobuf::Timestamp>) -> Option<SystemTime> {
    timestamp.as_ref().map(|t| {
        SystemTime::UNIX_EPOCH + Duration::new(t.seconds.max(0) as u64, t.nanos.max(0) as u32)
    })
}

impl StatusEvents {
    fn events(&mut self, update: control::StatusResponse) -> Vec<Event> {
        let mut events = Vec::new();
        for vertex in update.vertexes {
            let digest = vertex.digest.clone();
            if self.ended.contains(&digest) {
                continue;
            }
            if vertex.cached {
                self.ended.insert(digest.clone());
                events.push(Event::Cached {
                    digest,
                    name: vertex.name,
                });
                continue;
            }
            let Some(started) = time_of(&vertex.started) else {
                continue;
            };
            if !self.started.contains_key(&digest) {
                self.started.insert(digest.clone(), started);
                events.push(Event::Started {
                    digest: digest.clone(),
                    name: vertex.name.clone(),
                });
            }
            if let Some(completed) = time_of(&vertex.completed) {
                self.ended.insert(digest.clone());
                let duration = completed.duration_since(started).unwrap_or_default();
                events.push(if vertex.error.is_empty() {
                    Event::Done { digest, duration }
                } else {
                    Event::Failed {
                        digest,
                        error: vertex.error,
                        duration,
                    }
                });
            }
        }
        for log in update.logs {
            events.push(Event::Log {
                digest: log.vertex,
                data: log.msg,
            });
        }
        events
    }
}

/// What the exporters answered, as a build's result.
fn result_of(response: &HashMap<String, String>) -> BuildResult {
    use base64::Engine as _;
    BuildResult {
        manifest_digest: response.get("containerimage.digest").cloned(),
        config_digest: response.get("containerimage.config.digest").cloned(),
        manifest: response
            .get("containerimage.descriptor")
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            .and_then(|json| serde_json::from_slice(&json).ok()),
        image_names: response
            .get("image.name")
            .map(|names| names.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
        cache_manifest: response
            .get("cache.manifest")
            .and_then(|json| serde_json::from_str(json).ok()),
        ..BuildResult::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_caches_are_lent_and_an_import_is_named_by_its_tags_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let manifest = kiln_oci::Descriptor {
            media_type: kiln_oci::media_type::OCI_MANIFEST.to_owned(),
            digest: format!("sha256:{}", "b".repeat(64)),
            size: 3,
            ..kiln_oci::Descriptor::default()
        };
        fs_err::create_dir_all(&cache).unwrap();
        kiln_oci::layout::put_tagged(&cache, &manifest, "v1").unwrap();
        let entry = |kind: &str, attrs: &[(&str, String)]| crate::build::CacheOptionsEntry {
            kind: kind.to_owned(),
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        };
        let src = cache.display().to_string();
        let out = dir.path().join("out").display().to_string();
        let (options, caches) = cache_options(
            &[
                entry("local", &[("src", src.clone()), ("tag", "v1".to_owned())]),
                entry("local", &[("src", src.clone())]),
            ],
            &[entry("local", &[("dest", out.clone())])],
        )
        .unwrap();
        // The tagged import goes with its digest; the untagged one is left out, said.
        assert_eq!(options.imports.len(), 1);
        assert_eq!(options.imports[0].attrs["digest"], manifest.digest);
        assert_eq!(caches.warnings.len(), 1, "{:?}", caches.warnings);
        assert!(caches.warnings[0].contains("no cache tagged latest"));
        assert_eq!(
            caches.stores.keys().collect::<Vec<_>>(),
            [&format!("local:{src}"), &format!("local:{out}")]
        );
        assert_eq!(caches.tags, [(PathBuf::from(&out), "latest".to_owned())]);
        let json: serde_json::Value = serde_json::from_str(&cache_imports_json(&options)).unwrap();
        assert_eq!(json[0]["Type"], "local");
        assert_eq!(json[0]["Attrs"]["digest"], manifest.digest.as_str());

        // The daemon's answer tags the export's directory.
        let response = HashMap::from([(
            "cache.manifest".to_owned(),
            serde_json::to_string(&manifest).unwrap(),
        )]);
        let result = finish(&response, caches).unwrap();
        assert_eq!(result.cache_manifest.as_ref(), Some(&manifest));
        assert_eq!(
            kiln_oci::layout::tagged(std::path::Path::new(&out), "latest")
                .unwrap()
                .map(|d| d.digest),
            Some(manifest.digest.clone())
        );
    }

    /// A Dockerfile inside a context the daemon fetches is named by its whole path; a
    /// file of the client's by its name.
    #[test]
    fn a_dockerfile_of_a_fetched_context_is_named_by_its_path() {
        let inside = BuildRequest {
            dockerfile: "build/app.Dockerfile".into(),
            context_url: Some("https://example.invalid/repo.git#main".to_owned()),
            ..BuildRequest::default()
        };
        assert_eq!(
            frontend_attrs(&inside).unwrap()["filename"],
            "build/app.Dockerfile"
        );
        let own = BuildRequest {
            dockerfile: "/home/me/app.Dockerfile".into(),
            ..inside
        };
        assert_eq!(frontend_attrs(&own).unwrap()["filename"], "app.Dockerfile");
    }

    #[test]
    fn a_request_as_frontend_attributes() {
        let request = BuildRequest {
            dockerfile: "/ctx/app.Dockerfile".into(),
            build_args: BTreeMap::from([("A".to_owned(), "1".to_owned())]),
            target: Some("final".to_owned()),
            no_cache_filter: vec!["deps".to_owned()],
            named_contexts: BTreeMap::from([(
                "base".to_owned(),
                BuildContext::Image("busybox".to_owned()),
            )]),
            ..BuildRequest::default()
        };
        let attrs = frontend_attrs(&request).unwrap();
        assert_eq!(attrs["filename"], "app.Dockerfile");
        assert_eq!(attrs["build-arg:A"], "1");
        assert_eq!(attrs["target"], "final");
        assert_eq!(attrs["no-cache"], "deps");
        assert_eq!(attrs["context:base"], "docker-image://busybox");
    }

    /// A build on another (Bake's `target:` link): the other is an input whose
    /// directories a session of its own lends, under the usual names.
    #[test]
    fn a_linked_build_is_an_input_with_a_session_of_its_own() {
        let base = BuildRequest {
            context: "/work/base".into(),
            dockerfile: "/work/base/Dockerfile".into(),
            named_contexts: BTreeMap::from([(
                "files".to_owned(),
                BuildContext::Dir("/work/base-files".into()),
            )]),
            secrets: BTreeMap::from([("tok".to_owned(), b"s3cret".to_vec())]),
            entitlements: vec!["network.host".to_owned()],
            ..BuildRequest::default()
        };
        let app = BuildRequest {
            context: "/work/app".into(),
            dockerfile: "/work/app/Dockerfile".into(),
            named_contexts: BTreeMap::from([
                ("base".to_owned(), BuildContext::Build(Box::new(base))),
                ("files".to_owned(), BuildContext::Dir("/work/files".into())),
            ]),
            ..BuildRequest::default()
        };
        let mut lent = Attachables::default();
        let root = frontend_solve(&app, &mut lent).unwrap();
        assert!(root.own_session.is_none());
        assert!(!root.attrs.contains_key("context:base"));
        assert_eq!(root.attrs["context:files"], "local:files");
        let names: Vec<&str> = lent.dirs.keys().map(String::as_str).collect();
        assert_eq!(names, ["context", "dockerfile", "files"]);
        assert_eq!(lent.secrets["tok"], b"s3cret");
        let [(name, input)] = root.inputs.as_slice() else {
            panic!("{:?}", root.inputs)
        };
        assert_eq!(name, "base");
        let (dirs, _) = input.own_session.as_ref().unwrap();
        assert_eq!(dirs["context"], PathBuf::from("/work/base"));
        assert_eq!(dirs["files"], PathBuf::from("/work/base-files"));
        assert_eq!(entitlements(&app), ["network.host"]);
    }

    #[test]
    fn status_updates_become_events_once() {
        use crate::proto::google::protobuf::Timestamp;
        let at = |s| {
            Some(Timestamp {
                seconds: s,
                nanos: 0,
            })
        };
        let vertex = |started, completed| control::Vertex {
            digest: "sha256:a".to_owned(),
            name: "[1/2] RUN x".to_owned(),
            started,
            completed,
            ..control::Vertex::default()
        };
        let mut events = StatusEvents::default();
        let update = |v| control::StatusResponse {
            vertexes: vec![v],
            ..control::StatusResponse::default()
        };
        assert!(matches!(
            events.events(update(vertex(at(1), None)))[..],
            [Event::Started { .. }]
        ));
        assert!(events.events(update(vertex(at(1), None))).is_empty());
        assert!(matches!(
            events.events(update(vertex(at(1), at(3))))[..],
            [Event::Done { duration, .. }] if duration == Duration::from_secs(2)
        ));
        assert!(events.events(update(vertex(at(1), at(3)))).is_empty());
    }
}
