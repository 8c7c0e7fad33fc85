//! `Control.Solve` and `Control.Status`: a build a client asks for, with the files it
//! lends through its session, and the progress it follows.
//!
//! The client's directories are kept in step in the state directory (one per project,
//! by the session's shared key, and local name), so a rebuild transfers only what
//! changed and the engine finds unchanged files as it left them. Results for the
//! client are exported to the state directory, then sent through the session.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kiln_api::build::{
    BuildContext, BuildRequest, BuildResult, CacheOptionsEntry, DefinitionRequest, Export,
    RunDefaults,
};
use kiln_api::history::HistoryRecord;
use kiln_api::proto::moby::buildkit::secrets::v1::GetSecretRequest;
use kiln_api::proto::moby::buildkit::secrets::v1::secrets_client::SecretsClient;
use kiln_api::proto::moby::buildkit::v1 as control;
use kiln_api::proto::moby::filesync::v1::CredentialsRequest;
use kiln_api::proto::moby::filesync::v1::auth_client::AuthClient;
use kiln_api::proto::pb::Definition;
use kiln_api::proto::pb::SourceInfo;
use kiln_api::session::filesync::{self, Filter};
use kiln_engine::{
    CheckReport, ClientDirs, Engine, Lender, Listing, Listings, SessionHooks, session_local_name,
};
use sha2::{Digest as _, Sha256};
use tonic::{Response, Status};

use super::{Daemon, ServerStream, error_chain};
use crate::jobs::Job;
use crate::session::Session;
use crate::subrequests::REQUEST_ID;

pub(super) async fn solve(
    daemon: &Arc<Daemon>,
    request: control::SolveRequest,
) -> Result<Response<control::SolveResponse>, Status> {
    let id = request.r#ref.clone();
    let job = daemon.jobs.start(&id);
    let recording = Recording::start(daemon, &job, &request);
    // A client that goes away drops this call: its build is cancelled with it.
    let cancelled = CancelOnDrop::default();
    let result = run(daemon, request, &job, &cancelled.0).await;
    daemon.jobs.end(&id, &job);
    recording.finish(result.as_ref()).await;
    result.map(|exporter_response| {
        Response::new(control::SolveResponse {
            exporter_response: exporter_response.into_iter().collect(),
        })
    })
}

pub(super) async fn status(
    daemon: &Arc<Daemon>,
    request: control::StatusRequest,
) -> Result<Response<ServerStream<control::StatusResponse>>, Status> {
    let job = daemon
        .jobs
        .get(&request.r#ref)
        .await
        .ok_or_else(|| Status::not_found(format!("no build {} is running", request.r#ref)))?;
    let stream = async_stream(job);
    Ok(Response::new(Box::pin(stream)))
}

/// The job's updates as a stream that ends with the solve.
fn async_stream(
    job: Arc<Job>,
) -> impl tokio_stream::Stream<Item = Result<control::StatusResponse, Status>> + Send {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut next = 0;
        loop {
            let (updates, done) = job.updates(next).await;
            next += updates.len();
            for update in updates {
                if sender.send(Ok(update)).await.is_err() {
                    return;
                }
            }
            if done {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// An exporter of the request, with where its result goes.
struct PlannedOutput {
    /// Its index in the request (the client's id for its output).
    index: usize,
    export: Export,
    /// A file or directory in the state directory to send to the client afterwards.
    send: Option<SendTo>,
}

enum SendTo {
    Dir(PathBuf),
    File(PathBuf),
}

/// The request's cache imports and exports (`SolveRequest.Cache`); a gateway build's
/// solves use them too, and the result it returns is exported with them. A `local` cache is
/// a directory of the client's, reached through the session's content store.
pub(crate) fn cache_entries(
    request: &control::SolveRequest,
) -> (Vec<CacheOptionsEntry>, Vec<CacheOptionsEntry>) {
    let convert = |entries: &[control::CacheOptionsEntry]| {
        entries
            .iter()
            .map(|entry| CacheOptionsEntry {
                kind: entry.r#type.clone(),
                attrs: entry.attrs.clone().into_iter().collect(),
            })
            .collect()
    };
    let cache = request.cache.clone().unwrap_or_default();
    (convert(&cache.imports), convert(&cache.exports))
}

/// A build's history record, kept when the build ends however it ends: a client that
/// goes away drops the call, and the build is recorded as cancelled.
struct Recording {
    daemon: Arc<Daemon>,
    job: Arc<Job>,
    record: Option<HistoryRecord>,
}

impl Recording {
    /// Starts the record of a build; an internal one (buildx's probe of the gateway's
    /// options) has none, as in BuildKit.
    fn start(daemon: &Arc<Daemon>, job: &Arc<Job>, request: &control::SolveRequest) -> Self {
        if request.internal {
            return Self {
                daemon: Arc::clone(daemon),
                job: Arc::clone(job),
                record: None,
            };
        }
        let mut record = HistoryRecord::started(
            request.r#ref.clone(),
            &request.frontend,
            request.frontend_attrs.clone().into_iter().collect(),
        );
        record.exporters = request
            .exporters
            .iter()
            .map(|e| (e.r#type.clone(), e.attrs.clone().into_iter().collect()))
            .collect();
        daemon.history.started(&record);
        Self {
            daemon: Arc::clone(daemon),
            job: Arc::clone(job),
            record: Some(record),
        }
    }

    /// The record as the build ended: its steps, and its exporters' answer or error.
    fn complete(
        &mut self,
        outcome: Result<&BTreeMap<String, String>, &Status>,
    ) -> Option<HistoryRecord> {
        let mut record = self.record.take()?;
        record.completed_at = Some(std::time::SystemTime::now());
        record.steps = self.job.steps();
        match outcome {
            Ok(response) => record.exporter_response = response.clone(),
            Err(status) => record.error = Some(status.message().to_owned()),
        }
        Some(record)
    }

    /// Keeps the ended build's record before the client hears the build ended, so
    /// that a history it asks for next has it.
    async fn finish(mut self, outcome: Result<&BTreeMap<String, String>, &Status>) {
        if let Some(record) = self.complete(outcome) {
            keep(&self.daemon, record).await;
        }
    }
}

async fn keep(daemon: &Arc<Daemon>, record: HistoryRecord) {
    let kept = record.clone();
    if let Err(status) = daemon
        .blocking(move |engine| engine.record_history(&kept))
        .await
    {
        eprintln!(
            "kilnd: warning: the history record of build {} was not kept: {}",
            record.id,
            status.message()
        );
    }
    daemon.history.ended(&record);
}

impl Drop for Recording {
    fn drop(&mut self) {
        let cancelled = Status::cancelled("the client went away");
        // (Not when the runtime is gone: the daemon is stopping.)
        if let (Some(record), Ok(runtime)) = (
            self.complete(Err(&cancelled)),
            tokio::runtime::Handle::try_current(),
        ) {
            let daemon = Arc::clone(&self.daemon);
            runtime.spawn(async move { keep(&daemon, record).await });
        }
    }
}

/// Sets its flag when dropped.
#[derive(Default)]
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn run(
    daemon: &Arc<Daemon>,
    request: control::SolveRequest,
    job: &Arc<Job>,
    cancelled: &Arc<AtomicBool>,
) -> Result<BTreeMap<String, String>, Status> {
    let session = match request.session.as_str() {
        "" => None,
        id => Some(daemon.sessions.get(id).await.ok_or_else(|| {
            Status::invalid_argument(format!(
                "session {id} is not open: the client must open it (Control.Session) before solving"
            ))
        })?),
    };
    let exports_dir = daemon.root.join("kilnd/exports").join(hex(&request.r#ref));
    let outputs = plan_outputs(&request, &exports_dir, session.as_deref())?;
    let result = match request.frontend.as_str() {
        "dockerfile.v0" => {
            crate::subrequests::check_frontend_caps(&request.frontend_attrs)?;
            let session = session.clone().ok_or_else(|| {
                Status::invalid_argument(
                    "the dockerfile.v0 frontend reads its files through a session",
                )
            })?;
            match dockerfile_request(
                daemon,
                &request.frontend_attrs,
                &request.frontend_inputs,
                &request.entitlements,
                &session,
                job,
                cancelled,
            )
            .await
            {
                Ok((build, _)) if request.frontend_attrs.contains_key(REQUEST_ID) => {
                    // A subrequest's answer is for gateway clients: here nothing of it
                    // is exported (BuildKit passes on only `frontend.*` metadata).
                    let request_id = &request.frontend_attrs[REQUEST_ID];
                    crate::gateway::answer_subrequest(daemon, request_id, build)
                        .await
                        .map(|_| BuildResult::default())
                }
                Ok((mut build, hooks)) => {
                    build.outputs = outputs.iter().map(|o| o.export.clone()).collect();
                    (build.cache_imports, build.cache_exports) = cache_entries(&request);
                    prepare_exports(&outputs)?;
                    let progress_job = Arc::clone(job);
                    daemon
                        .blocking(move |engine| {
                            engine
                                .build_with(&build, &hooks, &move |event| progress_job.event(event))
                        })
                        .await
                }
                Err(status) => Err(status),
            }
        }
        "" if request.definition.is_some() => {
            let definition = request.definition.clone().unwrap_or_default();
            match definition_request(
                daemon,
                &definition,
                &request.entitlements,
                session.as_ref(),
                job,
                cancelled,
            )
            .await
            {
                Ok((mut build, hooks)) => {
                    (build.cache_imports, build.cache_exports) = cache_entries(&request);
                    let exports: Vec<Export> = outputs.iter().map(|o| o.export.clone()).collect();
                    prepare_exports(&outputs)?;
                    let progress_job = Arc::clone(job);
                    daemon
                        .blocking(move |engine| {
                            let solved =
                                engine.solve_definition(&build, &hooks, &move |event| {
                                    progress_job.event(event)
                                })?;
                            engine.export(&solved, &exports)
                        })
                        .await
                }
                Err(status) => Err(status),
            }
        }
        "" => {
            // The client runs the frontend and drives the build through the gateway
            // (LLBBridge); the result it returns is exported here.
            let gateway = crate::gateway::Build::new(
                session.clone(),
                job.clone(),
                Arc::clone(cancelled),
                !outputs.is_empty(),
                request.entitlements.clone(),
                cache_entries(&request),
                request.frontend_inputs.clone(),
            );
            daemon
                .gateways
                .register(&request.r#ref, Arc::clone(&gateway));
            let returned = gateway.returned().await;
            daemon.gateways.unregister(&request.r#ref);
            match returned {
                Ok(solved) => {
                    prepare_exports(&outputs)?;
                    let outputs_list: Vec<Export> =
                        outputs.iter().map(|o| o.export.clone()).collect();
                    let progress_job = Arc::clone(job);
                    daemon
                        .blocking(move |engine| {
                            let _ = &progress_job;
                            engine.export(&solved, &outputs_list)
                        })
                        .await
                }
                Err(status) => Err(status),
            }
        }
        other => Err(Status::invalid_argument(format!(
            "frontend {other:?} is not available: kilnd runs dockerfile.v0"
        ))),
    };
    let result = match result {
        Ok(result) => result,
        Err(status) => {
            let _ = fs_err::remove_dir_all(&exports_dir);
            return Err(status);
        }
    };
    let sent = send_outputs(&outputs, session.as_deref(), job).await;
    let _ = fs_err::remove_dir_all(&exports_dir);
    sent?;
    Ok(result.exporter_response())
}

fn hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The request's exporters (the deprecated single one when the list is empty), each
/// writing what goes to the client into `exports_dir`.
fn plan_outputs(
    request: &control::SolveRequest,
    exports_dir: &Path,
    session: Option<&Session>,
) -> Result<Vec<PlannedOutput>, Status> {
    #[allow(deprecated)]
    let exporters: Vec<(String, BTreeMap<String, String>)> = if request.exporters.is_empty() {
        (!request.exporter_deprecated.is_empty())
            .then(|| {
                (
                    request.exporter_deprecated.clone(),
                    request
                        .exporter_attrs_deprecated
                        .clone()
                        .into_iter()
                        .collect(),
                )
            })
            .into_iter()
            .collect()
    } else {
        request
            .exporters
            .iter()
            .map(|e| (e.r#type.clone(), e.attrs.clone().into_iter().collect()))
            .collect()
    };
    let needs_session = |kind: &str| {
        if session.is_none_or(|s| !s.serves("/moby.filesync.v1.FileSend/DiffCopy")) {
            Err(Status::invalid_argument(format!(
                "the {kind} exporter sends its result to the client, which serves no FileSend"
            )))
        } else {
            Ok(())
        }
    };
    let mut planned = Vec::new();
    for (index, (kind, mut attrs)) in exporters.into_iter().enumerate() {
        let place = exports_dir.join(index.to_string());
        let send = match kind.as_str() {
            "local" => {
                needs_session(&kind)?;
                attrs.insert("dest".to_owned(), place.display().to_string());
                Some(SendTo::Dir(place))
            }
            "tar" | "oci" | "docker" => {
                if attrs.get("tar").is_some_and(|t| t == "false") {
                    return Err(Status::unimplemented(format!(
                        "{kind} with tar=false writes into the client's content store, which kilnd does not do yet"
                    )));
                }
                needs_session(&kind)?;
                attrs.insert("dest".to_owned(), place.display().to_string());
                Some(SendTo::File(place))
            }
            _ => None,
        };
        let export = Export { kind, attrs };
        Engine::check_exports(std::slice::from_ref(&export))
            .map_err(|e| Status::invalid_argument(error_chain(&e)))?;
        planned.push(PlannedOutput {
            index,
            export,
            send,
        });
    }
    Ok(planned)
}

async fn send_outputs(
    outputs: &[PlannedOutput],
    session: Option<&Session>,
    job: &Job,
) -> Result<(), Status> {
    for planned in outputs {
        let (Some(send), Some(session)) = (&planned.send, session) else {
            continue;
        };
        let started = Job::now();
        let sent = match send {
            SendTo::Dir(dir) => {
                filesync::send_dir(session.channel.clone(), planned.index, dir).await
            }
            SendTo::File(file) => {
                filesync::send_file(
                    session.channel.clone(),
                    planned.index,
                    &BTreeMap::new(),
                    file,
                )
                .await
            }
        };
        let error = sent.as_ref().err().map(|e| error_chain(e));
        // Named as BuildKit names the exporter's step.
        let title = match planned.export.kind.as_str() {
            "local" => "exporting to client directory",
            "oci" => "exporting to oci image format",
            "docker" => "exporting to docker image format",
            _ => "exporting to client tarball",
        };
        job.step(
            &format!("kilnd-export-{}", planned.index),
            title,
            started,
            error.clone(),
        );
        if let Some(error) = error {
            return Err(Status::unavailable(error));
        }
    }
    Ok(())
}

/// A client directory kept in step in the state directory, for one project (the
/// session's shared key) and local name; `purpose` keeps partial transfers (only the
/// Dockerfile, only `.dockerignore`) apart from whole ones.
fn synced_dir(daemon: &Daemon, session: &Session, name: &str, purpose: &str) -> PathBuf {
    daemon
        .root
        .join("kilnd/contexts")
        .join(hex(&format!("{}\0{name}\0{purpose}", session.shared_key)))
}

/// Returns the directory and every entry under it, as received.
/// Receives the client's directory `name` (for `purpose`) into the state directory, as
/// a progress step called `title`: the name BuildKit gives the step that loads it,
/// which the build's own step of that name then joins (see [`Job::transfer_step`]).
async fn sync(
    daemon: &Daemon,
    session: &Session,
    name: &str,
    purpose: &str,
    title: &str,
    filter: &Filter,
    job: &Job,
) -> Result<(PathBuf, Listing), Status> {
    let dir = synced_dir(daemon, session, name, purpose);
    let lock = daemon.sync_lock(&dir);
    let mut known = lock.lock().await;
    let started = Job::now();
    let received =
        filesync::receive(session.channel.clone(), name, filter, &dir, known.take()).await;
    let error = received.as_ref().err().map(|e| error_chain(e));
    job.transfer_step(&load_step_id(name, purpose), title, started, error.clone());
    match received {
        Err(_) => Err(Status::invalid_argument(error.unwrap_or_default())),
        Ok(received) => {
            let listing = Arc::new(received.listing);
            *known = Some(Arc::clone(&listing));
            Ok((dir, listing))
        }
    }
}

/// The Dockerfile build a frontend's attributes ask for, its files synced from the
/// client's session (outputs are added by the caller).
pub(crate) async fn dockerfile_request(
    daemon: &Arc<Daemon>,
    attrs: &std::collections::HashMap<String, String>,
    inputs: &std::collections::HashMap<String, Definition>,
    entitlements: &[String],
    session: &Arc<Session>,
    job: &Arc<Job>,
    cancelled: &Arc<AtomicBool>,
) -> Result<(BuildRequest, SessionHooks), Status> {
    let attr = |key: &str| attrs.get(key).map(String::as_str);
    // `platform=linux/amd64,linux/arm64`, as the Dockerfile frontend reads it.
    let platforms = attr("platform")
        .into_iter()
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<kiln_engine::Platform>().map_err(|e| {
                Status::invalid_argument(format!("failed to parse target platform {p}: {e}"))
            })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    let filename = attr("filename").unwrap_or("Dockerfile").to_owned();
    let dockerfile_key = attr("dockerfilekey").unwrap_or("dockerfile").to_owned();
    let context_key = attr("contextkey").unwrap_or("context").to_owned();
    // A context named by URL (in the attribute the context's name keys, as BuildKit's
    // Dockerfile frontend reads it) holds the Dockerfile too, unless the client lends
    // one under `dockerfilekey`.
    let remote = match attr(&context_key) {
        Some(spec) => crate::remote_context::fetch(daemon, session, spec, job).await?,
        None => None,
    };
    let local_dockerfile = remote.is_none() || attrs.contains_key("dockerfilekey");
    let context_lender = lender(daemon, attrs, &context_key, session).await?;
    // The Dockerfile and its own ignore file, then the context's ignore file, then the
    // context without what it ignores.
    let own_ignore = format!("{filename}.dockerignore");
    let mut listings = Listings::new();
    let dockerfile_dir = match &remote {
        Some(fetched) if !local_dockerfile => fetched.context.clone(),
        _ => {
            let (dir, listing) = sync(
                daemon,
                &*lender(daemon, attrs, &dockerfile_key, session).await?,
                &dockerfile_key,
                "dockerfile",
                &format!("[internal] load build definition from {filename}"),
                &Filter {
                    follow_paths: dockerfile_candidates(&filename)
                        .into_iter()
                        .chain([own_ignore.clone()])
                        .collect(),
                    ..Filter::default()
                },
                job,
            )
            .await?;
            listings.insert(dir.clone(), listing);
            dir
        }
    };
    let context_dir = if let Some(fetched) = &remote {
        scoped_to_subdir(&fetched.context, attr("contextsubdir"))?
    } else if attrs.contains_key(REQUEST_ID) {
        // A subrequest reads the Dockerfile alone; the client may lend no context.
        empty_context(daemon)?
    } else {
        let (dir, listing) = sync_context(
            daemon,
            &context_lender,
            &context_key,
            &dockerfile_dir,
            &own_ignore,
            job,
        )
        .await?;
        listings.insert(dir.clone(), listing);
        dir
    };
    let mut named_contexts = BTreeMap::new();
    for (key, value) in attrs {
        let Some(name) = key.strip_prefix("context:") else {
            continue;
        };
        let context = if let Some(image) = value.strip_prefix("docker-image://") {
            BuildContext::Image(image.to_owned())
        } else if let Some(local) = value.strip_prefix("local:") {
            let lender = lender(daemon, attrs, local, session).await?;
            let (dir, listing) = sync(
                daemon,
                &lender,
                local,
                "context",
                &format!("[context {name}] load from client"),
                &Filter::default(),
                job,
            )
            .await?;
            listings.insert(dir.clone(), listing);
            BuildContext::Dir(dir)
        } else if let Some(reference) = value.strip_prefix("oci-layout://") {
            crate::remote_context::client_layout(daemon, session, name, reference, job).await?
        } else if let Some(input) = value.strip_prefix("input:") {
            let (context, input_listings) =
                input_context(daemon, name, input, attrs, inputs, session, job).await?;
            listings.extend(input_listings);
            context
        } else if let Some(remote) = kiln_api::context::detect(value)
            .map_err(|e| Status::invalid_argument(error_chain(&e)))?
        {
            remote.into_named_context()
        } else {
            return Err(Status::unimplemented(format!(
                "named context {name}={value}: kilnd takes docker-image://, local:, oci-layout://, input:, git and http(s) contexts so far"
            )));
        };
        named_contexts.insert(name.to_owned(), context);
    }
    let build_args: BTreeMap<String, String> = attrs
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("build-arg:")?.to_owned(), v.clone())))
        .collect();
    let labels: BTreeMap<String, String> = attrs
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("label:")?.to_owned(), v.clone())))
        .collect();
    let (no_cache, no_cache_filter) = match attr("no-cache") {
        None => (false, Vec::new()),
        Some("") => (true, Vec::new()),
        Some(stages) => (false, stages.split(',').map(str::to_owned).collect()),
    };
    let mut run = RunDefaults {
        network: attr("force-network-mode")
            .filter(|m| *m != "sandbox")
            .map(str::to_owned),
        cgroup_parent: attr("cgroup-parent").map(str::to_owned),
        ..RunDefaults::default()
    };
    if let Some(size) = attr("shm-size") {
        run.shm_size = size
            .parse()
            .map_err(|_| Status::invalid_argument(format!("shm-size {size:?}: a size in bytes")))?;
    }
    for host in attr("add-hosts").into_iter().flat_map(|h| h.split(',')) {
        let (name, address) = host
            .split_once('=')
            .or_else(|| host.split_once(':'))
            .ok_or_else(|| {
                Status::invalid_argument(format!("add-hosts {host:?}: use name=address"))
            })?;
        run.extra_hosts.push((name.to_owned(), address.to_owned()));
    }
    for ulimit in attr("ulimit").into_iter().flat_map(|u| u.split(',')) {
        run.ulimits.push(parse_ulimit(ulimit)?);
    }
    // A download that was no archive is the Dockerfile itself.
    let downloaded = remote
        .as_ref()
        .filter(|_| !local_dockerfile)
        .and_then(|fetched| fetched.dockerfile.clone());
    let dockerfile = downloaded
        .into_iter()
        .chain(
            dockerfile_candidates(&filename)
                .iter()
                .map(|name| dockerfile_dir.join(name)),
        )
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "failed to read dockerfile: open {filename}: no such file or directory"
            ))
        })?;
    let mut hooks = session_hooks(daemon, Some(session), cancelled);
    hooks.on_checks = Some(check_report(job, &dockerfile, &dockerfile_key, &filename));
    hooks.listings = listings;
    hooks.lender = Some(Lender {
        session_id: context_lender.id.clone(),
        context_name: context_key,
    });
    let request = BuildRequest {
        context: context_dir,
        dockerfile,
        build_args,
        named_contexts,
        target: attr("target").filter(|t| !t.is_empty()).map(str::to_owned),
        no_cache,
        no_cache_filter,
        entitlements: entitlements.to_vec(),
        labels,
        pull: attr("image-resolve-mode") == Some("pull"),
        run,
        platforms,
        ..BuildRequest::default()
    };
    Ok((request, hooks))
}

/// The session lending the client's directory `name`: the one the attribute
/// `local-sessionid:NAME` names (buildx lends a directory several targets share in a
/// session of its own, and kiln a linked build's), else the build's own.
async fn lender(
    daemon: &Daemon,
    attrs: &std::collections::HashMap<String, String>,
    name: &str,
    session: &Arc<Session>,
) -> Result<Arc<Session>, Status> {
    match attrs.get(&format!("local-sessionid:{name}")) {
        Some(id) if *id != session.id => daemon.sessions.get(id).await.ok_or_else(|| {
            Status::invalid_argument(format!(
                "local-sessionid:{name}: session {id} is not open: the client must open it before solving"
            ))
        }),
        _ => Ok(Arc::clone(session)),
    }
}

/// Sends the build checks that fire to the client's progress as warnings on the
/// Dockerfile's load step, with the Dockerfile as their source.
fn check_report(
    job: &Arc<Job>,
    dockerfile: &Path,
    local_name: &str,
    filename: &str,
) -> CheckReport {
    let job = Arc::clone(job);
    let source = SourceInfo {
        filename: filename.to_owned(),
        data: fs_err::read(dockerfile).unwrap_or_default(),
        language: "Dockerfile".to_owned(),
        definition: None,
    };
    let vertex = load_step_id(local_name, "dockerfile");
    CheckReport(Arc::new(move |checks| {
        job.check_warnings(&vertex, checks, &source)
    }))
}

/// The id of the progress step that loads a client's directory.
fn load_step_id(name: &str, purpose: &str) -> String {
    format!("kilnd-load-{name}-{purpose}")
}

/// Where the Dockerfile may be: its name, and for `Dockerfile` the lower-case
/// `dockerfile` beside it too (BuildKit's dockerui, after moby/moby#10858).
fn dockerfile_candidates(filename: &str) -> Vec<String> {
    let mut names = vec![filename.to_owned()];
    let (dir, base) = filename.rsplit_once('/').unwrap_or(("", filename));
    if base == "Dockerfile" {
        names.push(match dir {
            "" => "dockerfile".to_owned(),
            dir => format!("{dir}/dockerfile"),
        });
    }
    names
}

/// The build context, synced without what its ignore file (the Dockerfile's own
/// first, else the context's `.dockerignore`) leaves out.
async fn sync_context(
    daemon: &Daemon,
    session: &Session,
    context_key: &str,
    dockerfile_dir: &Path,
    own_ignore: &str,
    job: &Job,
) -> Result<(PathBuf, Listing), Status> {
    let (ignore_dir, _) = sync(
        daemon,
        session,
        context_key,
        "dockerignore",
        "[internal] load .dockerignore",
        &Filter {
            follow_paths: vec![".dockerignore".to_owned()],
            ..Filter::default()
        },
        job,
    )
    .await?;
    let excludes = fs_err::read(dockerfile_dir.join(own_ignore))
        .or_else(|_| fs_err::read(ignore_dir.join(".dockerignore")))
        .map(|bytes| kiln_engine::dockerignore::parse(&bytes))
        .unwrap_or_default();
    sync(
        daemon,
        session,
        context_key,
        "context",
        "[internal] load build context",
        &Filter {
            exclude_patterns: excludes,
            ..Filter::default()
        },
        job,
    )
    .await
}

/// `contextsubdir`: the part of a fetched context the build reads.
fn scoped_to_subdir(context: &Path, subdir: Option<&str>) -> Result<PathBuf, Status> {
    let Some(subdir) = subdir
        .map(|s| s.trim_matches('/'))
        .filter(|s| !s.is_empty())
    else {
        return Ok(context.to_path_buf());
    };
    kiln_api::context::subdir_of(context, subdir).ok_or_else(|| {
        Status::invalid_argument(format!(
            "contextsubdir {subdir:?} is not a directory inside the build context"
        ))
    })
}

/// An empty directory standing for a context a build does not read.
fn empty_context(daemon: &Daemon) -> Result<PathBuf, Status> {
    let dir = daemon.root.join("kilnd/empty-context");
    fs_err::create_dir_all(&dir).map_err(|e| Status::internal(e.to_string()))?;
    Ok(dir)
}

/// The solve of an LLB definition, its local sources synced from the client's session
/// first (outputs are added by the caller).
pub(crate) async fn definition_request(
    daemon: &Arc<Daemon>,
    definition: &Definition,
    entitlements: &[String],
    session: Option<&Arc<Session>>,
    job: &Arc<Job>,
    cancelled: &Arc<AtomicBool>,
) -> Result<(DefinitionRequest, SessionHooks), Status> {
    use prost::Message as _;
    let bytes = definition.encode_to_vec();
    let (locals, listings) = sync_locals(daemon, &bytes, session, job).await?;
    let mut hooks = session_hooks(daemon, session, cancelled);
    hooks.listings = listings;
    let request = DefinitionRequest {
        definition: bytes,
        locals,
        entitlements: entitlements.to_vec(),
        ..DefinitionRequest::default()
    };
    Ok((request, hooks))
}

/// A frontend input as a named context (`context:NAME=input:KEY`, how buildx hands a
/// Bake target the result of the target it is built on): the definition the client
/// sent under KEY, the image config of its `input-metadata:KEY`, and its local sources
/// synced from the sessions that lend them.
async fn input_context(
    daemon: &Arc<Daemon>,
    name: &str,
    key: &str,
    attrs: &std::collections::HashMap<String, String>,
    inputs: &std::collections::HashMap<String, Definition>,
    session: &Arc<Session>,
    job: &Arc<Job>,
) -> Result<(BuildContext, Listings), Status> {
    use base64::Engine as _;
    use prost::Message as _;
    let definition = inputs
        .get(key)
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "named context {name}: no frontend input {key:?} was sent with the request"
            ))
        })?
        .encode_to_vec();
    let image_config = match attrs.get(&format!("input-metadata:{key}")) {
        None => None,
        Some(json) => {
            let bad =
                |what: String| Status::invalid_argument(format!("input-metadata:{key}: {what}"));
            let metadata: BTreeMap<String, String> =
                serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
            match metadata.get("containerimage.config") {
                Some(config) => Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(config)
                        .map_err(|e| bad(format!("containerimage.config: {e}")))?,
                ),
                None => None,
            }
        }
    };
    let (locals, listings) = sync_locals(daemon, &definition, Some(session), job).await?;
    Ok((
        BuildContext::Definition {
            definition,
            image_config,
            locals,
        },
        listings,
    ))
}

/// The local sources a definition reads, each synced from the session that lends it
/// (the one it names, else the build's own), by the name the engine finds it under.
async fn sync_locals(
    daemon: &Arc<Daemon>,
    definition: &[u8],
    session: Option<&Arc<Session>>,
    job: &Arc<Job>,
) -> Result<(BTreeMap<String, PathBuf>, Listings), Status> {
    let sources =
        Engine::local_sources(definition).map_err(|e| Status::invalid_argument(error_chain(&e)))?;
    let mut locals = BTreeMap::new();
    let mut listings = Listings::new();
    for source in sources {
        let (lender, name) = match (&source.session, session) {
            (Some(id), own) if own.is_none_or(|own| own.id != *id) => {
                let lender = daemon.sessions.get(id).await.ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "the definition reads local://{} from session {id}, which is not open",
                        source.name
                    ))
                })?;
                (lender, session_local_name(&source.name, id))
            }
            (_, Some(own)) => (Arc::clone(own), source.name.clone()),
            (_, None) => {
                return Err(Status::invalid_argument(format!(
                    "the definition reads local://{} but the client opened no session",
                    source.name
                )));
            }
        };
        let filter = Filter {
            include_patterns: source.include_patterns,
            exclude_patterns: source.exclude_patterns,
            follow_paths: source.follow_paths,
        };
        let purpose = hex(&format!("{filter:?}"));
        let title = format!("[internal] load {}", source.name);
        let (dir, listing) = sync(
            daemon,
            &lender,
            &source.name,
            &purpose,
            &title,
            &filter,
            job,
        )
        .await?;
        listings.insert(dir.clone(), listing);
        locals.insert(name, dir);
    }
    Ok((locals, listings))
}

/// What a build borrows from its client's session: secrets, ssh agents and registry
/// credentials, asked for when a step needs them; and its cancellation.
pub(crate) fn session_hooks(
    daemon: &Daemon,
    session: Option<&Arc<Session>>,
    cancelled: &Arc<AtomicBool>,
) -> SessionHooks {
    let lent = session.map(|session| Arc::new(SessionSecrets::new(daemon, session)));
    SessionHooks {
        client_secrets: lent
            .clone()
            .map(|lent| lent as Arc<dyn kiln_engine::Secrets>),
        credentials: lent.map(|lent| lent as Arc<dyn kiln_engine::CredentialSource>),
        cancelled: Some(Arc::clone(cancelled)),
        on_checks: None,
        listings: Listings::new(),
        client_dirs: session.map(|session| {
            Arc::new(crate::client_dirs::SessionDirs::new(session)) as Arc<dyn ClientDirs>
        }),
        lender: session.map(|session| Lender {
            session_id: session.id.clone(),
            context_name: "context".to_owned(),
        }),
    }
}

/// Makes the places the exports write into.
fn prepare_exports(outputs: &[PlannedOutput]) -> Result<(), Status> {
    for planned in outputs {
        if let Some(SendTo::Dir(path) | SendTo::File(path)) = &planned.send {
            if let Some(parent) = path.parent() {
                fs_err::create_dir_all(parent).map_err(|e| Status::internal(e.to_string()))?;
            }
        }
    }
    Ok(())
}

/// `nofile=1024:2048` (soft and hard), as buildx sends `--ulimit`.
fn parse_ulimit(text: &str) -> Result<(String, i64, i64), Status> {
    let bad = || Status::invalid_argument(format!("ulimit {text:?}: use name=soft[:hard]"));
    let (name, limits) = text.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    Ok((
        name.to_owned(),
        soft.parse().map_err(|_| bad())?,
        hard.parse().map_err(|_| bad())?,
    ))
}

/// Secrets asked of the client through its session when a step mounts one.
struct SessionSecrets {
    session: Arc<Session>,
    runtime: tokio::runtime::Handle,
    /// Where the build's agent sockets go (removed with the build).
    sockets: PathBuf,
    /// The agent sockets' listeners, by id: one per agent for the whole build.
    agents: std::sync::Mutex<BTreeMap<String, (PathBuf, tokio::task::JoinHandle<()>)>>,
}

impl SessionSecrets {
    fn new(daemon: &Daemon, session: &Arc<Session>) -> Self {
        Self {
            session: Arc::clone(session),
            runtime: tokio::runtime::Handle::current(),
            sockets: daemon.root.join("kilnd/ssh").join(hex(&format!(
                "{}{:?}",
                session.id,
                std::time::SystemTime::now()
            ))),
            agents: std::sync::Mutex::new(BTreeMap::new()),
        }
    }
}

impl Drop for SessionSecrets {
    fn drop(&mut self) {
        for (_, (_, listener)) in
            std::mem::take(&mut *self.agents.lock().unwrap_or_else(|e| e.into_inner()))
        {
            listener.abort();
        }
        let _ = fs_err::remove_dir_all(&self.sockets);
    }
}

impl kiln_engine::CredentialSource for SessionSecrets {
    /// The client's credentials for a registry host (BuildKit's `Auth.Credentials`;
    /// buildx and buildctl answer from their docker configuration).
    fn credentials(&self, host: &str) -> Option<kiln_engine::Credentials> {
        if !self.session.serves("/moby.filesync.v1.Auth/Credentials") {
            return None;
        }
        let mut client = AuthClient::new(self.session.channel.clone());
        let request = CredentialsRequest {
            host: host.to_owned(),
        };
        // Called from the engine's threads, never from the runtime's.
        let answer = self
            .runtime
            .block_on(client.credentials(request))
            .ok()?
            .into_inner();
        (!answer.username.is_empty() || !answer.secret.is_empty()).then_some(
            kiln_engine::Credentials {
                username: answer.username,
                secret: answer.secret,
            },
        )
    }
}

impl kiln_engine::Secrets for SessionSecrets {
    fn secret(&self, id: &str) -> Option<Vec<u8>> {
        if !self
            .session
            .serves("/moby.buildkit.secrets.v1.Secrets/GetSecret")
        {
            return None;
        }
        let mut client = SecretsClient::new(self.session.channel.clone());
        let request = GetSecretRequest {
            id: id.to_owned(),
            annotations: Default::default(),
        };
        // Called from the engine's threads, never from the runtime's.
        self.runtime
            .block_on(client.get_secret(request))
            .ok()
            .map(|r| r.into_inner().data)
    }

    /// A socket here whose connections reach the client's agent `id` (made once per
    /// build; `None` when the client has no such agent).
    fn ssh_agent(&self, id: &str) -> Option<PathBuf> {
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((path, _)) = agents.get(id) {
            return Some(path.clone());
        }
        if !self.session.serves("/moby.sshforward.v1.SSH/ForwardAgent") {
            return None;
        }
        let channel = self.session.channel.clone();
        let path = self.sockets.join(format!("{}.sock", agents.len()));
        // Called from the engine's threads, never from the runtime's.
        let listener = self.runtime.block_on(async {
            kiln_api::session::sshforward::check_agent(channel.clone(), id)
                .await
                .ok()?;
            fs_err::create_dir_all(&self.sockets).ok()?;
            kiln_api::session::sshforward::agent_socket(channel, id, &path)
                .await
                .ok()
        })?;
        agents.insert(id.to_owned(), (path.clone(), listener));
        Some(path)
    }
}
