//! Processes of another architecture: nothing to do when the machine runs them
//! (natively or through a binfmt_misc handler, see [`crate::archutil`]); else BuildKit's
//! fallback (`solver/llbsolver/ops/exec_binfmt.go`) of calling a QEMU user emulator
//! directly: its binary bound read-only at [`EMULATOR_MOUNT`] and put before argv.

use std::path::PathBuf;

use kiln_oci::Platform;

use crate::{Error, Mount, MountKind, Process};

/// Where the emulator appears in the container, as BuildKit mounts it.
pub const EMULATOR_MOUNT: &str = "/dev/.buildkit_qemu_emulator";

/// QEMU's name of an architecture, where it is not the platform's.
fn qemu_arch(architecture: &str) -> &str {
    match architecture {
        "arm64" => "aarch64",
        "amd64" => "x86_64",
        "386" => "i386",
        "loong64" => "loongarch64",
        // BuildKit's map lacks it, but its probe fails where QEMU runs its programs.
        "mips64le" => "mips64el",
        other => other,
    }
}

/// The emulator binary for `platform`: BuildKit's `buildkit-qemu-ARCH`, else Debian's
/// `qemu-ARCH-static` (qemu-user-static) or `qemu-ARCH` (qemu-user), on `PATH`.
fn find_emulator(platform: &Platform) -> Option<PathBuf> {
    let arch = qemu_arch(&platform.architecture);
    let path = std::env::var_os("PATH")?;
    let names = [
        format!("buildkit-qemu-{arch}"),
        format!("qemu-{arch}-static"),
        format!("qemu-{arch}"),
    ];
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Makes `process` (with `mounts`) run for `platform`: unchanged when this machine runs
/// the platform's processes, else through the emulator called directly. A platform
/// with neither is an error naming it and the package that brings its emulator.
pub fn emulate(
    platform: &Platform,
    process: &mut Process,
    mounts: &mut Vec<Mount>,
) -> Result<(), Error> {
    if crate::archutil::is_supported(platform) {
        return Ok(());
    }
    let emulator = find_emulator(platform).ok_or_else(|| Error::NoEmulator {
        platform: platform.to_string(),
    })?;
    call_directly(emulator, process, mounts);
    Ok(())
}

/// Runs `process` through `emulator`, bound at [`EMULATOR_MOUNT`] and put before argv.
pub fn call_directly(emulator: PathBuf, process: &mut Process, mounts: &mut Vec<Mount>) {
    process.args.insert(0, EMULATOR_MOUNT.to_owned());
    mounts.push(Mount {
        destination: EMULATOR_MOUNT.to_owned(),
        kind: MountKind::Bind {
            source: emulator,
            readonly: true,
        },
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_native_platform_needs_nothing() {
        let mut process = Process {
            args: vec!["uname".to_owned(), "-m".to_owned()],
            ..Process::default()
        };
        let mut mounts = Vec::new();
        emulate(&Platform::host(), &mut process, &mut mounts).unwrap();
        assert_eq!(process.args, ["uname", "-m"]);
        assert!(mounts.is_empty());
    }

    #[test]
    fn a_platform_without_emulator_names_the_package() {
        // QEMU has no IA-64 emulator.
        let platform: Platform = "linux/ia64".parse().unwrap();
        let mut process = Process::default();
        let error = emulate(&platform, &mut process, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("linux/ia64"), "{error}");
        assert!(error.contains("qemu-user-static"), "{error}");
    }
}
