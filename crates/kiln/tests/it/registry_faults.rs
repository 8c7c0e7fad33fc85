//! Registry faults (issue #19): a proxy between kiln and `docker-registry` injects
//! connection resets, truncated, corrupted and slow bodies, and 429/5xx answers (with
//! and without `Retry-After`). Pulls and pushes ride out what is transient, refuse
//! what is wrong without storing it, and report what the registry answered.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kiln_test::{Fault, FaultProxy, Registry};

use crate::support::{BaseImage, build_into, check, kiln, tools_present};

/// A registry with busybox, a proxy in front of it, and a work directory.
fn setup() -> Option<(Registry, FaultProxy, tempfile::TempDir)> {
    if !tools_present() {
        return None;
    }
    let registry = Registry::start();
    registry.push_busybox();
    let proxy = FaultProxy::start(registry.port);
    Some((registry, proxy, tempfile::tempdir().unwrap()))
}

/// A context whose Dockerfile starts from `base` and runs a step.
fn context(work: &Path, base: &str) -> std::path::PathBuf {
    let dir = work.join("ctx");
    fs_err::create_dir_all(&dir).unwrap();
    fs_err::write(
        dir.join("Dockerfile"),
        format!("FROM {base}\nRUN echo built > /built\n"),
    )
    .unwrap();
    dir
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn pulls_ride_out_transient_faults() {
    let Some((_registry, proxy, work)) = setup() else {
        return;
    };
    proxy.inject(
        "GET",
        "/manifests/",
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1,
    );
    proxy.inject("GET", "/blobs/", Fault::Reset, 1);
    proxy.inject(
        "GET",
        "/blobs/",
        Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
        1,
    );
    proxy.inject("GET", "/blobs/", Fault::Truncate, 1);
    proxy.inject(
        "GET",
        "/blobs/",
        Fault::Slow {
            bytes: 16 * 1024,
            pause: Duration::from_millis(2),
        },
        1,
    );
    let state = work.path().join("state");
    let out = work.path().join("out");
    let ctx = context(work.path(), &format!("{}/busybox", proxy.host()));
    check(&kiln(
        &state,
        &[
            "build",
            "--progress=plain",
            "-o",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        fs_err::read_to_string(out.join("built")).unwrap(),
        "built\n"
    );
    assert_eq!(proxy.injected().len(), 5, "{:#?}", proxy.injected());
    // The truncated blob resumed where it stopped rather than from its start.
    let requests = proxy.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET ") && r.contains(" bytes=")),
        "{requests:#?}"
    );
    let verified = kiln_test::assert_blobs_verified(&state);
    kiln_test::reliability_figure(
        "registry faults",
        "pull through a reset, 429 + Retry-After, 503, a truncated and a slow body: faults injected, build passed, blobs verified",
        format!("{}, yes, {verified}", proxy.injected().len()),
    );
}

#[test]
fn a_blob_with_a_wrong_digest_is_never_stored() {
    let Some((_registry, proxy, work)) = setup() else {
        return;
    };
    proxy.inject("GET", "/blobs/", Fault::Corrupt, usize::MAX);
    let state = work.path().join("state");
    let ctx = context(work.path(), &format!("{}/busybox", proxy.host()));
    let build = || {
        kiln(
            &state,
            &["build", "--progress=plain", ctx.to_str().unwrap()],
        )
    };
    let failed = build();
    assert!(!failed.status.success());
    let message = stderr(&failed);
    assert!(
        message.contains("content has digest sha256:"),
        "the mismatch is not named:\n{message}"
    );
    kiln_test::assert_blobs_verified(&state);
    // Once the registry serves the right bytes, the same build passes.
    proxy.clear();
    check(&build());
    let verified = kiln_test::assert_blobs_verified(&state);
    kiln_test::reliability_figure(
        "registry faults",
        "every blob corrupted: build refused, wrong blobs stored, blobs verified after a clean rebuild",
        format!("yes, 0, {verified}"),
    );
}

#[test]
fn a_registry_that_keeps_failing_is_reported_after_a_few_tries() {
    let Some((_registry, proxy, work)) = setup() else {
        return;
    };
    proxy.inject(
        "GET",
        "/manifests/",
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        usize::MAX,
    );
    let state = work.path().join("state");
    let ctx = context(work.path(), &format!("{}/busybox", proxy.host()));
    let failed = kiln(
        &state,
        &["build", "--progress=plain", ctx.to_str().unwrap()],
    );
    assert!(!failed.status.success());
    let message = stderr(&failed);
    assert!(
        message.contains("503") && message.contains("injected by the test's proxy"),
        "the registry's answer is not reported:\n{message}"
    );
    let tries = proxy
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET ") && r.contains("/manifests/"))
        .count();
    assert!((2..=6).contains(&tries), "{tries} tries");
    kiln_test::reliability_figure(
        "registry faults",
        "503 on every try: tries before the registry's answer is reported",
        tries,
    );
}

#[test]
fn pushes_ride_out_transient_faults() {
    let Some((registry, proxy, work)) = setup() else {
        return;
    };
    let state = work.path().join("state");
    // The base comes straight from the registry; the push goes through the proxy.
    let ctx = context(work.path(), &format!("{}/busybox", registry.host()));
    let status = |status, retry_after| Fault::Status {
        status,
        retry_after,
    };
    proxy.inject("HEAD", "/blobs/", status(502, None), 1);
    proxy.inject("POST", "/blobs/uploads/", Fault::Reset, 1);
    proxy.inject("PUT", "/blobs/uploads/", status(500, None), 1);
    proxy.inject("PUT", "/manifests/", status(429, Some(1)), 1);
    let name = format!("{}/app:1", proxy.host());
    check(&kiln(
        &state,
        &[
            "build",
            "--progress=plain",
            "--push",
            "-t",
            &name,
            ctx.to_str().unwrap(),
        ],
    ));
    assert_eq!(proxy.injected().len(), 4, "{:#?}", proxy.injected());
    // The image is whole in the registry itself.
    kiln_test::copy_to_layout(
        &format!("{}/app:1", registry.host()),
        &work.path().join("copy"),
        "1",
    );
    kiln_test::reliability_figure(
        "registry faults",
        "push through a reset, 500, 502 and 429 + Retry-After: faults injected, image whole in the registry",
        format!("{}, yes", proxy.injected().len()),
    );
}

/// With the registry gone, a build still resolves its base image from the last
/// resolution (saying so); `--pull` insists on the registry and fails; an LLB image
/// source with `resolve-mode=local` uses the last resolution without asking.
#[test]
fn an_unreachable_registry_falls_back_to_the_last_resolution() {
    use kiln_llb::{ImageOptions, MarshalOptions, ResolveMode, Run, State, wire};
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("offline");
    fs_err::create_dir_all(&project).unwrap();
    let dockerfile = |word: &str| {
        fs_err::write(
            project.join("Dockerfile"),
            format!("FROM 127.0.0.1:{port}/busybox:latest\nRUN echo {word} > /word\n"),
        )
        .unwrap();
    };
    dockerfile("one");
    build_into(state, &project, &work.path().join("one"), &[]);

    let pid = fs_err::read_to_string(work.path().join("registry.pid")).unwrap();
    assert!(
        Command::new("kill")
            .arg(pid.trim())
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));

    dockerfile("two");
    let out = work.path().join("two");
    let log = build_into(state, &project, &out, &[]);
    assert!(log.contains("the registry cannot be reached"), "{log}");
    assert_eq!(fs_err::read_to_string(out.join("word")).unwrap(), "two\n");

    let pulled = kiln(state, &["build", "--pull", project.to_str().unwrap()]);
    assert!(!pulled.status.success());

    let image = State::image(
        &format!("127.0.0.1:{port}/busybox:latest"),
        ImageOptions {
            resolve_mode: ResolveMode::PreferLocal,
            ..ImageOptions::default()
        },
    )
    .add_env("PATH", "/bin");
    let result = image
        .run(Run::new(["sh", "-c", "echo local > /word"]))
        .root();
    let file = work.path().join("local.pb");
    fs_err::write(
        &file,
        wire::encode_definition(&result.marshal(&MarshalOptions::default())),
    )
    .unwrap();
    let out = work.path().join("local");
    let log = crate::support::build_llb_into(state, &file, &out);
    assert!(!log.contains("cannot be reached"), "{log}");
    assert_eq!(fs_err::read_to_string(out.join("word")).unwrap(), "local\n");
}
