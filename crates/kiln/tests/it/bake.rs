//! `kiln bake --print` against `shared/conformance/bake` and the repository's own
//! differential corpus, `tests/differential/bake` (both recorded with docker buildx
//! v0.28.0): the resolved targets equal what buildx printed, or the command fails
//! with buildx's message. Prints `bake: N passed, M failed` and
//! `bake-differential: N passed, M failed`; the differential cases must all pass.
//! Honours `KILN_CONFORMANCE_DIR` (relative to the workspace root).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn lines(path: &Path) -> Vec<String> {
    fs_err::read_to_string(path)
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn check(case: &Path) -> Result<(), String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .current_dir(case)
        .env_clear()
        .arg("bake")
        .arg("--print")
        .args(lines(&case.join("args")))
        .stdin(Stdio::null());
    for var in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(var) {
            command.env(var, v);
        }
    }
    for line in lines(&case.join("env")) {
        if let Some((k, v)) = line.split_once('=') {
            command.env(k, v);
        }
    }
    let output = command.output().map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if let Ok(expected) = fs_err::read_to_string(case.join("expected-error")) {
        let expected = expected.trim_end_matches('\n');
        if output.status.success() {
            return Err(format!(
                "succeeded, expected an error containing {expected:?}"
            ));
        }
        return if stderr.contains(expected) {
            Ok(())
        } else {
            Err(format!(
                "error {:?} does not contain {expected:?}",
                stderr.trim()
            ))
        };
    }
    if !output.status.success() {
        return Err(format!("failed: {}", stderr.trim()));
    }
    let got: Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("output is not JSON: {e}"))?;
    let want: Value =
        serde_json::from_str(&fs_err::read_to_string(case.join("expected.json")).unwrap()).unwrap();
    if got == want {
        Ok(())
    } else {
        Err(format!("differs:\n  got:  {got}\n  want: {want}"))
    }
}

/// Runs every case directory under `dir`, prints `LABEL: N passed, M failed` and fails
/// the test if any case failed.
fn run_cases(label: &str, dir: &Path) {
    kiln_test::run_suite(label, dir, |_| true, check);
}

#[test]
fn bake_print() {
    if let Some(dir) = kiln_test::conformance_dir("bake") {
        run_cases("bake", &dir.join("cases"));
    }
}

/// The repository's own cases, recorded with buildx (`tests/differential/bake`).
#[test]
fn bake_differential() {
    run_cases(
        "bake-differential",
        &kiln_test::workspace_root().join("tests/differential/bake"),
    );
}

/// A small definition for `bake --list`: a private target, groups with and without a
/// description, variables with descriptions.
const LIST_HCL: &str = r#"
variable "TAG" {
  default = "latest"
  description = "Tag to use"
}
variable "PLATFORMS" {
  type = list(string)
  default = ["linux/amd64", "linux/arm64"]
  description = "Platforms & <arches>"
}
variable "JOBS" {
  default = 3
}
variable "EMPTY" {}
variable "NOTHING" {
  default = null
}
group "default" {
  description = "Build everything"
  targets = ["webapp", "api"]
}
group "ci" {
  targets = ["lint", "api"]
}
target "_base" {
  description = "Common settings"
}
target "webapp" {
  inherits = ["_base"]
  description = "The ${TAG} web application"
}
target "api" {
  inherits = ["_base"]
}
target "lint" {
  description = "Run the linters"
}
"#;

/// Runs `kiln bake ARGS` in a directory holding `LIST_HCL`: (status, stdout, stderr).
fn bake_in_list_dir(args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("docker-bake.hcl"), LIST_HCL).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("bake")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn bake_list_targets_table() {
    let (ok, stdout, stderr) = bake_in_list_dir(&["--list", "targets"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "TARGET\tDESCRIPTION\n\
         api\t\n\
         ci\tapi, lint\n\
         default\tBuild everything (api, webapp)\n\
         lint\tRun the linters\n\
         webapp\tThe latest web application\n"
    );
}

#[test]
fn bake_list_variables_table() {
    let (ok, stdout, stderr) = bake_in_list_dir(&["--list=variables"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "VARIABLE\tTYPE\t\tVALUE\t\t\t\tDESCRIPTION\n\
         EMPTY\t\t\t\t\t\t\t\t\n\
         JOBS\t\t\t\t3\t\t\t\t\n\
         NOTHING\t\t\t\t<null>\t\t\t\t\n\
         PLATFORMS\tlist of string\t[\"linux/amd64\",\"linux/arm64\"]\tPlatforms & <arches>\n\
         TAG\t\t\t\tlatest\t\t\t\tTag to use\n"
    );
}

#[test]
fn bake_list_json() {
    let (ok, stdout, stderr) = bake_in_list_dir(&["--list", "type=targets,format=json"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        r#"[
  {
    "name": "api"
  },
  {
    "name": "ci",
    "description": "api, lint",
    "group": true
  },
  {
    "name": "default",
    "description": "Build everything (api, webapp)",
    "group": true
  },
  {
    "name": "lint",
    "description": "Run the linters"
  },
  {
    "name": "webapp",
    "description": "The latest web application"
  }
]
"#
    );
    let (ok, stdout, stderr) = bake_in_list_dir(&["--list", "type=variables,format=json"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        r#"[
  {
    "name": "EMPTY",
    "value": ""
  },
  {
    "name": "JOBS",
    "value": "3"
  },
  {
    "name": "NOTHING"
  },
  {
    "name": "PLATFORMS",
    "description": "Platforms \u0026 \u003carches\u003e",
    "type": "list of string",
    "value": "[\"linux/amd64\",\"linux/arm64\"]"
  },
  {
    "name": "TAG",
    "description": "Tag to use",
    "value": "latest"
  }
]
"#
    );
}

#[test]
fn bake_list_errors() {
    let (ok, stdout, stderr) = bake_in_list_dir(&["--list", "type=targets,format=yaml"]);
    assert!(!ok && stdout.is_empty());
    assert!(stderr.contains("invalid list format \"yaml\""), "{stderr}");
    let (ok, _, stderr) = bake_in_list_dir(&["--list", "format=json"]);
    assert!(!ok);
    assert!(
        stderr.contains("invalid list type \"format=json\""),
        "{stderr}"
    );
    let (ok, _, stderr) = bake_in_list_dir(&["--print", "--list", "targets"]);
    assert!(!ok);
    assert!(
        stderr.contains("--print and --list are mutually exclusive"),
        "{stderr}"
    );
}
