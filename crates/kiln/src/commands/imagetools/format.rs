//! `kiln imagetools inspect --format TEMPLATE`: what buildx's `util/imagetools`
//! printer and loader hand a template, evaluated by [`crate::gotemplate`].
//!
//! The image is read as buildx's loader reads it: an index's manifests one by one
//! (nested indexes too), each image keyed by its normalised platform (from its
//! descriptor, else its config), attestation manifests (`vnd.docker.reference.digest`)
//! tied to the image they describe, their in-toto layers (plain or DSSE) giving the
//! SLSA provenance and SPDX SBOM predicates. The data is buildx's: `.Name` (the name
//! as given), `.Manifest` (the descriptor, or for an index its fields with the
//! index's digest and size), `.Image` (the config as an OCI `Image`; for more than one
//! platform a map by platform), `.Provenance` (`.SLSA`) and `.SBOM` (`.SPDX`,
//! `.AdditionalSPDXs`), maps by platform likewise. A template that begins with
//! `{{.Manifest` prints the summary, as buildx does.

use std::collections::BTreeMap;

use anyhow::Context as _;
use base64::Engine as _;
use kiln_oci::{Reference, media_type};
use kiln_registry::RegistryClient;
use serde_json::Value as Json;

use crate::gotemplate::{Field, Template, Value};

const REFERENCE_ANNOTATIONS: [&str; 2] =
    ["com.docker.reference.digest", "vnd.docker.reference.digest"];
const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
const SPDX: &str = "https://spdx.dev/Document";

/// Where the blobs and manifests come from (the registry, or a test's map).
pub(super) trait Fetch {
    /// A manifest or index by digest.
    fn manifest(&self, digest: &str) -> anyhow::Result<Vec<u8>>;
    /// A blob by digest.
    fn blob(&self, digest: &str) -> anyhow::Result<Vec<u8>>;
}

/// The registry, for one repository.
pub(super) struct Registry<'a> {
    pub(super) client: &'a RegistryClient,
    pub(super) reference: &'a Reference,
}

impl Fetch for Registry<'_> {
    fn manifest(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let at = Reference {
            tag: None,
            digest: Some(digest.to_owned()),
            ..self.reference.clone()
        };
        Ok(super::fetch(self.client, &at)?.0)
    }

    fn blob(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.client
            .fetch_blob(self.reference, digest, &mut out)
            .with_context(|| format!("fetching {digest} from {}", self.reference))?;
        Ok(out)
    }
}

/// Whether buildx prints the summary for this template (it checks the parsed
/// template's text, which drops the spaces and trim markers inside `{{ }}`).
pub(super) fn is_summary(format: &str) -> bool {
    format
        .strip_prefix("{{")
        .map(|rest| rest.strip_prefix('-').unwrap_or(rest).trim_start())
        .is_some_and(|rest| rest.starts_with(".Manifest"))
}

/// What the loader found: each image by platform, manifests by digest, and the
/// attestation manifests of each image.
#[derive(Default)]
struct Loaded {
    images: BTreeMap<String, String>,
    manifests: BTreeMap<String, Json>,
    refs: BTreeMap<String, Vec<String>>,
}

fn load(
    fetch: &dyn Fetch,
    descriptor: &Json,
    bytes: Option<&[u8]>,
    loaded: &mut Loaded,
) -> anyhow::Result<()> {
    let media = descriptor["mediaType"].as_str().unwrap_or_default();
    let digest = descriptor["digest"].as_str().unwrap_or_default();
    let is_manifest = matches!(
        media,
        media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST
    );
    if !is_manifest && !media_type::is_index(media) {
        return Ok(());
    }
    let bytes = match bytes {
        Some(bytes) => bytes.to_vec(),
        None => fetch.manifest(digest)?,
    };
    let document: Json =
        serde_json::from_slice(&bytes).with_context(|| format!("reading {digest}"))?;
    if media_type::is_index(media) {
        for child in document["manifests"].as_array().into_iter().flatten() {
            load(fetch, child, None, loaded)?;
        }
        return Ok(());
    }
    let annotations = &descriptor["annotations"];
    match REFERENCE_ANNOTATIONS
        .iter()
        .find_map(|key| annotations[key].as_str())
    {
        Some(subject) => loaded
            .refs
            .entry(subject.to_owned())
            .or_default()
            .push(digest.to_owned()),
        None => {
            let platform = match descriptor.get("platform").filter(|p| p.is_object()) {
                Some(platform) => platform.clone(),
                None => {
                    let config_digest = document["config"]["digest"].as_str().unwrap_or_default();
                    serde_json::from_slice(&fetch.blob(config_digest)?)
                        .with_context(|| format!("reading the config {config_digest}"))?
                }
            };
            let text = |key: &str| platform[key].as_str().unwrap_or_default().to_owned();
            let mut key = format!("{}/{}", text("os"), text("architecture"));
            if !text("variant").is_empty() {
                key = format!("{key}/{}", text("variant"));
            }
            let key = key
                .parse::<kiln_oci::Platform>()
                .map_or(key, |p| p.to_string());
            loaded.images.insert(key, digest.to_owned());
        }
    }
    loaded.manifests.insert(digest.to_owned(), document);
    Ok(())
}

/// The in-toto predicates of an image's attestation layers whose predicate type
/// passes `wanted`, in order; with `first_each`, only the first of each attestation
/// manifest (as buildx reads provenance).
fn predicates(
    fetch: &dyn Fetch,
    loaded: &Loaded,
    image: &str,
    wanted: &dyn Fn(&str) -> bool,
    first_each: bool,
) -> anyhow::Result<Vec<Json>> {
    let mut out = Vec::new();
    for attestation in loaded.refs.get(image).into_iter().flatten() {
        let Some(manifest) = loaded.manifests.get(attestation) else {
            anyhow::bail!("referenced image {attestation} not found");
        };
        for layer in manifest["layers"].as_array().into_iter().flatten() {
            let media = layer["mediaType"].as_str().unwrap_or_default();
            let dsse = media.starts_with("application/vnd.in-toto.") && media.ends_with("+dsse");
            if !(media == "application/vnd.in-toto+json" || dsse)
                || !wanted(
                    layer["annotations"][PREDICATE_TYPE]
                        .as_str()
                        .unwrap_or_default(),
                )
            {
                continue;
            }
            let digest = layer["digest"].as_str().unwrap_or_default();
            let mut bytes = fetch.blob(digest)?;
            if dsse {
                let envelope: Json = serde_json::from_slice(&bytes)?;
                bytes = base64::engine::general_purpose::STANDARD
                    .decode(envelope["payload"].as_str().unwrap_or_default())
                    .with_context(|| format!("decoding the DSSE payload of {digest}"))?;
            }
            let statement: Json = serde_json::from_slice(&bytes)
                .with_context(|| format!("reading the in-toto statement {digest}"))?;
            out.push(statement["predicate"].clone());
            if first_each {
                break;
            }
        }
    }
    Ok(out)
}

fn string(value: &Json) -> Value {
    Value::String(value.as_str().unwrap_or_default().to_owned())
}

/// A `[]string` (nil when absent or null).
fn strings(value: &Json) -> Value {
    match value.as_array() {
        Some(items) => Value::List(items.iter().map(string).collect()),
        None => Value::NilList,
    }
}

/// A `map[string]string` (nil when absent).
fn string_map(value: &Json) -> Value {
    match value.as_object() {
        Some(map) => Value::Map(map.iter().map(|(k, v)| (k.clone(), string(v))).collect()),
        None => Value::NilMap,
    }
}

/// A `map[string]struct{}`.
fn set(value: &Json) -> Value {
    match value.as_object() {
        Some(map) => Value::Map(
            map.keys()
                .map(|k| (k.clone(), Value::Struct(Vec::new())))
                .collect(),
        ),
        None => Value::NilMap,
    }
}

fn int(value: &Json) -> Value {
    Value::Int(value.as_i64().unwrap_or(0))
}

fn time(value: &Json) -> Value {
    value
        .as_str()
        .map_or(Value::NilPointer, |t| Value::Time(t.to_owned()))
}

/// An OCI `Platform`'s fields.
fn platform_fields(value: &Json) -> Vec<Field> {
    vec![
        Field::new(
            "Architecture",
            "architecture",
            string(&value["architecture"]),
        ),
        Field::new("OS", "os", string(&value["os"])),
        Field::omit_empty("OSVersion", "os.version", string(&value["os.version"])),
        Field::omit_empty("OSFeatures", "os.features", strings(&value["os.features"])),
        Field::omit_empty("Variant", "variant", string(&value["variant"])),
    ]
}

/// An OCI `Descriptor`.
fn descriptor(value: &Json) -> Value {
    Value::Struct(vec![
        Field::new("MediaType", "mediaType", string(&value["mediaType"])),
        Field::new("Digest", "digest", string(&value["digest"])),
        Field::new("Size", "size", int(&value["size"])),
        Field::omit_empty("URLs", "urls", strings(&value["urls"])),
        Field::omit_empty(
            "Annotations",
            "annotations",
            string_map(&value["annotations"]),
        ),
        Field::omit_empty("Data", "data", string(&value["data"])),
        Field::omit_empty(
            "Platform",
            "platform",
            if value["platform"].is_object() {
                Value::Struct(platform_fields(&value["platform"]))
            } else {
                Value::NilPointer
            },
        ),
        Field::omit_empty(
            "ArtifactType",
            "artifactType",
            string(&value["artifactType"]),
        ),
    ])
}

/// An OCI `Image` (the config as buildx decodes it).
fn image(config: &Json) -> Value {
    let c = &config["config"];
    let image_config = Value::Struct(vec![
        Field::omit_empty("User", "User", string(&c["User"])),
        Field::omit_empty("ExposedPorts", "ExposedPorts", set(&c["ExposedPorts"])),
        Field::omit_empty("Env", "Env", strings(&c["Env"])),
        Field::omit_empty("Entrypoint", "Entrypoint", strings(&c["Entrypoint"])),
        Field::omit_empty("Cmd", "Cmd", strings(&c["Cmd"])),
        Field::omit_empty("Volumes", "Volumes", set(&c["Volumes"])),
        Field::omit_empty("WorkingDir", "WorkingDir", string(&c["WorkingDir"])),
        Field::omit_empty("Labels", "Labels", string_map(&c["Labels"])),
        Field::omit_empty("StopSignal", "StopSignal", string(&c["StopSignal"])),
        Field::omit_empty(
            "ArgsEscaped",
            "ArgsEscaped",
            Value::Bool(c["ArgsEscaped"].as_bool().unwrap_or(false)),
        ),
    ]);
    let rootfs = Value::Struct(vec![
        Field::new("Type", "type", string(&config["rootfs"]["type"])),
        Field::new(
            "DiffIDs",
            "diff_ids",
            strings(&config["rootfs"]["diff_ids"]),
        ),
    ]);
    let history = match config["history"].as_array() {
        Some(items) => Value::List(
            items
                .iter()
                .map(|h| {
                    Value::Struct(vec![
                        Field::omit_empty("Created", "created", time(&h["created"])),
                        Field::omit_empty("CreatedBy", "created_by", string(&h["created_by"])),
                        Field::omit_empty("Author", "author", string(&h["author"])),
                        Field::omit_empty("Comment", "comment", string(&h["comment"])),
                        Field::omit_empty(
                            "EmptyLayer",
                            "empty_layer",
                            Value::Bool(h["empty_layer"].as_bool().unwrap_or(false)),
                        ),
                    ])
                })
                .collect(),
        ),
        None => Value::NilList,
    };
    Value::Struct(vec![
        Field::omit_empty("Created", "created", time(&config["created"])),
        Field::omit_empty("Author", "author", string(&config["author"])),
        Field::embedded("Platform", Value::Struct(platform_fields(config))),
        Field::omit_empty("Config", "config", image_config),
        Field::new("RootFS", "rootfs", rootfs),
        Field::omit_empty("History", "history", history),
    ])
}

fn sbom_stub(predicates: Vec<Json>) -> Value {
    let mut predicates = predicates.iter().map(Value::from_json);
    let first = predicates.next().unwrap_or(Value::Nil);
    let rest: Vec<Value> = predicates.collect();
    Value::Struct(vec![
        Field::omit_empty("SPDX", "SPDX", first),
        Field::omit_empty(
            "AdditionalSPDXs",
            "AdditionalSPDXs",
            if rest.is_empty() {
                Value::NilList
            } else {
                Value::List(rest)
            },
        ),
    ])
}

fn provenance_stub(predicate: Json) -> Value {
    Value::Struct(vec![Field::omit_empty(
        "SLSA",
        "SLSA",
        Value::from_json(&predicate),
    )])
}

/// The template's output for the image `bytes` (of media type `media`) that `name`
/// resolved to.
pub(super) fn render(
    fetch: &dyn Fetch,
    name: &str,
    bytes: &[u8],
    media: &str,
    template: &Template,
    uses_attestations: bool,
) -> anyhow::Result<String> {
    let digest = super::sha256_digest(bytes);
    let top = serde_json::json!({
        "mediaType": media,
        "digest": digest,
        "size": bytes.len(),
    });
    let mut loaded = Loaded::default();
    load(fetch, &top, Some(bytes), &mut loaded)?;

    let manifest = if media_type::is_index(media) {
        let index: Json = serde_json::from_slice(bytes).context("reading the index")?;
        Value::Struct(vec![
            Field::new(
                "SchemaVersion",
                "schemaVersion",
                int(&index["schemaVersion"]),
            ),
            Field::omit_empty("MediaType", "mediaType", string(&index["mediaType"])),
            Field::new("Digest", "digest", Value::String(digest.clone())),
            Field::new("Size", "size", Value::Int(bytes.len() as i64)),
            Field::new(
                "Manifests",
                "manifests",
                match index["manifests"].as_array() {
                    Some(items) => Value::List(items.iter().map(descriptor).collect()),
                    None => Value::Nil,
                },
            ),
            Field::omit_empty(
                "Annotations",
                "annotations",
                string_map(&index["annotations"]),
            ),
        ])
    } else {
        descriptor(&top)
    };

    let mut images = BTreeMap::new();
    let mut sboms = BTreeMap::new();
    let mut provenances = BTreeMap::new();
    for (platform, digest) in &loaded.images {
        let document = &loaded.manifests[digest];
        let config_digest = document["config"]["digest"].as_str().unwrap_or_default();
        let config: Json = serde_json::from_slice(&fetch.blob(config_digest)?)
            .with_context(|| format!("reading the config {config_digest}"))?;
        images.insert(platform.clone(), image(&config));
        if !uses_attestations {
            continue;
        }
        let spdx = predicates(fetch, &loaded, digest, &|t| t == SPDX, false)?;
        if !spdx.is_empty() {
            sboms.insert(platform.clone(), sbom_stub(spdx));
        }
        // buildx keeps the last attestation manifest's (first) provenance.
        let slsa = predicates(
            fetch,
            &loaded,
            digest,
            &|t| t.starts_with("https://slsa.dev/provenance/"),
            true,
        )?;
        if let Some(predicate) = slsa.into_iter().last() {
            provenances.insert(platform.clone(), provenance_stub(predicate));
        }
    }
    let (image, sbom, provenance) = if images.len() > 1 {
        (
            Value::Map(images),
            Value::Map(sboms),
            Value::Map(provenances),
        )
    } else {
        let first =
            |map: BTreeMap<String, Value>, empty: Value| map.into_values().next().unwrap_or(empty);
        (
            first(images, Value::NilPointer),
            first(sboms, sbom_stub(Vec::new())),
            first(
                provenances,
                Value::Struct(vec![Field::omit_empty("SLSA", "SLSA", Value::Nil)]),
            ),
        )
    };
    let data = Value::Struct(vec![
        Field::omit_empty("Name", "name", Value::String(name.to_owned())),
        Field::omit_empty("Manifest", "manifest", manifest),
        Field::omit_empty("Image", "image", image),
        // Methods in buildx: reachable from a template, not in `{{json .}}`.
        Field::new("SBOM", "", sbom),
        Field::new("Provenance", "", provenance),
    ]);
    template
        .execute(&data)
        .map_err(|e| anyhow::anyhow!("template: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Manifests and blobs by digest.
    #[derive(Default)]
    struct Store(BTreeMap<String, Vec<u8>>);

    impl Store {
        fn put(&mut self, media: &str, bytes: &[u8]) -> Json {
            let digest = super::super::sha256_digest(bytes);
            self.0.insert(digest.clone(), bytes.to_vec());
            serde_json::json!({"mediaType": media, "digest": digest, "size": bytes.len()})
        }
    }

    impl Fetch for Store {
        fn manifest(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
            self.blob(digest)
        }

        fn blob(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
            self.0.get(digest).cloned().context("not stored")
        }
    }

    /// An index of an amd64 image, its attestation (a DSSE provenance, two SPDX
    /// documents), and an arm64 image whose platform only its config names.
    fn index(store: &mut Store) -> Vec<u8> {
        let manifest = |store: &mut Store, config: &str, layers: Json| {
            let config = store.put(media_type::OCI_CONFIG, config.as_bytes());
            let bytes = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
                "config": config, "layers": layers,
            }))
            .unwrap();
            store.put(media_type::OCI_MANIFEST, &bytes)
        };
        let mut amd64 = manifest(
            store,
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#,
            serde_json::json!([]),
        );
        let arm64 = manifest(
            store,
            r#"{"architecture":"arm64","variant":"v8","os":"linux"}"#,
            serde_json::json!([]),
        );
        let statement = |predicate: Json| {
            serde_json::to_vec(&serde_json::json!({"predicate": predicate})).unwrap()
        };
        let payload = base64::engine::general_purpose::STANDARD
            .encode(statement(serde_json::json!({"buildType": "b"})));
        let envelope = serde_json::to_vec(&serde_json::json!({"payload": payload})).unwrap();
        let mut layers = Vec::new();
        for (media, bytes, kind) in [
            (
                "application/vnd.in-toto.provenance+dsse",
                envelope,
                "https://slsa.dev/provenance/v0.2",
            ),
            (
                "application/vnd.in-toto+json",
                statement(serde_json::json!({"name": "one"})),
                SPDX,
            ),
            (
                "application/vnd.in-toto+json",
                statement(serde_json::json!({"name": "two"})),
                SPDX,
            ),
        ] {
            let mut layer = store.put(media, &bytes);
            layer["annotations"] = serde_json::json!({PREDICATE_TYPE: kind});
            layers.push(layer);
        }
        let mut attestation = manifest(store, "{}", Json::Array(layers));
        attestation["annotations"] =
            serde_json::json!({"vnd.docker.reference.digest": amd64["digest"]});
        amd64["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": media_type::OCI_INDEX,
            "manifests": [amd64, attestation, arm64],
        }))
        .unwrap()
    }

    fn render_with(store: &Store, bytes: &[u8], media: &str, template: &str) -> String {
        let template = Template::parse(template).unwrap();
        render(store, "r/x:1", bytes, media, &template, true).unwrap()
    }

    #[test]
    fn an_index_s_images_and_attestations_by_platform() {
        let mut store = Store::default();
        let index = index(&mut store);
        let run = |template: &str| render_with(&store, &index, media_type::OCI_INDEX, template);
        assert_eq!(
            run("{{range $p, $i := .Image}}{{$p}}={{$i.Architecture}} {{end}}"),
            "linux/amd64=amd64 linux/arm64=arm64 "
        );
        assert_eq!(
            run("{{json .Provenance}}"),
            "{\n  \"linux/amd64\": {\n    \"SLSA\": {\n      \"buildType\": \"b\"\n    }\n  }\n}"
        );
        assert_eq!(
            run(
                "{{(index .SBOM \"linux/amd64\").SPDX.name}} {{(index .SBOM \"linux/amd64\").AdditionalSPDXs}}"
            ),
            "one [map[name:two]]"
        );
        assert_eq!(
            run("{{len .Manifest.Manifests}} {{.Manifest.Size}}"),
            format!("3 {}", index.len())
        );
        assert_eq!(
            run("{{json (index .Image \"linux/amd64\")}}"),
            "{\n  \"architecture\": \"amd64\",\n  \"os\": \"linux\",\n  \"config\": {},\n  \"rootfs\": {\n    \"type\": \"layers\",\n    \"diff_ids\": null\n  }\n}"
        );
    }

    #[test]
    fn one_image_is_the_image_itself() {
        let mut store = Store::default();
        index(&mut store);
        let config = store.put(
            media_type::OCI_CONFIG,
            br#"{"architecture":"s390x","os":"linux"}"#,
        );
        let bytes = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST, "config": config, "layers": [],
        }))
        .unwrap();
        let run = |template: &str| render_with(&store, &bytes, media_type::OCI_MANIFEST, template);
        assert_eq!(run("{{.Image.Architecture}} {{.Name}}"), "s390x r/x:1");
        assert_eq!(run("{{json .SBOM}} {{json .Provenance}}"), "{} {}");
        assert!(run("{{json .Manifest}}").starts_with("{\n  \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n  \"digest\": \"sha256:"));
    }

    #[test]
    fn templates_that_start_with_the_manifest_print_the_summary() {
        assert!(is_summary("{{.Manifest}}"));
        assert!(is_summary("{{- .Manifest.Digest }}"));
        assert!(!is_summary("{{json .Manifest}}"));
        assert!(!is_summary("x{{.Manifest}}"));
    }
}
