//! A full disk (issue #19): the state directory on a small loop-mounted ext4. A build
//! that runs out of space fails saying so and naming the state directory, leaves
//! nothing half-written, and after `kiln prune` the same build passes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{check, kiln, tools_present};

/// An ext4 file system of `mib` MiB in a file, loop-mounted; unmounted when dropped.
struct SmallDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(mib: u64) -> Option<SmallDisk> {
        if !kiln_test::is_root() {
            kiln_test::skip("loop-mounting a file system needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        let mount = dir.path().join("mnt");
        fs_err::create_dir_all(&mount).unwrap();
        fs_err::File::create(&image)
            .unwrap()
            .set_len(mib << 20)
            .unwrap();
        let run = |command: &mut Command| {
            let output = command.output().unwrap();
            assert!(output.status.success(), "{command:?}: {output:?}");
        };
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount));
        Some(SmallDisk { mount, _dir: dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

/// The layers (snapshot directories) in a state directory.
fn layers(state: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs_err::read_dir(state.join("snapshots"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str().map(str::to_owned))
        .filter(|n| n.parse::<u64>().is_ok())
        .collect();
    names.sort();
    names
}

#[test]
fn a_full_disk_fails_clearly_and_prune_makes_room() {
    if !tools_present() {
        return;
    }
    let Some(disk) = SmallDisk::new(96) else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let base = registry.push_busybox();
    let state = disk.mount.join("state");
    let work = tempfile::tempdir().unwrap();
    let context = |name: &str, mib: u32| {
        let dir = work.path().join(name);
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::write(
            dir.join("Dockerfile"),
            format!(
                "FROM {base}\nRUN dd if=/dev/urandom of=/{name} bs=1M count={mib} 2>/dev/null\n"
            ),
        )
        .unwrap();
        dir
    };
    // 40 MiB kept in the build cache, then a build of 50 MiB more: more than the disk.
    let first = context("first", 40);
    let small = context("small", 0);
    let second = context("second", 50);
    let build = |dir: &Path| {
        kiln(
            &state,
            &["build", "--progress=plain", dir.to_str().unwrap()],
        )
    };
    check(&build(&first));
    let before = layers(&state);
    let failed = build(&second);
    assert!(!failed.status.success());
    let message = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert!(
        message.contains("no space was left") && message.contains(state.to_str().unwrap()),
        "the error does not say the state's disk is full:\n{message}"
    );
    assert!(message.contains("kiln prune"), "{message}");
    assert_eq!(layers(&state), before, "the failed build left layers");
    kiln_test::assert_blobs_verified(&state);
    // The cache is what fills the disk: once pruned, the same build passes.
    check(&kiln(&state, &["prune", "--all", "--force"]));
    check(&build(&second));
    kiln_test::assert_blobs_verified(&state);

    // kiln's own writes: a pull onto a disk with 300 KiB left (the layer is 1 MiB).
    let fresh = disk.mount.join("fresh");
    let filler = disk.mount.join("filler");
    // Filled to the last block, then 300 KiB given back.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64K"])
        .arg(format!("of={}", filler.display()))
        .output()
        .unwrap();
    let trim = Command::new("truncate")
        .args(["-s", "-300K"])
        .arg(&filler)
        .output()
        .unwrap();
    assert!(trim.status.success(), "{trim:?}");
    let pull = || {
        kiln(
            &fresh,
            &["build", "--progress=plain", small.to_str().unwrap()],
        )
    };
    let failed = pull();
    assert!(!failed.status.success());
    let message = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert!(
        message.contains("no space left on the filesystem of kiln's state")
            && message.contains(fresh.to_str().unwrap()),
        "the error does not say the state's disk is full:\n{message}"
    );
    assert!(layers(&fresh).is_empty(), "{:?}", layers(&fresh));
    kiln_test::assert_blobs_verified(&fresh);
    fs_err::remove_file(&filler).unwrap();
    check(&pull());
    kiln_test::assert_blobs_verified(&fresh);
    kiln_test::reliability_figure(
        "disk full",
        "state on a 96 MiB ext4, a RUN and a pull needing more than is left: failed naming the state, layers or blobs left half-written, passed once there was room",
        "2 of 2, 0, 2 of 2",
    );
}
