//! Exec ops' mounts prepared as BuildKit prepares them (`kiln debug build-llb`): a
//! read-only root still gets its mount points, an empty read-only mount and a relative
//! mount point work, and a mount of a path its input lacks fails naming that path.

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
