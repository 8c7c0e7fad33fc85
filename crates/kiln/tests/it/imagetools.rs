//! `kiln imagetools`: two single-platform pushes merged into one index (also into
//! another repository, which the sources' blobs are copied to), read back by skopeo;
//! `--dry-run`, `--append`, and `inspect` (`--raw` as stored, and the summary).

use std::process::Command;

use serde_json::Value;

use crate::support::{check, kiln, skopeo_remote, skopeo_remote_with, tools_present};

fn imagetools(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("imagetools")
        .args(args)
        .output()
        .unwrap()
}

fn architectures(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn create_merges_single_platform_pushes() {
    if !tools_present() {
        return;
    }
    if !std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
        kiln_test::skip("qemu-user-static's handlers are not registered in binfmt_misc");
        return;
    }
    let registry = kiln_test::Registry::start();
    let Some(base) = registry.push_busybox_multiarch() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let context = work.path().join("context");
    fs_err::create_dir_all(&context).unwrap();
    fs_err::write(
        context.join("Dockerfile"),
        format!("FROM {base}\nRUN uname -m > /arch\n"),
    )
    .unwrap();
    let host = registry.host();
    for arch in ["amd64", "arm64"] {
        check(&kiln(
            &state,
            &[
                "build",
                "--platform",
                &format!("linux/{arch}"),
                "-o",
                &format!("type=image,name={host}/app:{arch},push=true,oci-mediatypes=true"),
                context.to_str().unwrap(),
            ],
        ));
    }
    let amd64 = format!("{host}/app:amd64");
    let arm64 = format!("{host}/app:arm64");

    // --dry-run prints the index without pushing it.
    let dry = imagetools(&["create", "--dry-run", &amd64, &arm64]);
    assert!(dry.status.success(), "{dry:?}");
    let printed: Value = serde_json::from_slice(&dry.stdout).unwrap();
    // OCI manifests make an OCI index (Docker ones a manifest list).
    assert_eq!(
        printed["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(architectures(&printed), ["amd64", "arm64"]);

    // Into the same repository, and into another one the blobs are copied to.
    for target in [format!("{host}/app:multi"), format!("{host}/other:multi")] {
        let created = imagetools(&["create", "-t", &target, &amd64, &arm64]);
        assert!(created.status.success(), "{created:?}");
        let index = skopeo_remote(&target, Some("--raw"));
        assert_eq!(index, printed);
        for arch in ["amd64", "arm64"] {
            let config = skopeo_remote_with(&target, &["--override-arch", arch, "--", "--config"]);
            assert_eq!(config["architecture"], arch);
        }
    }

    // --append adds to what the tag has; an index annotation goes on the index.
    let single = format!("{host}/app:grown");
    assert!(
        imagetools(&["create", "-t", &single, &amd64])
            .status
            .success()
    );
    let grown = imagetools(&[
        "create",
        "--append",
        "-t",
        &single,
        "--annotation",
        "index:org.opencontainers.image.authors=kiln",
        &arm64,
    ]);
    assert!(grown.status.success(), "{grown:?}");
    let index = skopeo_remote(&single, Some("--raw"));
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        index["annotations"]["org.opencontainers.image.authors"],
        "kiln"
    );
    assert_eq!(architectures(&index), ["amd64", "arm64"]);

    // inspect: --raw as stored (skopeo's bytes), and the summary.
    let raw = imagetools(&["inspect", "--raw", &single]);
    let stored = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{single}"))
        .output()
        .unwrap();
    assert_eq!(raw.stdout, stored.stdout);
    let summary = imagetools(&["inspect", &single]);
    let text = String::from_utf8_lossy(&summary.stdout);
    assert!(
        text.starts_with(&format!(
            "Name:      {single}\nMediaType: application/vnd.oci.image.index.v1+json\nDigest:    sha256:"
        )),
        "{text}"
    );
    assert!(text.contains("\n  Platform:  linux/arm64\n"), "{text}");

    // What buildx v0.28 prints for the same commands, where it is built.
    let Some(buildx) = kiln_test::oracle_tool("docker-buildx", "KILN_BUILDX") else {
        return;
    };
    for args in [
        vec!["inspect", single.as_str()],
        vec!["create", "--dry-run", amd64.as_str(), arm64.as_str()],
    ] {
        let theirs = Command::new(&buildx)
            .arg("imagetools")
            .args(&args)
            .output()
            .unwrap();
        assert!(theirs.status.success(), "{theirs:?}");
        assert_eq!(
            String::from_utf8_lossy(&imagetools(&args).stdout),
            String::from_utf8_lossy(&theirs.stdout),
            "{args:?}"
        );
    }
}
