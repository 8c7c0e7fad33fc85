//! `kiln build` for real: the README's demo built with RUN steps through runc on a busybox
//! base from a local registry, the result checked with skopeo and umoci; the command's
//! own flags (quiet, iidfile, progress), the docker CLI plugin, and two builds on one
//! state directory. Other features have their own modules. Needs root and
//! Debian's runc, docker-registry, skopeo, umoci and busybox-static (`.ci/run` installs
//! them); skipped with a note otherwise.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::support::{BaseImage, check, kiln, repo, skopeo_inspect, tools_present, tree};

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
