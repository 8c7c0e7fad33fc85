//! BuildKit's frontend subrequests (a `requestid` frontend option): instead of a build,
//! the Dockerfile frontend answers a question about the Dockerfile in its result's
//! metadata (`result.json`, `result.txt`, `result.statuscode`, `version`), in the
//! format of BuildKit's `frontend/subrequests` packages.

use std::collections::HashMap;

use base64::Engine as _;
use kiln_api::build::CheckWarning;
use kiln_engine::{DockerfileError, LintReport, StageTarget};
use serde_json::{Value, json};

/// The frontend option naming a subrequest.
pub(crate) const REQUEST_ID: &str = "requestid";
/// `frontend.lint`: the build checks, and the error that stops the conversion.
pub(crate) const LINT: &str = "frontend.lint";
/// `frontend.targets`: the stages a Dockerfile can build.
pub(crate) const TARGETS: &str = "frontend.targets";
/// `frontend.subrequests.describe`: the subrequests this frontend answers.
pub(crate) const DESCRIBE: &str = "frontend.subrequests.describe";
/// Every subrequest's version.
const VERSION: &str = "1.0.0";

/// The Dockerfile a subrequest is about, as its answers cite it.
pub(crate) struct Source<'a> {
    pub(crate) filename: &'a str,
    pub(crate) data: &'a [u8],
}

/// BuildKit's `errdefs.Subrequest` and `errdefs.FrontendCap`: the typed detail naming
/// what a frontend does not answer.
#[derive(Clone, PartialEq, prost::Message)]
struct NamedDetail {
    #[prost(string, tag = "1")]
    name: String,
}

/// BuildKit's `errdefs.UnsupportedSubrequestError`.
pub(crate) fn unsupported(request: &str) -> tonic::Status {
    unimplemented_with_detail(
        format!("unsupported request {request}"),
        "errdefs.Subrequest",
        request,
    )
}

/// The frontend capabilities (`frontend.caps` option) BuildKit's Dockerfile frontend
/// knows.
const FRONTEND_CAPS: [&str; 4] = [
    "moby.buildkit.frontend.inputs",
    "moby.buildkit.frontend.subrequests",
    "moby.buildkit.frontend.contexts",
    "moby.buildkit.frontend.gitquerystring",
];

/// Refuses a `frontend.caps` option naming a capability the frontend lacks, with
/// BuildKit's `errdefs.UnsupportedFrontendCapError` (kilnd has no other frontend to
/// forward it to, so `+forward` changes nothing).
pub(crate) fn check_frontend_caps(attrs: &HashMap<String, String>) -> Result<(), tonic::Status> {
    let Some(caps) = attrs.get("frontend.caps").filter(|c| !c.is_empty()) else {
        return Ok(());
    };
    for cap in caps.split(',') {
        let name = cap.split_once('+').map_or(cap, |(name, _)| name);
        if !FRONTEND_CAPS.contains(&name) {
            return Err(unimplemented_with_detail(
                format!("unsupported frontend capability {name}"),
                "errdefs.FrontendCap",
                name,
            ));
        }
    }
    Ok(())
}

/// An Unimplemented status carrying a typed detail, as BuildKit's `grpcerrors` encodes
/// it (a `google.rpc.Status` whose details its clients decode by type).
fn unimplemented_with_detail(message: String, detail_type: &str, name: &str) -> tonic::Status {
    use kiln_api::proto::google::{protobuf::Any, rpc};
    use prost::Message as _;
    let detail = Any {
        type_url: format!("type.googleapis.com/{detail_type}"),
        value: NamedDetail {
            name: name.to_owned(),
        }
        .encode_to_vec(),
    };
    let status = rpc::Status {
        code: tonic::Code::Unimplemented as i32,
        message: message.clone(),
        details: vec![detail],
    };
    tonic::Status::with_details(
        tonic::Code::Unimplemented,
        message,
        status.encode_to_vec().into(),
    )
}

/// `frontend.lint`'s metadata: `lint.LintResults` as JSON and as BuildKit prints it.
pub(crate) fn lint_result(report: &LintReport, source: &Source<'_>) -> HashMap<String, Vec<u8>> {
    let mut checks: Vec<&CheckWarning> = report.checks.iter().collect();
    checks.sort_by_key(|c| c.location.start.line);
    let mut results = json!({
        "warnings": checks.iter().map(|c| lint_warning(c)).collect::<Vec<_>>(),
        "sources": [source_info(source)],
    });
    if let Some(error) = &report.error {
        results["buildError"] = build_error(error);
    }
    let text: String = checks
        .iter()
        .map(|c| {
            format!(
                "\nWARNING: {} - {}\n{}\n{}",
                c.rule, c.url, c.message, c.excerpt
            )
        })
        .collect();
    let failed = !report.checks.is_empty() || report.error.is_some();
    HashMap::from([
        (
            "result.json".to_owned(),
            serde_json::to_vec_pretty(&results).unwrap_or_default(),
        ),
        ("result.txt".to_owned(), text.into_bytes()),
        (
            "result.statuscode".to_owned(),
            if failed { b"1".to_vec() } else { b"0".to_vec() },
        ),
        ("version".to_owned(), VERSION.as_bytes().to_vec()),
    ])
}

/// `frontend.subrequests.describe`'s metadata: the definitions (`subrequests.Request`)
/// of those answered here, as BuildKit's Dockerfile frontend lists them (lint is
/// answered but, as there, not listed), and their table.
pub(crate) fn describe_result() -> HashMap<String, Vec<u8>> {
    let described = [
        (TARGETS, "List all targets current build supports"),
        (DESCRIBE, "List available subrequest types"),
    ];
    let definitions: Vec<Value> = described
        .iter()
        .map(|(name, description)| {
            json!({
                "name": name, "version": VERSION, "type": "rpc", "description": description,
                "opts": [], "inputs": null, "refs": null,
                "metadata": [
                    {"name": "result.json", "description": ""},
                    {"name": "result.txt", "description": ""},
                ],
            })
        })
        .collect();
    let names: Vec<&str> = described
        .iter()
        .map(|(name, _)| name.trim_start_matches("frontend."))
        .collect();
    let width = names.iter().map(|n| n.len()).chain([4]).max().unwrap_or(4) + 1;
    let mut table = format!("{:width$}VERSION DESCRIPTION\n", "NAME");
    for (name, (_, description)) in names.iter().zip(described) {
        table.push_str(&format!("{name:width$}{VERSION:8}{description}\n"));
    }
    HashMap::from([
        (
            "result.json".to_owned(),
            serde_json::to_vec_pretty(&definitions).unwrap_or_default(),
        ),
        ("result.txt".to_owned(), table.into_bytes()),
        ("version".to_owned(), VERSION.as_bytes().to_vec()),
    ])
}

/// `frontend.targets`'s metadata: `targets.List` as JSON and as BuildKit prints it.
pub(crate) fn targets_result(
    targets: &[StageTarget],
    source: &Source<'_>,
) -> HashMap<String, Vec<u8>> {
    let list = json!({
        "targets": targets.iter().map(target).collect::<Vec<_>>(),
        "sources": [base64::engine::general_purpose::STANDARD.encode(source.data)],
    });
    HashMap::from([
        (
            "result.json".to_owned(),
            serde_json::to_vec_pretty(&list).unwrap_or_default(),
        ),
        ("result.txt".to_owned(), targets_table(targets).into_bytes()),
        ("version".to_owned(), VERSION.as_bytes().to_vec()),
    ])
}

/// `targets.Target`, its empty fields left out as Go leaves them.
fn target(stage: &StageTarget) -> Value {
    let mut entry = serde_json::Map::new();
    for (key, value) in [
        ("name", &stage.name),
        ("description", &stage.description),
        ("base", &stage.base),
        ("platform", &stage.platform),
    ] {
        if !value.is_empty() {
            entry.insert(key.to_owned(), json!(value));
        }
    }
    if stage.default {
        entry.insert("default".to_owned(), json!(true));
    }
    entry.insert(
        "location".to_owned(),
        location(Some(kiln_engine::api_range(stage.location))),
    );
    Value::Object(entry)
}

/// `targets.PrintTargets`: a table of names (the default marked) and descriptions.
fn targets_table(targets: &[StageTarget]) -> String {
    let names: Vec<String> = targets
        .iter()
        .map(|t| match (t.name.as_str(), t.default) {
            ("", true) => "(default)".to_owned(),
            (name, true) => format!("{name} (default)"),
            (name, false) => name.to_owned(),
        })
        .collect();
    let width = names.iter().map(String::len).chain([6]).max().unwrap_or(6) + 1;
    let mut table = format!("{:width$}DESCRIPTION\n", "TARGET");
    for (name, target) in names.iter().zip(targets) {
        table.push_str(format!("{name:width$}{}", target.description).trim_end());
        table.push('\n');
    }
    table
}

/// `lint.Warning`.
fn lint_warning(check: &CheckWarning) -> Value {
    json!({
        "ruleName": check.rule,
        "description": check.description,
        "url": check.url,
        "detail": check.message,
        "location": location(Some(check.location)),
    })
}

/// `lint.BuildError`.
fn build_error(error: &DockerfileError) -> Value {
    json!({
        "message": error.to_string(),
        "location": location(error.location.map(kiln_engine::api_range)),
    })
}

/// `pb.Location` in the one source a Dockerfile subrequest has.
fn location(range: Option<kiln_api::build::SourceRange>) -> Value {
    let ranges: Vec<Value> = range
        .filter(|r| r.start.line > 0)
        .map(|r| {
            json!({
                "start": {"line": r.start.line, "character": r.start.character},
                "end": {"line": r.end.line, "character": r.end.character},
            })
        })
        .into_iter()
        .collect();
    json!({"sourceIndex": 0, "ranges": ranges})
}

/// `pb.SourceInfo` (its data base64, as Go encodes bytes).
fn source_info(source: &Source<'_>) -> Value {
    json!({
        "filename": source.filename,
        "data": base64::engine::general_purpose::STANDARD.encode(source.data),
        "language": "Dockerfile",
    })
}
