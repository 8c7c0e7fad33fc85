//! kill -9 at any moment: the next process finds a consistent store.

use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::support::{BaseImage, build_into, kiln, tools_present};

/// A build (context copy, RUN steps writing 40 MB, an image export) killed with
/// SIGKILL at ten moments; after each kill the next build starts cleanly, and in
/// the end a build completes with the right result, every blob matches its digest,
/// no half-written blob, container, mount or unrecorded layer is left, and a rebuild
/// is fully cached.
#[test]
fn kill_9_at_any_moment_leaves_a_consistent_store() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("crash");
    fs_err::create_dir_all(project.join("files")).unwrap();
    for i in 0..2000 {
        fs_err::write(
            project.join("files").join(format!("f{i}")),
            format!("{i}\n").repeat(50),
        )
        .unwrap();
    }
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\n\
             COPY files /files\n\
             RUN dd if=/dev/urandom of=/random bs=1M count=40 2>/dev/null && sleep 0.3\n\
             RUN sha256sum /random | cut -d' ' -f1 > /random.sum && ls /files | wc -l > /count\n"
        ),
    )
    .unwrap();
    let archive = work.path().join("image.tar");
    let args = [
        "build".to_owned(),
        "--progress=plain".to_owned(),
        "-o".to_owned(),
        format!("type=oci,dest={}", archive.display()),
        project.to_str().unwrap().to_owned(),
    ];
    // Every record `du` lists is of a type BuildKit knows: a layer whose result was
    // recorded without its usage (a kill between the two writes) once showed with no
    // type, and `prune --all` then left it behind.
    let assert_du_types_known = |when: &str| {
        let du = kiln(state, &["du", "--verbose"]);
        let du = String::from_utf8_lossy(&du.stdout).into_owned();
        for line in du.lines().filter(|l| l.starts_with("Type:")) {
            let kind = line.trim_start_matches("Type:").trim();
            assert!(
                ["regular", "source.local", "exec.cachemount", "internal"].contains(&kind),
                "{when}: a record of type {kind:?}:\n{du}"
            );
        }
    };
    let delays = [150, 400, 700, 1000, 1200, 1400, 1650, 1900, 2200, 2500];
    for delay_ms in delays {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .env("KILN_ROOT", state)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        assert_du_types_known(&format!("after a kill at {delay_ms} ms"));
    }

    // A layer no record names (as a kill between writing a layer and recording it
    // leaves) is removed when the next process opens the store.
    let unrecorded = state.join("snapshots/999999");
    fs_err::create_dir_all(unrecorded.join("fs")).unwrap();
    fs_err::write(unrecorded.join("fs/half-written"), "x").unwrap();
    let out = work.path().join("out");
    build_into(state, &project, &out, &[]);
    assert!(!unrecorded.exists(), "the unrecorded layer is still there");
    let random = fs_err::read(out.join("random")).unwrap();
    let hex: String = Sha256::digest(&random)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        fs_err::read_to_string(out.join("random.sum"))
            .unwrap()
            .trim(),
        hex
    );
    assert_eq!(
        fs_err::read_to_string(out.join("count")).unwrap().trim(),
        "2000"
    );
    // The image export completes and skopeo reads it.
    let output = kiln(state, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let log = crate::support::check(&output);
    assert!(crate::support::step_cached(&log, "RUN dd"), "{log}");
    crate::support::skopeo_inspect(&archive, false);

    let verified = kiln_test::assert_blobs_verified(state);
    let mounts = fs_err::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(state.to_str().unwrap()),
        "mounts left under the state directory"
    );
    let runc = Command::new("runc")
        .arg("--root")
        .arg(state.join("exec/runc"))
        .arg("list")
        .arg("-q")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&runc.stdout).trim().is_empty());

    assert_du_types_known("after the last build");
    // Pruning everything leaves no layer behind.
    let du = kiln(state, &["du", "--verbose"]);
    let du = String::from_utf8_lossy(&du.stdout).into_owned();
    let pruned = kiln(state, &["prune", "--all", "--force"]);
    crate::support::check(&pruned);
    let pruned = String::from_utf8_lossy(&pruned.stdout).into_owned();
    let layers: Vec<String> = fs_err::read_dir(state.join("snapshots"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str().map(str::to_owned))
        .filter(|n| n.parse::<u64>().is_ok())
        .collect();
    assert!(
        layers.is_empty(),
        "layers {layers:?} left after prune --all\n{pruned}\ndu before:\n{du}"
    );
    kiln_test::reliability_figure(
        "crash",
        "kill -9 of an embedded build (context copy, RUN writing 40 MB, export) at 10 moments: kills survived, blobs verified, leftovers after prune --all",
        format!("{}, {verified}, 0", delays.len()),
    );
}

/// Ctrl-C during a RUN: the container's processes are killed, the build fails as
/// cancelled within moments, and no runc container or mount is left behind.
#[test]
fn ctrl_c_cancels_a_running_step_and_leaves_nothing() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("slow-step");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!("FROM 127.0.0.1:{port}/busybox:latest\nRUN echo step-started && sleep 60\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .args(["build", "--progress=plain", project.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let line = line.unwrap_or_default();
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    // Wait for the step to run, then interrupt.
    let started = std::time::Instant::now();
    let runc_root = state.join("exec/runc");
    while !fs_err::read_dir(&runc_root).is_ok_and(|mut d| d.next().is_some()) {
        assert!(started.elapsed().as_secs() < 30, "the step never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let interrupted = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let log = reader.join().unwrap();
    assert!(!status.success(), "{log}");
    assert!(
        interrupted.elapsed().as_secs() < 10,
        "cancelling took too long"
    );
    assert!(log.contains("cancelled"), "{log}");
    let containers = Command::new("runc")
        .arg("--root")
        .arg(&runc_root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&containers.stdout).trim(), "");
    let mounts = fs_err::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(state.to_str().unwrap()),
        "mounts left behind:\n{mounts}"
    );
}
