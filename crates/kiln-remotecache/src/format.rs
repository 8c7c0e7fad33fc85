//! BuildKit's cache-record format (`cache/remotecache/v1/spec.go`): the config blob
//! (`application/vnd.buildkit.cacheconfig.v0`) listing layers (each on its parent) and
//! records (a digest, links to the records of its inputs, and the layers of its
//! results), and the manifest or index that lists the config and the layer blobs, the
//! layers annotated with their uncompressed digest and creation time.
//!
//! Field names, omissions and order are Go's `encoding/json` of BuildKit's structs: a
//! layer's parent 0 and empty fields are left out, a result's `createdAt` never is.

use std::collections::{BTreeMap, HashMap};

use kiln_oci::{Descriptor, Index, Manifest, media_type};
use kiln_solver::cache_key::{self, Link};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The config blob's media type.
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.buildkit.cacheconfig.v0";
/// A layer descriptor's uncompressed digest.
pub const ANNOTATION_UNCOMPRESSED: &str = "containerd.io/uncompressed";
/// A layer descriptor's creation time (RFC 3339).
pub const ANNOTATION_CREATED_AT: &str = "buildkit/createdat";
/// Go's zero `time.Time`, which BuildKit writes for a result without a time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The cache config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// Layer blobs, each on its parent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<CacheLayer>,
    /// Records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<CacheRecord>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A layer: its blob and the index of the layer under it (-1 for none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheLayer {
    /// The blob's digest.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub blob: String,
    /// The parent layer's index, -1 for none (0 is left out, as Go's `omitempty` does).
    #[serde(rename = "parent", default, skip_serializing_if = "is_zero")]
    pub parent_index: i64,
    /// Optional details of the blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<LayerAnnotations>,
}

/// Details of a layer blob some writers put in the config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerAnnotations {
    /// Media type.
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// Uncompressed digest.
    #[serde(rename = "diffID", default, skip_serializing_if = "String::is_empty")]
    pub diff_id: String,
    /// Size.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: i64,
    /// Creation time.
    #[serde(
        rename = "createdAt",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub created_at: String,
}

/// A record: a digest, one list of links per input, and its results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// Results as a top layer (loaded with its parents).
    #[serde(rename = "layers", default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<CacheResult>,
    /// Results as a list of layers (loaded in that order, without parents).
    #[serde(rename = "chains", default, skip_serializing_if = "Vec::is_empty")]
    pub chained_results: Vec<ChainedResult>,
    /// The record's digest.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// Per input, the records it may be (alternatives).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Vec<CacheInput>>,
}

/// A result as its top layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheResult {
    /// Index into the layers.
    #[serde(rename = "layer")]
    pub layer_index: i64,
    /// When it was made.
    #[serde(rename = "createdAt", default)]
    pub created_at: String,
}

/// A result as a list of layers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedResult {
    /// Indexes into the layers, bottom first.
    #[serde(rename = "layers", default)]
    pub layer_indexes: Vec<i64>,
    /// When it was made.
    #[serde(rename = "createdAt", default)]
    pub created_at: String,
}

/// A link to an input's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheInput {
    /// What of the input the op reads.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Index of the linked record.
    #[serde(rename = "link")]
    pub link_index: i64,
}

/// A record to export: a solve's vertex output or content checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRecord {
    /// Its key (links name records by key).
    pub key: String,
    /// Its digest.
    pub digest: String,
    /// Per input, its links (one is enough to match it).
    pub inputs: Vec<Vec<Link>>,
    /// Its result, when exported with layers.
    pub result: Option<ExportResult>,
}

/// A result to export: its layer blobs, bottom first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportResult {
    /// Blob descriptors with [`ANNOTATION_UNCOMPRESSED`] and [`ANNOTATION_CREATED_AT`].
    pub layers: Vec<Descriptor>,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

/// The config for `records`, and the distinct layer blobs it names in order. A link to
/// a record not exported is left out, and a record with an input left without links
/// too (and so on, up the graph).
pub fn build_config(records: &[ExportRecord]) -> (CacheConfig, Vec<Descriptor>) {
    let mut by_key: BTreeMap<&str, &ExportRecord> = BTreeMap::new();
    for record in records {
        let entry = by_key.entry(&record.key).or_insert(record);
        if entry.result.is_none() && record.result.is_some() {
            *entry = record;
        }
    }
    // Drop records with an input whose links all lead nowhere, until none has one.
    loop {
        let dangling: Vec<&str> = by_key
            .iter()
            .filter(|(_, r)| {
                r.inputs
                    .iter()
                    .any(|links| !links.iter().any(|l| by_key.contains_key(l.key.as_str())))
            })
            .map(|(k, _)| *k)
            .collect();
        if dangling.is_empty() {
            break;
        }
        for key in dangling {
            by_key.remove(key);
        }
    }
    let index_of: HashMap<&str, i64> = by_key
        .keys()
        .enumerate()
        .map(|(i, k)| (*k, i as i64))
        .collect();
    let mut config = CacheConfig::default();
    let mut blobs: Vec<Descriptor> = Vec::new();
    let mut layer_of: HashMap<(String, i64), i64> = HashMap::new();
    for record in by_key.values() {
        let mut out = CacheRecord {
            digest: record.digest.clone(),
            inputs: record
                .inputs
                .iter()
                .map(|links| {
                    links
                        .iter()
                        .filter_map(|link| {
                            Some(CacheInput {
                                selector: link.selector.clone(),
                                link_index: *index_of.get(link.key.as_str())?,
                            })
                        })
                        .collect()
                })
                .collect(),
            ..CacheRecord::default()
        };
        if let Some(result) = record.result.as_ref().filter(|r| !r.layers.is_empty()) {
            let mut parent = -1;
            for layer in &result.layers {
                let next = config.layers.len() as i64;
                parent = *layer_of
                    .entry((layer.digest.clone(), parent))
                    .or_insert_with(|| {
                        config.layers.push(CacheLayer {
                            blob: layer.digest.clone(),
                            parent_index: parent,
                            annotations: None,
                        });
                        next
                    });
                if !blobs.iter().any(|b| b.digest == layer.digest) {
                    blobs.push(layer.clone());
                }
            }
            out.results.push(CacheResult {
                layer_index: parent,
                created_at: result.created_at.clone(),
            });
        }
        config.records.push(out);
    }
    (config, blobs)
}

/// The manifest (or index) listing the config and the blobs, and its media type.
pub fn build_manifest(
    config: &Descriptor,
    blobs: &[Descriptor],
    image_manifest: bool,
    oci: bool,
) -> Result<(Vec<u8>, &'static str), Error> {
    let layers: Vec<Descriptor> = blobs
        .iter()
        .map(|b| Descriptor {
            media_type: kiln_oci::convert_layer_media_type(&b.media_type, oci),
            ..b.clone()
        })
        .collect();
    let encode = |e: serde_json::Error| Error::Invalid {
        what: "manifest",
        message: e.to_string(),
    };
    if image_manifest {
        let manifest = Manifest {
            schema_version: 2,
            media_type: media_type::OCI_MANIFEST.to_owned(),
            config: config.clone(),
            layers,
            annotations: BTreeMap::new(),
        };
        return Ok((
            serde_json::to_vec(&manifest).map_err(encode)?,
            media_type::OCI_MANIFEST,
        ));
    }
    let kind = if oci {
        media_type::OCI_INDEX
    } else {
        media_type::DOCKER_MANIFEST_LIST
    };
    let mut manifests = layers;
    manifests.push(config.clone());
    let index = Index {
        schema_version: 2,
        media_type: kind.to_owned(),
        manifests,
        annotations: BTreeMap::new(),
    };
    Ok((serde_json::to_vec(&index).map_err(encode)?, kind))
}

/// One config holding every record of `configs`, as BuildKit combines the caches of
/// several names (azblob) or scopes (gha): indexes of each are shifted past those of
/// the ones before it.
pub fn merge_configs(configs: Vec<CacheConfig>) -> CacheConfig {
    let mut merged = CacheConfig::default();
    for config in configs {
        let (layer_base, record_base) = (merged.layers.len() as i64, merged.records.len() as i64);
        let shift = |index: i64, base: i64| if index < 0 { index } else { index + base };
        merged
            .layers
            .extend(config.layers.into_iter().map(|mut layer| {
                layer.parent_index = shift(layer.parent_index, layer_base);
                layer
            }));
        merged
            .records
            .extend(config.records.into_iter().map(|mut record| {
                for result in &mut record.results {
                    result.layer_index = shift(result.layer_index, layer_base);
                }
                for chained in &mut record.chained_results {
                    for index in &mut chained.layer_indexes {
                        *index = shift(*index, layer_base);
                    }
                }
                for input in record.inputs.iter_mut().flatten() {
                    input.link_index = shift(input.link_index, record_base);
                }
                record
            }));
    }
    merged
}

/// Several configs as JSON, merged ([`merge_configs`]) into one.
pub fn merge_config_bytes(configs: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
    let invalid = |e: serde_json::Error| Error::Invalid {
        what: "config",
        message: e.to_string(),
    };
    let parsed = configs
        .iter()
        .map(|bytes| serde_json::from_slice(bytes).map_err(invalid))
        .collect::<Result<Vec<CacheConfig>, Error>>()?;
    serde_json::to_vec(&merge_configs(parsed)).map_err(invalid)
}

/// Describes each layer of `config` in the config itself, from its blob in `blobs`
/// (media types made OCI's or Docker's as `oci` says), as BuildKit writes a cache kept
/// without a manifest (s3, azblob, gha).
pub fn annotate_layers(config: &mut CacheConfig, blobs: &[Descriptor], oci: bool) {
    let by_digest: HashMap<&str, &Descriptor> =
        blobs.iter().map(|b| (b.digest.as_str(), b)).collect();
    for layer in &mut config.layers {
        let Some(blob) = by_digest.get(layer.blob.as_str()) else {
            continue;
        };
        layer.annotations = Some(LayerAnnotations {
            media_type: kiln_oci::convert_layer_media_type(&blob.media_type, oci),
            diff_id: blob
                .annotations
                .get(ANNOTATION_UNCOMPRESSED)
                .cloned()
                .unwrap_or_default(),
            size: blob.size as i64,
            created_at: blob
                .annotations
                .get(ANNOTATION_CREATED_AT)
                .cloned()
                .unwrap_or_else(|| ZERO_TIME.to_owned()),
        });
    }
}

/// The layer blobs a config describes in itself (the inverse of [`annotate_layers`]).
/// A layer without its media type or uncompressed digest makes the cache invalid, as
/// in BuildKit.
pub fn annotated_layers(config: &CacheConfig) -> Result<Vec<Descriptor>, Error> {
    config
        .layers
        .iter()
        .map(|layer| {
            let invalid = |message: &str| Error::Invalid {
                what: "config",
                message: format!("layer {}: {message}", layer.blob),
            };
            let annotations = layer
                .annotations
                .as_ref()
                .ok_or_else(|| invalid("no annotations"))?;
            if annotations.diff_id.is_empty() {
                return Err(invalid("no diffID"));
            }
            let mut described = BTreeMap::from([(
                ANNOTATION_UNCOMPRESSED.to_owned(),
                annotations.diff_id.clone(),
            )]);
            if !annotations.created_at.is_empty() && annotations.created_at != ZERO_TIME {
                described.insert(
                    ANNOTATION_CREATED_AT.to_owned(),
                    annotations.created_at.clone(),
                );
            }
            Ok(Descriptor {
                media_type: annotations.media_type.clone(),
                digest: layer.blob.clone(),
                size: u64::try_from(annotations.size).map_err(|_| invalid("negative size"))?,
                annotations: described,
                ..Descriptor::default()
            })
        })
        .collect()
}

/// What a cache manifest lists: the config blob and the layer blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// A cache manifest or index.
    Cache {
        /// The cache config's descriptor.
        config: Descriptor,
        /// The layer blobs.
        layers: Vec<Descriptor>,
    },
    /// An image manifest: its config may hold an inline cache.
    Image(Manifest),
}

/// Reads a cache manifest or index (either layout), or an image manifest.
pub fn parse_manifest(bytes: &[u8]) -> Result<Listed, Error> {
    let invalid = |message: String| Error::Invalid {
        what: "manifest",
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if value.get("manifests").is_some() {
        let index: Index = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        let (config, layers): (Vec<Descriptor>, Vec<Descriptor>) = index
            .manifests
            .into_iter()
            .partition(|d| d.media_type == CACHE_CONFIG_MEDIA_TYPE);
        let config = config.into_iter().next().ok_or_else(|| {
            invalid("the index lists no cache config (is it an image index?)".to_owned())
        })?;
        return Ok(Listed::Cache { config, layers });
    }
    let manifest: Manifest = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
    if manifest.config.media_type == CACHE_CONFIG_MEDIA_TYPE {
        Ok(Listed::Cache {
            config: manifest.config,
            layers: manifest.layers,
        })
    } else {
        Ok(Listed::Image(manifest))
    }
}

/// A result found in a cache: its layers, bottom first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedResult {
    /// Layer blob descriptors as the cache lists them, bottom first.
    pub layers: Vec<Descriptor>,
    /// When it was made (Unix seconds), if recorded.
    pub created: Option<i64>,
}

impl CachedResult {
    /// The layers without the cache's own annotations, which describe the cache, not
    /// the layer: an image made of an imported layer must not carry them.
    pub fn image_layers(&self) -> Vec<Descriptor> {
        self.layers
            .iter()
            .map(|layer| {
                let mut layer = layer.clone();
                layer.annotations.remove(ANNOTATION_UNCOMPRESSED);
                layer.annotations.remove(ANNOTATION_CREATED_AT);
                layer
            })
            .collect()
    }
}

/// A cache's results by key (the keys `kiln_solver::cache_key` computes).
#[derive(Debug, Clone, Default)]
pub struct CacheIndex {
    results: HashMap<String, CachedResult>,
    /// Per key, per input: the digest of the content record the input links to (an
    /// input-less record linked without a selector), when it has one.
    content_links: HashMap<String, Vec<Option<String>>>,
}

/// At most this many keys per record, when inputs have alternative links.
const MAX_KEYS_PER_RECORD: usize = 16;

impl CacheIndex {
    /// Indexes a config whose blobs `layers` lists. Records in a loop or linking past
    /// the end are skipped, as are results whose blobs are not listed.
    pub fn new(config: &CacheConfig, layers: &[Descriptor]) -> Self {
        let blobs: HashMap<&str, &Descriptor> =
            layers.iter().map(|d| (d.digest.as_str(), d)).collect();
        let records = &config.records;
        let mut keys: Vec<Option<Vec<String>>> = vec![None; records.len()];
        // Each pass keys the records whose links are keyed; a loop is never keyed.
        loop {
            let mut progress = false;
            for (i, record) in records.iter().enumerate() {
                if keys[i].is_some() {
                    continue;
                }
                let mut choices: Vec<Vec<Link>> = vec![Vec::new()];
                let mut ready = true;
                for input in &record.inputs {
                    let mut next = Vec::new();
                    for link in input {
                        let linked = usize::try_from(link.link_index)
                            .ok()
                            .and_then(|l| keys.get(l));
                        let Some(linked) = linked else { continue };
                        let Some(linked) = linked else {
                            ready = false;
                            continue;
                        };
                        for key in linked {
                            for prefix in &choices {
                                if next.len() < MAX_KEYS_PER_RECORD {
                                    let mut links = prefix.clone();
                                    links.push(Link {
                                        selector: link.selector.clone(),
                                        key: key.clone(),
                                    });
                                    next.push(links);
                                }
                            }
                        }
                    }
                    choices = next;
                }
                if ready {
                    keys[i] = Some(
                        choices
                            .iter()
                            .map(|links| cache_key::record_key(&record.digest, links))
                            .collect(),
                    );
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
        let mut content_links = HashMap::new();
        for (record, keys) in records.iter().zip(&keys) {
            let Some(keys) = keys else { continue };
            let links: Vec<Option<String>> = record
                .inputs
                .iter()
                .map(|input| {
                    input.iter().find_map(|link| {
                        let target = records.get(usize::try_from(link.link_index).ok()?)?;
                        (link.selector.is_empty() && target.inputs.is_empty())
                            .then(|| target.digest.clone())
                    })
                })
                .collect();
            if links.iter().any(Option::is_some) {
                for key in keys {
                    content_links.insert(key.clone(), links.clone());
                }
            }
        }
        let mut results = HashMap::new();
        for (record, keys) in records.iter().zip(&keys) {
            let Some(keys) = keys else { continue };
            let Some(result) = first_result(config, record, &blobs) else {
                continue;
            };
            for key in keys {
                results.entry(key.clone()).or_insert_with(|| result.clone());
            }
        }
        Self {
            results,
            content_links,
        }
    }

    /// Per input of the record keyed `key`, the digest of the content record it links
    /// to, if any: what a record matched by its inputs' keys says their content was.
    pub fn content_links(&self, key: &str) -> Option<&Vec<Option<String>>> {
        self.content_links.get(key)
    }

    /// The result recorded under `key`.
    pub fn get(&self, key: &str) -> Option<&CachedResult> {
        self.results.get(key)
    }

    /// How many keys have a result.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether no key has a result.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }
}

/// A record's first result whose layers are all listed.
fn first_result(
    config: &CacheConfig,
    record: &CacheRecord,
    blobs: &HashMap<&str, &Descriptor>,
) -> Option<CachedResult> {
    let layer = |i: i64| -> Option<&CacheLayer> {
        usize::try_from(i).ok().and_then(|i| config.layers.get(i))
    };
    let descriptor = |l: &CacheLayer| blobs.get(l.blob.as_str()).map(|d| (*d).clone());
    for result in &record.results {
        let mut chain = Vec::new();
        let mut at = result.layer_index;
        while at != -1 && chain.len() <= config.layers.len() {
            let Some(l) = layer(at) else { break };
            chain.push(l);
            at = l.parent_index;
        }
        if at != -1 {
            continue;
        }
        chain.reverse();
        if let Some(layers) = chain
            .into_iter()
            .map(descriptor)
            .collect::<Option<Vec<_>>>()
        {
            return Some(CachedResult {
                layers,
                created: parse_time(&result.created_at),
            });
        }
    }
    for result in &record.chained_results {
        let layers: Option<Vec<Descriptor>> = result
            .layer_indexes
            .iter()
            .map(|i| layer(*i).and_then(descriptor))
            .collect();
        if let Some(layers) = layers.filter(|l| !l.is_empty()) {
            return Some(CachedResult {
                layers,
                created: parse_time(&result.created_at),
            });
        }
    }
    None
}

/// Unix seconds of an RFC 3339 time (`2026-12-03T02:12:51.99Z`, offsets too); `None`
/// for Go's zero time or text that is not one.
pub fn parse_time(text: &str) -> Option<i64> {
    if text.is_empty() || text == ZERO_TIME {
        return None;
    }
    let number = |s: &str| s.parse::<i64>().ok();
    let (date, time) = text.split_once(['T', 't'])?;
    let mut date_parts = date.splitn(3, '-');
    let year = number(date_parts.next()?)?;
    let month = number(date_parts.next()?)?;
    let day = number(date_parts.next()?)?;
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(at) => time.split_at(at),
        None => return None,
    };
    let clock = clock.split('.').next()?;
    let mut clock_parts = clock.splitn(3, ':');
    let hour = number(clock_parts.next()?)?;
    let minute = number(clock_parts.next()?)?;
    let second = number(clock_parts.next()?)?;
    let offset_secs = match offset.as_bytes().first()? {
        b'Z' | b'z' => 0,
        sign => {
            let (h, m) = offset[1..].split_once(':')?;
            let secs = number(h)? * 3600 + number(m)? * 60;
            if *sign == b'-' { -secs } else { secs }
        }
    };
    let days =
        kiln_oci::days_from_civil(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?);
    Some(days * 86400 + hour * 3600 + minute * 60 + second - offset_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u8) -> Descriptor {
        Descriptor {
            media_type: media_type::OCI_LAYER_GZIP.to_owned(),
            digest: format!("sha256:{}", format!("{n:02x}").repeat(32)),
            size: 10,
            annotations: BTreeMap::from([(
                ANNOTATION_UNCOMPRESSED.to_owned(),
                format!("sha256:{}", format!("{:02x}", n + 100).repeat(32)),
            )]),
            ..Descriptor::default()
        }
    }

    fn record(
        key: &str,
        digest: &str,
        inputs: &[&str],
        layers: Option<Vec<Descriptor>>,
    ) -> ExportRecord {
        ExportRecord {
            key: key.to_owned(),
            digest: digest.to_owned(),
            inputs: inputs
                .iter()
                .map(|k| {
                    vec![Link {
                        selector: String::new(),
                        key: (*k).to_owned(),
                    }]
                })
                .collect(),
            result: layers.map(|layers| ExportResult {
                layers,
                created_at: "2026-12-03T02:12:51.963571718Z".to_owned(),
            }),
        }
    }

    /// A chain as the worker keys it: a source, then a step on it.
    fn chain() -> Vec<ExportRecord> {
        let source_digest = cache_key::root_key(&cache_key::digest_of(b"image"), 0);
        let step_digest = cache_key::root_key(&cache_key::digest_of(b"run"), 0);
        let step_key = cache_key::record_key(
            &step_digest,
            &[Link {
                selector: String::new(),
                key: source_digest.clone(),
            }],
        );
        vec![
            record(&source_digest, &source_digest, &[], Some(vec![blob(1)])),
            record(
                &step_key,
                &step_digest,
                &[&source_digest],
                Some(vec![blob(1), blob(2)]),
            ),
        ]
    }

    #[test]
    fn a_config_round_trips_to_the_same_keys() {
        let records = chain();
        let (config, blobs) = build_config(&records);
        assert_eq!(blobs, vec![blob(1), blob(2)]);
        // The shared base layer is one layer entry.
        assert_eq!(config.layers.len(), 2);
        let json = serde_json::to_string(&config).unwrap();
        // Go's encoding: parent 0 left out, -1 kept; links always written.
        assert!(json.contains(r#""parent":-1"#), "{json}");
        assert!(!json.contains(r#""parent":0"#), "{json}");
        assert!(json.contains(r#""link":"#), "{json}");
        let parsed: CacheConfig = serde_json::from_str(&json).unwrap();
        let index = CacheIndex::new(&parsed, &blobs);
        assert_eq!(index.len(), 2);
        let step = index.get(&records[1].key).unwrap();
        assert_eq!(step.layers, vec![blob(1), blob(2)]);
        // The cache's own annotations are not the layer's.
        assert!(step.image_layers().iter().all(|l| l.annotations.is_empty()));
        assert_eq!(step.created, parse_time("2026-12-03T02:12:51Z"));
        assert!(index.get("sha256:other").is_none());
    }

    #[test]
    fn merged_configs_answer_every_key_of_each() {
        let first = chain();
        // Another chain whose step sits on a different base.
        let base = cache_key::root_key(&cache_key::digest_of(b"other image"), 0);
        let step_digest = cache_key::root_key(&cache_key::digest_of(b"run"), 0);
        let step_key = cache_key::record_key(
            &step_digest,
            &[Link {
                selector: String::new(),
                key: base.clone(),
            }],
        );
        let second = vec![
            record(&base, &base, &[], Some(vec![blob(3)])),
            record(
                &step_key,
                &step_digest,
                &[&base],
                Some(vec![blob(3), blob(4)]),
            ),
        ];
        let (a, blobs_a) = build_config(&first);
        let (b, blobs_b) = build_config(&second);
        let merged = merge_configs(vec![a, b]);
        let blobs: Vec<Descriptor> = blobs_a.into_iter().chain(blobs_b).collect();
        let index = CacheIndex::new(&merged, &blobs);
        assert_eq!(index.len(), 4);
        assert_eq!(
            index.get(&first[1].key).unwrap().layers,
            vec![blob(1), blob(2)]
        );
        assert_eq!(index.get(&step_key).unwrap().layers, vec![blob(3), blob(4)]);
    }

    #[test]
    fn results_without_listed_blobs_and_dangling_links_are_dropped() {
        let mut records = chain();
        records.push(record(
            "sha256:k",
            "sha256:d",
            &["sha256:missing"],
            Some(vec![blob(3)]),
        ));
        let (config, blobs) = build_config(&records);
        assert_eq!(config.records.len(), 2);
        let index = CacheIndex::new(&config, &blobs[..1]);
        assert!(index.get(&records[0].key).is_some());
        assert!(index.get(&records[1].key).is_none());
    }

    #[test]
    fn buildkits_config_is_read() {
        // Written by BuildKit v0.24 (`COPY a /a` then `COPY b /b` from scratch).
        let json = r#"{"layers":[{"blob":"sha256:5466b79486cfd1879e733a7f6b74c579d5a7ddf4662fbc946df7a5b0e6834d2d","parent":1},{"blob":"sha256:881a7e0b0e6a991497e58dc705a3d6648afe06a9248386ac6b470c10f5bc61fb","parent":-1}],"records":[{"layers":[{"layer":1,"createdAt":"2026-12-03T02:12:51.963571718Z"}],"digest":"sha256:26da9ad77b346ebfc238bc618ec8a219818ef86e18984907fab158a75df1954a","inputs":[[{"link":3}]]},{"layers":[{"layer":0,"createdAt":"2026-12-03T02:12:51.997251108Z"}],"digest":"sha256:6cd536d720c175debdaa132859d60e7bb974a1d59e73c1ff0b521b142a125842","inputs":[[{"link":0}],[{"link":2}]]},{"digest":"sha256:881d55faa292605d89a0cb35e432c4aad1ac40575e6bb0767a24cfb8d59157d3"},{"digest":"sha256:c24a47b576469b52903dd7e5045a62fee5855b447dee1771d67b829458d2c08e"}]}"#;
        let config: CacheConfig = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&config).unwrap(), json);
        let blobs: Vec<Descriptor> = config
            .layers
            .iter()
            .map(|l| Descriptor {
                digest: l.blob.clone(),
                ..blob(0)
            })
            .collect();
        let index = CacheIndex::new(&config, &blobs);
        // Both steps are keyed (with kiln's keys, which BuildKit's do not match yet).
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn loops_are_never_keyed() {
        let config = CacheConfig {
            layers: vec![CacheLayer {
                blob: blob(1).digest,
                parent_index: -1,
                annotations: None,
            }],
            records: vec![
                CacheRecord {
                    digest: "sha256:a".to_owned(),
                    inputs: vec![vec![CacheInput {
                        selector: String::new(),
                        link_index: 1,
                    }]],
                    results: vec![CacheResult {
                        layer_index: 0,
                        created_at: ZERO_TIME.to_owned(),
                    }],
                    ..CacheRecord::default()
                },
                CacheRecord {
                    digest: "sha256:b".to_owned(),
                    inputs: vec![vec![CacheInput {
                        selector: String::new(),
                        link_index: 0,
                    }]],
                    ..CacheRecord::default()
                },
            ],
        };
        assert!(CacheIndex::new(&config, &[blob(1)]).is_empty());
    }

    #[test]
    fn both_layouts() {
        let config = Descriptor {
            media_type: CACHE_CONFIG_MEDIA_TYPE.to_owned(),
            digest: blob(9).digest,
            size: 5,
            ..Descriptor::default()
        };
        for (image_manifest, oci, kind) in [
            (true, true, media_type::OCI_MANIFEST),
            (false, true, media_type::OCI_INDEX),
            (false, false, media_type::DOCKER_MANIFEST_LIST),
        ] {
            let (bytes, media) = build_manifest(&config, &[blob(1)], image_manifest, oci).unwrap();
            assert_eq!(media, kind);
            let Listed::Cache { config: c, layers } = parse_manifest(&bytes).unwrap() else {
                panic!("not a cache manifest");
            };
            assert_eq!(c, config);
            assert_eq!(layers.len(), 1);
            let expected = if oci {
                media_type::OCI_LAYER_GZIP
            } else {
                media_type::DOCKER_LAYER_GZIP
            };
            assert_eq!(layers[0].media_type, expected);
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:10Z"), Some(10));
        assert_eq!(parse_time("1970-01-01T01:00:10.5+01:00"), Some(10));
        assert_eq!(parse_time(ZERO_TIME), None);
        assert_eq!(parse_time("yesterday"), None);
    }
}
