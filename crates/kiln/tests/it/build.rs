//! `kiln build` for real: the README's demo built with RUN steps through runc on a busybox
//! base from a local registry, the result checked with skopeo and umoci. Needs root and
//! Debian's runc, docker-registry, skopeo, umoci and busybox-static (`.ci/run` installs
//! them); skipped with a note otherwise.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{
    BaseImage, build_into, check, kiln, repo, skopeo_inspect, tools_present, tree,
};

#[test]
fn demo_builds_into_an_oci_archive_and_rebuilds_from_cache() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);

    let out = work.path().join("demo.tar");
    let base = format!("BASE=127.0.0.1:{port}/busybox:latest");
    let demo = repo().join("examples/demo");
    let args = [
        "build",
        "--progress=plain",
        "-t",
        "demo",
        "--build-arg",
        &base,
        "--output",
        &format!("type=oci,dest={}", out.display()),
        demo.to_str().unwrap(),
    ];
    let log = check(&kiln(state, &args));
    assert!(
        log.contains("RUN echo \"hello from $(pwd)\" > greeting.txt"),
        "{log}"
    );

    // skopeo reads the archive and sees the config the Dockerfile set.
    let config = skopeo_inspect(&out, true);
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["/bin/busybox", "cat", "/out/greeting.txt"])
    );
    assert_eq!(config["config"]["Env"], serde_json::json!(["PATH=/bin"]));
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

    // umoci unpacks exactly what the Dockerfile put there.
    let layout = work.path().join("layout");
    fs_err::create_dir_all(&layout).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xf")
            .arg(&out)
            .arg("-C")
            .arg(&layout)
            .status()
            .unwrap()
            .success()
    );
    let bundle = work.path().join("bundle");
    let unpack = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        unpack.status.success(),
        "{}",
        String::from_utf8_lossy(&unpack.stderr)
    );
    let rootfs = bundle.join("rootfs");
    let expected: BTreeSet<String> = [
        "bin",
        "bin/busybox",
        "out",
        "out/greeting.txt",
        "out/lines.txt",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(tree(&rootfs), expected);
    assert_eq!(
        fs_err::read_to_string(rootfs.join("out/greeting.txt")).unwrap(),
        "hello from /opt/app\n"
    );
    assert_eq!(
        fs_err::read_to_string(rootfs.join("out/lines.txt"))
            .unwrap()
            .trim(),
        "2"
    );

    // The same build again runs nothing and writes the same bytes.
    let again = work.path().join("again.tar");
    let args_again: Vec<String> = args
        .iter()
        .map(|a| {
            if a.starts_with("type=oci") {
                format!("type=oci,dest={}", again.display())
            } else {
                (*a).to_owned()
            }
        })
        .collect();
    let args_again: Vec<&str> = args_again.iter().map(String::as_str).collect();
    let log = check(&kiln(state, &args_again));
    let steps = log
        .lines()
        .filter(|l| l.starts_with('#') && l.contains(" ["))
        .count();
    let cached = log.lines().filter(|l| l.ends_with(" CACHED")).count();
    assert!(
        steps >= 7 && cached == steps,
        "not everything was cached:\n{log}"
    );
    assert_eq!(fs_err::read(&out).unwrap(), fs_err::read(&again).unwrap());

    // A failing RUN stops the build with BuildKit's message and the Dockerfile lines.
    let failing = work.path().join("failing");
    fs_err::create_dir_all(&failing).unwrap();
    let dockerfile = format!(
        "FROM 127.0.0.1:{port}/busybox\nRUN echo about to fail && \\\n    false\nCMD [\"sh\"]\n"
    );
    fs_err::write(failing.join("Dockerfile"), dockerfile).unwrap();
    let output = kiln(
        state,
        &["build", "--progress=plain", failing.to_str().unwrap()],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("about to fail"), "{stderr}");
    assert!(
        stderr.contains(" ERROR: process \"/bin/sh -c echo about to fail"),
        "plain progress names the failed step: {stderr}"
    );
    assert!(stderr.contains("Dockerfile:2"), "{stderr}");
    assert!(
        stderr.contains("   2 | >>> RUN echo about to fail && \\"),
        "{stderr}"
    );
    assert!(
        stderr.contains("process \"/bin/sh -c echo about to fail &&     false\" did not complete successfully: exit code: 1"),
        "{stderr}"
    );
}

#[test]
fn a_missing_copy_source_names_the_path() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let context = work.path().join("ctx");
    fs_err::create_dir_all(&context).unwrap();
    fs_err::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY nothing-here.txt /\n",
    )
    .unwrap();
    let output = kiln(
        &work.path().join("state"),
        &["build", "--progress=plain", context.to_str().unwrap()],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("COPY nothing-here.txt /"), "{stderr}");
    assert!(
        stderr.contains("\"/nothing-here.txt\": not found"),
        "{stderr}"
    );
}

/// Two Bake targets that share a stage: both are built, the shared stage runs once.
#[test]
fn bake_builds_targets_and_runs_a_shared_stage_once() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);

    let project = work.path().join("project");
    fs_err::create_dir_all(&project).unwrap();
    // The shared RUN prints a value only running it produces (the command text
    // does not contain it), so its count in the log is how often it ran.
    fs_err::write(
        project.join("Dockerfile"),
        "ARG BASE\nFROM $BASE AS base\nRUN echo SHARED-$((40+2)) | tee /shared.txt\n\
         FROM base AS one\nRUN echo one > /one.txt\n\
         FROM base AS two\nRUN echo two > /two.txt\n",
    )
    .unwrap();
    fs_err::write(
        project.join("docker-bake.hcl"),
        format!(
            r#"variable "BASE" {{ default = "127.0.0.1:{port}/busybox:latest" }}
group "default" {{ targets = ["one", "two"] }}
target "_common" {{ args = {{ BASE = BASE }} }}
target "one" {{
  inherits = ["_common"]
  target = "one"
  output = ["type=oci,dest=one.tar"]
}}
target "two" {{
  inherits = ["_common"]
  target = "two"
  output = ["type=oci,dest=two.tar"]
}}
"#
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .current_dir(&project)
        .args(["bake", "--progress=plain", "--metadata-file", "meta.json"])
        .output()
        .unwrap();
    let log = check(&output);
    assert_eq!(log.matches("SHARED-42").count(), 1, "{log}");
    let metadata: Value =
        serde_json::from_str(&fs_err::read_to_string(project.join("meta.json")).unwrap()).unwrap();
    for (name, file) in [("one", "/one.txt"), ("two", "/two.txt")] {
        let archive = project.join(format!("{name}.tar"));
        let config = skopeo_inspect(&archive, true);
        let history = config["history"].to_string();
        assert!(
            history.contains(&format!("echo {name} > {file}")),
            "{name}: {history}"
        );
        assert!(history.contains("SHARED-$((40+2))"), "{name}: {history}");

        // The metadata file names the manifest skopeo sees in the archive.
        let manifest = skopeo_inspect(&archive, false);
        assert_eq!(
            metadata[name]["containerimage.digest"], manifest["Digest"],
            "{metadata}"
        );
    }
}

/// Named contexts: an image standing in for a FROM, a directory (with its own
/// `.dockerignore`) for `COPY --from`, and a Bake `target:` link built within the build.
#[test]
fn named_contexts_from_an_image_a_directory_and_a_bake_target() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);

    let project = work.path().join("named");
    let extra = work.path().join("extra");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::create_dir_all(&extra).unwrap();
    fs_err::write(extra.join("extra.txt"), "extra\n").unwrap();
    fs_err::write(extra.join("ignored.txt"), "no\n").unwrap();
    fs_err::write(extra.join(".dockerignore"), "ignored.txt\n").unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        "FROM base AS tools\nRUN echo tool > /tool.txt\n\
         FROM scratch\nCOPY --from=tools /tool.txt /\nCOPY --from=extra / /extra/\n",
    )
    .unwrap();
    let out = work.path().join("named-out");
    build_into(
        state,
        &project,
        &out,
        &[
            "--build-context",
            &format!("base=docker-image://127.0.0.1:{port}/busybox:latest"),
            "--build-context",
            &format!("extra={}", extra.display()),
        ],
    );
    assert_eq!(
        fs_err::read_to_string(out.join("tool.txt")).unwrap(),
        "tool\n"
    );
    assert_eq!(
        fs_err::read_to_string(out.join("extra/extra.txt")).unwrap(),
        "extra\n"
    );
    assert!(!out.join("extra/ignored.txt").exists());

    // A named context that is not there is a usage error naming it.
    let missing = kiln(
        state,
        &[
            "build",
            "--build-context",
            "extra=/nonexistent",
            project.to_str().unwrap(),
        ],
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("extra=/nonexistent"));

    // Bake: `app` builds FROM the result of `base`, linked with `target:base`.
    let bake = work.path().join("bake");
    fs_err::create_dir_all(&bake).unwrap();
    fs_err::write(
        bake.join("base.Dockerfile"),
        "ARG BASE\nFROM $BASE\nRUN echo from-base > /base.txt\n",
    )
    .unwrap();
    fs_err::write(
        bake.join("Dockerfile"),
        "FROM baseapp\nRUN cp /base.txt /app.txt\n",
    )
    .unwrap();
    fs_err::write(
        bake.join("docker-bake.hcl"),
        format!(
            r#"target "base" {{
  dockerfile = "base.Dockerfile"
  args = {{ BASE = "127.0.0.1:{port}/busybox:latest" }}
}}
target "app" {{
  contexts = {{ baseapp = "target:base" }}
  output = ["type=local,dest=app-out"]
}}
"#
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .current_dir(&bake)
        .args(["bake", "--progress=plain", "app"])
        .output()
        .unwrap();
    check(&output);
    assert_eq!(
        fs_err::read_to_string(bake.join("app-out/app.txt")).unwrap(),
        "from-base\n"
    );
}

#[test]
fn an_external_frontend_is_refused_clearly() {
    let work = tempfile::tempdir().unwrap();
    fs_err::write(
        work.path().join("Dockerfile"),
        "# syntax=example.com/frontends/custom:1\nFROM scratch\n",
    )
    .unwrap();
    let output = kiln(
        &work.path().join("state"),
        &["build", "--progress=plain", work.path().to_str().unwrap()],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("example.com/frontends/custom:1")
            && stderr.contains("external frontend")
            && stderr.contains("docker/dockerfile:1"),
        "{stderr}"
    );
}

/// `--progress=rawjson`: one JSON status object per line, BuildKit's field names.
#[test]
fn rawjson_progress_is_a_stream_of_solve_statuses() {
    let work = tempfile::tempdir().unwrap();
    fs_err::write(work.path().join("hello.txt"), "hi\n").unwrap();
    fs_err::write(
        work.path().join("Dockerfile"),
        "FROM scratch\nCOPY hello.txt /\n",
    )
    .unwrap();
    let output = kiln(
        &work.path().join("state"),
        &["build", "--progress=rawjson", work.path().to_str().unwrap()],
    );
    let stderr = check(&output);
    let statuses: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let copy = statuses
        .iter()
        .flat_map(|s| s["vertexes"].as_array().cloned().unwrap_or_default())
        .filter(|v| {
            v["name"]
                .as_str()
                .is_some_and(|n| n.contains("COPY hello.txt /"))
        })
        .collect::<Vec<_>>();
    assert!(copy.len() >= 2, "{stderr}");
    assert!(copy[0]["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(copy[0]["started"].as_str().unwrap().ends_with('Z'));
    assert!(copy.last().unwrap()["completed"].is_string(), "{stderr}");
}

/// buildx's RUN-wide flags reach the steps: `--add-host`, `--ulimit`, `--shm-size`,
/// `--network none`; `--label` lands in the config; `-f -` and a tar context on stdin.
#[test]
fn run_flags_labels_and_stdin() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let dockerfile = format!(
        "FROM 127.0.0.1:{port}/busybox:latest\n\
         RUN grep -w db /etc/hosts > /hosts && ulimit -n > /nofile && df -k /dev/shm | tail -1 > /shm \
         && cat /proc/net/dev | tail -n +3 | wc -l > /interfaces\n"
    );
    let out = work.path().join("flags-out");
    let empty = work.path().join("empty");
    fs_err::create_dir_all(&empty).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .args([
            "build",
            "--progress=plain",
            "-f",
            "-",
            "--add-host",
            "db:10.1.2.3",
            "--ulimit",
            "nofile=512:1024",
            "--shm-size",
            "16m",
            "--network",
            "none",
            "--label",
            "org.example.team=build",
            "-o",
            &format!("type=local,dest={}", out.display()),
            empty.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), dockerfile.as_bytes()).unwrap();
    drop(child.stdin.take());
    check(&child.wait_with_output().unwrap());
    let read = |name: &str| fs_err::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("hosts").trim(), "10.1.2.3\tdb");
    assert_eq!(read("nofile").trim(), "512");
    assert_eq!(read("shm").split_whitespace().nth(1), Some("16384"));
    assert_eq!(
        read("interfaces").trim(),
        "1",
        "only loopback with --network none"
    );

    // A tar archive on stdin is the context; --label shows in the image config.
    let context = work.path().join("tar-context");
    fs_err::create_dir_all(&context).unwrap();
    fs_err::write(context.join("Dockerfile"), "FROM scratch\nCOPY a.txt /\n").unwrap();
    fs_err::write(context.join("a.txt"), "from tar\n").unwrap();
    let archive = Command::new("tar")
        .arg("-C")
        .arg(&context)
        .args(["-cf", "-", "."])
        .output()
        .unwrap()
        .stdout;
    let image = work.path().join("label.tar");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .args([
            "build",
            "--progress=plain",
            "--label",
            "org.example.team=build",
        ])
        .args(["-o", &format!("type=oci,dest={}", image.display()), "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &archive).unwrap();
    drop(child.stdin.take());
    check(&child.wait_with_output().unwrap());
    let config = skopeo_inspect(&image, true);
    assert_eq!(config["config"]["Labels"]["org.example.team"], "build");

    // What kiln cannot do is refused by name, before any work.
    for (flag, message) in [
        (
            [
                "--cache-to",
                "type=gha,token=t,url=http://127.0.0.1:9/,timeout=soon",
            ],
            "timeout=soon",
        ),
        (["--builder", "remote-one"], "--builder"),
    ] {
        let output = kiln(state, &["build", flag[0], flag[1], empty.to_str().unwrap()]);
        assert!(!output.status.success());
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(message),
            "{flag:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Two `kiln build`s on one state directory: the second waits, says so, and both
/// succeed; the second finds the first's steps in the cache.
#[test]
fn concurrent_builds_on_one_state_directory() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("slow");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!("FROM 127.0.0.1:{port}/busybox:latest\nRUN sleep 2 && echo slept > /slept\n"),
    )
    .unwrap();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .env("KILN_ROOT", state)
            .args(["build", "--progress=plain", project.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let second = spawn();
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    check(&first);
    let log = check(&second);
    assert!(log.contains("waiting for another kiln process"), "{log}");
    assert!(log.contains("CACHED"), "{log}");
}

/// Installed as `~/.docker/cli-plugins/docker-kiln`, `docker kiln build` runs kiln.
#[test]
fn docker_cli_plugin() {
    if Command::new("docker").arg("--version").output().is_err() {
        kiln_test::skip("needs the docker CLI");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let plugins = work.path().join("docker-config/cli-plugins");
    fs_err::create_dir_all(&plugins).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), plugins.join("docker-kiln")).unwrap();
    let project = work.path().join("project");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(project.join("Dockerfile"), "FROM scratch as base\n").unwrap();
    let output = Command::new("docker")
        .env("DOCKER_CONFIG", work.path().join("docker-config"))
        .env("KILN_ROOT", work.path().join("state"))
        .args(["kiln", "build", "--check", project.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("WARNING: FromAsCasing"), "{stdout}");
    let help = Command::new("docker")
        .env("DOCKER_CONFIG", work.path().join("docker-config"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("Build with kiln"));
}

/// Remote contexts: a git repository at a branch and subdirectory, and a tarball, both
/// served over HTTP on 127.0.0.1.
#[test]
fn git_and_tarball_contexts_over_http() {
    let have = |bin: &str| Command::new(bin).arg("--version").output().is_ok();
    if !have("git") || !have("python3") || !have("tar") {
        kiln_test::skip("needs git, python3 and tar");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let served = work.path().join("srv");
    let source = work.path().join("source");
    fs_err::create_dir_all(source.join("docker")).unwrap();
    fs_err::write(
        source.join("docker/Dockerfile"),
        "FROM scratch\nCOPY hello.txt /\n",
    )
    .unwrap();
    fs_err::write(source.join("docker/hello.txt"), "from git\n").unwrap();
    fs_err::write(source.join("README"), "not in the context\n").unwrap();
    let bake_out = work.path().join("bake-remote-out");
    fs_err::write(
        source.join("docker-bake.hcl"),
        format!(
            "target \"remote\" {{\n  context = \"docker\"\n  output = [\"type=local,dest={}\"]\n}}\n",
            bake_out.display()
        ),
    )
    .unwrap();
    let git = crate::support::git;
    git(&source, &["init", "-q", "-b", "main"]);
    git(&source, &["add", "."]);
    git(&source, &["commit", "-q", "-m", "context"]);
    fs_err::create_dir_all(&served).unwrap();
    git(
        &served,
        &["clone", "-q", "--bare", source.to_str().unwrap(), "app.git"],
    );
    git(&served.join("app.git"), &["update-server-info"]);
    // The tarball context: a Dockerfile and a file, gzipped.
    let tar_source = work.path().join("tar-source");
    fs_err::create_dir_all(&tar_source).unwrap();
    fs_err::write(
        tar_source.join("Dockerfile"),
        "FROM scratch\nCOPY t.txt /\n",
    )
    .unwrap();
    fs_err::write(tar_source.join("t.txt"), "from tar\n").unwrap();
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&tar_source)
            .arg("-czf")
            .arg(served.join("ctx.tar.gz"))
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let (_server, port) = crate::support::serve_directory(&served);
    let state = work.path().join("state");
    let out = work.path().join("git-out");
    check(&kiln(
        &state,
        &[
            "build",
            "--progress=plain",
            "-o",
            &format!("type=local,dest={}", out.display()),
            &format!("http://127.0.0.1:{port}/app.git#main:docker"),
        ],
    ));
    assert_eq!(
        fs_err::read_to_string(out.join("hello.txt")).unwrap(),
        "from git\n"
    );
    assert!(!out.join("README").exists());

    // ADD of an http file (checked against --checksum) and of a git repository.
    fs_err::write(served.join("file.txt"), "downloaded\n").unwrap();
    let sum = Command::new("sha256sum")
        .arg(served.join("file.txt"))
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let adds = work.path().join("adds");
    fs_err::create_dir_all(&adds).unwrap();
    fs_err::write(
        adds.join("Dockerfile"),
        format!(
            "FROM scratch\nADD --checksum=sha256:{sum} http://127.0.0.1:{port}/file.txt /f.txt\n\
             ADD http://127.0.0.1:{port}/app.git#main:docker /g/\n"
        ),
    )
    .unwrap();
    let out = work.path().join("adds-out");
    build_into(&state, &adds, &out, &[]);
    assert_eq!(
        fs_err::read_to_string(out.join("f.txt")).unwrap(),
        "downloaded\n"
    );
    assert_eq!(
        fs_err::read_to_string(out.join("g/hello.txt")).unwrap(),
        "from git\n"
    );
    // A wrong checksum fails the step and says so.
    fs_err::write(
        adds.join("Dockerfile"),
        format!(
            "FROM scratch\nADD --checksum=sha256:{} http://127.0.0.1:{port}/file.txt /f.txt\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let wrong = kiln(
        &state,
        &["build", "--progress=plain", adds.to_str().unwrap()],
    );
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("digest mismatch"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );

    // A git repository as a named context; --target builds only the stage asked for
    // (the other one would fail).
    let named = work.path().join("git-named");
    fs_err::create_dir_all(&named).unwrap();
    fs_err::write(
        named.join("Dockerfile"),
        "FROM scratch AS wanted\nCOPY --from=src hello.txt /ctx-hello.txt\n\
         COPY --from=dl file.txt /dl.txt\n\
         FROM scratch AS other\nCOPY --from=src no-such-file /\n",
    )
    .unwrap();
    let out = work.path().join("git-named-out");
    build_into(
        &state,
        &named,
        &out,
        &[
            "--target",
            "wanted",
            "--build-context",
            &format!("src=http://127.0.0.1:{port}/app.git#main:docker"),
            "--build-context",
            &format!("dl=http://127.0.0.1:{port}/file.txt"),
        ],
    );
    assert_eq!(
        fs_err::read_to_string(out.join("ctx-hello.txt")).unwrap(),
        "from git\n"
    );
    assert_eq!(
        fs_err::read_to_string(out.join("dl.txt")).unwrap(),
        "downloaded\n"
    );

    // A remote Bake definition: the file and the context come from the repository.
    check(&kiln(
        &state,
        &[
            "bake",
            "--progress=plain",
            &format!("http://127.0.0.1:{port}/app.git#main"),
            "remote",
        ],
    ));
    assert_eq!(
        fs_err::read_to_string(bake_out.join("hello.txt")).unwrap(),
        "from git\n"
    );

    let out = work.path().join("tar-out");
    check(&kiln(
        &state,
        &[
            "build",
            "--progress=plain",
            "-o",
            &format!("type=local,dest={}", out.display()),
            &format!("http://127.0.0.1:{port}/ctx.tar.gz"),
        ],
    ));
    assert_eq!(
        fs_err::read_to_string(out.join("t.txt")).unwrap(),
        "from tar\n"
    );
}

/// `kiln du` lists the cache's records by type; `kiln prune` removes what its filters
/// select, `--all` everything; a build after a prune runs its steps again and works.
#[test]
fn du_and_prune() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("cache");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(project.join("data.txt"), "data\n").unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\nCOPY data.txt /\n\
             RUN --mount=type=cache,target=/cache echo hi > /cache/x && head -c 300000 /dev/zero > /big\n"
        ),
    )
    .unwrap();
    let dir = project.to_str().unwrap();
    check(&kiln(state, &["build", "--progress=plain", dir]));

    let du = kiln(state, &["du"]);
    let listing = String::from_utf8_lossy(&du.stdout).into_owned();
    assert!(du.status.success());
    assert!(listing.starts_with("ID"), "{listing}");
    assert!(listing.contains("Total:"), "{listing}");
    let verbose = String::from_utf8_lossy(&kiln(state, &["du", "--verbose"]).stdout).into_owned();
    for kind in [
        "Type:\t\tregular",
        "Type:\t\tsource.local",
        "Type:\t\texec.cachemount",
    ] {
        assert!(verbose.contains(kind), "{kind}:\n{verbose}");
    }
    assert!(verbose.contains("3/3] RUN --mount=type=cache"), "{verbose}");

    // A cached rebuild is one more use of each layer it reuses (written once, at the
    // end of the build).
    let run_usage = |verbose: &str| -> String {
        let record = verbose
            .split("\n\n")
            .find(|r| r.contains("3/3] RUN") && r.contains("Type:\t\tregular"))
            .unwrap_or_else(|| panic!("no RUN record:\n{verbose}"));
        record
            .lines()
            .find_map(|l| l.strip_prefix("Usage count:\t"))
            .unwrap_or_else(|| panic!("no usage count:\n{record}"))
            .to_owned()
    };
    assert_eq!(run_usage(&verbose), "1");
    let rebuilt = check(&kiln(state, &["build", "--progress=plain", dir]));
    assert_eq!(rebuilt.matches("CACHED").count(), 4, "{rebuilt}");
    let verbose = String::from_utf8_lossy(&kiln(state, &["du", "--verbose"]).stdout).into_owned();
    assert_eq!(run_usage(&verbose), "2");

    // Only the cache mount goes.
    let pruned = kiln(state, &["prune", "-f", "--filter", "type==exec.cachemount"]);
    let pruned = String::from_utf8_lossy(&pruned.stdout).into_owned();
    assert_eq!(
        pruned.lines().filter(|l| l.contains("true")).count(),
        1,
        "{pruned}"
    );
    let verbose = String::from_utf8_lossy(&kiln(state, &["du", "--verbose"]).stdout).into_owned();
    assert!(!verbose.contains("exec.cachemount"), "{verbose}");
    assert!(verbose.contains("source.local"), "{verbose}");

    // Everything goes; the next build runs its steps again.
    check(&kiln(state, &["prune", "--all", "--force"]));
    let total = String::from_utf8_lossy(&kiln(state, &["du"]).stdout).into_owned();
    assert!(total.contains("Total:\t\t0B"), "{total}");
    let log = check(&kiln(state, &["build", "--progress=plain", dir]));
    assert!(!log.contains("CACHED"), "{log}");
    assert!(log.contains("DONE"), "{log}");
}

/// `COPY --exclude`: patterns in `.dockerignore` syntax, relative to the copied
/// directory, a wildcard's matches filtered by name, `!` re-including.
#[test]
fn copy_exclude_patterns() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    for dir in ["d/keep", "d/drop"] {
        fs_err::create_dir_all(ctx.join(dir)).unwrap();
    }
    for file in [
        "d/keep/a.txt",
        "d/drop/b.txt",
        "d/c.md",
        "home1.txt",
        "home2.md",
    ] {
        fs_err::write(ctx.join(file), file).unwrap();
    }
    fs_err::write(
        ctx.join("Dockerfile"),
        "# syntax=docker/dockerfile:1-labs\nFROM scratch\nCOPY --exclude=drop d /d/\nCOPY --exclude=*.txt hom* /h/\n\
         COPY --exclude=* --exclude=!keep d /n/\n",
    )
    .unwrap();
    let out = work.path().join("out");
    check(&kiln(
        &work.path().join("state"),
        &[
            "build",
            "--progress=plain",
            "-o",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ],
    ));
    let expected: BTreeSet<String> = [
        "d",
        "d/c.md",
        "d/keep",
        "d/keep/a.txt",
        "h",
        "h/home2.md",
        "n",
        "n/keep",
        "n/keep/a.txt",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(tree(&out), expected);
}

/// Ctrl-C during a RUN: the container's processes are killed, the build fails as
/// cancelled within moments, and no runc container or mount is left behind.
#[test]
fn ctrl_c_cancels_a_running_step_and_leaves_nothing() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("slow-step");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!("FROM 127.0.0.1:{port}/busybox:latest\nRUN echo step-started && sleep 60\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .args(["build", "--progress=plain", project.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let line = line.unwrap_or_default();
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    // Wait for the step to run, then interrupt.
    let started = std::time::Instant::now();
    let runc_root = state.join("exec/runc");
    while !fs_err::read_dir(&runc_root).is_ok_and(|mut d| d.next().is_some()) {
        assert!(started.elapsed().as_secs() < 30, "the step never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let interrupted = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let log = reader.join().unwrap();
    assert!(!status.success(), "{log}");
    assert!(
        interrupted.elapsed().as_secs() < 10,
        "cancelling took too long"
    );
    assert!(log.contains("cancelled"), "{log}");
    let containers = Command::new("runc")
        .arg("--root")
        .arg(&runc_root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&containers.stdout).trim(), "");
    let mounts = fs_err::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(state.to_str().unwrap()),
        "mounts left behind:\n{mounts}"
    );
}

/// A sandboxed RUN has a seccomp filter that refuses namespaces (as Docker's default
/// profile does); `--security=insecure` (with the entitlement) runs unfiltered with the
/// host's capabilities, and without the entitlement is refused.
#[test]
fn sandbox_seccomp_and_insecure_mode() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("security");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "# syntax=docker/dockerfile:1-labs\nFROM 127.0.0.1:{port}/busybox:latest\n\
             RUN grep Seccomp: /proc/self/status > /sandbox && (unshare -n true 2>/dev/null; echo unshare=$? >> /sandbox)\n\
             RUN --security=insecure grep -E '^(Seccomp|CapEff):' /proc/self/status > /insecure\n"
        ),
    )
    .unwrap();
    let refused = kiln(state, &["build", project.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("security.insecure"));

    let out = work.path().join("security-out");
    build_into(state, &project, &out, &["--allow", "security.insecure"]);
    let sandbox = fs_err::read_to_string(out.join("sandbox")).unwrap();
    assert!(sandbox.contains("Seccomp:\t2"), "{sandbox}");
    assert!(sandbox.contains("unshare=1"), "{sandbox}");
    let insecure = fs_err::read_to_string(out.join("insecure")).unwrap();
    assert!(insecure.contains("Seccomp:\t0"), "{insecure}");
    // CAP_SYS_ADMIN (bit 21) is among the privileged step's capabilities.
    let effective = insecure
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_ne!(effective & (1 << 21), 0, "{insecure}");
}

/// Bake builds its targets at the same time: each target's step records when it ran,
/// and the two intervals overlap (one after the other they could not).
#[test]
fn bake_targets_build_at_the_same_time() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("concurrent");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\nARG WHO\n\
             RUN cut -d' ' -f1 /proc/uptime > /start && sleep 1.5 && cut -d' ' -f1 /proc/uptime > /end && echo $WHO > /who\n"
        ),
    )
    .unwrap();
    fs_err::write(
        project.join("docker-bake.hcl"),
        r#"group "default" { targets = ["left", "right"] }
target "left" {
  args = { WHO = "left" }
  output = ["type=local,dest=out-left"]
}
target "right" {
  args = { WHO = "right" }
  output = ["type=local,dest=out-right"]
}
"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .current_dir(&project)
        .args(["bake", "--progress=plain"])
        .output()
        .unwrap();
    check(&output);
    let read = |target: &str, file: &str| -> f64 {
        fs_err::read_to_string(project.join(format!("out-{target}/{file}")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (left, right) = (
        (read("left", "start"), read("left", "end")),
        (read("right", "start"), read("right", "end")),
    );
    assert!(
        left.0 < right.1 && right.0 < left.1,
        "the steps ran one after the other: {left:?} {right:?}"
    );
}

/// `-q` prints only the image ID, which `--iidfile` also holds; `--annotation` lands on
/// the manifest; `--no-cache-filter` reruns only the named stage; `--pull` is accepted.
#[test]
fn quiet_iidfile_annotation_no_cache_filter_and_pull() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("flags2");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest AS first\nRUN echo FIRST-$((1+1)) | tee /first\n\
             FROM first AS second\nRUN echo SECOND-$((2+2)) | tee /second\n"
        ),
    )
    .unwrap();
    let iid = work.path().join("iid");
    let archive = work.path().join("flags2.tar");
    let dir = project.to_str().unwrap();
    let iid_arg = iid.display().to_string();
    let out_arg = format!("type=oci,dest={},oci-mediatypes=true", archive.display());
    let args = [
        "build",
        "-q",
        "--pull",
        "--iidfile",
        &iid_arg,
        "--annotation",
        "org.opencontainers.image.title=flags",
        "-o",
        &out_arg,
        dir,
    ];
    let output = kiln(state, &args);
    check(&output);
    let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(fs_err::read_to_string(&iid).unwrap(), id);
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}", archive.display()))
        .output()
        .unwrap();
    let manifest: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.title"],
        "flags"
    );
    assert_eq!(manifest["config"]["digest"], id.as_str());

    // Only the `second` stage runs again.
    let log = check(&kiln(
        state,
        &[
            "build",
            "--progress=plain",
            "--no-cache-filter",
            "second",
            dir,
        ],
    ));
    assert!(!log.contains("FIRST-2"), "{log}");
    assert!(log.contains("SECOND-4"), "{log}");
}

/// A configuration file in buildkitd.toml's shape turns garbage collection on: after
/// the build, its policy (cache mounts, keep 1 byte) has removed the cache mount.
#[test]
fn gc_policy_from_the_configuration_file() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let config = work.path().join("kiln.toml");
    fs_err::write(
        &config,
        "[worker.oci]\n  [[worker.oci.gcpolicy]]\n    keepBytes = 1\n    filters = [\"type==exec.cachemount\"]\n",
    )
    .unwrap();
    let project = work.path().join("gc");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\nRUN --mount=type=cache,target=/c head -c 100000 /dev/zero > /c/x\n"
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .env("KILN_CONFIG", &config)
        .args(["build", "--progress=plain", project.to_str().unwrap()])
        .output()
        .unwrap();
    check(&output);
    let du = String::from_utf8_lossy(&kiln(state, &["du", "--verbose"]).stdout).into_owned();
    assert!(du.contains("Type:\t\tregular"), "{du}");
    assert!(!du.contains("exec.cachemount"), "{du}");
}

/// A C program compiled in a Debian stage and copied into busybox, both bases taken
/// from OCI layouts as named contexts (the shared bench's `setup-bases.sh` makes them),
/// with a heredoc RUN; the program runs in the result.
#[test]
fn c_program_from_oci_layout_bases() {
    let bases = Path::new(
        &std::env::var("BENCH_WORKDIR").unwrap_or_else(|_| "/var/tmp/kiln-bench".to_owned()),
    )
    .join("bases/oci");
    if !tools_present() || !bases.join("debian/index.json").is_file() {
        kiln_test::skip("needs the bench's base layouts (../shared/bench/setup-bases.sh)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("c");
    fs_err::create_dir_all(&ctx).unwrap();
    fs_err::write(
        ctx.join("hello.c"),
        "#include <stdio.h>\nint main(void) { printf(\"hello from C\\n\"); return 0; }\n",
    )
    .unwrap();
    fs_err::write(
        ctx.join("Dockerfile"),
        "FROM debian AS build\nWORKDIR /src\nCOPY hello.c .\nRUN gcc -static -O2 -o /hello hello.c\n\
         FROM busybox\nCOPY --from=build /hello /usr/local/bin/hello\n\
         RUN <<EOF\n/usr/local/bin/hello > /greeting\nEOF\nCMD [\"/usr/local/bin/hello\"]\n",
    )
    .unwrap();
    let out = work.path().join("out");
    check(&kiln(
        &work.path().join("state"),
        &[
            "build",
            "--progress=plain",
            "--build-context",
            &format!(
                "debian=oci-layout://{}:bookworm",
                bases.join("debian").display()
            ),
            "--build-context",
            &format!(
                "busybox=oci-layout://{}:latest",
                bases.join("busybox").display()
            ),
            "-o",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        fs_err::read_to_string(out.join("greeting")).unwrap(),
        "hello from C\n"
    );
    let run = Command::new("chroot")
        .arg(&out)
        .arg("/usr/local/bin/hello")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello from C\n");
    assert!(
        !out.join("src").exists(),
        "the build stage's files stay out"
    );
}

/// The configuration file decides what `--allow` may grant (`insecure-entitlements`)
/// and the network of steps that choose none (`networkMode = "none"`: their own
/// namespace, loopback only).
#[test]
fn entitlements_and_default_network_from_the_configuration() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let config = work.path().join("kiln.toml");
    fs_err::write(
        &config,
        "insecure-entitlements = []\n[worker.oci]\n  networkMode = \"none\"\n",
    )
    .unwrap();
    let project = work.path().join("net");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\nRUN tail -n +3 /proc/net/dev | wc -l > /interfaces\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .env("KILN_ROOT", state)
            .env("KILN_CONFIG", &config)
            .args(args)
            .output()
            .unwrap()
    };
    let refused = run(&[
        "build",
        "--allow",
        "network.host",
        project.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("insecure-entitlements"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let out = work.path().join("net-out");
    check(&run(&[
        "build",
        "--progress=plain",
        "-o",
        &format!("type=local,dest={}", out.display()),
        project.to_str().unwrap(),
    ]));
    assert_eq!(
        fs_err::read_to_string(out.join("interfaces"))
            .unwrap()
            .trim(),
        "1"
    );
}

/// With the registry gone, a build still resolves its base image from the last
/// resolution (saying so); `--pull` insists on the registry and fails; an LLB image
/// source with `resolve-mode=local` uses the last resolution without asking.
#[test]
fn an_unreachable_registry_falls_back_to_the_last_resolution() {
    use kiln_llb::{ImageOptions, MarshalOptions, ResolveMode, Run, State, wire};
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("offline");
    fs_err::create_dir_all(&project).unwrap();
    let dockerfile = |word: &str| {
        fs_err::write(
            project.join("Dockerfile"),
            format!("FROM 127.0.0.1:{port}/busybox:latest\nRUN echo {word} > /word\n"),
        )
        .unwrap();
    };
    dockerfile("one");
    build_into(state, &project, &work.path().join("one"), &[]);

    let pid = fs_err::read_to_string(work.path().join("registry.pid")).unwrap();
    assert!(
        Command::new("kill")
            .arg(pid.trim())
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(std::time::Duration::from_millis(300));

    dockerfile("two");
    let out = work.path().join("two");
    let log = build_into(state, &project, &out, &[]);
    assert!(log.contains("the registry cannot be reached"), "{log}");
    assert_eq!(fs_err::read_to_string(out.join("word")).unwrap(), "two\n");

    let pulled = kiln(state, &["build", "--pull", project.to_str().unwrap()]);
    assert!(!pulled.status.success());

    let image = State::image(
        &format!("127.0.0.1:{port}/busybox:latest"),
        ImageOptions {
            resolve_mode: ResolveMode::PreferLocal,
            ..ImageOptions::default()
        },
    )
    .add_env("PATH", "/bin");
    let result = image
        .run(Run::new(["sh", "-c", "echo local > /word"]))
        .root();
    let file = work.path().join("local.pb");
    fs_err::write(
        &file,
        wire::encode_definition(&result.marshal(&MarshalOptions::default())),
    )
    .unwrap();
    let out = work.path().join("local");
    let log = crate::support::build_llb_into(state, &file, &out);
    assert!(!log.contains("cannot be reached"), "{log}");
    assert_eq!(fs_err::read_to_string(out.join("word")).unwrap(), "local\n");
}
