//! Image assembly: layer blobs in the asked compression, the config with its rootfs and
//! history completed, and the manifest in OCI or Docker media types, all in the store.

use std::collections::BTreeMap;

use kiln_oci::image::{History, RootFs};
use kiln_oci::{Descriptor, Manifest, convert_layer_media_type, media_type};
use kiln_store::ContentStore;
use serde::Deserialize as _;
use serde_json::Value;

use crate::Error;
use crate::layer::{Blob, Layer, LayerFormat, recompress, write_layer};
use crate::options::{Annotations, ImageOptions};

/// An image whose blobs are all in the content store.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest's descriptor (with `annotation-manifest-descriptor.*`).
    pub manifest: Descriptor,
    /// The manifest as stored.
    pub manifest_bytes: Vec<u8>,
    /// The config's descriptor.
    pub config: Descriptor,
    /// The layers as the manifest lists them.
    pub layers: Vec<Blob>,
    /// Blobs made for this export, by layer index (for the caller to remember).
    pub made: Vec<(usize, Blob)>,
    /// `os/arch[/variant]` of the config.
    pub platform: String,
    /// The config's platform, as an index's descriptor of the manifest names it.
    pub descriptor_platform: kiln_oci::DescriptorPlatform,
    /// The image's creation time (RFC 3339), what the OCI exporter's index says.
    pub created: String,
}

/// The image config as the exporter writes it (BuildKit's `patchImageConfig`): the
/// frontend's top-level fields kept as they are (a Go map: build info and an inline
/// cache join them), with rootfs, history and the creation time set.
pub(crate) struct PatchedConfig {
    /// Every top-level field but `rootfs` and `history`.
    pub(crate) fields: serde_json::Map<String, Value>,
    pub(crate) rootfs: RootFs,
    /// `None` when the frontend wrote no history (Go's nil slice, left out).
    pub(crate) history: Option<Vec<History>>,
}

/// The frontend's config with its rootfs, creation time and history times filled in.
pub(crate) fn finish_config(
    template: &Value,
    layers: &[Blob],
    created: &str,
) -> Result<PatchedConfig, Error> {
    let Value::Object(fields) = template else {
        return Err(Error::Config("not a JSON object".to_owned()));
    };
    let mut fields = fields.clone();
    fields.remove("rootfs");
    let history = match fields.remove("history") {
        None | Some(Value::Null) => None,
        Some(history) => {
            let mut history: Vec<History> = serde_json::from_value(history)
                .map_err(|e| Error::Config(format!("history: {e}")))?;
            for entry in &mut history {
                let time = entry.created.get_or_insert_with(|| created.to_owned());
                *time = crate::gojson::go_time(time);
            }
            Some(history)
        }
    };
    fields.insert("created".to_owned(), Value::String(created.to_owned()));
    Ok(PatchedConfig {
        fields,
        rootfs: RootFs {
            kind: "layers".to_owned(),
            diff_ids: Some(layers.iter().map(|l| l.diff_id.clone()).collect()),
        },
        history,
    })
}

/// The config's platform fields (`ocispecs.Platform`).
fn platform_fields(config: &PatchedConfig) -> kiln_oci::DescriptorPlatform {
    let field = |k: &str| {
        config
            .fields
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    kiln_oci::DescriptorPlatform {
        architecture: field("architecture"),
        os: field("os"),
        os_version: field("os.version"),
        os_features: config
            .fields
            .get("os.features")
            .and_then(|f| Vec::<String>::deserialize(f).ok())
            .unwrap_or_default(),
        variant: field("variant"),
    }
}

/// `os/arch[/variant]`, as a platform prints.
fn platform_name(platform: &kiln_oci::DescriptorPlatform) -> String {
    kiln_oci::Platform {
        os: platform.os.clone(),
        architecture: platform.architecture.clone(),
        variant: platform.variant.clone(),
        ..kiln_oci::Platform::default()
    }
    .to_string()
}

/// The annotation BuildKit puts on a layer whose file times were clamped to an epoch
/// (`util/converter`); a blob carrying it is only reused for that epoch.
pub const REWRITTEN_TIMESTAMP: &str = "buildkit/rewritten-timestamp";

/// The blob for one layer in an image exporter's format.
fn layer_blob(
    store: &ContentStore,
    layer: &Layer,
    options: &ImageOptions,
    clamp: Option<i64>,
) -> Result<(Blob, bool), Error> {
    let format = LayerFormat {
        compression: options.compression,
        level: options.compression_level,
        oci: options.oci_mediatypes,
        clamp,
    };
    choose_blob(store, layer, &format, options.force_compression)
}

/// The blob for one layer in `format` (image and cache exports), and whether it was
/// made now. Without a clamp (no `rewrite-timestamp`, or a base image's layer) only
/// blobs of the original content qualify; with one only blobs clamped to the same
/// epoch, since a clamped blob is a conversion of the original (BuildKit's
/// `util/converter`).
/// Among those: one in the asked compression; else, without `force_compression`, the
/// first one (a layer keeps the blob it has) unless clamping, which converts to the asked
/// compression as BuildKit's rewrite does; else a new one.
pub fn choose_blob(
    store: &ContentStore,
    layer: &Layer,
    format: &LayerFormat,
    force_compression: bool,
) -> Result<(Blob, bool), Error> {
    let clamp = format.clamp;
    let compression_of = |b: &Blob| kiln_oci::Compression::of_media_type(&b.media_type);
    // A blob of this layer's own content (the pulled one, or one made by this tar
    // writer) for this epoch.
    let mut usable = layer.blobs.iter().filter(|b| {
        b.clamped_to == clamp && (layer.pulled || b.tar_version == crate::layer::TAR_VERSION)
    });
    if let Some(blob) = usable
        .clone()
        .find(|b| compression_of(b) == Some(format.compression))
    {
        return Ok((blob.clone(), false));
    }
    match usable.next() {
        Some(existing) if !force_compression && clamp.is_none() => Ok((existing.clone(), false)),
        Some(existing) => Ok((recompress(store, existing, format)?, true)),
        None => Ok((write_layer(store, &layer.dir, &layer.lowers, format)?, true)),
    }
}

/// Assembles the image: layers, config and manifest written to the content store.
/// `rewrite_epoch`: with `rewrite-timestamp`, the epoch new layers' file times are
/// clamped to.
pub fn assemble(
    store: &ContentStore,
    layers: &[Layer],
    image_config: &Value,
    options: &ImageOptions,
    created: &str,
    rewrite_epoch: Option<i64>,
) -> Result<Image, Error> {
    let oci = options.oci_mediatypes;
    let mut blobs = Vec::with_capacity(layers.len());
    let mut made = Vec::new();
    // The base image's layers (the frontend's config still holds its rootfs) are not
    // rewritten while the chain starts with them, by diff id and position (BuildKit's
    // `rewriteRemoteWithEpoch`); without a base image every layer is.
    let base_diff_ids: Vec<&str> = image_config["rootfs"]["diff_ids"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut diverged = false;
    for (i, layer) in layers.iter().enumerate() {
        let clamp = rewrite_epoch.filter(|_| {
            let original = layer
                .blobs
                .iter()
                .find(|b| b.clamped_to.is_none())
                .map(|b| b.diff_id.as_str());
            match base_diff_ids.get(i) {
                Some(base) if !diverged && original == Some(*base) => false,
                Some(_) => {
                    diverged = true;
                    true
                }
                None => true,
            }
        });
        let (mut blob, new) = layer_blob(store, layer, options, clamp)?;
        if let Some(epoch) = blob.clamped_to {
            blob.annotations
                .insert(REWRITTEN_TIMESTAMP.to_owned(), epoch.to_string());
        }
        if new {
            made.push((i, blob.clone()));
        }
        blob.media_type = convert_layer_media_type(&blob.media_type, oci);
        blobs.push(blob);
    }
    let config = finish_config(image_config, &blobs, created)?;
    let descriptor_platform = platform_fields(&config);
    let platform = platform_name(&descriptor_platform);
    let config_bytes = crate::gojson::image_config(&config)?;
    let config = Descriptor {
        media_type: if oci {
            media_type::OCI_CONFIG
        } else {
            media_type::DOCKER_CONFIG
        }
        .to_owned(),
        digest: store.write_all(&config_bytes)?,
        size: config_bytes.len() as u64,
        ..Descriptor::default()
    };
    let manifest_type = if oci {
        media_type::OCI_MANIFEST
    } else {
        media_type::DOCKER_MANIFEST
    };
    let manifest = Manifest {
        schema_version: 2,
        media_type: manifest_type.to_owned(),
        config: config.clone(),
        layers: blobs
            .iter()
            .map(|b| Descriptor {
                media_type: b.media_type.clone(),
                digest: b.digest.clone(),
                size: b.size,
                // Docker's schema 2 has no layer annotations.
                annotations: if oci {
                    b.annotations.clone()
                } else {
                    Default::default()
                },
                ..Descriptor::default()
            })
            .collect(),
        annotations: Annotations::for_platform(&options.annotations.manifest, &platform),
    };
    // BuildKit writes manifests with `json.MarshalIndent(m, "", "  ")`.
    let manifest_bytes = crate::gojson::to_vec_indent(&manifest)?;
    let manifest = Descriptor {
        media_type: manifest_type.to_owned(),
        digest: store.write_all(&manifest_bytes)?,
        size: manifest_bytes.len() as u64,
        annotations: Annotations::for_platform(&options.annotations.manifest_descriptor, &platform),
        ..Descriptor::default()
    };
    Ok(Image {
        manifest,
        manifest_bytes,
        config,
        layers: blobs,
        made,
        platform,
        descriptor_platform,
        created: created.to_owned(),
    })
}

/// The index annotations (`annotation-index.*`) that apply.
pub(crate) fn index_annotations(
    options: &ImageOptions,
    platform: &str,
) -> BTreeMap<String, String> {
    Annotations::for_platform(&options.annotations.index, platform)
}

#[cfg(test)]
mod tests {
    use kiln_oci::Compression;
    use serde_json::json;

    use super::*;

    fn options(compression: Compression) -> ImageOptions {
        ImageOptions {
            compression,
            oci_mediatypes: true,
            ..ImageOptions::default()
        }
    }

    fn layer(dir: &std::path::Path) -> Layer {
        fs_err::create_dir_all(dir).unwrap();
        fs_err::write(dir.join("f"), "f").unwrap();
        crate::diff::tests_support::set_mtime(&dir.join("f"), 1_800_000_000);
        Layer {
            dir: dir.to_path_buf(),
            lowers: Vec::new(),
            blobs: Vec::new(),
            pulled: false,
        }
    }

    /// A clamped blob is a conversion for its epoch: an export without the rewrite, or
    /// with another epoch, does not take it (BuildKit's `util/converter`).
    #[test]
    fn clamped_blobs_serve_only_their_epoch() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(tmp.path().join("store")).unwrap();
        let mut layer = layer(&tmp.path().join("layer"));
        let plain = options(Compression::Uncompressed);

        let (clamped, new) = layer_blob(&store, &layer, &plain, Some(1_700_000_000)).unwrap();
        assert!(new);
        assert_eq!(clamped.clamped_to, Some(1_700_000_000));
        layer.blobs.push(clamped.clone());

        let (original, new) = layer_blob(&store, &layer, &plain, None).unwrap();
        assert!(new, "the clamped blob is not the layer's own");
        assert_eq!(original.clamped_to, None);
        assert_ne!(original.digest, clamped.digest);
        layer.blobs.push(original.clone());

        assert_eq!(
            layer_blob(&store, &layer, &plain, Some(1_700_000_000)).unwrap(),
            (clamped.clone(), false)
        );
        assert_eq!(
            layer_blob(&store, &layer, &plain, None).unwrap(),
            (original.clone(), false)
        );
        let (other, new) = layer_blob(&store, &layer, &plain, Some(1_650_000_000)).unwrap();
        assert!(new);
        assert_ne!(other.digest, clamped.digest);

        // Without force-compression a layer keeps the blob it has; a rewrite converts to
        // the asked compression, as BuildKit's converter does.
        let gzip = options(Compression::Gzip);
        assert_eq!(
            layer_blob(&store, &layer, &gzip, None).unwrap(),
            (original, false)
        );
        let (converted, new) = layer_blob(&store, &layer, &gzip, Some(1_700_000_000)).unwrap();
        assert!(new);
        assert_eq!(converted.clamped_to, Some(1_700_000_000));
        assert_eq!(converted.diff_id, clamped.diff_id);
        assert_eq!(
            Compression::of_media_type(&converted.media_type),
            Some(Compression::Gzip)
        );
    }

    /// A blob an older tar writer made is not reused: the layer is written again, so an
    /// old cache exports the bytes a fresh build does.
    #[test]
    fn blobs_of_an_older_tar_writer_are_not_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(tmp.path().join("store")).unwrap();
        let mut layer = layer(&tmp.path().join("layer"));
        let plain = options(Compression::Uncompressed);
        let (current, _) = layer_blob(&store, &layer, &plain, None).unwrap();
        assert_eq!(current.tar_version, crate::layer::TAR_VERSION);
        let old = Blob {
            digest: store.write_all(b"old bytes").unwrap(),
            tar_version: 0,
            ..current.clone()
        };
        layer.blobs.push(old);
        assert_eq!(
            layer_blob(&store, &layer, &plain, None).unwrap(),
            (current, true)
        );
    }

    /// A base image's layer is kept as it came, rewrite or not; layers made with a
    /// rewrite carry BuildKit's annotation, in the OCI manifest only.
    #[test]
    fn pulled_layers_are_kept_and_rewritten_ones_annotated() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(tmp.path().join("store")).unwrap();
        let mut base = layer(&tmp.path().join("base"));
        let pulled = write_layer(&store, &base.dir, &[], &LayerFormat::default()).unwrap();
        base.blobs.push(pulled.clone());
        base.pulled = true;
        let top = layer(&tmp.path().join("top"));
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [pulled.diff_id]},
        });
        let image = assemble(
            &store,
            &[base.clone(), top.clone()],
            &config,
            &options(Compression::Uncompressed),
            "2023-11-14T22:13:20Z",
            Some(1_700_000_000),
        )
        .unwrap();
        assert_eq!(image.layers[0].digest, pulled.digest);
        assert!(image.layers[0].annotations.is_empty());
        assert_eq!(
            image.layers[1].annotations.get(REWRITTEN_TIMESTAMP),
            Some(&"1700000000".to_owned())
        );
        let manifest = String::from_utf8(image.manifest_bytes).unwrap();
        assert!(
            manifest.contains("\n      \"annotations\": {\n        \"buildkit/rewritten-timestamp\": \"1700000000\"\n"),
            "{manifest}"
        );
        let docker = assemble(
            &store,
            &[base.clone(), top],
            &config,
            &ImageOptions {
                oci_mediatypes: false,
                ..options(Compression::Uncompressed)
            },
            "2023-11-14T22:13:20Z",
            Some(1_700_000_000),
        )
        .unwrap();
        assert!(
            !String::from_utf8(docker.manifest_bytes)
                .unwrap()
                .contains("annotations")
        );
        // Without a base image (an LLB build) a pulled layer is rewritten too.
        let bare = json!({"architecture": "amd64", "os": "linux", "config": {}});
        let image = assemble(
            &store,
            &[base],
            &bare,
            &options(Compression::Uncompressed),
            "2023-11-14T22:13:20Z",
            Some(1_700_000_000),
        )
        .unwrap();
        assert_eq!(image.layers[0].clamped_to, Some(1_700_000_000));
        assert_ne!(image.layers[0].digest, pulled.digest);
    }
}
