//! The `oci` exporter: config, manifest and index, written as an OCI image layout tar.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use fs_err as fs;
use kiln_oci::{Descriptor, Index, Manifest, media_type};
use kiln_store::ContentStore;
use serde_json::{Value, json};

use crate::Error;
use crate::layer::{Blob, Layer, write_layer};

/// Options of the OCI exporter.
#[derive(Debug, Clone, Default)]
pub struct OciOptions {
    /// Image names (`docker.io/library/demo:latest`); the first names the index entry.
    pub names: Vec<String>,
    /// The image's creation time (RFC 3339); also given to history entries without one.
    pub created: String,
    /// Times of the archive's own entries (Unix seconds), for reproducible archives.
    pub archive_mtime: u64,
}

/// What was exported.
#[derive(Debug, Clone)]
pub struct ExportResult {
    /// The manifest's descriptor.
    pub manifest: Descriptor,
    /// The config's digest.
    pub config_digest: String,
    /// Every layer's blob, in order (new ones included, for the caller to remember).
    pub layers: Vec<Blob>,
}

fn tar_file(
    builder: &mut tar::Builder<impl Write>,
    path: &str,
    data: &[u8],
    mtime: u64,
) -> Result<(), Error> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    builder.append_data(&mut header, path, data)?;
    Ok(())
}

fn tar_dir(builder: &mut tar::Builder<impl Write>, path: &str, mtime: u64) -> Result<(), Error> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_mtime(mtime);
    builder.append_data(&mut header, path, std::io::empty())?;
    Ok(())
}

/// The image config with its rootfs, creation time and history filled in.
fn finish_config(template: &Value, layers: &[Blob], created: &str) -> Result<Value, Error> {
    let mut config = template.clone();
    let object = config
        .as_object_mut()
        .ok_or_else(|| Error::Config("not a JSON object".to_owned()))?;
    object.insert(
        "rootfs".to_owned(),
        json!({"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()}),
    );
    object.insert("created".to_owned(), Value::String(created.to_owned()));
    if let Some(Value::Array(history)) = object.get_mut("history") {
        for entry in history {
            if let Some(entry) = entry.as_object_mut() {
                entry
                    .entry("created")
                    .or_insert_with(|| Value::String(created.to_owned()));
            }
        }
    }
    Ok(config)
}

/// Writes the image as an OCI layout tar at `dest` (atomically: a temp file renamed).
pub fn write_oci_archive(
    store: &ContentStore,
    layers: &[Layer],
    image_config: &Value,
    options: &OciOptions,
    dest: &Path,
) -> Result<ExportResult, Error> {
    let mut blobs = Vec::with_capacity(layers.len());
    for layer in layers {
        blobs.push(match &layer.blob {
            Some(blob) => blob.clone(),
            None => write_layer(store, &layer.dir, &layer.lowers)?,
        });
    }
    let config = finish_config(image_config, &blobs, &options.created)?;
    let config_bytes = serde_json::to_vec(&config).map_err(|e| Error::Config(e.to_string()))?;
    let config_digest = store.write_all(&config_bytes)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: media_type::OCI_MANIFEST.to_owned(),
        config: Descriptor {
            media_type: media_type::OCI_CONFIG.to_owned(),
            digest: config_digest.clone(),
            size: config_bytes.len() as u64,
            ..Descriptor::default()
        },
        layers: blobs
            .iter()
            .map(|b| Descriptor {
                media_type: b.media_type.clone(),
                digest: b.digest.clone(),
                size: b.size,
                ..Descriptor::default()
            })
            .collect(),
        annotations: BTreeMap::new(),
    };
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Config(e.to_string()))?;
    let manifest_digest = store.write_all(&manifest_bytes)?;
    let mut annotations = BTreeMap::new();
    if let Some(name) = options.names.first() {
        annotations.insert("io.containerd.image.name".to_owned(), name.clone());
        let tag = name
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map_or("latest", |(_, t)| t);
        annotations.insert(
            "org.opencontainers.image.ref.name".to_owned(),
            tag.to_owned(),
        );
    }
    let manifest_descriptor = Descriptor {
        media_type: media_type::OCI_MANIFEST.to_owned(),
        digest: manifest_digest.clone(),
        size: manifest_bytes.len() as u64,
        annotations,
        ..Descriptor::default()
    };
    let index = Index {
        schema_version: 2,
        media_type: media_type::OCI_INDEX.to_owned(),
        manifests: vec![manifest_descriptor.clone()],
        annotations: BTreeMap::new(),
    };
    let index_bytes = serde_json::to_vec(&index).map_err(|e| Error::Config(e.to_string()))?;

    let temp = dest.with_extension("kiln-tmp");
    {
        let file = fs::File::create(&temp)?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
        let mtime = options.archive_mtime;
        tar_file(
            &mut builder,
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#,
            mtime,
        )?;
        tar_file(&mut builder, "index.json", &index_bytes, mtime)?;
        tar_dir(&mut builder, "blobs/", mtime)?;
        tar_dir(&mut builder, "blobs/sha256/", mtime)?;
        let mut written = std::collections::HashSet::new();
        let all = std::iter::once(&manifest_digest)
            .chain(std::iter::once(&config_digest))
            .chain(blobs.iter().map(|b| &b.digest));
        for digest in all {
            if !written.insert(digest.clone()) {
                continue;
            }
            let path = store.path(digest)?;
            let size = fs::metadata(&path)?.len();
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            header.set_mode(0o644);
            header.set_mtime(mtime);
            let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
            builder.append_data(&mut header, name, fs::File::open(&path)?)?;
        }
        let mut writer = builder.into_inner()?;
        writer.flush()?;
        writer
            .into_inner()
            .map_err(|e| Error::Io(e.into_error()))?
            .sync_all()?;
    }
    fs::rename(&temp, dest)?;
    Ok(ExportResult {
        manifest: manifest_descriptor,
        config_digest,
        layers: blobs,
    })
}
