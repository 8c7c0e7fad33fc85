//! `--call`: the Dockerfile frontend's answers instead of a build (checks, a target's
//! outline, the targets), printed as buildx v0.28 prints BuildKit v0.24's answers
//! (the expected texts were recorded with them; the kilnd oracle test compares live).

use std::path::PathBuf;

use crate::support::kiln;

/// A directory with [`kiln_test::OUTLINED_DOCKERFILE`], and a state directory in it.
fn outlined_project() -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    fs_err::write(
        work.path().join("Dockerfile"),
        kiln_test::OUTLINED_DOCKERFILE,
    )
    .unwrap();
    let state = work.path().join("state");
    (work, state)
}

/// `--check` reports BuildKit's rules with their links and the Dockerfile lines, exits
/// 1 when any fired and 0 when none did; `# check=skip=` silences rules.
#[test]
fn check_reports_build_checks_without_building() {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let dockerfile = work.path().join("Dockerfile");
    fs_err::write(
        &dockerfile,
        "FROM scratch as base\nENV API_TOKEN=x\nCMD echo hi\n",
    )
    .unwrap();
    let dir = work.path().to_str().unwrap();
    let output = kiln(&state, &["build", "--check", dir]);
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        report.starts_with("Check complete, 3 warnings have been found!"),
        "{report}"
    );
    for expected in [
        "WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
        "Do not use ARG or ENV instructions for sensitive data (ENV \"API_TOKEN\")",
        "   3 | >>> CMD echo hi",
    ] {
        assert!(report.contains(expected), "{expected}:\n{report}");
    }

    fs_err::write(
        &dockerfile,
        "# check=skip=FromAsCasing,SecretsUsedInArgOrEnv,JSONArgsRecommended\nFROM scratch as base\nENV API_TOKEN=x\nCMD echo hi\n",
    )
    .unwrap();
    let output = kiln(&state, &["build", "--call=check", dir]);
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "Check complete, no warnings found."
    );
}

/// `--call outline`: the build args the target and the stages it reads use (with their
/// values and description comments), its secrets and ssh sockets; `--target` and
/// `--build-arg` change what is listed and the values.
#[test]
fn outline_lists_what_a_target_can_be_given() {
    let (work, state) = outlined_project();
    let dir = work.path().to_str().unwrap();
    let output = kiln(&state, &["build", "--call", "outline", dir]);
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "BUILD ARG    VALUE     DESCRIPTION\n\
         GO_VERSION   1.22      \n\
         BASE         scratch   the base image to build on\n\
         DERIVED      1.22-x    \n\
         VERSION      dev       the version to stamp\n\
         B            2         \n\
         TOOLS        1         \n\
         FINAL                  \n\n\
         SECRET   REQUIRED\ntoken    true\nnpmrc    \n.aws     \ntools    \n\n\
         SSH       REQUIRED\ndefault   \ngh        true\n\n"
    );
    let output = kiln(
        &state,
        &[
            "build",
            "--call=outline",
            "--target",
            "tools",
            "--build-arg",
            "GO_VERSION=1.23",
            dir,
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "TARGET: tools\n\n\
         BUILD ARG    VALUE    DESCRIPTION\n\
         GO_VERSION   1.23     \n\
         DERIVED      1.23-x   \n\
         TOOLS        1        \n\n\
         SECRET   REQUIRED\ntools    \n\n"
    );
    // As JSON: BuildKit's fields, each arg's ARG line.
    let output = kiln(&state, &["build", "--call=outline,format=json", dir]);
    let outline: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outline["args"][1]["name"], "BASE");
    assert_eq!(
        outline["args"][1]["location"],
        serde_json::json!({"ranges": [{"start": {"line": 3}, "end": {"line": 3}}]})
    );
    assert_eq!(outline["secrets"][0]["required"], true);
    assert!(outline.get("name").is_none(), "{outline}");
}

/// `kiln bake --call targets`: each target's answer under its name and description,
/// in name order, as buildx prints them; as JSON for a build.
#[test]
fn targets_are_listed_for_a_build_and_for_bake() {
    let (work, state) = outlined_project();
    fs_err::write(
        work.path().join("docker-bake.hcl"),
        "target \"app\" {\n  description = \"the app\"\n  target = \"build\"\n}\n\
         target \"tools\" {\n  target = \"tools\"\n}\n\
         group \"default\" {\n  targets = [\"tools\", \"app\"]\n}\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", &state)
        .current_dir(work.path())
        .args(["bake", "--call", "targets"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let table = "TARGET    DESCRIPTION\nbuild     compiles the binary\ntools     \n(default) \n";
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("app\nthe app\n\n{table}\ntools\n\n{table}")
    );
    let dir = work.path().to_str().unwrap();
    let output = kiln(&state, &["build", "--call=targets,format=json", dir]);
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(list["targets"][0]["base"], "${BASE}");
    assert_eq!(list["targets"][2]["default"], true);
    assert_eq!(
        list["targets"][2]["location"]["ranges"][0]["start"]["line"],
        23
    );
    let output = kiln(&state, &["build", "--call=nothing", dir]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unsupported request frontend.nothing"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
