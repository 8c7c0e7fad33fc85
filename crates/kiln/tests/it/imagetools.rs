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

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(bytes);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Pushes `bytes` as a blob of `repo` (`host/name`); its descriptor.
fn push_blob(
    registry: &kiln_registry::RegistryClient,
    repo: &str,
    media: &str,
    bytes: &[u8],
) -> Value {
    let reference: kiln_oci::Reference = repo.parse().unwrap();
    let digest = sha256(bytes);
    registry
        .push_blob(
            &reference,
            &digest,
            bytes.len() as u64,
            &mut &bytes[..],
            None,
        )
        .unwrap();
    serde_json::json!({"mediaType": media, "digest": digest, "size": bytes.len()})
}

fn push_manifest(
    registry: &kiln_registry::RegistryClient,
    repo: &str,
    tag: &str,
    media: &str,
    bytes: &[u8],
) -> Value {
    let reference: kiln_oci::Reference = repo.parse().unwrap();
    registry
        .push_manifest(&reference, tag, media, bytes)
        .unwrap();
    serde_json::json!({"mediaType": media, "digest": sha256(bytes), "size": bytes.len()})
}

/// An image for each of amd64 and arm64, each with an attestation manifest holding an
/// SPDX SBOM (plain in-toto) and a SLSA provenance (in a DSSE envelope), pushed as
/// one index (`:multi`), and the amd64 image alone (`:single`). Returns both names.
fn push_attested_images(host: &str) -> (String, String) {
    use base64::Engine as _;
    let registry = kiln_registry::RegistryClient::new();
    let repo = format!("{host}/attested");
    let oci_manifest = "application/vnd.oci.image.manifest.v1+json";
    let mut manifests = Vec::new();
    let mut single = String::new();
    for arch in ["amd64", "arm64"] {
        let layer = push_blob(
            &registry,
            &repo,
            "application/vnd.oci.image.layer.v1.tar",
            format!("layer {arch}").as_bytes(),
        );
        // Keys out of Go's order, a fraction with trailing zeros, characters Go escapes
        // and a key OCI's Image has not: printed as buildx decodes and encodes it.
        let config = format!(
            r#"{{"rootfs":{{"diff_ids":["{}"],"type":"layers"}},"config":{{"Labels":{{"k":"v"}},"Cmd":["sh"],"Env":["A=b<c"]}},"os":"linux","architecture":"{arch}","created":"2024-01-02T03:04:05.100000000Z","history":[{{"created_by":"COPY x","created":"2024-01-02T03:04:05Z","empty_layer":false}}],"extra":1}}"#,
            layer["digest"].as_str().unwrap()
        );
        let config = push_blob(
            &registry,
            &repo,
            "application/vnd.oci.image.config.v1+json",
            config.as_bytes(),
        );
        let image = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci_manifest,
            "config": config,
            "layers": [layer],
        }))
        .unwrap();
        let mut descriptor = push_manifest(&registry, &repo, &sha256(&image), oci_manifest, &image);
        if arch == "amd64" {
            push_manifest(&registry, &repo, "single", oci_manifest, &image);
            single = format!("{repo}:single");
        }
        let statement = |predicate_type: &str, predicate: Value| {
            serde_json::to_vec(&serde_json::json!({
                "_type": "https://in-toto.io/Statement/v0.1",
                "predicateType": predicate_type,
                "subject": [{"name": "x", "digest": {"sha256": descriptor["digest"].as_str().unwrap()[7..].to_owned()}}],
                "predicate": predicate,
            }))
            .unwrap()
        };
        let spdx = statement(
            "https://spdx.dev/Document",
            serde_json::json!({"spdxVersion": "SPDX-2.3", "name": format!("sbom-{arch}"), "packages": [{"name": "busybox", "versionInfo": "1.36"}]}),
        );
        let mut sbom = push_blob(&registry, &repo, "application/vnd.in-toto+json", &spdx);
        sbom["annotations"] =
            serde_json::json!({"in-toto.io/predicate-type": "https://spdx.dev/Document"});
        let slsa = statement(
            "https://slsa.dev/provenance/v0.2",
            serde_json::json!({"buildType": "https://mobyproject.org/buildkit@v1", "builder": {"id": ""}, "metadata": {"reproducible": false, "count": 2.5}}),
        );
        let envelope = serde_json::to_vec(&serde_json::json!({
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64::engine::general_purpose::STANDARD.encode(&slsa),
            "signatures": [],
        }))
        .unwrap();
        let mut provenance = push_blob(
            &registry,
            &repo,
            "application/vnd.in-toto.provenance+dsse",
            &envelope,
        );
        provenance["annotations"] =
            serde_json::json!({"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"});
        let empty = push_blob(
            &registry,
            &repo,
            "application/vnd.oci.image.config.v1+json",
            b"{}",
        );
        let attestation = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci_manifest,
            "config": empty,
            "layers": [sbom, provenance],
        }))
        .unwrap();
        let mut attestation = push_manifest(
            &registry,
            &repo,
            &sha256(&attestation),
            oci_manifest,
            &attestation,
        );
        attestation["annotations"] = serde_json::json!({
            "vnd.docker.reference.digest": descriptor["digest"],
            "vnd.docker.reference.type": "attestation-manifest",
        });
        attestation["platform"] = serde_json::json!({"architecture": "unknown", "os": "unknown"});
        descriptor["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
        manifests.push(descriptor);
        manifests.push(attestation);
    }
    let index_media = "application/vnd.oci.image.index.v1+json";
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": index_media,
        "manifests": manifests,
        "annotations": {"org.opencontainers.image.created": "2024-01-02T03:04:05Z"},
    }))
    .unwrap();
    push_manifest(&registry, &repo, "multi", index_media, &index);
    (format!("{repo}:multi"), single)
}

/// `inspect --format`: buildx's template data (`.Name`, `.Manifest`, `.Image`, `.SBOM`,
/// `.Provenance`; a map by platform for an index of several), `json` as buildx writes
/// it, `range`, and a `{{.Manifest…}}` template printing the summary; the same bytes
/// as buildx v0.28 where it is built.
#[test]
fn inspect_format_templates() {
    if !tools_present() {
        return;
    }
    let registry = kiln_test::Registry::start();
    let (multi, single) = push_attested_images(&registry.host());
    let format = |template: &str, name: &str| -> String {
        let output = imagetools(&["inspect", "--format", template, name]);
        assert!(output.status.success(), "{template}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };

    assert_eq!(format("{{.Name}}", &multi), multi);
    let manifest: Value = serde_json::from_str(&format("{{json .Manifest}}", &multi)).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["manifests"].as_array().unwrap().len(), 4);
    assert!(manifest["digest"].as_str().unwrap().starts_with("sha256:"));
    let image = format("{{json .Image}}", &multi);
    assert!(
        image.starts_with("{\n  \"linux/amd64\": {\n    \"created\": \"2024-01-02T03:04:05.1Z\",\n    \"architecture\": \"amd64\",\n    \"os\": \"linux\",\n    \"config\": {\n      \"Env\": [\n        \"A=b\\u003cc\"\n      ],\n      \"Cmd\": [\n"),
        "{image}"
    );
    assert!(!image.contains("extra"), "{image}");
    assert_eq!(
        format(
            "{{range $p, $i := .Image}}{{$p}}={{$i.Architecture}} {{$i.Config.Labels}};{{end}}",
            &multi
        ),
        "linux/amd64=amd64 map[k:v];linux/arm64=arm64 map[k:v];"
    );
    let sbom: Value = serde_json::from_str(&format("{{json .SBOM}}", &multi)).unwrap();
    assert_eq!(sbom["linux/arm64"]["SPDX"]["name"], "sbom-arm64");
    let provenance: Value = serde_json::from_str(&format("{{json .Provenance}}", &multi)).unwrap();
    assert_eq!(
        provenance["linux/amd64"]["SLSA"]["buildType"],
        "https://mobyproject.org/buildkit@v1"
    );
    assert_eq!(
        format(
            "{{range .Manifest.Manifests}}{{.Platform.Architecture}} {{end}}",
            &multi
        ),
        "amd64 unknown arm64 unknown "
    );
    // One image: `.Image` is its config, and no attestation is an empty stub.
    assert_eq!(
        format("{{.Image.Architecture}} {{.Image.Config.Cmd}}", &single),
        "amd64 [sh]"
    );
    assert_eq!(format("{{json .SBOM}}", &single), "{}");
    // A template that starts with `{{.Manifest` prints the summary.
    assert!(format("{{ .Manifest.Digest }}", &multi).starts_with(&format!("Name:      {multi}\n")));
    let both = imagetools(&["inspect", "--raw", "--format", "{{.Name}}", &multi]);
    assert!(!both.status.success());
    let broken = imagetools(&["inspect", "--format", "{{if .Name}}", &multi]);
    assert!(!broken.status.success());

    // What buildx v0.28 prints for the same templates, where it is built (the summary
    // is left out: buildx lists a descriptor's annotations in Go's random map order).
    let Some(buildx) = kiln_test::oracle_tool("docker-buildx", "KILN_BUILDX") else {
        return;
    };
    for template in [
        "{{.Name}}",
        "{{json .Manifest}}",
        "{{json .Image}}",
        "{{json .SBOM}}",
        "{{json .Provenance}}",
        "{{json .}}",
        "{{range $p, $i := .Image}}{{$p}}: {{$i.Config.Env}} {{$i.Created}}\n{{end}}",
        "{{range .Manifest.Manifests}}{{.Digest}} {{.Platform}} {{.Annotations}}\n{{end}}",
        "{{with .Provenance}}{{range $p, $v := .}}{{$p}} {{$v.SLSA.metadata}}\n{{end}}{{end}}",
        "{{json (index .Image \"linux/arm64\").Config}}",
        "{{(index .SBOM \"linux/amd64\").SPDX.packages}}",
    ] {
        for name in [&multi, &single] {
            let ours = imagetools(&["inspect", "--format", template, name]);
            let theirs = Command::new(&buildx)
                .args(["imagetools", "inspect", "--format", template, name])
                .output()
                .unwrap();
            assert_eq!(
                (ours.status.success(), String::from_utf8_lossy(&ours.stdout)),
                (
                    theirs.status.success(),
                    String::from_utf8_lossy(&theirs.stdout)
                ),
                "{template} {name}: {theirs:?}"
            );
        }
    }
}
