//! The worker's side of remote caches (`--cache-from`, `--cache-to`): the port an
//! importer implements, and what a solve leaves for an exporter.
//!
//! With an import, results are made lazily (`kiln_solver::lazy`): a step the local
//! cache answers never waits for an import, and only the blobs of reused results are
//! fetched (each verified against its digest; a wrong one makes the step run).

use std::io::Write;

use kiln_oci::Descriptor;
use kiln_solver::cache_key::Link;
use kiln_solver::lazy::{Output, Outputs};

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

impl Output for Ref {
    fn key(&self) -> &str {
        &self.key
    }

    fn unmade(key: String) -> Self {
        Ref {
            chain: Vec::new(),
            key,
        }
    }
}

/// The records of a vertex for an export (none for a local context: its key is kiln's
/// own, and BuildKit never exports one either).
pub(crate) fn records(outputs: &Outputs<Ref>) -> Vec<SolvedRecord> {
    if !outputs.exportable {
        return Vec::new();
    }
    let made = outputs.results();
    let key = &outputs.key;
    let mut out: Vec<SolvedRecord> = key
        .content_records()
        .map(|digest| SolvedRecord {
            key: digest.to_owned(),
            digest: digest.to_owned(),
            inputs: Vec::new(),
            chain: None,
        })
        .collect();
    for (index, output_key) in outputs.keys.iter().enumerate() {
        let chain = made
            .as_ref()
            .and_then(|refs| refs.get(index))
            .map(|r| r.chain.clone())
            .filter(|chain| !chain.is_empty());
        let inputs = key
            .links
            .iter()
            .zip(&key.other_links)
            .map(|(link, other)| other.iter().chain([link]).cloned().collect())
            .collect();
        out.push(SolvedRecord {
            key: output_key.clone(),
            digest: key.digest(index),
            inputs,
            chain,
        });
    }
    out
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
