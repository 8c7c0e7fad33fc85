//! The worker's side of remote caches (`--cache-from`, `--cache-to`): the port an
//! importer implements, and what a solve leaves for an exporter.
//!
//! With an import, a vertex the local cache cannot answer is not run when visited: its
//! keys are passed on to its users ([`Outputs`] pending), and it is made (imported from
//! the first remote cache holding it, else run) only when a user needs its content, or
//! when it is the result. So a step whose user hits a cache is neither run, fetched nor
//! looked up; a step the local cache answers never waits for an import; and only the
//! blobs of reused results are fetched (each verified against its digest; a wrong one
//! makes the step run).

use std::io::Write;
use std::sync::{Arc, Mutex};

use kiln_oci::Descriptor;
use kiln_solver::cache_key::{self, Link};

use crate::Ref;

/// An error of a remote cache, for the user.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A result found in a remote cache: its layer blobs, bottom first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedResult {
    /// The layers, bottom first (each blob's digest is checked when fetched).
    pub layers: Vec<Descriptor>,
    /// When the result was made (Unix seconds), if recorded.
    pub created: Option<i64>,
}

/// A remote cache to import results from (`--cache-from`).
pub trait CacheImport: Send + Sync {
    /// How the user named it (`type=local,src=…`), for progress and warnings.
    fn name(&self) -> &str;
    /// The result recorded under an output key, if the cache holds one with layers.
    /// The first call may wait for the cache's records to arrive.
    fn lookup(&self, key: &str) -> Result<Option<ImportedResult>, BoxError>;
    /// Per input of the record keyed `key` (with or without a result), the digest of
    /// the content record it links to, if any: how a step matched by its inputs' keys
    /// learns their content's keys without making them.
    fn content_links(&self, key: &str) -> Result<Option<Vec<Option<String>>>, BoxError>;
    /// Writes a layer blob to `out` (the worker verifies its digest).
    fn fetch(&self, layer: &Descriptor, out: &mut dyn Write) -> Result<(), BoxError>;
}

/// A record of a solve, for a cache export: a vertex output (or a content checksum an
/// op was keyed by), its links to its inputs' records, and its layers when it has some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SolvedRecord {
    /// The record's key (the output's `Ref::key`).
    pub key: String,
    /// The record's digest.
    pub digest: String,
    /// Per input, its links: by the input's key (with the selector) and, for an input
    /// keyed by content, to the content's record too, as BuildKit writes both.
    pub inputs: Vec<Vec<Link>>,
    /// Its snapshot layers when made in this solve (a local context has none to export).
    pub chain: Option<Vec<u64>>,
}

/// How a vertex is keyed: its cache map digest (BuildKit's) and its inputs' links.
#[derive(Debug, Clone)]
pub(crate) struct VertexKey {
    pub(crate) digest: String,
    /// The link of each input that makes the key.
    pub(crate) links: Vec<Link>,
    /// Per input, its other link when it has one (the key link of an input keyed by
    /// content, whose key link then names its content's record), exported beside it.
    pub(crate) other_links: Vec<Option<Link>>,
}

impl VertexKey {
    /// The record digest of output `output`.
    pub(crate) fn digest(&self, output: usize) -> String {
        cache_key::root_key(&self.digest, i64::try_from(output).unwrap_or(i64::MAX))
    }

    /// The content records the key links to (inputs keyed by content).
    fn content_records(&self) -> impl Iterator<Item = &str> {
        self.links
            .iter()
            .zip(&self.other_links)
            .filter(|(_, other)| other.is_some())
            .map(|(link, _)| link.key.as_str())
    }

    /// The key of output `output` (output 0's also names the vertex's local record).
    pub(crate) fn output(&self, output: usize) -> String {
        cache_key::record_key(&self.digest(output), &self.links)
    }
}

/// A vertex's outputs as its users see them: the key of each, and its refs once made.
pub(crate) struct Outputs {
    pub(crate) vertex: usize,
    pub(crate) key: VertexKey,
    pub(crate) keys: Vec<String>,
    pub(crate) made: Mutex<Option<Vec<Ref>>>,
    /// Not made yet: what making it needs.
    pub(crate) pending: Option<Pending>,
    /// A local context: never exported with layers.
    pub(crate) local_source: bool,
}

/// What a vertex not made yet needs to be made (run): its inputs.
pub(crate) struct Pending {
    pub(crate) inputs: Vec<(Arc<Outputs>, usize)>,
}

impl Outputs {
    pub(crate) fn made(vertex: usize, key: VertexKey, refs: Vec<Ref>, local_source: bool) -> Self {
        Self {
            vertex,
            keys: refs.iter().map(|r| r.key.clone()).collect(),
            key,
            made: Mutex::new(Some(refs)),
            pending: None,
            local_source,
        }
    }

    /// The key of output `index` (known whether or not it is made).
    pub(crate) fn key_of(&self, index: usize) -> String {
        self.keys
            .get(index)
            .cloned()
            .unwrap_or_else(|| self.key.output(index))
    }

    /// The records of this vertex for an export (none for a local context: its key is
    /// kiln's own, and BuildKit never exports one either).
    pub(crate) fn records(&self) -> Vec<SolvedRecord> {
        if self.local_source {
            return Vec::new();
        }
        let made = self.made.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out: Vec<SolvedRecord> = self
            .key
            .content_records()
            .map(|digest| SolvedRecord {
                key: digest.to_owned(),
                digest: digest.to_owned(),
                inputs: Vec::new(),
                chain: None,
            })
            .collect();
        for (index, key) in self.keys.iter().enumerate() {
            let chain = made
                .as_ref()
                .and_then(|refs| refs.get(index))
                .map(|r| r.chain.clone())
                .filter(|chain| !chain.is_empty());
            let inputs = self
                .key
                .links
                .iter()
                .zip(&self.key.other_links)
                .map(|(link, other)| other.iter().chain([link]).cloned().collect())
                .collect();
            out.push(SolvedRecord {
                key: key.clone(),
                digest: self.key.digest(index),
                inputs,
                chain,
            });
        }
        out
    }
}

/// How many outputs an op has (the results of an exec's or file op's output indexes).
pub(crate) fn output_count(op: &kiln_llb::pb::Op) -> usize {
    use kiln_llb::pb::op::Op;
    let highest = match &op.op {
        Some(Op::Exec(exec)) => exec.mounts.iter().map(|m| m.output).max(),
        Some(Op::File(file)) => file.actions.iter().map(|a| a.output).max(),
        _ => Some(0),
    };
    usize::try_from(highest.unwrap_or(0) + 1)
        .unwrap_or(1)
        .max(1)
}
