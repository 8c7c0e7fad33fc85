//! Exporters checked by tools nobody here wrote: images pushed to docker-registry and
//! read back by skopeo (Docker and OCI media types, zstd), pulled again by kiln; the
//! local, tar, OCI-directory and docker outputs read by tar, umoci and `docker load`;
//! `--load` into a dockerd started for the test and the image run with `docker run`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{BaseImage, build_into, check, kiln, repo, skopeo_remote, tools_present};

fn demo_build<'a>(base_arg: &'a str, demo: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["build", "--progress=plain", "--build-arg", base_arg];
    args.extend_from_slice(extra);
    args.push(demo);
    args
}

#[test]
fn push_in_docker_and_oci_media_types_and_pull_zstd_back() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let base_arg = format!("BASE=127.0.0.1:{port}/busybox:latest");
    let demo = repo().join("examples/demo").display().to_string();

    // --push with a tag: Docker media types, as BuildKit's image exporter defaults to.
    let name = format!("127.0.0.1:{port}/demo:1");
    let meta = work.path().join("meta.json");
    let meta_arg = meta.display().to_string();
    let log = check(&kiln(
        state,
        &demo_build(
            &base_arg,
            &demo,
            &["--push", "-t", &name, "--metadata-file", &meta_arg],
        ),
    ));
    assert!(
        log.contains(&format!("pushed 127.0.0.1:{port}/demo@sha256:")),
        "{log}"
    );
    let manifest = skopeo_remote(&name, Some("--raw"));
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert!(
        layers
            .iter()
            .all(|l| l["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip")
    );
    let config = skopeo_remote(&name, Some("--config"));
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["/bin/busybox", "cat", "/out/greeting.txt"])
    );
    let metadata: Value = serde_json::from_str(&fs_err::read_to_string(&meta).unwrap()).unwrap();
    assert_eq!(
        metadata["containerimage.digest"],
        skopeo_remote(&name, None)["Digest"]
    );
    assert_eq!(metadata["image.name"], name.as_str());
    assert_eq!(
        metadata["containerimage.descriptor"]["digest"],
        metadata["containerimage.digest"]
    );
    assert_eq!(
        metadata["containerimage.descriptor"]["mediaType"],
        manifest["mediaType"]
    );
    assert_eq!(
        metadata["containerimage.config.digest"],
        manifest["config"]["digest"]
    );
    assert!(
        metadata["buildx.build.ref"]
            .as_str()
            .is_some_and(|r| r.starts_with("kiln/embedded/"))
    );

    // type=registry with zstd, forced onto every layer: OCI media types (turned on by
    // zstd, as BuildKit does), annotations on the manifest.
    let zstd_name = format!("127.0.0.1:{port}/demo:zstd");
    let output = format!(
        "type=registry,name={zstd_name},compression=zstd,force-compression=true,annotation.org.opencontainers.image.title=demo"
    );
    let log = check(&kiln(
        state,
        &demo_build(&base_arg, &demo, &["-o", &output]),
    ));
    assert!(
        log.contains("forcibly turning on oci-mediatype mode for zstd"),
        "{log}"
    );
    let manifest = skopeo_remote(&zstd_name, Some("--raw"));
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert!(
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"),
        "{manifest}"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.title"],
        "demo"
    );
    // The same diff ids: recompression does not change content.
    assert_eq!(
        skopeo_remote(&zstd_name, Some("--config"))["rootfs"],
        config["rootfs"]
    );

    // An image on the pulled base: its base layer is mounted from busybox's repository
    // (same registry), the new layer uploaded; skopeo reads both.
    let on_base = work.path().join("on-base");
    fs_err::create_dir_all(&on_base).unwrap();
    fs_err::write(
        on_base.join("Dockerfile"),
        format!("FROM 127.0.0.1:{port}/busybox:latest\nRUN echo more > /more\n"),
    )
    .unwrap();
    let on_base_name = format!("127.0.0.1:{port}/elsewhere/on-base:1");
    check(&kiln(
        state,
        &[
            "build",
            "--progress=plain",
            "--push",
            "-t",
            &on_base_name,
            on_base.to_str().unwrap(),
        ],
    ));
    let pushed = skopeo_remote(&on_base_name, Some("--raw"));
    let base_manifest = skopeo_remote(&format!("127.0.0.1:{port}/busybox:latest"), Some("--raw"));
    assert_eq!(pushed["layers"].as_array().unwrap().len(), 2);
    assert_eq!(
        pushed["layers"][0]["digest"],
        base_manifest["layers"][0]["digest"]
    );

    // kiln pulls the zstd image, runs a step on it and exports the files locally.
    let next = work.path().join("next");
    fs_err::create_dir_all(&next).unwrap();
    fs_err::write(
        next.join("Dockerfile"),
        format!(
            "FROM {zstd_name}\nRUN [\"/bin/busybox\", \"cp\", \"/out/greeting.txt\", \"/copy.txt\"]\n"
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    build_into(state, &next, &out, &[]);
    assert_eq!(
        fs_err::read_to_string(out.join("copy.txt")).unwrap(),
        "hello from /opt/app\n"
    );
}

/// A scratch result with a file, a mode and a symlink, built from the base image.
fn files_project(work: &Path, port: u16) -> PathBuf {
    let project = work.join("files");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest AS make\n\
             RUN mkdir /out && echo hi > /out/a && chmod 0600 /out/a && ln -s a /out/link\n\
             FROM scratch\nCOPY --from=make /out /\n"
        ),
    )
    .unwrap();
    project
}

fn tar_list(archive: &Path) -> String {
    let output = Command::new("tar")
        .arg("-tvf")
        .arg(archive)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn local_tar_oci_directory_and_docker_archives() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = files_project(work.path(), port);
    let project_arg = project.display().to_string();
    let build = |output: &str| {
        kiln(
            state,
            &[
                "build",
                "--progress=plain",
                "-t",
                "files:1",
                "-o",
                output,
                &project_arg,
            ],
        )
    };

    // local: the files, their modes and links.
    let local = work.path().join("local");
    check(&build(&format!("type=local,dest={}", local.display())));
    assert_eq!(fs_err::read_to_string(local.join("a")).unwrap(), "hi\n");
    let mode = fs_err::metadata(local.join("a"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        fs_err::read_link(local.join("link")).unwrap(),
        Path::new("a")
    );

    // `-o DIR`: buildx's short form of the same.
    let short = work.path().join("short");
    check(&build(short.to_str().unwrap()));
    assert_eq!(fs_err::read_to_string(short.join("a")).unwrap(), "hi\n");

    // tar: the same files as a tar.
    let tar = work.path().join("files.tar");
    check(&build(&format!("type=tar,dest={}", tar.display())));
    let listing = tar_list(&tar);
    assert!(listing.contains("-rw------- 0/0"), "{listing}");
    assert!(listing.contains("link -> a"), "{listing}");

    // oci with tar=false: a layout directory umoci unpacks.
    let layout = work.path().join("layout");
    check(&build(&format!(
        "type=oci,dest={},tar=false",
        layout.display()
    )));
    let bundle = work.path().join("bundle");
    let unpack = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:1", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        unpack.status.success(),
        "{}",
        String::from_utf8_lossy(&unpack.stderr)
    );
    assert_eq!(
        fs_err::read_to_string(bundle.join("rootfs/a")).unwrap(),
        "hi\n"
    );

    // docker: Docker media types and a manifest.json naming the image for `docker load`.
    let docker = work.path().join("docker.tar");
    check(&build(&format!("type=docker,dest={}", docker.display())));
    let unpacked = work.path().join("docker");
    fs_err::create_dir_all(&unpacked).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xf")
            .arg(&docker)
            .arg("-C")
            .arg(&unpacked)
            .status()
            .unwrap()
            .success()
    );
    let manifest_json: Value =
        serde_json::from_str(&fs_err::read_to_string(unpacked.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest_json[0]["RepoTags"], serde_json::json!(["files:1"]));
    let index: Value =
        serde_json::from_str(&fs_err::read_to_string(unpacked.join("index.json")).unwrap())
            .unwrap();
    assert_eq!(
        index["manifests"][0]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );

    // buildinfo=true: the config lists the build's sources (the base image, pinned).
    let with_info = work.path().join("buildinfo.tar");
    check(&build(&format!(
        "type=oci,dest={},buildinfo=true",
        with_info.display()
    )));
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--config"])
        .arg(format!("oci-archive:{}", with_info.display()))
        .output()
        .unwrap();
    let config: Value = serde_json::from_slice(&raw.stdout).unwrap();
    let encoded = config["moby.buildkit.buildinfo.v1"]
        .as_str()
        .unwrap()
        .to_owned();
    let decoded = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), encoded.as_bytes())?;
            drop(child.stdin.take());
            child.wait_with_output()
        })
        .unwrap();
    let info: Value = serde_json::from_slice(&decoded.stdout).unwrap();
    assert_eq!(info["sources"][0]["type"], "docker-image");
    assert!(
        info["sources"][0]["pin"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    // Wrong options are named.
    for (output, message) in [
        ("type=local", "dest is required for local exporter"),
        ("type=image,compression=lz4", "\"lz4\""),
        (
            "type=oci,dest=x.tar,colour=red",
            "unknown option \"colour\"",
        ),
        ("type=nope", "unknown exporter type"),
    ] {
        let result = build(output);
        assert!(!result.status.success(), "{output} succeeded");
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(stderr.contains(message), "{output}: {stderr}");
    }
}

/// A dockerd of the test's own (no bridge, no iptables, state in a temp directory),
/// stopped by its pid.
struct Dockerd {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Dockerd {
    fn start() -> Option<Dockerd> {
        if Command::new("dockerd").arg("--version").output().is_err() {
            kiln_test::skip("needs dockerd (Debian's docker.io)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = |p: &str| dir.path().join(p).display().to_string();
        let child = Command::new("dockerd")
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .args(["--data-root", &path("data"), "--exec-root", &path("exec")])
            .args(["--pidfile", &path("docker.pid")])
            .args(["-H", &format!("unix://{}", path("docker.sock"))])
            .stdout(
                fs_err::File::create(dir.path().join("log"))
                    .unwrap()
                    .into_file(),
            )
            .stderr(
                fs_err::File::create(dir.path().join("log.err"))
                    .unwrap()
                    .into_file(),
            )
            .spawn()
            .unwrap();
        let dockerd = Dockerd { dir, child };
        for _ in 0..120 {
            if dockerd.docker(&["version"]).status.success() {
                return Some(dockerd);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "dockerd did not start: {}",
            fs_err::read_to_string(dockerd.dir.path().join("log.err")).unwrap_or_default()
        );
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .env("DOCKER_HOST", self.host())
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        // dockerd leaves its default network namespace mounted under its exec root; with
        // it unmounted the directory can go.
        let netns = self.dir.path().join("exec/netns/default");
        let _ = rustix::mount::unmount(&netns, rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn load_into_docker_and_run() {
    if !tools_present() {
        return;
    }
    let Some(dockerd) = Dockerd::start() else {
        return;
    };
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let base_arg = format!("BASE=127.0.0.1:{port}/busybox:latest");
    let demo = repo().join("examples/demo").display().to_string();

    let build = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .env("DOCKER_HOST", dockerd.host())
        .args(demo_build(
            &base_arg,
            &demo,
            &["--load", "-t", "kiln-it-demo:1"],
        ))
        .output()
        .unwrap();
    let log = check(&build);
    assert!(log.contains("Loaded image: kiln-it-demo:1"), "{log}");
    let run = dockerd.docker(&["run", "--rm", "--network", "host", "kiln-it-demo:1"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "hello from /opt/app\n"
    );

    // The docker exporter's file loads with `docker load` too, under its name.
    let archive = work.path().join("demo-docker.tar");
    check(&kiln(
        state,
        &demo_build(
            &base_arg,
            &demo,
            &[
                "-o",
                &format!("type=docker,name=kiln-it-file:2,dest={}", archive.display()),
            ],
        ),
    ));
    let load = dockerd.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let inspect = dockerd.docker(&["image", "inspect", "kiln-it-file:2"]);
    let inspect: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        inspect[0]["Config"]["Env"],
        serde_json::json!(["PATH=/bin"])
    );
}

/// `SOURCE_DATE_EPOCH` with `rewrite-timestamp=true`: two builds from scratch (no cache)
/// give the same image digest; without the rewrite the new files' times differ.
#[test]
fn rewrite_timestamp_makes_builds_reproducible() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("repro");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!("FROM 127.0.0.1:{port}/busybox:latest\nRUN echo same > /f && mkdir /d\n"),
    )
    .unwrap();
    // The epoch comes as a build arg, or from the environment as buildx reads it.
    let digest = |name: &str, rewrite: bool, from_env: bool| {
        let out = work.path().join(format!("{name}.tar"));
        let mut output = format!("type=oci,dest={}", out.display());
        if rewrite {
            output.push_str(",rewrite-timestamp=true");
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
        command
            .env("KILN_ROOT", state)
            .args(["build", "--progress=plain", "--no-cache"]);
        if from_env {
            command.env("SOURCE_DATE_EPOCH", "1700000000");
        } else {
            command
                .env_remove("SOURCE_DATE_EPOCH")
                .args(["--build-arg", "SOURCE_DATE_EPOCH=1700000000"]);
        }
        let log = check(
            &command
                .args(["-o", &output, project.to_str().unwrap()])
                .output()
                .unwrap(),
        );
        assert!(!log.contains("no effect"), "{log}");
        let config = crate::support::skopeo_inspect(&out, true);
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
        crate::support::skopeo_inspect(&out, false)["Digest"].clone()
    };
    let first = digest("a", true, true);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(first, digest("b", true, true));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(first, digest("e", true, false));
    let plain = digest("c", false, false);
    std::thread::sleep(Duration::from_millis(1100));
    assert_ne!(
        plain,
        digest("d", false, true),
        "file times differ without the rewrite"
    );
}

/// `compression=estargz`: each file in a gzip member of its own, a TOC the footer
/// points at; a separate reader (Python's gzip and tarfile) finds every file by its TOC
/// offset, the TOC digest annotation matches, and kiln builds on the pushed image.
#[test]
fn estargz_layers_have_a_toc_a_reader_can_follow() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("estargz");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\n\
             RUN mkdir -p /data && echo alpha > /data/a.txt && seq 1 20000 > /data/numbers.txt\n"
        ),
    )
    .unwrap();
    let name = format!("127.0.0.1:{port}/estargz:1");
    let log = check(&kiln(
        state,
        &[
            "build",
            "--progress=plain",
            "-o",
            &format!("type=registry,name={name},compression=estargz"),
            project.to_str().unwrap(),
        ],
    ));
    assert!(
        log.contains("forcibly turning on oci-mediatype mode for estargz"),
        "{log}"
    );
    let manifest = skopeo_remote(&name, Some("--raw"));
    let layer = manifest["layers"][1].clone();
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let toc_digest = layer["annotations"]["containerd.io/snapshot/stargz/toc.digest"]
        .as_str()
        .unwrap()
        .to_owned();

    // Fetch the blob and read it with Python.
    let blob = work.path().join("layer.blob");
    let digest = layer["digest"].as_str().unwrap();
    let fetched = Command::new("curl")
        .args(["-fsS", "-o"])
        .arg(&blob)
        .arg(format!("http://127.0.0.1:{port}/v2/estargz/blobs/{digest}"))
        .status()
        .unwrap();
    assert!(fetched.success());
    let reader = r#"
import gzip, hashlib, io, json, sys, tarfile, zlib
data = open(sys.argv[1], "rb").read()
footer = data[-51:]
assert footer[32:38] == b"STARGZ", footer
toc_offset = int(footer[16:32], 16)
toc_tar = zlib.decompressobj(31).decompress(data[toc_offset:])
member = tarfile.open(fileobj=io.BytesIO(toc_tar)).extractfile("stargz.index.json").read()
toc = json.loads(member)
found = {}
for e in toc["entries"]:
    if e["type"] != "reg":
        continue
    raw = zlib.decompressobj(31).decompress(data[e["offset"]:])
    t = tarfile.open(fileobj=io.BytesIO(raw + b"\0" * 1024))
    info = t.next()
    assert info.name.rstrip("/") == e["name"], (info.name, e["name"])
    body = t.extractfile(info).read()
    assert "sha256:" + hashlib.sha256(body).hexdigest() == e["digest"], e["name"]
    found[e["name"]] = body
print("sha256:" + hashlib.sha256(member).hexdigest())
print(found["data/a.txt"].decode().strip())
print(len(found["data/numbers.txt"].splitlines()))
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(reader)
        .arg(&blob)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, [toc_digest.as_str(), "alpha", "20000"]);

    // kiln pulls the eStargz image like any gzip image.
    let next = work.path().join("on-estargz");
    fs_err::create_dir_all(&next).unwrap();
    fs_err::write(
        next.join("Dockerfile"),
        format!("FROM {name}\nRUN cat /data/a.txt > /copy\n"),
    )
    .unwrap();
    let out = work.path().join("on-estargz-out");
    build_into(state, &next, &out, &[]);
    assert_eq!(fs_err::read_to_string(out.join("copy")).unwrap(), "alpha\n");
}

/// Extended attributes as BuildKit keeps them: a layer carries `security.capability`
/// alone (containerd's `ChangeWriter`, which BuildKit's differ drives), so a context
/// file's `user.*` attribute is in neither the pushed image's layer nor, after a pull,
/// that of an image copying the file (read by Python's tarfile; BuildKit v0.24.0 gives
/// the same layers).
#[test]
fn extended_attributes_other_than_capabilities_stay_out_of_layers() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let ctx = work.path().join("xattr");
    fs_err::create_dir_all(&ctx).unwrap();
    fs_err::write(ctx.join("f.txt"), "data\n").unwrap();
    let set = Command::new("python3")
        .args([
            "-c",
            "import os, sys; os.setxattr(sys.argv[1], 'user.kiln', b'hello')",
        ])
        .arg(ctx.join("f.txt"))
        .status()
        .unwrap();
    assert!(set.success(), "the file system must take user xattrs");
    fs_err::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY f.txt /\n").unwrap();
    let name = format!("127.0.0.1:{port}/xattr:1");
    check(&kiln(
        state,
        &[
            "build",
            "--progress=plain",
            "--push",
            "-t",
            &name,
            ctx.to_str().unwrap(),
        ],
    ));
    // A second image copies the file out of the pulled one.
    let again = work.path().join("xattr-again");
    fs_err::create_dir_all(&again).unwrap();
    fs_err::write(
        again.join("Dockerfile"),
        format!("FROM scratch\nCOPY --from={name} /f.txt /copied.txt\n"),
    )
    .unwrap();
    let archive = work.path().join("xattr.tar");
    check(&kiln(
        state,
        &[
            "build",
            "--progress=plain",
            "-o",
            &format!("type=oci,dest={}", archive.display()),
            again.to_str().unwrap(),
        ],
    ));
    let reader = r#"
import gzip, io, json, sys, tarfile
outer = tarfile.open(sys.argv[1])
blob = lambda d: outer.extractfile("blobs/sha256/" + d.split(":")[1]).read()
index = json.loads(outer.extractfile("index.json").read())
manifest = json.loads(blob(index["manifests"][0]["digest"]))
for layer in manifest["layers"]:
    for entry in tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(layer["digest"])))):
        print(entry.name, entry.pax_headers.get("SCHILY.xattr.user.kiln", "-"))
"#;
    let output = Command::new("python3")
        .args(["-c", reader])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "copied.txt -"
    );
}

/// A registry that wants a login (htpasswd, Basic): without credentials the push is
/// refused with the registry's answer; with them in `$DOCKER_CONFIG/config.json`
/// (`auths`, as `docker login` writes) it goes through (the 20 MB layer in chunks),
/// and skopeo reads the image back.
#[test]
fn push_with_credentials_from_the_docker_config() {
    if !tools_present() || Command::new("htpasswd").arg("-h").output().is_err() {
        kiln_test::skip("needs htpasswd (apache2-utils)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let htpasswd = work.path().join("htpasswd");
    let made = Command::new("htpasswd")
        .args(["-Bbc"])
        .arg(&htpasswd)
        .args(["kiln", "s3cret"])
        .output()
        .unwrap();
    assert!(made.status.success());
    let port = crate::support::free_port();
    fs_err::write(
        work.path().join("config.yml"),
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n\
             auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\nlog:\n  level: error\n",
            work.path().join("data").display(),
            htpasswd.display()
        ),
    )
    .unwrap();
    let mut registry = Command::new("docker-registry");
    registry.arg("serve").arg(work.path().join("config.yml"));
    let _registry = crate::support::KillOnDrop::listening(registry, port);
    let project = work.path().join("project");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(project.join("a.txt"), "a\n").unwrap();
    // 20 MB that gzip cannot shrink: the layer goes up in chunks (PATCH, 16 MiB each).
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..20_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fs_err::write(project.join("noise.bin"), &noise).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        "FROM scratch\nCOPY a.txt noise.bin /\n",
    )
    .unwrap();
    let name = format!("127.0.0.1:{port}/private:1");
    let docker_config = work.path().join("docker");
    fs_err::create_dir_all(&docker_config).unwrap();
    let push = |config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .env("KILN_ROOT", work.path().join("state"))
            .env("DOCKER_CONFIG", config)
            .args(["build", "--progress=plain", "--push", "-t", &name])
            .arg(&project)
            .output()
            .unwrap()
    };
    let refused = push(&docker_config);
    let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    // `docker login` writes base64("user:password") under the registry's name.
    fs_err::write(
        docker_config.join("config.json"),
        format!(r#"{{"auths": {{"127.0.0.1:{port}": {{"auth": "a2lsbjpzM2NyZXQ="}}}}}}"#),
    )
    .unwrap();
    check(&push(&docker_config));
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--creds", "kiln:s3cret"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
}
