//! `kiln bake` building: targets built side by side on one engine, a stage they share
//! run once.

use std::process::Command;

use serde_json::Value;

use crate::support::{BaseImage, check, skopeo_inspect, tools_present};

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
