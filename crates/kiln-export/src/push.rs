//! Pushing an assembled image: every blob (skipped when the repository has it), then
//! the manifest under each name's tag, or by digest alone with `push-by-digest`.

use kiln_registry::RegistryClient;
use kiln_store::ContentStore;
use kiln_store::parallel::for_each_at_once;

use crate::Error;
use crate::image::Image;
use crate::options::ImageExport;

/// Runs a registry call, again after 0.2 s and 1 s when it fails in a way that may pass
/// (a broken connection, 429, a 5xx).
fn retry<T>(
    mut call: impl FnMut() -> Result<T, kiln_registry::Error>,
) -> Result<T, kiln_registry::Error> {
    let mut pauses = [200, 1000].into_iter();
    loop {
        match call() {
            Err(e) if transient(&e) => match pauses.next() {
                Some(ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
                None => return Err(e),
            },
            result => return result,
        }
    }
}

fn transient(error: &kiln_registry::Error) -> bool {
    match error {
        kiln_registry::Error::Http { .. } => true,
        kiln_registry::Error::Status { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}

/// How many blobs of one image are uploaded at once (containerd's and BuildKit's push
/// default): a registry serves a few streams well, and the disk reads them faster.
const PARALLEL_UPLOADS: usize = 3;

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
        let reference = crate::options::parse_image_name(name)?;
        if export.insecure {
            registry.allow_plain_http(&reference.domain);
        }
        // A layer pulled from this registry is mounted from its repository.
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
                retry(|| {
                    let mut file = store.open_blob(digest).map_err(|e| {
                        kiln_registry::Error::Io(std::io::Error::other(e.to_string()))
                    })?;
                    registry.push_blob(&reference, digest, *size, &mut file, mount_from.as_deref())
                })
            },
            || kiln_registry::Error::Io(std::io::Error::other("an upload thread panicked")),
        )
        .map_err(failed)?;
        let tag = match (&reference.tag, export.push_by_digest) {
            (Some(tag), false) => tag.clone(),
            _ => image.manifest.digest.clone(),
        };
        retry(|| {
            registry.push_manifest(
                &reference,
                &tag,
                &image.manifest.media_type,
                &image.manifest_bytes,
            )
        })
        .map_err(failed)?;
        pushed.push(format!(
            "{}/{}@{}",
            reference.domain, reference.path, image.manifest.digest
        ));
    }
    Ok(pushed)
}
