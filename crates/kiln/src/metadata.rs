//! `--metadata-file` and `--iidfile`: what a build produced, in buildx's keys.

use std::path::Path;

use anyhow::Context as _;
use kiln_api::build::{BuildRequest, BuildResult};
use serde_json::{Map, Value as Json};

/// One build's metadata object (`containerimage.digest`, `containerimage.config.digest`,
/// `image.name`), as buildx writes it.
pub(crate) fn build_metadata(request: &BuildRequest, result: &BuildResult) -> Json {
    let mut out = Map::new();
    if let Some(config) = &result.config_digest {
        out.insert("containerimage.config.digest".into(), config.clone().into());
    }
    if let Some(manifest) = &result.manifest_digest {
        out.insert("containerimage.digest".into(), manifest.clone().into());
    }
    if let Some(descriptor) = &result.manifest {
        let mut value = serde_json::json!({
            "mediaType": descriptor.media_type,
            "digest": descriptor.digest,
            "size": descriptor.size,
        });
        if let Some(config) = &result.config_digest {
            value["annotations"] = serde_json::json!({"config.digest": config});
        }
        out.insert("containerimage.descriptor".into(), value);
    }
    out.insert("buildx.build.ref".into(), build_ref().into());
    if !result.image_names.is_empty() {
        out.insert("image.name".into(), result.image_names.join(",").into());
    } else if !request.tags.is_empty() {
        out.insert("image.name".into(), request.tags.join(",").into());
    }
    Json::Object(out)
}

/// `builder/node/id`, as buildx names a build (the embedded builder has one node).
fn build_ref() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut id = nanos ^ (u128::from(std::process::id()) << 64);
    let mut text = String::new();
    for _ in 0..25 {
        text.push(char::from_digit((id % 36) as u32, 36).unwrap_or('0'));
        id /= 36;
    }
    format!("kiln/embedded/{text}")
}

/// Writes `text` to `path` through a temporary file and a rename, so a reader never
/// sees half a file.
pub(crate) fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut temp, text.as_bytes())?;
    temp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes a JSON document with buildx's indentation.
pub(crate) fn write_json(path: &Path, value: &Json) -> anyhow::Result<()> {
    write_atomically(path, &serde_json::to_string_pretty(value)?)
}
