//! `kiln debug dump-llb` on definitions BuildKit wrote, and on bad input.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

fn llb_case(name: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("KILN_CONFORMANCE_DIR")
        .map_or_else(|| PathBuf::from("../shared/conformance"), PathBuf::from);
    let case = root.join(dir).join("llb/cases").join(name);
    case.is_dir().then_some(case)
}

/// The digests a dump printed, in order.
fn dumped_digests(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| {
            let op: Value = serde_json::from_str(line).unwrap();
            op["Digest"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn dumps_every_op_with_its_digest() {
    let Some(case) = llb_case("001-alpine-hello") else {
        return;
    };
    let output = kiln()
        .args(["debug", "dump-llb"])
        .arg(case.join("definition.pb"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected: Vec<Value> =
        serde_json::from_slice(&fs_err::read(case.join("ops.json")).unwrap()).unwrap();
    let expected: Vec<String> = expected
        .iter()
        .map(|op| op["digest"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(dumped_digests(&output.stdout), expected);
    let first: Value = serde_json::from_str(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(
        first["Op"]["Op"]["source"]["identifier"]
            .as_str()
            .unwrap()
            .starts_with("docker-image://")
    );
}

#[test]
fn reads_standard_input() {
    let Some(case) = llb_case("001-alpine-hello") else {
        return;
    };
    let mut child = kiln()
        .args(["debug", "dump-llb", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&fs_err::read(case.join("definition.pb")).unwrap())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(dumped_digests(&output.stdout).len(), 3);
}

#[test]
fn rejects_what_is_not_a_definition() {
    let dir = std::env::temp_dir().join(format!("kiln-dump-llb-{}", std::process::id()));
    fs_err::create_dir_all(&dir).unwrap();
    let path = dir.join("not-llb");
    fs_err::write(&path, "FROM alpine\n").unwrap();
    let output = kiln()
        .args(["debug", "dump-llb"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not-llb is not an LLB definition"),
        "{stderr}"
    );
    let missing = kiln()
        .args(["debug", "dump-llb", "/nonexistent/def.pb"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/def.pb"));
    fs_err::remove_dir_all(&dir).unwrap();
}
