//! `--cache-to`/`--cache-from` attributes (BuildKit's `CacheOptionsEntry`) parsed once
//! into typed options. Keys are BuildKit's; a key no backend of that type reads is an
//! error naming it (BuildKit ignores it silently), and so is a bad value.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kiln_oci::{Compression, Reference};

use crate::Error;
use crate::azblob::AzblobConfig;
use crate::gha::GhaConfig;
use crate::s3::S3Config;

/// A credential given as a cache option: never printed (`Debug` shows `***`, and the
/// import's display name leaves its value out).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Options whose values are credentials.
const SECRET_KEYS: &[&str] = &["secret_access_key", "session_token", "token", "ghtoken"];

/// A non-negative Go duration (`24h`, `1h30m`).
pub(crate) fn go_duration(text: &str) -> Option<Duration> {
    let nanos = kiln_oci::go::parse_duration(text).ok()?;
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

/// `name=a;b`: the cache's names in a bucket (default `buildkit`).
pub(crate) fn names(attrs: &BTreeMap<String, String>) -> Vec<String> {
    let names: Vec<String> = attrs
        .get("name")
        .map(|list| {
            list.split(';')
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        vec!["buildkit".to_owned()]
    } else {
        names
    }
}

/// Which results get layers in an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Only the result's own (the layers of the exported image).
    #[default]
    Min,
    /// Every step's.
    Max,
}

/// How layer blobs are written for an export (the image exporter's options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerOptions {
    /// `compression`.
    pub compression: Compression,
    /// `compression-level`.
    pub compression_level: Option<u32>,
    /// `force-compression`: recompress blobs already made in another compression.
    pub force_compression: bool,
    /// `oci-mediatypes` (default true).
    pub oci_mediatypes: bool,
}

/// Where an export goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportTarget {
    /// `type=local,dest=DIR[,tag=TAG]`: an OCI layout directory.
    Local {
        /// `dest`.
        dest: PathBuf,
        /// `tag` (default `latest`): the index.json entry's name.
        tag: String,
    },
    /// `type=registry,ref=REF[,registry.insecure=true]`.
    Registry {
        /// `ref`.
        reference: Reference,
        /// `registry.insecure`: plain HTTP allowed.
        insecure: bool,
    },
    /// `type=inline`: records in the exported image's config.
    Inline,
    /// `type=s3`.
    S3(S3Config),
    /// `type=azblob`.
    Azblob(AzblobConfig),
    /// `type=gha`.
    Gha(GhaConfig),
}

/// A parsed `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// Where it goes.
    pub target: ExportTarget,
    /// `mode`.
    pub mode: CacheMode,
    /// `ignore-error`: a failed export warns instead of failing the build.
    pub ignore_error: bool,
    /// Layer blob options.
    pub layers: LayerOptions,
    /// `image-manifest` (default true): an image manifest rather than an index.
    pub image_manifest: bool,
}

/// Where an import comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportSource {
    /// `type=local,src=DIR[,tag=TAG|digest=DIGEST]`.
    Local {
        /// `src`.
        src: PathBuf,
        /// `tag` (default `latest`).
        tag: String,
        /// `digest`: the manifest, instead of the tag's.
        digest: Option<String>,
    },
    /// `type=registry,ref=REF`: a cache manifest, or an image with an inline cache.
    Registry {
        /// `ref`.
        reference: Reference,
        /// `registry.insecure`.
        insecure: bool,
    },
    /// `type=s3`.
    S3(S3Config),
    /// `type=azblob`.
    Azblob(AzblobConfig),
    /// `type=gha`.
    Gha(GhaConfig),
}

/// A parsed `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Where it comes from.
    pub source: ImportSource,
    /// How the user wrote it, for progress and warnings.
    pub name: String,
}

/// Export keys every layer-writing backend reads.
const LAYER_KEYS: &[&str] = &[
    "mode",
    "ignore-error",
    "compression",
    "compression-level",
    "force-compression",
    "oci-mediatypes",
    "image-manifest",
];

fn unknown_type(kind: &str) -> Error {
    Error::Options(format!(
        "type={kind}: unknown cache type (expected registry, local, inline, gha, s3 or azblob)"
    ))
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    kiln_oci::go::parse_bool(value)
        .ok_or_else(|| Error::Options(format!("{key}={value}: expected true or false")))
}

fn check_keys(
    kind: &str,
    attrs: &BTreeMap<String, String>,
    allowed: &[&[&str]],
) -> Result<(), Error> {
    match attrs
        .keys()
        .find(|k| !allowed.iter().any(|set| set.contains(&k.as_str())))
    {
        Some(key) => Err(Error::Options(format!(
            "type={kind}: unknown cache option {key:?}"
        ))),
        None => Ok(()),
    }
}

fn required<'a>(
    kind: &str,
    attrs: &'a BTreeMap<String, String>,
    key: &str,
) -> Result<&'a str, Error> {
    attrs
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::Options(format!("type={kind}: {key}= is required")))
}

fn reference(kind: &str, attrs: &BTreeMap<String, String>) -> Result<Reference, Error> {
    let text = required(kind, attrs, "ref")?;
    text.parse()
        .map_err(|e: kiln_oci::ReferenceError| Error::Options(format!("ref={text}: {e}")))
}

fn flag(attrs: &BTreeMap<String, String>, key: &str, default: bool) -> Result<bool, Error> {
    attrs.get(key).map_or(Ok(default), |v| parse_bool(key, v))
}

impl ExportOptions {
    /// A `--cache-to` from its type and attributes.
    pub fn parse(kind: &str, attrs: &BTreeMap<String, String>) -> Result<Self, Error> {
        let target = match kind {
            "local" => {
                check_keys(kind, attrs, &[LAYER_KEYS, &["dest", "tag"]])?;
                ExportTarget::Local {
                    dest: PathBuf::from(required(kind, attrs, "dest")?),
                    tag: attrs
                        .get("tag")
                        .cloned()
                        .unwrap_or_else(|| "latest".to_owned()),
                }
            }
            "registry" => {
                check_keys(kind, attrs, &[LAYER_KEYS, &["ref", "registry.insecure"]])?;
                ExportTarget::Registry {
                    reference: reference(kind, attrs)?,
                    insecure: flag(attrs, "registry.insecure", false)?,
                }
            }
            // BuildKit's inline exporter takes no options; `mode` is accepted (and, as
            // there, only the image's own layers are reachable).
            "inline" => {
                check_keys(kind, attrs, &[&["mode", "ignore-error"]])?;
                ExportTarget::Inline
            }
            "s3" => {
                check_keys(kind, attrs, &[LAYER_KEYS, crate::s3::KEYS])?;
                ExportTarget::S3(S3Config::parse(attrs)?)
            }
            "azblob" => {
                check_keys(kind, attrs, &[LAYER_KEYS, crate::azblob::KEYS])?;
                ExportTarget::Azblob(AzblobConfig::parse(attrs)?)
            }
            "gha" => {
                check_keys(kind, attrs, &[LAYER_KEYS, crate::gha::KEYS])?;
                ExportTarget::Gha(GhaConfig::parse(attrs)?)
            }
            _ => return Err(unknown_type(kind)),
        };
        let mode = match attrs.get("mode").map(String::as_str) {
            None | Some("min") => CacheMode::Min,
            Some("max") => CacheMode::Max,
            Some(other) => {
                return Err(Error::Options(format!("mode={other}: expected min or max")));
            }
        };
        let compression = match attrs.get("compression") {
            None => Compression::Gzip,
            Some(name) => Compression::parse(name).ok_or_else(|| {
                Error::Options(format!(
                    "compression={name}: expected uncompressed, gzip, estargz or zstd"
                ))
            })?,
        };
        let compression_level = match attrs.get("compression-level") {
            None => None,
            Some(text) => {
                let level: u32 = text
                    .parse()
                    .ok()
                    .filter(|l| compression.levels().contains(l))
                    .ok_or_else(|| {
                        Error::Options(format!(
                            "compression-level={text}: expected {}..={} for {}",
                            compression.levels().start(),
                            compression.levels().end(),
                            compression.name()
                        ))
                    })?;
                Some(level)
            }
        };
        let oci_mediatypes = flag(attrs, "oci-mediatypes", true)?;
        let image_manifest = match attrs.get("image-manifest") {
            Some(v) => parse_bool("image-manifest", v)?,
            None => oci_mediatypes,
        };
        if image_manifest && !oci_mediatypes {
            return Err(Error::Options(
                "image-manifest=true needs oci-mediatypes=true (an image manifest cache uses OCI media types)".to_owned(),
            ));
        }
        Ok(Self {
            target,
            mode,
            ignore_error: flag(attrs, "ignore-error", false)?,
            layers: LayerOptions {
                compression,
                compression_level,
                force_compression: flag(attrs, "force-compression", false)?,
                oci_mediatypes,
            },
            image_manifest,
        })
    }
}

impl ImportOptions {
    /// A `--cache-from` from its type and attributes. Export-only keys (`mode`,
    /// compression …) are accepted and have no effect, as in BuildKit.
    pub fn parse(kind: &str, attrs: &BTreeMap<String, String>) -> Result<Self, Error> {
        let source = match kind {
            "local" => {
                check_keys(kind, attrs, &[LAYER_KEYS, &["src", "tag", "digest"]])?;
                ImportSource::Local {
                    src: PathBuf::from(required(kind, attrs, "src")?),
                    tag: attrs
                        .get("tag")
                        .cloned()
                        .unwrap_or_else(|| "latest".to_owned()),
                    digest: attrs.get("digest").cloned().filter(|d| !d.is_empty()),
                }
            }
            "registry" => {
                check_keys(kind, attrs, &[LAYER_KEYS, &["ref", "registry.insecure"]])?;
                ImportSource::Registry {
                    reference: reference(kind, attrs)?,
                    insecure: flag(attrs, "registry.insecure", false)?,
                }
            }
            "inline" => {
                return Err(Error::Options(
                    "type=inline is an export; import an inline cache with type=registry,ref=IMAGE"
                        .to_owned(),
                ));
            }
            "s3" => {
                check_keys(kind, attrs, &[LAYER_KEYS, crate::s3::KEYS])?;
                ImportSource::S3(S3Config::parse(attrs)?)
            }
            "azblob" => {
                check_keys(kind, attrs, &[LAYER_KEYS, crate::azblob::KEYS])?;
                ImportSource::Azblob(AzblobConfig::parse(attrs)?)
            }
            "gha" => {
                check_keys(kind, attrs, &[LAYER_KEYS, crate::gha::KEYS])?;
                ImportSource::Gha(GhaConfig::parse(attrs)?)
            }
            _ => return Err(unknown_type(kind)),
        };
        let mut name = format!("type={kind}");
        for (key, value) in attrs {
            if SECRET_KEYS.contains(&key.as_str()) {
                name.push_str(&format!(",{key}=***"));
            } else {
                name.push_str(&format!(",{key}={value}"));
            }
        }
        Ok(Self { source, name })
    }
}

/// Attributes from pairs, for tests.
#[cfg(test)]
pub(crate) fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The error of a backend this build was made without.
#[cfg_attr(
    all(feature = "s3", feature = "azblob", feature = "gha"),
    allow(dead_code)
)]
pub(crate) fn missing_feature(kind: &str) -> Error {
    Error::Options(format!(
        "type={kind}: this kiln was built without the {kind} cache backend (cargo feature `{kind}`)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_defaults_are_buildkits() {
        let options = ExportOptions::parse("local", &attrs(&[("dest", "/c")])).unwrap();
        assert_eq!(
            options.target,
            ExportTarget::Local {
                dest: "/c".into(),
                tag: "latest".to_owned()
            }
        );
        assert_eq!(options.mode, CacheMode::Min);
        assert!(!options.ignore_error);
        assert!(options.image_manifest && options.layers.oci_mediatypes);
        assert_eq!(options.layers.compression, Compression::Gzip);
        // Without OCI media types the default layout is an index.
        let docker = ExportOptions::parse(
            "local",
            &attrs(&[("dest", "/c"), ("oci-mediatypes", "false")]),
        )
        .unwrap();
        assert!(!docker.image_manifest);
    }

    #[test]
    fn export_options_are_checked() {
        let registry = ExportOptions::parse(
            "registry",
            &attrs(&[
                ("ref", "127.0.0.1:5000/app:cache"),
                ("mode", "max"),
                ("ignore-error", "true"),
                ("compression", "zstd"),
                ("compression-level", "3"),
                ("registry.insecure", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(registry.mode, CacheMode::Max);
        assert!(registry.ignore_error);
        assert_eq!(registry.layers.compression, Compression::Zstd);
        assert_eq!(registry.layers.compression_level, Some(3));
        for (kind, bad, message) in [
            ("local", vec![], "dest= is required"),
            ("local", vec![("dest", "/c"), ("mode", "all")], "mode=all"),
            ("local", vec![("dest", "/c"), ("colour", "x")], "\"colour\""),
            (
                "local",
                vec![("dest", "/c"), ("compression", "lz4")],
                "compression=lz4",
            ),
            (
                "local",
                vec![("dest", "/c"), ("compression-level", "30")],
                "compression-level=30",
            ),
            (
                "local",
                vec![
                    ("dest", "/c"),
                    ("oci-mediatypes", "false"),
                    ("image-manifest", "true"),
                ],
                "needs oci-mediatypes",
            ),
            ("registry", vec![], "ref= is required"),
            ("gha", vec![("url", "http://c")], "token= is required"),
            ("ftp", vec![], "unknown cache type"),
        ] {
            let error = ExportOptions::parse(kind, &attrs(&bad))
                .unwrap_err()
                .to_string();
            assert!(error.contains(message), "{kind} {bad:?}: {error}");
        }
    }

    #[test]
    fn import_options() {
        let local =
            ImportOptions::parse("local", &attrs(&[("src", "/c"), ("mode", "max")])).unwrap();
        assert_eq!(
            local.source,
            ImportSource::Local {
                src: "/c".into(),
                tag: "latest".to_owned(),
                digest: None
            }
        );
        assert_eq!(local.name, "type=local,mode=max,src=/c");
        assert!(ImportOptions::parse("inline", &attrs(&[])).is_err());
        assert!(ImportOptions::parse("local", &attrs(&[("dest", "/c")])).is_err());
    }
}
