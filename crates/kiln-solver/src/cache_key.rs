//! Cache keys as records of a cache graph, BuildKit's (`solver/cachekey.go`,
//! `cache/remotecache/v1`): a vertex output is a record whose digest is
//! [`root_key`]`(op digest, output)`, linked per input to its inputs' records, each link
//! with the selector digest of what the op reads of that input. An op that reads only
//! some paths of an input also links it by content: to a record whose digest is
//! [`content_key`] of the checksums of those paths (BuildKit's "slow" key), so the same
//! bytes hit whichever build made them.
//!
//! The digests are BuildKit v0.24's, computed by the worker from the ops as BuildKit
//! digests them (Go's JSON of the op, the image's manifest, `cache/contenthash`
//! checksums), so a cache exported by BuildKit is hit by kiln and the other way round.
//!
//! A record's *key*, for kiln's own cache, folds its digest and one chosen link per
//! input together ([`record_key`]); an importer walking an exported graph computes the
//! same key for each combination of a record's links, which is how BuildKit matches a
//! record by any of its links.

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

/// `sha256:` + hex of `bytes` (Go's `digest.FromBytes`).
pub fn digest_of(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The digest of a record: output `output` of the op whose cache map digest is `digest`
/// (BuildKit's `rootKey`, `sha256("<digest>@<output>")`; a content record's output is
/// -1).
pub fn root_key(digest: &str, output: i64) -> String {
    digest_of(format!("{digest}@{output}").as_bytes())
}

/// The record digest of the content an op reads from one input, from the checksums of
/// its selections (`sha256:…` each), in selector order: BuildKit's slow cache key.
pub fn content_key(checksums: &[String]) -> String {
    root_key(&digest_of(checksums.join("\0").as_bytes()), -1)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn link(selector: &str, key: &str) -> Link {
        Link {
            selector: selector.to_owned(),
            key: key.to_owned(),
        }
    }

    /// Digests taken from a cache BuildKit v0.24 exported: busybox's manifest key and
    /// the checksum of a two-byte file in a build context.
    #[test]
    fn digests_are_buildkits() {
        let source = digest_of(
            b"buildkit.source.v0:sha256:3f3baa7cbf252473928b288907bf82833b796daccc440a0bcf22c840d8646b21",
        );
        assert_eq!(
            root_key(&source, 0),
            "sha256:aa08c80f0a25d59bed4ceb1b4a1f312813c30ae86db73fc5a05aad2987a38aae"
        );
        assert_eq!(
            content_key(&[
                "sha256:90419ce2f049678816ec651294eafae1333065bf516a763506e0965a9979d469".into()
            ]),
            "sha256:d9bbc07d27ae5f69fef43f29e6b42b3cb97b88c514516b9e4166bf30bc1a355e"
        );
    }

    #[test]
    fn a_root_record_is_keyed_by_its_digest() {
        let digest = root_key(&digest_of(b"image busybox"), 0);
        assert!(digest.starts_with("sha256:") && digest.len() == 71);
        assert_eq!(record_key(&digest, &[]), digest);
    }

    #[test]
    fn every_part_of_a_record_changes_its_key() {
        let run = digest_of(b"run");
        let digest = root_key(&run, 0);
        let key = record_key(&digest, &[link("", "sha256:a"), link("/x", "sha256:b")]);
        assert_ne!(key, digest);
        for other in [
            record_key(
                &root_key(&run, 1),
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
}
