//! Contexts a client names by URL instead of lending a directory, fetched by kilnd as
//! buildkitd fetches them: a git repository, a tar archive the client uploads through
//! its session (what buildx sends for `docker buildx build - < context.tar`), and git
//! repositories as named contexts.

use std::collections::HashMap;
use std::path::Path;

use kiln_api::proto::moby::buildkit::v1 as control;
use kiln_api::session::attachables::{Attachables, OutputTarget};

use crate::support::{Kilnd, can_build};

/// A `dockerfile.v0` solve with `attrs`, exported to `out` on the client; the error's
/// text when it fails.
async fn build(
    kilnd: &Kilnd,
    attrs: &[(&str, &str)],
    mut attachables: Attachables,
    out: &Path,
) -> Result<(), String> {
    let client = kiln_api::client::Client::connect(&kilnd.address(), &Default::default())
        .await
        .unwrap();
    let request = control::SolveRequest {
        frontend: "dockerfile.v0".to_owned(),
        frontend_attrs: attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
        exporters: vec![control::Exporter {
            r#type: "local".to_owned(),
            attrs: HashMap::new(),
        }],
        ..control::SolveRequest::default()
    };
    attachables
        .outputs
        .insert(0, OutputTarget::Dir(out.to_path_buf()));
    client
        .solve(request, attachables, "remote-contexts", |_| {})
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A gzipped tar archive of `files` at `path`.
fn archive(path: &Path, files: &[(&str, &str)]) {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        fs_err::File::create(path).unwrap(),
        flate2::Compression::fast(),
    ));
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, name, content.as_bytes())
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

fn read(path: &Path) -> String {
    fs_err::read_to_string(path).unwrap()
}

#[tokio::test]
async fn contexts_named_by_url_are_fetched_by_kilnd() {
    if !can_build() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (_git_daemon, repo) = kiln_test::serve_git(
        work.path(),
        &[
            ("docker/Dockerfile", "FROM scratch\nCOPY hello.txt /\n"),
            ("docker/hello.txt", "from git\n"),
            ("top.txt", "top of the repository\n"),
        ],
    );
    let kilnd = Kilnd::start(&[]);
    let out = |name: &str| work.path().join(name);

    // A git context with a subdirectory: the Dockerfile comes from it too; no
    // directory is lent at all.
    let git_context = format!("{repo}#main:docker");
    build(
        &kilnd,
        &[("context", &git_context)],
        Attachables::default(),
        &out("git"),
    )
    .await
    .unwrap();
    assert_eq!(read(&out("git").join("hello.txt")), "from git\n");

    // `contextsubdir` scopes the context; the Dockerfile is named from its root.
    build(
        &kilnd,
        &[
            ("context", &repo),
            ("filename", "docker/Dockerfile"),
            ("contextsubdir", "docker"),
        ],
        Attachables::default(),
        &out("subdir"),
    )
    .await
    .unwrap();
    assert_eq!(read(&out("subdir").join("hello.txt")), "from git\n");

    // An uploaded archive, with a git repository as a named context.
    let tarball = work.path().join("context.tar.gz");
    archive(
        &tarball,
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY t.txt /\nCOPY --from=repo top.txt /\n",
            ),
            ("t.txt", "from the upload\n"),
        ],
    );
    let attachables = Attachables::default();
    let url = attachables.uploads.add("up1", tarball);
    let named = format!("{repo}#main");
    build(
        &kilnd,
        &[("context", &url), ("context:repo", &named)],
        attachables,
        &out("upload"),
    )
    .await
    .unwrap();
    assert_eq!(read(&out("upload").join("t.txt")), "from the upload\n");
    assert_eq!(
        read(&out("upload").join("top.txt")),
        "top of the repository\n"
    );

    // An upload that is no archive is the Dockerfile, with an empty context.
    let dockerfile = work.path().join("Dockerfile.up");
    fs_err::write(
        &dockerfile,
        "FROM scratch\nCOPY --from=repo top.txt /again.txt\n",
    )
    .unwrap();
    let attachables = Attachables::default();
    let url = attachables.uploads.add("up2", dockerfile);
    build(
        &kilnd,
        &[("context", &url), ("context:repo", &named)],
        attachables,
        &out("dockerfile"),
    )
    .await
    .unwrap();
    assert_eq!(
        read(&out("dockerfile").join("again.txt")),
        "top of the repository\n"
    );

    // Clear errors, and kilnd goes on serving.
    let nothing_lent = build(
        &kilnd,
        &[("context", "http://buildkit-session/missing")],
        Attachables::default(),
        &out("missing"),
    )
    .await
    .unwrap_err();
    assert!(nothing_lent.contains("lends no uploads"), "{nothing_lent}");
    let conflicting = format!("{repo}?tag=v1&branch=main");
    let conflict = build(
        &kilnd,
        &[("context", &conflicting)],
        Attachables::default(),
        &out("conflict"),
    )
    .await
    .unwrap_err();
    assert!(conflict.contains("branch conflicts with tag"), "{conflict}");
    let outside = build(
        &kilnd,
        &[("context", &repo), ("contextsubdir", "../..")],
        Attachables::default(),
        &out("outside"),
    )
    .await
    .unwrap_err();
    assert!(outside.contains("not a directory inside"), "{outside}");
    build(
        &kilnd,
        &[("context", &git_context)],
        Attachables::default(),
        &out("again"),
    )
    .await
    .unwrap();
    // What was fetched is gone with the builds (a little after each ends).
    let fetched = kilnd.dir.path().join("root/kilnd/remote");
    for _ in 0..100 {
        if fs_err::read_dir(&fetched).map_or(0, |d| d.count()) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(fs_err::read_dir(&fetched).unwrap().count(), 0);
}
