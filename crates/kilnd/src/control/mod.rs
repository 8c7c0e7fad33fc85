//! BuildKit's `Control` service (and gRPC health): one file per call group. Every call
//! works on the one [`Daemon`]: the engine and the open sessions.

mod history;
mod session;
mod solve;
mod usage;
mod workers;

pub(crate) use solve::{definition_request, dockerfile_request, session_hooks};
pub(crate) use workers::records as worker_records;

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use kiln_api::proto::health::health_check_response::ServingStatus;
use kiln_api::proto::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse, health_server,
};
use kiln_api::proto::moby::buildkit::v1 as control;
use kiln_engine::Engine;
use kiln_engine::config::GcPolicy;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::gateway::Gateways;
use crate::jobs::Jobs;
use crate::session::Sessions;

/// A synced directory's lock, with its listing as the last receive left it (`None`
/// before the first in this process, or after one that failed).
pub(crate) type SyncedDir = Arc<tokio::sync::Mutex<Option<kiln_engine::Listing>>>;

/// What every call shares: the engine, the sessions, the worker's description.
pub(crate) struct Daemon {
    pub(crate) engine: Arc<Engine>,
    pub(crate) sessions: Sessions,
    /// The solves running, with their progress.
    pub(crate) jobs: Arc<Jobs>,
    /// The client-driven builds, for the gateway's calls.
    pub(crate) gateways: Gateways,
    /// The running builds' history records, and the clients following the history.
    pub(crate) history: history::History,
    /// The state directory.
    pub(crate) root: PathBuf,
    /// `--oci-worker-labels`.
    pub(crate) labels: Vec<(String, String)>,
    /// The garbage-collection policies (shown by `ListWorkers`).
    pub(crate) gc: Option<Vec<GcPolicy>>,
    /// One lock per synced client directory: two solves of one project (a frontend's
    /// builds for two platforms at once) must not receive into it together. It holds
    /// what the last receive into the directory left there (nothing else writes it), so
    /// that the next receive need not walk it again.
    pub(crate) sync_locks: std::sync::Mutex<HashMap<PathBuf, SyncedDir>>,
}

impl Daemon {
    pub(crate) fn new(
        engine: Engine,
        root: PathBuf,
        labels: Vec<(String, String)>,
        gc: Option<Vec<GcPolicy>>,
        max_sessions: usize,
    ) -> Self {
        Self {
            engine: Arc::new(engine),
            sessions: Sessions::new(max_sessions),
            jobs: Arc::new(Jobs::default()),
            gateways: Gateways::default(),
            history: history::History::default(),
            root,
            labels,
            gc,
            sync_locks: std::sync::Mutex::default(),
        }
    }

    /// The lock of the synced directory `dir`.
    pub(crate) fn sync_lock(&self, dir: &std::path::Path) -> SyncedDir {
        let mut locks = self.sync_locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(dir.to_path_buf()).or_default())
    }

    /// Stops what runs: builds are cancelled (their containers killed).
    pub(crate) fn shutdown(&self) {
        self.engine
            .cancellation()
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Kills and removes what builds that never ended left (containers, mounts).
    pub(crate) fn release_leftovers(&self) {
        self.engine.release_leftovers();
    }

    /// Runs blocking engine work off the async threads.
    pub(crate) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Engine) -> Result<T, kiln_engine::Error> + Send + 'static,
    ) -> Result<T, Status> {
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || work(&engine))
            .await
            .map_err(|e| Status::internal(format!("engine task failed: {e}")))?
            .map_err(|e| Status::unknown(error_chain(&e)))
    }
}

pub(crate) use kiln_api::error_chain;

pub(crate) type ServerStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The `moby.buildkit.v1.Control` service.
pub(crate) struct ControlService {
    daemon: Arc<Daemon>,
}

impl ControlService {
    pub(crate) fn new(daemon: Arc<Daemon>) -> Self {
        Self { daemon }
    }
}

#[tonic::async_trait]
impl control::control_server::Control for ControlService {
    async fn disk_usage(
        &self,
        request: Request<control::DiskUsageRequest>,
    ) -> Result<Response<control::DiskUsageResponse>, Status> {
        usage::disk_usage(&self.daemon, request.into_inner()).await
    }

    type PruneStream = ServerStream<control::UsageRecord>;

    async fn prune(
        &self,
        request: Request<control::PruneRequest>,
    ) -> Result<Response<Self::PruneStream>, Status> {
        usage::prune(&self.daemon, request.into_inner()).await
    }

    async fn solve(
        &self,
        request: Request<control::SolveRequest>,
    ) -> Result<Response<control::SolveResponse>, Status> {
        let solved = solve::solve(&self.daemon, request.into_inner()).await;
        // Beside the answer, not before it: the client need not wait for the trim.
        tokio::task::spawn_blocking(kiln_api::memory::release_freed_memory);
        solved
    }

    type StatusStream = ServerStream<control::StatusResponse>;

    async fn status(
        &self,
        request: Request<control::StatusRequest>,
    ) -> Result<Response<Self::StatusStream>, Status> {
        solve::status(&self.daemon, request.into_inner()).await
    }

    type SessionStream = ServerStream<control::BytesMessage>;

    async fn session(
        &self,
        request: Request<tonic::Streaming<control::BytesMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        session::open(&self.daemon, request)
    }

    async fn list_workers(
        &self,
        request: Request<control::ListWorkersRequest>,
    ) -> Result<Response<control::ListWorkersResponse>, Status> {
        workers::list(&self.daemon, request.into_inner())
    }

    async fn info(
        &self,
        _request: Request<control::InfoRequest>,
    ) -> Result<Response<control::InfoResponse>, Status> {
        Ok(Response::new(control::InfoResponse {
            buildkit_version: Some(workers::version()),
        }))
    }

    type ListenBuildHistoryStream = ServerStream<control::BuildHistoryEvent>;

    async fn listen_build_history(
        &self,
        request: Request<control::BuildHistoryRequest>,
    ) -> Result<Response<Self::ListenBuildHistoryStream>, Status> {
        history::listen(&self.daemon, request.into_inner()).await
    }

    async fn update_build_history(
        &self,
        request: Request<control::UpdateBuildHistoryRequest>,
    ) -> Result<Response<control::UpdateBuildHistoryResponse>, Status> {
        history::update(&self.daemon, request.into_inner()).await
    }
}

/// gRPC health: serving while the process runs.
pub(crate) struct HealthService;

#[tonic::async_trait]
impl health_server::Health for HealthService {
    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Ok(Response::new(HealthListResponse::default()))
    }

    type WatchStream = ServerStream<HealthCheckResponse>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let serving = HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        };
        Ok(Response::new(Box::pin(tokio_stream::once(Ok(serving)))))
    }
}
