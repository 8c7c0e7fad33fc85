//! `kiln ls` and `kiln inspect`: the embedded builder with the platforms its
//! configuration sets, a kilnd reached by its address, and a buildkitd v0.24 beside
//! what buildx v0.28 prints for it.
//!
//! What buildx v0.28 printed for a remote builder on buildkitd v0.24 (QEMU's handlers
//! registered), with `docker buildx create --name lsx --driver remote unix://…`:
//!
//! ```text
//! NAME/NODE   DRIVER/ENDPOINT                     STATUS    BUILDKIT   PLATFORMS
//! lsx*        remote
//!  \_ lsx0     \_ unix:///tmp/ls-oracle/bk.sock   running   v0.24.0    linux/amd64 (+4), linux/arm64, linux/arm (+2), linux/ppc64le, (5 more)
//!
//! Name:          lsx
//! Driver:        remote
//! Last Activity: 2026-12-03 06:18:36 +0000 UTC
//!
//! Nodes:
//! Name:             lsx0
//! Endpoint:         unix:///tmp/ls-oracle/bk.sock
//! Status:           running
//! BuildKit version: v0.24.0
//! Platforms:        linux/amd64, linux/amd64/v2, linux/amd64/v3, linux/amd64/v4, linux/arm64, linux/riscv64, linux/ppc64, linux/ppc64le, linux/s390x, linux/386, linux/loong64, linux/arm/v7, linux/arm/v6
//! Labels: …  GC Policy rule#0: …
//! ```
//!
//! kiln has no builder store: its node is named as its builder (the address), and it
//! shows no last activity; the rest of the node is the same (a test compares it).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{check, kiln};

/// `kiln ARGS…` on the state `state`, which must succeed; its standard output.
fn stdout(state: &Path, args: &[&str]) -> String {
    let output = kiln(state, args);
    check(&output);
    String::from_utf8(output.stdout).unwrap()
}

/// The embedded engine with `worker.oci.platforms` and two GC rules set: exactly
/// those platforms, in buildx's `ls` columns (truncated to four groups unless
/// `--no-trunc`), a custom template, its JSON, and `inspect` with the rules.
#[test]
fn ls_and_inspect_show_the_configured_platforms() {
    if !kiln_test::is_root() {
        kiln_test::skip("the embedded engine's state needs root");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let config = work.path().join("kilnd.toml");
    fs_err::write(
        &config,
        "[worker.oci]\n  platforms = [\"linux/amd64\", \"linux/arm64\", \"linux/riscv64\", \"linux/s390x\", \"linux/arm/v7\", \"linux/arm/v6\"]\n\
         [[worker.oci.gcpolicy]]\n  filters = [\"type==source.local\"]\n  keepDuration = \"48h\"\n  maxUsedSpace = \"512MB\"\n\
         [[worker.oci.gcpolicy]]\n  all = true\n  reservedSpace = \"10GB\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let dir = state.display().to_string();

    let table = stdout(&state, &["--config", config, "ls"]);
    let pad = |text: &str, width: usize| format!("{text:width$}");
    let endpoint_width = (dir.len() + 4 + 3).max(15 + 3);
    assert_eq!(
        table,
        format!(
            "{}{}STATUS    BUILDKIT   PLATFORMS\n{}{}{}{}\n{}{}{}{}linux/amd64, linux/arm64, linux/arm (+2), linux/s390x, (1 more)\n",
            pad("NAME/NODE", 14),
            pad("DRIVER/ENDPOINT", endpoint_width),
            pad("default*", 14),
            pad("embedded", endpoint_width),
            pad("", 10),
            pad("", 11),
            pad(" \\_ default", 14),
            pad(&format!(" \\_ {dir}"), endpoint_width),
            pad("running", 10),
            pad("v0.1.0", 11),
        ),
        "{table}"
    );
    let full = stdout(&state, &["--config", config, "ls", "--no-trunc"]);
    assert!(
        full.ends_with(
            "   linux/amd64, linux/arm64, linux/riscv64, linux/s390x, linux/arm/v7, linux/arm/v6\n"
        ),
        "{full}"
    );

    assert_eq!(
        stdout(
            &state,
            &[
                "--config",
                config,
                "ls",
                "--format",
                "{{.Name}}: {{.Status}} {{.Buildkit}}"
            ]
        ),
        "default:  \ndefault: running v0.1.0\n"
    );
    let json = stdout(&state, &["--config", config, "ls", "--format", "json"]);
    let builder: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(builder["Name"], "default");
    assert_eq!(builder["Driver"], "embedded");
    assert_eq!(builder["Current"], true);
    let node = &builder["Nodes"][0];
    assert_eq!(node["Status"], "running");
    assert_eq!(node["Endpoint"], dir);
    assert_eq!(
        node["Platforms"],
        serde_json::json!([
            "linux/amd64",
            "linux/arm64",
            "linux/riscv64",
            "linux/s390x",
            "linux/arm/v7",
            "linux/arm/v6"
        ])
    );

    let inspect = stdout(&state, &["--config", config, "inspect", "--bootstrap"]);
    assert_eq!(
        inspect,
        format!(
            "Name:   default\nDriver: embedded\n\nNodes:\nName:             default\nEndpoint:         {dir}\nStatus:           running\nBuildKit version: v0.1.0\nPlatforms:        linux/amd64, linux/arm64, linux/riscv64, linux/s390x, linux/arm/v7, linux/arm/v6\n\
             GC Policy rule#0:\n All:            false\n Filters:        type==source.local\n Keep Duration:  48h0m0s\n Max Used Space: 488.3MiB\n\
             GC Policy rule#1:\n All:            true\n Reserved Space: 9.313GiB\n"
        )
    );
    // By name too; a name kiln has no builder for is refused.
    assert_eq!(
        stdout(&state, &["--config", config, "inspect", "default"]),
        inspect
    );
    let unknown = kiln(&state, &["inspect", "mybuilder"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no builder \"mybuilder\""),
        "{unknown:?}"
    );
}

/// kilnd beside the kiln binary (a workspace build makes both), if built.
fn kilnd_binary() -> Option<PathBuf> {
    let kilnd = PathBuf::from(env!("CARGO_BIN_EXE_kiln")).with_file_name("kilnd");
    if kilnd.is_file() {
        Some(kilnd)
    } else {
        kiln_test::skip("the kilnd binary is not built (build the workspace)");
        None
    }
}

/// A process started for the test, killed when dropped.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(socket: &Path) {
    for _ in 0..200 {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nothing listens on {}", socket.display());
}

/// A kilnd with two platforms, named with `--builder ADDRESS` (current) and `--addr`:
/// its version and ListWorkers' platforms, beside the embedded builder; a socket
/// nothing listens on is `inactive`, and `inspect --bootstrap` on it fails.
#[test]
fn ls_and_inspect_show_a_daemon_s_platforms() {
    if !kiln_test::is_root() {
        kiln_test::skip("the embedded engine's state and kilnd need root");
        return;
    }
    let Some(binary) = kilnd_binary() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let socket = work.path().join("kilnd.sock");
    let address = format!("unix://{}", socket.display());
    let _kilnd = Daemon(
        Command::new(binary)
            .arg("--root")
            .arg(work.path().join("kilnd-root"))
            .args(["--addr", &address])
            .args(["--oci-worker-platform", "linux/arm64"])
            .args(["--oci-worker-platform", "linux/amd64"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&socket);

    let table = stdout(&state, &["ls", "--builder", &address]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert!(
        lines[1].starts_with(&format!("{address}*")) && lines[1].contains(" remote "),
        "{table}"
    );
    assert!(lines[2].starts_with(&format!(" \\_ {address} ")), "{table}");
    assert!(
        lines[2].ends_with("   running   v0.24.0    linux/amd64, linux/arm64"),
        "{table}"
    );
    assert!(lines[3].starts_with("default ") && lines[3].contains(" embedded "));

    let inspect = stdout(&state, &["inspect", "--bootstrap", "--addr", &address]);
    assert!(
        inspect.starts_with(&format!(
            "Name:   {address}\nDriver: remote\n\nNodes:\nName:             {address}\nEndpoint:         {address}\nStatus:           running\nBuildKit version: v0.24.0\nPlatforms:        linux/arm64, linux/amd64\nLabels:\n org.mobyproject.buildkit.worker.executor:         oci\n"
        )),
        "{inspect}"
    );
    assert_eq!(stdout(&state, &["inspect", &address]), inspect);

    let nothing = format!("unix://{}", work.path().join("nothing.sock").display());
    let json = stdout(&state, &["ls", "--format", "json", "--builder", &nothing]);
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["Nodes"][0]["Status"], "inactive");
    assert_eq!(first["Current"], true);
    let failed = kiln(&state, &["inspect", "--bootstrap", &nothing]);
    assert!(!failed.status.success());
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("failed to bootstrap"),
        "{failed:?}"
    );
}

/// buildkitd v0.24 inspected by kiln and by buildx v0.28 (a remote builder in a
/// DOCKER_CONFIG of the test's own): the same node lines (endpoint, status, BuildKit
/// version, platforms, labels, GC rules), the same `ls` cells and JSON for the node.
#[test]
fn inspect_matches_buildx_on_buildkitd() {
    if !kiln_test::is_root() {
        kiln_test::skip("buildkitd and the embedded engine's state need root");
        return;
    }
    let Some(buildkitd) = kiln_test::Buildkitd::start(&[]) else {
        return;
    };
    let Some(buildx) = kiln_test::oracle_tool("docker-buildx", "KILN_BUILDX") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let address = buildkitd.address();
    let docker_config = work.path().join("docker");
    let buildx = |args: &[&str]| -> String {
        let output = Command::new(&buildx)
            .env("DOCKER_CONFIG", &docker_config)
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "buildx {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    buildx(&["create", "--name", "oracle", "--driver", "remote", &address]);
    let theirs = buildx(&["inspect", "--bootstrap", "oracle"]);
    let ours = stdout(&state, &["inspect", "--bootstrap", &address]);
    // Everything from the node's endpoint on: status, version, platforms, the
    // worker's labels and GC rules.
    let node_lines = |text: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with("Endpoint:"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(node_lines(&ours), node_lines(&theirs), "{ours}\n{theirs}");
    assert!(ours.contains("\nGC Policy rule#0:\n"), "{ours}");

    // The node in `ls --format json`, but for its name.
    let json_node = |text: &str, name: &str| -> serde_json::Value {
        let builder: serde_json::Value = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|b| b["Name"] == name)
            .unwrap();
        let mut node = builder["Nodes"][0].clone();
        node.as_object_mut().unwrap().remove("Name");
        node
    };
    assert_eq!(
        json_node(
            &stdout(&state, &["ls", "--format", "json", "--builder", &address]),
            &address
        ),
        json_node(&buildx(&["ls", "--format", "json"]), "oracle")
    );

    // The node's row: status, version and truncated platforms in the same cells.
    let node_row = |text: &str| -> Vec<String> {
        let row = text.lines().find(|l| l.contains("running")).unwrap();
        row.split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .skip(2)
            .map(str::to_owned)
            .collect()
    };
    let theirs = buildx(&["ls"]);
    let ours = stdout(&state, &["ls", "--builder", &address]);
    assert_eq!(node_row(&ours), node_row(&theirs), "{ours}\n{theirs}");
}
