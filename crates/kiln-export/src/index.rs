//! A multi-platform result: one image per platform under an OCI image index or a
//! Docker manifest list (as `oci-mediatypes` chooses), as BuildKit's image and OCI
//! exporters write it: each manifest's descriptor with its platform, in the order the
//! platforms were asked for.

use kiln_oci::{Descriptor, Index, media_type};
use kiln_store::ContentStore;

use crate::Error;
use crate::image::{Image, index_annotations};
use crate::options::{Annotations, ImageOptions};

/// Images of several platforms and the index over them, all in the content store.
#[derive(Debug, Clone)]
pub struct MultiPlatformImage {
    /// The index's descriptor.
    pub index: Descriptor,
    /// The index as stored.
    pub index_bytes: Vec<u8>,
    /// One image per platform.
    pub images: Vec<Image>,
}

/// Writes the index over `images` to the store.
pub fn assemble_index(
    store: &ContentStore,
    images: Vec<Image>,
    options: &ImageOptions,
) -> Result<MultiPlatformImage, Error> {
    let media_type = if options.oci_mediatypes {
        media_type::OCI_INDEX
    } else {
        media_type::DOCKER_MANIFEST_LIST
    };
    let index = Index {
        schema_version: 2,
        media_type: media_type.to_owned(),
        manifests: images
            .iter()
            .map(|image| Descriptor {
                platform: Some(image.descriptor_platform.clone()),
                ..image.manifest.clone()
            })
            .collect(),
        // Platform-qualified index annotations name no platform of an index.
        annotations: index_annotations(options, ""),
    };
    // BuildKit writes the index with `json.MarshalIndent(idx, "", "  ")`.
    let index_bytes = crate::gojson::to_vec_indent(&index)?;
    let index = Descriptor {
        media_type: media_type.to_owned(),
        digest: store.write_all(&index_bytes)?,
        size: index_bytes.len() as u64,
        annotations: Annotations::for_platform(&options.annotations.index_descriptor, ""),
        ..Descriptor::default()
    };
    Ok(MultiPlatformImage {
        index,
        index_bytes,
        images,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The index as BuildKit v0.24.0 wrote it for `--opt platform=linux/amd64,linux/arm64,linux/arm/v7`
    /// with the OCI exporter (but for the manifests' digests).
    #[test]
    fn index_is_buildkit_s() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(tmp.path().join("store")).unwrap();
        let options = ImageOptions {
            oci_mediatypes: true,
            ..ImageOptions::default()
        };
        let images: Vec<Image> = [("amd64", None), ("arm64", None), ("arm", Some("v7"))]
            .into_iter()
            .map(|(arch, variant)| {
                let mut config = json!({"architecture": arch, "os": "linux", "config": {}});
                if let Some(variant) = variant {
                    config["variant"] = variant.into();
                }
                crate::assemble(&store, &[], &config, &options, "2023-11-14T22:13:20Z", None)
                    .unwrap()
            })
            .collect();
        let multi = assemble_index(&store, images, &options).unwrap();
        let entry = |image: &Image, platform: &str| {
            format!(
                "    {{\n      \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n      \"digest\": \"{}\",\n      \"size\": {},\n      \"platform\": {{\n{platform}\n      }}\n    }}",
                image.manifest.digest, image.manifest.size
            )
        };
        let expected = format!(
            "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"application/vnd.oci.image.index.v1+json\",\n  \"manifests\": [\n{},\n{},\n{}\n  ]\n}}",
            entry(
                &multi.images[0],
                "        \"architecture\": \"amd64\",\n        \"os\": \"linux\""
            ),
            entry(
                &multi.images[1],
                "        \"architecture\": \"arm64\",\n        \"os\": \"linux\""
            ),
            entry(
                &multi.images[2],
                "        \"architecture\": \"arm\",\n        \"os\": \"linux\",\n        \"variant\": \"v7\""
            ),
        );
        assert_eq!(
            String::from_utf8(multi.index_bytes.clone()).unwrap(),
            expected
        );
        assert_eq!(multi.index.media_type, media_type::OCI_INDEX);
        assert_eq!(multi.index.size, multi.index_bytes.len() as u64);

        let docker = assemble_index(
            &store,
            multi.images,
            &ImageOptions {
                oci_mediatypes: false,
                ..options
            },
        )
        .unwrap();
        assert_eq!(docker.index.media_type, media_type::DOCKER_MANIFEST_LIST);
    }
}
