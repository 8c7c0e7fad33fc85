//! `kiln imagetools`: images in registries, read and combined from the client, as
//! buildx's `imagetools` does (`util/imagetools`). `create` merges its sources
//! (references, digests, descriptors) into one index, copies what other repositories
//! hold into each tag's, and pushes the index under each tag; `inspect` shows an image
//! or its manifest as stored.

mod format;

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use kiln_oci::{Descriptor, DescriptorPlatform, Index, Manifest, Reference, media_type};
use kiln_registry::RegistryClient;
use sha2::Digest as _;

use crate::args::imagetools::{CreateArgs, InspectArgs};

/// One source of `create`: where it is, and what is known of it (at least its digest
/// once resolved).
#[derive(Debug, Clone, PartialEq)]
struct Source {
    reference: Option<Reference>,
    descriptor: Descriptor,
}

fn sha256_digest(bytes: &[u8]) -> String {
    let hash = sha2::Sha256::digest(bytes);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A source as buildx reads it: a digest, else a reference, else a descriptor (JSON).
fn parse_source(text: &str) -> anyhow::Result<Source> {
    let failed = || {
        format!(
            "failed to parse source {text:?}, valid sources are digests, references and descriptors"
        )
    };
    if is_digest(text) {
        return Ok(Source {
            reference: None,
            descriptor: Descriptor {
                digest: text.to_owned(),
                ..Descriptor::default()
            },
        });
    }
    if text.starts_with("sha256") {
        bail!("{}: invalid digest", failed());
    }
    if !text.trim_start().starts_with('{') {
        let reference: Reference = text.parse().with_context(failed)?;
        return Ok(Source {
            reference: Some(reference),
            descriptor: Descriptor::default(),
        });
    }
    let value: serde_json::Value = serde_json::from_str(text).with_context(failed)?;
    Ok(Source {
        reference: None,
        descriptor: partial_descriptor(&value).with_context(failed)?,
    })
}

/// A descriptor whose fields may be missing (a source given as JSON).
fn partial_descriptor(value: &serde_json::Value) -> anyhow::Result<Descriptor> {
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
    let descriptor = Descriptor {
        media_type: text("mediaType"),
        digest: text("digest"),
        size: value["size"].as_u64().unwrap_or(0),
        annotations: serde_json::from_value(value["annotations"].clone()).unwrap_or_default(),
        platform: serde_json::from_value(value["platform"].clone()).ok(),
        ..Descriptor::default()
    };
    if !is_digest(&descriptor.digest) {
        bail!("the descriptor has no sha256 digest");
    }
    Ok(descriptor)
}

/// What an annotation applies to: `index:`, `manifest-descriptor[PLATFORM]:`, … (buildx's
/// `ParseAnnotations`); `kind` is empty when the key names none.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct AnnotationKey {
    kind: String,
    platform: Option<String>,
    key: String,
}

fn parse_annotations(values: &[String]) -> anyhow::Result<BTreeMap<AnnotationKey, String>> {
    let mut out = BTreeMap::new();
    for value in values.iter().filter(|v| !v.is_empty()) {
        let (key, val) = value
            .split_once('=')
            .with_context(|| format!("invalid annotation {value:?}, expected key=value"))?;
        let Some((kinds, key)) = key.split_once(':') else {
            out.insert(
                AnnotationKey {
                    kind: String::new(),
                    platform: None,
                    key: key.to_owned(),
                },
                val.to_owned(),
            );
            continue;
        };
        for kind_and_platform in kinds.split(',') {
            let (kind, platform) = match kind_and_platform.split_once('[') {
                Some((kind, rest)) => match rest.strip_suffix(']') {
                    Some(platform) if !platform.is_empty() => (kind, Some(platform.to_owned())),
                    _ => bail!(
                        "invalid annotation type {kind_and_platform:?}, expected type and optional platform in square brackets"
                    ),
                },
                None => (kind_and_platform, None),
            };
            if !matches!(
                kind,
                "index" | "index-descriptor" | "manifest" | "manifest-descriptor"
            ) {
                bail!("unknown annotation type {kind:?}");
            }
            out.insert(
                AnnotationKey {
                    kind: kind.to_owned(),
                    platform,
                    key: key.to_owned(),
                },
                val.to_owned(),
            );
        }
    }
    Ok(out)
}

fn platform_text(platform: &DescriptorPlatform) -> String {
    let mut text = format!("{}/{}", platform.os, platform.architecture);
    if !platform.variant.is_empty() {
        text.push('/');
        text.push_str(&platform.variant);
    }
    text
}

/// A manifest's media type when it does not say (buildx's `detectMediaType`).
fn detect_media_type(bytes: &[u8]) -> anyhow::Result<String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).context("the manifest is not JSON")?;
    Ok(match value["mediaType"].as_str() {
        Some(media_type) if !media_type.is_empty() => media_type.to_owned(),
        _ if value.get("config").is_some() => media_type::DOCKER_MANIFEST.to_owned(),
        _ if value.get("fsLayers").is_some() => {
            "application/vnd.docker.distribution.manifest.v1+json".to_owned()
        }
        _ => media_type::DOCKER_MANIFEST_LIST.to_owned(),
    })
}

/// The index over `sources` (their manifests, an index's own manifests inlined, each
/// digest once) and its descriptor, as buildx's `Combine` makes it; a single index
/// source, or a single image when `prefer_index` is off, is returned as it is.
/// `contents[i]` is source `i`'s manifest as fetched; `platform_of` reads an image's
/// platform from its config when its descriptor names none.
fn combine(
    sources: &mut [Source],
    contents: &[Vec<u8>],
    annotations: &BTreeMap<AnnotationKey, String>,
    prefer_index: bool,
    platform_of: &dyn Fn(&Source, &[u8]) -> anyhow::Result<DescriptorPlatform>,
) -> anyhow::Result<(Vec<u8>, Descriptor)> {
    for (source, bytes) in sources.iter_mut().zip(contents) {
        if source.descriptor.media_type.is_empty() {
            source.descriptor.media_type = detect_media_type(bytes)?;
        }
        let media = source.descriptor.media_type.clone();
        if media.ends_with("manifest.v1+json") && media.contains("docker") {
            bail!("schema1 manifests are not allowed in manifest lists");
        }
        if !media_type::is_index(&media) {
            let mut platform = source.descriptor.platform.clone().unwrap_or_default();
            if platform.os.is_empty() || platform.architecture.is_empty() {
                let config = platform_of(source, bytes)?;
                if platform.architecture.is_empty() {
                    platform.architecture = config.architecture;
                    if platform.variant.is_empty() {
                        platform.variant = config.variant;
                    }
                }
                if platform.os.is_empty() {
                    platform.os = config.os;
                }
            }
            source.descriptor.platform = Some(platform);
        }
    }
    if let ([only], true) = (&*sources, annotations.is_empty()) {
        if media_type::is_index(&only.descriptor.media_type) || !prefer_index {
            return Ok((contents[0].clone(), only.descriptor.clone()));
        }
    }
    let mut manifests: Vec<Descriptor> = Vec::new();
    let mut add =
        |descriptor: Descriptor| match manifests.iter_mut().find(|d| d.digest == descriptor.digest)
        {
            Some(known) => {
                if known.media_type.is_empty() {
                    known.media_type = descriptor.media_type;
                }
                if descriptor.platform.is_some() {
                    known.platform = descriptor.platform;
                }
                known.annotations.extend(descriptor.annotations);
            }
            None => manifests.push(descriptor),
        };
    for (source, bytes) in sources.iter().zip(contents) {
        if media_type::is_index(&source.descriptor.media_type) {
            let index: Index = serde_json::from_slice(bytes).context("reading an index")?;
            index.manifests.into_iter().for_each(&mut add);
        } else {
            add(source.descriptor.clone());
        }
    }
    let all_docker = manifests
        .iter()
        .all(|d| d.media_type.starts_with("application/vnd.docker."));
    let media = if all_docker {
        media_type::DOCKER_MANIFEST_LIST
    } else {
        media_type::OCI_INDEX
    };
    // Annotations are only allowed on OCI indexes.
    let mut index_annotations = BTreeMap::new();
    if media == media_type::OCI_INDEX {
        for (key, value) in annotations {
            match key.kind.as_str() {
                "index" => {
                    index_annotations.insert(key.key.clone(), value.clone());
                }
                "manifest-descriptor" => {
                    for descriptor in &mut manifests {
                        let platform = descriptor.platform.as_ref().map(platform_text);
                        if key.platform.is_none() || key.platform == platform {
                            descriptor
                                .annotations
                                .insert(key.key.clone(), value.clone());
                        }
                    }
                }
                "index-descriptor" => {
                    bail!("\"index-descriptor\" annotations are invalid while creating an image")
                }
                kind => bail!("{kind:?} annotations are not supported yet"),
            }
        }
    }
    let index = Index {
        schema_version: 2,
        media_type: media.to_owned(),
        manifests,
        annotations: index_annotations,
    };
    // buildx writes it with `json.MarshalIndent(idx, "", "  ")`.
    let bytes = serde_json::to_vec_pretty(&index)?;
    let descriptor = Descriptor {
        media_type: media.to_owned(),
        digest: sha256_digest(&bytes),
        size: bytes.len() as u64,
        ..Descriptor::default()
    };
    Ok((bytes, descriptor))
}

/// `reference` at `digest` (its tag dropped).
fn at_digest(reference: &Reference, digest: &str) -> Reference {
    Reference {
        tag: None,
        digest: Some(digest.to_owned()),
        ..reference.clone()
    }
}

/// Fetches what `reference` names (its digest, else its tag), checking the digest.
fn fetch(registry: &RegistryClient, reference: &Reference) -> anyhow::Result<(Vec<u8>, String)> {
    let tag_or_digest = reference
        .digest
        .clone()
        .or_else(|| reference.tag.clone())
        .unwrap_or_else(|| "latest".to_owned());
    let fetched = registry
        .fetch_manifest(reference, &tag_or_digest)
        .with_context(|| format!("resolving {reference}"))?;
    Ok((fetched.bytes, fetched.media_type))
}

/// Copies a manifest or index and everything under it from `from` into `to`'s
/// repository, by digest: blobs mounted from `from`'s repository when both are on one
/// registry, else fetched and pushed.
fn copy_chain(
    registry: &RegistryClient,
    from: &Reference,
    to: &Reference,
    descriptor: &Descriptor,
) -> anyhow::Result<()> {
    let (bytes, _) = fetch(registry, &at_digest(from, &descriptor.digest))?;
    let mut blobs = Vec::new();
    if media_type::is_index(&descriptor.media_type) {
        let index: Index = serde_json::from_slice(&bytes).context("reading an index")?;
        for child in &index.manifests {
            copy_chain(registry, from, to, child)?;
        }
    } else {
        let manifest: Manifest = serde_json::from_slice(&bytes).context("reading a manifest")?;
        blobs.push(manifest.config);
        blobs.extend(manifest.layers);
    }
    let same_registry = from.domain == to.domain;
    for blob in blobs {
        let mut content = Vec::new();
        if !same_registry {
            registry
                .fetch_blob(from, &blob.digest, &mut content)
                .with_context(|| format!("fetching {} from {from}", blob.digest))?;
        }
        let mount_from = same_registry.then_some(from.path.as_str());
        // The content is in memory: a new try sends it again.
        let push = |content: &[u8], mount_from| {
            kiln_registry::retry_transient(|| {
                registry.push_blob(to, &blob.digest, blob.size, &mut &content[..], mount_from)
            })
        };
        match push(&content, mount_from) {
            Ok(()) => {}
            // A mount the registry declined needs the content after all.
            Err(_) if same_registry => {
                registry.fetch_blob(from, &blob.digest, &mut content)?;
                push(&content, None)?;
            }
            Err(e) => return Err(e).with_context(|| format!("pushing {} to {to}", blob.digest)),
        }
    }
    registry
        .push_manifest(to, &descriptor.digest, &descriptor.media_type, &bytes)
        .with_context(|| format!("pushing {} to {to}", descriptor.digest))?;
    Ok(())
}

pub(crate) fn create(args: &CreateArgs) -> anyhow::Result<()> {
    if args.sources.is_empty() && args.files.is_empty() {
        bail!("no sources specified");
    }
    if !args.dry_run && args.tags.is_empty() {
        bail!("can't push with no tags specified, please set --tag or --dry-run");
    }
    let mut texts = Vec::new();
    for file in &args.files {
        texts.push(fs_err::read_to_string(file)?);
    }
    texts.extend(args.sources.iter().cloned());
    let tags = args
        .tags
        .iter()
        .map(|t| {
            t.parse::<Reference>()
                .with_context(|| format!("--tag {t:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.append {
        if let Some(first) = args.tags.first() {
            texts.insert(0, first.clone());
        }
    }
    let mut sources = texts
        .iter()
        .map(|t| parse_source(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut repos: Vec<String> = tags.iter().map(Reference::name).collect();
    repos.extend(
        sources
            .iter()
            .filter_map(|s| s.reference.as_ref().map(Reference::name)),
    );
    repos.sort();
    repos.dedup();
    let default_repo = match repos.as_slice() {
        [] => bail!("no repositories specified, please set a reference in tag or source"),
        [only] => Some(only.clone()),
        _ => None,
    };
    for (source, text) in sources.iter_mut().zip(&texts) {
        if source.reference.is_none() {
            let repo = default_repo.as_ref().with_context(|| {
                format!("multiple repositories specified, cannot infer repository for {text:?}")
            })?;
            let reference: Reference = repo.parse()?;
            source.reference = Some(at_digest(&reference, &source.descriptor.digest));
        }
    }
    // Credentials from the user's docker login, as buildx's.
    let registry = RegistryClient::new();
    let mut contents = Vec::new();
    for source in &mut sources {
        let reference = source
            .reference
            .clone()
            .expect("every source has a reference");
        let (bytes, media) = fetch(&registry, &reference)?;
        let digest = sha256_digest(&bytes);
        let given = std::mem::take(&mut source.descriptor);
        if given.size != 0 && given.size != bytes.len() as u64 {
            bail!(
                "invalid size mismatch for {digest}, {} != {}",
                given.size,
                bytes.len()
            );
        }
        // What the source's own descriptor says wins (buildx's `mergeDesc`).
        source.descriptor = Descriptor {
            media_type: if given.media_type.is_empty() {
                media
            } else {
                given.media_type
            },
            digest,
            size: bytes.len() as u64,
            annotations: given.annotations,
            platform: given.platform,
            ..Descriptor::default()
        };
        contents.push(bytes);
    }
    let annotations = parse_annotations(&args.annotations)?;
    let platform_of = |source: &Source, bytes: &[u8]| -> anyhow::Result<DescriptorPlatform> {
        let manifest: Manifest = serde_json::from_slice(bytes).context("reading a manifest")?;
        let reference = source.reference.as_ref().expect("resolved");
        let mut config = Vec::new();
        registry.fetch_blob(reference, &manifest.config.digest, &mut config)?;
        let config: serde_json::Value = serde_json::from_slice(&config)?;
        let field = |k: &str| config[k].as_str().unwrap_or_default().to_owned();
        let platform = kiln_oci::Platform::linux(&field("architecture"));
        Ok(DescriptorPlatform {
            os: field("os"),
            architecture: platform.architecture,
            variant: if field("variant").is_empty() {
                platform.variant
            } else {
                field("variant")
            },
            ..DescriptorPlatform::default()
        })
    };
    let (bytes, descriptor) = combine(
        &mut sources,
        &contents,
        &annotations,
        args.prefer_index,
        &platform_of,
    )?;
    if args.dry_run {
        println!("{}", String::from_utf8_lossy(&bytes));
        return Ok(());
    }
    for tag in &tags {
        let tag = tag.clone().tag_name_only();
        for source in &sources {
            let from = source.reference.as_ref().expect("resolved");
            if from.domain == tag.domain && from.path == tag.path {
                continue;
            }
            eprintln!("copying {} from {from} to {tag}", source.descriptor.digest);
            copy_chain(&registry, from, &tag, &source.descriptor)?;
        }
        eprintln!("pushing {} to {tag}", descriptor.digest);
        let name = tag.tag.clone().unwrap_or_else(|| descriptor.digest.clone());
        registry
            .push_manifest(&tag, &name, &descriptor.media_type, &bytes)
            .with_context(|| format!("pushing {tag}"))?;
    }
    Ok(())
}

/// Rows `(label, value)` aligned as Go's tabwriter aligns them (a column as wide as
/// its widest label plus one space).
fn aligned(rows: &[(String, String)]) -> String {
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(label, value)| format!("{label:width$}{value}\n"))
        .collect()
}

pub(crate) fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let format = args.format.as_deref().filter(|f| !f.is_empty());
    if format.is_some() && args.raw {
        bail!("format and raw cannot be used together");
    }
    // Parsed before anything is fetched: a bad template costs no registry round trip.
    let template = format
        .filter(|f| !format::is_summary(f))
        .map(|f| {
            crate::gotemplate::Template::parse(f).map_err(|e| anyhow::anyhow!("template: {e}"))
        })
        .transpose()?;
    let reference = args
        .name
        .parse::<Reference>()
        .with_context(|| format!("{:?}", args.name))?
        .tag_name_only();
    // Credentials from the user's docker login, as buildx's.
    let registry = RegistryClient::new();
    let (bytes, media) = fetch(&registry, &reference)?;
    if args.raw {
        use std::io::Write as _;
        // As stored: no newline added, so the digest can be taken of the output.
        std::io::stdout().write_all(&bytes)?;
        return Ok(());
    }
    if let (Some(template), Some(text)) = (&template, format) {
        let media = if media.is_empty() {
            detect_media_type(&bytes)?
        } else {
            media
        };
        let source = format::Registry {
            client: &registry,
            reference: &reference,
        };
        let uses_attestations = text.contains("SBOM") || text.contains("Provenance");
        let out = format::render(
            &source,
            &args.name,
            &bytes,
            &media,
            template,
            uses_attestations,
        )?;
        use std::io::Write as _;
        // As buildx: the template's output and nothing more.
        std::io::stdout().write_all(out.as_bytes())?;
        return Ok(());
    }
    print!("{}", summary(&reference, &bytes, &media)?);
    Ok(())
}

/// buildx's summary of an image: name, media type, digest and, for an index, each
/// manifest with its platform and annotations.
fn summary(reference: &Reference, bytes: &[u8], media: &str) -> anyhow::Result<String> {
    let media = if media.is_empty() {
        detect_media_type(bytes)?
    } else {
        media.to_owned()
    };
    let mut out = aligned(&[
        ("Name:".to_owned(), reference.to_string()),
        ("MediaType:".to_owned(), media.clone()),
        ("Digest:".to_owned(), sha256_digest(bytes)),
    ]);
    if !media_type::is_index(&media) {
        return Ok(out);
    }
    out.push_str(&aligned(&[
        (String::new(), String::new()),
        ("Manifests:".to_owned(), String::new()),
    ]));
    let index: Index = serde_json::from_slice(bytes).context("reading the index")?;
    let mut rows = Vec::new();
    for (i, manifest) in index.manifests.iter().enumerate() {
        if i != 0 {
            rows.push((String::new(), String::new()));
        }
        // The tag is kept before the digest, as buildx names them.
        let name = Reference {
            digest: Some(manifest.digest.clone()),
            ..reference.clone()
        };
        rows.push(("  Name:".to_owned(), name.to_string()));
        rows.push(("  MediaType:".to_owned(), manifest.media_type.clone()));
        if let Some(platform) = &manifest.platform {
            rows.push(("  Platform:".to_owned(), platform_text(platform)));
            if !platform.os_version.is_empty() {
                rows.push(("  OSVersion:".to_owned(), platform.os_version.clone()));
            }
            if !platform.os_features.is_empty() {
                rows.push(("  OSFeatures:".to_owned(), platform.os_features.join(", ")));
            }
            if !manifest.annotations.is_empty() {
                rows.push(("  Annotations:".to_owned(), String::new()));
                out.push_str(&aligned(&rows));
                rows.clear();
                let annotations: Vec<(String, String)> = manifest
                    .annotations
                    .iter()
                    .map(|(k, v)| (format!("    {k}:"), v.clone()))
                    .collect();
                out.push_str(&aligned(&annotations));
            }
        }
    }
    out.push_str(&aligned(&rows));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(arch: &str) -> (Source, Vec<u8>) {
        let bytes = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{arch:0>64}","size":2}},"layers":[]}}"#
        )
        .into_bytes();
        let source = Source {
            reference: Some("127.0.0.1:5000/x:1".parse().unwrap()),
            descriptor: Descriptor {
                media_type: media_type::OCI_MANIFEST.to_owned(),
                digest: sha256_digest(&bytes),
                size: bytes.len() as u64,
                ..Descriptor::default()
            },
        };
        (source, bytes)
    }

    /// `image("b")` is the arm64 one.
    fn platform_from_config(_: &Source, bytes: &[u8]) -> anyhow::Result<DescriptorPlatform> {
        let arm = String::from_utf8_lossy(bytes).contains("0b\"");
        Ok(DescriptorPlatform {
            os: "linux".to_owned(),
            architecture: if arm { "arm64" } else { "amd64" }.to_owned(),
            ..DescriptorPlatform::default()
        })
    }

    #[test]
    fn sources_are_digests_references_or_descriptors() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(parse_source(&digest).unwrap().descriptor.digest, digest);
        assert!(parse_source("sha256:abc").is_err());
        let reference = parse_source("127.0.0.1:5000/x:1").unwrap();
        assert_eq!(
            reference.reference.unwrap().to_string(),
            "127.0.0.1:5000/x:1"
        );
        let descriptor = parse_source(&format!(
            r#"{{"digest":"{digest}","platform":{{"os":"linux","architecture":"arm64"}}}}"#
        ))
        .unwrap();
        assert_eq!(
            descriptor.descriptor.platform.unwrap().architecture,
            "arm64"
        );
    }

    #[test]
    fn annotations_by_kind_and_platform() {
        let parsed = parse_annotations(&[
            "index:org.opencontainers.image.authors=me".to_owned(),
            "manifest-descriptor[linux/arm64]:note=arm".to_owned(),
        ])
        .unwrap();
        assert_eq!(parsed.len(), 2);
        assert!(parse_annotations(&["bogus:k=v".to_owned()]).is_err());
        assert!(parse_annotations(&["k".to_owned()]).is_err());
    }

    /// Two images become an OCI index with their platforms, each digest once; index and
    /// per-platform descriptor annotations land where they are asked to.
    #[test]
    fn combine_two_images_into_an_index() {
        let (a, a_bytes) = image("a");
        let (b, b_bytes) = image("b");
        let mut sources = vec![a.clone(), b, a];
        let contents = vec![a_bytes.clone(), b_bytes, a_bytes];
        let annotations = parse_annotations(&[
            "index:team=build".to_owned(),
            "manifest-descriptor[linux/arm64]:note=arm".to_owned(),
        ])
        .unwrap();
        let (bytes, descriptor) = combine(
            &mut sources,
            &contents,
            &annotations,
            true,
            &platform_from_config,
        )
        .unwrap();
        assert_eq!(descriptor.media_type, media_type::OCI_INDEX);
        assert_eq!(descriptor.digest, sha256_digest(&bytes));
        let index: Index = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(index.manifests.len(), 2);
        assert_eq!(index.annotations["team"], "build");
        let arm = index
            .manifests
            .iter()
            .find(|m| m.platform.as_ref().unwrap().architecture == "arm64")
            .unwrap();
        assert_eq!(arm.annotations["note"], "arm");
        assert!(
            String::from_utf8(bytes)
                .unwrap()
                .starts_with("{\n  \"schemaVersion\": 2,\n  \"mediaType\"")
        );
    }

    /// A single index is passed through as it is.
    #[test]
    fn a_single_index_is_kept() {
        let bytes = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_vec();
        let mut sources = vec![Source {
            reference: Some("127.0.0.1:5000/x:1".parse().unwrap()),
            descriptor: Descriptor {
                media_type: media_type::OCI_INDEX.to_owned(),
                digest: sha256_digest(&bytes),
                size: bytes.len() as u64,
                ..Descriptor::default()
            },
        }];
        let (out, _) = combine(
            &mut sources,
            std::slice::from_ref(&bytes),
            &BTreeMap::new(),
            true,
            &platform_from_config,
        )
        .unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn columns_as_go_s_tabwriter() {
        assert_eq!(
            aligned(&[
                ("Name:".to_owned(), "x".to_owned()),
                ("MediaType:".to_owned(), "y".to_owned())
            ]),
            "Name:      x\nMediaType: y\n"
        );
    }
}
