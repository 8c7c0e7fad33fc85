//! `kiln bake --print` against `shared/conformance/bake`: the resolved targets equal
//! what docker buildx printed, or the command fails with buildx's message. Prints
//! `bake: N passed, M failed`. Honours `KILN_CONFORMANCE_DIR` (relative to the
//! workspace root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn cases_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("KILN_CONFORMANCE_DIR")
        .map_or_else(|| PathBuf::from("../shared/conformance"), PathBuf::from);
    root.join(dir).join("bake/cases")
}

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

#[test]
fn bake_print() {
    let dir = cases_dir();
    if !dir.is_dir() {
        println!("bake: skipped, {} not found", dir.display());
        return;
    }
    let mut cases: Vec<PathBuf> = fs_err::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(why) = check(case) {
            failures.push(format!(
                "{}: {why}",
                case.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    for failure in &failures {
        println!("  FAIL {failure}");
    }
    println!(
        "bake: {} passed, {} failed",
        cases.len() - failures.len(),
        failures.len()
    );
}
