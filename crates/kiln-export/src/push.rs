//! Pushing an assembled image: every blob (skipped when the repository has it), then
//! the manifest under each name's tag, or by digest alone with `push-by-digest`; for a
//! multi-platform result every platform's image and manifest first, then the index.

use kiln_oci::{Descriptor, Reference};
use kiln_registry::RegistryClient;
use kiln_store::ContentStore;
use kiln_store::parallel::for_each_at_once;

use crate::Error;
use crate::image::Image;
use crate::index::MultiPlatformImage;
use crate::options::ImageExport;

/// How many blobs of one image are uploaded at once (containerd's and BuildKit's push
/// default): a registry serves a few streams well, and the disk reads them faster.
const PARALLEL_UPLOADS: usize = 3;

/// Pushes an image's layers and config to `reference`'s repository (layers pulled
/// from the same registry are mounted from their repository).
fn push_blobs(
    registry: &RegistryClient,
    store: &ContentStore,
    reference: &Reference,
    image: &Image,
) -> Result<(), kiln_registry::Error> {
    let same_registry = |source: &Option<String>| {
        source.as_deref().and_then(|s| {
            s.strip_prefix(&format!("{}/", reference.domain))
                .map(str::to_owned)
        })
    };
    let blobs = image
        .layers
        .iter()
        .map(|l| (&l.digest, l.size, same_registry(&l.source)))
        .chain(std::iter::once((
            &image.config.digest,
            image.config.size,
            None,
        )));
    let blobs: Vec<_> = blobs.collect();
    for_each_at_once(
        &blobs,
        PARALLEL_UPLOADS,
        |(digest, size, mount_from)| {
            // An upload streams the file: a new try reopens it.
            kiln_registry::retry_transient(|| {
                let mut file = store
                    .open_blob(digest)
                    .map_err(|e| kiln_registry::Error::Io(std::io::Error::other(e.to_string())))?;
                registry.push_blob(reference, digest, *size, &mut file, mount_from.as_deref())
            })
        },
        || kiln_registry::Error::Io(std::io::Error::other("an upload thread panicked")),
    )
}

/// The manifest `top` (an image's or an index's) with everything under it, to the
/// registry of each name: `under` pushes what it refers to first. Returns the
/// `name@digest` pushed.
fn push_named(
    registry: &RegistryClient,
    export: &ImageExport,
    top: (&Descriptor, &[u8]),
    under: &dyn Fn(&Reference) -> Result<(), kiln_registry::Error>,
) -> Result<Vec<String>, Error> {
    let (descriptor, bytes) = top;
    let mut pushed = Vec::new();
    for name in &export.image.names {
        let failed = |source| Error::Push {
            name: name.clone(),
            source,
        };
        let reference = crate::options::parse_image_name(name)?;
        if export.insecure {
            registry.allow_plain_http(&reference.domain);
        }
        under(&reference).map_err(failed)?;
        let tag = match (&reference.tag, export.push_by_digest) {
            (Some(tag), false) => tag.clone(),
            _ => descriptor.digest.clone(),
        };
        registry
            .push_manifest(&reference, &tag, &descriptor.media_type, bytes)
            .map_err(failed)?;
        pushed.push(format!(
            "{}/{}@{}",
            reference.domain, reference.path, descriptor.digest
        ));
    }
    Ok(pushed)
}

/// Pushes `image` to the registry of each name; returns the `name@digest` pushed.
pub fn push(
    registry: &RegistryClient,
    store: &ContentStore,
    image: &Image,
    export: &ImageExport,
) -> Result<Vec<String>, Error> {
    push_named(
        registry,
        export,
        (&image.manifest, &image.manifest_bytes),
        &|reference| push_blobs(registry, store, reference, image),
    )
}

/// Pushes a multi-platform result to the registry of each name: every platform's
/// image, its manifest by digest, then the index under the name.
pub fn push_index(
    registry: &RegistryClient,
    store: &ContentStore,
    multi: &MultiPlatformImage,
    export: &ImageExport,
) -> Result<Vec<String>, Error> {
    push_named(
        registry,
        export,
        (&multi.index, &multi.index_bytes),
        &|reference| {
            for image in &multi.images {
                push_blobs(registry, store, reference, image)?;
                registry.push_manifest(
                    reference,
                    &image.manifest.digest,
                    &image.manifest.media_type,
                    &image.manifest_bytes,
                )?;
            }
            Ok(())
        },
    )
}
