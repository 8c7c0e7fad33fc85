//! Other architectures' processes: the platforms detected through binfmt_misc, and
//! BuildKit's fallback of calling the emulator directly.

use std::path::Path;

use kiln_exec::{Process, User, archutil, emulator};

/// Whether QEMU's handlers are registered (`.ci/run` installs and registers them).
fn qemu_registered() -> bool {
    let ok = Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists();
    if !ok {
        kiln_test::skip("qemu-user-static's handlers are not registered in binfmt_misc");
    }
    ok
}

/// BuildKit v0.24's worker platforms on this machine (`buildctl debug workers -v` with
/// Debian's qemu-user-static registered), after the native amd64 and its levels.
#[test]
fn detects_the_platforms_buildkit_detects() {
    if !qemu_registered() {
        return;
    }
    let all: Vec<String> = archutil::supported_platforms()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(all[0], kiln_oci::Platform::host().to_string());
    let foreign: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|p| !p.starts_with("linux/amd64"))
        .collect();
    assert_eq!(
        foreign,
        [
            "linux/arm64",
            "linux/riscv64",
            "linux/ppc64",
            "linux/ppc64le",
            "linux/s390x",
            "linux/386",
            "linux/loong64",
            "linux/arm/v7",
            "linux/arm/v6"
        ]
    );
}

/// An arm64 busybox run by calling qemu-aarch64-static directly, as BuildKit does where
/// no handler is registered: its `uname -m` is aarch64.
#[test]
fn calls_the_emulator_directly() {
    if !super::can_run() || !qemu_registered() {
        return;
    }
    let Some(qemu) = ["/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
    else {
        kiln_test::skip("qemu-aarch64-static not installed");
        return;
    };
    let deb = match kiln_test::busybox_static_deb("arm64") {
        Ok(deb) => deb,
        Err(why) => return kiln_test::skip(&why),
    };
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    let unpacked = std::process::Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(unpacked.success());
    let mut process = Process {
        args: vec!["/bin/busybox".into(), "uname".into(), "-m".into()],
        user: User::default(),
        ..Process::default()
    };
    let mut mounts = Vec::new();
    emulator::call_directly(qemu.to_path_buf(), &mut process, &mut mounts);
    assert_eq!(process.args[0], emulator::EMULATOR_MOUNT);
    let (code, output) = super::run(&rootfs, &tmp.path().join("state"), &process, &mounts);
    assert_eq!((code, output.trim()), (0, "aarch64"));
}
