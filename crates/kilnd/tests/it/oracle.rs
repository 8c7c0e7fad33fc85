//! The real clients, built from their sources outside the repository: buildctl v0.24
//! and docker buildx v0.28 (remote driver) drive kilnd as they drive buildkitd.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{Kilnd, can_build};

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// docker buildx with a configuration of its own, in which a remote-driver builder
/// `kiln-test` on kilnd is made.
struct Buildx {
    binary: std::path::PathBuf,
    config: std::path::PathBuf,
}

impl Buildx {
    fn on(kilnd: &Kilnd, binary: std::path::PathBuf, work: &Path) -> Self {
        let buildx = Self {
            binary,
            config: work.join("docker"),
        };
        let address = kilnd.address();
        buildx.run(&[
            "create",
            "--name",
            "kiln-test",
            "--driver",
            "remote",
            &address,
        ]);
        buildx
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.env("DOCKER_CONFIG", &self.config);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        run(self.command().args(args))
    }
}

/// A context whose build copies a file, reads a secret and runs a step.
fn context(dir: &Path, image: &str) {
    fs_err::create_dir_all(dir.join("app")).unwrap();
    fs_err::write(dir.join("app/a.txt"), "one").unwrap();
    fs_err::write(dir.join("unrelated.txt"), "x").unwrap();
    fs_err::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {image}\nCOPY app/ /app/\nRUN --mount=type=secret,id=tok cat /run/secrets/tok > /tok\nRUN cat /app/a.txt > /copied\n"
        ),
    )
    .unwrap();
}

#[test]
fn buildctl_builds_through_kilnd() {
    if !can_build() {
        return;
    }
    let Some(buildctl) = kiln_test::oracle_tool("buildctl", "KILN_BUILDCTL") else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context(&ctx, &image);
    let secret = work.path().join("tok");
    fs_err::write(&secret, "s3cret").unwrap();
    let build = |output: &str| {
        let out = run(Command::new(&buildctl)
            .arg("--addr")
            .arg(kilnd.address())
            .args(["build", "--progress=plain", "--frontend", "dockerfile.v0"])
            .arg(format!("--local=context={}", ctx.display()))
            .arg(format!("--local=dockerfile={}", ctx.display()))
            .arg(format!("--secret=id=tok,src={}", secret.display()))
            .arg("--output")
            .arg(output));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let local = work.path().join("local");
    build(&format!("type=local,dest={}", local.display()));
    assert_eq!(fs_err::read_to_string(local.join("copied")).unwrap(), "one");
    assert_eq!(fs_err::read_to_string(local.join("tok")).unwrap(), "s3cret");

    // Again: every step cached; an unrelated edit changes nothing either.
    fs_err::write(ctx.join("unrelated.txt"), "y").unwrap();
    let log = build(&format!(
        "type=tar,dest={}",
        work.path().join("rootfs.tar").display()
    ));
    assert!(
        log.matches(" CACHED").count() >= 3,
        "steps were not cached:\n{log}"
    );
    let listing = run(Command::new("tar")
        .arg("-tf")
        .arg(work.path().join("rootfs.tar")));
    assert!(String::from_utf8_lossy(&listing.stdout).contains("app/a.txt"));

    // An edit the COPY reads: only the changed file travels, the result has it.
    fs_err::write(ctx.join("app/a.txt"), "two").unwrap();
    let archive = work.path().join("image.tar");
    build(&format!(
        "type=oci,name=kiln-test:1,dest={}",
        archive.display()
    ));
    let unpacked = work.path().join("unpacked");
    let unpack = run(Command::new("sh").arg("-c").arg(format!(
        "mkdir -p {0}/layout && tar -C {0}/layout -xf {1} && umoci unpack --image {0}/layout:1 {0}/bundle",
        unpacked.display(),
        archive.display()
    )));
    drop(unpack);
    assert_eq!(
        fs_err::read_to_string(unpacked.join("bundle/rootfs/copied")).unwrap(),
        "two"
    );

    // The daemon's side of buildctl's other commands.
    let workers = run(Command::new(&buildctl)
        .arg("--addr")
        .arg(kilnd.address())
        .args(["debug", "workers"]));
    assert!(String::from_utf8_lossy(&workers.stdout).contains("linux/amd64"));
    let du = run(Command::new(&buildctl)
        .arg("--addr")
        .arg(kilnd.address())
        .arg("du"));
    assert!(String::from_utf8_lossy(&du.stdout).contains("Total:"));
    run(Command::new(&buildctl)
        .arg("--addr")
        .arg(kilnd.address())
        .args(["prune", "--all"]));
    let after = run(Command::new(&buildctl)
        .arg("--addr")
        .arg(kilnd.address())
        .arg("du"));
    let after = String::from_utf8_lossy(&after.stdout).into_owned();
    assert!(
        after.contains("Total:\t0B") || after.contains("Total:\t\t0B"),
        "{after}"
    );
}

#[test]
fn buildx_remote_driver_builds_through_kilnd() {
    if !can_build() {
        return;
    }
    let Some(buildx) = kiln_test::oracle_tool("docker-buildx", "KILN_BUILDX") else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context(&ctx, &image);
    let secret = work.path().join("tok");
    fs_err::write(&secret, "s3cret").unwrap();
    let buildx = Buildx::on(&kilnd, buildx, work.path());
    let buildx = |args: &[&str]| buildx.run(args);
    let inspect = buildx(&["inspect", "kiln-test", "--bootstrap"]);
    let inspect = String::from_utf8_lossy(&inspect.stdout).into_owned();
    assert!(inspect.contains("v0.24.0"), "{inspect}");
    let tag = format!("{}/kiln-test:1", registry.host());
    let metadata = work.path().join("metadata.json");
    buildx(&[
        "build",
        "--builder",
        "kiln-test",
        "--progress=plain",
        "--secret",
        &format!("id=tok,src={}", secret.display()),
        "--metadata-file",
        &metadata.display().to_string(),
        "-t",
        &tag,
        "--push",
        &ctx.display().to_string(),
    ]);
    let metadata: serde_json::Value =
        serde_json::from_slice(&fs_err::read(&metadata).unwrap()).unwrap();
    let pushed = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{tag}"),
    ]));
    let pushed: serde_json::Value = serde_json::from_slice(&pushed.stdout).unwrap();
    assert_eq!(metadata["containerimage.digest"], pushed["Digest"]);
    let du = buildx(&["du", "--builder", "kiln-test"]);
    assert!(String::from_utf8_lossy(&du.stdout).contains("Total:"));
    buildx(&["prune", "--builder", "kiln-test", "--all", "--force"]);
}

/// buildx uploads a context piped to it through its session and passes a git URL on
/// as the `context` attribute: kilnd fetches both, as buildkitd does.
#[test]
fn buildx_sends_piped_and_git_contexts_to_kilnd() {
    if !can_build() {
        return;
    }
    let Some(buildx) = kiln_test::oracle_tool("docker-buildx", "KILN_BUILDX") else {
        return;
    };
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let (_git_daemon, repo) = kiln_test::serve_git(
        work.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY g.txt /\n"),
            ("g.txt", "from git\n"),
        ],
    );
    let piped = work.path().join("piped");
    fs_err::create_dir_all(&piped).unwrap();
    fs_err::write(piped.join("Dockerfile"), "FROM scratch\nCOPY t.txt /\n").unwrap();
    fs_err::write(piped.join("t.txt"), "from stdin\n").unwrap();
    let tarball = work.path().join("context.tar.gz");
    run(Command::new("tar")
        .arg("-C")
        .arg(&piped)
        .arg("-czf")
        .arg(&tarball)
        .arg("."));
    let buildx = Buildx::on(&kilnd, buildx, work.path());
    let buildx = |args: &[&str], stdin: Option<&Path>| {
        let mut command = buildx.command();
        command.args(args);
        if let Some(file) = stdin {
            command.stdin(fs_err::File::open(file).unwrap().into_file());
        }
        run(&mut command)
    };
    let out = |name: &str| work.path().join(name);
    let local = |name: &str| format!("type=local,dest={}", out(name).display());
    buildx(
        &[
            "build",
            "--builder",
            "kiln-test",
            "-o",
            &local("piped"),
            "-",
        ],
        Some(&tarball),
    );
    assert_eq!(
        fs_err::read_to_string(out("piped").join("t.txt")).unwrap(),
        "from stdin\n"
    );
    let git_context = format!("{repo}#main");
    buildx(
        &[
            "build",
            "--builder",
            "kiln-test",
            "-o",
            &local("git"),
            &git_context,
        ],
        None,
    );
    assert_eq!(
        fs_err::read_to_string(out("git").join("g.txt")).unwrap(),
        "from git\n"
    );
}

/// An OCI layout lent by the real clients: buildx (`--build-context
/// NAME=oci-layout://DIR`, the tag resolved on the client) and buildctl
/// (`--oci-layout`, the digest named); kilnd copies the image from their sessions.
#[test]
fn buildctl_and_buildx_lend_an_oci_layout_to_kilnd() {
    if !can_build() {
        return;
    }
    let Some(buildctl) = kiln_test::oracle_tool("buildctl", "KILN_BUILDCTL") else {
        return;
    };
    let Some(buildx) = kiln_test::oracle_tool("docker-buildx", "KILN_BUILDX") else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let digest = kiln_test::copy_to_layout(&image, &layout, "latest");
    let ctx = work.path().join("ctx");
    fs_err::create_dir_all(&ctx).unwrap();
    fs_err::write(ctx.join("Dockerfile"), "FROM base\nRUN echo ran > /ran\n").unwrap();
    let out = |name: &str| work.path().join(name);
    run(Command::new(&buildctl)
        .arg("--addr")
        .arg(kilnd.address())
        .args(["build", "--frontend", "dockerfile.v0"])
        .arg(format!("--local=context={}", ctx.display()))
        .arg(format!("--local=dockerfile={}", ctx.display()))
        .arg(format!("--oci-layout=layout={}", layout.display()))
        .arg("--opt")
        .arg(format!("context:base=oci-layout://layout@{digest}"))
        .arg("--output")
        .arg(format!("type=local,dest={}", out("buildctl").display())));
    assert_eq!(
        fs_err::read_to_string(out("buildctl").join("ran")).unwrap(),
        "ran\n"
    );
    let buildx = Buildx::on(&kilnd, buildx, work.path());
    let buildx = |args: &[&str]| buildx.run(args);
    let context = format!("base=oci-layout://{}", layout.display());
    let local = format!("type=local,dest={}", out("buildx").display());
    buildx(&[
        "build",
        "--builder",
        "kiln-test",
        "--build-context",
        &context,
        "-o",
        &local,
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(
        fs_err::read_to_string(out("buildx").join("ran")).unwrap(),
        "ran\n"
    );
}

/// `buildctl build` with an LLB definition on its standard input (no frontend): its
/// local source travels through the session, its image step runs.
#[test]
fn buildctl_solves_a_definition() {
    use kiln_llb::{
        CopyOptions, FileAction, ImageOptions, LocalOptions, MarshalOptions, OpOptions, Run, State,
        wire,
    };
    if !can_build() {
        return;
    }
    let Some(buildctl) = kiln_test::oracle_tool("buildctl", "KILN_BUILDCTL") else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let files = work.path().join("files");
    fs_err::create_dir_all(&files).unwrap();
    fs_err::write(files.join("a.txt"), "from the client").unwrap();
    fs_err::write(files.join("skipped.log"), "not sent").unwrap();
    let local = State::local(
        "files",
        LocalOptions {
            exclude_patterns: vec!["*.log".to_owned()],
            ..LocalOptions::default()
        },
    );
    let result = State::image(&image, ImageOptions::default())
        .add_env("PATH", "/bin")
        .dir("/")
        .file(
            FileAction::copy(&local, "/", "/in/", CopyOptions::default()),
            OpOptions::default(),
        )
        .run(Run::new([
            "sh",
            "-c",
            "ls /in > /listing && cat /in/a.txt > /b.txt",
        ]))
        .root();
    let definition = wire::encode_definition(&result.marshal(&MarshalOptions::default()));
    let out = work.path().join("out");
    let mut child = Command::new(&buildctl)
        .arg("--addr")
        .arg(kilnd.address())
        .args(["build", "--progress=plain"])
        .arg(format!("--local=files={}", files.display()))
        .arg("--output")
        .arg(format!("type=local,dest={}", out.display()))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &definition).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        kilnd.log()
    );
    assert_eq!(
        fs_err::read_to_string(out.join("b.txt")).unwrap(),
        "from the client"
    );
    assert_eq!(
        fs_err::read_to_string(out.join("listing")).unwrap(),
        "a.txt\n"
    );
}

/// The Dockerfile frontend's build checks reach `buildctl`'s progress as warnings, in
/// BuildKit's form: `Rule: message (line N)`, the rule's description as detail, its
/// documentation, level 1 and the lines it concerns.
#[test]
fn buildctl_sees_build_checks_as_progress_warnings() {
    if !can_build() {
        return;
    }
    let Some(buildctl) = kiln_test::oracle_tool("buildctl", "KILN_BUILDCTL") else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let ctx = tempfile::tempdir().unwrap();
    fs_err::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image} as base\nRUN true\n"),
    )
    .unwrap();
    let out = run(Command::new(&buildctl)
        .arg("--addr")
        .arg(kilnd.address())
        .args(["build", "--progress=rawjson", "--frontend", "dockerfile.v0"])
        .arg(format!("--local=context={}", ctx.path().display()))
        .arg(format!("--local=dockerfile={}", ctx.path().display())));
    let warnings: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|status| status["warnings"].as_array().cloned())
        .flatten()
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = &warnings[0];
    let decode = |v: &serde_json::Value| {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        String::from_utf8(bytes).unwrap()
    };
    assert_eq!(
        decode(&warning["short"]),
        "FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)"
    );
    assert_eq!(
        decode(&warning["detail"][0]),
        "The 'as' keyword should match the case of the 'from' keyword"
    );
    assert_eq!(
        warning["url"],
        "https://docs.docker.com/go/dockerfile/rule/from-as-casing/"
    );
    assert_eq!(warning["level"], 1);
    assert_eq!(warning["range"][0]["start"]["line"], 1, "{warning}");

    // With `check=error=true` the build fails, after the warning was shown.
    fs_err::write(
        ctx.path().join("Dockerfile"),
        format!("# check=error=true\nFROM {image} as base\nRUN true\n"),
    )
    .unwrap();
    let failed = Command::new(&buildctl)
        .arg("--addr")
        .arg(kilnd.address())
        .args(["build", "--progress=rawjson", "--frontend", "dockerfile.v0"])
        .arg(format!("--local=context={}", ctx.path().display()))
        .arg(format!("--local=dockerfile={}", ctx.path().display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "{log}");
    assert!(log.contains(r#""warnings":[{"#), "{log}");
    assert!(
        log.contains("lint violation found for rules: FromAsCasing"),
        "{log}"
    );
}

/// buildctl builds the test context through kilnd with `--export-cache=EXPORT`,
/// `exported` looks at what it wrote, then kilnd forgets everything (`prune --all`)
/// and buildctl builds again with `--import-cache=IMPORT`: every step is answered by
/// the import. `cache` gives EXPORT and IMPORT for the test's registry and work directory.
fn buildctl_cache_round_trip(
    cache: impl Fn(&kiln_test::Registry, &Path) -> (String, String),
    exported: impl FnOnce(&kiln_test::Registry, &Path),
) {
    if !can_build() {
        return;
    }
    let Some(buildctl) = kiln_test::oracle_tool("buildctl", "KILN_BUILDCTL") else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    context(&ctx, &image);
    let secret = work.path().join("tok");
    fs_err::write(&secret, "s3cret").unwrap();
    let (export, import) = cache(&registry, work.path());
    let build = |cache_flag: String| {
        let out = run(Command::new(&buildctl)
            .arg("--addr")
            .arg(kilnd.address())
            .args(["build", "--progress=plain", "--frontend", "dockerfile.v0"])
            .arg(format!("--local=context={}", ctx.display()))
            .arg(format!("--local=dockerfile={}", ctx.display()))
            .arg(format!("--secret=id=tok,src={}", secret.display()))
            .arg(cache_flag));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = build(format!("--export-cache={export},mode=max"));
    exported(&registry, work.path());
    run(Command::new(&buildctl)
        .arg("--addr")
        .arg(kilnd.address())
        .args(["prune", "--all"]));
    let log = build(format!("--import-cache={import}"));
    let kind = import.split(',').next().unwrap_or_default();
    assert!(
        log.contains(&format!("importing cache manifest from {kind}")),
        "{first}\n{log}"
    );
    assert!(
        log.matches(" CACHED").count() >= 4,
        "steps were not cached:\n{log}"
    );
}

/// buildctl's `--export-cache`/`--import-cache` reach kilnd's engine through the Solve
/// request: after a prune of everything, the imported registry cache answers every
/// step; the secret the build mounts is in no layer and no record.
#[test]
fn buildctl_exports_and_imports_a_registry_cache_through_kilnd() {
    let cache = |registry: &kiln_test::Registry| format!("{}/app:cache", registry.host());
    buildctl_cache_round_trip(
        |registry, _| {
            let cache = cache(registry);
            (
                format!("type=registry,ref={cache}"),
                format!("type=registry,ref={cache}"),
            )
        },
        |registry, work| {
            let cache = cache(registry);
            // No layer holds /run/secrets, and the records do not hold its value (the
            // step itself copied it to /tok, on purpose).
            let blobs = work.join("blobs");
            run(Command::new("skopeo")
                .args(["copy", "--quiet", "--src-tls-verify=false"])
                .arg(format!("docker://{cache}"))
                .arg(format!("dir:{}", blobs.display())));
            let mut layers = 0;
            for entry in fs_err::read_dir(&blobs).unwrap() {
                let path = entry.unwrap().path();
                let bytes = fs_err::read(&path).unwrap();
                if bytes.starts_with(&[0x1f, 0x8b]) {
                    layers += 1;
                    let listing = run(Command::new("tar").arg("-tzf").arg(&path));
                    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
                    assert!(!listing.contains("run/secrets"), "{listing}");
                } else {
                    assert!(
                        !String::from_utf8_lossy(&bytes).contains("s3cret"),
                        "{}",
                        path.display()
                    );
                }
            }
            assert_eq!(layers, 4, "busybox, COPY and two RUNs");
        },
    );
}

/// buildctl's `type=local` cache through kilnd: the daemon writes the blobs into
/// buildctl's directory through the session's content store and buildctl tags the
/// manifest in index.json; after a prune, the import (buildctl names the manifest by
/// that tag's digest) answers every step from the blobs the daemon reads back.
#[test]
fn buildctl_exports_and_imports_a_local_cache_through_kilnd() {
    buildctl_cache_round_trip(
        |_, work| {
            let cache = work.join("cache").display().to_string();
            (
                format!("type=local,dest={cache}"),
                format!("type=local,src={cache}"),
            )
        },
        |_, work| {
            // buildctl tagged what the daemon wrote; every blob the manifest names is
            // there, with the bytes of its digest.
            let cache = work.join("cache");
            let index: serde_json::Value =
                serde_json::from_slice(&fs_err::read(cache.join("index.json")).unwrap()).unwrap();
            let entry = &index["manifests"][0];
            assert_eq!(
                entry["annotations"]["org.opencontainers.image.ref.name"], "latest",
                "{index}"
            );
            let blob = |digest: &str| cache.join("blobs/sha256").join(&digest["sha256:".len()..]);
            let manifest: serde_json::Value = serde_json::from_slice(
                &fs_err::read(blob(entry["digest"].as_str().unwrap())).unwrap(),
            )
            .unwrap();
            let named: Vec<&str> = std::iter::once(&manifest["config"])
                .chain(manifest["layers"].as_array().unwrap())
                .map(|d| d["digest"].as_str().unwrap())
                .collect();
            assert_eq!(
                named.len(),
                5,
                "config, busybox, COPY and two RUNs: {manifest}"
            );
            for digest in named {
                let sum = run(Command::new("sha256sum").arg(blob(digest)));
                assert!(
                    String::from_utf8_lossy(&sum.stdout).starts_with(&digest["sha256:".len()..]),
                    "{digest}"
                );
            }
        },
    );
}

/// buildctl's multi-platform build through kilnd (`--opt platform=a,b`): the arm64
/// steps run under QEMU, the `local` output has a directory per platform and the
/// pushed image is an index with both platforms.
#[test]
fn buildctl_builds_two_platforms_through_kilnd() {
    if !can_build() {
        return;
    }
    if !Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
        kiln_test::skip("qemu-user-static's handlers are not registered in binfmt_misc");
        return;
    }
    let Some(buildctl) = kiln_test::oracle_tool("buildctl", "KILN_BUILDCTL") else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let Some(base) = registry.push_busybox_multiarch() else {
        return;
    };
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    fs_err::create_dir_all(&ctx).unwrap();
    fs_err::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN uname -m > /arch\n"),
    )
    .unwrap();
    let local = work.path().join("local");
    let name = format!("{}/multi:1", registry.host());
    run(Command::new(&buildctl)
        .arg("--addr")
        .arg(kilnd.address())
        .args(["build", "--progress=plain", "--frontend", "dockerfile.v0"])
        .args(["--opt", "platform=linux/amd64,linux/arm64"])
        .arg(format!("--local=context={}", ctx.display()))
        .arg(format!("--local=dockerfile={}", ctx.display()))
        .arg("--output")
        .arg(format!("type=local,dest={}", local.display()))
        .arg("--output")
        .arg(format!("type=image,name={name},push=true")));
    for (dir, machine) in [("linux_amd64", "x86_64"), ("linux_arm64", "aarch64")] {
        assert_eq!(
            fs_err::read_to_string(local.join(dir).join("arch"))
                .unwrap()
                .trim(),
            machine
        );
    }
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{name}")));
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let architectures: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(architectures, ["amd64", "arm64"]);
}

/// A server on 127.0.0.1 that answers every GET with `body` (and a Last-Modified) and
/// keeps each request's head, lower-cased, for the test to read.
fn recording_server(body: &'static str) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/f", listener.local_addr().unwrap());
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&heads);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line.to_ascii_lowercase());
            }
            seen.lock().unwrap().push(head);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, heads)
}

/// An http source with request headers and an authorization secret (LLB only: the
/// Dockerfile frontend sets neither). kilnd sends them as BuildKit does, and keys the
/// source as BuildKit v0.24 keys it (its name, owner, checksum, Last-Modified, the
/// secret's id and the headers): BuildKit's local cache of the definition answers the
/// download in kilnd.
#[test]
fn an_http_source_with_headers_is_keyed_as_buildkit_keys_it() {
    use kiln_llb::{HttpOptions, MarshalOptions, OpOptions, State, wire};
    if !can_build() {
        return;
    }
    let Some(buildctl) = kiln_test::oracle_tool("buildctl", "KILN_BUILDCTL") else {
        return;
    };
    let Some(buildkitd) = kiln_test::Buildkitd::start(&[]) else {
        return;
    };
    let kilnd = Kilnd::start(&[]);
    let (url, heads) = recording_server("over http with headers\n");
    let work = tempfile::tempdir().unwrap();
    let token = work.path().join("token");
    fs_err::write(&token, "Bearer s3cret").unwrap();
    let download = |filename: &str, user_agent: Option<&str>, secret: Option<&str>| {
        State::http(
            &url,
            HttpOptions {
                filename: Some(filename.to_owned()),
                accept: Some("text/plain".to_owned()),
                user_agent: user_agent.map(str::to_owned),
                auth_header_secret: secret.map(str::to_owned),
                ..HttpOptions::default()
            },
        )
    };
    // A merge is keyed by its inputs' keys alone (never by their content), so it hits
    // only if both downloads are keyed as BuildKit keys them.
    let merged = State::merge(
        &[
            download("got.txt", Some("kiln-test"), Some("tok")),
            download("also.txt", None, None),
        ],
        OpOptions::default(),
    );
    let definition = wire::encode_definition(&merged.marshal(&MarshalOptions::default()));
    let cache = work.path().join("cache");
    let out = work.path().join("out");
    let build = |address: &str, cache_flag: String| {
        let mut child = Command::new(&buildctl)
            .arg("--addr")
            .arg(address)
            .args(["build", "--progress=plain"])
            .arg(format!("--secret=id=tok,src={}", token.display()))
            .arg(format!("--output=type=local,dest={}", out.display()))
            .arg(cache_flag)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), &definition).unwrap();
        let output = child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{log}\n{}", kilnd.log());
        log
    };
    let first = build(
        &buildkitd.address(),
        format!(
            "--export-cache=type=local,dest={},mode=max",
            cache.display()
        ),
    );
    let log = build(
        &kilnd.address(),
        format!("--import-cache=type=local,src={}", cache.display()),
    );
    let merge = format!("merge ({url}, {url})");
    let step = log
        .lines()
        .find(|l| l.ends_with(&merge))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no step {merge}:\n{first}\n{log}"));
    assert!(
        log.lines().any(|l| l == format!("{step} CACHED")),
        "the downloads are keyed as BuildKit keys them:\n{first}\n{log}"
    );
    for file in ["got.txt", "also.txt"] {
        assert_eq!(
            fs_err::read_to_string(out.join(file)).unwrap(),
            "over http with headers\n"
        );
    }
    // Each daemon asked twice, with the headers each download names, and the secret
    // as Authorization for the one that names it.
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 4, "{heads:?}");
    let with_secret = heads
        .iter()
        .filter(|h| h.contains("authorization: bearer s3cret\r\n"))
        .count();
    assert_eq!(with_secret, 2, "{heads:?}");
    for head in heads.iter() {
        assert!(head.contains("accept: text/plain\r\n"), "{head}");
        assert_eq!(
            head.contains("user-agent: kiln-test\r\n"),
            head.contains("authorization:"),
            "{head}"
        );
    }
}

/// A context file's extended attribute travels with it (fsutil's clients send it and
/// kilnd's receiver sets it) and counts in its checksum as in BuildKit: BuildKit v0.24's
/// local cache of a `COPY` of that file answers the same build on kilnd, from buildctl
/// and from kiln's own client.
#[test]
fn a_context_files_extended_attributes_are_keyed_as_in_buildkit() {
    if !can_build() {
        return;
    }
    let Some(buildctl) = kiln_test::oracle_tool("buildctl", "KILN_BUILDCTL") else {
        return;
    };
    let Some(kiln) = crate::kiln_cli::kiln_binary() else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let Some(buildkitd) = kiln_test::Buildkitd::start(&[registry.host()]) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    fs_err::create_dir_all(&ctx).unwrap();
    fs_err::write(ctx.join("a.txt"), "tagged").unwrap();
    rustix::fs::lsetxattr(
        ctx.join("a.txt"),
        "user.kiln",
        b"v1",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    fs_err::write(
        ctx.join("Dockerfile"),
        format!("FROM {image}\nCOPY a.txt /a.txt\n"),
    )
    .unwrap();
    let cache = work.path().join("cache");
    let buildctl_build = |address: &str, cache_flag: String| {
        let out = run(Command::new(&buildctl)
            .arg("--addr")
            .arg(address)
            .args(["build", "--progress=plain", "--frontend", "dockerfile.v0"])
            .arg(format!("--local=context={}", ctx.display()))
            .arg(format!("--local=dockerfile={}", ctx.display()))
            .arg(cache_flag));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let copied = |log: &str| {
        let step = log
            .lines()
            .find(|l| l.contains("COPY a.txt"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no COPY step:\n{log}"));
        log.lines().any(|l| l == format!("{step} CACHED"))
    };
    buildctl_build(
        &buildkitd.address(),
        format!(
            "--export-cache=type=local,dest={},mode=max",
            cache.display()
        ),
    );
    let kilnd = Kilnd::start(&[]);
    let import = format!("type=local,src={}", cache.display());
    let log = buildctl_build(&kilnd.address(), format!("--import-cache={import}"));
    assert!(copied(&log), "buildctl on kilnd:\n{log}");
    let fresh = Kilnd::start(&[]);
    let out = run(Command::new(&kiln)
        .args(["build", "--progress=plain", "--addr", &fresh.address()])
        .args(["--cache-from", &import])
        .arg(&ctx));
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(copied(&log), "kiln on kilnd:\n{log}");
}

/// A Dockerfile that fires checks on one line, on several, and in an unused stage.
const LINTED: &str = "FROM scratch as Base\ncopy a /\n\nFROM base\nMAINTAINER me\nENV A 1\n\nFROM scratch AS Other\nmaintainer me\n";

/// `--call` through kilnd answers as through buildkitd v0.24: buildx prints the same
/// outline, targets, checks and descriptions, as tables and as JSON, with the same exit
/// status; and kiln prints the same, asking either daemon or its embedded engine.
#[test]
fn calls_answer_through_kilnd_as_through_buildkitd() {
    if !kiln_test::is_root() {
        kiln_test::skip("kilnd needs root");
        return;
    }
    let Some(buildx) = kiln_test::oracle_tool("docker-buildx", "KILN_BUILDX") else {
        return;
    };
    let Some(buildkitd) = kiln_test::Buildkitd::start(&[]) else {
        return;
    };
    let Some(kiln) = crate::kiln_cli::kiln_binary() else {
        return;
    };
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let (outlined, linted) = (work.path().join("outlined"), work.path().join("linted"));
    for (dir, dockerfile) in [
        (&outlined, kiln_test::OUTLINED_DOCKERFILE),
        (&linted, LINTED),
    ] {
        fs_err::create_dir_all(dir).unwrap();
        fs_err::write(dir.join("Dockerfile"), dockerfile).unwrap();
    }
    let docker_config = work.path().join("docker");
    for (name, address) in [
        ("calls-kilnd", kilnd.address()),
        ("calls-buildkitd", buildkitd.address()),
    ] {
        run(Command::new(&buildx)
            .env("DOCKER_CONFIG", &docker_config)
            .args(["create", "--name", name, "--driver", "remote", &address]));
    }
    // The answer's stdout (a lint's JSON without the LLB that loaded the Dockerfile,
    // which names a session) and exit status.
    let answer = |output: Output, call: &str| {
        let mut stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if call.starts_with("check,format=json") {
            let mut lint: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            for source in lint["sources"].as_array_mut().unwrap() {
                source.as_object_mut().unwrap().remove("definition");
            }
            stdout = serde_json::to_string_pretty(&lint).unwrap();
        }
        (stdout, output.status.code())
    };
    let cases: [(&Path, &[&str]); 10] = [
        (&outlined, &["outline"]),
        (&outlined, &["outline", "--target", "build"]),
        (&outlined, &["outline", "--target", "tools"]),
        (
            &outlined,
            &["outline,format=json", "--build-arg", "VERSION=1.0"],
        ),
        (&outlined, &["targets"]),
        (&outlined, &["targets,format=json"]),
        (&outlined, &["subrequests.describe"]),
        (&outlined, &["check"]),
        (&linted, &["check"]),
        (&linted, &["check,format=json"]),
    ];
    for (dir, args) in cases {
        let (call, rest) = args.split_first().unwrap();
        let dir = dir.display().to_string();
        let through = |builder: &str| {
            let output = Command::new(&buildx)
                .env("DOCKER_CONFIG", &docker_config)
                .args(["build", "--builder", builder, "--call", call])
                .args(rest)
                .arg(&dir)
                .output()
                .unwrap();
            answer(output, call)
        };
        let expected = through("calls-buildkitd");
        assert!(
            !expected.0.is_empty(),
            "{args:?}: buildkitd answered nothing"
        );
        assert_eq!(through("calls-kilnd"), expected, "buildx --call {args:?}");
        for address in [kilnd.address(), buildkitd.address(), String::new()] {
            let mut command = Command::new(&kiln);
            command
                .env("KILN_ROOT", work.path().join("embedded"))
                .arg("build");
            if !address.is_empty() {
                command.args(["--addr", &address]);
            }
            let output = command
                .args(["--call", call])
                .args(rest)
                .arg(&dir)
                .output()
                .unwrap();
            assert_eq!(
                answer(output, call),
                expected,
                "kiln build --addr {address:?} --call {args:?}"
            );
        }
    }
}

/// A Bake target whose named context is another target (`target:base`), baked through
/// the gateway: `base` is solved first, and the definition returned with its ref goes
/// back as a frontend input (`input:`) with its image config. buildx through kilnd
/// (each target in a session of its own, `base`'s still lending its `context`); kiln
/// through kilnd and through buildkitd v0.24 (one session, `base` lent under keys of its
/// own).
#[test]
fn a_target_on_another_is_baked_through_kilnd_and_buildkitd() {
    if !can_build() {
        return;
    }
    let Some(buildx) = kiln_test::oracle_tool("docker-buildx", "KILN_BUILDX") else {
        return;
    };
    let Some(kiln) = crate::kiln_cli::kiln_binary() else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let Some(buildkitd) = kiln_test::Buildkitd::start(&[registry.host()]) else {
        return;
    };
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let project = work.path().join("project");
    kiln_test::write_files(
        &project,
        &[
            ("base/base.txt", "from base".to_owned()),
            (
                "base/Dockerfile",
                format!("FROM {image}\nENV FROM_BASE=yes\nCOPY base.txt /base.txt\n"),
            ),
            ("app/app.txt", "from app".to_owned()),
            (
                "app/Dockerfile",
                "FROM base\nCOPY app.txt /app.txt\nRUN echo \"$FROM_BASE\" > /env.txt\n".to_owned(),
            ),
        ],
    );
    // Inside the project: buildx asks for an entitlement to write elsewhere.
    let out = project.join("out");
    fs_err::write(
        project.join("docker-bake.hcl"),
        format!(
            r#"target "base" {{
  context = "base"
}}
target "app" {{
  context = "app"
  contexts = {{ base = "target:base" }}
  output = ["type=local,dest={}"]
}}
"#,
            out.display()
        ),
    )
    .unwrap();
    let buildx = Buildx::on(&kilnd, buildx, work.path());
    run(buildx.command().current_dir(&project).args([
        "bake",
        "--builder",
        "kiln-test",
        "--progress=plain",
        "app",
    ]));
    let built = |out: &Path| {
        let read = |path: &str| fs_err::read_to_string(out.join(path)).unwrap();
        assert_eq!(read("base.txt"), "from base", "{}", out.display());
        assert_eq!(read("app.txt"), "from app");
        assert_eq!(read("env.txt"), "yes\n");
    };
    built(&out);
    for (name, address) in [
        ("kilnd", kilnd.address()),
        ("buildkitd", buildkitd.address()),
    ] {
        let out = work.path().join(format!("kiln-{name}"));
        let output = Command::new(&kiln)
            .current_dir(&project)
            .args(["bake", "--progress=plain", "--addr", &address])
            .arg(format!(
                "--set=app.output=type=local,dest={}",
                out.display()
            ))
            .arg("app")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kiln bake through {name}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        built(&out);
    }
}

/// A context with `a/x` beside `a.txt` and `a-b`: senders list a directory's entries
/// right after it (fsutil's path order), which BuildKit's receiver checks. kiln sends
/// to buildkitd v0.24, and buildx to kilnd, in that order.
#[test]
fn names_sorting_around_a_slash_travel_in_fsutils_order() {
    if !can_build() {
        return;
    }
    let Some(buildx) = kiln_test::oracle_tool("docker-buildx", "KILN_BUILDX") else {
        return;
    };
    let Some(kiln) = crate::kiln_cli::kiln_binary() else {
        return;
    };
    let Some(buildkitd) = kiln_test::Buildkitd::start(&[]) else {
        return;
    };
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    kiln_test::write_files(
        &ctx,
        &[("a/x", "x"), ("a.txt", "t"), ("a-b", "b"), ("a/y/z", "z")],
    );
    fs_err::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    let check = |out: &Path| {
        for (path, text) in [("a/x", "x"), ("a.txt", "t"), ("a-b", "b"), ("a/y/z", "z")] {
            assert_eq!(fs_err::read_to_string(out.join(path)).unwrap(), text);
        }
    };
    let out = work.path().join("kiln-buildkitd");
    run(Command::new(&kiln)
        .args(["build", "--progress=plain", "--addr", &buildkitd.address()])
        .arg(format!("--output=type=local,dest={}", out.display()))
        .arg(&ctx));
    check(&out);
    let buildx = Buildx::on(&kilnd, buildx, work.path());
    let out = work.path().join("buildx-kilnd");
    buildx.run(&[
        "build",
        "--builder",
        "kiln-test",
        "--output",
        &format!("type=local,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    check(&out);
}

/// `docker buildx history ls` lists builds through kilnd as through buildkitd v0.24:
/// the same names and outcomes, newest first (buildx's probe of the gateway's options
/// is internal and has no record in either).
#[test]
fn buildx_lists_kilnds_history_as_buildkitds() {
    if !can_build() {
        return;
    }
    let Some(buildx) = kiln_test::oracle_tool("docker-buildx", "KILN_BUILDX") else {
        return;
    };
    let Some(buildkitd) = kiln_test::Buildkitd::start(&[]) else {
        return;
    };
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    fs_err::create_dir_all(&ctx).unwrap();
    fs_err::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY Dockerfile /\n").unwrap();
    let broken = work.path().join("broken.Dockerfile");
    fs_err::write(&broken, "FROM scratch\nCOPY missing /\n").unwrap();
    let config = work.path().join("docker");
    let binary = buildx;
    let buildx = |args: &[&str]| {
        Command::new(&binary)
            .env("DOCKER_CONFIG", &config)
            .args(args)
            .output()
            .unwrap()
    };
    let mut listed = Vec::new();
    for (name, address) in [
        ("on-kilnd", kilnd.address()),
        ("on-buildkitd", buildkitd.address()),
    ] {
        let created = buildx(&["create", "--name", name, "--driver", "remote", &address]);
        assert!(created.status.success());
        let out = work.path().join(name);
        let built = buildx(&[
            "build",
            "--builder",
            name,
            "-o",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ]);
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let failed = buildx(&[
            "build",
            "--builder",
            name,
            "-f",
            broken.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ]);
        assert!(!failed.status.success());
        let ls = buildx(&[
            "history",
            "ls",
            "--builder",
            name,
            "--format",
            "{{.Name}} {{.Status}}",
        ]);
        listed.push(String::from_utf8_lossy(&ls.stdout).into_owned());
    }
    assert_eq!(listed[0], listed[1]);
    let lines: Vec<&str> = listed[0].lines().collect();
    assert!(
        lines[0].ends_with("/broken.Dockerfile Error"),
        "{}",
        listed[0]
    );
    assert_eq!(lines[1..], ["ctx Completed"]);
}

/// buildx's plain progress names the same steps, numbered alike, through kilnd as
/// through buildkitd v0.24: the Dockerfile's, `.dockerignore`'s and the context's
/// loads (kilnd's transfers join the build's own steps), the build's, the export's.
#[test]
fn buildx_shows_the_same_steps_through_kilnd_as_through_buildkitd() {
    if !can_build() {
        return;
    }
    let Some(buildx) = kiln_test::oracle_tool("docker-buildx", "KILN_BUILDX") else {
        return;
    };
    let Some(buildkitd) = kiln_test::Buildkitd::start(&[]) else {
        return;
    };
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    fs_err::create_dir_all(ctx.join("files")).unwrap();
    fs_err::write(ctx.join("files/a.txt"), "a").unwrap();
    fs_err::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY files /files\n").unwrap();
    let config = work.path().join("docker");
    let mut steps = Vec::new();
    for (name, address) in [
        ("on-kilnd", kilnd.address()),
        ("on-buildkitd", buildkitd.address()),
    ] {
        run(Command::new(&buildx)
            .env("DOCKER_CONFIG", &config)
            .args(["create", "--name", name, "--driver", "remote", &address]));
        let mut titles = Vec::new();
        for (kind, output) in [("local", "type=local,dest="), ("tar", "type=tar,dest=")] {
            let built = run(Command::new(&buildx).env("DOCKER_CONFIG", &config).args([
                "build",
                "--builder",
                name,
                "--no-cache",
                "--progress=plain",
                "--output",
                &format!(
                    "{output}{}",
                    work.path().join(format!("{name}.{kind}")).display()
                ),
                ctx.to_str().unwrap(),
            ]));
            // Each step's first line: `#N title`.
            let log = String::from_utf8_lossy(&built.stderr).into_owned();
            let mut seen = std::collections::BTreeSet::new();
            for line in log.lines() {
                let Some((number, title)) = line.strip_prefix('#').and_then(|l| l.split_once(' '))
                else {
                    continue;
                };
                if number != "0" && seen.insert(number.to_owned()) {
                    titles.push(format!("#{number} {title}"));
                }
            }
        }
        steps.push(titles);
    }
    assert_eq!(steps[0], steps[1]);
    assert!(
        steps[0].contains(&"#3 [internal] load build context".to_owned()),
        "{:?}",
        steps[0]
    );
}
