//! BuildKit's `LLBBridge`, the gateway a client-side frontend drives a build through
//! (what `buildctl build` and buildx do): the client opens a solve with no frontend
//! (`Control.Solve`), then asks this service, naming that solve in its metadata, to
//! solve frontends or definitions into refs, reads files of refs, and returns the
//! result, which the waiting `Control.Solve` exports.

mod resolve;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_api::build::CacheOptionsEntry;
use kiln_api::proto::moby::buildkit::v1::apicaps::ApiCap;
use kiln_api::proto::moby::buildkit::v1::frontend as gw;
use kiln_api::session::headers::BUILD_ID;
use kiln_engine::Solved;
use tokio::sync::{Notify, watch};
use tonic::{Request, Response, Status};

use crate::control::{Daemon, ServerStream, error_chain};
use crate::jobs::Job;
use crate::session::Session;
use crate::subrequests;

/// One client-driven build: its session, its progress, the refs it solved, and its
/// returned result.
pub(crate) struct Build {
    pub(crate) session: Option<Arc<Session>>,
    pub(crate) job: Arc<Job>,
    /// Set when the client's `Control.Solve` ends (it went away, or the build ended).
    pub(crate) cancelled: Arc<AtomicBool>,
    /// Whether the solve exports its result anywhere.
    exports: bool,
    /// What the client's `Control.Solve` was granted (`--allow`); its gateway solves
    /// run with the same.
    entitlements: Vec<String>,
    /// The client's cache imports and exports (`Control.Solve`'s), for every solve.
    cache: (Vec<CacheOptionsEntry>, Vec<CacheOptionsEntry>),
    /// The frontend inputs `Control.Solve` came with (`Inputs` answers them).
    inputs: HashMap<String, kiln_api::proto::pb::Definition>,
    refs: Mutex<HashMap<String, Arc<Solved>>>,
    next_ref: std::sync::atomic::AtomicU64,
    returned: watch::Sender<Option<Result<Solved, Status>>>,
}

impl Build {
    pub(crate) fn new(
        session: Option<Arc<Session>>,
        job: Arc<Job>,
        cancelled: Arc<AtomicBool>,
        exports: bool,
        entitlements: Vec<String>,
        cache: (Vec<CacheOptionsEntry>, Vec<CacheOptionsEntry>),
        inputs: HashMap<String, kiln_api::proto::pb::Definition>,
    ) -> Arc<Self> {
        Arc::new(Self {
            session,
            job,
            cancelled,
            exports,
            entitlements,
            cache,
            inputs,
            refs: Mutex::new(HashMap::new()),
            next_ref: std::sync::atomic::AtomicU64::new(1),
            returned: watch::channel(None).0,
        })
    }

    /// The result the client returns (or the error it returns instead).
    pub(crate) async fn returned(&self) -> Result<Solved, Status> {
        let mut returned = self.returned.subscribe();
        loop {
            if let Some(result) = returned.borrow_and_update().clone() {
                return result;
            }
            if returned.changed().await.is_err() {
                return Err(Status::cancelled(
                    "the build ended before its result was returned",
                ));
            }
        }
    }

    fn add_ref(&self, solved: Solved) -> String {
        let id = format!(
            "kiln-ref-{}",
            self.next_ref
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        self.refs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), Arc::new(solved));
        id
    }

    fn get_ref(&self, id: &str) -> Result<Arc<Solved>, Status> {
        self.refs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no result {id:?} in this build")))
    }
}

/// The client-driven builds waiting for their gateway calls, by solve id.
#[derive(Default)]
pub(crate) struct Gateways {
    builds: Mutex<HashMap<String, Arc<Build>>>,
    added: Notify,
}

/// How long a gateway call waits for its solve to be registered.
const REGISTER_WAIT: Duration = Duration::from_secs(5);

impl Gateways {
    pub(crate) fn register(&self, id: &str, build: Arc<Build>) {
        self.lock().insert(id.to_owned(), build);
        self.added.notify_waiters();
    }

    pub(crate) fn unregister(&self, id: &str) {
        self.lock().remove(id);
    }

    async fn get(&self, id: &str) -> Result<Arc<Build>, Status> {
        let deadline = tokio::time::Instant::now() + REGISTER_WAIT;
        loop {
            let added = self.added.notified();
            if let Some(build) = self.lock().get(id) {
                return Ok(Arc::clone(build));
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return Err(Status::not_found(format!("no such job {id}")));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Build>>> {
        self.builds.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every capability of BuildKit v0.24's gateway API and LLB, as buildkitd lists them.
const FRONTEND_CAPS: &[&str] = &[
    "solve.base",
    "solve.inlinereturn",
    "resolveimage",
    "resolveimage.resolvemode",
    "readfile",
    "return",
    "returnmap",
    "readdir",
    "statfile",
    "importcaches",
    "proto.refarray",
    "reference.output",
    "frontend.inputs",
    "gateway.solve.metadata",
    "gateway.exec",
    "gateway.exec.extrahosts",
    "gateway.exec.secretenv",
    "gateway.exec.signals",
    "frontend.caps",
    "gateway.solve.evaluate",
    "gateway.evaluate",
    "gateway.warnings",
    "reference.attestations",
    "source.metaresolver",
];
const LLB_CAPS: &[&str] = &[
    "source.image",
    "source.image.resolvemode",
    "source.image.layerlimit",
    "source.local",
    "source.local.unique",
    "source.local.sessionid",
    "source.local.includepatterns",
    "source.local.followpaths",
    "source.local.excludepatterns",
    "source.local.sharedkeyhint",
    "source.local.differ",
    "source.local.metadatatransfer",
    "source.git",
    "source.git.keepgitdir",
    "source.git.fullurl",
    "source.git.httpauth",
    "source.git.knownsshhosts",
    "source.git.mountsshsock",
    "source.git.subdir",
    "source.git.checksum",
    "source.git.skipsubmodules",
    "source.http",
    "source.http.auth",
    "source.http.checksum",
    "source.http.perm",
    "soruce.http.uidgid",
    "source.http.header",
    "source.ocilayout",
    "source.buildop.llbfilename",
    "exec.meta.base",
    "exec.meta.cgroup.parent",
    "exec.meta.network",
    "exec.meta.proxyenv",
    "exec.meta.security",
    "exec.meta.security.devices.v1",
    "exec.meta.setsdefaultpath",
    "exec.meta.ulimit",
    "exec.meta.cdi",
    "exec.meta.removemountstubs.recursive",
    "exec.mount.bind",
    "exec.mount.bind.readwrite-nooutput",
    "exec.mount.cache",
    "exec.mount.cache.sharing",
    "exec.mount.selector",
    "exec.mount.tmpfs",
    "exec.mount.tmpfs.size",
    "exec.mount.secret",
    "exec.mount.ssh",
    "exec.mount.cache.content",
    "exec.cgroup",
    "exec.secretenv",
    "exec.validexitcode",
    "file.base",
    "file.rm.wildcard",
    "file.copy.includeexcludepatterns",
    "file.rm.nofollowsymlink",
    "file.copy.alwaysreplaceexistingdestpaths",
    "file.copy.modestring",
    "file.symlink.create",
    "constraints",
    "platform",
    "meta.ignorecache",
    "meta.description",
    "meta.exportcache",
    "cache.gha",
    "cache.s3",
    "cache.azblob",
    "mergeop",
    "diffop",
    "exporter.image.annotations",
    "exporter.image.attestations",
    "exporter.sourcedateepoch",
    "exporter.multiple",
    "exporter.session",
    "source.policy",
    "gc.freespacefilter",
    "history.filter",
];

fn caps(ids: &[&str]) -> Vec<ApiCap> {
    ids.iter()
        .map(|id| ApiCap {
            id: (*id).to_owned(),
            enabled: true,
            ..ApiCap::default()
        })
        .collect()
}

/// The `moby.buildkit.v1.frontend.LLBBridge` service.
pub(crate) struct LlbBridgeService {
    daemon: Arc<Daemon>,
}

impl LlbBridgeService {
    pub(crate) fn new(daemon: Arc<Daemon>) -> Self {
        Self { daemon }
    }

    async fn build<T>(&self, request: &Request<T>) -> Result<Arc<Build>, Status> {
        let id = request
            .metadata()
            .get(BUILD_ID)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Status::invalid_argument("no buildid found in context"))?;
        self.daemon.gateways.get(id).await
    }
}

const IMAGE_CONFIG_KEY: &str = "containerimage.config";
/// `ResolverType` of a `ResolveImageConfig` request naming an OCI layout in the session.
const OCI_LAYOUT_RESOLVER: i32 = 1;

#[tonic::async_trait]
impl gw::llb_bridge_server::LlbBridge for LlbBridgeService {
    async fn resolve_image_config(
        &self,
        request: Request<gw::ResolveImageConfigRequest>,
    ) -> Result<Response<gw::ResolveImageConfigResponse>, Status> {
        let build = self.build(&request).await?;
        let request = request.into_inner();
        if request.resolver_type == OCI_LAYOUT_RESOLVER {
            return Err(Status::unimplemented(format!(
                "resolving {}: kilnd does not read OCI layouts through the session yet",
                request.r#ref
            )));
        }
        let options = resolve::ResolveOptions::new(
            request.platform.as_ref(),
            &request.resolve_mode,
            request.log_name,
        )?;
        let hooks =
            crate::control::session_hooks(&self.daemon, build.session.as_ref(), &build.cancelled);
        let resolved =
            resolve::image(&self.daemon, &build.job, hooks, &request.r#ref, options).await?;
        Ok(Response::new(gw::ResolveImageConfigResponse {
            digest: resolved.digest,
            config: resolved.config,
            r#ref: resolved.name,
        }))
    }

    async fn resolve_source_meta(
        &self,
        request: Request<gw::ResolveSourceMetaRequest>,
    ) -> Result<Response<gw::ResolveSourceMetaResponse>, Status> {
        let build = self.build(&request).await?;
        let hooks =
            crate::control::session_hooks(&self.daemon, build.session.as_ref(), &build.cancelled);
        let response =
            resolve::source_meta(&self.daemon, &build.job, hooks, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    async fn solve(
        &self,
        request: Request<gw::SolveRequest>,
    ) -> Result<Response<gw::SolveResponse>, Status> {
        let build = self.build(&request).await?;
        let request = request.into_inner();
        match request.frontend.as_str() {
            "dockerfile.v0" => {
                let session = build.session.clone().ok_or_else(|| {
                    Status::invalid_argument(
                        "the dockerfile.v0 frontend reads its files through a session",
                    )
                })?;
                let attrs = request.frontend_opt.clone();
                subrequests::check_frontend_caps(&attrs)?;
                let (mut build_request, hooks) = crate::control::dockerfile_request(
                    &self.daemon,
                    &attrs,
                    &request.frontend_inputs,
                    &build.entitlements,
                    &session,
                    &build.job,
                    &build.cancelled,
                )
                .await?;
                build_request.outputs.clear();
                (build_request.cache_imports, build_request.cache_exports) = build.cache.clone();
                if let Some(request_id) = attrs.get(subrequests::REQUEST_ID) {
                    let metadata =
                        answer_subrequest(&self.daemon, request_id, build_request).await?;
                    return Ok(Response::new(metadata_response(metadata)));
                }
                let job = Arc::clone(&build.job);
                let solved = self
                    .daemon
                    .blocking(move |engine| {
                        engine.solve_dockerfile(&build_request, &hooks, &move |event| {
                            job.event(event)
                        })
                    })
                    .await?;
                let config = solved.image_config();
                let definition = solved.definition().to_vec();
                let id = build.add_ref(solved);
                Ok(Response::new(solve_response(
                    id,
                    &definition,
                    HashMap::from([(IMAGE_CONFIG_KEY.to_owned(), config)]),
                )))
            }
            "" => {
                let Some(definition) = &request.definition else {
                    // Nothing to solve: an empty result.
                    let id = build.add_ref(self.daemon.engine.empty_result());
                    return Ok(Response::new(solve_response(id, &[], HashMap::new())));
                };
                let (mut solve, hooks) = crate::control::definition_request(
                    &self.daemon,
                    definition,
                    &build.entitlements,
                    build.session.as_ref(),
                    &build.job,
                    &build.cancelled,
                )
                .await?;
                (solve.cache_imports, solve.cache_exports) = build.cache.clone();
                let job = Arc::clone(&build.job);
                let solved = self
                    .daemon
                    .blocking(move |engine| {
                        engine.solve_definition(&solve, &hooks, &move |event| job.event(event))
                    })
                    .await?;
                let definition = solved.definition().to_vec();
                let id = build.add_ref(solved);
                Ok(Response::new(solve_response(
                    id,
                    &definition,
                    HashMap::new(),
                )))
            }
            other => Err(Status::invalid_argument(format!(
                "frontend {other:?} is not available: kilnd runs dockerfile.v0"
            ))),
        }
    }

    async fn read_file(
        &self,
        request: Request<gw::ReadFileRequest>,
    ) -> Result<Response<gw::ReadFileResponse>, Status> {
        let build = self.build(&request).await?;
        let request = request.into_inner();
        let solved = build.get_ref(&request.r#ref)?;
        let range = request
            .range
            .map(|r| (r.offset.max(0) as u64, r.length.max(0) as u64));
        let path = request.file_path.clone();
        let data = self
            .daemon
            .blocking(move |engine| engine.read_file(&solved, &path, range))
            .await?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "open {}: no such file or directory",
                    request.file_path
                ))
            })?;
        Ok(Response::new(gw::ReadFileResponse { data }))
    }

    async fn read_dir(
        &self,
        _request: Request<gw::ReadDirRequest>,
    ) -> Result<Response<gw::ReadDirResponse>, Status> {
        Err(Status::unimplemented(
            "kilnd does not read directories of results yet",
        ))
    }

    async fn stat_file(
        &self,
        _request: Request<gw::StatFileRequest>,
    ) -> Result<Response<gw::StatFileResponse>, Status> {
        Err(Status::unimplemented(
            "kilnd does not stat files of results yet",
        ))
    }

    async fn evaluate(
        &self,
        request: Request<gw::EvaluateRequest>,
    ) -> Result<Response<gw::EvaluateResponse>, Status> {
        // Results are solved when they are made: there is nothing left to evaluate.
        let _ = self.build(&request).await?;
        Ok(Response::new(gw::EvaluateResponse {}))
    }

    async fn ping(
        &self,
        request: Request<gw::PingRequest>,
    ) -> Result<Response<gw::PongResponse>, Status> {
        let _ = self.build(&request).await?;
        let workers = crate::control::worker_records(&self.daemon);
        Ok(Response::new(gw::PongResponse {
            frontend_api_caps: caps(FRONTEND_CAPS),
            llb_caps: caps(LLB_CAPS),
            workers,
        }))
    }

    async fn r#return(
        &self,
        request: Request<gw::ReturnRequest>,
    ) -> Result<Response<gw::ReturnResponse>, Status> {
        let build = self.build(&request).await?;
        let request = request.into_inner();
        let outcome = match (request.error, request.result) {
            (Some(error), _) if error.code != 0 => Err(Status::new(
                tonic::Code::from_i32(error.code),
                error.message,
            )),
            (_, Some(result)) => returned_result(&self.daemon, &build, result),
            (_, None) => Err(Status::invalid_argument("the client returned no result")),
        };
        let _ = build.returned.send(Some(outcome));
        Ok(Response::new(gw::ReturnResponse {}))
    }

    async fn inputs(
        &self,
        request: Request<gw::InputsRequest>,
    ) -> Result<Response<gw::InputsResponse>, Status> {
        let build = self.build(&request).await?;
        Ok(Response::new(gw::InputsResponse {
            definitions: build.inputs.clone(),
        }))
    }

    async fn new_container(
        &self,
        _request: Request<gw::NewContainerRequest>,
    ) -> Result<Response<gw::NewContainerResponse>, Status> {
        Err(Status::unimplemented(
            "kilnd does not run gateway containers yet",
        ))
    }

    async fn release_container(
        &self,
        _request: Request<gw::ReleaseContainerRequest>,
    ) -> Result<Response<gw::ReleaseContainerResponse>, Status> {
        Err(Status::unimplemented(
            "kilnd does not run gateway containers yet",
        ))
    }

    type ExecProcessStream = ServerStream<gw::ExecMessage>;

    async fn exec_process(
        &self,
        _request: Request<tonic::Streaming<gw::ExecMessage>>,
    ) -> Result<Response<Self::ExecProcessStream>, Status> {
        Err(Status::unimplemented(
            "kilnd does not run gateway containers yet",
        ))
    }

    async fn read_file_container(
        &self,
        _request: Request<gw::ReadFileRequest>,
    ) -> Result<Response<gw::ReadFileResponse>, Status> {
        Err(Status::unimplemented(
            "kilnd does not run gateway containers yet",
        ))
    }

    async fn read_dir_container(
        &self,
        _request: Request<gw::ReadDirRequest>,
    ) -> Result<Response<gw::ReadDirResponse>, Status> {
        Err(Status::unimplemented(
            "kilnd does not run gateway containers yet",
        ))
    }

    async fn stat_file_container(
        &self,
        _request: Request<gw::StatFileRequest>,
    ) -> Result<Response<gw::StatFileResponse>, Status> {
        Err(Status::unimplemented(
            "kilnd does not run gateway containers yet",
        ))
    }

    async fn warn(
        &self,
        request: Request<gw::WarnRequest>,
    ) -> Result<Response<gw::WarnResponse>, Status> {
        let build = self.build(&request).await?;
        let warning = request.into_inner();
        build.job.warning(warning);
        Ok(Response::new(gw::WarnResponse {}))
    }
}

/// Answers a Dockerfile subrequest (`frontend.lint`, `frontend.outline`, …) with its
/// result's metadata.
pub(crate) async fn answer_subrequest(
    daemon: &Arc<Daemon>,
    request_id: &str,
    request: kiln_api::build::BuildRequest,
) -> Result<HashMap<String, Vec<u8>>, Status> {
    let id = request_id.to_owned();
    // The unknown subrequest keeps its typed error; any other error is the engine's.
    match daemon
        .blocking(move |engine| Ok(engine.subrequest(&request, &id)))
        .await?
    {
        Ok(metadata) => Ok(metadata),
        Err(kiln_engine::Error::UnknownSubrequest(name)) => Err(subrequests::unsupported(&name)),
        Err(error) => Err(Status::unknown(error_chain(&error))),
    }
}

/// A solve's answer with metadata and no ref (a subrequest's).
fn metadata_response(metadata: HashMap<String, Vec<u8>>) -> gw::SolveResponse {
    #[allow(deprecated)]
    gw::SolveResponse {
        r#ref: String::new(),
        result: Some(gw::Result {
            metadata,
            ..gw::Result::default()
        }),
    }
}

/// A solve's answer: one ref with the definition it was solved from (which a client
/// may hand back as a frontend input, as buildx does for Bake's `target:` links), and
/// the frontend's metadata.
fn solve_response(
    id: String,
    definition: &[u8],
    metadata: HashMap<String, Vec<u8>>,
) -> gw::SolveResponse {
    use prost::Message as _;
    let def = (!definition.is_empty())
        .then(|| kiln_api::proto::pb::Definition::decode(definition).ok())
        .flatten();
    #[allow(deprecated)]
    gw::SolveResponse {
        r#ref: String::new(),
        result: Some(gw::Result {
            metadata,
            attestations: HashMap::new(),
            result: Some(gw::result::Result::Ref(gw::Ref { id, def })),
        }),
    }
}

/// The ref a client returned, with the image config it returned with it; no ref (a
/// client that only wanted the gateway's options) is an empty result.
fn returned_result(daemon: &Daemon, build: &Build, result: gw::Result) -> Result<Solved, Status> {
    let (id, config_key) = returned_ref(&result, build.exports)?;
    let solved = if id.is_empty() {
        daemon.engine.empty_result()
    } else {
        build.get_ref(&id)?.as_ref().clone()
    };
    match result.metadata.get(&config_key) {
        Some(config) => solved
            .with_image_config(config)
            .map_err(|e| Status::invalid_argument(error_chain(&e))),
        None => Ok(solved),
    }
}

/// Metadata key of the platforms a result keyed by platform holds, in order.
const PLATFORMS_KEY: &str = "refs.platforms";

/// The id of the ref to export and the metadata key of its image config. A result
/// keyed by platform (BuildKit's Dockerfile frontend returns one when several
/// platforms, or `multi-platform`, are asked for) is taken when it holds one
/// platform; with several, only a build that exports nothing can take it, since
/// kilnd does not make multi-platform images yet.
fn returned_ref(result: &gw::Result, exports: bool) -> Result<(String, String), Status> {
    #[allow(deprecated)]
    let refs = match &result.result {
        Some(gw::result::Result::Ref(reference)) => {
            return Ok((reference.id.clone(), IMAGE_CONFIG_KEY.to_owned()));
        }
        Some(gw::result::Result::RefDeprecated(id)) => {
            return Ok((id.clone(), IMAGE_CONFIG_KEY.to_owned()));
        }
        None => return Ok((String::new(), IMAGE_CONFIG_KEY.to_owned())),
        Some(gw::result::Result::Refs(map)) => map
            .refs
            .iter()
            .map(|(platform, r)| (platform.clone(), r.id.clone()))
            .collect::<HashMap<_, _>>(),
        Some(gw::result::Result::RefsDeprecated(map)) => map.refs.clone(),
    };
    let platforms = platform_order(result, &refs)?;
    if platforms.len() > 1 && exports {
        return Err(Status::unimplemented(format!(
            "kilnd does not export results of several platforms yet ({})",
            platforms.join(", ")
        )));
    }
    let platform = platforms
        .first()
        .ok_or_else(|| Status::invalid_argument("the client returned an empty map of refs"))?;
    let id = refs.get(platform).cloned().ok_or_else(|| {
        Status::invalid_argument(format!("no ref returned for platform {platform}"))
    })?;
    Ok((id, format!("{IMAGE_CONFIG_KEY}/{platform}")))
}

/// The platform keys of a result keyed by platform, in the order its `refs.platforms`
/// metadata lists them (which BuildKit's exporters require).
fn platform_order(
    result: &gw::Result,
    refs: &HashMap<String, String>,
) -> Result<Vec<String>, Status> {
    let listed = result.metadata.get(PLATFORMS_KEY).ok_or_else(|| {
        Status::invalid_argument("unable to export multiple refs, missing platforms mapping")
    })?;
    let listed: serde_json::Value = serde_json::from_slice(listed)
        .map_err(|e| Status::invalid_argument(format!("{PLATFORMS_KEY}: {e}")))?;
    let ids: Vec<String> = listed["Platforms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["ID"].as_str().map(str::to_owned))
        .collect();
    if ids.is_empty() {
        return Err(Status::invalid_argument(
            "invalid empty platforms index for exporter",
        ));
    }
    Ok(ids.into_iter().filter(|id| refs.contains_key(id)).collect())
}
