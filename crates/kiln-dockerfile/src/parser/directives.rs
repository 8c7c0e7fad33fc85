//! Parser directives (`# syntax=…`, `# escape=…`, `# check=…`): only on the leading run
//! of directive lines, each at most once.

use crate::error::{Error, SourceRange};

/// The directive names BuildKit knows.
const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// A parser directive found at the top of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-cased name: `syntax`, `escape` or `check`.
    pub name: String,
    /// The value, trimmed.
    pub value: String,
    /// The line it is on.
    pub location: SourceRange,
}

/// Reads directives line by line until the first line that is not one.
#[derive(Debug, Clone)]
pub(crate) struct DirectiveParser {
    line: usize,
    comment: &'static str,
    done: bool,
    pub(crate) found: Vec<Directive>,
}

impl DirectiveParser {
    pub(crate) fn new(comment: &'static str) -> Self {
        Self {
            line: 0,
            comment,
            done: false,
            found: Vec::new(),
        }
    }

    /// Looks at the next physical line; returns the directive it holds, if any.
    pub(crate) fn parse_line(&mut self, line: &str) -> Result<Option<&Directive>, Error> {
        self.line += 1;
        if self.done {
            return Ok(None);
        }
        let Some((name, value)) = line
            .strip_prefix(self.comment)
            .and_then(|rest| split_directive(rest.trim_start()))
        else {
            self.done = true;
            return Ok(None);
        };
        let name = name.to_ascii_lowercase();
        if !KNOWN.contains(&name.as_str()) {
            self.done = true;
            return Ok(None);
        }
        let location = SourceRange::lines(self.line, self.line);
        if self.found.iter().any(|d| d.name == name) {
            return Err(Error::at(
                format!("only one {name} parser directive can be used"),
                location,
            ));
        }
        self.found.push(Directive {
            name,
            value: value.to_owned(),
            location,
        });
        Ok(self.found.last())
    }
}

/// Matches `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` and returns the two groups.
fn split_directive(text: &str) -> Option<(&str, &str)> {
    let name_len = text
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_alphabetic() || (*i > 0 && c.is_ascii_digit())))
        .map_or(text.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, rest) = text.split_at(name_len);
    let raw = rest.trim_start_matches(is_regex_space).strip_prefix('=')?;
    // `.` does not match a newline.
    if raw.is_empty() || raw.contains('\n') {
        return None;
    }
    let value = raw
        .trim_start_matches(is_regex_space)
        .trim_end_matches(is_regex_space);
    if value.is_empty() {
        // `(.+?)` must take one character: the regex backtracks and takes the last blank.
        return Some((name, &raw[raw.len() - 1..]));
    }
    Some((name, value))
}

/// Go regexp's `\s`: ASCII whitespace only.
fn is_regex_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r')
}

/// Finds the `syntax` directive as BuildKit's `DetectSyntax` does: `# syntax=`, then
/// `// syntax=`, then a JSON object's `"syntax"` key; a leading `#!` line is skipped.
/// Returns the frontend reference (up to the first space) and the whole value.
pub fn detect_syntax(dockerfile: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(
        dockerfile
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(dockerfile),
    );
    let body = match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("#!") => rest,
        None if text.starts_with("#!") => "",
        _ => &text,
    };
    for comment in ["#", "//"] {
        let mut parser = DirectiveParser::new(comment);
        for line in body.lines() {
            if parser.done || parser.parse_line(line).is_err() {
                break;
            }
        }
        if let Some(d) = parser.found.iter().find(|d| d.name == "syntax") {
            let reference = d.value.split(' ').next().unwrap_or_default().to_owned();
            return Some((reference, d.value.clone()));
        }
    }
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_str(body).ok()?;
    let value = json.get("syntax")?.as_str()?.to_owned();
    Some((value.clone(), value))
}

/// Whether a `# syntax=` reference names this frontend: `docker/dockerfile` (and
/// `docker/dockerfile-upstream`) at any version, labs or digest.
pub fn is_builtin_syntax(reference: &str) -> bool {
    let Ok(parsed) = reference.parse::<kiln_oci::Reference>() else {
        return false;
    };
    parsed.domain == "docker.io"
        && matches!(
            parsed.path.as_str(),
            "docker/dockerfile" | "docker/dockerfile-upstream"
        )
}

/// Whether a `# syntax=` reference names the labs channel of this frontend
/// (`docker/dockerfile:1-labs`, `…:1.18.0-labs`), which adds `COPY --parents`,
/// `COPY`/`ADD --exclude` and `RUN --security` (BuildKit's labs build tags).
pub fn is_labs_syntax(reference: &str) -> bool {
    is_builtin_syntax(reference)
        && reference
            .split('@')
            .next()
            .and_then(|name| name.rsplit_once(':'))
            .is_some_and(|(_, tag)| tag.ends_with("labs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_grammar() {
        assert_eq!(split_directive("escape = ` "), Some(("escape", "`")));
        assert_eq!(
            split_directive("syntax=docker/dockerfile:1"),
            Some(("syntax", "docker/dockerfile:1"))
        );
        assert_eq!(split_directive("1x=y"), None);
        assert_eq!(split_directive("x="), None);
        assert_eq!(split_directive("just a comment"), None);
    }

    #[test]
    fn builtin_syntaxes() {
        for builtin in [
            "docker/dockerfile:1",
            "docker/dockerfile:1.7-labs",
            "docker.io/docker/dockerfile:1.18.0",
            "docker/dockerfile-upstream:master",
            "docker/dockerfile@sha256:ac85f380a63b13dfcefa89046420e1781752bab202122f8f50032edf31be0021",
        ] {
            assert!(is_builtin_syntax(builtin), "{builtin}");
        }
        for external in [
            "tonistiigi/dockerfile:x",
            "ghcr.io/docker/dockerfile:1",
            "::",
        ] {
            assert!(!is_builtin_syntax(external), "{external}");
        }
    }

    #[test]
    fn labs_syntaxes() {
        assert!(is_labs_syntax("docker/dockerfile:1-labs"));
        assert!(is_labs_syntax("docker/dockerfile:1.18.0-labs"));
        assert!(is_labs_syntax(
            "docker.io/docker/dockerfile-upstream:master-labs"
        ));
        assert!(!is_labs_syntax("docker/dockerfile:1"));
        assert!(!is_labs_syntax("tonistiigi/dockerfile:labs"));
    }

    #[test]
    fn syntax_detection() {
        assert_eq!(
            detect_syntax(b"#!/usr/bin/env buildctl\n# syntax = foo/bar:1 --x\nFROM a"),
            Some(("foo/bar:1".to_owned(), "foo/bar:1 --x".to_owned()))
        );
        assert_eq!(
            detect_syntax(b"// syntax=x\n"),
            Some(("x".to_owned(), "x".to_owned()))
        );
        assert_eq!(
            detect_syntax(b"{\"syntax\": \"y\"}"),
            Some(("y".to_owned(), "y".to_owned()))
        );
        assert_eq!(detect_syntax(b"FROM a\n# syntax=x"), None);
    }

    #[test]
    fn repeated_directive_is_an_error() {
        let mut p = DirectiveParser::new("#");
        p.parse_line("# check=skip=all").unwrap();
        let err = p.parse_line("# CHECK=error=true").unwrap_err();
        assert_eq!(err.message, "only one check parser directive can be used");
        assert_eq!(err.line(), Some(2));
    }
}
