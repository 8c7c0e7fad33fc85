//! Running solves by ref, with the progress clients follow through `Control.Status`: a
//! client may ask for the status before or after the solve starts, so every update is
//! kept until the solve ends and a late watcher gets them all first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use kiln_api::build::{CheckWarning, Event};
use kiln_api::history::{StepCounter, StepCounts};
use kiln_api::proto::google::protobuf::Timestamp;
use kiln_api::proto::moby::buildkit::v1::{StatusResponse, Vertex, VertexLog, VertexWarning};
use kiln_api::proto::pb::{Position, Range, SourceInfo};
use tokio::sync::watch;

/// One solve's progress.
pub(crate) struct Job {
    state: Mutex<JobState>,
    /// Bumped on every update; `true` in `.1` once the solve has ended.
    changed: watch::Sender<(u64, bool)>,
}

#[derive(Default)]
struct JobState {
    updates: Vec<StatusResponse>,
    /// The solve's steps, for its history record.
    steps: StepCounter,
    /// Names of kilnd's transfer steps whose build step of the same name is yet to come:
    /// that step is shown as the transfer's (BuildKit has one step for both).
    joining: Vec<String>,
    /// Build steps shown as a transfer step of kilnd's.
    joined: std::collections::HashSet<String>,
    /// Each vertex's name and start, for the update that completes it.
    vertices: HashMap<String, (String, Option<Timestamp>)>,
    /// Directories the solve reads (a fetched context), removed with the job.
    scratch: Vec<tempfile::TempDir>,
}

fn now() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    }
}

/// `BUILDKIT_DEBUG_EXEC_OUTPUT` (as buildkitd reads it, BuildKit's test harness sets
/// it): steps' output is copied to the daemon's stderr too.
fn debug_exec_output() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("BUILDKIT_DEBUG_EXEC_OUTPUT")
            .is_ok_and(|v| kiln_api::go::parse_bool(&v) == Some(true))
    })
}

impl Job {
    fn new() -> Self {
        Self {
            state: Mutex::new(JobState::default()),
            changed: watch::channel((0, false)).0,
        }
    }

    fn push(&self, update: StatusResponse) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .updates
            .push(update);
        self.changed.send_modify(|(n, _)| *n += 1);
    }

    /// Records an engine event as BuildKit's status update.
    pub(crate) fn event(&self, event: Event) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &event {
            Event::Started { digest, name } | Event::Cached { digest, name } => {
                if let Some(at) = state.joining.iter().position(|n| n == name) {
                    state.joining.remove(at);
                    state.joined.insert(digest.clone());
                    return;
                }
            }
            Event::Done { digest, .. }
            | Event::Failed { digest, .. }
            | Event::Log { digest, .. } => {
                if state.joined.contains(digest) {
                    return;
                }
            }
        }
        state.steps.observe(&event);
        let vertex = |digest: &str, name: &str| Vertex {
            digest: digest.to_owned(),
            name: name.to_owned(),
            ..Vertex::default()
        };
        let update = match event {
            Event::Started { digest, name } => {
                let started = Some(now());
                state
                    .vertices
                    .insert(digest.clone(), (name.clone(), started));
                StatusResponse {
                    vertexes: vec![Vertex {
                        started,
                        ..vertex(&digest, &name)
                    }],
                    ..StatusResponse::default()
                }
            }
            Event::Cached { digest, name } => {
                let at = Some(now());
                StatusResponse {
                    vertexes: vec![Vertex {
                        cached: true,
                        started: at,
                        completed: at,
                        ..vertex(&digest, &name)
                    }],
                    ..StatusResponse::default()
                }
            }
            Event::Done { digest, .. } => {
                let (name, started) = state.vertices.get(&digest).cloned().unwrap_or_default();
                StatusResponse {
                    vertexes: vec![Vertex {
                        started,
                        completed: Some(now()),
                        ..vertex(&digest, &name)
                    }],
                    ..StatusResponse::default()
                }
            }
            Event::Failed { digest, error, .. } => {
                let (name, started) = state.vertices.get(&digest).cloned().unwrap_or_default();
                StatusResponse {
                    vertexes: vec![Vertex {
                        started,
                        completed: Some(now()),
                        error,
                        ..vertex(&digest, &name)
                    }],
                    ..StatusResponse::default()
                }
            }
            Event::Log { digest, data } => {
                if debug_exec_output() {
                    use std::io::Write as _;
                    let _ = std::io::stderr().write_all(&data);
                }
                StatusResponse {
                    logs: vec![VertexLog {
                        vertex: digest,
                        timestamp: Some(now()),
                        stream: 1,
                        msg: data,
                    }],
                    ..StatusResponse::default()
                }
            }
        };
        state.updates.push(update);
        drop(state);
        self.changed.send_modify(|(n, _)| *n += 1);
    }

    /// Keeps `dir` until the job is forgotten, then removes it.
    pub(crate) fn keep(&self, dir: tempfile::TempDir) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .scratch
            .push(dir);
    }

    /// The solve's steps so far: how many, how many ended, how many were cached.
    pub(crate) fn steps(&self) -> StepCounts {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .steps
            .counts()
    }

    /// A transfer of a client's directory, as the step BuildKit shows for it (`title`):
    /// the build's own step of that name, which only takes what arrived, is shown as
    /// this one.
    pub(crate) fn transfer_step(
        &self,
        digest: &str,
        title: &str,
        started: Timestamp,
        error: Option<String>,
    ) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .joining
            .push(title.to_owned());
        self.step(digest, title, started, error);
    }

    /// A step of kilnd's own (a transfer, an export) as a vertex of its own.
    pub(crate) fn step(&self, digest: &str, name: &str, started: Timestamp, error: Option<String>) {
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let name = name.to_owned();
            state.steps.observe(&Event::Started {
                digest: digest.to_owned(),
                name,
            });
            state.steps.observe(&Event::Done {
                digest: digest.to_owned(),
                duration: Duration::ZERO,
            });
        }
        self.push(StatusResponse {
            vertexes: vec![Vertex {
                digest: digest.to_owned(),
                name: name.to_owned(),
                started: Some(started),
                completed: Some(now()),
                error: error.unwrap_or_default(),
                ..Vertex::default()
            }],
            ..StatusResponse::default()
        });
    }

    /// A warning a frontend reported (`LLBBridge.Warn`).
    pub(crate) fn warning(
        &self,
        warning: kiln_api::proto::moby::buildkit::v1::frontend::WarnRequest,
    ) {
        self.push(StatusResponse {
            warnings: vec![VertexWarning {
                vertex: warning.digest,
                level: warning.level,
                short: warning.short,
                detail: warning.detail,
                url: warning.url,
                info: warning.info,
                ranges: warning.ranges,
            }],
            ..StatusResponse::default()
        });
    }

    /// Build checks that fired, as the Dockerfile frontend warns of them (BuildKit's
    /// `builder.Build` through `dockerui.Source.Warn`): level 1, the rule's
    /// description as detail, its ranges, and the Dockerfile as source info.
    pub(crate) fn check_warnings(
        &self,
        vertex: &str,
        checks: &[CheckWarning],
        dockerfile: &SourceInfo,
    ) {
        if checks.is_empty() {
            return;
        }
        let warnings = checks
            .iter()
            .map(|check| VertexWarning {
                vertex: vertex.to_owned(),
                level: 1,
                short: check.short().into_bytes(),
                detail: vec![check.description.clone().into_bytes()],
                url: check.url.clone(),
                info: Some(dockerfile.clone()),
                ranges: check_ranges(check),
            })
            .collect();
        self.push(StatusResponse {
            warnings,
            ..StatusResponse::default()
        });
    }

    pub(crate) fn now() -> Timestamp {
        now()
    }

    fn finish(&self) {
        self.changed.send_modify(|(n, done)| {
            *n += 1;
            *done = true;
        });
    }

    /// Every update from `from` on, and whether the solve has ended, waiting for one
    /// if there is none yet.
    pub(crate) async fn updates(&self, from: usize) -> (Vec<StatusResponse>, bool) {
        let mut changed = self.changed.subscribe();
        loop {
            let done = changed.borrow_and_update().1;
            let updates: Vec<StatusResponse> = self
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .updates
                .get(from..)
                .map(<[StatusResponse]>::to_vec)
                .unwrap_or_default();
            if !updates.is_empty() || done {
                return (updates, done);
            }
            if changed.changed().await.is_err() {
                return (Vec::new(), true);
            }
        }
    }
}

/// A check's place as BuildKit's ranges (none when it has no line).
fn check_ranges(check: &CheckWarning) -> Vec<Range> {
    let location = check.location;
    if location.start.line == 0 {
        return Vec::new();
    }
    vec![Range {
        start: Some(Position {
            line: location.start.line as i32,
            character: location.start.character as i32,
        }),
        end: Some(Position {
            line: location.end.line as i32,
            character: location.end.character as i32,
        }),
    }]
}

/// The solves running, by ref, and those that ended recently (a status request may
/// come just after).
#[derive(Default)]
pub(crate) struct Jobs {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    added: tokio::sync::Notify,
}

/// How long a status request waits for its solve to start.
const START_WAIT: Duration = Duration::from_secs(10);
/// How long an ended solve's updates stay for a late status request.
const KEEP_ENDED: Duration = Duration::from_secs(10);

impl Jobs {
    /// Starts tracking the solve `id`.
    pub(crate) fn start(&self, id: &str) -> Arc<Job> {
        let job = Arc::new(Job::new());
        self.lock().insert(id.to_owned(), Arc::clone(&job));
        self.added.notify_waiters();
        job
    }

    /// Marks the solve ended; its updates are forgotten a little later.
    pub(crate) fn end(self: &Arc<Self>, id: &str, job: &Job) {
        job.finish();
        let jobs = Arc::clone(self);
        let id = id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(KEEP_ENDED).await;
            jobs.lock().remove(&id);
        });
    }

    /// The solve `id`, waiting a little for it to start.
    pub(crate) async fn get(&self, id: &str) -> Option<Arc<Job>> {
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            let added = self.added.notified();
            if let Some(job) = self.lock().get(id) {
                return Some(Arc::clone(job));
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return None;
            }
        }
    }

    /// The refs of the solves still running, sorted.
    pub(crate) fn running(&self) -> Vec<String> {
        let mut running: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, job)| !job.changed.borrow().1)
            .map(|(id, _)| id.clone())
            .collect();
        running.sort();
        running
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Job>>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}
