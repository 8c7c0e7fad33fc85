//! Real runc runs on a busybox rootfs (root only; skipped with a note otherwise, a failure under CI).

use std::path::Path;
use std::sync::Mutex;

use kiln_exec::{Executor, Mount, MountKind, NetworkMode, OutputStream, Process, User};

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
    let executor = Executor::new("runc", state);
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
