//! An OCI layout a client lends through its session as a content store (`oci:STORE`,
//! as buildx lends `--build-context NAME=oci-layout://DIR`): the daemon copies the
//! image's blobs into a layout directory of its own, each checked against its digest.

use std::io::Write as _;
use std::path::Path;

use kiln_oci::{Descriptor, Index, Manifest, media_type};
use serde::Deserialize as _;
use sha2::{Digest as _, Sha256};
use tonic::Status;

use super::content::{ContentClient, blob_path, is_sha256_digest, sha256_digest};

/// The tag the copied image has in the daemon's layout.
pub const TAG: &str = "context";

/// Copies the image `digest` (an index with its manifests, or one manifest) with its
/// configs and layers from the client's store into the layout `dir`, tagged [`TAG`].
pub async fn copy_image(mut client: ContentClient, digest: &str, dir: &Path) -> Result<(), Status> {
    copy_blob(&mut client, digest, dir).await?;
    let root: serde_json::Value = read_json(dir, digest)?;
    let is_index = root.get("manifests").is_some();
    let manifests: Vec<String> = if is_index {
        let index = Index::deserialize(&root)
            .map_err(|e| Status::invalid_argument(format!("the client's blob {digest}: {e}")))?;
        index.manifests.into_iter().map(|d| d.digest).collect()
    } else {
        vec![digest.to_owned()]
    };
    for manifest_digest in &manifests {
        copy_blob(&mut client, manifest_digest, dir).await?;
        let manifest: Manifest = read_json(dir, manifest_digest)?;
        copy_blob(&mut client, &manifest.config.digest, dir).await?;
        for layer in &manifest.layers {
            copy_blob(&mut client, &layer.digest, dir).await?;
        }
    }
    let media_type = match root.get("mediaType").and_then(serde_json::Value::as_str) {
        Some(media_type) => media_type.to_owned(),
        None if is_index => media_type::OCI_INDEX.to_owned(),
        None => media_type::OCI_MANIFEST.to_owned(),
    };
    let size = fs_err::metadata(blob_path(dir, digest)?)
        .map_err(internal)?
        .len();
    let descriptor = Descriptor {
        media_type,
        digest: digest.to_owned(),
        size,
        ..Descriptor::default()
    };
    kiln_oci::layout::put_tagged(dir, &descriptor, TAG).map_err(internal)
}

fn internal(e: std::io::Error) -> Status {
    Status::internal(format!("copying the client's OCI layout: {e}"))
}

/// A copied manifest or index, decoded.
fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, digest: &str) -> Result<T, Status> {
    let bytes = fs_err::read(blob_path(dir, digest)?).map_err(internal)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Status::invalid_argument(format!("the client's blob {digest}: {e}")))
}

/// Copies one blob into the layout unless it is there, checking its digest first.
async fn copy_blob(client: &mut ContentClient, digest: &str, dir: &Path) -> Result<(), Status> {
    if !is_sha256_digest(digest) {
        return Err(Status::invalid_argument(format!(
            "the client's OCI layout names the blob {digest:?}"
        )));
    }
    let path = blob_path(dir, digest)?;
    if path.exists() {
        return Ok(());
    }
    fs_err::create_dir_all(path.parent().unwrap_or(dir)).map_err(internal)?;
    let partial = path.with_extension("partial");
    let mut out = HashingFile {
        file: std::io::BufWriter::new(fs_err::File::create(&partial).map_err(internal)?),
        hash: Sha256::new(),
    };
    client.read(digest, &mut out).await?;
    out.file.flush().map_err(internal)?;
    let got = sha256_digest(out.hash);
    if got != digest {
        let _ = fs_err::remove_file(&partial);
        return Err(Status::data_loss(format!(
            "the client's blob {digest} holds content whose digest is {got}"
        )));
    }
    fs_err::rename(&partial, &path).map_err(internal)
}

/// A file that hashes what is written to it.
struct HashingFile {
    file: std::io::BufWriter<fs_err::File>,
    hash: Sha256,
}

impl std::io::Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(buf)?;
        self.hash.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
