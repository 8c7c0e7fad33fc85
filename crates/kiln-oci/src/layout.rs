//! An OCI image layout directory's `index.json`: the manifests it names by tag
//! (`org.opencontainers.image.ref.name`), read and retagged as containerd's and
//! BuildKit's `ociindex` do. A local cache directory is such a layout, written by the
//! builder (embedded) or by the client after a daemon sent it the blobs.

use std::io;
use std::path::Path;

use crate::{Descriptor, Index, media_type};

/// The annotation that names an index entry (its tag).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The `oci-layout` file's content.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// `dir`'s index.json; `None` when the directory has none.
pub fn read_index(dir: &Path) -> io::Result<Option<Index>> {
    let path = dir.join("index.json");
    let bytes = match fs_err::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// The entry of `index` that a context's `selector` names: the one with that digest or
/// tag, or the first for an empty selector.
pub fn select<'a>(index: &'a Index, selector: &str) -> Option<&'a Descriptor> {
    index.manifests.iter().find(|d| {
        selector.is_empty()
            || d.digest == selector
            || d.annotations.get(REF_NAME).map(String::as_str) == Some(selector)
    })
}

/// The entry of `dir`'s index.json tagged `tag`, if any.
pub fn tagged(dir: &Path, tag: &str) -> io::Result<Option<Descriptor>> {
    Ok(read_index(dir)?.and_then(|index| {
        index
            .manifests
            .into_iter()
            .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(tag))
    }))
}

/// Names `descriptor` `tag` in `dir`'s index.json (made if missing; the tag moves
/// off any other entry) and writes `oci-layout`; each file is replaced whole.
pub fn put_tagged(dir: &Path, descriptor: &Descriptor, tag: &str) -> io::Result<()> {
    let mut index = read_index(dir)?.unwrap_or_else(|| Index {
        schema_version: 2,
        media_type: media_type::OCI_INDEX.to_owned(),
        ..Index::default()
    });
    index
        .manifests
        .retain(|d| d.annotations.get(REF_NAME).map(String::as_str) != Some(tag));
    let mut entry = descriptor.clone();
    entry
        .annotations
        .insert(REF_NAME.to_owned(), tag.to_owned());
    index.manifests.push(entry);
    let encoded = serde_json::to_vec(&index).map_err(io::Error::other)?;
    write_atomically(&dir.join("index.json"), &encoded)?;
    write_atomically(&dir.join("oci-layout"), OCI_LAYOUT)
}

/// Writes `bytes` to `path` through a temporary file, so readers see all or nothing.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs_err::write(&temp, bytes)?;
    fs_err::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(digest: &str) -> Descriptor {
        Descriptor {
            media_type: media_type::OCI_MANIFEST.to_owned(),
            digest: digest.to_owned(),
            size: 10,
            ..Descriptor::default()
        }
    }

    #[test]
    fn a_tag_moves_to_the_newest_manifest_and_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(tagged(dir.path(), "latest").unwrap(), None);
        put_tagged(dir.path(), &manifest("sha256:aa"), "latest").unwrap();
        put_tagged(dir.path(), &manifest("sha256:bb"), "v1").unwrap();
        put_tagged(dir.path(), &manifest("sha256:cc"), "latest").unwrap();
        let index = read_index(dir.path()).unwrap().unwrap();
        assert_eq!(index.manifests.len(), 2);
        assert_eq!(
            tagged(dir.path(), "latest").unwrap().unwrap().digest,
            "sha256:cc"
        );
        assert_eq!(
            tagged(dir.path(), "v1").unwrap().unwrap().digest,
            "sha256:bb"
        );
        assert_eq!(
            fs_err::read(dir.path().join("oci-layout")).unwrap(),
            OCI_LAYOUT
        );
    }

    #[test]
    fn a_broken_index_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("index.json"), "{").unwrap();
        let error = tagged(dir.path(), "latest").unwrap_err().to_string();
        assert!(error.contains("index.json"), "{error}");
    }
}
