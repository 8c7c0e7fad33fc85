//! BuildKit's frontend subrequests: asked with the `requestid` frontend option (buildx's
//! `--call`), the Dockerfile frontend answers a question about the Dockerfile in its
//! result's metadata instead of building: `result.json`, `result.txt`,
//! `result.statuscode` and `version`. Here are the answers' types, written in the JSON
//! of BuildKit's `frontend/subrequests` packages, and the tables buildx prints of them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::build::SourceRange;

/// The frontend option naming a subrequest.
pub const REQUEST_ID: &str = "requestid";
/// `frontend.outline`: what a target can be given (build args, secrets, ssh).
pub const OUTLINE: &str = "frontend.outline";
/// `frontend.targets`: the stages a Dockerfile can build.
pub const TARGETS: &str = "frontend.targets";
/// `frontend.lint`: the build checks, and the error that stops the conversion.
pub const LINT: &str = "frontend.lint";
/// `frontend.subrequests.describe`: the subrequests a frontend answers.
pub const DESCRIBE: &str = "frontend.subrequests.describe";
/// Every subrequest's version.
pub const VERSION: &str = "1.0.0";

/// A subrequest's answer: its result's metadata.
pub type Metadata = HashMap<String, Vec<u8>>;

/// Where in the sources something is (BuildKit's `pb.Location`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Which of the answer's sources.
    #[serde(rename = "sourceIndex", default, skip_serializing_if = "is_zero")]
    pub source_index: i32,
    /// The lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<SourceRange>,
}

impl Location {
    /// The place `range` in the first source, or none for a range without a line.
    pub fn first_source(range: SourceRange) -> Option<Self> {
        (range.start.line > 0).then(|| Self {
            source_index: 0,
            ranges: vec![range],
        })
    }
}

/// `outline.Outline`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Outline {
    /// The target stage's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its description comment.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The build args it uses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<OutlineArg>,
    /// The secrets it mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<OutlineMount>,
    /// The ssh sockets it mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ssh: Vec<OutlineMount>,
    /// The Dockerfile.
    #[serde(with = "base64_list", skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Vec<u8>>,
}

/// `outline.Arg`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutlineArg {
    /// Its name.
    pub name: String,
    /// Its description comment.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Its value in this build.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// Its ARG.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// `outline.Secret` and `outline.SSH`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutlineMount {
    /// Its id.
    pub name: String,
    /// Whether the build fails without it.
    #[serde(skip_serializing_if = "is_false")]
    pub required: bool,
    /// The first RUN mounting it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// `targets.List`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetList {
    /// Every stage.
    pub targets: Vec<Target>,
    /// The Dockerfile.
    #[serde(with = "base64_list")]
    pub sources: Vec<Vec<u8>>,
}

/// `targets.Target`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Target {
    /// `AS name`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Whether it is built when no target is named.
    #[serde(skip_serializing_if = "is_false")]
    pub default: bool,
    /// Its description comment.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// What its FROM names, as written.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub base: String,
    /// Its `--platform`, as written.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub platform: String,
    /// Its FROM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// `lint.LintResults`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LintResults {
    /// The checks that fired (`null` when none, as Go writes an empty list).
    #[serde(with = "null_if_empty")]
    pub warnings: Vec<LintWarning>,
    /// The Dockerfile.
    pub sources: Vec<SourceInfo>,
    /// What stopped the conversion.
    #[serde(rename = "buildError", skip_serializing_if = "Option::is_none")]
    pub build_error: Option<BuildError>,
}

/// `lint.Warning`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LintWarning {
    /// The rule, e.g. `FromAsCasing`.
    #[serde(rename = "ruleName")]
    pub rule_name: String,
    /// What the rule is about.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Its documentation.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// What is wrong here.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// `lint.BuildError`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildError {
    /// The error.
    pub message: String,
    /// Where.
    pub location: Location,
}

/// `pb.SourceInfo` (without the LLB definition that loaded it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceInfo {
    /// Its file name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filename: String,
    /// Its text.
    #[serde(with = "base64_bytes", skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<u8>,
    /// `Dockerfile`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub language: String,
}

/// `subrequests.Request`: a subrequest a frontend answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestDescription {
    /// `frontend.outline`, …
    pub name: String,
    /// Its answer's version.
    pub version: String,
    /// `rpc`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What it answers.
    pub description: String,
    /// Its options (`null` and `[]` differ on the wire, as in Go).
    pub opts: Option<Vec<Named>>,
    /// Its inputs.
    pub inputs: Option<Vec<Named>>,
    /// The metadata of its answer.
    pub metadata: Option<Vec<Named>>,
    /// Its answer's refs.
    pub refs: Option<Vec<Named>>,
}

/// `subrequests.Named`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Named {
    /// The name.
    pub name: String,
    /// What it is.
    pub description: String,
}

/// The subrequests BuildKit's Dockerfile frontend describes (it answers `frontend.lint`
/// too, without listing it).
pub fn described() -> Vec<RequestDescription> {
    let named = |name: &str, description: &str| Named {
        name: name.to_owned(),
        description: description.to_owned(),
    };
    let results = Some(vec![named("result.json", ""), named("result.txt", "")]);
    let request = |name: &str, description: &str, opts: Option<Vec<Named>>| RequestDescription {
        name: name.to_owned(),
        version: VERSION.to_owned(),
        kind: "rpc".to_owned(),
        description: description.to_owned(),
        opts,
        inputs: None,
        metadata: results.clone(),
        refs: None,
    };
    vec![
        request(
            OUTLINE,
            "List all parameters current build target supports",
            Some(vec![named("target", "Target build stage")]),
        ),
        request(
            TARGETS,
            "List all targets current build supports",
            Some(Vec::new()),
        ),
        request(DESCRIBE, "List available subrequest types", None),
    ]
}

/// An answer's metadata: its JSON, its table, and the status when it has one.
fn metadata(json: Vec<u8>, text: String, status: Option<bool>) -> Metadata {
    let mut metadata = HashMap::from([
        ("result.json".to_owned(), json),
        ("result.txt".to_owned(), text.into_bytes()),
        ("version".to_owned(), VERSION.as_bytes().to_vec()),
    ]);
    if let Some(failed) = status {
        metadata.insert(
            "result.statuscode".to_owned(),
            if failed { b"1".to_vec() } else { b"0".to_vec() },
        );
    }
    metadata
}

impl Outline {
    /// The answer to `frontend.outline`.
    pub fn to_metadata(&self) -> Metadata {
        metadata(go_json(self), print_outline(self), None)
    }
}

impl TargetList {
    /// The answer to `frontend.targets`.
    pub fn to_metadata(&self) -> Metadata {
        metadata(go_json(self), print_targets(self), None)
    }
}

impl LintResults {
    /// The answer to `frontend.lint`: failed when a check fired or the conversion
    /// stopped.
    pub fn to_metadata(&self) -> Metadata {
        let failed = !self.warnings.is_empty() || self.build_error.is_some();
        metadata(go_json(self), self.print_warnings(None), Some(failed))
    }

    /// Each warning in full (`lint.PrintLintViolations`), by line; `filename` names the
    /// Dockerfile instead of its sources' name.
    pub fn print_warnings(&self, filename: Option<&str>) -> String {
        let mut warnings: Vec<&LintWarning> = self.warnings.iter().collect();
        let line = |w: &LintWarning| {
            w.location
                .as_ref()
                .and_then(|l| l.ranges.first())
                .map(|r| r.start.line)
        };
        warnings.sort_by_key(|w| line(w));
        let mut out = String::new();
        for warning in warnings {
            out.push_str(&format!("\nWARNING: {}", warning.rule_name));
            if !warning.url.is_empty() {
                out.push_str(&format!(" - {}", warning.url));
            }
            out.push_str(&format!("\n{}\n", warning.detail));
            if let Some(location) = &warning.location {
                out.push_str(&self.excerpt(location, filename));
            }
        }
        out
    }

    /// The error that stopped the conversion with its lines, as buildx reports it.
    pub fn print_error(&self, filename: Option<&str>) -> Option<String> {
        let error = self.build_error.as_ref()?;
        Some(format!(
            "{}\n{}",
            error.message,
            self.excerpt(&error.location, filename)
        ))
    }

    fn excerpt(&self, location: &Location, filename: Option<&str>) -> String {
        let Some(source) = usize::try_from(location.source_index)
            .ok()
            .and_then(|i| self.sources.get(i))
        else {
            return String::new();
        };
        source_excerpt(
            filename.unwrap_or(&source.filename),
            &source.data,
            &location.ranges,
        )
    }
}

/// The answer to `frontend.subrequests.describe`.
pub fn describe_metadata() -> Metadata {
    let described = described();
    metadata(go_json(&described), print_describe(&described), None)
}

/// `outline.PrintOutline`.
pub fn print_outline(outline: &Outline) -> String {
    use kiln_oci::tabwriter::align;
    let mut out = String::new();
    if !outline.name.is_empty() || !outline.description.is_empty() {
        let name = match outline.name.as_str() {
            "" => "(default)",
            name => name,
        };
        let mut block = format!("TARGET:\t{name}\n");
        if !outline.description.is_empty() {
            block.push_str(&format!("DESCRIPTION:\t{}\n", outline.description));
        }
        out.push_str(&align(&block, 0, 1));
        out.push('\n');
    }
    if !outline.args.is_empty() {
        let mut block = "BUILD ARG\tVALUE\tDESCRIPTION\n".to_owned();
        for arg in &outline.args {
            block.push_str(&format!(
                "{}\t{}\t{}\n",
                arg.name, arg.value, arg.description
            ));
        }
        out.push_str(&align(&block, 0, 3));
        out.push('\n');
    }
    for (title, mounts) in [("SECRET", &outline.secrets), ("SSH", &outline.ssh)] {
        if mounts.is_empty() {
            continue;
        }
        let mut block = format!("{title}\tREQUIRED\n");
        for mount in mounts {
            let required = if mount.required { "true" } else { "" };
            block.push_str(&format!("{}\t{required}\n", mount.name));
        }
        out.push_str(&align(&block, 0, 3));
        out.push('\n');
    }
    out
}

/// `targets.PrintTargets`.
pub fn print_targets(list: &TargetList) -> String {
    let mut block = "TARGET\tDESCRIPTION\n".to_owned();
    for target in &list.targets {
        let name = match (target.name.as_str(), target.default) {
            ("", true) => "(default)".to_owned(),
            (name, true) => format!("{name} (default)"),
            (name, false) => name.to_owned(),
        };
        block.push_str(&format!("{name}\t{}\n", target.description));
    }
    kiln_oci::tabwriter::align(&block, 0, 1)
}

/// `subrequests.PrintDescribe`.
pub fn print_describe(described: &[RequestDescription]) -> String {
    let mut block = "NAME\tVERSION\tDESCRIPTION\n".to_owned();
    for request in described {
        block.push_str(&format!(
            "{}\t{}\t{}\n",
            request.name.trim_start_matches("frontend."),
            request.version,
            request.description
        ));
    }
    kiln_oci::tabwriter::align(&block, 0, 1)
}

/// The lines `ranges` cover, marked, with context around them, as BuildKit prints a
/// source under an error or a warning (`errdefs.Source.Print`): four lines of context
/// around one line, two around several.
pub fn source_excerpt(filename: &str, data: &[u8], ranges: &[SourceRange]) -> String {
    let text = String::from_utf8_lossy(data);
    // Go's strings.Split: a final newline leaves an empty last line.
    let lines: Vec<&str> = text.split('\n').collect();
    let Some(first) = ranges.first() else {
        return String::new();
    };
    let range_end = |r: &SourceRange| r.end.line.max(r.start.line);
    let mut start = ranges
        .iter()
        .map(|r| r.start.line)
        .min()
        .unwrap_or(first.start.line);
    let mut end = ranges.iter().map(range_end).max().unwrap_or(0);
    if start > lines.len() || start < 1 {
        return String::new();
    }
    end = end.min(lines.len());
    let first_line = start;
    let pad = if end == start { 4 } else { 2 };
    let mut p = 0;
    while p < pad {
        if start > 1 {
            start -= 1;
            p += 1;
        }
        if end != lines.len() {
            end += 1;
            p += 1;
        }
        p += 1;
    }
    let mut out = format!("{filename}:{first_line}\n--------------------\n");
    for n in start..=end {
        let marked = ranges
            .iter()
            .any(|r| r.start.line <= n && range_end(r) >= n);
        let marker = if marked { ">>>" } else { "   " };
        out.push_str(&format!(" {n:>3} | {marker} {}\n", lines[n - 1]));
    }
    out.push_str("--------------------\n");
    out
}

/// JSON as Go's `json.MarshalIndent(v, "", "  ")` writes it: `<`, `>`, `&` and the
/// line and paragraph separators escaped.
pub fn go_json(value: &impl Serialize) -> Vec<u8> {
    let json = serde_json::to_string_pretty(value).unwrap_or_default();
    kiln_oci::go::json_html_escape(&json).into_bytes()
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !b
}

/// Go's `[]byte` in JSON: base64.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = Option::<String>::deserialize(d)?.unwrap_or_default();
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Go's `[][]byte` in JSON: a list of base64 strings.
mod base64_list {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|b| STANDARD.encode(b)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Option::<Vec<String>>::deserialize(d)?
            .unwrap_or_default()
            .iter()
            .map(|text| STANDARD.decode(text).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// A Go slice that is nil when empty: `null` in JSON.
mod null_if_empty {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer, T: Serialize>(
        list: &[T],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        if list.is_empty() {
            s.serialize_none()
        } else {
            s.collect_seq(list)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What BuildKit v0.24 printed for an error on the last line of a file that ends
    /// with a newline: the empty line after it is context too.
    #[test]
    fn an_excerpt_as_buildkit_prints_it() {
        let data = b"FROM scratch\nCOPY a /\nBADCMD x\n";
        assert_eq!(
            source_excerpt("/tmp/l2.Dockerfile", data, &[SourceRange::lines(3, 3)]),
            "/tmp/l2.Dockerfile:3\n--------------------\n   1 |     FROM scratch\n   2 |     COPY a /\n   3 | >>> BADCMD x\n   4 |     \n--------------------\n"
        );
        // Several lines: one line of context either side.
        let data = b"a\nb\nc\nd\ne\nf\ng";
        assert_eq!(
            source_excerpt("D", data, &[SourceRange::lines(3, 4)]),
            "D:3\n--------------------\n   2 |     b\n   3 | >>> c\n   4 | >>> d\n   5 |     e\n--------------------\n"
        );
        // At the top, the context is all below.
        assert_eq!(
            source_excerpt("D", data, &[SourceRange::lines(1, 1)]),
            "D:1\n--------------------\n   1 | >>> a\n   2 |     b\n   3 |     c\n--------------------\n"
        );
        assert_eq!(source_excerpt("D", data, &[SourceRange::lines(9, 9)]), "");
    }

    /// `docker buildx build --call outline` against BuildKit v0.24 (recorded).
    #[test]
    fn an_outline_table_as_buildx_prints_it() {
        let arg = |name: &str, value: &str, description: &str| OutlineArg {
            name: name.to_owned(),
            value: value.to_owned(),
            description: description.to_owned(),
            location: None,
        };
        let mount = |name: &str, required: bool| OutlineMount {
            name: name.to_owned(),
            required,
            location: None,
        };
        let outline = Outline {
            name: "build".to_owned(),
            description: "compiles the binary".to_owned(),
            args: vec![
                arg("GO_VERSION", "1.22", ""),
                arg("BASE", "scratch", "the base image to build on"),
                arg("A", "", ""),
            ],
            secrets: vec![mount("token", true), mount(".aws", false)],
            ssh: vec![mount("default", false), mount("gh", true)],
            sources: Vec::new(),
        };
        assert_eq!(
            print_outline(&outline),
            "TARGET:      build\nDESCRIPTION: compiles the binary\n\n\
             BUILD ARG    VALUE     DESCRIPTION\n\
             GO_VERSION   1.22      \n\
             BASE         scratch   the base image to build on\n\
             A                      \n\n\
             SECRET   REQUIRED\ntoken    true\n.aws     \n\n\
             SSH       REQUIRED\ndefault   \ngh        true\n\n"
        );
    }

    /// `--call targets` and `--call subrequests.describe` (recorded), and the JSON the
    /// frontend answers with: Go's field order, zeros and empty fields left out.
    #[test]
    fn targets_and_descriptions_as_buildkit_writes_them() {
        let list = TargetList {
            targets: vec![
                Target {
                    name: "build".to_owned(),
                    description: "compiles the binary".to_owned(),
                    base: "${BASE}".to_owned(),
                    location: Location::first_source(SourceRange::lines(8, 8)),
                    ..Target::default()
                },
                Target {
                    name: "tools".to_owned(),
                    base: "scratch".to_owned(),
                    ..Target::default()
                },
                Target {
                    default: true,
                    base: "build".to_owned(),
                    ..Target::default()
                },
            ],
            sources: vec![b"FROM x".to_vec()],
        };
        assert_eq!(
            print_targets(&list),
            "TARGET    DESCRIPTION\nbuild     compiles the binary\ntools     \n(default) \n"
        );
        let json = String::from_utf8(go_json(&list)).unwrap();
        assert!(
            json.starts_with(
                "{\n  \"targets\": [\n    {\n      \"name\": \"build\",\n      \"description\": \"compiles the binary\",\n      \"base\": \"${BASE}\",\n      \"location\": {\n        \"ranges\": [\n          {\n            \"start\": {\n              \"line\": 8\n            },"
            ),
            "{json}"
        );
        assert!(
            json.contains("\"default\": true,\n      \"base\": \"build\""),
            "{json}"
        );
        assert!(
            json.ends_with("\"sources\": [\n    \"RlJPTSB4\"\n  ]\n}"),
            "{json}"
        );
        assert_eq!(
            print_describe(&described()),
            "NAME                 VERSION DESCRIPTION\n\
             outline              1.0.0   List all parameters current build target supports\n\
             targets              1.0.0   List all targets current build supports\n\
             subrequests.describe 1.0.0   List available subrequest types\n"
        );
        let described = String::from_utf8(go_json(&described())).unwrap();
        assert!(
            described.contains("\"opts\": [],\n    \"inputs\": null"),
            "{described}"
        );
        assert!(described.contains("\"opts\": null"), "{described}");
    }

    /// No warnings are `null`; Go's escapes survive a round trip.
    #[test]
    fn lint_results_read_back_what_they_wrote() {
        let results = LintResults {
            warnings: Vec::new(),
            sources: vec![SourceInfo {
                filename: "Dockerfile".to_owned(),
                data: b"FROM a <b> & c\n".to_vec(),
                language: "Dockerfile".to_owned(),
            }],
            build_error: Some(BuildError {
                message: "x <y>".to_owned(),
                location: Location::default(),
            }),
        };
        let json = go_json(&results);
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.starts_with("{\n  \"warnings\": null,"), "{text}");
        assert!(text.contains("x \\u003cy\\u003e"), "{text}");
        assert_eq!(
            serde_json::from_slice::<LintResults>(&json).unwrap(),
            results
        );
        assert_eq!(results.to_metadata()["result.statuscode"], b"1");
    }
}
