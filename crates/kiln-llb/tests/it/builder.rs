//! The builder API reproduces BuildKit's graphs: the same construction gives the digests
//! BuildKit's frontend recorded in `shared/conformance/llb`, whatever the order of
//! construction, with every distinct op written once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kiln_llb::{
    CopyOptions, FileAction, ImageOptions, LoadedDefinition, LocalOptions, MarshalOptions, Mount,
    OpOptions, Platform, Run, State, wire,
};

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn case(name: &str) -> Option<PathBuf> {
    let case = kiln_test::conformance_dir("llb")?.join("cases").join(name);
    case.is_dir().then_some(case)
}

fn recorded_digests(case: &Path) -> Vec<String> {
    let ops: Vec<serde_json::Value> =
        serde_json::from_slice(&fs_err::read(case.join("ops.json")).unwrap()).unwrap();
    ops.iter()
        .map(|op| op["digest"].as_str().unwrap().to_owned())
        .collect()
}

fn digests(def: &kiln_llb::pb::Definition) -> Vec<String> {
    let loaded = LoadedDefinition::from_definition(def.clone()).unwrap();
    loaded
        .vertices
        .iter()
        .map(|v| v.digest.to_string())
        .collect()
}

fn amd64() -> MarshalOptions {
    MarshalOptions {
        platform: Some(Platform::linux("amd64")),
        local_unique_id: Some("0000000000000000000000000".to_owned()),
    }
}

fn alpine() -> State {
    let reference =
        "alpine:3.20@sha256:75be9c490b21b793193f47be0daf1e1ba283c3a002c8e84091e2c871cc49f219";
    State::image(reference, ImageOptions::default())
        .add_env("PATH", PATH)
        .dir("/")
}

#[test]
fn image_and_run_match_buildkit() {
    let Some(case) = case("001-alpine-hello") else {
        return;
    };
    let run = alpine()
        .run(
            Run::new(["/bin/sh", "-c", "apk add --no-cache ca-certificates tzdata"])
                .options(OpOptions::default().custom_name("RUN apk add")),
        )
        .root();
    let def = run.marshal(&amd64());
    assert_eq!(digests(&def), recorded_digests(&case));
}

#[test]
fn context_copies_match_buildkit() {
    let Some(case) = case("002-scratch-static-binary") else {
        return;
    };
    let context = State::local(
        "context",
        LocalOptions {
            follow_paths: vec!["bin/server".into(), "certs/ca-certificates.crt".into()],
            shared_key_hint: Some("context".into()),
            op: OpOptions::default().custom_name("[internal] load build context"),
            ..LocalOptions::default()
        },
    );
    let copy = |src: &str, dest: &str| {
        let options = CopyOptions {
            follow_symlink: true,
            dir_copy_contents: true,
            create_dest_path: true,
            allow_wildcard: true,
            allow_empty_wildcard: true,
            ..CopyOptions::default()
        };
        FileAction::copy(&context, src, dest, options)
    };
    let result = State::scratch()
        .file(copy("/bin/server", "/server"), OpOptions::default())
        .file(
            copy("/certs/ca-certificates.crt", "/etc/ssl/certs/"),
            OpOptions::default(),
        );
    let def = result.marshal(&amd64());
    assert_eq!(digests(&def), recorded_digests(&case));
}

/// A small graph with shared parts: two runs on one base, merged, plus a copy.
fn graph(reverse: bool) -> State {
    let base = alpine();
    let build = |cmd: &str| {
        base.run(Run::new(["sh", "-c", cmd]).mount(Mount::cache("/cache", "c", Default::default())))
            .root()
    };
    let (a, b) = if reverse {
        let b = build("make b");
        (build("make a"), b)
    } else {
        let a = build("make a");
        (a, build("make b"))
    };
    let merged = State::merge(&[a, b.clone()], OpOptions::default());
    merged.file(
        FileAction::mkdir("/out", 0o755, true, None, None).and(FileAction::copy(
            &b,
            "/bin/b",
            "/out/",
            CopyOptions::default(),
        )),
        OpOptions::default(),
    )
}

#[test]
fn construction_order_does_not_change_the_definition() {
    let one = wire::encode_definition(&graph(false).marshal(&amd64()));
    let two = wire::encode_definition(&graph(true).marshal(&amd64()));
    assert_eq!(one, two);
}

#[test]
fn identical_ops_are_written_once() {
    let a = alpine().run(Run::new(["true"])).root();
    let b = alpine().run(Run::new(["true"])).root();
    let merged = State::merge(&[a, b], OpOptions::default());
    let def = merged.marshal(&amd64());
    let all = digests(&def);
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), distinct.len());
    // image, run, merge, terminal
    assert_eq!(all.len(), 4);
}

#[test]
fn marshalled_definitions_load_and_round_trip() {
    let def = graph(false).marshal(&amd64());
    let bytes = wire::encode_definition(&def);
    let loaded = LoadedDefinition::decode(&bytes).unwrap();
    assert_eq!(wire::encode_definition(&loaded.definition), bytes);
    let (result, index) = loaded.result().unwrap().unwrap();
    assert!(loaded.get(&result).is_some());
    assert_eq!(index, 0);
    assert!(State::scratch().marshal(&amd64()).def.is_empty());
}
