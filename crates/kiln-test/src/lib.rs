//! Test support, a dev-dependency only: what every test binary of the workspace shares.
//!
//! - [`skip`]: a real-part test that cannot run here says why; under `CI=true` that is
//!   a failure (CI machines have every part), elsewhere it is counted in
//!   `$KILN_SKIP_LOG` so that `.ci/run` can print how many tests skipped.
//! - [`conformance_dir`]: the shared conformance data (`KILN_CONFORMANCE_DIR`, relative
//!   to the workspace root, by default `../shared/conformance`).
//! - [`report_suite`]: the `<suite>: N passed, M failed` line of a conformance runner.
//!
//! - [`reliability_figure`]: a figure of the reliability suite, for its table.
//! - [`Probe`]: an HTTP server counting requests by path, to count step executions.
//! - [`FaultProxy`]: a proxy in front of a registry that injects faults (resets,
//!   truncated or corrupted bodies, error statuses, slow bodies) into chosen requests.
//! - [`cloud`]: moto's S3 server and Azurite, for the cloud cache backends.
//!
//! It depends on no kiln crate, so any crate's tests may use it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

pub mod cloud;
mod fault_proxy;
mod probe;
pub use fault_proxy::{Fault, FaultProxy};
pub use probe::Probe;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the tests run under CI (`CI=true`), where nothing may be skipped.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Marks the running test as skipped because `reason` (what is missing). Under CI this
/// panics: a skipped real-part test must not count as passed there. Elsewhere it prints
/// `skipped: REASON` and appends the test's name to `$KILN_SKIP_LOG`, if set.
pub fn skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    assert!(
        !under_ci(),
        "{test} cannot run: {reason} (CI=true: a real-part test must not skip)"
    );
    println!("skipped: {reason}");
    note_skip(&test, reason);
}

/// Appends a skipped test to `$KILN_SKIP_LOG`, which `.ci/run` lists at the end.
fn note_skip(test: &str, reason: &str) {
    if let Some(log) = std::env::var_os("KILN_SKIP_LOG") {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{test}: {reason}");
        }
    }
}

/// Notes a figure of the reliability suite (issue #19): printed as
/// `reliability: AREA | WHAT | VALUE` and appended to `$KILN_RELIABILITY_LOG` when set,
/// from which `docs/reliability/run.sh` writes the table of `docs/reliability.md`.
pub fn reliability_figure(area: &str, what: &str, value: impl std::fmt::Display) {
    let line = format!("{area} | {what} | {value}");
    println!("reliability: {line}");
    if let Some(log) = std::env::var_os("KILN_RELIABILITY_LOG") {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// Checks a kiln state directory's content store after whatever was done to it: every
/// blob hashes to its name and no write is left half done in `ingest`. Returns how many
/// blobs were checked.
pub fn assert_blobs_verified(state: &Path) -> usize {
    use sha2::{Digest as _, Sha256};
    let mut checked = 0;
    for entry in fs_err::read_dir(state.join("content/blobs/sha256")).expect("the blobs") {
        let path = entry.expect("a blob").path();
        let actual: String = Sha256::digest(fs_err::read(&path).expect("a blob"))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some(actual.as_str()),
            "{} is not what its name says",
            path.display()
        );
        checked += 1;
    }
    let ingest = fs_err::read_dir(state.join("content/ingest")).expect("the ingest directory");
    assert_eq!(
        ingest.count(),
        0,
        "half-written blobs left in {}",
        state.display()
    );
    checked
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    fs_err::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether `bin` is on `PATH`.
pub fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

/// The conformance data set `set` (`dockerfile`, `llb`, `bake`, `e2e`), or `None` after a
/// [`skip`] when it is absent.
pub fn conformance_dir(set: &str) -> Option<PathBuf> {
    let data = std::env::var_os("KILN_CONFORMANCE_DIR")
        .map_or_else(|| PathBuf::from("../shared/conformance"), PathBuf::from);
    let dir = workspace_root().join(data).join(set);
    if dir.is_dir() {
        Some(dir)
    } else {
        skip(&format!("conformance data {} not found", dir.display()));
        None
    }
}

/// Runs a suite of case directories: `check` on every directory under `dir` that
/// `is_case` accepts, in name order; then [`report_suite`].
pub fn run_suite(
    suite: &str,
    dir: &Path,
    is_case: impl Fn(&Path) -> bool,
    mut check: impl FnMut(&Path) -> Result<(), String>,
) {
    let mut cases: Vec<PathBuf> = fs_err::read_dir(dir)
        .unwrap_or_else(|e| panic!("{suite}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_dir() && is_case(p))
        .collect();
    cases.sort();
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(why) = check(case) {
            let name = case.file_name().unwrap_or_default().to_string_lossy();
            failures.push(format!("{name}: {why}"));
        }
    }
    report_suite(suite, cases.len() - failures.len(), &failures);
}

/// Prints each failure and the suite line `<suite>: N passed, M failed`, then fails the
/// test if any case failed.
pub fn report_suite(suite: &str, passed: usize, failures: &[String]) {
    for failure in failures {
        println!("  FAIL {failure}");
    }
    println!("{suite}: {passed} passed, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{suite}: {} case(s) failed",
        failures.len()
    );
}

/// A `docker-registry` on 127.0.0.1 (a free port, storage in a temp directory),
/// stopped when dropped.
pub struct Registry {
    /// Its port.
    pub port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts one and waits until it answers.
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().expect("a temp directory");
        let port = free_port();
        let config = dir.path().join("config.yml");
        fs_err::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n",
                dir.path().join("data").display()
            ),
        )
        .expect("the registry's config");
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Registry {
            port,
            child,
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes a busybox image (Debian's busybox-static, its applet links, `/tmp`,
    /// `/root`, passwd and group for root and nobody) as `HOST/busybox:latest`, made
    /// with umoci and copied with skopeo; returns its name.
    pub fn push_busybox(&self) -> String {
        let work = tempfile::tempdir().expect("a temp directory");
        busybox_rootfs(Path::new("/bin/busybox"), &work.path().join("rootfs"));
        let name = format!("{}/busybox:latest", self.host());
        let script = format!(
            "set -e; cd {work}; tar -C rootfs -cf layer.tar .; \
             umoci init --layout layout; umoci new --image layout:latest; \
             umoci raw add-layer --image layout:latest layer.tar; \
             umoci config --image layout:latest --architecture amd64 --os linux \
               --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; \
             skopeo copy --quiet --dest-tls-verify=false oci:layout:latest docker://{name}",
            work = work.path().display()
        );
        let made = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("sh");
        assert!(
            made.status.success(),
            "making the busybox image failed: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        name
    }
}

/// A Dockerfile whose outline has global and stage args (one derived from another, one
/// inherited, one unused), described ones, secrets and ssh sockets in two stages. (No
/// two args or secrets share a line: BuildKit orders those as a Go map iterates.)
pub const OUTLINED_DOCKERFILE: &str = "\
ARG GO_VERSION=1.22
# BASE the base image to build on
ARG BASE=scratch
ARG UNUSED=x
ARG DERIVED=${GO_VERSION}-x

# build compiles the binary
FROM ${BASE} AS build
ARG TARGETOS
# VERSION the version to stamp
ARG VERSION=dev
ARG GO_VERSION
ARG B=2
RUN --mount=type=secret,id=token,required=true --mount=type=ssh true
RUN --mount=type=secret,id=npmrc --mount=type=ssh,id=gh,required=true true
RUN --mount=type=secret,target=/root/.aws true

FROM scratch AS tools
ARG DERIVED
ARG TOOLS=1
RUN --mount=type=secret,id=tools true

FROM build
COPY --from=tools / /
ARG FINAL
";

/// The platforms of [`Registry::push_busybox_multiarch`]'s image, with the Debian
/// architecture whose busybox-static each is made of.
pub const BUSYBOX_PLATFORMS: [(&str, &str); 3] = [
    ("linux/amd64", "amd64"),
    ("linux/arm64", "arm64"),
    ("linux/arm/v7", "armhf"),
];

impl Registry {
    /// Pushes a multi-arch busybox as one OCI index, `HOST/busybox-multiarch:latest`:
    /// one image per [`BUSYBOX_PLATFORMS`] entry, each the [`Registry::push_busybox`]
    /// tree around that architecture's `busybox-static` (the .debs are fetched once
    /// with `apt-get download` into [`test_cache`]`/debs`). Returns its name, or `None` after
    /// a [`skip`] when a .deb cannot be had.
    pub fn push_busybox_multiarch(&self) -> Option<String> {
        let work = tempfile::tempdir().expect("a temp directory");
        let layout = work.path().join("layout");
        fs_err::create_dir_all(layout.join("blobs/sha256")).expect("the layout");
        let mut manifests = Vec::new();
        for (platform, deb_arch) in BUSYBOX_PLATFORMS {
            let deb = match busybox_static_deb(deb_arch) {
                Ok(deb) => deb,
                Err(why) => {
                    skip(&why);
                    return None;
                }
            };
            let unpacked = work.path().join(format!("deb-{deb_arch}"));
            run_sh(&format!(
                "dpkg-deb -x '{}' '{}'",
                deb.display(),
                unpacked.display()
            ));
            let rootfs = work.path().join(format!("rootfs-{deb_arch}"));
            busybox_rootfs(&unpacked.join("bin/busybox"), &rootfs);
            let layer_tar = work.path().join(format!("layer-{deb_arch}.tar"));
            run_sh(&format!(
                "tar --numeric-owner -C '{}' -cf '{}' . && gzip -n -k '{}'",
                rootfs.display(),
                layer_tar.display(),
                layer_tar.display()
            ));
            let diff_id = sha256_of(&fs_err::read(&layer_tar).expect("the layer"));
            let layer = add_blob(
                &layout,
                &fs_err::read(layer_tar.with_extension("tar.gz")).expect("the gzipped layer"),
            );
            let mut parts = platform.split('/');
            let (os, architecture, variant) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next(),
            );
            let mut platform_json = serde_json::json!({"architecture": architecture, "os": os});
            if let Some(variant) = variant {
                platform_json["variant"] = variant.into();
            }
            let mut config = platform_json.clone();
            config["config"] = serde_json::json!({
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            });
            config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": [diff_id]});
            let config = add_json_blob(&layout, &config);
            let manifest = add_json_blob(
                &layout,
                &serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
                    "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &layer)],
                }),
            );
            let mut entry = descriptor("application/vnd.oci.image.manifest.v1+json", &manifest);
            entry["platform"] = platform_json;
            manifests.push(entry);
        }
        let index = add_json_blob(
            &layout,
            &serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": manifests,
            }),
        );
        let mut top = descriptor("application/vnd.oci.image.index.v1+json", &index);
        top["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "latest"});
        fs_err::write(
            layout.join("index.json"),
            serde_json::json!({"schemaVersion": 2, "manifests": [top]}).to_string(),
        )
        .expect("index.json");
        fs_err::write(
            layout.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("oci-layout");
        let name = format!("{}/busybox-multiarch:latest", self.host());
        run_sh(&format!(
            "skopeo copy --quiet --all --dest-tls-verify=false oci:'{}':latest docker://{name}",
            layout.display()
        ));
        Some(name)
    }
}

/// Where what test base images are made of is kept between runs (`KILN_TEST_CACHE`,
/// else `/var/tmp/kiln-test`): `debs/` (other architectures' busybox-static), `bases/`
/// (images made with debootstrap, as OCI archives).
pub fn test_cache() -> PathBuf {
    std::env::var_os("KILN_TEST_CACHE")
        .map_or_else(|| PathBuf::from("/var/tmp/kiln-test"), PathBuf::from)
}

impl Registry {
    /// Pushes Debian bookworm (minbase with gcc, libc6-dev and the aarch64 cross
    /// compiler, `gcc-aarch64-linux-gnu` and `libc6-dev-arm64-cross`) for linux/amd64 as
    /// `HOST/debian-cross:bookworm`; returns its name, or `None` after a [`skip`] when
    /// it cannot be made. debootstrap makes it once (about a minute, from Debian's
    /// mirror); it is kept as an OCI archive in [`test_cache`]`/bases`.
    pub fn push_debian_cross(&self) -> Option<String> {
        let archive = test_cache().join("bases/debian-cross.tar");
        if !archive.is_file() {
            if let Err(why) = make_debian_cross(&archive) {
                skip(&why);
                return None;
            }
        }
        let name = format!("{}/debian-cross:bookworm", self.host());
        run_sh(&format!(
            "skopeo copy --quiet --dest-tls-verify=false oci-archive:'{}':bookworm docker://{name}",
            archive.display()
        ));
        Some(name)
    }
}

/// debootstraps the cross-compiling Debian into an OCI archive at `archive` (written
/// beside it, then renamed).
fn make_debian_cross(archive: &Path) -> Result<(), String> {
    let dir = archive.parent().expect("a cache directory");
    fs_err::create_dir_all(dir).map_err(|e| e.to_string())?;
    let work = tempfile::tempdir_in(dir).map_err(|e| e.to_string())?;
    let script = format!(
        "set -e; cd '{work}'; \
         debootstrap --variant=minbase --include=gcc,libc6-dev,gcc-aarch64-linux-gnu,libc6-dev-arm64-cross bookworm rootfs http://deb.debian.org/debian >debootstrap.log 2>&1 || {{ tail -5 debootstrap.log >&2; exit 1; }}; \
         rm -rf rootfs/var/cache/apt/archives/*.deb rootfs/var/lib/apt/lists/* rootfs/usr/share/doc rootfs/usr/share/man rootfs/usr/share/locale; \
         tar --numeric-owner -C rootfs -cf layer.tar .; rm -rf rootfs; \
         umoci init --layout layout; umoci new --image layout:bookworm; \
         umoci raw add-layer --image layout:bookworm layer.tar; \
         umoci config --image layout:bookworm --architecture amd64 --os linux \
           --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; \
         skopeo copy --quiet oci:layout:bookworm oci-archive:'{archive}.partial':bookworm; \
         mv '{archive}.partial' '{archive}'",
        work = work.path().display(),
        archive = archive.display()
    );
    let made = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .map_err(|e| format!("sh: {e}"))?;
    if made.status.success() {
        Ok(())
    } else {
        Err(format!(
            "debootstrap of a cross-compiling Debian failed (needs debootstrap, umoci, skopeo and Debian's mirror): {}",
            String::from_utf8_lossy(&made.stderr).trim()
        ))
    }
}

/// Debian's busybox-static .deb of `deb_arch`, downloaded into [`test_cache`]`/debs`
/// once.
pub fn busybox_static_deb(deb_arch: &str) -> Result<PathBuf, String> {
    let cache = test_cache().join("debs");
    let find = || {
        fs_err::read_dir(&cache).ok().and_then(|entries| {
            entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with("busybox-static_") && name.ends_with(&format!("_{deb_arch}.deb"))
            })
        })
    };
    if let Some(deb) = find() {
        return Ok(deb);
    }
    fs_err::create_dir_all(&cache).map_err(|e| e.to_string())?;
    // Into a temp directory first: a download cut short never looks cached.
    let partial = tempfile::tempdir_in(&cache).map_err(|e| e.to_string())?;
    let downloaded = std::process::Command::new("apt-get")
        .args(["download", &format!("busybox-static:{deb_arch}")])
        .current_dir(partial.path())
        .output()
        .map_err(|e| format!("apt-get: {e}"))?;
    if !downloaded.status.success() {
        return Err(format!(
            "busybox-static:{deb_arch} cannot be downloaded (dpkg --add-architecture {deb_arch}; apt-get update): {}",
            String::from_utf8_lossy(&downloaded.stderr).trim()
        ));
    }
    for entry in fs_err::read_dir(partial.path()).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if let Some(name) = path.file_name() {
            fs_err::rename(&path, cache.join(name)).map_err(|e| e.to_string())?;
        }
    }
    find().ok_or_else(|| format!("apt-get download busybox-static:{deb_arch} left no .deb"))
}

/// The tree of a busybox image around `busybox` (a static binary): its applet links
/// (the host busybox's `--list-full`, the same Debian version), `/tmp`, `/root`, and
/// passwd and group for root and nobody.
fn busybox_rootfs(busybox: &Path, rootfs: &Path) {
    for dir in ["bin", "etc", "tmp", "root"] {
        fs_err::create_dir_all(rootfs.join(dir)).expect("rootfs directories");
    }
    fs_err::copy(busybox, rootfs.join("bin/busybox")).expect("busybox");
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list-full")
        .output()
        .expect("busybox --list-full");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet == "bin/busybox" || applet.is_empty() {
            continue;
        }
        let path = rootfs.join(applet);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent).expect("applet directory");
        }
        let _ = std::os::unix::fs::symlink("/bin/busybox", &path);
    }
    use std::os::unix::fs::PermissionsExt as _;
    fs_err::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .expect("/tmp mode");
    fs_err::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .expect("passwd");
    fs_err::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("group");
}

fn run_sh(script: &str) {
    let ran = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh");
    assert!(
        ran.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
}

fn sha256_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(bytes);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Writes a blob into an OCI layout; returns its digest and size.
fn add_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = sha256_of(bytes);
    fs_err::write(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
        bytes,
    )
    .expect("a blob");
    (digest, bytes.len())
}

fn add_json_blob(layout: &Path, value: &serde_json::Value) -> (String, usize) {
    add_blob(layout, value.to_string().as_bytes())
}

fn descriptor(media_type: &str, (digest, size): &(String, usize)) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": size})
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `$VAR` when it names a file, else `name` on PATH.
pub fn find_tool(var: &str, name: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// A child process killed (and reaped) when dropped: a server a test started.
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    /// Starts `command` (its output discarded) and waits until something listens on
    /// 127.0.0.1:`port`, for up to five seconds.
    pub fn listening(mut command: std::process::Command, port: u16) -> KillOnDrop {
        let server = KillOnDrop(
            command
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("starting a test server"),
        );
        for _ in 0..50 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        server
    }
}

/// `dir` served over http by Python's http.server on a free port of 127.0.0.1 (files
/// with a Last-Modified header; a bare git repository with `update-server-info` run in
/// it is fetched over dumb http): the server and its port.
pub fn serve_directory(dir: &Path) -> (KillOnDrop, u16) {
    let port = free_port();
    let mut server = std::process::Command::new("python3");
    server
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--directory")
        .arg(dir);
    (KillOnDrop::listening(server, port), port)
}

/// `git -C DIR ARGS…` as a test's committer, which must succeed.
pub fn git(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=kiln",
            "-c",
            "user.email=kiln@example.invalid",
        ])
        .args(args)
        .output()
        .expect("running git");
    assert!(output.status.success(), "git {args:?}: {output:?}");
}

/// `image` (in a plain-HTTP registry) copied by skopeo into the OCI layout `layout`,
/// tagged `tag`; the digest of index.json's first entry.
pub fn copy_to_layout(image: &str, layout: &Path, tag: &str) -> String {
    let copied = std::process::Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{image}"))
        .arg(format!("oci:{}:{tag}", layout.display()))
        .output()
        .expect("running skopeo");
    assert!(copied.status.success(), "{copied:?}");
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).expect("index.json"))
            .expect("an index");
    index["manifests"][0]["digest"]
        .as_str()
        .expect("a digest")
        .to_owned()
}

/// Writes each `(relative path, content)` under `dir`, making the directories on the way.
pub fn write_files(dir: &Path, files: &[(&str, impl AsRef<[u8]>)]) {
    for (path, content) in files {
        let path = dir.join(path);
        fs_err::create_dir_all(path.parent().expect("a file under the directory"))
            .expect("creating the directories");
        fs_err::write(&path, content).expect("writing the file");
    }
}

/// A git repository holding `files` (path, content) in one commit on `main`, bare
/// under `work`, served by `git daemon` on a free port: the daemon (stopped when
/// dropped) and the repository's `git://` URL.
pub fn serve_git(work: &Path, files: &[(&str, &str)]) -> (KillOnDrop, String) {
    let source = work.join("git-source");
    write_files(&source, files);
    git(&source, &["init", "-q", "-b", "main"]);
    git(&source, &["add", "."]);
    git(&source, &["commit", "-q", "-m", "one"]);
    let served = work.join("git-served");
    fs_err::create_dir_all(&served).expect("creating the served directory");
    let bare = [
        "clone",
        "-q",
        "--bare",
        source.to_str().expect("a UTF-8 path"),
        "repo.git",
    ];
    git(&served, &bare);
    let port = free_port();
    // git-daemon itself: `git daemon` would leave it running as an orphan when killed.
    let exec_path = std::process::Command::new("git")
        .arg("--exec-path")
        .output()
        .expect("running git");
    let exec_path = String::from_utf8_lossy(&exec_path.stdout).trim().to_owned();
    let mut daemon = std::process::Command::new(Path::new(&exec_path).join("git-daemon"));
    daemon
        .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", served.display()));
    (
        KillOnDrop::listening(daemon, port),
        format!("git://127.0.0.1:{port}/repo.git"),
    )
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tool built from BuildKit's or buildx's sources (they stay out of the repository):
/// `$VAR` when set, else `name` on PATH. When absent, the test says so and skips, also
/// under CI, which cannot build them.
pub fn oracle_tool(name: &str, var: &str) -> Option<PathBuf> {
    let found = find_tool(var, name);
    if found.is_none() {
        let reason =
            format!("{name} not found (build it from its v0.24/v0.28 sources and set {var})");
        println!("skipped: {reason}");
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        note_skip(&test, &reason);
    }
    found
}

/// A BuildKit daemon built from v0.24's sources (`$KILN_BUILDKITD`, else `buildkitd`
/// on PATH; skipped visibly when absent), on a socket and state of its own, plain HTTP
/// allowed to the registries named, stopped when dropped.
pub struct Buildkitd {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Buildkitd {
    /// Starts one and waits until its socket answers; `None` after a skip line when
    /// the binary is absent.
    pub fn start(insecure_registries: &[String]) -> Option<Buildkitd> {
        let binary = oracle_tool("buildkitd", "KILN_BUILDKITD")?;
        let dir = tempfile::tempdir().expect("a temp directory");
        let mut config = String::new();
        for registry in insecure_registries {
            config.push_str(&format!(
                "[registry.\"{registry}\"]\n  http = true\n  insecure = true\n"
            ));
        }
        fs_err::write(dir.path().join("buildkitd.toml"), config).expect("buildkitd.toml");
        let log = fs_err::File::create(dir.path().join("buildkitd.log")).expect("its log");
        let child = std::process::Command::new(binary)
            .arg("--config")
            .arg(dir.path().join("buildkitd.toml"))
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--addr")
            .arg(format!(
                "unix://{}",
                dir.path().join("buildkitd.sock").display()
            ))
            .args(["--oci-worker-snapshotter", "native"])
            .stdout(std::process::Stdio::null())
            .stderr(log.into_parts().0)
            .spawn()
            .expect("buildkitd starts");
        let buildkitd = Buildkitd { child, dir };
        for _ in 0..200 {
            if std::os::unix::net::UnixStream::connect(buildkitd.socket()).is_ok() {
                return Some(buildkitd);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("buildkitd did not listen:\n{}", buildkitd.log());
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("buildkitd.sock")
    }

    /// Its address for `buildctl --addr`.
    pub fn address(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// What it logged.
    pub fn log(&self) -> String {
        fs_err::read_to_string(self.dir.path().join("buildkitd.log")).unwrap_or_default()
    }
}

impl Drop for Buildkitd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An ssh-agent on a socket in `dir` holding a new ed25519 key (comment
/// `kiln-test-key`), stopped when dropped.
pub struct SshAgent {
    /// The agent's socket.
    pub socket: PathBuf,
    /// The key's fingerprint, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    child: std::process::Child,
}

impl SshAgent {
    /// Starts one with a new key added.
    pub fn start(dir: &Path) -> SshAgent {
        use std::process::{Command, Stdio};
        let key = dir.join("id_ed25519");
        let keygen = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "kiln-test-key", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(keygen.success());
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent");
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let added = Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &socket)
            .output()
            .expect("ssh-add");
        assert!(added.status.success(), "{added:?}");
        let listed = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(key.with_extension("pub"))
            .output()
            .expect("ssh-keygen -l");
        let fingerprint = String::from_utf8_lossy(&listed.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        SshAgent {
            socket,
            fingerprint,
            child,
        }
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The host's `ssh-add` with the shared libraries it needs, copied into `dir` to be
/// mounted into a step and run through its own loader; returns the loader's name
/// (`/tools/LOADER --library-path /tools /tools/ssh-add -l`).
pub fn ssh_add_tools(dir: &Path) -> String {
    use std::process::Command;
    fs_err::create_dir_all(dir).expect("tools directory");
    let found = Command::new("sh")
        .args(["-c", "command -v ssh-add"])
        .output()
        .expect("sh");
    let ssh_add = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    fs_err::copy(&ssh_add, dir.join("ssh-add")).expect("ssh-add");
    let ldd = Command::new("ldd").arg(&ssh_add).output().expect("ldd");
    let mut loader = String::new();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let Some(path) = line
            .split_whitespace()
            .find(|word| word.starts_with('/'))
            .map(Path::new)
        else {
            continue;
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        fs_err::copy(path, dir.join(&name)).expect("a library of ssh-add");
        if name.starts_with("ld-linux") {
            loader = name;
        }
    }
    assert!(!loader.is_empty(), "no loader in {ldd:?}");
    loader
}
