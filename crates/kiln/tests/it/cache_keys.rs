//! Selective cache keys: a step is keyed by the content of the paths it reads, so an
//! edit elsewhere in the context (or in a stage it copies one path from) leaves it and
//! every step after it cached, as BuildKit's content-based cache keys do.

use fs_err as fs;

use crate::support::{BaseImage, build_into, step_cached, tools_present};

#[test]
fn steps_are_keyed_by_the_content_they_read() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let dir = base.work.path().join("ctx");
    for (path, content) in [
        ("app/a.txt", "app one"),
        ("gen/keep.txt", "keep"),
        ("gen/other.txt", "other one"),
        ("sub/s.txt", "sub one"),
        ("docs/readme.txt", "docs one"),
    ] {
        fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
        fs::write(dir.join(path), content).unwrap();
    }
    fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox AS gen
COPY gen/ /gen/

FROM 127.0.0.1:{port}/busybox
COPY app/ /app/
RUN cat /app/a.txt > /from-app
COPY --from=gen /gen/keep.txt /keep.txt
RUN cat /keep.txt > /from-keep
RUN --mount=type=bind,source=sub,target=/sub cat /sub/s.txt > /from-sub
",
            port = base.port
        ),
    )
    .unwrap();
    let out = base.work.path().join("out");
    let build = || build_into(&base.state, &dir, &out, &[]);
    let steps = [
        "COPY gen/ /gen/",
        "COPY app/ /app/",
        "RUN cat /app/a.txt",
        "COPY --from=gen /gen/keep.txt",
        "RUN cat /keep.txt",
        "RUN --mount=type=bind,source=sub",
    ];
    // Which of `steps` ran (were not cached) in a build's log.
    let ran = |log: &str| -> Vec<&str> {
        steps
            .iter()
            .copied()
            .filter(|s| !step_cached(log, s))
            .collect()
    };
    assert_eq!(ran(&build()), steps, "a first build runs everything");

    fs::write(dir.join("docs/readme.txt"), "docs two").unwrap();
    assert_eq!(ran(&build()), Vec::<&str>::new(), "nothing reads docs/");

    fs::write(dir.join("gen/other.txt"), "other two").unwrap();
    assert_eq!(
        ran(&build()),
        ["COPY gen/ /gen/"],
        "the final stage copies only /gen/keep.txt"
    );

    fs::write(dir.join("sub/s.txt"), "sub two").unwrap();
    let log = build();
    assert_eq!(ran(&log), ["RUN --mount=type=bind,source=sub"], "{log}");
    assert_eq!(fs::read_to_string(out.join("from-sub")).unwrap(), "sub two");

    fs::write(dir.join("app/a.txt"), "app two").unwrap();
    assert_eq!(
        ran(&build()),
        steps[1..],
        "an edit of what the first COPY reads reruns it and every step after it"
    );
    assert_eq!(fs::read_to_string(out.join("from-app")).unwrap(), "app two");
    assert_eq!(fs::read_to_string(out.join("from-keep")).unwrap(), "keep");

    // Back to an earlier content: the earlier results are found again.
    fs::write(dir.join("app/a.txt"), "app one").unwrap();
    assert_eq!(ran(&build()), Vec::<&str>::new());
    assert_eq!(fs::read_to_string(out.join("from-app")).unwrap(), "app one");
}
