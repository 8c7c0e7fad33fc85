//! How a vertex is keyed: its cache map digest and, per input, the link that makes its
//! key. An input the op reads whole is linked by the input's own key (with the op's
//! selector, BuildKit's fast key); an input the op reads only some paths of is linked by
//! the checksum of those paths (the slow key), so the same bytes hit whichever build
//! made them, and its key link is kept beside it for a cache export.

use crate::cache_key::{self, Link};

/// A vertex's key: its cache map digest (BuildKit's) and its inputs' links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexKey {
    /// The cache map digest (a source's: of its identifier and content key).
    pub digest: String,
    /// The link of each input that makes the key.
    pub links: Vec<Link>,
    /// Per input, its other link when it has one (the key link of an input keyed by
    /// content, whose key link then names its content's record), exported beside it.
    pub other_links: Vec<Option<Link>>,
}

impl VertexKey {
    /// A vertex without inputs (a source), keyed by its digest alone.
    pub fn source(digest: String) -> Self {
        Self {
            digest,
            links: Vec::new(),
            other_links: Vec::new(),
        }
    }

    /// The key of a vertex whose inputs are linked `by_key`, where input `i` is read by
    /// content when `content_keyed[i]`, and `content[i]` is the record of that content
    /// (`None` when it is not known, which leaves the vertex without a key).
    pub fn with_content(
        digest: &str,
        content_keyed: &[bool],
        by_key: &[Link],
        content: Vec<Option<String>>,
    ) -> Option<Self> {
        if content.len() != by_key.len() {
            return None;
        }
        let mut key = Self {
            digest: digest.to_owned(),
            links: Vec::with_capacity(by_key.len()),
            other_links: Vec::with_capacity(by_key.len()),
        };
        for ((read_by_content, by_key), content) in content_keyed.iter().zip(by_key).zip(content) {
            match (read_by_content, content) {
                (true, Some(digest)) => {
                    key.links.push(Link {
                        selector: String::new(),
                        key: digest,
                    });
                    key.other_links.push(Some(by_key.clone()));
                }
                (true, None) => return None,
                (false, _) => {
                    key.links.push(by_key.clone());
                    key.other_links.push(None);
                }
            }
        }
        Some(key)
    }

    /// Per input, the content record it is keyed by, if it is keyed by content (what a
    /// store remembers to key the vertex again without making those inputs).
    pub fn content_links(&self) -> Vec<Option<String>> {
        self.links
            .iter()
            .zip(&self.other_links)
            .map(|(link, other)| other.as_ref().map(|_| link.key.clone()))
            .collect()
    }

    /// The content records the key links to (inputs keyed by content).
    pub fn content_records(&self) -> impl Iterator<Item = &str> {
        self.links
            .iter()
            .zip(&self.other_links)
            .filter(|(_, other)| other.is_some())
            .map(|(link, _)| link.key.as_str())
    }

    /// The record digest of output `output`.
    pub fn digest(&self, output: usize) -> String {
        cache_key::root_key(&self.digest, i64::try_from(output).unwrap_or(i64::MAX))
    }

    /// The key of output `output` (output 0's also names the vertex's local record).
    pub fn output(&self, output: usize) -> String {
        cache_key::record_key(&self.digest(output), &self.links)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache_key::tests::link;

    #[test]
    fn an_input_read_by_content_is_linked_by_its_content() {
        let by_key = [link("/src", "sha256:input-a"), link("", "sha256:input-b")];
        let key = VertexKey::with_content(
            "sha256:op",
            &[true, false],
            &by_key,
            vec![Some("sha256:content-a".to_owned()), None],
        )
        .unwrap();
        assert_eq!(key.links, [link("", "sha256:content-a"), by_key[1].clone()]);
        assert_eq!(key.other_links, [Some(by_key[0].clone()), None]);
        assert_eq!(
            key.content_links(),
            [Some("sha256:content-a".to_owned()), None]
        );
        assert_eq!(
            key.content_records().collect::<Vec<_>>(),
            ["sha256:content-a"]
        );
    }

    #[test]
    fn the_same_content_under_another_input_key_is_the_same_key() {
        let keyed = |input: &str| {
            VertexKey::with_content(
                "sha256:op",
                &[true],
                &[link("/src", input)],
                vec![Some("sha256:content".to_owned())],
            )
            .unwrap()
        };
        assert_eq!(keyed("sha256:one").output(0), keyed("sha256:two").output(0));
        assert_ne!(keyed("sha256:one").output(0), keyed("sha256:one").output(1));
    }

    #[test]
    fn unknown_content_leaves_no_key() {
        let by_key = [link("/src", "sha256:input")];
        assert_eq!(
            VertexKey::with_content("sha256:op", &[true], &by_key, vec![None]),
            None
        );
        assert_eq!(
            VertexKey::with_content("sha256:op", &[true], &by_key, Vec::new()),
            None
        );
    }

    #[test]
    fn a_source_is_keyed_by_its_digest() {
        let key = VertexKey::source("sha256:source".to_owned());
        assert_eq!(
            key.output(0),
            cache_key::root_key("sha256:source", 0),
            "a record without inputs is keyed by its digest"
        );
        assert!(key.content_links().is_empty());
    }
}
