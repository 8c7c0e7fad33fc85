//! Build checks: BuildKit's lint rules that apply while reading and converting a
//! Dockerfile, configured by the `# check=skip=…;error=true` directive.

use crate::error::{Error, SourceRange};
use crate::parser::Dockerfile;

/// The rules kiln checks, with BuildKit's names.
pub const RULES: [&str; 17] = [
    "ConsistentInstructionCasing",
    "DuplicateStageName",
    "FromAsCasing",
    "FromPlatformFlagConstDisallowed",
    "InvalidDefaultArgInFrom",
    "JSONArgsRecommended",
    "LegacyKeyValueFormat",
    "MaintainerDeprecated",
    "MultipleInstructionsDisallowed",
    "NoEmptyContinuation",
    "RedundantTargetPlatform",
    "ReservedStageName",
    "SecretsUsedInArgOrEnv",
    "StageNameCasing",
    "UndefinedArgInFrom",
    "UndefinedVar",
    "WorkdirRelativePath",
];

/// BuildKit's one-line description of a rule (`linter.LinterRule.Description`), which
/// its progress warnings carry as their detail; empty for a rule it does not have.
pub fn rule_description(rule: &str) -> &'static str {
    match rule {
        "StageNameCasing" => "Stage names should be lowercase",
        "FromAsCasing" => "The 'as' keyword should match the case of the 'from' keyword",
        "NoEmptyContinuation" => "Empty continuation lines will become errors in a future release",
        "ConsistentInstructionCasing" => {
            "All commands within the Dockerfile should use the same casing (either upper or lower)"
        }
        "DuplicateStageName" => "Stage names should be unique",
        "ReservedStageName" => "Reserved words should not be used as stage names",
        "JSONArgsRecommended" => {
            "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals"
        }
        "MaintainerDeprecated" => {
            "The MAINTAINER instruction is deprecated, use a label instead to define an image author"
        }
        "UndefinedArgInFrom" => "FROM command must use declared ARGs",
        "WorkdirRelativePath" => {
            "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes"
        }
        "UndefinedVar" => "Variables should be defined before their use",
        "MultipleInstructionsDisallowed" => {
            "Multiple instructions of the same type should not be used in the same stage"
        }
        "LegacyKeyValueFormat" => {
            "Legacy key/value format with whitespace separator should not be used"
        }
        "InvalidBaseImagePlatform" => "Base image platform does not match expected target platform",
        "RedundantTargetPlatform" => {
            "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior"
        }
        "SecretsUsedInArgOrEnv" => "Sensitive data should not be used in the ARG or ENV commands",
        "InvalidDefaultArgInFrom" => {
            "Default value for global ARG results in an empty or invalid base image name"
        }
        "FromPlatformFlagConstDisallowed" => "FROM --platform flag should not use a constant value",
        "CopyIgnoredFile" => "Attempting to Copy file that is excluded by .dockerignore",
        "ExposeProtoCasing" => "Protocol in EXPOSE instruction should be lowercase",
        "ExposeInvalidFormat" => {
            "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release"
        }
        _ => "",
    }
}

/// A rule that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintWarning {
    /// The rule's name, e.g. `FromAsCasing`.
    pub rule: String,
    /// What is wrong.
    pub message: String,
    /// Where.
    pub location: SourceRange,
}

/// Collects warnings, honouring the `check` directive.
#[derive(Debug, Default)]
pub(crate) struct Linter {
    skip_all: bool,
    skip: Vec<String>,
    error_on_warning: bool,
    pub(crate) warnings: Vec<LintWarning>,
}

impl Linter {
    /// Reads `skip=A,B;error=true` (BuildKit's `ParseLintOptions`).
    pub(crate) fn new(check: Option<&str>) -> Result<Self, Error> {
        let mut linter = Self::default();
        let Some(check) = check.map(str::trim).filter(|c| !c.is_empty()) else {
            return Ok(linter);
        };
        for part in check.splitn(3, ';') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(Error::new(format!(
                    "failed to parse check options: invalid check option {}",
                    crate::go_quote(part)
                )));
            };
            match key.trim() {
                "skip" => {
                    let value = value.trim();
                    if value == "all" {
                        linter.skip_all = true;
                    } else {
                        linter.skip = value.split(',').map(|r| r.trim().to_owned()).collect();
                    }
                }
                "experimental" => {}
                "error" => {
                    linter.error_on_warning = match kiln_oci::go::parse_bool(value.trim()) {
                        Some(on) => on,
                        None => {
                            return Err(Error::new(format!(
                                "failed to parse check options: failed to parse check option {}: invalid syntax {}",
                                crate::go_quote(part),
                                value.trim()
                            )));
                        }
                    };
                }
                other => {
                    return Err(Error::new(format!(
                        "failed to parse check options: invalid check option {}",
                        crate::go_quote(other)
                    )));
                }
            }
        }
        Ok(linter)
    }

    pub(crate) fn report(&mut self, rule: &str, message: &str, location: SourceRange) {
        if self.skip_all || self.skip.iter().any(|s| s == rule) {
            return;
        }
        self.warnings.push(LintWarning {
            rule: rule.to_owned(),
            message: message.to_owned(),
            location,
        });
    }

    /// With `error=true`, any warning fails the build.
    pub(crate) fn error(&self) -> Result<(), Error> {
        if !self.error_on_warning || self.warnings.is_empty() {
            return Ok(());
        }
        let mut rules: Vec<&str> = self.warnings.iter().map(|w| w.rule.as_str()).collect();
        rules.sort_unstable();
        rules.dedup();
        Err(Error::new(format!(
            "lint violation found for rules: {}",
            rules.join(", ")
        )))
    }
}

fn consistent(s: &str) -> bool {
    s == s.to_lowercase() || s == s.to_uppercase()
}

/// Rules that look at the parsed file: FROM/AS casing, stage names, instruction casing.
pub(crate) fn check_parsed(dockerfile: &Dockerfile, lint: &mut Linter) {
    let first_from = dockerfile
        .children
        .iter()
        .position(|n| n.command() == "from");
    let Some(first_from) = first_from else { return };
    let nodes = &dockerfile.children[first_from..];
    let mut names: Vec<String> = Vec::new();
    // As BuildKit parses instructions: each FROM's and MAINTAINER's checks in order,
    // then the casing of them all.
    for node in nodes {
        if node.command() == "maintainer" {
            lint.report(
                "MaintainerDeprecated",
                "Maintainer instruction is deprecated in favor of using label",
                node.location,
            );
        }
        if node.command() != "from" || node.args.len() != 3 {
            continue;
        }
        let keyword = node.keyword.as_str();
        let as_word = node.args[1].as_str();
        let (from_lower, from_upper) = (
            keyword == keyword.to_lowercase(),
            keyword == keyword.to_uppercase(),
        );
        let matches = if !from_lower && !from_upper {
            true
        } else if from_lower {
            as_word == as_word.to_lowercase()
        } else {
            as_word == as_word.to_uppercase()
        };
        // In BuildKit's order: the name's casing, then the keywords'.
        let name = node.args[2].as_str();
        if name != name.to_lowercase() {
            lint.report(
                "StageNameCasing",
                &format!("Stage name '{name}' should be lowercase"),
                node.location,
            );
        }
        if !matches {
            lint.report(
                "FromAsCasing",
                &format!("'{as_word}' and '{keyword}' keywords' casing do not match"),
                node.location,
            );
        }
        let lower = name.to_lowercase();
        if lower == "scratch" || lower == "context" {
            lint.report(
                "ReservedStageName",
                &format!("Stage name should not use the same name as reserved stage \"{name}\""),
                node.location,
            );
        }
        if names.contains(&lower) {
            lint.report(
                "DuplicateStageName",
                &format!("Duplicate stage name \"{name}\", stage names should be unique"),
                node.location,
            );
        }
        names.push(lower);
    }
    let (mut lower, mut upper) = (0usize, 0usize);
    for node in nodes {
        if consistent(&node.keyword) {
            if node.keyword == node.keyword.to_lowercase() {
                lower += 1;
            } else {
                upper += 1;
            }
        }
    }
    let majority_lower = lower > upper;
    for node in nodes {
        let wrong = if majority_lower {
            node.keyword != node.keyword.to_lowercase()
        } else {
            node.keyword != node.keyword.to_uppercase()
        };
        if wrong {
            let casing = if majority_lower {
                "lowercase"
            } else {
                "uppercase"
            };
            lint.report(
                "ConsistentInstructionCasing",
                &format!(
                    "Command '{}' should match the case of the command majority ({casing})",
                    node.keyword
                ),
                node.location,
            );
        }
    }
}

/// `SecretsUsedInArgOrEnv`: a key with a `_`-separated word that names a secret
/// (`API_KEY`, `db_password`, `GITHUB_TOKEN`), unless another word is `public`.
pub(crate) fn check_secret_key(
    instruction: &str,
    key: &str,
    location: SourceRange,
    lint: &mut Linter,
) {
    const SECRET_WORDS: [&str; 10] = [
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    let words: Vec<String> = key.split('_').map(str::to_ascii_lowercase).collect();
    if words.iter().any(|w| SECRET_WORDS.contains(&w.as_str()))
        && !words.iter().any(|w| w == "public")
    {
        lint.report(
            "SecretsUsedInArgOrEnv",
            &format!(
                "Do not use ARG or ENV instructions for sensitive data ({instruction} {key:?})"
            ),
            location,
        );
    }
}

/// Rules on the grouped stages (none beyond the parsed-file ones yet).
pub(crate) fn check_stages(_parsed: &crate::instructions::Instructions, _lint: &mut Linter) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_directive() {
        let l = Linter::new(Some("skip=JSONArgsRecommended, StageNameCasing;error=true")).unwrap();
        assert!(l.error_on_warning);
        assert_eq!(l.skip, ["JSONArgsRecommended", "StageNameCasing"]);
        assert!(Linter::new(Some("skip")).is_err());
        assert!(Linter::new(Some("nope=1")).is_err());
    }

    #[test]
    fn secret_keys() {
        let mut lint = Linter::default();
        for key in [
            "API_KEY",
            "db_password",
            "GITHUB_TOKEN",
            "AUTH",
            "aws_secret_x",
        ] {
            check_secret_key("ENV", key, SourceRange::default(), &mut lint);
        }
        for key in ["PUBLIC_KEY", "KEYBOARD", "MONKEY", "author", "TOKENS"] {
            check_secret_key("ARG", key, SourceRange::default(), &mut lint);
        }
        let keys: Vec<&str> = lint.warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(keys.len(), 5, "{keys:?}");
        assert_eq!(
            keys[0],
            "Do not use ARG or ENV instructions for sensitive data (ENV \"API_KEY\")"
        );
    }

    #[test]
    fn from_as_casing() {
        let df = crate::parser::parse(b"FROM a as b\nfrom c AS d\nRUN x\n").unwrap();
        let mut lint = Linter::default();
        check_parsed(&df, &mut lint);
        let rules: Vec<&str> = lint.warnings.iter().map(|w| w.rule.as_str()).collect();
        assert!(rules.contains(&"FromAsCasing"));
    }
}
