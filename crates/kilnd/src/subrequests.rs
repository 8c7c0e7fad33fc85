//! BuildKit's frontend subrequests (a `requestid` frontend option): instead of a build,
//! the Dockerfile frontend answers a question about the Dockerfile in its result's
//! metadata (`result.json`, `result.txt`, `result.statuscode`, `version`), in the
//! format of BuildKit's `frontend/subrequests` packages.

use std::collections::HashMap;

use base64::Engine as _;
use kiln_engine::{CheckWarning, DockerfileError, LintReport, SourceRange};
use serde_json::{Value, json};

/// The frontend option naming a subrequest.
pub(crate) const REQUEST_ID: &str = "requestid";
/// `frontend.lint`: the build checks, and the error that stops the conversion.
pub(crate) const LINT: &str = "frontend.lint";
const LINT_VERSION: &str = "1.0.0";

/// The Dockerfile a subrequest is about, as its answers cite it.
pub(crate) struct Source<'a> {
    pub(crate) filename: &'a str,
    pub(crate) data: &'a [u8],
}

/// BuildKit's `errdefs.UnsupportedSubrequestError` message.
pub(crate) fn unsupported(request: &str) -> String {
    format!("unsupported request {request}")
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
        ("version".to_owned(), LINT_VERSION.as_bytes().to_vec()),
    ])
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
        "location": location(error.location),
    })
}

/// `pb.Location` in the one source a Dockerfile subrequest has.
fn location(range: Option<SourceRange>) -> Value {
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
