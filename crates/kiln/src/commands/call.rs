//! buildx's `--call`: the Dockerfile frontend answers a question (its build checks, a
//! target's build args and secrets, the targets) instead of building, and the answer
//! is printed as buildx prints it (`printResult`).

use anyhow::{Context as _, bail};
use kiln_api::subrequests::{self, Metadata};

/// What `--call` asks (buildx's `buildflags.CallFunc`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CallFunc {
    /// `lint` (`check`), `outline`, `targets`, `subrequests.describe`, …
    pub(crate) name: String,
    /// `json` for the answer's JSON; anything else for its table.
    pub(crate) format: String,
    /// Exit 0 even when the answer's status says otherwise.
    pub(crate) ignore_status: bool,
}

impl CallFunc {
    /// `NAME[,format=FORMAT][,ignorestatus=BOOL]` as buildx's `ParseCallFunc` reads it;
    /// `None` for a build.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Option<Self>> {
        if text.is_empty() {
            return Ok(None);
        }
        let fields = kiln_oci::go::csv_fields(text).with_context(|| format!("--call {text:?}"))?;
        let mut call = CallFunc::default();
        for field in fields {
            match field.split_once('=') {
                Some(("format", format)) => call.format = format.to_owned(),
                Some(("ignorestatus", value)) => {
                    call.ignore_status = kiln_oci::go::parse_bool(value)
                        .with_context(|| format!("invalid ignorestatus print value: {value}"))?;
                }
                Some(_) => bail!("invalid print field: {field}"),
                None if !call.name.is_empty() => bail!("invalid print value: {text}"),
                None => call.name = field,
            }
        }
        // `check` is the newer name of `lint`.
        if call.name == "check" {
            call.name = "lint".to_owned();
        }
        Ok((call.name != "build").then_some(call))
    }

    /// The frontend subrequest it asks.
    pub(crate) fn subrequest(&self) -> String {
        format!("frontend.{}", self.name)
    }
}

/// Prints `answer` to stdout as buildx does; returns the exit status the answer asks
/// for. `dockerfile` names the Dockerfile in a lint's excerpts (buildx's mapping of
/// the frontend's file name to the one the user gave). A lint that stopped on an
/// error returns it, with its lines.
pub(crate) fn print_answer(
    call: &CallFunc,
    answer: &Metadata,
    dockerfile: &str,
    out: &mut String,
) -> anyhow::Result<u8> {
    let text = |key: &str| {
        answer
            .get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let json = call.format == "json";
    // An answer newer than the tables known here is printed as the frontend wrote it.
    let printed_by_frontend = !json
        && text("version").is_some_and(|v| newer_than(&v, subrequests::VERSION))
        && text("result.txt").is_some_and(|t| !t.is_empty());
    let result_json = answer.get("result.json").map(Vec::as_slice).unwrap_or(b"");
    // buildx's `printValue`: the JSON, or the table.
    let value = |table: &dyn Fn() -> anyhow::Result<String>| -> anyhow::Result<String> {
        Ok(if json {
            format!("{}\n", text("result.json").unwrap_or_default())
        } else if printed_by_frontend {
            text("result.txt").unwrap_or_default()
        } else {
            table()?
        })
    };
    match call.name.as_str() {
        "outline" => out.push_str(&value(&|| {
            Ok(subrequests::print_outline(&serde_json::from_slice(
                result_json,
            )?))
        })?),
        "targets" => out.push_str(&value(&|| {
            Ok(subrequests::print_targets(&serde_json::from_slice(
                result_json,
            )?))
        })?),
        "subrequests.describe" => out.push_str(&value(&|| {
            let described: Vec<subrequests::RequestDescription> =
                serde_json::from_slice(result_json)?;
            Ok(subrequests::print_describe(&described))
        })?),
        "lint" => {
            let results: subrequests::LintResults = match answer.get("result.json") {
                Some(data) => serde_json::from_slice(data).context("reading the lint results")?,
                None => Default::default(),
            };
            let count = results.warnings.len();
            if !json && count > 0 {
                let found = match count {
                    1 => "1 warning has been found!".to_owned(),
                    n => format!("{n} warnings have been found!"),
                };
                out.push_str(&format!("Check complete, {found}\n"));
            }
            out.push_str(&value(&|| Ok(results.print_warnings(Some(dockerfile))))?);
            if let Some(error) = results.print_error(Some(dockerfile)) {
                if !json && count > 0 {
                    out.push('\n');
                }
                bail!(error.trim_end().to_owned());
            }
            if count == 0 && !json {
                out.push_str("Check complete, no warnings found.\n");
            }
        }
        _ => match (text("result.json"), text("result.txt")) {
            (Some(data), _) if json => {
                out.push_str(&data);
                out.push('\n');
            }
            (_, Some(data)) => out.push_str(&data),
            _ => out.push_str(&format!("{call:?} {:?}\n", answer.keys())),
        },
    }
    let status = text("result.statuscode")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    Ok(if call.ignore_status || status == 0 {
        0
    } else {
        u8::try_from(status).unwrap_or(1)
    })
}

/// Whether version `a` is newer than `b` (dotted numbers, as docker's `versions`).
fn newer_than(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (a, b) = (parts(a), parts(b));
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x > y;
        }
    }
    false
}

/// The Dockerfile as buildx names it in a lint's excerpts: `-f` as given, `stdin`, or
/// the context joined with `Dockerfile`.
pub(crate) fn dockerfile_display_name(context: &str, file: Option<&str>) -> String {
    match file {
        Some("-") => "stdin".to_owned(),
        Some(file) => file.to_owned(),
        None => kiln_oci::go::clean_path(&format!("{context}/Dockerfile")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_values_as_buildx_reads_them() {
        assert_eq!(CallFunc::parse("build").unwrap(), None);
        assert_eq!(CallFunc::parse("").unwrap(), None);
        let check = CallFunc::parse("check,format=json,ignorestatus=true")
            .unwrap()
            .unwrap();
        assert_eq!(check.subrequest(), "frontend.lint");
        assert_eq!(check.format, "json");
        assert!(check.ignore_status);
        assert_eq!(
            CallFunc::parse("outline,targets").unwrap_err().to_string(),
            "invalid print value: outline,targets"
        );
        assert_eq!(
            CallFunc::parse("outline,x=1").unwrap_err().to_string(),
            "invalid print field: x=1"
        );
    }

    /// A lint answer as BuildKit v0.24 wrote it, printed as buildx printed it
    /// (recorded): the count, each warning by line with its lines; status 1.
    #[test]
    fn a_lint_answer_as_buildx_prints_it() {
        let results = subrequests::LintResults {
            warnings: vec![
                warning("MaintainerDeprecated", 3),
                warning("StageNameCasing", 1),
            ],
            sources: vec![subrequests::SourceInfo {
                filename: "Dockerfile".to_owned(),
                data: b"FROM scratch AS Base\n\nMAINTAINER me\n".to_vec(),
                language: "Dockerfile".to_owned(),
            }],
            build_error: None,
        };
        let mut out = String::new();
        let call = CallFunc::parse("check").unwrap().unwrap();
        let status = print_answer(&call, &results.to_metadata(), "ctx/Dockerfile", &mut out);
        assert_eq!(status.unwrap(), 1);
        assert_eq!(
            out,
            "Check complete, 2 warnings have been found!\n\
             \nWARNING: StageNameCasing - https://x/StageNameCasing\nd\n\
             ctx/Dockerfile:1\n--------------------\n   1 | >>> FROM scratch AS Base\n   2 |     \n   3 |     MAINTAINER me\n--------------------\n\
             \nWARNING: MaintainerDeprecated - https://x/MaintainerDeprecated\nd\n\
             ctx/Dockerfile:3\n--------------------\n   1 |     FROM scratch AS Base\n   2 |     \n   3 | >>> MAINTAINER me\n   4 |     \n--------------------\n"
        );
        let mut out = String::new();
        let clean = subrequests::LintResults::default().to_metadata();
        assert_eq!(
            print_answer(&call, &clean, "Dockerfile", &mut out).unwrap(),
            0
        );
        assert_eq!(out, "Check complete, no warnings found.\n");
    }

    fn warning(rule: &str, line: usize) -> subrequests::LintWarning {
        subrequests::LintWarning {
            rule_name: rule.to_owned(),
            url: format!("https://x/{rule}"),
            detail: "d".to_owned(),
            location: subrequests::Location::first_source(kiln_api::build::SourceRange::lines(
                line, line,
            )),
            ..Default::default()
        }
    }

    #[test]
    fn dockerfiles_named_as_buildx_names_them() {
        assert_eq!(dockerfile_display_name(".", None), "Dockerfile");
        assert_eq!(dockerfile_display_name("a/b/", None), "a/b/Dockerfile");
        assert_eq!(dockerfile_display_name(".", Some("-")), "stdin");
        assert_eq!(
            dockerfile_display_name(".", Some("x/y.Dockerfile")),
            "x/y.Dockerfile"
        );
    }
}
