//! `--output`, `--load` and `--push` into exporters, as buildx reads them: CSV fields
//! (quoted fields may hold commas), the short forms `-o DIR` and `-o -`, tags as the
//! image name, and `type=docker` without `dest` loaded into Docker.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use kiln_api::build::Export;

/// An exporter, and where its docker archive goes afterwards.
#[derive(Debug)]
pub(crate) struct Planned {
    /// The exporter's type and attributes, as a builder takes them.
    pub(crate) export: Export,
    /// A docker archive to load into the Docker daemon once written (then removed).
    pub(crate) load: Option<tempfile::TempPath>,
}

/// One `--output` value as its type and attributes.
pub(crate) fn parse_spec(spec: &str) -> anyhow::Result<(String, BTreeMap<String, String>)> {
    if !spec.contains('=') {
        // buildx's short forms: `-o -` is a tar on stdout, `-o DIR` a local directory.
        return Ok(if spec == "-" {
            ("tar".to_owned(), BTreeMap::new())
        } else {
            (
                "local".to_owned(),
                BTreeMap::from([("dest".to_owned(), spec.to_owned())]),
            )
        });
    }
    let mut attrs = BTreeMap::new();
    for field in kiln_oci::go::csv_fields(spec)? {
        let (key, value) = field
            .split_once('=')
            .with_context(|| format!("invalid --output {spec:?}: {field:?} is not KEY=VALUE"))?;
        attrs.insert(key.trim().to_ascii_lowercase(), value.to_owned());
    }
    let kind = attrs.remove("type").unwrap_or_else(|| "local".to_owned());
    Ok((kind, attrs))
}

/// An exporter from its type and attributes, with `tags` as its name when it has none.
pub(crate) fn plan(
    kind: &str,
    mut attrs: BTreeMap<String, String>,
    tags: &[String],
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<Planned> {
    let names_image = matches!(kind, "image" | "registry" | "docker" | "oci");
    if names_image && !attrs.contains_key("name") && !tags.is_empty() {
        attrs.insert("name".to_owned(), tags.join(","));
    }
    if names_image {
        for (key, value) in annotations {
            attrs.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    let mut load = None;
    if kind == "docker" && !attrs.contains_key("dest") {
        let temp = tempfile::Builder::new()
            .prefix("kiln-load-")
            .suffix(".tar")
            .tempfile()
            .context("creating a temporary file for the image to load")?
            .into_temp_path();
        attrs.insert("dest".to_owned(), temp.display().to_string());
        load = Some(temp);
    }
    let to_stdout = matches!(kind, "tar" | "oci" | "docker")
        && attrs.get("dest").is_none_or(|dest| dest == "-");
    if to_stdout && std::io::stdout().is_terminal() {
        bail!("dest file is required for {kind} exporter. refusing to write to console");
    }
    Ok(Planned {
        export: Export {
            kind: kind.to_owned(),
            attrs,
        },
        load,
    })
}

/// Every exporter of a build: `--output`s, then `--push` (an image pushed) and `--load`
/// (a docker archive loaded), as buildx adds them.
pub(crate) fn plan_all(
    outputs: &[String],
    tags: &[String],
    annotations: &BTreeMap<String, String>,
    push: bool,
    load: bool,
) -> anyhow::Result<Vec<Planned>> {
    let mut planned = Vec::new();
    for spec in outputs {
        let (kind, attrs) = parse_spec(spec)?;
        planned.push(plan(&kind, attrs, tags, annotations)?);
    }
    let pushes = planned.iter().any(|p| pushes(&p.export));
    if push && !pushes {
        if tags.is_empty() {
            bail!("--push needs an image name: add --tag NAME");
        }
        let attrs = BTreeMap::from([("push".to_owned(), "true".to_owned())]);
        planned.push(plan("image", attrs, tags, annotations)?);
    }
    let loads = planned.iter().any(|p| p.load.is_some());
    if load && !loads {
        planned.push(plan("docker", BTreeMap::new(), tags, annotations)?);
    }
    Ok(planned)
}

/// Whether an exporter pushes: `registry`, or `image` with `push` true (Go's
/// `strconv.ParseBool` spellings, as BuildKit reads it).
fn pushes(export: &Export) -> bool {
    let push = export.attrs.get("push").map(String::as_str);
    match export.kind.as_str() {
        "registry" => true,
        "image" => push.and_then(kiln_oci::go::parse_bool) == Some(true),
        _ => false,
    }
}

/// Refuses the docker exporter for a multi-platform build, as buildx does where Docker
/// has no containerd image store: a Docker archive holds one image per name.
pub(crate) fn refuse_manifest_lists(planned: &[Planned], platforms: usize) -> anyhow::Result<()> {
    if platforms < 2 {
        return Ok(());
    }
    match planned.iter().find(|p| p.export.kind == "docker") {
        Some(p) if p.load.is_some() => {
            bail!("docker exporter does not currently support exporting manifest lists")
        }
        Some(_) => bail!(
            "docker exporter does not support exporting manifest lists, use the oci exporter instead"
        ),
        None => Ok(()),
    }
}

/// The destinations of planned exporters that load into Docker.
pub(crate) fn loads(planned: &[Planned]) -> Vec<PathBuf> {
    planned
        .iter()
        .filter_map(|p| p.load.as_ref().map(|t| t.to_path_buf()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_keep_their_commas() {
        let (kind, attrs) = parse_spec(r#"type=image,"name=a,b",push=true"#).unwrap();
        assert_eq!((kind.as_str(), attrs["name"].as_str()), ("image", "a,b"));
        let error = parse_spec(r#"type=image,"open"#).unwrap_err().to_string();
        assert!(error.contains("extraneous or missing"), "{error}");
    }

    #[test]
    fn short_forms() {
        assert_eq!(parse_spec("-").unwrap().0, "tar");
        let (kind, attrs) = parse_spec("out/dir").unwrap();
        assert_eq!(kind, "local");
        assert_eq!(attrs["dest"], "out/dir");
        assert_eq!(parse_spec("dest=x").unwrap().0, "local");
    }

    #[test]
    fn tags_name_the_image_and_push_adds_an_exporter() {
        let planned = plan_all(
            &[],
            &["127.0.0.1:5000/demo:1".to_owned()],
            &BTreeMap::new(),
            true,
            false,
        )
        .unwrap();
        let [Planned { export, load: None }] = planned.as_slice() else {
            panic!("expected one image exporter: {planned:?}")
        };
        assert!(pushes(export));
        assert_eq!(export.attrs["name"], "127.0.0.1:5000/demo:1");
        assert!(plan_all(&[], &[], &BTreeMap::new(), true, false).is_err());
    }

    #[test]
    fn load_writes_a_docker_archive_to_load() {
        let planned = plan_all(&[], &["demo".to_owned()], &BTreeMap::new(), false, true).unwrap();
        assert_eq!(loads(&planned).len(), 1);
        let export = &planned[0].export;
        assert_eq!(export.kind, "docker");
        assert!(export.attrs["dest"].ends_with(".tar"));
        assert_eq!(export.attrs["name"], "demo");
    }
}
