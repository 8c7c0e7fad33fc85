//! `--cache-to`/`--cache-from type=s3|azblob|gha` (issue #18) against moto's S3 server,
//! Azurite and a fake of the GitHub Actions cache service (its v2 blobs in Azurite):
//! the cache is laid out as BuildKit lays it out, a build on an
//! empty state imports it and runs no RUN, the image is the same, `mode=min` keeps only
//! the final image's layers, a blob with other bytes is never used, and credentials
//! never reach the log.

use fs_err as fs;
use kiln_test::cloud::{AZURITE_ACCOUNT, AZURITE_KEY, Azurite, GhaFake, Moto};
use serde_json::Value;

use crate::remote_cache::{
    STEPS, build, fixture, fresh_state, image_digest, read_each_others_cache,
};
use crate::support::{check, step_cached};

const BUCKET: &str = "kiln-cache";
/// moto takes any credentials; this one is distinctive enough to grep for.
const SECRET: &str = "kiln-s3-secret-never-printed";

fn s3_options(moto: &Moto, extra: &str) -> String {
    format!(
        "type=s3,endpoint_url={},bucket={BUCKET},region=us-east-1,access_key_id=test,secret_access_key={SECRET},use_path_style=true{extra}",
        moto.endpoint()
    )
}

/// The cache config a manifest object holds: every layer described inline.
fn check_annotated_config(bytes: &[u8]) -> Value {
    let config: Value = serde_json::from_slice(bytes).expect("the manifest object is JSON");
    let layers = config["layers"].as_array().expect("layers");
    for layer in layers {
        let annotations = &layer["annotations"];
        assert!(
            annotations["mediaType"]
                .as_str()
                .is_some_and(|m| m.starts_with("application/vnd.oci.image.layer")),
            "{layer}"
        );
        assert!(
            annotations["diffID"]
                .as_str()
                .is_some_and(|d| d.starts_with("sha256:"))
        );
        assert!(annotations["size"].as_i64().is_some_and(|s| s > 0));
        assert!(annotations["createdAt"].is_string());
    }
    assert!(config["records"].as_array().is_some_and(|r| !r.is_empty()));
    config
}

/// The second build of a test (`two.tar`) imported everything the first made
/// (`one.tar`): no RUN ran again, every step is cached, the image is the same.
fn assert_imported_the_first_build(work: &std::path::Path, probe: &kiln_test::Probe, log: &str) {
    assert_eq!(
        probe.hits(),
        3,
        "no RUN executes with the cache imported:\n{log}"
    );
    for step in STEPS {
        assert!(step_cached(log, step), "{step} not cached:\n{log}");
    }
    assert_eq!(
        image_digest(&work.join("one.tar")),
        image_digest(&work.join("two.tar"))
    );
}

#[test]
fn s3_cache_round_trip_runs_nothing_and_gives_the_same_image() {
    let Some((base, probe, dir)) = fixture() else {
        return;
    };
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket(BUCKET);
    let work = base.work.path();
    let log = check(&build(
        &fresh_state(work, "state-1"),
        &dir,
        &work.join("one.tar"),
        &[
            "--cache-to",
            &s3_options(&moto, ",mode=max,prefix=ci/,name=main;pr-1"),
        ],
    ));
    assert_eq!(probe.hits(), 3, "{log}");
    assert!(!log.contains(SECRET), "the secret is in the log:\n{log}");

    // BuildKit's layout: the config under each name, blobs by digest.
    let keys = moto.keys(BUCKET, "ci/");
    let blobs: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("ci/blobs/sha256:"))
        .collect();
    assert_eq!(blobs.len(), 6, "busybox and five steps' layers: {keys:?}");
    let main = moto
        .object(BUCKET, "ci/manifests/main")
        .unwrap_or_else(|| panic!("no ci/manifests/main in {keys:?}"));
    assert_eq!(moto.object(BUCKET, "ci/manifests/pr-1"), Some(main.clone()));
    let config = check_annotated_config(&main);
    assert_eq!(config["layers"].as_array().unwrap().len(), 6);

    // An empty state imports it: every step cached, no RUN, the same image.
    let import = s3_options(&moto, ",prefix=ci/,name=main");
    let log = check(&build(
        &fresh_state(work, "state-2"),
        &dir,
        &work.join("two.tar"),
        &["--cache-from", &import],
    ));
    assert_imported_the_first_build(work, &probe, &log);
    assert!(log.contains("cache hit in type=s3"), "{log}");
    assert!(log.contains("secret_access_key=***"), "{log}");
    assert!(!log.contains(SECRET), "the secret is in the log:\n{log}");
}

#[test]
fn s3_mode_min_keeps_the_image_layers_and_a_wrong_blob_is_never_used() {
    let Some((base, probe, dir)) = fixture() else {
        return;
    };
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket(BUCKET);
    let work = base.work.path();
    check(&build(
        &fresh_state(work, "state-1"),
        &dir,
        &work.join("one.tar"),
        &["--cache-to", &s3_options(&moto, "")],
    ));
    assert_eq!(probe.hits(), 3);
    let blobs = moto.keys(BUCKET, "blobs/");
    // mode=min: the image's five layers, not the build stage's RUN.
    assert_eq!(blobs.len(), 5, "{blobs:?}");
    let config = check_annotated_config(
        &moto
            .object(BUCKET, "manifests/buildkit")
            .expect("manifests/buildkit"),
    );
    assert_eq!(config["layers"].as_array().unwrap().len(), 5);

    // Every blob but the base's now holds other bytes under its digest.
    let base_layer = config["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["parent"] == -1)
        .and_then(|l| l["blob"].as_str())
        .expect("the bottom layer")
        .to_owned();
    for key in &blobs {
        if !key.ends_with(&base_layer) {
            moto.put_object(BUCKET, key, b"not the layer");
        }
    }
    let out = work.join("out");
    let log = check(&crate::support::kiln(
        &fresh_state(work, "state-2"),
        &[
            "build",
            "--progress=plain",
            "--cache-from",
            &s3_options(&moto, ""),
            "-o",
            &format!("type=local,dest={}", out.display()),
            dir.to_str().unwrap(),
        ],
    ));
    assert!(log.contains("cannot be used, running the step"), "{log}");
    assert_eq!(probe.hits(), 6, "the final stage's RUNs ran again:\n{log}");
    assert_eq!(fs::read_to_string(out.join("two")).unwrap(), "two\n");
}

#[test]
fn an_unreachable_s3_cache_warns_with_ignore_error_and_fails_without() {
    let Some((base, _probe, dir)) = fixture() else {
        return;
    };
    let work = base.work.path();
    let closed = format!(
        "type=s3,endpoint_url=http://127.0.0.1:{},bucket={BUCKET},region=us-east-1,access_key_id=a,secret_access_key={SECRET},use_path_style=true",
        crate::support::free_port()
    );
    let state = fresh_state(work, "state-1");
    let output = build(
        &state,
        &dir,
        &work.join("one.tar"),
        &["--cache-to", &closed],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("exporting cache to type=s3,bucket=kiln-cache"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "{stderr}");
    let log = check(&build(
        &state,
        &dir,
        &work.join("one.tar"),
        &["--cache-to", &format!("{closed},ignore-error=true")],
    ));
    assert!(
        log.contains("ignore-error=true, the build goes on"),
        "{log}"
    );
    // An import that cannot be read warns, and the build goes on.
    let log = check(&build(
        &fresh_state(work, "state-2"),
        &dir,
        &work.join("two.tar"),
        &["--cache-from", &closed],
    ));
    assert!(log.contains("importing cache from type=s3"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
}

#[test]
fn azblob_cache_round_trip_creates_the_container_and_runs_nothing() {
    let Some((base, probe, dir)) = fixture() else {
        return;
    };
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let work = base.work.path();
    let options = format!(
        "type=azblob,account_url={},account_name={AZURITE_ACCOUNT},secret_access_key={AZURITE_KEY},container=kiln-ci",
        azurite.account_url()
    );
    let log = check(&build(
        &fresh_state(work, "state-1"),
        &dir,
        &work.join("one.tar"),
        &["--cache-to", &format!("{options},mode=max")],
    ));
    assert_eq!(probe.hits(), 3, "{log}");
    assert!(!log.contains(AZURITE_KEY), "{log}");

    let log = check(&build(
        &fresh_state(work, "state-2"),
        &dir,
        &work.join("two.tar"),
        &["--cache-from", &options],
    ));
    assert_imported_the_first_build(work, &probe, &log);
    assert!(log.contains("cache hit in type=azblob"), "{log}");
    assert!(!log.contains(AZURITE_KEY), "{log}");
    // A container that does not exist yet is not an import's to make: it warns.
    let log = check(&build(
        &fresh_state(work, "state-3"),
        &dir,
        &work.join("three.tar"),
        &[
            "--cache-from",
            &options.replace("container=kiln-ci", "container=absent"),
        ],
    ));
    assert!(log.contains("importing cache from type=azblob"), "{log}");
    assert_eq!(probe.hits(), 6, "{log}");
}

/// BuildKit v0.24 and kiln hit each other's s3 caches.
#[test]
fn buildkit_and_kiln_hit_each_others_s3_cache() {
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket(BUCKET);
    let _ = read_each_others_cache(|_, _, name| {
        let options = format!("{},name={name}", s3_options(&moto, ""));
        (options.clone(), options)
    });
}

/// `kiln build` with a workflow's environment: the variables a GitHub runner sets.
fn build_in_workflow(
    state: &std::path::Path,
    dir: &std::path::Path,
    out: &std::path::Path,
    vars: &[(&str, &str)],
    args: &[&str],
) -> String {
    let output = format!("type=oci,dest={}", out.display());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .env("KILN_ROOT", state)
        .args(["build", "--progress=plain"])
        .args(args)
        .args(["-o", &output, dir.to_str().unwrap()]);
    for (name, value) in vars {
        command.env(name, value);
    }
    check(&command.output().unwrap())
}

#[test]
fn gha_v1_cache_round_trip_from_a_workflows_environment() {
    let Some((base, probe, dir)) = fixture() else {
        return;
    };
    let gha = GhaFake::start(None);
    let work = base.work.path();
    let url = gha.url();
    let workflow = [
        ("ACTIONS_RUNTIME_TOKEN", gha.token.as_str()),
        ("ACTIONS_CACHE_URL", url.as_str()),
    ];
    // The token and URL come from the environment, as buildx takes them.
    let log = build_in_workflow(
        &fresh_state(work, "state-1"),
        &dir,
        &work.join("one.tar"),
        &workflow,
        &["--cache-to", "type=gha,scope=app,mode=max"],
    );
    assert_eq!(probe.hits(), 3, "{log}");
    assert!(!log.contains(&gha.token), "the token is in the log:\n{log}");
    let stats = gha.stats();
    // Six blobs and the index, each reserved and committed once.
    assert_eq!(stats["v1 reserve"], 7, "{stats}");
    assert_eq!(stats["v1 commit"], 7, "{stats}");

    // An empty state imports it; exporting again adds index #2 and no blob.
    let log = build_in_workflow(
        &fresh_state(work, "state-2"),
        &dir,
        &work.join("two.tar"),
        &workflow,
        &[
            "--cache-from",
            "type=gha,scope=app",
            "--cache-to",
            "type=gha,scope=app,mode=max",
        ],
    );
    assert_imported_the_first_build(work, &probe, &log);
    assert!(log.contains("cache hit in type=gha"), "{log}");
    assert!(!log.contains(&gha.token), "the token is in the log:\n{log}");
    assert_eq!(gha.stats()["v1 reserve"], 8, "{}", gha.stats());

    // Outside a workflow the same flags build without a cache, as buildx does.
    let log = build_in_workflow(
        &fresh_state(work, "state-3"),
        &dir,
        &work.join("three.tar"),
        &[],
        &["--cache-from", "type=gha,scope=app"],
    );
    assert_eq!(probe.hits(), 6, "{log}");
    assert!(!log.contains("importing cache"), "{log}");
}

#[test]
fn gha_v2_cache_round_trip_through_azure_blobs() {
    let Some((base, probe, dir)) = fixture() else {
        return;
    };
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let gha = GhaFake::start(Some(&azurite));
    let work = base.work.path();
    let url = gha.url();
    let api = gha.url();
    // v2 as a runner with the new service says it; the repository listing (GitHub's
    // REST API, here the fake's) finds existing blobs in one request.
    let workflow = [
        ("ACTIONS_RUNTIME_TOKEN", gha.token.as_str()),
        ("ACTIONS_RESULTS_URL", url.as_str()),
        ("ACTIONS_CACHE_SERVICE_V2", "true"),
        ("GITHUB_API_URL", api.as_str()),
    ];
    let cache_to = format!(
        "type=gha,mode=max,repository=owner/app,ghtoken={}",
        gha.ghtoken
    );
    let log = build_in_workflow(
        &fresh_state(work, "state-1"),
        &dir,
        &work.join("one.tar"),
        &workflow,
        &["--cache-to", &cache_to],
    );
    assert_eq!(probe.hits(), 3, "{log}");
    let stats = gha.stats();
    assert_eq!(stats["v2 reserve"], 7, "{stats}");
    assert_eq!(stats["v2 commit"], 7, "{stats}");
    assert_eq!(stats["rest list"], 1, "{stats}");
    // One lookup: the index's newest number; no blob is looked up one by one.
    assert_eq!(stats["v2 lookup"], 1, "{stats}");

    let log = build_in_workflow(
        &fresh_state(work, "state-2"),
        &dir,
        &work.join("two.tar"),
        &workflow,
        &["--cache-from", "type=gha"],
    );
    assert_imported_the_first_build(work, &probe, &log);
    assert!(!log.contains(&gha.ghtoken), "{log}");
}

/// BuildKit v0.24 (go-actions-cache, the real client of the service) and kiln hit each
/// other's gha caches, v1 and v2, through the fake: the fake speaks the protocols as
/// GitHub does, and the format and keys are BuildKit's.
#[test]
fn buildkit_and_kiln_hit_each_others_gha_cache() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let gha = GhaFake::start(Some(&azurite));
    for url_key in ["url", "url_v2"] {
        let ran = read_each_others_cache(|_, _, name| {
            let options = format!(
                "type=gha,{url_key}={},token={},scope={name}-{url_key}",
                gha.url(),
                gha.token
            );
            (options.clone(), options)
        });
        if !ran {
            return;
        }
    }
    // Both protocols were spoken.
    let stats = gha.stats();
    for kind in ["v1 commit", "v2 commit"] {
        assert!(stats[kind].as_u64().is_some_and(|n| n > 0), "{stats}");
    }
}
