//! Load (issue #19): rounds of overlapping builds at once for a while (60 s each by
//! default, `KILN_SOAK_SECONDS` for the long form): 16 `kiln` clients of one kilnd, and
//! 8 embedded `kiln` processes on one state directory, some killed at random moments.
//! Every build not killed passes, a step the builds of a round share executes once (a
//! probe counts its runs; once more for each client killed, which may have been the
//! one running it), and kilnd's memory stays flat.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_test::Probe;

use crate::crash::random_source;
use crate::kiln_cli::kiln_binary;
use crate::support::{Kilnd, can_build};

/// Variants of the Dockerfile: every round's builds share the `shared` stage, and
/// builds of one variant share their last step too.
const VARIANTS: usize = 4;

fn soak_time() -> Duration {
    Duration::from_secs(
        std::env::var("KILN_SOAK_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    )
}

/// One context per variant.
fn contexts(work: &Path, base: &str, probe: u16) -> Vec<PathBuf> {
    (0..VARIANTS)
        .map(|v| {
            let dir = work.join(format!("variant{v}"));
            fs_err::create_dir_all(&dir).unwrap();
            fs_err::write(dir.join("input.txt"), format!("variant {v}\n")).unwrap();
            fs_err::write(
                dir.join("Dockerfile"),
                format!(
                    "FROM {base} AS shared\n\
                     ARG ROUND\n\
                     RUN wget -q -O /shared http://127.0.0.1:{probe}/shared-$ROUND && sleep 0.3\n\
                     FROM {base}\n\
                     ARG ROUND\n\
                     COPY --from=shared /shared /shared\n\
                     COPY input.txt /input.txt\n\
                     RUN wget -q -O /own http://127.0.0.1:{probe}/own-$ROUND-{v}\n"
                ),
            )
            .unwrap();
            dir
        })
        .collect()
}

/// A process's resident set, in KiB.
fn rss_kib(pid: u32) -> u64 {
    fs_err::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// What a soak counted.
#[derive(Default)]
struct Counts {
    rounds: usize,
    builds: usize,
    killed: usize,
    /// Runs of the shared step, over all rounds.
    shared_runs: usize,
}

impl Counts {
    /// The figures every soak reports.
    fn summary(&self) -> String {
        format!(
            "{} rounds, {} builds, {} killed, 0 unexplained failures, the shared step run {} times in {} rounds",
            self.rounds, self.builds, self.killed, self.shared_runs, self.rounds
        )
    }
}

/// Runs rounds of `clients` builds at once until the soak time is up; `build` starts
/// one client's build of a context for a round. Every third round kills a quarter of
/// the clients at random moments. Calls `after_round` after each.
fn soak(
    clients: usize,
    contexts: &[PathBuf],
    probe: &Probe,
    build: &dyn Fn(&Path, usize) -> Child,
    after_round: &mut dyn FnMut(),
) -> Counts {
    let mut counts = Counts::default();
    let started = Instant::now();
    let mut random = random_source();
    while started.elapsed() < soak_time() || counts.rounds < 3 {
        let round = counts.rounds;
        let cancel_round = round % 3 == 2;
        let mut running: Vec<(usize, Child)> = (0..clients)
            .map(|i| (i, build(&contexts[i % VARIANTS], round)))
            .collect();
        let mut killed = Vec::new();
        if cancel_round {
            for _ in 0..clients / 4 {
                std::thread::sleep(Duration::from_millis(random(600)));
                let victim = random(clients as u64) as usize;
                if !killed.contains(&victim) {
                    let _ = running[victim].1.kill();
                    killed.push(victim);
                }
            }
        }
        for (i, child) in &mut running {
            let output = child.wait().unwrap();
            if !killed.contains(i) {
                assert!(
                    output.success(),
                    "round {round}: client {i}'s build failed (see its log above)"
                );
            }
        }
        let shared = probe.hits_of(&format!("/shared-{round}"));
        assert!(
            (1..=1 + killed.len()).contains(&shared),
            "round {round}: the shared step ran {shared} times, {} clients killed",
            killed.len()
        );
        if killed.is_empty() {
            for v in 0..VARIANTS {
                assert_eq!(
                    probe.hits_of(&format!("/own-{round}-{v}")),
                    1,
                    "round {round}"
                );
            }
        }
        counts.rounds += 1;
        counts.shared_runs += shared;
        counts.builds += clients - killed.len();
        counts.killed += killed.len();
        after_round();
    }
    counts
}

#[test]
fn sixteen_clients_of_one_kilnd_for_a_while() {
    if !can_build() {
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let base = registry.push_busybox();
    let probe = Probe::start();
    let work = tempfile::tempdir().unwrap();
    let contexts = contexts(work.path(), &base, probe.port);
    let kilnd = Kilnd::start(&[]);
    let address = kilnd.address();
    let build = |context: &Path, round: usize| {
        Command::new(&kiln)
            .args(["build", "--progress=plain", "--addr", &address])
            .arg(format!("--build-arg=ROUND={round}"))
            .arg(context)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut rss = Vec::new();
    let counts = soak(16, &contexts, &probe, &build, &mut || {
        rss.push(rss_kib(kilnd.pid()))
    });
    // Memory flat: the last third of the rounds peaks no higher than the first third
    // did, give or take a quarter and 16 MiB (allocator slack).
    let third = (rss.len() / 3).max(1);
    let early = *rss[..third].iter().max().unwrap();
    let late = *rss[rss.len() - third..].iter().max().unwrap();
    assert!(
        late <= early + early / 4 + 16 * 1024,
        "kilnd's RSS grew from {early} KiB to {late} KiB over the rounds: {rss:?}\n{}",
        kilnd.log()
    );
    kiln_test::reliability_figure(
        "load",
        &format!(
            "{} s of rounds of 16 kiln clients of one kilnd (4 variants, a step shared by all), a quarter killed every third round; kilnd's peak RSS in the first and last third of the rounds",
            soak_time().as_secs()
        ),
        format!(
            "{}; {} / {} MiB",
            counts.summary(),
            early / 1024,
            late / 1024
        ),
    );
}

#[test]
fn eight_embedded_processes_on_one_state_for_a_while() {
    if !can_build() {
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let base = registry.push_busybox();
    let probe = Probe::start();
    let work = tempfile::tempdir().unwrap();
    let contexts = contexts(work.path(), &base, probe.port);
    let state = work.path().join("state");
    let build = |context: &Path, round: usize| {
        Command::new(&kiln)
            .env("KILN_ROOT", &state)
            .args(["build", "--progress=plain"])
            .arg(format!("--build-arg=ROUND={round}"))
            .arg(context)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let counts = soak(8, &contexts, &probe, &build, &mut || {});
    // The state is consistent after it all: a build passes and `du` reads it.
    let du = Command::new(&kiln)
        .env("KILN_ROOT", &state)
        .args(["du", "--verbose"])
        .output()
        .unwrap();
    assert!(du.status.success(), "{du:?}");
    kiln_test::reliability_figure(
        "load",
        &format!(
            "{} s of rounds of 8 embedded kiln processes on one state (they take turns), a quarter killed every third round",
            soak_time().as_secs()
        ),
        counts.summary(),
    );
}
