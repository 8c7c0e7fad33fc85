//! Real runc runs on a busybox rootfs (root only; skipped with a note otherwise, a failure under CI).

use std::path::Path;
use std::sync::Mutex;

mod emulation;

use kiln_exec::{Executor, Mount, MountKind, NetworkMode, OutputStream, Process, Runc, User};

fn can_run() -> bool {
    let ok =
        kiln_test::is_root() && Path::new("/bin/busybox").exists() && kiln_test::on_path("runc");
    if !ok {
        kiln_test::skip("needs root, runc and busybox-static");
    }
    ok
}

fn busybox_rootfs(dir: &Path) {
    fs_err::create_dir_all(dir.join("bin")).unwrap();
    fs_err::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "cat", "id", "ls", "hostname", "touch"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    fs_err::create_dir_all(dir.join("etc")).unwrap();
    fs_err::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n",
    )
    .unwrap();
    fs_err::write(dir.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").unwrap();
}

fn run(rootfs: &Path, state: &Path, process: &Process, mounts: &[Mount]) -> (i32, String) {
    let out = Mutex::new(Vec::new());
    let executor = Runc::new("runc", state);
    let id = format!("kiln-test-{}-{}", std::process::id(), rand_suffix());
    let code = executor
        .run(
            &id,
            rootfs,
            process,
            mounts,
            &|_s: OutputStream, b: &[u8]| out.lock().unwrap().extend_from_slice(b),
        )
        .unwrap()
        .code;
    (
        code,
        String::from_utf8_lossy(&out.lock().unwrap()).into_owned(),
    )
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn runs_commands_with_env_user_and_mounts() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let data = dir.path().join("data");
    fs_err::create_dir_all(&data).unwrap();
    fs_err::write(data.join("f"), "from host\n").unwrap();
    let process = Process {
        args: vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo $GREETING; id -u; cat /mnt/f; hostname".into(),
        ],
        env: vec!["PATH=/bin".into(), "GREETING=hello".into()],
        cwd: "/".into(),
        user: User {
            uid: 65534,
            gid: 65534,
            additional_gids: vec![],
        },
        network: NetworkMode::None,
        ..Process::default()
    };
    let mounts = [Mount {
        destination: "/mnt".into(),
        kind: MountKind::Bind {
            source: data.clone(),
            readonly: true,
        },
    }];
    let (code, out) = run(&rootfs, &dir.path().join("state"), &process, &mounts);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "hello\n65534\nfrom host\nbuildkitsandbox\n");
    // Mount points the run created are gone from the rootfs.
    assert!(!rootfs.join("mnt").exists());
    assert!(!rootfs.join("etc/hosts").exists());
}

#[test]
fn reports_the_exit_code() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let process = Process {
        args: vec!["/bin/sh".into(), "-c".into(), "touch /made; exit 3".into()],
        env: vec!["PATH=/bin".into()],
        ..Process::default()
    };
    let (code, _) = run(&rootfs, &dir.path().join("state"), &process, &[]);
    assert_eq!(code, 3);
    assert!(rootfs.join("made").exists());
}

/// When runc cannot set the container up (here: a bind mount whose source is gone), the
/// exit carries runc's own explanation; a process that ran and failed carries none.
#[test]
fn a_container_that_cannot_start_says_why() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let process = Process {
        args: vec!["/bin/sh".into(), "-c".into(), "exit 1".into()],
        env: vec!["PATH=/bin".into()],
        ..Process::default()
    };
    let missing = [Mount {
        destination: "/src".into(),
        kind: MountKind::Bind {
            source: dir.path().join("gone"),
            readonly: true,
        },
    }];
    let executor = Runc::new("runc", dir.path().join("state"));
    let exit = executor
        .run("kiln-test-nostart", &rootfs, &process, &missing, &|_, _| {})
        .unwrap();
    assert_eq!(exit.code, 1);
    let why = exit.runtime_error.unwrap_or_default();
    assert!(why.contains("no such file or directory"), "{why}");
    assert!(why.contains("/src"), "{why}");

    let exit = executor
        .run("kiln-test-ran", &rootfs, &process, &[], &|_, _| {})
        .unwrap();
    assert_eq!((exit.code, exit.runtime_error), (1, None));
}

/// A read-only rootfs: the process cannot write to it, yet runc made its mount points
/// (/etc/hosts, /mnt) in it first, and they are gone afterwards.
#[test]
fn a_read_only_rootfs_still_gets_its_mount_points() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let data = dir.path().join("data");
    fs_err::create_dir_all(&data).unwrap();
    let process = Process {
        args: vec![
            "/bin/sh".into(),
            "-c".into(),
            "touch /mnt/ok && (touch /nope 2>/dev/null; echo $?)".into(),
        ],
        env: vec!["PATH=/bin".into()],
        readonly_rootfs: true,
        ..Process::default()
    };
    let mounts = [Mount {
        destination: "/mnt".into(),
        kind: MountKind::Bind {
            source: data.clone(),
            readonly: false,
        },
    }];
    let (code, out) = run(&rootfs, &dir.path().join("state"), &process, &mounts);
    assert_eq!((code, out.trim()), (0, "1"));
    assert!(data.join("ok").exists());
    assert!(!rootfs.join("nope").exists() && !rootfs.join("mnt").exists());
    assert!(!rootfs.join("etc/hosts").exists());
}

/// A directory that held mount stubs gets its times from before the run back when
/// nothing but the stubs changed it (so a layer need not hold it), and keeps the time
/// the process gave it otherwise (BuildKit's TestMountStubsTimestamp).
#[test]
fn stub_parents_keep_their_times_unless_the_process_set_them() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    for sub in ["etc", "var"] {
        fs_err::create_dir_all(rootfs.join(sub)).unwrap();
        fs_err::File::open(rootfs.join(sub))
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_modified(long_ago))
            .unwrap();
    }
    let process = Process {
        args: vec![
            "/bin/touch".into(),
            "-d".into(),
            "@1234567890".into(),
            "/var".into(),
        ],
        env: vec!["PATH=/bin".into()],
        ..Process::default()
    };
    let mounts = [Mount {
        destination: "/var/m".into(),
        kind: MountKind::Tmpfs {
            size: 0,
            readonly: false,
        },
    }];
    let (code, out) = run(&rootfs, &dir.path().join("state"), &process, &mounts);
    assert_eq!(code, 0, "{out}");
    let mtime = |sub: &str| {
        fs_err::metadata(rootfs.join(sub))
            .unwrap()
            .modified()
            .unwrap()
    };
    assert_eq!(mtime("etc"), long_ago);
    assert_eq!(
        mtime("var"),
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890)
    );
    assert!(!rootfs.join("var/m").exists() && !rootfs.join("etc/hosts").exists());
}
