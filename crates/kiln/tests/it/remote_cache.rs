//! `--cache-to`/`--cache-from` (issue #18): a build exports its cache, a build on an
//! empty state imports it and runs nothing, and the image is the same. Each RUN of the
//! test Dockerfiles calls a probe on 127.0.0.1 (steps use the host's network), so the
//! probe's count says exactly how many RUNs executed.

use std::path::{Path, PathBuf};

use fs_err as fs;
use kiln_test::Probe;
use serde_json::Value;

use crate::support::{
    BaseImage, KillOnDrop, check, free_port, kiln, serve_directory, skopeo_inspect, step_cached,
    tools_present,
};

/// A two-stage Dockerfile: a build stage whose layer the final image does not carry,
/// and a final stage with a COPY from the context and two RUNs.
pub(crate) fn write_context(dir: &Path, registry: u16, probe: u16) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("a.txt"), "from the context\n").unwrap();
    fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{registry}/busybox AS build
RUN wget -q -O /built http://127.0.0.1:{probe}/build

FROM 127.0.0.1:{registry}/busybox
COPY a.txt /a.txt
RUN wget -q -O /ran1 http://127.0.0.1:{probe}/one && cat /a.txt > /copy
COPY --from=build /built /built
RUN wget -q -O /ran2 http://127.0.0.1:{probe}/two && echo two > /two
"
        ),
    )
    .unwrap();
}

/// The Dockerfile's steps as progress names them.
pub(crate) const STEPS: [&str; 6] = [
    "[build 1/2] FROM",
    "[build 2/2] RUN wget",
    "[stage-1 2/5] COPY a.txt",
    "[stage-1 3/5] RUN wget",
    "[stage-1 4/5] COPY --from=build",
    "[stage-1 5/5] RUN wget",
];

/// `kiln build --progress=plain ARGS… -o type=oci,dest=OUT DIR` on `state`.
pub(crate) fn build(state: &Path, dir: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    let output = format!("type=oci,dest={}", out.display());
    let mut all = vec!["build", "--progress=plain"];
    all.extend_from_slice(args);
    all.extend(["-o", output.as_str(), dir.to_str().unwrap()]);
    kiln(state, &all)
}

/// The image manifest digest of an OCI archive.
pub(crate) fn image_digest(archive: &Path) -> String {
    skopeo_inspect(archive, false)["Digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The file of blob `digest` in the local cache (an OCI layout) at `cache`.
fn cache_blob(cache: &Path, digest: &str) -> PathBuf {
    cache
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

/// The fixture's build on a new state `state`, exported `mode=max` to a new local
/// cache `work/NAME`; returns the cache's directory.
fn export_local_cache(work: &Path, dir: &Path, state: &str, name: &str) -> PathBuf {
    let cache = work.join(name);
    check(&build(
        &fresh_state(work, state),
        dir,
        &work.join(format!("{name}.tar")),
        &[
            "--cache-to",
            &format!("type=local,dest={},mode=max", cache.display()),
        ],
    ));
    cache
}

/// A local cache directory's manifest (by its `latest` tag) and config.
fn local_cache(dir: &Path) -> (Value, Value) {
    let blob = |digest: &str| -> Value {
        serde_json::from_slice(&fs::read(cache_blob(dir, digest)).unwrap()).unwrap()
    };
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "latest")
        .expect("a manifest tagged latest");
    let manifest = blob(entry["digest"].as_str().unwrap());
    let config = blob(manifest["config"]["digest"].as_str().unwrap());
    (manifest, config)
}

/// The registry with the base image, a probe, and the context written; `None` after a
/// skip when the real parts are missing.
pub(crate) fn fixture() -> Option<(BaseImage, Probe, PathBuf)> {
    if !tools_present() {
        return None;
    }
    let base = BaseImage::publish();
    let probe = Probe::start();
    let dir = base.work.path().join("ctx");
    write_context(&dir, base.port, probe.port);
    Some((base, probe, dir))
}

/// `kiln.build.steps` of a metadata file: each step named with `prefix` as `ran`,
/// `cached` or `imported from NAME`.
fn step_results(metadata: &Path, prefix: &str) -> Vec<String> {
    let metadata: Value = serde_json::from_slice(&fs::read(metadata).unwrap()).unwrap();
    metadata["kiln.build.steps"]
        .as_array()
        .expect("kiln.build.steps")
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.contains(prefix)))
        .map(|s| match s["result"].as_str() {
            Some("imported") => format!("imported from {}", s["from"].as_str().unwrap()),
            other => other.unwrap().to_owned(),
        })
        .collect()
}

pub(crate) fn fresh_state(work: &Path, name: &str) -> PathBuf {
    let state = work.join(name);
    let _ = fs::remove_dir_all(&state);
    state
}

#[test]
fn local_cache_round_trip_runs_nothing_and_gives_the_same_image() {
    let Some((base, probe, dir)) = fixture() else {
        return;
    };
    let work = base.work.path();
    let cache = work.join("cache");
    let cache_to = format!("type=local,dest={},mode=max", cache.display());

    let first = fresh_state(work, "state-1");
    let metadata = work.join("metadata.json");
    let log = check(&build(
        &first,
        &dir,
        &work.join("one.tar"),
        &[
            "--cache-to",
            &cache_to,
            "--metadata-file",
            metadata.to_str().unwrap(),
        ],
    ));
    // The metadata file says where each step came from: here, every RUN ran.
    assert_eq!(step_results(&metadata, "RUN wget"), ["ran"; 3], "{log}");
    assert_eq!(
        probe.hits(),
        3,
        "the first build runs its three RUNs:\n{log}"
    );

    // The cache is an OCI layout as BuildKit writes it: an image manifest whose config
    // is the cache config, layers with their uncompressed digest and creation time.
    assert!(cache.join("oci-layout").is_file());
    let (manifest, config) = local_cache(&cache);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.buildkit.cacheconfig.v0"
    );
    let layers = manifest["layers"].as_array().unwrap();
    // busybox, the build stage's RUN, COPY, RUN, COPY --from, RUN.
    assert_eq!(layers.len(), 6, "{manifest:#}");
    for layer in layers {
        assert!(layer["annotations"]["containerd.io/uncompressed"].is_string());
        assert!(layer["annotations"]["buildkit/createdat"].is_string());
    }
    assert!(
        config["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["inputs"].is_array())
    );

    // An empty state imports it: every step is cached, no RUN executes.
    let second = fresh_state(work, "state-2");
    let cache_from = format!("type=local,src={}", cache.display());
    // It exports again, as CI does: the steps it skipped keep their results.
    let again = work.join("cache-again");
    let log = check(&build(
        &second,
        &dir,
        &work.join("two.tar"),
        &[
            "--cache-from",
            &cache_from,
            "--cache-to",
            &format!("type=local,dest={},mode=max", again.display()),
            "--metadata-file",
            metadata.to_str().unwrap(),
        ],
    ));
    // The last step came from the import; none ran (the steps under it are cached:
    // nothing needed them once it hit).
    assert_eq!(
        step_results(&metadata, "[stage-1 5/5]"),
        [format!("imported from {cache_from}")],
        "{log}"
    );
    for stage in ["[build", "[stage-1"] {
        assert!(
            step_results(&metadata, stage).iter().all(|r| r != "ran"),
            "{log}"
        );
    }
    assert_eq!(
        probe.hits(),
        3,
        "no RUN executes with the cache imported:\n{log}"
    );
    for step in STEPS {
        assert!(step_cached(&log, step), "{step} not cached:\n{log}");
    }
    assert!(log.contains("cache hit in type=local"), "{log}");
    assert_eq!(
        image_digest(&work.join("one.tar")),
        image_digest(&work.join("two.tar")),
        "the imported build's image is the original's:\n{:#}\n{:#}\n{:#}\n{:#}",
        skopeo_inspect(&work.join("one.tar"), false),
        skopeo_inspect(&work.join("two.tar"), false),
        skopeo_inspect(&work.join("one.tar"), true),
        skopeo_inspect(&work.join("two.tar"), true),
    );

    let digests = |manifest: &Value| -> Vec<Value> {
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].clone())
            .collect()
    };
    let (again_manifest, _) = local_cache(&again);
    assert_eq!(
        digests(&again_manifest),
        digests(&manifest),
        "mode=max survives a round trip"
    );

    // The local state answers the next build without the import (it is gone).
    fs::remove_dir_all(&cache).unwrap();
    let log = check(&build(
        &second,
        &dir,
        &work.join("three.tar"),
        &[
            "--cache-from",
            &cache_from,
            "--metadata-file",
            metadata.to_str().unwrap(),
        ],
    ));
    assert!(
        step_results(&metadata, "[stage-1")
            .iter()
            .all(|r| r == "cached"),
        "{log}"
    );
    assert_eq!(probe.hits(), 3, "{log}");
    assert!(!log.contains("importing cache from"), "{log}");
}

#[test]
fn registry_cache_mode_min_keeps_the_final_layers_and_max_every_layer() {
    let Some((base, probe, dir)) = fixture() else {
        return;
    };
    let work = base.work.path();
    let state = fresh_state(work, "state-1");
    let min = format!("type=registry,ref=127.0.0.1:{}/app:min", base.port);
    let max = format!("127.0.0.1:{}/app:max", base.port);
    check(&build(
        &state,
        &dir,
        &work.join("one.tar"),
        &["--cache-to", &min],
    ));
    check(&build(
        &state,
        &dir,
        &work.join("one.tar"),
        &["--cache-to", &format!("type=registry,ref={max},mode=max")],
    ));
    assert_eq!(probe.hits(), 3);
    let manifest = |reference: &str| -> Value {
        let inspect = std::process::Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        assert!(
            inspect.status.success(),
            "{}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        serde_json::from_slice(&inspect.stdout).unwrap()
    };
    let image = skopeo_inspect(&work.join("one.tar"), false);
    let image_layers = image["Layers"].as_array().unwrap().clone();
    let min_layers: Vec<Value> = manifest(&format!("127.0.0.1:{}/app:min", base.port))["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].clone())
        .collect();
    assert_eq!(
        min_layers, image_layers,
        "mode=min: the image's layers only"
    );
    let max_layers = manifest(&max)["layers"].as_array().unwrap().len();
    assert_eq!(
        max_layers,
        image_layers.len() + 1,
        "mode=max adds the build stage's layer"
    );

    // The short form (a reference) imports from the registry.
    let second = fresh_state(work, "state-2");
    let log = check(&build(
        &second,
        &dir,
        &work.join("two.tar"),
        &["--cache-from", &max],
    ));
    assert_eq!(probe.hits(), 3, "{log}");
    for step in STEPS {
        assert!(step_cached(&log, step), "{step} not cached:\n{log}");
    }
    assert_eq!(
        image_digest(&work.join("one.tar")),
        image_digest(&work.join("two.tar"))
    );

    // With mode=min only the final result is reusable, but the records of the steps
    // before it stay: `COPY --from=build` matches by the build step's key and learns
    // the content it was keyed by, so the build stage (not in the cache) does not run
    // either, as in BuildKit.
    let third = fresh_state(work, "state-3");
    let log = check(&build(
        &third,
        &dir,
        &work.join("three.tar"),
        &["--cache-from", &min],
    ));
    assert_eq!(probe.hits(), 3, "{log}");
    assert!(step_cached(&log, "[build 2/2] RUN wget"), "{log}");
    assert!(step_cached(&log, "[stage-1 5/5] RUN wget"), "{log}");
    assert_eq!(
        image_digest(&work.join("one.tar")),
        image_digest(&work.join("three.tar"))
    );
}

#[test]
fn unusable_caches_warn_or_fail_clearly() {
    let Some((base, probe, dir)) = fixture() else {
        return;
    };
    let work = base.work.path();
    let closed = free_port();
    let unreachable = format!("type=registry,ref=127.0.0.1:{closed}/app:cache");
    let state = fresh_state(work, "state-1");

    // An export that fails fails the build, unless ignore-error=true.
    let output = build(
        &state,
        &dir,
        &work.join("one.tar"),
        &["--cache-to", &unreachable],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("exporting cache to type=registry"),
        "{stderr}"
    );
    assert!(stderr.contains("ignore-error=true"), "{stderr}");
    assert_eq!(probe.hits(), 3, "the export fails after the build");
    let log = check(&build(
        &state,
        &dir,
        &work.join("one.tar"),
        &["--cache-to", &format!("{unreachable},ignore-error=true")],
    ));
    assert!(log.contains("exporting cache to type=registry"), "{log}");

    // An import that cannot be read warns and the build goes on without it.
    let missing = work.join("no-cache");
    let second = fresh_state(work, "state-2");
    let log = check(&build(
        &second,
        &dir,
        &work.join("two.tar"),
        &[
            "--cache-from",
            &format!("type=local,src={}", missing.display()),
        ],
    ));
    assert!(log.contains("importing cache from type=local"), "{log}");
    assert!(!missing.exists(), "reading a cache creates nothing");
    let log = check(&build(
        &fresh_state(work, "state-3"),
        &dir,
        &work.join("two.tar"),
        &["--cache-from", &unreachable],
    ));
    assert!(log.contains("importing cache from type=registry"), "{log}");

    // A cache whose config is not what its digest says is not read: the build warns
    // and runs every step.
    let corrupt = export_local_cache(work, &dir, "state-4", "corrupt");
    let before = probe.hits();
    let (manifest, _) = local_cache(&corrupt);
    let config = manifest["config"]["digest"].as_str().unwrap();
    fs::write(cache_blob(&corrupt, config), r#"{"records":[]}"#).unwrap();
    let log = check(&build(
        &fresh_state(work, "state-5"),
        &dir,
        &work.join("two.tar"),
        &[
            "--cache-from",
            &format!("type=local,src={}", corrupt.display()),
        ],
    ));
    assert!(log.contains("invalid cache config"), "{log}");
    assert_eq!(probe.hits(), before + 3, "{log}");

    // Bad options are refused before any work, naming the option.
    let output = build(
        &state,
        &dir,
        &work.join("one.tar"),
        &["--cache-to", "type=local,dest=/tmp/x,mode=all"],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("mode=all"));
}

#[test]
fn a_cache_blob_with_a_wrong_digest_is_never_used() {
    let Some((base, probe, dir)) = fixture() else {
        return;
    };
    let work = base.work.path();
    let cache = export_local_cache(work, &dir, "state-1", "cache");
    assert_eq!(probe.hits(), 3);
    // Every layer blob of the cache now holds other bytes under its digest.
    let (manifest, _) = local_cache(&cache);
    let layers = manifest["layers"].as_array().unwrap();
    let replacement = fs::read(cache_blob(&cache, layers[0]["digest"].as_str().unwrap())).unwrap();
    for layer in layers.iter().skip(1) {
        fs::write(
            cache_blob(&cache, layer["digest"].as_str().unwrap()),
            &replacement,
        )
        .unwrap();
    }
    let out = work.join("out");
    let log = check(&kiln(
        &fresh_state(work, "state-2"),
        &[
            "build",
            "--progress=plain",
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
            "-o",
            &format!("type=local,dest={}", out.display()),
            dir.to_str().unwrap(),
        ],
    ));
    assert!(log.contains("cannot be used, running the step"), "{log}");
    assert_eq!(probe.hits(), 6, "every RUN ran again:\n{log}");
    assert_eq!(
        fs::read_to_string(out.join("copy")).unwrap(),
        "from the context\n"
    );
    assert_eq!(fs::read_to_string(out.join("two")).unwrap(), "two\n");
}

#[test]
fn an_inline_cache_rides_in_the_pushed_image() {
    let Some((base, probe, dir)) = fixture() else {
        return;
    };
    let work = base.work.path();
    let image = format!("127.0.0.1:{}/app:inline", base.port);
    let push = format!("type=image,name={image},push=true");
    let build_pushing = |state: &Path, args: &[&str]| {
        let mut all = vec!["build", "--progress=plain", "-o", push.as_str()];
        all.extend_from_slice(args);
        all.push(dir.to_str().unwrap());
        check(&kiln(state, &all))
    };
    build_pushing(
        &fresh_state(work, "state-1"),
        &["--cache-to", "type=inline"],
    );
    assert_eq!(probe.hits(), 3);
    // The config as stored (skopeo's `--config` drops fields it does not know).
    let fetch = |path: &str| -> Value {
        let output = std::process::Command::new("curl")
            .args(["-fsS", "-H"])
            .arg("Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
            .arg(format!("http://127.0.0.1:{}/v2/app/{path}", base.port))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let manifest = fetch("manifests/inline");
    let config = fetch(&format!(
        "blobs/{}",
        manifest["config"]["digest"].as_str().unwrap()
    ));
    assert!(config["moby.buildkit.cache.v0"].is_string(), "{config:#}");

    // The image is the cache: the final stage's steps are reused from it. The build
    // stage is not in the image, but `COPY --from=build` matches by the build step's
    // key (BuildKit's fast key), so that stage never runs either.
    let log = build_pushing(&fresh_state(work, "state-2"), &["--cache-from", &image]);
    assert_eq!(probe.hits(), 3, "{log}");
    for step in STEPS {
        assert!(step_cached(&log, step), "{step}:\n{log}");
    }
}

/// BuildKit v0.24 and kiln hit each other's cache: BuildKit's local export imported by
/// kiln runs no step, kiln's imported by BuildKit neither (the keys are BuildKit's, see
/// `kiln_solver::cache_key`).
#[test]
fn buildkit_and_kiln_hit_each_others_cache() {
    let _ = read_each_others_cache(|work, _, name| {
        let dir = work.join(name);
        (
            format!("type=local,dest={}", dir.display()),
            format!("type=local,src={}", dir.display()),
        )
    });
}

/// The same with a registry cache: a cache manifest in the registry the base image
/// comes from.
#[test]
fn buildkit_and_kiln_hit_each_others_registry_cache() {
    let _ = read_each_others_cache(|_, registry, name| {
        let options = format!("type=registry,ref={registry}/cache:{name}");
        (options.clone(), options)
    });
}

/// The check above for any backend: `cache(work, registry, name)` gives the export and
/// import options of a cache called `name` (`registry` is the loopback registry both
/// builders reach). `false` when it was skipped (BuildKit's binaries or other real
/// parts are missing).
pub(crate) fn read_each_others_cache(
    cache: impl Fn(&Path, &str, &str) -> (String, String),
) -> bool {
    if !tools_present() {
        return false;
    }
    let Some(buildctl) = kiln_test::oracle_tool("buildctl", "KILN_BUILDCTL") else {
        return false;
    };
    let base = BaseImage::publish();
    let registry = format!("127.0.0.1:{}", base.port);
    let Some(buildkitd) = kiln_test::Buildkitd::start(std::slice::from_ref(&registry)) else {
        return false;
    };
    let work = base.work.path();
    let dir = work.join("ctx");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("a.txt"), "a\n").unwrap();
    // An extended attribute: BuildKit's client sends it and its checksum counts it.
    rustix::fs::lsetxattr(
        dir.join("a.txt"),
        "user.kiln",
        b"tagged",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    // A git source, keyed by its commit as BuildKit keys it (with `.git` kept, by the
    // ref the default branch was listed under too), and a download, keyed by its name,
    // checksum and Last-Modified.
    let (_git_daemon, git_url) = serve_git_repository(work);
    let (_http_server, http_url) = serve_file(work, "h.txt", "over http\n");
    fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    fs::write(dir.join("sub/deeper/s.txt"), "s\n").unwrap();
    fs::write(dir.join("b.txt"), "b\n").unwrap();
    // A path, a directory, a wildcard and the whole context, each keyed by content.
    fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {registry}/busybox\nCOPY a.txt /a.txt\nCOPY sub/ /sub/\nCOPY *.txt /w/\nCOPY . /ctx/\nADD {git_url}#main /git/\nADD --keep-git-dir=true {git_url} /gitdir/\nADD {http_url} /h.txt\nRUN cat /a.txt /git/g.txt /h.txt > /b.txt\n"
        ),
    )
    .unwrap();
    let steps = [
        "COPY a.txt /a.txt",
        "COPY sub/ /sub/",
        "COPY *.txt /w/",
        "COPY . /ctx/",
        "ADD git://",
        "ADD --keep-git-dir=true git://",
        "ADD http://",
        "RUN cat /a.txt",
    ];
    let buildctl_build = |cache_flag: String| {
        let output = std::process::Command::new(&buildctl)
            .arg("--addr")
            .arg(buildkitd.address())
            .args(["build", "--progress=plain", "--frontend", "dockerfile.v0"])
            .arg(format!("--local=context={}", dir.display()))
            .arg(format!("--local=dockerfile={}", dir.display()))
            .arg(cache_flag)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{log}\n{}", buildkitd.log());
        log
    };

    let (export, import) = cache(work, &registry, "from-buildkit");
    buildctl_build(format!("--export-cache={export},mode=max"));
    let log = check(&build(
        &fresh_state(work, "state-1"),
        &dir,
        &work.join("one.tar"),
        &["--cache-from", &import],
    ));
    assert!(log.contains("importing cache manifest from type="), "{log}");
    assert!(
        !log.contains("importing cache from"),
        "BuildKit's cache is read:\n{log}"
    );
    for step in steps {
        assert!(
            step_cached(&log, step),
            "{step} hits BuildKit's cache:\n{log}"
        );
    }

    let (export, import) = cache(work, &registry, "from-kiln");
    check(&build(
        &fresh_state(work, "state-2"),
        &dir,
        &work.join("two.tar"),
        &["--cache-to", &format!("{export},mode=max")],
    ));
    // BuildKit forgets its own results first, so the import is what it reads.
    let pruned = std::process::Command::new(&buildctl)
        .arg("--addr")
        .arg(buildkitd.address())
        .args(["prune", "--all"])
        .output()
        .unwrap();
    assert!(pruned.status.success());
    // A cache BuildKit cannot read fails its build (no ignore-error).
    let log = buildctl_build(format!("--import-cache={import}"));
    // BuildKit shows a git source's resolution (it lists the remote each time) under
    // the ADD's name too: one of the steps so named is the cached ADD.
    let cached_as = |title: &str| {
        log.lines()
            .filter(|l| l.contains(title) && l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().next())
            .any(|id| log.lines().any(|l| l == format!("{id} CACHED")))
    };
    for step in steps {
        assert!(
            cached_as(step),
            "{step} hits kiln's cache in BuildKit:\n{log}"
        );
    }
    true
}

/// A base image from an OCI layout (a named context) is keyed as BuildKit keys it, by
/// its main manifest: BuildKit v0.24's cache of a build on it answers kiln's build on
/// the same layout, and the RUN on it does not run again.
#[test]
fn an_oci_layout_base_is_keyed_as_in_buildkit() {
    if !tools_present() {
        return;
    }
    let Some(buildctl) = kiln_test::oracle_tool("buildctl", "KILN_BUILDCTL") else {
        return;
    };
    let base = BaseImage::publish();
    let registry = format!("127.0.0.1:{}", base.port);
    let Some(buildkitd) = kiln_test::Buildkitd::start(std::slice::from_ref(&registry)) else {
        return;
    };
    let probe = Probe::start();
    let work = base.work.path();
    let layout = work.join("layout");
    // buildctl names the image by digest (buildx reads the tag on the client).
    let digest = kiln_test::copy_to_layout(&format!("{registry}/busybox"), &layout, "latest");
    let dir = work.join("ctx");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM base\nRUN wget -q -O /ran http://127.0.0.1:{}/run\n",
            probe.port
        ),
    )
    .unwrap();
    let cache = work.join("cache");
    let output = std::process::Command::new(&buildctl)
        .arg("--addr")
        .arg(buildkitd.address())
        .args(["build", "--progress=plain", "--frontend", "dockerfile.v0"])
        .arg(format!("--local=context={}", dir.display()))
        .arg(format!("--local=dockerfile={}", dir.display()))
        .arg(format!("--oci-layout=layout={}", layout.display()))
        .arg("--opt")
        .arg(format!("context:base=oci-layout://layout@{digest}"))
        .arg(format!(
            "--export-cache=type=local,dest={},mode=max",
            cache.display()
        ))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}\n{}", buildkitd.log());
    assert_eq!(probe.hits(), 1, "{log}");
    let log = check(&kiln(
        &fresh_state(work, "state"),
        &[
            "build",
            "--progress=plain",
            "--build-context",
            &format!("base=oci-layout://{}:latest", layout.display()),
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
            dir.to_str().unwrap(),
        ],
    ));
    assert_eq!(probe.hits(), 1, "the RUN hits BuildKit's cache:\n{log}");
    assert!(step_cached(&log, "RUN wget"), "{log}");
}

/// kiln's client lends a `type=local` cache directory to BuildKit v0.24's buildkitd
/// through its session's content store, as buildctl does: buildkitd writes the blobs
/// there and kiln tags index.json; another, empty buildkitd reads them back through the
/// same store and runs nothing; and the embedded engine reads the same directory.
#[test]
fn buildkitd_writes_and_reads_a_local_cache_through_kilns_client() {
    let Some((base, probe, dir)) = fixture() else {
        return;
    };
    let registry = format!("127.0.0.1:{}", base.port);
    let Some(first) = kiln_test::Buildkitd::start(std::slice::from_ref(&registry)) else {
        return;
    };
    let work = base.work.path();
    let cache = work.join("cache");
    let on = |buildkitd: &kiln_test::Buildkitd, state: &str, args: &[&str]| {
        let mut all = vec!["build", "--progress=plain", "--addr"];
        let address = buildkitd.address();
        all.push(&address);
        all.extend_from_slice(args);
        all.push(dir.to_str().unwrap());
        let output = kiln(&fresh_state(work, state), &all);
        assert!(
            output.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            buildkitd.log()
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    on(
        &first,
        "client-1",
        &[
            "--cache-to",
            &format!("type=local,dest={},mode=max", cache.display()),
        ],
    );
    assert_eq!(probe.hits(), 3);
    let (manifest, config) = local_cache(&cache);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.buildkit.cacheconfig.v0"
    );
    assert!(config["records"].as_array().is_some_and(|r| !r.is_empty()));
    for layer in manifest["layers"].as_array().unwrap() {
        assert!(cache_blob(&cache, layer["digest"].as_str().unwrap()).is_file());
    }

    let Some(second) = kiln_test::Buildkitd::start(std::slice::from_ref(&registry)) else {
        return;
    };
    let log = on(
        &second,
        "client-2",
        &[
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
        ],
    );
    assert_eq!(probe.hits(), 3, "no RUN executes:\n{log}");
    for step in STEPS.iter().skip(1) {
        assert!(step_cached(&log, step), "{step}:\n{log}");
    }

    let log = check(&build(
        &fresh_state(work, "embedded"),
        &dir,
        &work.join("embedded.tar"),
        &[
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
        ],
    ));
    assert_eq!(probe.hits(), 3, "no RUN executes:\n{log}");
}

/// `--output type=cacheonly` with an import, as a CI job that only warms or checks the
/// cache: the result is looked up, no blob is fetched (BuildKit's lazy import). Proven
/// by a cache whose layer blobs are gone: every step still hits, nothing runs.
#[test]
fn a_cacheonly_build_fetches_no_blob_of_an_import() {
    let Some((base, probe, dir)) = fixture() else {
        return;
    };
    let work = base.work.path();
    let cache = export_local_cache(work, &dir, "state-1", "cache");
    assert_eq!(probe.hits(), 3);
    let (manifest, _) = local_cache(&cache);
    for layer in manifest["layers"].as_array().unwrap() {
        fs::remove_file(cache_blob(&cache, layer["digest"].as_str().unwrap())).unwrap();
    }
    let log = check(&kiln(
        &fresh_state(work, "state-2"),
        &[
            "build",
            "--progress=plain",
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
            "--output",
            "type=cacheonly",
            dir.to_str().unwrap(),
        ],
    ));
    assert_eq!(probe.hits(), 3, "no RUN executes:\n{log}");
    assert!(step_cached(&log, "[stage-1 5/5] RUN wget"), "{log}");
    assert!(
        !log.contains("cannot be used"),
        "no blob was asked for:\n{log}"
    );
}

/// A git repository with one commit on `main`, served by `git daemon` on a free port:
/// the daemon (stopped when dropped) and the repository's `git://` URL.
fn serve_git_repository(work: &Path) -> (KillOnDrop, String) {
    kiln_test::serve_git(work, &[("g.txt", "from git\n")])
}

/// `name` holding `content`, served by Python's http.server on a free port (with a
/// Last-Modified header): the server (stopped when dropped) and the file's URL.
fn serve_file(work: &Path, name: &str, content: &str) -> (KillOnDrop, String) {
    let served = work.join("http-served");
    fs::create_dir_all(&served).unwrap();
    fs::write(served.join(name), content).unwrap();
    let (server, port) = serve_directory(&served);
    (server, format!("http://127.0.0.1:{port}/{name}"))
}

/// Bake passes a target's `cache-to` (string form) and `cache-from` (object form) on.
#[test]
fn bake_targets_export_and_import_their_cache() {
    let Some((base, probe, _context)) = fixture() else {
        return;
    };
    let work = base.work.path();
    fs::write(
        work.join("docker-bake.hcl"),
        r#"target "app" {
  context = "ctx"
  cache-to = ["type=local,dest=cache,mode=max"]
  cache-from = [{ type = "local", src = "cache" }]
  output = ["type=local,dest=out"]
}
"#,
    )
    .unwrap();
    let bake = |state: &Path| {
        check(
            &std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
                .env("KILN_ROOT", state)
                .current_dir(work)
                .args(["bake", "--progress=plain", "app"])
                .output()
                .unwrap(),
        )
    };
    // The first has nothing to import yet: it warns, builds and exports.
    let log = bake(&fresh_state(work, "state-1"));
    assert!(log.contains("importing cache from type=local"), "{log}");
    assert_eq!(probe.hits(), 3);
    assert!(work.join("cache/index.json").is_file());
    let log = bake(&fresh_state(work, "state-2"));
    assert_eq!(probe.hits(), 3, "{log}");
    assert_eq!(fs::read_to_string(work.join("out/two")).unwrap(), "two\n");
}

/// `compression=zstd,force-compression=true`: the cache's layers are zstd (the image
/// export's gzip blobs recompressed), and an import unpacks them.
#[test]
fn a_zstd_cache_round_trips() {
    let Some((base, probe, dir)) = fixture() else {
        return;
    };
    let work = base.work.path();
    let cache = work.join("zstd");
    check(&build(
        &fresh_state(work, "state-1"),
        &dir,
        &work.join("one.tar"),
        &[
            "--cache-to",
            &format!(
                "type=local,dest={},mode=max,compression=zstd,force-compression=true",
                cache.display()
            ),
        ],
    ));
    let (manifest, _) = local_cache(&cache);
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
            "{manifest:#}"
        );
    }
    let out = work.join("out");
    let log = check(&kiln(
        &fresh_state(work, "state-2"),
        &[
            "build",
            "--progress=plain",
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
            "-o",
            &format!("type=local,dest={}", out.display()),
            dir.to_str().unwrap(),
        ],
    ));
    assert_eq!(probe.hits(), 3, "{log}");
    assert_eq!(fs::read_to_string(out.join("two")).unwrap(), "two\n");
}
