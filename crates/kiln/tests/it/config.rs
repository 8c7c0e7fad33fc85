//! The engine's configuration file (buildkitd.toml's format) changing what builds do.

use std::process::Command;

use crate::support::{BaseImage, build_into, kiln, tools_present};

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
    assert!(log.contains("[grpc] is not used by kiln yet"), "{log}");
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
