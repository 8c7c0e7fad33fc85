//! Pushing an assembled image: every blob (skipped when the repository has it), then
//! the manifest under each name's tag, or by digest alone with `push-by-digest`.

use kiln_oci::Reference;
use kiln_registry::RegistryClient;
use kiln_store::ContentStore;

use crate::Error;
use crate::image::Image;
use crate::options::ImageExport;

/// Pushes `image` to the registry of each name; returns the `name@digest` pushed.
pub fn push(
    registry: &RegistryClient,
    store: &ContentStore,
    image: &Image,
    export: &ImageExport,
) -> Result<Vec<String>, Error> {
    let mut pushed = Vec::new();
    for name in &export.image.names {
        let failed = |source| Error::Push {
            name: name.clone(),
            source,
        };
        let reference: Reference =
            name.parse()
                .map_err(|e: kiln_oci::ReferenceError| Error::Option {
                    exporter: "image".to_owned(),
                    message: format!("invalid image name {name:?}: {e}"),
                })?;
        if export.insecure {
            registry.allow_plain_http(&reference.domain);
        }
        let blobs = image
            .layers
            .iter()
            .map(|l| (&l.digest, l.size))
            .chain(std::iter::once((&image.config.digest, image.config.size)));
        for (digest, size) in blobs {
            let mut file = store.open_blob(digest)?;
            registry
                .push_blob(&reference, digest, size, &mut file)
                .map_err(failed)?;
        }
        let tag = match (&reference.tag, export.push_by_digest) {
            (Some(tag), false) => tag.clone(),
            _ => image.manifest.digest.clone(),
        };
        registry
            .push_manifest(
                &reference,
                &tag,
                &image.manifest.media_type,
                &image.manifest_bytes,
            )
            .map_err(failed)?;
        pushed.push(format!(
            "{}/{}@{}",
            reference.domain, reference.path, image.manifest.digest
        ));
    }
    Ok(pushed)
}
