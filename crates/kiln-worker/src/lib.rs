//! LLB to solver: loads a `Definition` into the solver's vertices and implements each
//! op: sources (registry image, OCI layout, local context, git, http), file actions,
//! exec through an [`kiln_exec::Executor`] (runc), merge and diff.
//!
//! Every result is a [`Ref`]: a stack of snapshot layers plus its key. A vertex's key is
//! its op's cache map digest plus, per input, the input's key or the checksum of the
//! paths the op reads of it (`kiln_solver::keys`); results are recorded in the metadata
//! database under it, so a rebuild with nothing changed runs nothing (`solve.rs`). The
//! records, their reuse and pruning are `usage.rs`.
//!
//! This is the only engine crate that reads LLB. It must not depend on the exporters,
//! remote cache backends, the API or the engine: they call it, and a remote cache
//! reaches it through [`CacheImport`].

mod cache_map;
mod contenthash;
mod error;
mod fsutil;
mod go_json;
mod names;
mod ops;
mod remote_cache;
mod solve;
mod source;
mod usage;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;

pub use error::Error;
pub use kiln_exec::NetworkMode;
pub use remote_cache::{BoxError, CacheImport, ImportedResult, SolvedRecord};
pub use solve::{Event, SolveOptions};
pub use source::git::fetch_git;
pub use source::image::LayerInfo;
pub use source::image::ResolveMode;
pub use source::image::read_layout;
pub use source::{LocalSource, build_sources, local_sources};
pub use usage::{CacheRecord, PruneFilter, PruneOptions};
pub(crate) use worker::{CACHE_TABLE, new_layer, op_platform, sha256_hex};
pub use worker::{Ref, Worker, WorkerConfig};

/// Entry points for the fuzz targets (`fuzz/`), not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Extracts a tar stream (plain, gzip or zstd by `media`) under `root` as an image
    /// layer (`whiteouts`) or as an archive ADD unpacks.
    pub fn extract(
        root: &std::path::Path,
        bytes: &[u8],
        whiteouts: bool,
    ) -> Result<(), crate::Error> {
        let options = crate::source::image::ExtractOptions {
            owner: None,
            whiteouts,
        };
        crate::source::image::extract_tar(root, &mut &bytes[..], &options)
    }
}

/// Where named local sources (`local://context`) live; the embedded engine reads the
/// client's directories directly. A source may name the client session that lends it
/// (`local.session`): a daemon serving several sessions at once (buildx's Bake, whose
/// targets each have one) tells their directories apart by it.
pub trait LocalContexts: Send + Sync {
    /// The directory of a named local source.
    fn dir(&self, name: &str, session: Option<&str>) -> Option<PathBuf>;

    /// Every entry under that directory, sorted, with its metadata as on disk, when
    /// whoever filled it knows them (a daemon that has just received it): the source
    /// selects from this rather than walking the directory again.
    fn listing(
        &self,
        _name: &str,
        _session: Option<&str>,
    ) -> Option<Arc<Vec<(String, kiln_llb::local::Entry)>>> {
        None
    }
}

/// The name under which a directory lent by `session` is known among a build's local
/// directories, beside those of the build's own session (known by name alone).
pub fn session_local_name(name: &str, session: &str) -> String {
    format!("{name}@{session}")
}

/// What the client lends a build: secrets by id and ssh-agent sockets by id.
pub trait Secrets: Send + Sync {
    /// A secret's value.
    fn secret(&self, id: &str) -> Option<Vec<u8>>;
    /// An ssh agent's socket (`default` for `--ssh default`).
    fn ssh_agent(&self, id: &str) -> Option<PathBuf>;
}
