//! Cache keys as records of a cache graph, in the shape of BuildKit's remote cache
//! (`cache/remotecache/v1`): a vertex output is a record named by a digest of what the
//! op is (its description and output index) and linked to the records of its inputs.
//! A record's *key* folds its digest and its links' keys together, so the same key is
//! computed by the worker while solving and by an importer walking an exported graph.
//!
//! A record without inputs (a source, or the content checksum standing for an input an
//! op selects by content) is keyed by its digest alone.
//!
//! # The gap to BuildKit's keys
//!
//! The graph has BuildKit's shape, but the digests are kiln's, so a BuildKit cache is
//! read without error and simply misses (and the other way round). To hit, kiln must
//! derive, as BuildKit v0.24 does:
//! - the op digest: BuildKit digests Go's JSON of a per-op struct (exec:
//!   `{Type, Exec, OS, Arch, …}` with the op's key-neutral fields cleared; file: the
//!   cleared `FileOp`), not the protobuf (`solver/llbsolver/ops/*.go` `CacheMap`); a
//!   record's digest is then `rootKey(digest, output)` = `sha256("<digest>@<output>")`
//!   (`solver/cachemanager.go`);
//! - source digests: image sources by the resolved manifest digest, local sources by
//!   the session's shared key, git by commit, http by the response checksum;
//! - content links: `cache/contenthash` checksums (its own tree hashing of headers and
//!   file digests, not kiln's `contenthash`), linked with the selector as BuildKit
//!   writes it (`selector` = the checksum digest, link to the input's key);
//! - the key combination: BuildKit never hashes a record's inputs into one key; its
//!   importer matches records by (digest, inputs' matches) at query time. An importer
//!   for BuildKit caches must query that way rather than precompute `record_key`.
//!
//! Until then kiln's records carry a `kiln` prefix in the digest material, so that a
//! kiln digest can never collide with a BuildKit one.

use sha2::{Digest as _, Sha256};

/// One link of a record to the record of an input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Link {
    /// What of the input the op reads (paths), empty for all of it.
    pub selector: String,
    /// The linked record's key.
    pub key: String,
}

fn sha256_digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The digest of output `output` of an op described by `material` (its encoded,
/// key-neutral description, or a source's identity).
pub fn op_digest(material: &[u8], output: usize) -> String {
    sha256_digest(&[b"kiln-record-v1", material, output.to_string().as_bytes()])
}

/// The key of a record: its digest when it has no inputs, else the digest folded with
/// each input's link, in input order.
pub fn record_key(digest: &str, inputs: &[Link]) -> String {
    if inputs.is_empty() {
        return digest.to_owned();
    }
    let mut parts: Vec<&[u8]> = vec![b"kiln-key-v1", digest.as_bytes()];
    for link in inputs {
        parts.push(link.selector.as_bytes());
        parts.push(link.key.as_bytes());
    }
    sha256_digest(&parts)
}

/// A content checksum as the digest of a root record (`sha256:` added when missing).
pub fn checksum_digest(checksum: &str) -> String {
    if checksum.starts_with("sha256:") {
        checksum.to_owned()
    } else {
        format!("sha256:{checksum}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(selector: &str, key: &str) -> Link {
        Link {
            selector: selector.to_owned(),
            key: key.to_owned(),
        }
    }

    #[test]
    fn a_root_record_is_keyed_by_its_digest() {
        let digest = op_digest(b"image busybox", 0);
        assert!(digest.starts_with("sha256:") && digest.len() == 71);
        assert_eq!(record_key(&digest, &[]), digest);
    }

    #[test]
    fn every_part_of_a_record_changes_its_key() {
        let digest = op_digest(b"run", 0);
        let key = record_key(&digest, &[link("", "sha256:a"), link("/x", "sha256:b")]);
        assert_ne!(key, digest);
        for other in [
            record_key(
                &op_digest(b"run", 1),
                &[link("", "sha256:a"), link("/x", "sha256:b")],
            ),
            record_key(&digest, &[link("", "sha256:a"), link("/y", "sha256:b")]),
            record_key(&digest, &[link("", "sha256:a"), link("/x", "sha256:c")]),
            record_key(&digest, &[link("/x", "sha256:b"), link("", "sha256:a")]),
            record_key(&digest, &[link("", "sha256:a")]),
        ] {
            assert_ne!(key, other);
        }
        // Parts are length-prefixed: moving a boundary is another key.
        assert_ne!(
            record_key(&digest, &[link("ab", "c")]),
            record_key(&digest, &[link("a", "bc")])
        );
    }

    #[test]
    fn checksums_become_digests() {
        assert_eq!(checksum_digest("ab"), "sha256:ab");
        assert_eq!(checksum_digest("sha256:ab"), "sha256:ab");
    }
}
