//! Fixtures shared by the integration tests: the tools check, a local `docker-registry`
//! on 127.0.0.1 serving a busybox base image that kiln builds and pushes
//! (examples/setup.sh), the kiln binary, skopeo and a directory walk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) use kiln_test::{KillOnDrop, free_port, git, serve_directory};
use serde_json::Value;

/// Whether the real parts the integration tests use are here; if not, the test is
/// skipped (a failure under `CI=true`).
pub(crate) fn tools_present() -> bool {
    let ok = kiln_test::is_root()
        && [
            "runc",
            "docker-registry",
            "skopeo",
            "umoci",
            "busybox",
            "curl",
        ]
        .iter()
        .all(|b| kiln_test::on_path(b));
    if !ok {
        kiln_test::skip(
            "needs root, runc, docker-registry, skopeo, umoci, busybox-static and curl",
        );
    }
    ok
}

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Stops the registry the setup script started, by its pid.
pub(crate) struct Registry {
    pub(crate) pid_file: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Ok(pid) = fs_err::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

pub(crate) fn kiln(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .args(args)
        .output()
        .unwrap()
}

pub(crate) fn check(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "kiln failed:\n{stderr}");
    stderr
}

/// `kiln build --progress=plain EXTRA… -o type=local,dest=OUT DIR`, which must succeed;
/// returns its log.
pub(crate) fn build_into(state: &Path, dir: &Path, out: &Path, extra: &[&str]) -> String {
    let output = format!("type=local,dest={}", out.display());
    let mut args = vec!["build", "--progress=plain"];
    args.extend_from_slice(extra);
    args.extend(["-o", output.as_str(), dir.to_str().unwrap()]);
    check(&kiln(state, &args))
}

/// `kiln debug build-llb --progress=plain FILE -o type=local,dest=OUT`, which must
/// succeed; returns its log.
pub(crate) fn build_llb_into(state: &Path, definition: &Path, out: &Path) -> String {
    let output = format!("type=local,dest={}", out.display());
    check(&kiln(
        state,
        &[
            "debug",
            "build-llb",
            "--progress=plain",
            definition.to_str().unwrap(),
            "-o",
            output.as_str(),
        ],
    ))
}

/// A running local registry serving the busybox base image (examples/setup.sh), and
/// the directories around it. The registry stops before the directory is removed.
pub(crate) struct BaseImage {
    _registry: Registry,
    pub(crate) work: tempfile::TempDir,
    pub(crate) state: PathBuf,
    pub(crate) port: u16,
}

impl BaseImage {
    pub(crate) fn publish() -> BaseImage {
        let work = tempfile::tempdir().unwrap();
        let state = work.path().join("state");
        let port = free_port();
        let registry = Registry {
            pid_file: work.path().join("registry.pid"),
        };
        let setup = Command::new("bash")
            .arg(repo().join("examples/setup.sh"))
            .env("PORT", port.to_string())
            .env("WORK", work.path())
            .env("KILN", env!("CARGO_BIN_EXE_kiln"))
            .env("KILN_ROOT", &state)
            .output()
            .unwrap();
        assert!(
            setup.status.success(),
            "setup failed:\n{}",
            String::from_utf8_lossy(&setup.stderr)
        );
        BaseImage {
            _registry: registry,
            work,
            state,
            port,
        }
    }
}

/// `skopeo inspect [--config] oci-archive:FILE` as JSON.
pub(crate) fn skopeo_inspect(archive: &Path, config: bool) -> Value {
    let mut command = Command::new("skopeo");
    command.arg("inspect");
    if config {
        command.arg("--config");
    }
    let inspect = command
        .arg(format!("oci-archive:{}", archive.display()))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}: {}",
        archive.display(),
        String::from_utf8_lossy(&inspect.stderr)
    );
    serde_json::from_slice(&inspect.stdout).unwrap()
}

/// `skopeo inspect` of an image in the test registry (`--raw` for the manifest as
/// stored, `--config` for the config).
pub(crate) fn skopeo_remote(image: &str, flag: Option<&str>) -> Value {
    skopeo_remote_with(image, &flag.into_iter().collect::<Vec<_>>())
}

/// `skopeo [GLOBAL…] inspect --tls-verify=false FLAGS… docker://IMAGE` as JSON; global
/// options (`--override-arch`) are the flags before `inspect`'s own, up to `--`.
pub(crate) fn skopeo_remote_with(image: &str, flags: &[&str]) -> Value {
    let (global, own) = match flags.iter().position(|f| *f == "--") {
        Some(split) => (&flags[..split], &flags[split + 1..]),
        None => (&[][..], flags),
    };
    let output = Command::new("skopeo")
        .args(global)
        .args(["inspect", "--tls-verify=false"])
        .args(own)
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{image}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every path in a directory tree, relative.
pub(crate) fn tree(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.insert(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    out
}

/// Whether the plain-progress step whose title contains `title` was answered from the
/// cache (`#N CACHED`).
pub(crate) fn step_cached(log: &str, title: &str) -> bool {
    let Some(step) = log
        .lines()
        .find(|l| l.contains(title))
        .and_then(|l| l.split_whitespace().next())
    else {
        panic!("no step {title:?} in:\n{log}");
    };
    log.lines().any(|l| l == format!("{step} CACHED"))
}

/// An OCI archive whose image is tagged `1`, unpacked by umoci into a fresh `dir`;
/// returns the root file system.
pub(crate) fn umoci_unpack(archive: &Path, dir: &Path) -> PathBuf {
    let unpack = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "rm -rf {0} && mkdir -p {0}/layout && tar -C {0}/layout -xf {1} && umoci unpack --image {0}/layout:1 {0}/bundle",
            dir.display(),
            archive.display()
        ))
        .output()
        .unwrap();
    assert!(unpack.status.success(), "{unpack:?}");
    dir.join("bundle/rootfs")
}

/// Every entry under `root` (path, type, mode, owner, link target), then every
/// file's digest: two trees with the same listing hold the same things.
pub(crate) fn tree_listing(root: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg("find . -printf '%p %y %m %U:%G %l\\n' | sort && find . -type f | sort | xargs -r sha256sum")
        .current_dir(root)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Removes a cgroup that runc made as a step's parent (`--cgroup-parent NAME`), in every
/// hierarchy it made it in; it is empty once the steps are gone.
pub(crate) fn remove_cgroup(name: &str) {
    if let Ok(hierarchies) = fs_err::read_dir("/sys/fs/cgroup") {
        for hierarchy in hierarchies.flatten() {
            let _ = std::fs::remove_dir(hierarchy.path().join(name));
        }
    }
}
