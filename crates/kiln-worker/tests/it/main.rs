//! The worker's solving logic (keys, cache lookups, reuse across builds, shared steps,
//! failures) on its real store and snapshots, with a recording fake in place of runc:
//! each "process" writes its arguments to `/ran` in its root and is remembered, so a
//! test sees exactly which steps ran.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_exec::{Executor, Exit, Mount, OutputStream, Process};
use kiln_llb::{
    CopyOptions, FileAction, LoadedDefinition, LocalOptions, MarshalOptions, OpOptions, Run, State,
};
use kiln_registry::RegistryClient;
use kiln_worker::{Event, LocalContexts, Secrets, SolveOptions, Worker, WorkerConfig};

/// Runs nothing: records each process's arguments (in `ran`, which the test keeps a
/// handle on), writes them to `/ran` in its root and exits 1 when an argument is `fail`.
#[derive(Clone, Default)]
struct Recording {
    ran: Arc<Mutex<Vec<String>>>,
    delay: Duration,
    cancelled: Arc<AtomicBool>,
}

impl Executor for Recording {
    fn run(
        &self,
        _id: &str,
        rootfs: &Path,
        process: &Process,
        _mounts: &[Mount],
        output: &(dyn Fn(OutputStream, &[u8]) + Sync),
    ) -> Result<Exit, kiln_exec::Error> {
        let args = process.args.join(" ");
        self.ran.lock().unwrap().push(args.clone());
        std::thread::sleep(self.delay);
        fs_err::write(rootfs.join("ran"), &args)?;
        output(OutputStream::Stdout, b"ran\n");
        let failed = process.args.iter().any(|a| a == "fail");
        Ok(Exit {
            code: i32::from(failed),
            oom_killed: false,
            runtime_error: None,
        })
    }

    fn cancellation(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancelled)
    }

    fn remove_leftovers(&self) {}
}

struct Contexts(HashMap<String, PathBuf>);

impl LocalContexts for Contexts {
    fn dir(&self, name: &str, _session: Option<&str>) -> Option<PathBuf> {
        self.0.get(name).cloned()
    }
}

struct NoSecrets;

impl Secrets for NoSecrets {
    fn secret(&self, _id: &str) -> Option<Vec<u8>> {
        None
    }
    fn ssh_agent(&self, _id: &str) -> Option<PathBuf> {
        None
    }
}

struct Setup {
    dir: tempfile::TempDir,
    recording: Recording,
    worker: Worker,
}

impl Setup {
    fn new(delay: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let recording = Recording {
            delay,
            ..Recording::default()
        };
        let worker = open(dir.path(), &recording);
        Setup {
            dir,
            recording,
            worker,
        }
    }

    fn context(&self) -> PathBuf {
        self.dir.path().join("context")
    }

    /// What ran since the last call.
    fn ran(&self) -> Vec<String> {
        std::mem::take(&mut *self.recording.ran.lock().unwrap())
    }

    /// Solves `state`; returns the names of the steps shown as cached.
    fn solve(&self, state: &State) -> Result<Vec<String>, kiln_worker::Error> {
        solve(&self.worker, state, &self.context())
    }
}

fn open(root: &Path, recording: &Recording) -> Worker {
    let config = WorkerConfig {
        root: root.join("state"),
        runtime: PathBuf::from("/nonexistent/runc"),
        parallelism: 4,
        platform: kiln_oci::Platform::host(),
        default_network: kiln_worker::NetworkMode::Host,
        cgroup_parent: None,
        resolv_conf: None,
        snapshotter: "auto".to_owned(),
    };
    Worker::open_with(
        config,
        Arc::new(RegistryClient::new()),
        Box::new(recording.clone()),
    )
    .unwrap()
}

fn solve(
    worker: &Worker,
    state: &State,
    context: &Path,
) -> Result<Vec<String>, kiln_worker::Error> {
    let definition = state.marshal(&MarshalOptions {
        platform: None,
        local_unique_id: Some("test".to_owned()),
    });
    let loaded = LoadedDefinition::from_definition(definition).unwrap();
    let contexts = Contexts(HashMap::from([(
        "context".to_owned(),
        context.to_path_buf(),
    )]));
    let cached = Mutex::new(Vec::new());
    let progress = |event: Event| {
        if let Event::Cached { name, .. } = event {
            cached.lock().unwrap().push(name);
        }
    };
    let options = SolveOptions {
        no_cache: false,
        progress: &progress,
        contexts: &contexts,
        secrets: &NoSecrets,
        entitlements: &[],
        cancelled: None,
        registry: None,
        imports: &[],
        records: None,
        result_needed: true,
    };
    worker.solve(&loaded, &options)?;
    Ok(cached.into_inner().unwrap())
}

fn step(base: &State, args: &str) -> State {
    base.run(Run::new(args.split(' '))).root()
}

#[test]
fn a_rebuild_with_nothing_changed_runs_nothing() {
    let setup = Setup::new(Duration::ZERO);
    let build = step(&step(&State::scratch(), "first"), "second");
    assert_eq!(setup.solve(&build).unwrap(), Vec::<String>::new());
    assert_eq!(setup.ran(), ["first", "second"]);
    let cached = setup.solve(&build).unwrap();
    assert_eq!(setup.ran(), Vec::<String>::new(), "nothing runs again");
    assert_eq!(cached.len(), 2, "both steps are shown cached: {cached:?}");
}

#[test]
fn an_edit_runs_the_edited_step_and_what_reads_it_only() {
    let setup = Setup::new(Duration::ZERO);
    let build = |x: &str| {
        let x = step(&State::scratch(), x);
        let y = step(&State::scratch(), "y");
        x.run(Run::new(["z"]).mount(kiln_llb::Mount::bind("/y", &y)))
            .root()
    };
    setup.solve(&build("x1")).unwrap();
    let mut first = setup.ran();
    first.sort();
    assert_eq!(first, ["x1", "y", "z"]);
    setup.solve(&build("x2")).unwrap();
    assert_eq!(setup.ran(), ["x2", "z"], "y is reused");
}

#[test]
fn a_step_reading_some_paths_is_reused_when_other_paths_change() {
    let setup = Setup::new(Duration::ZERO);
    kiln_test::write_files(&setup.context(), &[("a.txt", "a"), ("b.txt", "b")]);
    let context = State::local("context", LocalOptions::default());
    let copied = State::scratch().file(
        FileAction::copy(&context, "/a.txt", "/a.txt", CopyOptions::default()),
        OpOptions::default(),
    );
    let build = step(&copied, "use-a");
    setup.solve(&build).unwrap();
    assert_eq!(setup.ran(), ["use-a"]);

    fs_err::write(setup.context().join("b.txt"), "b changed").unwrap();
    setup.solve(&build).unwrap();
    assert_eq!(setup.ran(), Vec::<String>::new(), "b.txt is not read");

    fs_err::write(setup.context().join("a.txt"), "a changed").unwrap();
    setup.solve(&build).unwrap();
    assert_eq!(setup.ran(), ["use-a"], "a.txt is read");
}

#[test]
fn builds_at_once_run_a_shared_step_once() {
    let setup = Setup::new(Duration::from_millis(300));
    let build = step(&State::scratch(), "shared");
    std::thread::scope(|scope| {
        let builds: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| setup.solve(&build).unwrap()))
            .collect();
        let cached: usize = builds.into_iter().map(|b| b.join().unwrap().len()).sum();
        assert_eq!(cached, 1, "the later build finds the first's result");
    });
    assert_eq!(setup.ran(), ["shared"]);
}

#[test]
fn a_failed_step_stops_its_users_and_is_not_cached() {
    let setup = Setup::new(Duration::ZERO);
    let build = step(&step(&State::scratch(), "fail"), "after");
    let error = setup.solve(&build).unwrap_err();
    assert!(
        error.to_string().contains("fail"),
        "the error names the step: {error}"
    );
    assert_eq!(setup.ran(), ["fail"], "its user never runs");
    setup.solve(&build).unwrap_err();
    assert_eq!(setup.ran(), ["fail"], "a failure is not a result to reuse");
}

#[test]
fn results_outlive_the_worker_that_made_them() {
    let setup = Setup::new(Duration::ZERO);
    let build = step(&State::scratch(), "once");
    setup.solve(&build).unwrap();
    assert_eq!(setup.ran(), ["once"]);
    drop(setup.worker);
    let reopened = open(setup.dir.path(), &setup.recording);
    let cached = solve(&reopened, &build, &setup.dir.path().join("context")).unwrap();
    assert_eq!(cached.len(), 1);
    assert!(setup.recording.ran.lock().unwrap().is_empty());
}
