//! Nothing escapes its root (issue #19): hostile tar entries (`..`, absolute paths,
//! writes through a symlink pointing out, hard links to outside files, whiteouts of
//! outside paths) in an image layer and in an archive ADD unpacks, and symlink chains
//! out of a stage that COPY follows. Each aims at a directory outside every root; after
//! the build it is untouched and no output holds what it holds.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Command;

use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::support::{BaseImage, check, kiln, tools_present};

/// What the outside directory's file holds: no output may hold it.
const SECRET: &str = "host file, never to be read\n";

/// A tar (gzip-compressed when `gzip`) written by Python's tarfile, which writes any
/// name it is given, with every escape aimed at `outside`; hard links aimed out find a
/// decoy of the same path inside the root.
fn hostile_tar(path: &Path, outside: &Path, gzip: bool) {
    let outside = outside.display();
    let script = format!(
        r#"
import io, tarfile, sys
mode = "w:gz" if {gzip} else "w"
with tarfile.open(sys.argv[1], mode, format=tarfile.PAX_FORMAT) as tar:
    def add(name, kind=tarfile.REGTYPE, data=b"escaped\n", link=""):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    add("inside.txt", data=b"inside\n")
    # What the hard links name, inside the root: links must resolve to it (a link to a
    # path the archive does not have fails the layer, as in containerd).
    add("{outside}/secret", data=b"decoy\n")
    add("../../../../../../../..{outside}/dotdot")
    add("{outside}/absolute")
    add("out", tarfile.SYMTYPE, link="{outside}")
    add("out/through-symlink")
    add("up", tarfile.SYMTYPE, link="../../../../../../../..{outside}")
    add("up/through-relative-symlink")
    add("hard", tarfile.LNKTYPE, link="{outside}/secret")
    add("hard-dotdot", tarfile.LNKTYPE, link="../../../../../../../..{outside}/secret")
    add(".wh.secret")
    add("up/.wh.secret")
    add("out/.wh..wh..opq")
"#,
        gzip = if gzip { "True" } else { "False" },
    );
    let made = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
}

/// An OCI layout at `dir` whose one image (tag `1`) is the layer `layer` (gzip).
fn layout_with_layer(dir: &Path, layer: &Path) {
    let blobs = dir.join("blobs/sha256");
    fs_err::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        fs_err::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let compressed = fs_err::read(layer).unwrap();
    let uncompressed = {
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(compressed.as_slice()),
            &mut out,
        )
        .unwrap();
        out
    };
    let diff_id: String = Sha256::digest(&uncompressed)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (layer_digest, layer_size) = put(&compressed);
    let config = json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    fs_err::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "1"},
        }],
    });
    fs_err::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// The outside directory holds exactly its one file, unchanged and linked once.
fn assert_untouched(outside: &Path) {
    let names: Vec<String> = fs_err::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["secret"], "written outside every root");
    let secret = outside.join("secret");
    assert_eq!(fs_err::read_to_string(&secret).unwrap(), SECRET);
    assert_eq!(fs_err::metadata(&secret).unwrap().nlink(), 1, "hard-linked");
}

/// No file under `dir` holds the outside file's content.
fn assert_no_secret_under(dir: &Path) {
    for entry in walk(dir) {
        if entry.is_file() && !entry.is_symlink() {
            let bytes = fs_err::read(&entry).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(SECRET.trim()),
                "{} holds the outside file",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs_err::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn hostile_layers_archives_and_symlinks_stay_in_their_roots() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let work = base.work.path();
    let outside = work.join("outside");
    fs_err::create_dir_all(&outside).unwrap();
    fs_err::write(outside.join("secret"), SECRET).unwrap();

    let ctx = work.join("escapes");
    fs_err::create_dir_all(&ctx).unwrap();
    hostile_tar(&ctx.join("hostile.tar"), &outside, false);
    let layer = work.join("layer.tar.gz");
    hostile_tar(&layer, &outside, true);
    let layout = work.join("layout");
    layout_with_layer(&layout, &layer);
    fs_err::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox AS links\n\
             RUN ln -s /b /a && ln -s ../../../../../../..{outside} /b && ln -s /a/secret /c\n\
             FROM scratch\n\
             ADD hostile.tar /added/\n\
             COPY --from=evil / /layer/\n\
             COPY --from=links /a /chain/\n",
            port = base.port,
            outside = outside.display(),
        ),
    )
    .unwrap();
    let out = work.join("out");
    let output = kiln(
        &base.state,
        &[
            "build",
            "--progress=plain",
            "--build-context",
            &format!("evil=oci-layout://{}:1", layout.display()),
            "-o",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ],
    );
    // The chain out of the `links` stage resolves inside it, where nothing is: BuildKit
    // fails that COPY as "not found"; either way nothing may come from outside.
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_untouched(&outside);
    if output.status.success() {
        assert_no_secret_under(&out);
    } else {
        assert!(log.contains("not found"), "{log}");
        // Without the chain, the build passes and shows where each escape landed.
        let dockerfile = fs_err::read_to_string(ctx.join("Dockerfile")).unwrap();
        fs_err::write(
            ctx.join("Dockerfile"),
            dockerfile.replace("COPY --from=links /a /chain/\n", ""),
        )
        .unwrap();
        check(&kiln(
            &base.state,
            &[
                "build",
                "--progress=plain",
                "--build-context",
                &format!("evil=oci-layout://{}:1", layout.display()),
                "-o",
                &format!("type=local,dest={}", out.display()),
                ctx.to_str().unwrap(),
            ],
        ));
        assert_untouched(&outside);
        assert_no_secret_under(&out);
    }
    // What the archive and the layer wrote stayed inside: entries with `..` or a leading
    // `/` land under the root, writes through symlinks land where the link resolves
    // inside the root.
    for root in ["added", "layer"] {
        let root = out.join(root);
        assert_eq!(
            fs_err::read_to_string(root.join("inside.txt")).unwrap(),
            "inside\n"
        );
        // The hard links took the decoy inside the root, not the outside file.
        for link in ["hard", "hard-dotdot"] {
            assert_eq!(fs_err::read_to_string(root.join(link)).unwrap(), "decoy\n");
        }
        // Clamped at the root, as containerd clamps them: `..` and `/` land inside.
        for name in ["absolute", "dotdot"] {
            assert!(
                walk(&root).iter().any(|p| p.ends_with(name)),
                "{name} is not inside: {:?}",
                walk(&root)
            );
        }
    }
    assert_no_secret_under(&base.state.join("content"));
    kiln_test::reliability_figure(
        "escapes",
        "hostile tar entries (.., absolute, through absolute and relative symlinks, hard links out, whiteouts out) in a layer and an ADD archive, and a symlink chain out of a stage: escapes tried, escaped",
        "17 (8 per tar, 1 chain), 0",
    );
}

/// A remote cache whose layer was swapped for a hostile tar (digests made consistent,
/// so the import takes it): a build importing it unpacks that layer as its RUN's
/// result, and nothing lands outside the state's own layer.
#[test]
fn a_hostile_layer_in_an_imported_cache_stays_in_its_root() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let work = base.work.path();
    let outside = work.join("outside");
    fs_err::create_dir_all(&outside).unwrap();
    fs_err::write(outside.join("secret"), SECRET).unwrap();
    let ctx = work.join("cached");
    fs_err::create_dir_all(&ctx).unwrap();
    fs_err::write(
        ctx.join("Dockerfile"),
        format!("FROM 127.0.0.1:{}/busybox\nRUN echo hi > /hi\n", base.port),
    )
    .unwrap();
    let cache = work.join("cache");
    check(&kiln(
        &base.state,
        &[
            "build",
            "--progress=plain",
            "--cache-to",
            &format!(
                "type=local,dest={},mode=max,compression=uncompressed",
                cache.display()
            ),
            ctx.to_str().unwrap(),
        ],
    ));
    let hostile = work.join("hostile.tar");
    hostile_tar(&hostile, &outside, false);
    swap_last_layer(&cache, &fs_err::read(&hostile).unwrap());

    let fresh = work.join("fresh");
    let out = work.join("out");
    let log = check(&kiln(
        &fresh,
        &[
            "build",
            "--progress=plain",
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
            "-o",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ],
    ));
    assert!(
        crate::support::step_cached(&log, "RUN echo hi"),
        "the hostile layer was not imported:\n{log}"
    );
    assert_untouched(&outside);
    assert_no_secret_under(&out);
    assert_eq!(
        fs_err::read_to_string(out.join("inside.txt")).unwrap(),
        "inside\n"
    );
    kiln_test::reliability_figure(
        "escapes",
        "a hostile tar swapped into an imported cache's layer (8 escapes, digests consistent): imported, escaped",
        "yes, 0",
    );
}

/// Replaces the last layer of a local cache (an OCI layout) with `layer`, rewriting
/// the digests and sizes that name it so the cache stays consistent.
fn swap_last_layer(cache: &Path, layer: &[u8]) {
    let blobs = cache.join("blobs/sha256");
    let put = |bytes: &[u8]| -> String {
        let hex: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        fs_err::write(blobs.join(&hex), bytes).unwrap();
        format!("sha256:{hex}")
    };
    let read =
        |digest: &str| fs_err::read(blobs.join(digest.trim_start_matches("sha256:"))).unwrap();
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(cache.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let mut manifest: serde_json::Value = serde_json::from_slice(&read(&manifest_digest)).unwrap();
    let old = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let new = put(layer);
    let last = manifest["layers"]
        .as_array_mut()
        .unwrap()
        .last_mut()
        .unwrap();
    last["digest"] = json!(new);
    last["size"] = json!(layer.len());
    last["annotations"]["containerd.io/uncompressed"] = json!(new);
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let config = String::from_utf8(read(&config_digest))
        .unwrap()
        .replace(&old, &new);
    manifest["config"]["digest"] = json!(put(config.as_bytes()));
    manifest["config"]["size"] = json!(config.len());
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    index["manifests"][0]["digest"] = json!(put(&manifest_bytes));
    index["manifests"][0]["size"] = json!(manifest_bytes.len());
    fs_err::write(
        cache.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}
