//! Exec ops as BuildKit runs them (`kiln debug build-llb`): a read-only root still
//! gets its mount points, an empty read-only mount and a relative mount point work, a
//! mount of a path its input lacks fails naming that path, and `validExitCodes` decide
//! which exit codes succeed.

use kiln_llb::{ImageOptions, MarshalOptions, Mount, Run, State, wire};

use crate::support::{BaseImage, build_llb_into, kiln, tools_present, tree};

fn write_definition(path: &std::path::Path, state: &State) {
    let definition = state.marshal(&MarshalOptions::default());
    fs_err::write(path, wire::encode_definition(&definition)).unwrap();
}

fn busybox(port: u16) -> State {
    State::image(
        &format!("127.0.0.1:{port}/busybox:latest"),
        ImageOptions::default(),
    )
    .add_env("PATH", "/bin")
}

/// TestClientGatewaySolve, TestMountWithNoSource and TestRelativeMountpoint of
/// BuildKit's suite, in one step: the root is read-only to the process (it cannot
/// write there) but runc could make /etc/hosts and the mount points in it; `/nil` is
/// an empty read-only mount; `rel` is mounted under the working directory.
#[test]
fn read_only_root_empty_and_relative_mounts() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let script = "echo -n hi > /out/foo; \
                  (touch /root-write 2>/dev/null; echo -n $? > /out/root-write); \
                  ls -A /nil > /out/nil; \
                  echo -n rel > rel/data";
    let exec = busybox(port).dir("/work").run(
        Run::new(["sh", "-c", script])
            .readonly_root()
            .mount(Mount::bind("/out", &State::scratch()))
            .mount(Mount::bind("/nil", &State::scratch()).readonly())
            .mount(Mount::bind("rel", &State::scratch())),
    );
    let file = work.path().join("out.pb");
    write_definition(&file, &exec.mount_output("/out").unwrap());
    let out = work.path().join("out");
    build_llb_into(state, &file, &out);
    let read = |name: &str| fs_err::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("foo"), "hi");
    assert_ne!(read("root-write"), "0", "the root is read-only");
    assert_eq!(read("nil"), "");

    let file = work.path().join("rel.pb");
    write_definition(&file, &exec.mount_output("rel").unwrap());
    let rel = work.path().join("rel");
    build_llb_into(state, &file, &rel);
    assert_eq!(fs_err::read_to_string(rel.join("data")).unwrap(), "rel");
    assert_eq!(tree(&rel), ["data".to_owned()].into_iter().collect());
}

/// A bind mount of a path its input does not have fails before runc runs, naming the
/// path (TestClientSlowCacheRootfsRef's mount).
#[test]
fn a_missing_mount_source_is_named() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let input = State::scratch().file(
        kiln_llb::FileAction::mkdir("/found", 0o700, false, None, None),
        kiln_llb::OpOptions::default(),
    );
    let root = busybox(port)
        .run(Run::new(["true"]).mount(Mount::bind("/src", &input).selector("/notfound").readonly()))
        .root();
    let file = work.path().join("missing.pb");
    write_definition(&file, &root);
    let failed = kiln(state, &["debug", "build-llb", file.to_str().unwrap()]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("\"/notfound\": no such file or directory"),
        "{stderr}"
    );
}

/// `validExitCodes` replace 0 as the codes that succeed (TestRunValidExitCodes): a
/// step exiting 3 with [2, 3] keeps its changes; one exiting 0 with [1] fails.
#[test]
fn valid_exit_codes_decide_success() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let passing = busybox(port)
        .run(Run::new(["sh", "-c", "echo kept > /kept; exit 3"]).valid_exit_codes(vec![2, 3]))
        .root();
    let file = work.path().join("passing.pb");
    write_definition(&file, &passing);
    let out = work.path().join("passing");
    build_llb_into(state, &file, &out);
    assert_eq!(fs_err::read_to_string(out.join("kept")).unwrap(), "kept\n");

    let failing = busybox(port)
        .run(Run::new(["sh", "-c", "exit 0"]).valid_exit_codes(vec![1]))
        .root();
    let file = work.path().join("failing.pb");
    write_definition(&file, &failing);
    let failed = kiln(state, &["debug", "build-llb", file.to_str().unwrap()]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("exit code: 0"), "{stderr}");
}

/// A step that ignores the cache starts its cache mounts afresh, and the next build
/// sees what it wrote there; another cache is left alone (TestCacheMountNoCache).
#[test]
fn an_ignore_cache_step_starts_its_cache_mounts_afresh() {
    use kiln_llb::{CacheSharing, OpOptions};
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let step = |name: &str, script: &str, caches: &[&str], ignore_cache: bool| {
        let mut options = OpOptions::default();
        options.metadata.ignore_cache = ignore_cache;
        let mut run = Run::new(["sh", "-e", "-c", script]).options(options);
        for (i, id) in caches.iter().enumerate() {
            let target = format!("/m{}", i + 1);
            run = run.mount(Mount::cache(target, *id, CacheSharing::Locked));
        }
        let file = work.path().join(format!("{name}.pb"));
        write_definition(&file, &busybox(port).run(run).root());
        build_llb_into(state, &file, &work.path().join(name));
    };
    step("first", "touch /m1/foo /m2/bar", &["one", "two"], false);
    step("fresh", "[ ! -f /m1/foo ]; touch /m1/foo2", &["one"], true);
    step(
        "after",
        "[ -f /m1/foo2 ]; [ -f /m2/bar ]",
        &["one", "two"],
        false,
    );
}
