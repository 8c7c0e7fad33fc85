//! The `oci` and `docker` exporters: an OCI image layout (index.json, oci-layout,
//! blobs) plus, for one image, Docker's manifest.json, so that `docker load` takes
//! either, written as a tar (to a file or standard output) or as a directory.

use std::io::Write;
use std::path::Path;

use fs_err as fs;
use kiln_oci::{Descriptor, Index, Reference, media_type};
use kiln_store::ContentStore;
use serde_json::json;

use crate::Error;
use crate::image::{Image, index_annotations};
use crate::index::MultiPlatformImage;
use crate::options::{Dest, ImageOptions};

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// `docker.io/library/demo:latest` → `demo:latest`, as `docker images` shows names.
fn familiar(name: &str) -> String {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
        .to_owned()
}

/// index.json: the manifest once per name (containerd's layout convention), carrying the
/// name and its tag; once without a name when there is none. As BuildKit's OCI exporter
/// writes it: the descriptor has the image's platform and its creation time
/// (`org.opencontainers.image.created`, unless an annotation gives one), and the JSON is
/// Go's.
fn index_json(image: &Image, options: &ImageOptions) -> Result<Vec<u8>, Error> {
    let mut manifest = image.manifest.clone();
    manifest
        .annotations
        .entry("org.opencontainers.image.created".to_owned())
        .or_insert_with(|| image.created.clone());
    manifest.platform = Some(image.descriptor_platform.clone());
    let index = Index {
        schema_version: 2,
        media_type: media_type::OCI_INDEX.to_owned(),
        manifests: named(&manifest, &options.names),
        annotations: index_annotations(options, &image.platform),
    };
    crate::gojson::to_vec(&index)
}

/// index.json's entries for what the layout holds: `descriptor` once per name,
/// carrying the name and its tag (containerd's layout convention); once without a name
/// when there is none.
fn named(descriptor: &Descriptor, names: &[String]) -> Vec<Descriptor> {
    let mut entries = Vec::new();
    for name in names {
        let mut entry = descriptor.clone();
        entry
            .annotations
            .insert("io.containerd.image.name".to_owned(), name.clone());
        if let Some(tag) = name.parse::<Reference>().ok().and_then(|r| r.tag) {
            entry
                .annotations
                .insert("org.opencontainers.image.ref.name".to_owned(), tag);
        }
        entries.push(entry);
    }
    if entries.is_empty() {
        entries.push(descriptor.clone());
    }
    entries
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// Docker's manifest.json: config, tagged names and layers by path.
fn docker_manifest_json(image: &Image, options: &ImageOptions) -> Result<Vec<u8>, Error> {
    let repo_tags: Vec<String> = options
        .names
        .iter()
        .filter(|n| n.parse::<Reference>().is_ok_and(|r| r.tag.is_some()))
        .map(|n| familiar(n))
        .collect();
    let entry = json!([{
        "Config": blob_path(&image.config.digest),
        "RepoTags": repo_tags,
        "Layers": image.layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
    }]);
    serde_json::to_vec(&entry).map_err(|e| Error::Config(e.to_string()))
}

/// Every blob of the image, each once: manifest, config, layers.
fn blobs(image: &Image) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let all = [&image.manifest.digest, &image.config.digest]
        .into_iter()
        .chain(image.layers.iter().map(|b| &b.digest));
    for digest in all {
        if !out.contains(digest) {
            out.push(digest.clone());
        }
    }
    out
}

fn tar_entry(
    builder: &mut tar::Builder<impl Write>,
    path: &str,
    size: u64,
    mtime: u64,
    data: impl std::io::Read,
) -> Result<(), Error> {
    let mut header = tar::Header::new_ustar();
    if path.ends_with('/') {
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
    } else {
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
    }
    header.set_size(size);
    header.set_mtime(mtime);
    builder.append_data(&mut header, path, data)?;
    Ok(())
}

/// What a layout holds, ready to write: index.json, Docker's manifest.json (a single
/// image only, as BuildKit's exporters write it) and every blob once.
struct LayoutFiles {
    index_json: Vec<u8>,
    docker_manifest: Option<Vec<u8>>,
    blobs: Vec<String>,
}

impl LayoutFiles {
    fn of_image(image: &Image, options: &ImageOptions) -> Result<Self, Error> {
        Ok(Self {
            index_json: index_json(image, options)?,
            docker_manifest: Some(docker_manifest_json(image, options)?),
            blobs: blobs(image),
        })
    }

    /// index.json names the index (once per name, as for one image), which lists the
    /// platforms' manifests.
    fn of_index(multi: &MultiPlatformImage, options: &ImageOptions) -> Result<Self, Error> {
        let mut top = multi.index.clone();
        if let Some(first) = multi.images.first() {
            top.annotations
                .entry("org.opencontainers.image.created".to_owned())
                .or_insert_with(|| first.created.clone());
        }
        let index = Index {
            schema_version: 2,
            media_type: media_type::OCI_INDEX.to_owned(),
            manifests: named(&top, &options.names),
            annotations: Default::default(),
        };
        let mut all = vec![multi.index.digest.clone()];
        for digest in multi.images.iter().flat_map(blobs) {
            if !all.contains(&digest) {
                all.push(digest);
            }
        }
        Ok(Self {
            index_json: crate::gojson::to_vec(&index)?,
            docker_manifest: None,
            blobs: all,
        })
    }
}

fn write_tar(
    store: &ContentStore,
    files: &LayoutFiles,
    mtime: u64,
    out: impl Write,
) -> Result<(), Error> {
    let mut builder = tar::Builder::new(out);
    let small = |b: &mut tar::Builder<_>, path: &str, data: &[u8]| {
        tar_entry(b, path, data.len() as u64, mtime, data)
    };
    small(&mut builder, "oci-layout", OCI_LAYOUT)?;
    small(&mut builder, "index.json", &files.index_json)?;
    if let Some(manifest) = &files.docker_manifest {
        small(&mut builder, "manifest.json", manifest)?;
    }
    tar_entry(&mut builder, "blobs/", 0, mtime, std::io::empty())?;
    tar_entry(&mut builder, "blobs/sha256/", 0, mtime, std::io::empty())?;
    for digest in &files.blobs {
        let file = store.open_blob(digest)?;
        let size = file.metadata()?.len();
        tar_entry(&mut builder, &blob_path(digest), size, mtime, file)?;
    }
    builder.into_inner()?.flush()?;
    Ok(())
}

/// Writes a file by writing a temp file beside it and renaming it into place.
pub(crate) fn write_file_atomically(
    dest: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut temp = dest.as_os_str().to_owned();
    temp.push(".kiln-tmp");
    let temp = Path::new(&temp);
    let result = (|| {
        let file = fs::File::create(temp)?;
        let mut writer = std::io::BufWriter::with_capacity(256 * 1024, file);
        write(&mut writer)?;
        writer
            .into_inner()
            .map_err(|e| Error::Io(e.into_error()))?
            .sync_all()?;
        fs::rename(temp, dest)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(temp);
    }
    result
}

fn write_dir(store: &ContentStore, files: &LayoutFiles, dest: &Path) -> Result<(), Error> {
    fs::create_dir_all(dest.join("blobs/sha256"))?;
    for digest in &files.blobs {
        let target = dest.join(blob_path(digest));
        if !target.exists() {
            write_file_atomically(&target, |out| {
                std::io::copy(&mut store.open_blob(digest)?, out)?;
                Ok(())
            })?;
        }
    }
    write_file_atomically(&dest.join("oci-layout"), |out| {
        Ok(out.write_all(OCI_LAYOUT)?)
    })?;
    write_file_atomically(&dest.join("index.json"), |out| {
        Ok(out.write_all(&files.index_json)?)
    })
}

fn write_files(
    store: &ContentStore,
    files: &LayoutFiles,
    dest: &Dest,
    mtime: u64,
) -> Result<(), Error> {
    match dest {
        Dest::File(path) => write_file_atomically(path, |out| write_tar(store, files, mtime, out)),
        Dest::Stdout => {
            let stdout = std::io::stdout().lock();
            write_tar(
                store,
                files,
                mtime,
                std::io::BufWriter::with_capacity(256 * 1024, stdout),
            )
        }
        Dest::Dir(path) => write_dir(store, files, path),
    }
}

/// Writes the image's layout to `dest`; archive entries carry `mtime` (Unix seconds).
pub fn write_layout(
    store: &ContentStore,
    image: &Image,
    options: &ImageOptions,
    dest: &Dest,
    mtime: u64,
) -> Result<(), Error> {
    write_files(store, &LayoutFiles::of_image(image, options)?, dest, mtime)
}

/// Writes a multi-platform result's layout (the `oci` exporter) to `dest`.
pub fn write_index_layout(
    store: &ContentStore,
    multi: &MultiPlatformImage,
    options: &ImageOptions,
    dest: &Dest,
    mtime: u64,
) -> Result<(), Error> {
    write_files(store, &LayoutFiles::of_index(multi, options)?, dest, mtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// index.json as BuildKit v0.24.0's OCI exporter wrote it for `name=x` (case 121 of
    /// tests/differential/e2e), but for the manifest it points at.
    #[test]
    fn index_is_buildkit_s() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(tmp.path().join("store")).unwrap();
        let options = ImageOptions {
            names: vec!["docker.io/library/x:latest".to_owned()],
            oci_mediatypes: true,
            ..ImageOptions::default()
        };
        let config = json!({"architecture": "amd64", "os": "linux", "config": {}});
        let image =
            crate::assemble(&store, &[], &config, &options, "2023-11-14T22:13:20Z", None).unwrap();
        let expected = format!(
            concat!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","#,
                r#""manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
                r#""digest":"{}","size":{},"annotations":{{"io.containerd.image.name":"#,
                r#""docker.io/library/x:latest","org.opencontainers.image.created":"#,
                r#""2023-11-14T22:13:20Z","org.opencontainers.image.ref.name":"latest"}},"#,
                r#""platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
            ),
            image.manifest.digest, image.manifest.size
        );
        assert_eq!(
            String::from_utf8(index_json(&image, &options).unwrap()).unwrap(),
            expected
        );
    }

    #[test]
    fn familiar_names() {
        assert_eq!(familiar("docker.io/library/demo:latest"), "demo:latest");
        assert_eq!(familiar("docker.io/me/demo:1"), "me/demo:1");
        assert_eq!(familiar("127.0.0.1:5000/x:1"), "127.0.0.1:5000/x:1");
    }
}
