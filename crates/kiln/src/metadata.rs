//! `--metadata-file` and `--iidfile`: what a build produced, in buildx's keys.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context as _;
use kiln_api::build::{BuildRequest, BuildResult, Event};
use serde_json::{Map, Value as Json};

/// What the progress says of a remote cache hit (`cache hit in NAME`).
const REMOTE_HIT: &str = "cache hit in ";

/// Where a step's result came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// It ran.
    Ran,
    /// The local cache had it.
    Cached,
    /// A `--cache-from` had it (as the user named it).
    Imported(String),
}

#[derive(Debug)]
struct Step {
    digest: String,
    name: Option<String>,
    source: Source,
}

/// Where each step's result came from (the local cache, a `--cache-from`, or a run),
/// gathered from the build's progress events, so it works the same on every driver.
/// `--metadata-file` carries it as `kiln.build.steps`: a CI job can tell which step
/// missed its cache, and which cache answered the others.
#[derive(Debug, Default)]
pub(crate) struct StepSources {
    steps: Mutex<Vec<Step>>,
}

impl StepSources {
    /// Takes note of one progress event.
    pub(crate) fn observe(&self, event: &Event) {
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        let (digest, name) = match event {
            Event::Started { digest, name } | Event::Cached { digest, name } => {
                (digest, Some(name))
            }
            Event::Log { digest, data } if data.starts_with(REMOTE_HIT.as_bytes()) => {
                (digest, None)
            }
            _ => return,
        };
        let index = match steps.iter().position(|s| s.digest == *digest) {
            Some(index) => index,
            None => {
                steps.push(Step {
                    digest: digest.clone(),
                    name: None,
                    source: Source::Ran,
                });
                steps.len() - 1
            }
        };
        let step = &mut steps[index];
        if step.name.is_none() {
            step.name = name.cloned();
        }
        match event {
            Event::Cached { .. } if step.source == Source::Ran => step.source = Source::Cached,
            Event::Log { data, .. } => {
                let text = String::from_utf8_lossy(&data[REMOTE_HIT.len()..]);
                step.source = Source::Imported(text.trim_end().to_owned());
            }
            _ => {}
        }
    }

    /// The steps in the order they were first seen: `name`, `digest`, `result`
    /// (`ran`, `cached` or `imported`) and, for an import, `from`.
    pub(crate) fn to_json(&self) -> Json {
        let steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        Json::Array(
            steps
                .iter()
                .map(|step| {
                    let mut out = Map::new();
                    out.insert("name".into(), step.name.clone().unwrap_or_default().into());
                    out.insert("digest".into(), step.digest.clone().into());
                    let result = match &step.source {
                        Source::Ran => "ran",
                        Source::Cached => "cached",
                        Source::Imported(from) => {
                            out.insert("from".into(), from.clone().into());
                            "imported"
                        }
                    };
                    out.insert("result".into(), result.into());
                    Json::Object(out)
                })
                .collect(),
        )
    }
}

/// One build's metadata object (`containerimage.digest`, `containerimage.config.digest`,
/// `image.name`), as buildx writes it, and where its steps came from
/// (`kiln.build.steps`, see [`StepSources`]).
pub(crate) fn build_metadata(
    request: &BuildRequest,
    result: &BuildResult,
    steps: &StepSources,
) -> Json {
    let mut out = Map::new();
    out.insert("kiln.build.steps".into(), steps.to_json());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_say_where_their_results_came_from() {
        let sources = StepSources::default();
        let started = |digest: &str, name: &str| Event::Started {
            digest: digest.to_owned(),
            name: name.to_owned(),
        };
        let cached = |digest: &str, name: &str| Event::Cached {
            digest: digest.to_owned(),
            name: name.to_owned(),
        };
        for event in [
            started("sha256:a", "[1/3] FROM base"),
            cached("sha256:b", "[2/3] COPY a /a"),
            Event::Log {
                digest: "sha256:c".to_owned(),
                data: b"cache hit in type=registry,ref=r/app:cache\n".to_vec(),
            },
            cached("sha256:c", "[3/3] RUN make"),
            Event::Log {
                digest: "sha256:a".to_owned(),
                data: b"output of the step\n".to_vec(),
            },
        ] {
            sources.observe(&event);
        }
        assert_eq!(
            sources.to_json(),
            serde_json::json!([
                {"name": "[1/3] FROM base", "digest": "sha256:a", "result": "ran"},
                {"name": "[2/3] COPY a /a", "digest": "sha256:b", "result": "cached"},
                {"name": "[3/3] RUN make", "digest": "sha256:c", "result": "imported",
                 "from": "type=registry,ref=r/app:cache"},
            ])
        );
    }
}
