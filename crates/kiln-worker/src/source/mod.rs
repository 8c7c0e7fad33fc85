//! Source ops, one file per scheme: images from registries (and OCI layouts),
//! local contexts, http downloads, git.

pub(crate) mod dockerignore;
pub(crate) mod git;
pub(crate) mod http;
pub(crate) mod image;
pub(crate) mod local;

use kiln_llb::pb;

use kiln_llb::Platform;

use crate::{Error, Ref, ResolveMode, SolveOptions, Worker, sha256_hex};

/// A source op's attribute.
pub(crate) fn attr<'a>(source: &'a pb::SourceOp, key: &str) -> Option<&'a str> {
    source.attrs.get(key).map(String::as_str)
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
