//! `type=inline`: the records go into the exported image's config, under
//! `moby.buildkit.cache.v0` (base64 of the records' JSON, as Go encodes `[]byte`), each
//! result naming the image's own layers by position: `layer` is the index of its top
//! layer in the image's layer list (BuildKit's `inline.go`). Results whose layers are
//! not the image's first layers are left out, so only the image's steps are reusable.
//! An import reads them back from an image (`type=registry,ref=IMAGE`).

use base64::Engine as _;
use kiln_oci::{Descriptor, Manifest};

use crate::Error;
use crate::format::{CacheConfig, CacheLayer, CacheRecord, ExportRecord, build_config};

/// The image config key of an inline cache.
pub const INLINE_CACHE_KEY: &str = "moby.buildkit.cache.v0";

/// The value of [`INLINE_CACHE_KEY`] for `records`, given the image's layer blobs
/// (bottom first); `None` when no result is made of the image's layers.
pub fn inline_cache(
    records: &[ExportRecord],
    image_layers: &[Descriptor],
) -> Result<Option<String>, Error> {
    let (config, _) = build_config(records);
    let chain_of = |mut at: i64| {
        let mut chain = Vec::new();
        while let Some(layer) = usize::try_from(at).ok().and_then(|i| config.layers.get(i)) {
            chain.push(layer.blob.as_str());
            at = layer.parent_index;
            if chain.len() > config.layers.len() {
                break;
            }
        }
        chain.reverse();
        chain
    };
    let mut any = false;
    let records: Vec<CacheRecord> = config
        .records
        .iter()
        .map(|record| {
            let mut out = record.clone();
            out.results = record
                .results
                .iter()
                .filter_map(|result| {
                    let chain = chain_of(result.layer_index);
                    let on_image = !chain.is_empty()
                        && chain.len() <= image_layers.len()
                        && chain
                            .iter()
                            .zip(image_layers)
                            .all(|(blob, layer)| *blob == layer.digest);
                    on_image.then(|| {
                        any = true;
                        crate::format::CacheResult {
                            layer_index: chain.len() as i64 - 1,
                            created_at: result.created_at.clone(),
                        }
                    })
                })
                .collect();
            out
        })
        .collect();
    if !any {
        return Ok(None);
    }
    let json = serde_json::to_vec(&records).map_err(|e| Error::Invalid {
        what: "inline cache",
        message: e.to_string(),
    })?;
    Ok(Some(base64::engine::general_purpose::STANDARD.encode(json)))
}

/// The cache config an image carries inline (its layers are the image's, each on the
/// one before), or `None` when its config has none.
pub fn from_image(manifest: &Manifest, image_config: &[u8]) -> Result<Option<CacheConfig>, Error> {
    let invalid = |message: String| Error::Invalid {
        what: "inline cache",
        message,
    };
    let config: serde_json::Value =
        serde_json::from_slice(image_config).map_err(|e| invalid(e.to_string()))?;
    let Some(encoded) = config.get(INLINE_CACHE_KEY).and_then(|v| v.as_str()) else {
        return Ok(None);
    };
    let json = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| invalid(e.to_string()))?;
    let records: Vec<CacheRecord> =
        serde_json::from_slice(&json).map_err(|e| invalid(e.to_string()))?;
    let layers = manifest
        .layers
        .iter()
        .enumerate()
        .map(|(i, layer)| CacheLayer {
            blob: layer.digest.clone(),
            parent_index: i as i64 - 1,
            annotations: None,
        })
        .collect();
    Ok(Some(CacheConfig { layers, records }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{CacheIndex, ExportResult};
    use kiln_solver::cache_key::Link;

    fn layer(n: u8) -> Descriptor {
        Descriptor {
            media_type: kiln_oci::media_type::OCI_LAYER_GZIP.to_owned(),
            digest: format!("sha256:{}", format!("{n:02x}").repeat(32)),
            size: 1,
            ..Descriptor::default()
        }
    }

    #[test]
    fn records_ride_in_the_image_config_and_come_back() {
        let base = ExportRecord {
            key: "sha256:base".to_owned(),
            digest: "sha256:base".to_owned(),
            inputs: vec![],
            result: Some(ExportResult {
                layers: vec![layer(1)],
                created_at: String::new(),
            }),
        };
        let base_link = Link {
            selector: String::new(),
            key: "sha256:base".to_owned(),
        };
        let step = ExportRecord {
            key: kiln_solver::cache_key::record_key("sha256:d", std::slice::from_ref(&base_link)),
            digest: "sha256:d".to_owned(),
            inputs: vec![vec![base_link]],
            result: Some(ExportResult {
                layers: vec![layer(1), layer(2)],
                created_at: String::new(),
            }),
        };
        let other = ExportRecord {
            key: "sha256:other".to_owned(),
            digest: "sha256:o".to_owned(),
            inputs: vec![],
            result: Some(ExportResult {
                layers: vec![layer(3)],
                created_at: String::new(),
            }),
        };
        let image_layers = vec![layer(1), layer(2)];
        let value = inline_cache(&[base, step.clone(), other], &image_layers)
            .unwrap()
            .unwrap();
        let manifest = Manifest {
            schema_version: 2,
            layers: image_layers.clone(),
            ..Manifest::default()
        };
        let image_config = serde_json::json!({ INLINE_CACHE_KEY: value }).to_string();
        let config = from_image(&manifest, image_config.as_bytes())
            .unwrap()
            .unwrap();
        let index = CacheIndex::new(&config, &image_layers);
        assert_eq!(index.get(&step.key).unwrap().layers, image_layers);
        // Not made of the image's layers: not inline.
        assert!(index.get("sha256:other").is_none());
        assert!(from_image(&manifest, b"{}").unwrap().is_none());
    }
}
