//! Source ops, one file per scheme: images from registries (and OCI layouts),
//! local contexts, http downloads, git.

pub(crate) mod dockerignore;
pub(crate) mod git;
pub(crate) mod http;
pub(crate) mod image;
pub(crate) mod local;

use kiln_llb::{LoadedDefinition, Platform, pb};

use crate::{Error, Ref, ResolveMode, SolveOptions, Worker, sha256_hex};

/// A source op's attribute.
pub(crate) fn attr<'a>(source: &'a pb::SourceOp, key: &str) -> Option<&'a str> {
    source.attrs.get(key).map(String::as_str)
}

/// The source ops of a definition.
fn source_ops(definition: &LoadedDefinition) -> impl Iterator<Item = &pb::SourceOp> {
    definition
        .vertices
        .iter()
        .filter_map(|vertex| match &vertex.op.op {
            Some(pb::op::Op::Source(source)) => Some(source),
            _ => None,
        })
}

/// A local source of a definition: which client directory, filtered how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSource {
    /// Its name (`local://NAME`).
    pub name: String,
    /// `local.includepattern`.
    pub include_patterns: Vec<String>,
    /// `local.excludepatterns`.
    pub exclude_patterns: Vec<String>,
    /// `local.followpaths`.
    pub follow_paths: Vec<String>,
    /// `local.session`: the client session that lends it, when it names one.
    pub session: Option<String>,
}

/// The local sources a definition reads (`local://NAME`), with their filters, each
/// once: what a daemon fetches from its client before the solve.
pub fn local_sources(definition: &LoadedDefinition) -> Vec<LocalSource> {
    let list = |source: &pb::SourceOp, key: &str| -> Vec<String> {
        attr(source, key)
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default()
    };
    let mut sources: Vec<LocalSource> = Vec::new();
    for source in source_ops(definition) {
        let Some(name) = source.identifier.strip_prefix("local://") else {
            continue;
        };
        let local = LocalSource {
            name: name.to_owned(),
            include_patterns: list(source, "local.includepattern"),
            exclude_patterns: list(source, "local.excludepatterns"),
            follow_paths: list(source, "local.followpaths"),
            session: attr(source, "local.session").map(str::to_owned),
        };
        if !sources.contains(&local) {
            sources.push(local);
        }
    }
    sources
}

/// The build's sources as BuildKit's build info lists them: images with their pinned
/// digests, git and http sources, sorted by reference.
pub fn build_sources(definition: &LoadedDefinition) -> Vec<serde_json::Value> {
    let mut sources = Vec::new();
    for source in source_ops(definition) {
        let id = source.identifier.as_str();
        let entry = if let Some(image) = id.strip_prefix("docker-image://") {
            let (reference, pin) = image.split_once('@').unwrap_or((image, ""));
            serde_json::json!({"type": "docker-image", "ref": reference, "pin": pin})
        } else if id.starts_with("git://") {
            serde_json::json!({"type": "git", "ref": id.trim_start_matches("git://")})
        } else if id.starts_with("https://") || id.starts_with("http://") {
            let pin = attr(source, "http.checksum").unwrap_or_default();
            serde_json::json!({"type": "http", "ref": id, "pin": pin})
        } else {
            continue;
        };
        if !sources.contains(&entry) {
            sources.push(entry);
        }
    }
    sources.sort_by_key(|s| s["ref"].to_string());
    sources
}

/// Each scheme to its file: the only place that reads a source's identifier.
impl Worker {
    /// A source's key (BuildKit's for an image, an OCI layout's image, a git commit and a
    /// download; kiln's own, marked so, for a local context, whose BuildKit key is
    /// never exported), and for a local context the walk it was computed from.
    pub(crate) fn source_key(
        &self,
        source: &pb::SourceOp,
        platform: Option<&Platform>,
        options: &SolveOptions<'_>,
    ) -> Result<(String, Option<local::Scan>), Error> {
        let key = match source.identifier.split_once("://") {
            Some(("docker-image", reference)) => {
                let registry = options.registry.unwrap_or(&self.registry);
                // Normalised, as BuildKit's loader normalises every op's platform.
                let platform = platform.unwrap_or(&self.config.platform).normalized();
                image::cache_key(self, registry, reference, &platform, source)?
            }
            Some(("local", name)) => {
                let scan = local::scan(self, options.contexts, name, source)?;
                let key = sha256_hex(&[
                    b"local",
                    source.identifier.as_bytes(),
                    scan.checksum.as_bytes(),
                ]);
                return Ok((format!("kiln:{key}"), Some(scan)));
            }
            Some(("http" | "https", _)) => http::http_key(self, source, options.secrets)?,
            Some(("git", _)) => git::git_key(source)?,
            // Keyed as an image: by its main manifest.
            Some(("oci-layout", reference)) => {
                let (store, selector) = reference.split_once('@').unwrap_or((reference, ""));
                let dir = options.contexts.dir(store, None).ok_or_else(|| {
                    Error::Source(format!("no OCI layout named {store} in this build"))
                })?;
                let digest = image::layout_main_digest(&dir, selector)?;
                let platform = platform.unwrap_or(&self.config.platform).normalized();
                image::main_manifest_key(&digest, &platform, source)
            }
            _ => {
                return Err(Error::Unsupported(format!(
                    "source {} is not supported yet",
                    source.identifier
                )));
            }
        };
        Ok((key, None))
    }

    pub(crate) fn run_source(
        &self,
        source: &pb::SourceOp,
        platform: Option<&Platform>,
        options: &SolveOptions<'_>,
        context_scan: Option<local::Scan>,
        log: &(dyn Fn(&[u8]) + Sync),
    ) -> Result<Ref, Error> {
        match source.identifier.split_once("://") {
            Some(("docker-image", reference)) => {
                let registry = options.registry.unwrap_or(&self.registry);
                image::pull(
                    self,
                    registry,
                    reference,
                    platform.unwrap_or(&self.config.platform),
                    ResolveMode::of_source(source),
                    log,
                )
            }
            Some(("local", name)) => {
                let scan = match context_scan {
                    Some(scan) => scan,
                    None => local::scan(self, options.contexts, name, source)?,
                };
                local::load(self, scan)
            }
            Some(("http" | "https", _)) => http::http_load(self, source, options.secrets),
            Some(("git", _)) => git::git_load(self, source),
            Some(("oci-layout", reference)) => {
                // `STORE@DIGEST`: the store is a directory the client lends, like a
                // local context.
                let (store, selector) = reference.split_once('@').unwrap_or((reference, ""));
                let dir = options.contexts.dir(store, None).ok_or_else(|| {
                    Error::Source(format!("no OCI layout named {store} in this build"))
                })?;
                image::pull_layout(self, &dir, selector)
            }
            _ => Err(Error::Unsupported(format!(
                "source {} is not supported yet",
                source.identifier
            ))),
        }
    }
}
