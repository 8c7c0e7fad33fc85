//! Exporter options: an output's type and `key=value` attributes (as `--output` gives
//! them) into typed settings, with BuildKit's names, defaults and checks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_oci::{Compression, Reference};

use crate::Error;

/// An exporter and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exporter {
    /// `image` / `registry`: an image in the store, pushed when asked.
    Image(ImageExport),
    /// `oci`: an OCI image layout (tar or directory).
    Oci(ArchiveExport),
    /// `docker`: the same layout with Docker media types, loadable by `docker load`.
    Docker(ArchiveExport),
    /// `local`: the result's files in a directory.
    Local {
        /// The directory.
        dest: PathBuf,
    },
    /// `tar`: the result's files as a tar.
    Tar {
        /// Where the tar goes.
        dest: Dest,
    },
    /// `cacheonly`: nothing leaves the build cache.
    CacheOnly,
}

/// Where an archive goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A file (written to a temp name, then renamed).
    File(PathBuf),
    /// A directory (`tar=false`: an OCI layout directory).
    Dir(PathBuf),
    /// Standard output (`dest=-`).
    Stdout,
}

/// Annotations by where they go, each with the platform it is limited to (if any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// `annotation.K` / `annotation-manifest.K`: on the image manifest.
    pub manifest: Vec<Annotation>,
    /// `annotation-manifest-descriptor.K`: on the manifest's descriptor in an index.
    pub manifest_descriptor: Vec<Annotation>,
    /// `annotation-index.K`: on the index.
    pub index: Vec<Annotation>,
    /// `annotation-index-descriptor.K`: on the index's descriptor in a layout.
    pub index_descriptor: Vec<Annotation>,
}

/// One annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// `linux/amd64` when given as `annotation-manifest[linux/amd64].K`.
    pub platform: Option<String>,
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

impl Annotations {
    /// The annotations of one kind that apply to a platform, as a map.
    pub fn for_platform(list: &[Annotation], platform: &str) -> BTreeMap<String, String> {
        list.iter()
            .filter(|a| a.platform.as_deref().is_none_or(|p| p == platform))
            .map(|a| (a.key.clone(), a.value.clone()))
            .collect()
    }
}

/// How an image is assembled (shared by `image`, `oci` and `docker`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// Image names, normalized (`demo` → `docker.io/library/demo:latest`).
    pub names: Vec<String>,
    /// Compression of new layers (and of all layers with `force_compression`).
    pub compression: Compression,
    /// The compression level, when given.
    pub compression_level: Option<u32>,
    /// Recompress layers that exist in another compression.
    pub force_compression: bool,
    /// OCI media types instead of Docker's.
    pub oci_mediatypes: bool,
    /// Annotations.
    pub annotations: Annotations,
    /// `source-date-epoch`: the image's creation time, overriding the build's.
    pub source_date_epoch: Option<i64>,
    /// `rewrite-timestamp`: clamp new layers' file times to `SOURCE_DATE_EPOCH`.
    pub rewrite_timestamp: bool,
    /// `buildinfo=true|all|imageconfig`: the build's sources in the config
    /// (`moby.buildkit.buildinfo.v1`). BuildKit no longer writes it by default.
    pub buildinfo: bool,
    /// What was adjusted, as BuildKit warns (zstd turns OCI media types on).
    pub notices: Vec<String>,
}

/// The `image` exporter's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageExport {
    /// How the image is assembled.
    pub image: ImageOptions,
    /// Push to the registry of each name.
    pub push: bool,
    /// Push by digest only (no tag).
    pub push_by_digest: bool,
    /// Allow plain-HTTP registries.
    pub insecure: bool,
    /// Name an unnamed image `<prefix>@<digest>`.
    pub dangling_name_prefix: Option<String>,
    /// Also name the image `<name>@<digest>`.
    pub name_canonical: bool,
}

/// The `oci` / `docker` exporters' settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveExport {
    /// How the image is assembled.
    pub image: ImageOptions,
    /// Where the layout goes.
    pub dest: Dest,
}

/// The attributes of one output, consumed as they are recognised.
struct Attrs<'a> {
    exporter: &'a str,
    map: BTreeMap<String, String>,
}

impl Attrs<'_> {
    fn error(&self, message: impl Into<String>) -> Error {
        Error::Option {
            exporter: self.exporter.to_owned(),
            message: message.into(),
        }
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.map.remove(key)
    }

    /// A boolean as Go's `strconv.ParseBool` reads it; an empty value means `default`.
    fn bool(&mut self, key: &str, default: bool) -> Result<bool, Error> {
        let Some(value) = self.take(key) else {
            return Ok(default);
        };
        if value.is_empty() {
            return Ok(default);
        }
        kiln_oci::go::parse_bool(&value)
            .ok_or_else(|| self.error(format!("non-bool value {value:?} specified for {key}")))
    }

    /// Fails on the first attribute nobody recognised.
    fn finish(self) -> Result<(), Error> {
        match self.map.keys().next() {
            Some(key) => Err(self.error(format!("unknown option {key:?}"))),
            None => Ok(()),
        }
    }
}

/// An image name as a reference, or the option error naming it.
pub(crate) fn parse_image_name(name: &str) -> Result<Reference, Error> {
    name.parse()
        .map_err(|e: kiln_oci::ReferenceError| Error::Option {
            exporter: "image".to_owned(),
            message: format!("invalid image name {name:?}: {e}"),
        })
}

/// `demo` → `docker.io/library/demo:latest`; `name@digest` kept.
pub fn normalize_name(name: &str) -> Result<String, Error> {
    let reference = parse_image_name(name)?;
    Ok(if reference.digest.is_some() && reference.tag.is_none() {
        reference.to_string()
    } else {
        reference.tag_name_only().to_string()
    })
}

fn image_options(attrs: &mut Attrs<'_>, oci_default: bool) -> Result<ImageOptions, Error> {
    let mut options = ImageOptions::default();
    if let Some(names) = attrs.take("name") {
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            options.names.push(normalize_name(name)?);
        }
    }
    if let Some(value) = attrs.take("compression") {
        options.compression = Compression::parse(&value).ok_or_else(|| {
            attrs.error(format!(
                "unsupported compression type {value:?} (use uncompressed, gzip, estargz or zstd)"
            ))
        })?;
    }
    if let Some(value) = attrs.take("compression-level") {
        let level: u32 = value
            .parse()
            .map_err(|_| attrs.error(format!("non-integer compression-level {value:?}")))?;
        let range = options.compression.levels();
        if !range.contains(&level) {
            return Err(attrs.error(format!(
                "compression-level {level} is out of range for {} ({}-{})",
                options.compression,
                range.start(),
                range.end()
            )));
        }
        options.compression_level = Some(level);
    }
    options.force_compression = attrs.bool("force-compression", false)?;
    options.oci_mediatypes = attrs.bool("oci-mediatypes", oci_default)?;
    if options.compression.needs_oci_media_types() && !options.oci_mediatypes {
        options.oci_mediatypes = true;
        options.notices.push(format!(
            "forcibly turning on oci-mediatype mode for {}",
            options.compression
        ));
    }
    // Existing layers cannot become eStargz without being rewritten (BuildKit forces it).
    if options.compression == Compression::Estargz && !options.force_compression {
        options.force_compression = true;
        options
            .notices
            .push("forcibly turning on force-compression mode for estargz".to_owned());
    }
    if let Some(value) = attrs.take("source-date-epoch") {
        let epoch = value
            .parse()
            .map_err(|_| attrs.error(format!("invalid source-date-epoch {value:?}")))?;
        options.source_date_epoch = Some(epoch);
    }
    options.rewrite_timestamp = attrs.bool("rewrite-timestamp", false)?;
    // Build info is deprecated in BuildKit and not written unless asked for.
    options.buildinfo = match attrs.take("buildinfo").as_deref() {
        None | Some("" | "none" | "metadata" | "false" | "0") => false,
        Some("all" | "imageconfig" | "true" | "1") => true,
        Some(other) => {
            return Err(attrs.error(format!(
                "invalid buildinfo {other:?} (all, imageconfig, metadata or none)"
            )));
        }
    };
    attrs.bool("buildinfo-attrs", false)?;
    let keys: Vec<String> = attrs
        .map
        .keys()
        .filter(|k| k.starts_with("annotation"))
        .cloned()
        .collect();
    for key in keys {
        let value = attrs.take(&key).unwrap_or_default();
        let (kind, rest) = key
            .split_once('.')
            .ok_or_else(|| attrs.error(format!("invalid annotation key {key:?}")))?;
        let (kind, platform) = match kind.split_once('[') {
            Some((kind, platform)) => {
                let platform = platform.strip_suffix(']').ok_or_else(|| {
                    attrs.error(format!("invalid annotation key {key:?}: unclosed ["))
                })?;
                (kind, Some(platform.to_owned()))
            }
            None => (kind, None),
        };
        let annotation = Annotation {
            platform,
            key: rest.to_owned(),
            value,
        };
        let list = match kind {
            "annotation" | "annotation-manifest" => &mut options.annotations.manifest,
            "annotation-manifest-descriptor" => &mut options.annotations.manifest_descriptor,
            "annotation-index" => &mut options.annotations.index,
            "annotation-index-descriptor" => &mut options.annotations.index_descriptor,
            _ => return Err(attrs.error(format!("unrecognized annotation type {kind:?}"))),
        };
        list.push(annotation);
    }
    Ok(options)
}

/// An archive's destination: `dest=-` or none is standard output; `tar=false` a directory.
fn archive_dest(attrs: &mut Attrs<'_>) -> Result<Dest, Error> {
    let as_tar = attrs.bool("tar", true)?;
    let dest = attrs.take("dest").filter(|d| !d.is_empty());
    Ok(match (dest, as_tar) {
        (None, false) => return Err(attrs.error("tar=false needs dest=DIRECTORY")),
        (Some(dest), false) => Dest::Dir(PathBuf::from(dest)),
        (None, true) => Dest::Stdout,
        (Some(dest), true) if dest == "-" => Dest::Stdout,
        (Some(dest), true) => Dest::File(PathBuf::from(dest)),
    })
}

impl ImageOptions {
    /// The time an archive's files carry: `source-date-epoch` when given, else the
    /// image's creation time (`created`, seconds), never before 1970.
    pub fn archive_mtime(&self, created: i64) -> u64 {
        self.source_date_epoch.unwrap_or(created).max(0) as u64
    }
}

impl ImageExport {
    /// The names the image gets: its names, `name@digest` for each with
    /// `name-canonical`, and `prefix@digest` for an unnamed image with
    /// `dangling-name-prefix`.
    pub fn image_names(&self, digest: &str) -> Vec<String> {
        let mut names = self.image.names.clone();
        if self.name_canonical {
            for name in &self.image.names {
                if let Ok(reference) = name.parse::<Reference>() {
                    names.push(format!("{}/{}@{digest}", reference.domain, reference.path));
                }
            }
        }
        if let (true, Some(prefix)) = (names.is_empty(), &self.dangling_name_prefix) {
            names.push(format!("{prefix}@{digest}"));
        }
        names
    }
}

impl Exporter {
    /// The exporter for `type` with its attributes (keys as BuildKit names them).
    pub fn parse(kind: &str, attrs: &BTreeMap<String, String>) -> Result<Self, Error> {
        let mut attrs = Attrs {
            exporter: kind,
            map: attrs.clone(),
        };
        let exporter = match kind {
            "image" | "registry" => {
                let image = image_options(&mut attrs, false)?;
                let push = attrs.bool("push", kind == "registry")?;
                let export = ImageExport {
                    image,
                    push,
                    push_by_digest: attrs.bool("push-by-digest", false)?,
                    insecure: attrs.bool("registry.insecure", false)?,
                    dangling_name_prefix: attrs.take("dangling-name-prefix"),
                    name_canonical: attrs.bool("name-canonical", false)?,
                };
                // Options for containerd's image store; the OCI worker has none.
                attrs.bool("unpack", false)?;
                attrs.bool("store", true)?;
                if export.push && export.image.names.is_empty() {
                    return Err(attrs.error("push needs an image name (name=... or --tag)"));
                }
                Self::Image(export)
            }
            "oci" | "docker" => {
                let image = image_options(&mut attrs, kind == "oci")?;
                let dest = archive_dest(&mut attrs)?;
                let export = ArchiveExport { image, dest };
                if kind == "oci" {
                    Self::Oci(export)
                } else {
                    Self::Docker(export)
                }
            }
            "local" => {
                let dest = attrs
                    .take("dest")
                    .filter(|d| !d.is_empty())
                    .ok_or_else(|| attrs.error("dest is required for local exporter"))?;
                Self::Local {
                    dest: PathBuf::from(dest),
                }
            }
            "tar" => Self::Tar {
                dest: match attrs.take("dest").filter(|d| !d.is_empty()) {
                    None => Dest::Stdout,
                    Some(d) if d == "-" => Dest::Stdout,
                    Some(d) => Dest::File(PathBuf::from(d)),
                },
            },
            "cacheonly" => Self::CacheOnly,
            other => {
                return Err(Error::Option {
                    exporter: other.to_owned(),
                    message: "unknown exporter type (use image, registry, local, tar, oci, docker or cacheonly)".to_owned(),
                });
            }
        };
        // Options every exporter takes and that change nothing here.
        attrs.take("platform-split");
        attrs.finish()?;
        Ok(exporter)
    }

    /// The image settings, for exporters that make an image.
    pub fn image_options(&self) -> Option<&ImageOptions> {
        match self {
            Self::Image(e) => Some(&e.image),
            Self::Oci(e) | Self::Docker(e) => Some(&e.image),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: &str, attrs: &[(&str, &str)]) -> Result<Exporter, Error> {
        let map = attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Exporter::parse(kind, &map)
    }

    #[test]
    fn image_defaults_and_registry_push() {
        let Exporter::Image(e) = parse("registry", &[("name", "demo,127.0.0.1:5000/x:1")]).unwrap()
        else {
            panic!("not an image exporter")
        };
        assert!(e.push);
        assert!(!e.image.oci_mediatypes);
        assert_eq!(e.image.compression, Compression::Gzip);
        assert_eq!(
            e.image.names,
            ["docker.io/library/demo:latest", "127.0.0.1:5000/x:1"]
        );
    }

    #[test]
    fn canonical_and_dangling_names() {
        let digest = "sha256:0123";
        let Exporter::Image(named) =
            parse("image", &[("name", "demo:1"), ("name-canonical", "true")]).unwrap()
        else {
            panic!("not an image exporter")
        };
        assert_eq!(
            named.image_names(digest),
            [
                "docker.io/library/demo:1",
                "docker.io/library/demo@sha256:0123"
            ]
        );
        let Exporter::Image(unnamed) =
            parse("image", &[("dangling-name-prefix", "build")]).unwrap()
        else {
            panic!("not an image exporter")
        };
        assert_eq!(unnamed.image_names(digest), ["build@sha256:0123"]);
    }

    #[test]
    fn zstd_turns_oci_media_types_on() {
        let Exporter::Docker(e) = parse(
            "docker",
            &[
                ("compression", "zstd"),
                ("compression-level", "19"),
                ("dest", "x.tar"),
            ],
        )
        .unwrap() else {
            panic!("not docker")
        };
        assert!(e.image.oci_mediatypes);
        assert_eq!(e.image.compression_level, Some(19));
        assert_eq!(e.dest, Dest::File("x.tar".into()));
        assert_eq!(e.image.notices.len(), 1);
    }

    #[test]
    fn bad_options_are_named() {
        let err = |kind, attrs| parse(kind, attrs).unwrap_err().to_string();
        assert!(err("image", &[("compression", "lz4")]).contains("lz4"));
        assert!(
            err(
                "image",
                &[("compression", "gzip"), ("compression-level", "12")]
            )
            .contains("out of range for gzip (0-9)")
        );
        assert!(err("image", &[("push", "yes")]).contains("non-bool"));
        assert!(err("oci", &[("dest", "a"), ("colour", "x")]).contains("\"colour\""));
        assert!(err("local", &[]).contains("dest is required"));
        assert!(err("image", &[("push", "true")]).contains("needs an image name"));
        assert!(err("oci", &[("tar", "false")]).contains("DIRECTORY"));
    }

    #[test]
    fn annotations_by_kind_and_platform() {
        let Exporter::Oci(e) = parse(
            "oci",
            &[
                ("annotation.a", "1"),
                ("annotation-index.b", "2"),
                ("annotation-manifest[linux/arm64].c", "3"),
                ("annotation-manifest-descriptor.d", "4"),
            ],
        )
        .unwrap() else {
            panic!("not oci")
        };
        assert!(e.image.oci_mediatypes);
        assert_eq!(e.dest, Dest::Stdout);
        let a = &e.image.annotations;
        assert_eq!(
            Annotations::for_platform(&a.manifest, "linux/amd64"),
            BTreeMap::from([("a".to_owned(), "1".to_owned())])
        );
        assert_eq!(
            Annotations::for_platform(&a.manifest, "linux/arm64").len(),
            2
        );
        assert_eq!(a.index[0].key, "b");
        assert_eq!(a.manifest_descriptor[0].value, "4");
    }
}
