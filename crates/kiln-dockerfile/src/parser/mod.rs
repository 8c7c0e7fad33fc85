//! The Dockerfile parser: physical lines to instruction nodes, as BuildKit's
//! `frontend/dockerfile/parser` reads them.
//!
//! It handles directives, comments, line continuations (with comment and blank lines
//! inside them), the escape character, JSON vs shell form, flags, ONBUILD nesting and
//! heredocs, and gives every node its line range. It does not validate instructions:
//! that is [`crate::instructions`]' job.

mod directives;
mod heredoc;
mod split;

use crate::error::{Error, SourceRange};
use crate::quote::go_quote;

use self::directives::DirectiveParser;
pub use self::directives::{Directive, detect_syntax, is_builtin_syntax, is_labs_syntax};
pub use self::heredoc::{Heredoc, chomp_heredoc_content, parse_heredoc};

/// BuildKit's `bufio.Scanner` limit: a longer physical line is an error.
const MAX_LINE_LEN: usize = 64 * 1024 - 1;

/// One instruction as written: keyword, flags and arguments, not yet validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// The keyword as written (`RUN`, `run`, …); unknown words are kept too.
    pub keyword: String,
    /// Leading `--flags`, with quotes removed, e.g. `--from=build`.
    pub flags: Vec<String>,
    /// The arguments, split the keyword's way. ENV and LABEL give `key, value, sep`
    /// triples (`sep` is `=` or empty for the legacy `KEY value` form); HEALTHCHECK gives
    /// the type word first.
    pub args: Vec<String>,
    /// The instruction an ONBUILD wraps.
    pub sub: Option<Box<Node>>,
    /// Whether the arguments were a JSON array (exec form).
    pub json: bool,
    /// Heredoc bodies attached to this instruction, in order.
    pub heredocs: Vec<Heredoc>,
    /// The joined line the node was parsed from.
    pub original: String,
    /// Comment lines just before the instruction.
    pub comments: Vec<String>,
    /// First and last physical line (continuations, heredoc bodies included).
    pub location: SourceRange,
}

impl Node {
    /// The keyword, lower-cased.
    pub fn command(&self) -> String {
        self.keyword.to_ascii_lowercase()
    }

    /// The node in BuildKit's test dump format, e.g. `copy ["--from=a"] "x" "/y"`.
    pub fn dump(&self) -> String {
        let mut out = self.keyword.to_lowercase();
        if !self.flags.is_empty() {
            let flags: Vec<String> = self.flags.iter().map(|f| go_quote(f)).collect();
            out.push_str(&format!(" [{}]", flags.join(" ")));
        }
        for arg in &self.args {
            out.push(' ');
            out.push_str(&go_quote(arg));
        }
        if let Some(sub) = &self.sub {
            out.push_str(&format!(" ({})", sub.dump()));
        }
        out.trim().to_owned()
    }

    fn can_contain_heredoc(&self) -> bool {
        let node = match &self.sub {
            Some(sub) if self.command() == "onbuild" => sub,
            _ => self,
        };
        matches!(node.command().as_str(), "add" | "copy" | "run") && !node.json
    }
}

/// A warning the parser noticed; BuildKit prints these, kiln collects them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// One-line summary.
    pub short: String,
    /// More detail.
    pub detail: String,
    /// BuildKit's documentation page for the rule.
    pub url: String,
    /// Where it applies.
    pub location: SourceRange,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The instructions, in order.
    pub children: Vec<Node>,
    /// The parser directives found at the top.
    pub directives: Vec<Directive>,
    /// The escape character in effect (`\` or a backtick).
    pub escape: char,
    /// Warnings, e.g. empty continuation lines.
    pub warnings: Vec<Warning>,
    /// From the start of the first instruction to the end of the last one.
    pub location: SourceRange,
}

impl Dockerfile {
    /// The AST in BuildKit's test dump format: one `(instruction)` per line.
    pub fn dump(&self) -> String {
        let lines: Vec<String> = self
            .children
            .iter()
            .map(|n| format!("({})", n.dump()))
            .collect();
        lines.join("\n")
    }

    /// The value of a parser directive (`syntax`, `escape`, `check`), if given.
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }
}

/// Parses a Dockerfile's bytes. Invalid UTF-8 is replaced, not rejected.
pub fn parse(source: &[u8]) -> Result<Dockerfile, Error> {
    let source = source.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(source);
    let text = String::from_utf8_lossy(source);
    Parser::new(&text).run()
}

struct Parser<'a> {
    /// Physical lines, each with its line ending.
    lines: std::iter::Peekable<std::str::SplitInclusive<'a, char>>,
    directives: DirectiveParser,
    escape: char,
    current_line: usize,
}

/// `\r` and `\n` removed from the end, as BuildKit's `trimNewline`.
fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            lines: text.split_inclusive('\n').peekable(),
            directives: DirectiveParser::new("#"),
            escape: '\\',
            current_line: 0,
        }
    }

    fn next_line(&mut self) -> Result<Option<&'a str>, Error> {
        let Some(line) = self.lines.next() else {
            return Ok(None);
        };
        if trim_newline(line).len() > MAX_LINE_LEN {
            return Err(Error::at(
                format!("dockerfile line greater than max allowed size of {MAX_LINE_LEN}"),
                SourceRange::lines(self.current_line + 1, self.current_line + 1),
            ));
        }
        Ok(Some(line))
    }

    /// BuildKit's `processLine`: strips the line ending (and leading blanks on an
    /// instruction's first line), feeds the directive parser and blanks out comments.
    /// Returns the line and whether it was a directive.
    fn process_line(&mut self, raw: &'a str, strip_left: bool) -> Result<(&'a str, bool), Error> {
        let mut line = trim_newline(raw);
        if strip_left {
            line = line.trim_start();
        }
        let directive = match self.directives.parse_line(line)? {
            Some(d) if d.name == "escape" => {
                let (value, location) = (d.value.clone(), d.location);
                self.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(Error::at(
                            format!("invalid escape token '{value}' does not match ` or \\"),
                            location,
                        ));
                    }
                };
                true
            }
            Some(_) => true,
            None => false,
        };
        Ok((if is_comment(line) { "" } else { line }, directive))
    }

    /// BuildKit's continuation regex `([^E])E[ \t]*$|^E[ \t]*$` for escape `E`: removes a
    /// trailing escape character (not itself escaped) and the blanks after it.
    fn trim_continuation(&self, line: &'a str) -> (&'a str, bool) {
        let trimmed = line.trim_end_matches([' ', '\t']);
        let Some(before) = trimmed.strip_suffix(self.escape) else {
            return (line, true);
        };
        if before.is_empty() || !before.ends_with(self.escape) {
            (before, false)
        } else {
            (line, true)
        }
    }

    fn run(mut self) -> Result<Dockerfile, Error> {
        let mut children: Vec<Node> = Vec::new();
        let mut warnings = Vec::new();
        let mut comments: Vec<String> = Vec::new();
        while let Some(raw) = self.next_line()? {
            let raw_trimmed = trim_newline(raw);
            if is_comment(raw_trimmed) {
                // BuildKit drops the first byte of the raw line, not of the comment.
                let comment = raw_trimmed.get(1..).unwrap_or("").trim();
                if comment.is_empty() {
                    comments.clear();
                } else {
                    comments.push(comment.to_owned());
                }
            }
            let (line, is_directive) = self.process_line(raw, true).map_err(|e| {
                e.with_location(SourceRange::lines(
                    self.current_line + 1,
                    self.current_line + 1,
                ))
            })?;
            if is_directive {
                comments.pop();
            }
            self.current_line += 1;
            let start_line = self.current_line;
            let (first, mut at_end) = self.trim_continuation(line);
            if at_end && first.is_empty() {
                continue;
            }
            let mut joined = first.to_owned();
            let mut empty_continuation = false;
            while !at_end {
                let Some(raw) = self.next_line()? else { break };
                let (line, _) = self.process_line(raw, false)?;
                self.current_line += 1;
                if is_comment(raw) {
                    continue;
                }
                if line.trim_start().is_empty() {
                    empty_continuation = true;
                    continue;
                }
                let (part, end) = self.trim_continuation(line);
                at_end = end;
                joined.push_str(part);
            }
            if empty_continuation {
                warnings.push(Warning {
                    short: format!("Empty continuation line found in: {joined}"),
                    detail: "Empty continuation lines will become errors in a future release"
                        .to_owned(),
                    url: "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/"
                        .to_owned(),
                    location: SourceRange::lines(self.current_line, self.current_line),
                });
            }
            let range = |end| SourceRange::lines(start_line, end);
            let mut node = node_from_line(&joined, self.escape)
                .map_err(|e| e.with_location(range(self.current_line)))?;
            node.comments = std::mem::take(&mut comments);
            if node.can_contain_heredoc() && joined.contains("<<") {
                let heredocs = heredoc::heredocs_from_line(&joined)
                    .map_err(|e| e.with_location(range(self.current_line)))?;
                for mut doc in heredocs {
                    let mut terminated = false;
                    while let Some(raw) = self.next_line()? {
                        self.current_line += 1;
                        let mut candidate = trim_newline(raw);
                        if doc.chomp {
                            candidate = candidate.trim_start_matches('\t');
                        }
                        if candidate == doc.name {
                            terminated = true;
                            break;
                        }
                        doc.content.push_str(raw);
                    }
                    if !terminated {
                        return Err(Error::at("unterminated heredoc", range(self.current_line)));
                    }
                    node.heredocs.push(doc);
                }
            }
            node.location = range(self.current_line);
            children.push(node);
        }
        let (Some(first), Some(last)) = (children.first(), children.last()) else {
            return Err(Error::at(
                "file with no instructions",
                SourceRange::lines(self.current_line, self.current_line),
            ));
        };
        let location = SourceRange::lines(first.location.start.line, last.location.end.line);
        Ok(Dockerfile {
            children,
            directives: self.directives.found,
            escape: self.escape,
            warnings,
            location,
        })
    }
}

/// Splits one joined instruction line into a node (BuildKit's `newNodeFromLine`).
fn node_from_line(line: &str, escape: char) -> Result<Node, Error> {
    let (keyword, flags, rest) = split::split_command(line);
    let mut node = Node {
        original: line.to_owned(),
        flags,
        ..Node::default()
    };
    match keyword.to_ascii_lowercase().as_str() {
        "run" | "cmd" | "entrypoint" | "shell" => {
            let parsed = split::maybe_json(&rest)?;
            (node.args, node.json) = (parsed.args, parsed.json);
        }
        "add" | "copy" | "volume" => {
            let parsed = split::maybe_json_to_list(&rest)?;
            (node.args, node.json) = (parsed.args, parsed.json);
        }
        "from" | "expose" => node.args = split::whitespace_delimited(&rest),
        "maintainer" | "user" | "workdir" | "stopsignal" => node.args = split::whole(&rest),
        "arg" => node.args = split::parse_words(&rest, escape),
        "env" => node.args = split::name_values(&rest, escape, "ENV")?,
        "label" => node.args = split::name_values(&rest, escape, "LABEL")?,
        "healthcheck" => {
            let parsed = split::health_config(&rest)?;
            (node.args, node.json) = (parsed.args, parsed.json);
        }
        "onbuild" => {
            if !rest.is_empty() {
                node.sub = Some(Box::new(node_from_line(&rest, escape)?));
            }
        }
        // Unknown instructions parse with one empty argument; validation rejects them.
        _ => node.args = vec![String::new()],
    }
    node.keyword = keyword;
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(src: &str) -> String {
        parse(src.as_bytes()).unwrap().dump()
    }

    #[test]
    fn continuation_and_comments() {
        let src = "FROM a\nRUN echo a \\\n# inner comment\n\n  b\nCMD x";
        let df = parse(src.as_bytes()).unwrap();
        assert_eq!(df.dump(), "(from \"a\")\n(run \"echo a   b\")\n(cmd \"x\")");
        assert_eq!(df.children[1].location, SourceRange::lines(2, 5));
        assert_eq!(df.warnings.len(), 1);
    }

    #[test]
    fn escape_directive_changes_continuation() {
        let src = "# escape=`\nFROM a\nRUN dir c:\\ `\n  d";
        let df = parse(src.as_bytes()).unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.children[1].args, ["dir c:\\   d"]);
    }

    #[test]
    fn repeated_directive_fails() {
        let err = parse(b"# syntax=a\n# syntax=b\nFROM x").unwrap_err();
        assert_eq!(err.line(), Some(2));
    }

    #[test]
    fn heredocs_are_read() {
        let src =
            "FROM a\nRUN <<EOF cat <<-'END'\necho $x\nEOF\n\tliteral\n\tEND\nCOPY <<A /a\nhi\nA\n";
        let df = parse(src.as_bytes()).unwrap();
        let run = &df.children[1];
        assert_eq!(run.heredocs.len(), 2);
        assert_eq!(run.heredocs[0].content, "echo $x\n");
        assert!(run.heredocs[0].expand);
        assert_eq!(run.heredocs[1].name, "END");
        assert!(run.heredocs[1].chomp && !run.heredocs[1].expand);
        assert_eq!(run.location, SourceRange::lines(2, 6));
        assert_eq!(df.children[2].heredocs[0].content, "hi\n");
        assert!(parse(b"FROM a\nRUN <<EOF\nno end").is_err());
    }

    #[test]
    fn onbuild_nests() {
        assert_eq!(dump("ONBUILD RUN [\"a\"]"), "(onbuild (run \"a\"))");
        assert_eq!(dump("ONBUILD"), "(onbuild)");
        assert_eq!(dump("FOO bar"), "(foo \"\")");
    }

    #[test]
    fn empty_file_fails() {
        assert!(parse(b"").is_err());
        assert!(parse(b"# only a comment\n\n").is_err());
    }
}
