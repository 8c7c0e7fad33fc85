//! Layers and image configs as BuildKit writes them: a reproducible image whose digest is
//! the one BuildKit v0.24.0 gives for the same Dockerfile and context, and one build
//! exported with and without `rewrite-timestamp`, read back by umoci and tar.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{BaseImage, check, tools_present};

/// The image of an OCI archive: its manifest digest, manifest and config.
struct Archive {
    dir: tempfile::TempDir,
    digest: String,
    manifest: Value,
    config: Value,
}

impl Archive {
    fn open(archive: &Path) -> Archive {
        let dir = tempfile::tempdir().unwrap();
        let untar = Command::new("tar")
            .arg("-C")
            .arg(dir.path())
            .arg("-xf")
            .arg(archive)
            .status()
            .unwrap();
        assert!(untar.success());
        let index: Value =
            serde_json::from_slice(&fs_err::read(dir.path().join("index.json")).unwrap()).unwrap();
        let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
        let blob = |digest: &str| {
            fs_err::read(
                dir.path()
                    .join("blobs/sha256")
                    .join(digest.trim_start_matches("sha256:")),
            )
            .unwrap()
        };
        let manifest: Value = serde_json::from_slice(&blob(&digest)).unwrap();
        let config: Value =
            serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        Archive {
            dir,
            digest,
            manifest,
            config,
        }
    }

    /// `tar tv` of layer `i` (uncompressed or gzip): `MODE OWNER NAME` per entry.
    fn entries(&self, i: usize) -> Vec<String> {
        let digest = self.manifest["layers"][i]["digest"].as_str().unwrap();
        let path = self
            .dir
            .path()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        let out = Command::new("tar")
            .arg("--numeric-owner")
            .arg("-tvf")
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {} {}", f[0], f[1], f[5..].join(" "))
            })
            .collect()
    }
}

fn write(path: &Path, content: &str, mode: u32, mtime: Option<i64>) {
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    fs_err::write(path, content).unwrap();
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if let Some(mtime) = mtime {
        touch(path, mtime);
    }
}

fn touch(path: &Path, mtime: i64) {
    let status = Command::new("touch")
        .arg("-d")
        .arg(format!("@{mtime}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn mtime(path: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt as _;
    fs_err::symlink_metadata(path).unwrap().mtime()
}

/// The manifest digest BuildKit v0.24.0 gives for the Dockerfile and context below,
/// made with
///
/// ```text
/// buildctl build --no-cache --frontend dockerfile.v0 --local context=CTX \
///   --local dockerfile=CTX --opt build-arg:SOURCE_DATE_EPOCH=1700000000 \
///   --output type=oci,dest=out.tar,name=x,rewrite-timestamp=true,compression=uncompressed
/// ```
///
/// on the same context (busybox is the host's `busybox-static`, which only runs the
/// first stage: the image holds none of its bytes).
const BUILDKIT_DIGEST: &str =
    "sha256:8ea063786025f2bbf317d4cba879ef128467e44a00a78629615a200a3a30e03b";

const REPRODUCIBLE_DOCKERFILE: &str = r#"FROM scratch AS tools
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "set -e; b=/bin/busybox; $b mkdir -p /out/a/b/c /out/long/$($b printf 'd%.0s' $($b seq 1 120)) /out/caf\u00e9; echo hi > /out/a/b/f; $b ln /out/a/b/f /out/a/hl; $b ln -s ../b/f /out/a/b/c/sym; $b mkfifo /out/a/fifo; $b touch -d @1500000000 /out/a/old; $b chmod 4755 /out/a/old; $b touch /out/long/$($b printf 'd%.0s' $($b seq 1 120))/$($b printf 'f%.0s' $($b seq 1 60)) /out/long/$($b printf 'x%.0s' $($b seq 1 130)); echo x > '/out/caf\u00e9/na\u00efve'"]
RUN ["/bin/busybox", "sh", "-c", "set -e; b=/bin/busybox; $b rm -rf /out/a/b && $b mkdir /out/a/b && echo new > /out/a/b/new && $b rm /out/a/hl"]

FROM scratch
COPY --from=tools /out/ /
COPY files/ /files/
COPY --chmod=700 files/sub /etc/sub/
COPY --link empty /a/
ENV A="x<y>&z"
LABEL "k&"="<v>"
CMD ["sh", "-c", "echo <&>"]
"#;

/// `SOURCE_DATE_EPOCH` with `rewrite-timestamp=true,compression=uncompressed`: the
/// manifest (so the config and every layer) is byte for byte BuildKit's. The layers
/// hold hardlinks, a symlink, a fifo, a set-uid file older than the epoch, names too
/// long for a tar header and not ASCII, a directory removed and made again (whiteouts),
/// context directories whose times are kept, a `--link` layer whose one directory is
/// also below it (recorded: the layer is the difference from what it was made on, not
/// from what it is stacked on); the config has `<`, `>` and `&`, which Go escapes, and
/// fields in Go's order.
#[test]
fn reproducible_image_is_buildkit_s_byte_for_byte() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    fs_err::create_dir_all(&ctx).unwrap();
    fs_err::write(ctx.join("Dockerfile"), REPRODUCIBLE_DOCKERFILE).unwrap();
    let busybox = Command::new("sh")
        .args(["-c", "command -v busybox"])
        .output()
        .unwrap();
    let busybox = String::from_utf8(busybox.stdout).unwrap();
    fs_err::copy(busybox.trim(), ctx.join("busybox")).unwrap();
    let files = ctx.join("files");
    write(&files.join("one"), "one\n", 0o644, None);
    write(
        &files.join("sub/deep"),
        "deep\n",
        0o644,
        Some(1_800_000_000),
    );
    fs_err::hard_link(files.join("one"), files.join("one-link")).unwrap();
    std::os::unix::fs::symlink("one", files.join("one-sym")).unwrap();
    touch(&files.join("one"), 1_600_000_000);
    for dir in [&files, &files.join("sub")] {
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    touch(&files.join("sub"), 1_650_000_000);
    fs_err::create_dir(ctx.join("empty")).unwrap();
    fs_err::set_permissions(ctx.join("empty"), std::fs::Permissions::from_mode(0o755)).unwrap();

    let archive = work.path().join("out.tar");
    let output = format!(
        "type=oci,dest={},name=x,rewrite-timestamp=true,compression=uncompressed",
        archive.display()
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .env("KILN_ROOT", work.path().join("state"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "--progress=plain", "--no-cache", "-o", &output])
        .arg(&ctx);
    check(&command.output().unwrap());
    let image = Archive::open(&archive);
    assert_eq!(
        image.digest, BUILDKIT_DIGEST,
        "manifest {}\nconfig {}",
        image.manifest, image.config
    );
}

/// One build exported three times: with `rewrite-timestamp` the new files' times are
/// clamped to the epoch, without it they are the files' own, a second rewrite gives the
/// first one's bytes and another epoch other bytes (a clamped blob is a conversion for
/// one epoch, never the layer's blob for another export). A RUN leaves no `etc/` in its
/// layer although runc made mount points there (removed after the step).
#[test]
fn rewrite_timestamp_and_plain_exports_of_one_build() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("times");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\n\
             COPY old.txt new.txt /t/\n\
             RUN mkdir -p /r && echo run > /r/f\n"
        ),
    )
    .unwrap();
    write(
        &project.join("old.txt"),
        "old\n",
        0o644,
        Some(1_600_000_000),
    );
    write(
        &project.join("new.txt"),
        "new\n",
        0o644,
        Some(1_800_000_000),
    );

    let export = |name: &str, options: &str| {
        let archive = work.path().join(format!("{name}.tar"));
        let output = format!("type=oci,dest={},name=img:1{options}", archive.display());
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
        command
            .env("KILN_ROOT", state)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["build", "--progress=plain", "-o", &output])
            .arg(&project);
        check(&command.output().unwrap());
        let rootfs =
            crate::support::umoci_unpack(&archive, &work.path().join(format!("unpacked-{name}")));
        (Archive::open(&archive), rootfs)
    };

    let (rewritten, rootfs) = export("rewritten", ",rewrite-timestamp=true");
    assert_eq!(mtime(&rootfs.join("t/old.txt")), 1_600_000_000);
    assert_eq!(mtime(&rootfs.join("t/new.txt")), 1_700_000_000);
    assert_eq!(mtime(&rootfs.join("r/f")), 1_700_000_000);
    let layers = rewritten.manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for layer in &layers[1..] {
        assert_eq!(
            layer["annotations"]["buildkit/rewritten-timestamp"], "1700000000",
            "{layer}"
        );
    }
    assert_eq!(layers[0].get("annotations"), None, "the base layer is kept");
    // The base image has no /dev, /proc or /sys: runc makes them and they stay, as in
    // BuildKit (its stub cleaner removes only /etc/hosts, /etc/resolv.conf and the
    // step's own mounts). /etc, where the removed stubs were, is no part of the layer.
    assert_eq!(
        rewritten.entries(2),
        [
            "drwxr-xr-x 0/0 dev/",
            "drwxr-xr-x 0/0 proc/",
            "drwxr-xr-x 0/0 r/",
            "-rw-r--r-- 0/0 r/f",
            "drwxr-xr-x 0/0 sys/"
        ],
    );

    let (plain, rootfs) = export("plain", "");
    assert_eq!(mtime(&rootfs.join("t/old.txt")), 1_600_000_000);
    assert_eq!(mtime(&rootfs.join("t/new.txt")), 1_800_000_000);
    assert!(mtime(&rootfs.join("r/f")) > 1_700_000_000);
    assert!(
        plain.manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l.get("annotations").is_none()),
        "{}",
        plain.manifest
    );
    assert_ne!(plain.config["rootfs"], rewritten.config["rootfs"]);

    let (again, _) = export("again", ",rewrite-timestamp=true");
    assert_eq!(again.digest, rewritten.digest);

    let (other, rootfs) = export(
        "other-epoch",
        ",rewrite-timestamp=true,source-date-epoch=1650000000",
    );
    assert_eq!(mtime(&rootfs.join("t/old.txt")), 1_600_000_000);
    assert_eq!(mtime(&rootfs.join("t/new.txt")), 1_650_000_000);
    assert_eq!(
        other.manifest["layers"][1]["annotations"]["buildkit/rewritten-timestamp"],
        "1650000000"
    );
}
