//! The kiln command line building on kilnd (`kiln build --addr`): the same files,
//! secrets and outputs as an embedded build, over a unix socket and over TCP with
//! mutual TLS.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Kilnd, can_build};

/// The kiln binary built beside kilnd (a workspace build makes both).
pub(crate) fn kiln_binary() -> Option<PathBuf> {
    let kiln = PathBuf::from(env!("CARGO_BIN_EXE_kilnd")).with_file_name("kiln");
    if kiln.is_file() {
        Some(kiln)
    } else {
        kiln_test::skip("the kiln binary is not built (build the workspace)");
        None
    }
}

fn kiln_build(kiln: &PathBuf, address: &str, args: &[&str]) -> String {
    let output = Command::new(kiln)
        .args(["build", "--progress=plain", "--addr", address])
        .args(args)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "kiln build failed:\n{log}");
    log
}

#[test]
fn kiln_builds_on_kilnd() {
    if !can_build() {
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    let shared = work.path().join("shared");
    fs_err::create_dir_all(ctx.join("app")).unwrap();
    fs_err::create_dir_all(&shared).unwrap();
    fs_err::write(ctx.join("app/a.txt"), "one").unwrap();
    fs_err::write(ctx.join(".dockerignore"), "*.log\n").unwrap();
    fs_err::write(ctx.join("noise.log"), "ignored").unwrap();
    fs_err::write(shared.join("lib.txt"), "from a named context").unwrap();
    // More files than a process may hold open at once: a transfer never opens them all.
    fs_err::create_dir_all(ctx.join("app/many")).unwrap();
    for i in 0..1500 {
        fs_err::write(ctx.join(format!("app/many/f{i}")), i.to_string()).unwrap();
    }
    fs_err::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {image} AS base\nARG GREETING\nCOPY app/ /app/\nCOPY --from=lib lib.txt /lib.txt\n\
             RUN --mount=type=secret,id=tok cat /run/secrets/tok > /tok && echo $GREETING > /greeting && ls / > /listing\n\
             FROM base AS final\nRUN cat /app/a.txt > /copied\n"
        ),
    )
    .unwrap();
    let secret = work.path().join("tok");
    fs_err::write(&secret, "s3cret").unwrap();
    let out = work.path().join("out");
    let common = |output: String| -> Vec<String> {
        vec![
            "--secret".to_owned(),
            format!("id=tok,src={}", secret.display()),
            "--build-arg".to_owned(),
            "GREETING=hello".to_owned(),
            "--build-context".to_owned(),
            format!("lib={}", shared.display()),
            "--target".to_owned(),
            "final".to_owned(),
            "-o".to_owned(),
            output,
            ctx.display().to_string(),
        ]
    };
    let args = common(format!("type=local,dest={}", out.display()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kiln_build(&kiln, &kilnd.address(), &args);
    assert_eq!(fs_err::read_to_string(out.join("tok")).unwrap(), "s3cret");
    assert_eq!(
        fs_err::read_to_string(out.join("greeting")).unwrap(),
        "hello\n"
    );
    assert_eq!(fs_err::read_to_string(out.join("copied")).unwrap(), "one");
    assert_eq!(
        fs_err::read_to_string(out.join("lib.txt")).unwrap(),
        "from a named context"
    );
    assert!(!out.join("app/noise.log").exists());
    assert_eq!(
        fs_err::read_dir(out.join("app/many")).unwrap().count(),
        1500
    );
    assert_eq!(
        fs_err::read_to_string(out.join("app/many/f1499")).unwrap(),
        "1499"
    );

    // Again, as an OCI archive: every step is cached.
    let archive = work.path().join("image.tar");
    let args = common(format!(
        "type=oci,name=kiln-remote:1,dest={}",
        archive.display()
    ));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = kiln_build(&kiln, &kilnd.address(), &args);
    for step in ["COPY app/", "RUN --mount=type=secret", "RUN cat /app/a.txt"] {
        let number = log
            .lines()
            .find(|l| l.contains(step))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no step {step} in:\n{log}"));
        assert!(
            log.lines().any(|l| l == format!("{number} CACHED")),
            "{step} was not cached:\n{log}"
        );
    }
    let inspect = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", archive.display()))
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{inspect:?}");

    // A changed, a removed and a new file: the daemon's copy of the context follows,
    // and the build reads it as it now is (not as the previous transfer left it).
    fs_err::write(ctx.join("app/a.txt"), "two").unwrap();
    fs_err::remove_file(ctx.join("app/many/f0")).unwrap();
    fs_err::write(ctx.join("app/many/new"), "new").unwrap();
    let args = common(format!("type=local,dest={}", out.display()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fs_err::remove_dir_all(&out).unwrap();
    kiln_build(&kiln, &kilnd.address(), &args);
    assert_eq!(fs_err::read_to_string(out.join("copied")).unwrap(), "two");
    assert!(!out.join("app/many/f0").exists());
    assert_eq!(
        fs_err::read_to_string(out.join("app/many/new")).unwrap(),
        "new"
    );

    // The build cache, listed and pruned through the same builder interface.
    let cache = |args: &[&str]| -> String {
        let output = Command::new(&kiln)
            .args(args)
            .args(["--addr", &kilnd.address()])
            .output()
            .unwrap();
        assert!(output.status.success(), "kiln {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let listed = cache(&["du", "--verbose", "--filter", "type==regular"]);
    assert!(listed.contains("Type:\t\tregular"), "{listed}");
    assert!(!listed.contains("Type:\t\tsource.local"), "{listed}");
    let removed = cache(&["prune", "--all", "--force", "--verbose"]);
    assert!(removed.contains("Type:\t\tregular"), "{removed}");
    let after = cache(&["du"]);
    assert!(after.ends_with("Total:\t\t0B\n"), "{after}");

    // An error names its cause.
    fs_err::write(
        ctx.join("Dockerfile"),
        format!("FROM {image}\nRUN exit 3\n"),
    )
    .unwrap();
    let failed = Command::new(&kiln)
        .args(["build", "--progress=plain", "--addr", &kilnd.address()])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("exit code: 3"), "{stderr}");
}

/// `kiln build --ssh` on kilnd: the client's agent is reached from the step through
/// the session (the host's `ssh-add -l` inside RUN lists the key added outside).
#[test]
fn kiln_forwards_its_ssh_agent_through_kilnd() {
    if !can_build() {
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let agent = kiln_test::SshAgent::start(work.path());
    let tools = work.path().join("tools");
    let loader = kiln_test::ssh_add_tools(&tools);
    let ctx = work.path().join("ctx");
    fs_err::create_dir_all(&ctx).unwrap();
    fs_err::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {image}\nRUN --mount=type=ssh,required --mount=type=bind,from=tools,target=/tools \
             /tools/{loader} --library-path /tools /tools/ssh-add -l > /keys\n"
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    kiln_build(
        &kiln,
        &kilnd.address(),
        &[
            "--ssh",
            &format!("default={}", agent.socket.display()),
            "--build-context",
            &format!("tools={}", tools.display()),
            "-o",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ],
    );
    let listed = fs_err::read_to_string(out.join("keys")).unwrap();
    assert_eq!(
        listed.split_whitespace().nth(1),
        Some(agent.fingerprint.as_str()),
        "{listed}"
    );
}

/// Registry credentials come from the client, through its session (`Auth`), never
/// from the daemon: through kilnd, a client with a login pushes to and pulls from a
/// registry that wants one, and another client without it is refused, although the
/// daemon has just talked to that registry for the first.
#[test]
fn registry_credentials_come_from_the_client() {
    if !can_build() || !kiln_test::on_path("htpasswd") {
        kiln_test::skip("needs root, runc, the registry tools and htpasswd (apache2-utils)");
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let htpasswd = work.path().join("htpasswd");
    let made = Command::new("htpasswd")
        .arg("-Bbc")
        .arg(&htpasswd)
        .args(["kiln", "s3cret"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let port = kiln_test::free_port();
    let config = work.path().join("registry.yml");
    fs_err::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n\
             auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\nlog:\n  level: error\n",
            work.path().join("data").display(),
            htpasswd.display()
        ),
    )
    .unwrap();
    // Killed when the test ends, passed or failed.
    struct Stopped(std::process::Child);
    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _registry = Stopped(
        Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kilnd = Kilnd::start(&[]);
    let logged_in = work.path().join("logged-in");
    let anonymous = work.path().join("anonymous");
    fs_err::create_dir_all(&logged_in).unwrap();
    fs_err::create_dir_all(&anonymous).unwrap();
    // `docker login` writes base64("user:password") under the registry's name.
    fs_err::write(
        logged_in.join("config.json"),
        format!(r#"{{"auths": {{"127.0.0.1:{port}": {{"auth": "a2lsbjpzM2NyZXQ="}}}}}}"#),
    )
    .unwrap();
    let project = work.path().join("project");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(project.join("a.txt"), "private\n").unwrap();
    let build = |docker_config: &PathBuf, dockerfile: &str, args: &[&str]| {
        fs_err::write(project.join("Dockerfile"), dockerfile).unwrap();
        Command::new(&kiln)
            .env("DOCKER_CONFIG", docker_config)
            .args(["build", "--progress=plain", "--addr", &kilnd.address()])
            .args(args)
            .arg(&project)
            .output()
            .unwrap()
    };
    let base = format!("127.0.0.1:{port}/private/base:1");
    let pushed = build(
        &logged_in,
        "FROM scratch\nCOPY a.txt /\n",
        &["--push", "-t", &base],
    );
    assert!(pushed.status.success(), "{pushed:?}\n{}", kilnd.log());

    let out = work.path().join("out");
    let pulled = build(
        &logged_in,
        &format!("FROM {base}\nCOPY a.txt /again.txt\n"),
        &["-o", &format!("type=local,dest={}", out.display())],
    );
    assert!(pulled.status.success(), "{pulled:?}\n{}", kilnd.log());
    for file in ["a.txt", "again.txt"] {
        assert_eq!(fs_err::read_to_string(out.join(file)).unwrap(), "private\n");
    }

    let refused = build(
        &anonymous,
        &format!("FROM {base}\nCOPY a.txt /again.txt\n"),
        &[],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
}

/// `--cache-to`/`--cache-from` of a `kiln build --addr` reach the daemon: a registry
/// cache exported by one kilnd answers every step of another, empty one.
#[test]
fn kiln_on_kilnd_exports_and_imports_a_registry_cache() {
    if !can_build() {
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let cache = format!("type=registry,ref={}/app:cache,mode=max", registry.host());
    let (_work, _context, _second, log) = share_a_cache(&kiln, &registry, &cache, &cache);
    assert!(
        log.contains("importing cache manifest from type=registry"),
        "{log}"
    );
}

/// A `type=local` cache of a `kiln build --addr`: the daemon writes and reads the
/// client's directory through the session's content store, the client keeps its
/// index.json (tag `latest`, and `tag=` moves another). One kilnd's export answers every
/// step of another, empty one.
#[test]
fn kiln_on_kilnd_exports_and_imports_a_local_cache() {
    if !can_build() {
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (_work, context, second, log) = share_a_cache(
        &kiln,
        &registry,
        &format!("type=local,dest={},mode=max", cache.display()),
        &format!("type=local,src={}", cache.display()),
    );
    assert!(
        log.contains("importing cache manifest from type=local"),
        "{log}"
    );
    let tagged = |tag: &str| -> Option<String> {
        let index: serde_json::Value =
            serde_json::from_slice(&fs_err::read(cache.join("index.json")).unwrap()).unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .map(|m| m["digest"].as_str().unwrap().to_owned())
    };
    let latest = tagged("latest").expect("the client tagged the manifest");
    // Exported again under another tag by the second daemon: both tags are there.
    kiln_build(
        &kiln,
        &second.address(),
        &[
            "--cache-to",
            &format!("type=local,dest={},mode=max,tag=v2", cache.display()),
            &context,
        ],
    );
    assert_eq!(tagged("latest").as_ref(), Some(&latest));
    assert!(tagged("v2").is_some());
    // No cache there yet: a warning, and the build goes on.
    let empty = dir.path().join("empty");
    let log = kiln_build(
        &kiln,
        &second.address(),
        &[
            "--cache-from",
            &format!("type=local,src={}", empty.display()),
            &context,
        ],
    );
    assert!(log.contains("local cache import at"), "{log}");
}

/// An s3 cache through kilnd (its engine runs on tokio's blocking threads, where the
/// object store's requests must still run): exported by one daemon, it answers every
/// step of another, empty one.
#[test]
fn kiln_on_kilnd_exports_and_imports_an_s3_cache() {
    if !can_build() {
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let Some(moto) = kiln_test::cloud::Moto::start() else {
        return;
    };
    moto.create_bucket("kilnd-cache");
    let registry = kiln_test::Registry::start();
    let cache = format!(
        "type=s3,endpoint_url={},bucket=kilnd-cache,region=us-east-1,access_key_id=a,secret_access_key=b,use_path_style=true",
        moto.endpoint()
    );
    let (_work, _context, _second, log) =
        share_a_cache(&kiln, &registry, &format!("{cache},mode=max"), &cache);
    assert!(moto.object("kilnd-cache", "manifests/buildkit").is_some());
    assert!(log.contains("cache hit in type=s3"), "{log}");
}

/// One kilnd builds a two-step Dockerfile with `--cache-to CACHE_TO`, a second, empty
/// one with `--cache-from CACHE_FROM`, every step of which must be cached. Returns the
/// work directory, the context, the second daemon and its build's log.
fn share_a_cache(
    kiln: &PathBuf,
    registry: &kiln_test::Registry,
    cache_to: &str,
    cache_from: &str,
) -> (tempfile::TempDir, String, Kilnd, String) {
    let image = registry.push_busybox();
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    fs_err::create_dir_all(&ctx).unwrap();
    fs_err::write(ctx.join("a.txt"), "one").unwrap();
    fs_err::write(
        ctx.join("Dockerfile"),
        format!("FROM {image}\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copied\n"),
    )
    .unwrap();
    let context = ctx.to_str().unwrap().to_owned();
    let first = Kilnd::start(&[]);
    kiln_build(kiln, &first.address(), &["--cache-to", cache_to, &context]);
    let second = Kilnd::start(&[]);
    let log = kiln_build(
        kiln,
        &second.address(),
        &["--cache-from", cache_from, &context],
    );
    assert_eq!(log.matches(" CACHED").count(), 3, "{log}");
    (work, context, second, log)
}

/// `kiln build --platform a,b` on kilnd: the platforms travel as the frontend's
/// `platform` option, and the `tar` output has a directory per platform.
#[test]
fn kiln_builds_two_platforms_on_kilnd() {
    if !can_build() {
        return;
    }
    if !std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
        kiln_test::skip("qemu-user-static's handlers are not registered in binfmt_misc");
        return;
    }
    let Some(kiln) = kiln_binary() else {
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
        format!(
            "FROM {base} AS build\nRUN uname -m > /arch\nFROM scratch\nCOPY --from=build /arch /\n"
        ),
    )
    .unwrap();
    let tar = work.path().join("out.tar");
    kiln_build(
        &kiln,
        &kilnd.address(),
        &[
            "--platform",
            "linux/arm64,linux/amd64",
            "-o",
            &format!("type=tar,dest={}", tar.display()),
            ctx.to_str().unwrap(),
        ],
    );
    let unpacked = work.path().join("unpacked");
    fs_err::create_dir_all(&unpacked).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&unpacked)
            .status()
            .unwrap()
            .success()
    );
    for (dir, machine) in [("linux_arm64", "aarch64"), ("linux_amd64", "x86_64")] {
        let arch = fs_err::read_to_string(unpacked.join(dir).join("arch")).unwrap();
        assert_eq!(arch.trim(), machine);
    }
}

/// An image in an OCI layout on the client's machine as a named context, through
/// kilnd: the client lends the layout as a content store and kilnd copies the image's
/// blobs from it (as buildx and buildkitd do); the step on it runs.
#[test]
fn kiln_builds_on_an_oci_layout_of_the_client_through_kilnd() {
    if !can_build() {
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let manifest_digest = kiln_test::copy_to_layout(&image, &layout, "v1");
    let ctx = work.path().join("ctx");
    fs_err::create_dir_all(&ctx).unwrap();
    fs_err::write(
        ctx.join("Dockerfile"),
        "FROM base\nRUN echo ran on the layout > /ran\n",
    )
    .unwrap();
    let out = work.path().join("out");
    kiln_build(
        &kiln,
        &kilnd.address(),
        &[
            "--build-context",
            &format!("base=oci-layout://{}:v1", layout.display()),
            "-o",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ],
    );
    assert_eq!(
        fs_err::read_to_string(out.join("ran")).unwrap(),
        "ran on the layout\n"
    );
    // busybox itself came from the layout.
    assert!(out.join("bin/busybox").is_file());
    // A blob of the layout that does not match its digest is refused, not used.
    let blobs = layout.join("blobs/sha256");
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs_err::read(blobs.join(manifest_digest.trim_start_matches("sha256:"))).unwrap(),
    )
    .unwrap();
    let config = blobs.join(
        manifest["config"]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let mut tampered = fs_err::read(&config).unwrap();
    tampered.push(b' ');
    fs_err::write(&config, tampered).unwrap();
    fs_err::write(ctx.join("Dockerfile"), "FROM base\nRUN echo again > /ran\n").unwrap();
    let output = Command::new(&kiln)
        .args(["build", "--progress=plain", "--addr", &kilnd.address()])
        .args([
            "--build-context",
            &format!("base=oci-layout://{}:v1", layout.display()),
        ])
        .arg(ctx.to_str().unwrap())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("whose digest is"), "{log}");
}

/// Rebuilds of one context through kilnd see every kind of change since the last
/// transfer (kilnd remembers what it received instead of walking its copy again):
/// a file edited, one removed, one added, a directory made a file and a mode changed.
#[test]
fn kilnd_sees_each_change_to_a_context_between_builds() {
    if !can_build() {
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let mut kilnd = Kilnd::start(&[]);
    let address = kilnd.address();
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    fs_err::create_dir_all(ctx.join("dir/sub")).unwrap();
    fs_err::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    fs_err::write(ctx.join("edited.txt"), "one").unwrap();
    fs_err::write(ctx.join("removed.txt"), "gone soon").unwrap();
    fs_err::write(ctx.join("dir/sub/a.txt"), "a").unwrap();
    fs_err::write(ctx.join("moded.sh"), "#!/bin/sh\n").unwrap();
    let build = |name: &str| {
        let out = work.path().join(name);
        kiln_build(
            &kiln,
            &address,
            &[
                "-o",
                &format!("type=local,dest={}", out.display()),
                ctx.to_str().unwrap(),
            ],
        );
        out
    };
    let first = build("first");
    assert!(first.join("removed.txt").is_file());
    assert!(first.join("dir/sub/a.txt").is_file());
    let unchanged = build("unchanged");
    assert_eq!(
        fs_err::read_to_string(unchanged.join("edited.txt")).unwrap(),
        "one"
    );
    // The same length and a later mtime, as an editor leaves it.
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs_err::write(ctx.join("edited.txt"), "two").unwrap();
    fs_err::remove_file(ctx.join("removed.txt")).unwrap();
    fs_err::write(ctx.join("added.txt"), "new").unwrap();
    fs_err::remove_dir_all(ctx.join("dir")).unwrap();
    fs_err::write(ctx.join("dir"), "a file now").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    fs_err::set_permissions(ctx.join("moded.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let second = build("second");
    assert_eq!(
        fs_err::read_to_string(second.join("edited.txt")).unwrap(),
        "two"
    );
    assert!(!second.join("removed.txt").exists());
    assert_eq!(
        fs_err::read_to_string(second.join("added.txt")).unwrap(),
        "new"
    );
    assert_eq!(
        fs_err::read_to_string(second.join("dir")).unwrap(),
        "a file now"
    );
    let mode = fs_err::metadata(second.join("moded.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    // kilnd restarted: it walks its copy again and still agrees.
    kilnd.kill_and_restart(&[]);
    fs_err::write(ctx.join("added.txt"), "newer").unwrap();
    let third = build("third");
    assert_eq!(
        fs_err::read_to_string(third.join("added.txt")).unwrap(),
        "newer"
    );
    assert_eq!(
        fs_err::read_to_string(third.join("edited.txt")).unwrap(),
        "two"
    );
}

/// `kiln build --call` on kilnd: the client drives the frontend through the gateway, as
/// buildx does, and prints the same answers as the embedded engine (whose texts the
/// `calls` tests pin to BuildKit's), exit statuses included.
#[test]
fn kiln_calls_answer_through_kilnd_as_embedded() {
    if !kiln_test::is_root() {
        kiln_test::skip("kilnd needs root");
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    fs_err::write(
        work.path().join("Dockerfile"),
        kiln_test::OUTLINED_DOCKERFILE.replace("ARG FINAL", "arg FINAL"),
    )
    .unwrap();
    let dir = work.path().to_str().unwrap();
    for call in [
        "outline",
        "targets,format=json",
        "check",
        "subrequests.describe",
    ] {
        let answer = |address: Option<&str>| {
            let mut command = Command::new(&kiln);
            command
                .env("KILN_ROOT", work.path().join("state"))
                .arg("build");
            if let Some(address) = address {
                command.args(["--addr", address]);
            }
            let output = command.args(["--call", call, dir]).output().unwrap();
            (
                String::from_utf8_lossy(&output.stdout).into_owned(),
                output.status.code(),
            )
        };
        let embedded = answer(None);
        assert!(!embedded.0.is_empty(), "--call {call}: no answer");
        assert_eq!(answer(Some(&kilnd.address())), embedded, "--call {call}");
    }
}

/// `kiln build --addr … GIT_URL` hands the URL to the daemon, as buildx does: kilnd
/// fetches the repository (the client needs no git), reads the Dockerfile `-f` names
/// inside it, or the client's own when `-f` is an absolute path.
#[test]
fn kiln_hands_a_git_context_to_kilnd() {
    if !can_build() {
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let (_git_daemon, repo) = kiln_test::serve_git(
        work.path(),
        &[
            ("greeting.txt", "from the repository"),
            (
                "build/app.Dockerfile",
                &format!("FROM {image}\nCOPY greeting.txt /in-repo.txt\n"),
            ),
        ],
    );
    let own = work.path().join("own.Dockerfile");
    fs_err::write(
        &own,
        format!("FROM {image}\nCOPY greeting.txt /client-dockerfile.txt\n"),
    )
    .unwrap();
    for (file, copied) in [
        ("build/app.Dockerfile", "in-repo.txt"),
        (own.to_str().unwrap(), "client-dockerfile.txt"),
    ] {
        let out = work.path().join(copied);
        let output = Command::new(&kiln)
            // No git for the client: the daemon fetches.
            .env("PATH", "/nonexistent")
            .args(["build", "--progress=plain", "--addr", &kilnd.address()])
            .args([
                "-f",
                file,
                "-o",
                &format!("type=local,dest={}", out.display()),
            ])
            .arg(format!("{repo}#main"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "-f {file}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            fs_err::read_to_string(out.join(copied)).unwrap(),
            "from the repository"
        );
    }
}

/// `kiln bake --addr` builds every target on the daemon, each with its own session:
/// one from a directory of the client's, one from a git repository the daemon fetches
/// (the client has no git), both exported to the client.
#[test]
fn kiln_bakes_on_kilnd() {
    if !can_build() {
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let (_git_daemon, repo) = kiln_test::serve_git(
        work.path(),
        &[
            ("greeting.txt", "from the repository"),
            (
                "Dockerfile",
                &format!("FROM {image}\nCOPY greeting.txt /from-git.txt\n"),
            ),
        ],
    );
    let project = work.path().join("project");
    kiln_test::write_files(&project, &[
        ("base/greeting.txt", "from base".to_owned()),
        (
            "base/Dockerfile",
            format!("FROM {image}\nENV FROM_BASE=yes\nCOPY greeting.txt /from-base.txt\n"),
        ),
        ("app/greeting.txt", "from the client".to_owned()),
        (
            "app/Dockerfile",
            "FROM base\nARG WHO\nCOPY greeting.txt /from-dir.txt\nRUN echo \"$WHO $FROM_BASE\" > /who.txt\n"
                .to_owned(),
        ),
    ]);
    let out = work.path().join("out");
    fs_err::write(
        project.join("docker-bake.hcl"),
        format!(
            r#"group "default" {{
  targets = ["app", "repo"]
}}
target "base" {{
  context = "base"
}}
target "app" {{
  context = "app"
  contexts = {{ base = "target:base" }}
  args = {{ WHO = "bake" }}
  output = ["type=local,dest={out}/app"]
}}
target "repo" {{
  context = "{repo}#main"
  output = ["type=local,dest={out}/repo"]
}}
"#,
            out = out.display()
        ),
    )
    .unwrap();
    let output = Command::new(&kiln)
        .current_dir(&project)
        .env("PATH", "/nonexistent")
        .args(["bake", "--progress=plain", "--addr", &kilnd.address()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read = |path: &str| fs_err::read_to_string(out.join(path)).unwrap();
    assert_eq!(read("app/from-dir.txt"), "from the client");
    assert_eq!(read("app/from-base.txt"), "from base");
    assert_eq!(read("app/who.txt"), "bake yes\n");
    assert_eq!(read("repo/from-git.txt"), "from the repository");
}

/// Every build through kilnd leaves a history record: its steps, its exporters and
/// their answer, or its error. A client following the history sees a build start and
/// end; a deleted record is gone; the records outlive a restart.
#[test]
fn builds_through_kilnd_are_kept_in_its_history() {
    use kiln_api::Builder as _;
    use kiln_api::proto::moby::buildkit::v1 as control;
    if !can_build() {
        return;
    }
    let Some(kiln) = kiln_binary() else {
        return;
    };
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let mut kilnd = Kilnd::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    fs_err::create_dir_all(&ctx).unwrap();
    let dockerfile = |text: &str| fs_err::write(ctx.join("Dockerfile"), text).unwrap();
    // A client following the history from before the first build.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let socket = kilnd.socket.clone();
    let mut events = runtime.block_on(async {
        let channel = crate::support::connect(&socket).await;
        control::control_client::ControlClient::new(channel)
            .listen_build_history(control::BuildHistoryRequest::default())
            .await
            .unwrap()
            .into_inner()
    });
    dockerfile(&format!("FROM {image}\nRUN echo ok > /ok\n"));
    let out = work.path().join("out");
    kiln_build(
        &kiln,
        &kilnd.address(),
        &[
            "-o",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ],
    );
    let followed: Vec<(i32, control::BuildHistoryRecord)> = runtime.block_on(async {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let event = events.message().await.unwrap().unwrap();
            seen.push((event.r#type, event.record.unwrap()));
        }
        seen
    });
    assert_eq!(
        followed.iter().map(|(kind, _)| *kind).collect::<Vec<_>>(),
        [
            control::BuildHistoryEventType::Started as i32,
            control::BuildHistoryEventType::Complete as i32
        ]
    );
    assert_eq!(followed[0].1.r#ref, followed[1].1.r#ref);
    dockerfile(&format!("FROM {image}\nRUN false\n"));
    let failed = Command::new(&kiln)
        .args(["build", "--progress=plain", "--addr", &kilnd.address()])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let builder =
        kiln_api::remote::RemoteBuilder::new(&kilnd.address(), Default::default()).unwrap();
    let history = builder.history().unwrap();
    let [failed, built] = history.as_slice() else {
        panic!("two records expected: {history:#?}");
    };
    assert_eq!(built.id, followed[1].1.r#ref);
    assert_eq!(built.frontend, "dockerfile.v0");
    assert!(built.completed_at.is_some() && built.error.is_none());
    assert_eq!(built.exporters[0].0, "local");
    assert!(built.steps.total >= 2 && built.steps.completed == built.steps.total);
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("false"),
        "{failed:?}"
    );
    // The records outlive a restart; a deleted one is gone.
    kilnd.kill_and_restart(&[]);
    runtime.block_on(async {
        let channel = crate::support::connect(&kilnd.socket).await;
        control::control_client::ControlClient::new(channel)
            .update_build_history(control::UpdateBuildHistoryRequest {
                r#ref: failed.id.clone(),
                delete: true,
                ..control::UpdateBuildHistoryRequest::default()
            })
            .await
            .unwrap();
    });
    let history = builder.history().unwrap();
    assert_eq!(
        history.iter().map(|r| &r.id).collect::<Vec<_>>(),
        [&built.id]
    );
}
