//! The engine's configuration file (buildkitd.toml's format) changing what builds do.

use std::path::Path;
use std::process::Command;

use crate::support::{BaseImage, build_into, check, kiln, tools_present};

/// One kilnd.toml, given with `--config`: Docker Hub's images come from a mirror on
/// 127.0.0.1 (`FROM busybox` builds with no route to Docker Hub), RUN steps get the
/// `[dns]` resolv.conf and go under `defaultCgroupParent`; unknown keys and keys for
/// parts kiln lacks are warned about; a runtime that is not installed is named.
#[test]
fn a_buildkitd_toml_sets_mirrors_dns_cgroups_and_the_runtime() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    // The mirror holds Docker Hub's name for the image: library/busybox.
    let copy = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://127.0.0.1:{port}/busybox:latest"),
            &format!("docker://127.0.0.1:{port}/library/busybox:latest"),
        ])
        .output()
        .unwrap();
    assert!(copy.status.success(), "{copy:?}");
    let config = work.path().join("kilnd.toml");
    fs_err::write(
        &config,
        format!(
            r#"
frobnicate = true
[grpc]
  address = ["unix:///run/kilnd/kilnd.sock"]
[history]
  maxEntries = 10
[dns]
  nameservers = ["127.0.0.53"]
  searchDomains = ["builds.test"]
[worker.oci]
  defaultCgroupParent = "kiln-config-test"
[registry."docker.io"]
  mirrors = ["127.0.0.1:{port}"]
"#
        ),
    )
    .unwrap();
    let project = work.path().join("mirrored");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        "FROM busybox\nRUN cat /etc/resolv.conf > /resolv && cat /proc/self/cgroup > /cgroup\n",
    )
    .unwrap();
    let out = work.path().join("out");
    let log = build_into(
        state,
        &project,
        &out,
        &["--config", config.to_str().unwrap()],
    );
    assert!(log.contains("docker.io/library/busybox"), "{log}");
    assert!(log.contains("unknown key frobnicate"), "{log}");
    assert!(log.contains("[history] is not used by kiln yet"), "{log}");
    assert!(!log.contains("[grpc]"), "kilnd reads [grpc]: {log}");
    assert_eq!(
        fs_err::read_to_string(out.join("resolv")).unwrap(),
        "nameserver 127.0.0.53\nsearch builds.test\n"
    );
    let cgroup = fs_err::read_to_string(out.join("cgroup")).unwrap();
    assert!(
        cgroup
            .lines()
            .all(|l| l.contains(":/kiln-config-test/kiln-")),
        "{cgroup}"
    );
    // The image came from the mirror: the busybox layer is the mirror's.
    assert!(out.join("bin/busybox").is_file());

    // --cgroup-parent on the command line wins over the configuration.
    fs_err::write(
        project.join("Dockerfile"),
        "FROM busybox\nRUN cat /proc/self/cgroup > /cgroup\n",
    )
    .unwrap();
    let out = work.path().join("out-flag");
    build_into(
        state,
        &project,
        &out,
        &[
            "--config",
            config.to_str().unwrap(),
            "--cgroup-parent",
            "kiln-flag-test",
        ],
    );
    let cgroup = fs_err::read_to_string(out.join("cgroup")).unwrap();
    crate::support::remove_cgroup("kiln-config-test");
    crate::support::remove_cgroup("kiln-flag-test");
    assert!(cgroup.contains(":/kiln-flag-test/kiln-"), "{cgroup}");

    // A value of the wrong kind is an error naming its key; a missing runtime is named
    // with what to do.
    fs_err::write(&config, "[worker.oci]\nsnapshotter = \"zfs\"\n").unwrap();
    let failed = kiln(
        state,
        &[
            "--config",
            config.to_str().unwrap(),
            "build",
            project.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(stderr.contains("worker.oci.snapshotter"), "{stderr}");
    fs_err::write(
        &config,
        format!(
            "[worker.oci]\nbinary = \"/nonexistent/runc\"\n[registry.\"docker.io\"]\nmirrors = [\"127.0.0.1:{port}\"]\n"
        ),
    )
    .unwrap();
    let failed = kiln(
        state,
        &[
            "--config",
            config.to_str().unwrap(),
            "build",
            "--no-cache",
            project.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        stderr.contains("OCI runtime \"/nonexistent/runc\" was not found"),
        "{stderr}"
    );
    assert!(
        !state
            .join("exec/bundles")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}

/// `snapshotter = "native"` (what kiln falls back to where overlay mounts are refused)
/// builds the same image as overlay: a step that adds, changes and deletes files of the
/// base image, a COPY and a later step, unpacked by umoci to the same tree, contents,
/// modes and all; a rebuild is cached.
#[test]
fn the_native_snapshotter_builds_what_overlay_builds() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("native");
    fs_err::create_dir_all(project.join("src")).unwrap();
    fs_err::write(project.join("src/app.sh"), "echo app\n").unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\n\
             RUN mkdir -p /data/sub && echo one > /data/sub/file && chmod 600 /data/sub/file && \
               ln -s /data/sub/file /data/link && rm /bin/sed && echo changed > /bin/cat.txt\n\
             COPY src/ /app/\n\
             RUN rm -r /data/sub && echo two > /data/new && rm /app/app.sh\n"
        ),
    )
    .unwrap();
    let unpack = |name: &str, config: Option<&Path>| {
        let archive = work.path().join(format!("{name}.tar"));
        let mut args = Vec::new();
        let config_arg;
        if let Some(config) = config {
            config_arg = config.display().to_string();
            args.extend(["--config", config_arg.as_str()]);
        }
        let output_arg = format!("type=oci,dest={},name=img:1", archive.display());
        args.extend([
            "build",
            "--progress=plain",
            "-o",
            output_arg.as_str(),
            project.to_str().unwrap(),
        ]);
        let log = check(&kiln(&work.path().join(format!("state-{name}")), &args));
        let rootfs =
            crate::support::umoci_unpack(&archive, &work.path().join(format!("unpacked-{name}")));
        (rootfs, log)
    };
    let _ = state;
    let config = work.path().join("native.toml");
    fs_err::write(&config, "[worker.oci]\nsnapshotter = \"native\"\n").unwrap();
    let (overlay_root, _) = unpack("overlay", None);
    let (native_root, _) = unpack("native", Some(&config));
    let listing = crate::support::tree_listing;
    let native = listing(&native_root);
    assert_eq!(native, listing(&overlay_root));
    assert!(native.contains("./data/new f 644"), "{native}");
    assert!(!native.contains("./data/sub"), "{native}");
    assert!(!native.contains("./bin/sed "), "{native}");
    assert!(!native.contains("./app/app.sh"), "{native}");

    // The native state holds no mounts, and a rebuild there is all cached.
    let mounts = fs_err::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(work.path().join("state-native").to_str().unwrap()));
    let (_, log) = unpack("native", Some(&config));
    assert!(crate::support::step_cached(&log, "RUN mkdir"), "{log}");
    assert!(crate::support::step_cached(&log, "RUN rm -r"), "{log}");
}

/// A registry on HTTPS with a certificate from a private CA: without settings the
/// build cannot verify it and fails, saying how to trust it; `ca = [FILE]` in its `[registry."host"]` section
/// makes it trusted and `[[keypair]]` gives the client certificate it asks for;
/// `insecure = true` skips the check. Both push and pull go over TLS.
#[test]
fn registries_with_a_private_ca() {
    if !tools_present() || Command::new("openssl").arg("version").output().is_err() {
        kiln_test::skip("needs openssl");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let openssl = |args: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("openssl {args}"))
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args}: {out:?}");
    };
    openssl(
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=kiln-test-ca",
    );
    openssl("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1");
    fs_err::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext",
    );
    // The registry also wants a client certificate from the same CA.
    openssl("req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=kiln-client");
    fs_err::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(
        "x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile client.ext",
    );
    let port = crate::support::free_port();
    fs_err::write(
        dir.join("registry.yml"),
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {0}/data\nhttp:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {0}/server.pem\n    key: {0}/server.key\n    clientcas:\n      - {0}/ca.pem\nlog:\n  level: error\n",
            dir.display()
        ),
    )
    .unwrap();
    let mut registry = Command::new("docker-registry");
    registry.arg("serve").arg(dir.join("registry.yml"));
    let _registry = crate::support::KillOnDrop::listening(registry, port);
    let project = dir.join("project");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(project.join("a.txt"), "over TLS\n").unwrap();
    fs_err::write(project.join("Dockerfile"), "FROM scratch\nCOPY a.txt /\n").unwrap();
    let image = format!("127.0.0.1:{port}/tls-test:1");
    let state = dir.join("state");
    let run = |config: Option<&str>, args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
        command.env("KILN_ROOT", &state);
        if let Some(text) = config {
            let file = dir.join("kilnd.toml");
            fs_err::write(&file, text).unwrap();
            command.arg("--config").arg(file);
        }
        command.args(args).output().unwrap()
    };
    let push = [
        "build",
        "--progress=plain",
        "--push",
        "-t",
        &image,
        project.to_str().unwrap(),
    ];

    let refused = run(None, &push);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!(
            "name its CA with `ca` under [registry.\"127.0.0.1:{port}\"]"
        )),
        "{stderr}"
    );

    let keypair = format!(
        "  [[registry.\"127.0.0.1:{port}\".keypair]]\n    key = \"{}\"\n    cert = \"{}\"\n",
        dir.join("client.key").display(),
        dir.join("client.pem").display()
    );
    let trusted = format!(
        "[registry.\"127.0.0.1:{port}\"]\n  ca = [\"{}\"]\n",
        dir.join("ca.pem").display()
    );
    // Trusted, but without the client certificate the registry wants: refused.
    assert!(!run(Some(&trusted), &push).status.success());
    check(&run(Some(&format!("{trusted}{keypair}")), &push));
    // skopeo, trusting the same CA, reads what kiln pushed.
    let certs = dir.join("certs");
    fs_err::create_dir_all(&certs).unwrap();
    fs_err::copy(dir.join("ca.pem"), certs.join("ca.crt")).unwrap();
    fs_err::copy(dir.join("client.pem"), certs.join("client.cert")).unwrap();
    fs_err::copy(dir.join("client.key"), certs.join("client.key")).unwrap();
    let inspect = Command::new("skopeo")
        .args(["inspect", "--cert-dir"])
        .arg(&certs)
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{inspect:?}");

    // Pulled back over TLS by a build based on it, with the check skipped this time.
    let based = dir.join("based");
    fs_err::create_dir_all(&based).unwrap();
    fs_err::write(based.join("Dockerfile"), format!("FROM {image}\n")).unwrap();
    let out = dir.join("out");
    let insecure = format!("[registry.\"127.0.0.1:{port}\"]\n  insecure = true\n{keypair}");
    check(&run(
        Some(&insecure),
        &[
            "build",
            "--pull",
            "-o",
            &format!("type=local,dest={}", out.display()),
            based.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        fs_err::read_to_string(out.join("a.txt")).unwrap(),
        "over TLS\n"
    );
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
