//! `kiln debug dump-llb` on definitions BuildKit wrote, and on bad input.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

fn llb_case(name: &str) -> Option<PathBuf> {
    let case = kiln_test::conformance_dir("llb")?.join("cases").join(name);
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

/// `kiln debug build-llb` builds a definition made with the LLB builder: diff ops in
/// both forms, merged onto an image. A later state of a stage diffs to its own new
/// layers; two unrelated trees diff by comparison, with a whiteout that removes, once
/// merged, the file the upper tree lacks.
#[test]
fn build_llb_runs_diff_and_merge_ops() {
    use kiln_llb::{FileAction, ImageOptions, MarshalOptions, OpOptions, Run, State, wire};
    if !crate::support::tools_present() {
        return;
    }
    let base = crate::support::BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let image = State::image(
        &format!("127.0.0.1:{port}/busybox:latest"),
        ImageOptions::default(),
    )
    .add_env("PATH", "/bin")
    .dir("/");
    let first = image
        .run(Run::new([
            "sh",
            "-c",
            "mkdir /d && echo a > /d/a && echo keep > /keep",
        ]))
        .root();
    let second = first
        .run(Run::new([
            "sh",
            "-c",
            "rm /keep && echo b > /d/b && echo changed > /d/a",
        ]))
        .root();
    let options = OpOptions::default;
    // Fast form: only what `second` added on top of `first`.
    let added = State::diff(&first, &second, options());
    // Compared form: two trees with no layers in common.
    let lower = State::scratch().file(
        FileAction::mkfile("/keep", 0o644, "keep\n", None, None)
            .and(FileAction::mkdir("/d", 0o755, false, None, None))
            .and(FileAction::mkfile("/d/a", 0o644, "a\n", None, None)),
        options(),
    );
    let upper = State::scratch().file(
        FileAction::mkdir("/d", 0o755, false, None, None)
            .and(FileAction::mkfile("/d/a", 0o644, "changed\n", None, None))
            .and(FileAction::mkfile("/d/b", 0o600, "b\n", None, None)),
        options(),
    );
    let compared = State::diff(&lower, &upper, options());
    let on_image = State::merge(&[image.clone(), lower.clone(), compared], options());

    let build = |name: &str, result: &State| {
        let definition = result.marshal(&MarshalOptions::default());
        let file = work.path().join(format!("{name}.pb"));
        fs_err::write(&file, wire::encode_definition(&definition)).unwrap();
        let out = work.path().join(name);
        crate::support::build_llb_into(state, &file, &out);
        out
    };
    let out = build("added", &added);
    // Not /etc, which overlay copied up for the hosts and resolv.conf mount stubs.
    let tree: std::collections::BTreeSet<String> = crate::support::tree(&out).into_iter().collect();
    assert_eq!(
        tree,
        ["d", "d/a", "d/b"].map(str::to_owned).into_iter().collect()
    );
    assert_eq!(
        fs_err::read_to_string(out.join("d/a")).unwrap(),
        "changed\n"
    );

    let out = build("merged", &on_image);
    assert!(out.join("bin/busybox").is_file());
    assert!(!out.join("keep").exists(), "the whiteout removes /keep");
    assert_eq!(
        fs_err::read_to_string(out.join("d/a")).unwrap(),
        "changed\n"
    );
    assert_eq!(fs_err::read_to_string(out.join("d/b")).unwrap(), "b\n");

    // The same result exported as an image: the whiteout becomes `.wh.keep`.
    let definition = on_image.marshal(&MarshalOptions::default());
    let file = work.path().join("merged.pb");
    fs_err::write(&file, wire::encode_definition(&definition)).unwrap();
    let archive = work.path().join("merged.tar");
    crate::support::check(&crate::support::kiln(
        state,
        &[
            "debug",
            "build-llb",
            file.to_str().unwrap(),
            "-o",
            &format!("type=oci,dest={},name=merged:1", archive.display()),
        ],
    ));
    let rootfs = crate::support::umoci_unpack(&archive, &work.path().join("unpacked"));
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(!rootfs.join("keep").exists());
    assert_eq!(fs_err::read_to_string(rootfs.join("d/b")).unwrap(), "b\n");
}

/// A file op whose actions do not form a chain, written as any LLB client may: two
/// files made side by side, a copy from the first onto the second, and two outputs.
#[test]
fn build_llb_runs_file_ops_whose_actions_branch() {
    use kiln_llb::pb::{self, file_action::Action};
    use kiln_llb::wire;
    if !crate::support::tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let mkfile = |path: &str, data: &str, output: i64| pb::FileAction {
        input: -1,
        secondary_input: -1,
        output,
        action: Some(Action::Mkfile(pb::FileActionMkFile {
            path: path.to_owned(),
            mode: 0o644,
            data: data.as_bytes().to_vec(),
            owner: None,
            timestamp: -1,
        })),
    };
    let copy = |required: &[&str]| pb::FileAction {
        input: 1,           // on action 1's result (/b)
        secondary_input: 0, // from action 0's result (/a)
        output: 0,
        action: Some(Action::Copy(pb::FileActionCopy {
            src: "/a".to_owned(),
            dest: "/from-a".to_owned(),
            mode: -1,
            timestamp: -1,
            create_dest_path: true,
            required_paths: required.iter().map(|p| (*p).to_owned()).collect(),
            ..pb::FileActionCopy::default()
        })),
    };
    let encoded = |required: &[&str]| {
        let file_op = pb::Op {
            op: Some(pb::op::Op::File(pb::FileOp {
                actions: vec![
                    mkfile("/a", "A\n", -1),
                    mkfile("/b", "B\n", 1),
                    copy(required),
                ],
            })),
            ..pb::Op::default()
        };
        let bytes = wire::encode_op(&file_op);
        let digest = format!("sha256:{}", {
            use sha2::Digest as _;
            sha2::Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        });
        (bytes, digest)
    };
    let (file_bytes, digest) = encoded(&["/a"]);
    let definition_file = |file_bytes: &[u8], digest: &str, index: i64, name: &str| {
        let terminal = pb::Op {
            inputs: vec![pb::Input {
                digest: digest.to_owned(),
                index,
            }],
            ..pb::Op::default()
        };
        let definition = pb::Definition {
            def: vec![file_bytes.to_vec(), wire::encode_op(&terminal)],
            ..pb::Definition::default()
        };
        let file = work.path().join(format!("{name}.pb"));
        fs_err::write(&file, wire::encode_definition(&definition)).unwrap();
        file
    };
    let build = |index: i64, name: &str| {
        let file = definition_file(&file_bytes, &digest, index, name);
        let out = work.path().join(name);
        crate::support::build_llb_into(&state, &file, &out);
        crate::support::tree(&out)
    };
    let both: std::collections::BTreeSet<String> =
        ["b", "from-a"].map(str::to_owned).into_iter().collect();
    assert_eq!(build(0, "output0"), both);
    let only_b: std::collections::BTreeSet<String> = ["b"].map(str::to_owned).into_iter().collect();
    assert_eq!(build(1, "output1"), only_b);

    // A path the copy requires that its source lacks fails the build, naming it.
    let (bytes, digest) = encoded(&["/a", "/missing"]);
    let file = definition_file(&bytes, &digest, 0, "required");
    let failed = crate::support::kiln(&state, &["debug", "build-llb", file.to_str().unwrap()]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("\"/missing\": not found"), "{stderr}");
}
