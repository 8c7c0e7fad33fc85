//! Crashes (issue #19): kilnd killed with SIGKILL while four `kiln` clients build
//! through it, and embedded `kiln` builds killed at random moments, over varied
//! Dockerfiles (a pull, a COPY of 2,000 files, a RUN writing 20 MB, an OCI export, a
//! push). After each kill the store is consistent (every blob hashes to its name,
//! nothing half-written, no mount, container or cgroup left) and the next builds are
//! right.
//! `KILN_CRASH_ROUNDS` sets how many kills (the long form: 50).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::kiln_cli::kiln_binary;
use crate::support::{Kilnd, can_build};

fn rounds(default: usize) -> usize {
    std::env::var("KILN_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A tiny xorshift: random moments that differ from run to run.
pub(crate) fn random_source() -> impl FnMut(u64) -> u64 {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64 ^ u64::from(std::process::id()) << 17;
    move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    }
}

/// The four kinds of build, each a context; `ROUND` makes every round's steps new.
fn contexts(work: &Path, base: &str) -> Vec<PathBuf> {
    let dockerfiles = [
        format!("FROM {base}\nARG ROUND\nCOPY files /files\nRUN echo $ROUND > /round\n"),
        format!(
            "FROM {base}\nARG ROUND\nRUN dd if=/dev/urandom of=/big bs=1M count=20 2>/dev/null && echo $ROUND > /round\n"
        ),
        format!("FROM {base}\nARG ROUND\nRUN echo $ROUND > /round && sleep 0.2\n"),
        format!("FROM {base}\nARG ROUND\nCOPY small.txt /\nRUN echo $ROUND > /round\n"),
    ];
    dockerfiles
        .iter()
        .enumerate()
        .map(|(i, dockerfile)| {
            let dir = work.join(format!("kind{i}"));
            fs_err::create_dir_all(dir.join("files")).unwrap();
            if i == 0 {
                for f in 0..2000 {
                    fs_err::write(dir.join("files").join(format!("f{f}")), format!("{f}\n"))
                        .unwrap();
                }
            }
            fs_err::write(dir.join("small.txt"), "small\n").unwrap();
            fs_err::write(dir.join("Dockerfile"), dockerfile).unwrap();
            dir
        })
        .collect()
}

/// How the test starts builds: through a daemon (`target` is `--addr ADDRESS`) or
/// embedded on a state directory.
struct Builds<'a> {
    kiln: &'a Path,
    target: Vec<String>,
    state: Option<&'a Path>,
    contexts: &'a [PathBuf],
    registry: String,
    work: &'a Path,
}

impl Builds<'_> {
    /// `kiln build` of kind `kind` for `round`: kind 2 exports an OCI archive and kind
    /// 3 pushes.
    fn start(&self, kind: usize, round: usize) -> Child {
        let mut command = Command::new(self.kiln);
        if let Some(state) = self.state {
            command.env("KILN_ROOT", state);
        }
        command
            .args(["build", "--progress=plain"])
            .args(&self.target)
            .arg(format!("--build-arg=ROUND={round}"));
        match kind {
            2 => {
                command.arg("-o").arg(format!(
                    "type=oci,dest={}",
                    self.work.join(format!("out-{round}.tar")).display()
                ));
            }
            3 => {
                command
                    .arg("--push")
                    .arg("-t")
                    .arg(format!("{}/crash:{round}", self.registry));
            }
            _ => {}
        }
        command
            .arg(&self.contexts[kind])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// Every blob under `root` hashes to its name, no write is left half done, and no
/// mount or runc container of the state remains. Returns the blobs checked.
fn assert_store_consistent(root: &Path, when: &str) -> usize {
    let checked = kiln_test::assert_blobs_verified(root);
    let mounts = fs_err::read_to_string("/proc/mounts").unwrap();
    let state = root.display().to_string();
    assert!(
        !mounts.lines().any(|l| l.contains(&state)),
        "{when}: mounts left under the state:\n{mounts}"
    );
    let listed = Command::new("runc")
        .arg("--root")
        .arg(root.join("exec/runc"))
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).trim().is_empty(),
        "{when}: containers left"
    );
    checked
}

/// No cgroup of a container the killed process `pid` started is left in any hierarchy
/// (runc names them `kiln-<digest>-<pid>` under each controller).
fn assert_no_cgroups_of(pid: u32, when: &str) {
    let suffix = format!("-{pid}");
    for controller in fs_err::read_dir("/sys/fs/cgroup").unwrap() {
        let Ok(groups) = fs_err::read_dir(controller.unwrap().path()) else {
            continue;
        };
        for group in groups.flatten() {
            let name = group.file_name().to_string_lossy().into_owned();
            assert!(
                !(name.starts_with("kiln-") && name.ends_with(&suffix)),
                "{when}: cgroup {} left",
                group.path().display()
            );
        }
    }
}

/// Waits for a build and asserts it passed.
fn assert_passed(child: Child, what: &str) {
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn kilnd_killed_while_serving_four_clients() {
    if !can_build() {
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let base = registry.push_busybox();
    let work = tempfile::tempdir().unwrap();
    let contexts = contexts(work.path(), &base);
    let mut kilnd = Kilnd::start(&[]);
    let root = kilnd.dir.path().join("root");
    let builds = Builds {
        kiln: &kiln,
        target: vec!["--addr".to_owned(), kilnd.address()],
        state: None,
        contexts: &contexts,
        registry: registry.host(),
        work: work.path(),
    };
    let mut random = random_source();
    let kills = rounds(5);
    let mut checked = 0;
    for round in 0..kills {
        let clients: Vec<Child> = (0..4).map(|kind| builds.start(kind, round)).collect();
        std::thread::sleep(Duration::from_millis(200 + random(2500)));
        let killed = kilnd.pid();
        kilnd.kill_and_restart(&[]);
        for mut client in clients {
            // The clients lose their daemon: they fail (or had finished); none hangs.
            let _ = client.wait();
        }
        // The restarted daemon builds every kind of this round, right.
        let when = format!("after kill {round}");
        for kind in 0..4 {
            assert_passed(builds.start(kind, round), &format!("{when}: kind {kind}"));
        }
        checked = assert_store_consistent(&root, &when);
        assert_no_cgroups_of(killed, &when);
    }
    kiln_test::reliability_figure(
        "crash",
        "kill -9 of kilnd serving 4 kiln clients (a COPY of 2,000 files, a RUN writing 20 MB, an OCI export, a push) at random moments, then a build of each on the restarted daemon: kills survived, builds right after, blobs verified at the end",
        format!("{kills}, {}, {checked}", kills * 4),
    );
}

#[test]
fn embedded_builds_killed_at_random_moments() {
    if !can_build() {
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let base = registry.push_busybox();
    let work = tempfile::tempdir().unwrap();
    let contexts = contexts(work.path(), &base);
    let state = work.path().join("state");
    let builds = Builds {
        kiln: &kiln,
        target: Vec::new(),
        state: Some(&state),
        contexts: &contexts,
        registry: registry.host(),
        work: work.path(),
    };
    let mut random = random_source();
    let kills = rounds(8);
    let mut checked = 0;
    for round in 0..kills {
        let kind = round % 4;
        let mut child = builds.start(kind, round);
        let killed = child.id();
        std::thread::sleep(Duration::from_millis(100 + random(1500)));
        let _ = child.kill();
        let _ = child.wait();
        // The next process cleans what the killed one left, and builds right.
        let when = format!("after kill {round} (kind {kind})");
        assert_passed(builds.start(kind, round), &when);
        checked = assert_store_consistent(&state, &when);
        assert_no_cgroups_of(killed, &when);
    }
    kiln_test::reliability_figure(
        "crash",
        "kill -9 of embedded builds (the same four kinds, in turn) at random moments, each followed by the same build: kills survived, builds right after, blobs verified at the end",
        format!("{kills}, {kills}, {checked}"),
    );
}
