//! Parsing definition files into blocks, and evaluating variables with their
//! environment overrides, types and validations, in the order buildx's `hclparser`
//! does: every `variable` is resolved (each one pulling in what its default refers
//! to), then every validation is checked, then the `function` blocks.

use std::collections::{BTreeMap, BTreeSet};

use hcl::eval::Context;
use hcl::{Body, Expression, Value};

use crate::calls::{self, Functions, UserFunction};
use crate::compose;
use crate::convert::{self, Type};
use crate::files::Source;
use crate::{Error, funcs};

/// A `target` or `group` block: its attributes in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Block {
    pub(crate) attrs: Vec<(String, Expression)>,
}

impl Block {
    pub(crate) fn get(&self, key: &str) -> Option<&Expression> {
        self.attrs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, e)| e)
    }
}

/// Which kind of block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Target,
    Group,
}

/// One `target` or `group` block as written (a name may be defined by several).
#[derive(Debug, Clone)]
pub(crate) struct BlockDef {
    pub(crate) kind: Kind,
    pub(crate) label: String,
    pub(crate) block: Block,
}

/// Every file's blocks, with the variables evaluated.
#[derive(Debug, Clone, Default)]
pub(crate) struct Definition {
    /// Target and group blocks in file order (Compose files' first, as buildx reads
    /// them before the HCL and JSON files).
    pub(crate) blocks: Vec<BlockDef>,
    pub(crate) variables: BTreeMap<String, Value>,
    /// How each variable was declared (`bake --list` shows `variable` blocks).
    pub(crate) declarations: BTreeMap<String, Variable>,
    pub(crate) functions: Functions,
}

/// A variable as declared: by `variable` blocks (merged across files) or a top-level
/// attribute.
#[derive(Debug, Clone, Default)]
pub(crate) struct Variable {
    pub(crate) default: Option<Expression>,
    pub(crate) kind: Option<Expression>,
    validations: Vec<(Option<Expression>, Option<Expression>)>,
    /// The last `variable` block's `description` (buildx keeps the last block).
    pub(crate) description: Option<Expression>,
    /// Declared by a `variable` block (not only a top-level attribute).
    pub(crate) block: bool,
    /// Defined by a top-level attribute (`NAME = value`), which wins over a block's
    /// default and cannot be set from the environment unless a block declares it too.
    attribute: Option<Expression>,
}

/// HCL's JSON form turned into HCL text: object keys are labels or attributes, strings
/// keep their `${}` templates.
fn json_to_hcl(value: &serde_json::Value) -> Result<String, Error> {
    fn expr(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => quote_template(s),
            serde_json::Value::Array(items) => format!(
                "[{}]",
                items.iter().map(expr).collect::<Vec<_>>().join(", ")
            ),
            serde_json::Value::Object(map) => format!(
                "{{{}}}",
                map.iter()
                    .map(|(k, v)| format!("\"{}\" = {}", k.replace('"', "\\\""), expr(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => other.to_string(),
        }
    }
    let object = value
        .as_object()
        .ok_or_else(|| Error::Hcl("a JSON bake file must be an object".to_owned()))?;
    let mut out = String::new();
    for (kind, entries) in object {
        match (kind.as_str(), entries) {
            ("variable" | "target" | "group" | "function", serde_json::Value::Object(blocks)) => {
                for (name, body) in blocks {
                    out.push_str(&format!("{kind} \"{name}\" {{\n"));
                    if let serde_json::Value::Object(attrs) = body {
                        for (key, value) in attrs {
                            if kind == "variable" && key == "validation" {
                                let list = match value {
                                    serde_json::Value::Array(items) => items.clone(),
                                    other => vec![other.clone()],
                                };
                                for v in list {
                                    out.push_str("validation {\n");
                                    if let serde_json::Value::Object(m) = v {
                                        for (k, x) in m {
                                            out.push_str(&format!("{k} = {}\n", expr(&x)));
                                        }
                                    }
                                    out.push_str("}\n");
                                }
                                continue;
                            }
                            out.push_str(&format!("{key} = {}\n", expr(value)));
                        }
                    }
                    out.push_str("}\n");
                }
            }
            // Other keys are top-level attributes (variables, but not `variable` blocks).
            (_, value) if is_identifier(kind) => {
                out.push_str(&format!("{kind} = {}\n", expr(value)));
            }
            (_, value) => out.push_str(&format!(
                "variable \"{kind}\" {{\ndefault = {}\n}}\n",
                expr(value)
            )),
        }
    }
    Ok(out)
}

/// A JSON string (an HCL template) as an HCL quoted template: text is escaped, the
/// insides of `${…}` and `%{…}` sequences are kept as written.
fn quote_template(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::from("\"");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let opens = (c == '$' || c == '%') && chars.get(i + 1) == Some(&'{');
        let escaped = opens && i > 0 && chars[i - 1] == c;
        if opens && !escaped {
            // Copy the sequence through its matching brace.
            let mut depth = 0;
            let mut in_string = false;
            let mut j = i + 1;
            while j < chars.len() {
                let d = chars[j];
                if in_string {
                    if d == '\\' {
                        j += 1;
                    } else if d == '"' {
                        in_string = false;
                    }
                } else if d == '"' {
                    in_string = true;
                } else if d == '{' {
                    depth += 1;
                } else if d == '}' {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                j += 1;
            }
            let end = j.min(chars.len() - 1);
            out.extend(&chars[i..=end]);
            i = end + 1;
            continue;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => out.push(other),
        }
        i += 1;
    }
    out.push('"');
    out
}

/// An HCL identifier: a letter or `_`, then letters, digits, `_` and `-`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// `<<-` heredocs rewritten as plain `<<` ones, their strip markers applied and their
/// indentation removed as HCL's parser does (see `flush_heredoc`).
fn flush_heredocs(text: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let opener = line.trim_end().rsplit_once("<<-").filter(|(_, marker)| {
            !marker.is_empty() && marker.chars().all(|c| c.is_alphanumeric() || c == '_')
        });
        let Some((head, marker)) = opener else {
            out.push_str(line);
            continue;
        };
        let Some(end) = (i..lines.len()).find(|&j| lines[j].trim() == marker) else {
            out.push_str(line);
            continue;
        };
        out.push_str(&format!("{head}<<{marker}\n"));
        out.push_str(&flush_heredoc(&lines[i..end].concat()));
        out.push_str(lines[end]);
        i = end + 1;
    }
    out
}

/// A piece of a template: literal text (one line at most), or a `${…}`/`%{…}`
/// sequence with its strip markers.
enum Part {
    Literal(String),
    Sequence {
        text: String,
        strip_before: bool,
        strip_after: bool,
    },
}

/// A template split as HCL's scanner splits a heredoc: literals end at each newline
/// and at each sequence.
fn template_parts(body: &str) -> Vec<Part> {
    let chars: Vec<char> = body.chars().collect();
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if (c == '$' || c == '%') && next == Some(c) && chars.get(i + 2) == Some(&'{') {
            // `$${` and `%%{` are literal text.
            literal.extend(&chars[i..i + 3]);
            i += 3;
            continue;
        }
        if (c == '$' || c == '%') && next == Some('{') {
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            let start = i;
            let mut depth = 0;
            let mut j = i + 1;
            let mut in_string = false;
            while j < chars.len() {
                let d = chars[j];
                if in_string {
                    if d == '\\' {
                        j += 1;
                    } else if d == '"' {
                        in_string = false;
                    }
                } else if d == '"' {
                    in_string = true;
                } else if d == '{' {
                    depth += 1;
                } else if d == '}' {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                j += 1;
            }
            let end = j.min(chars.len() - 1);
            let text: String = chars[start..=end].iter().collect();
            parts.push(Part::Sequence {
                strip_before: text.starts_with("${~") || text.starts_with("%{~"),
                strip_after: text.ends_with("~}"),
                text,
            });
            i = end + 1;
            continue;
        }
        literal.push(c);
        i += 1;
        if c == '\n' {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    parts
}

/// A `<<-` heredoc's body as HCL's parser makes it: strip markers trim the literal
/// next to them (before indentation is looked at), then the smallest indentation of
/// the pieces that start a line (a sequence there counts as none; blank lines do not
/// count) is removed from every literal that starts a line.
fn flush_heredoc(body: &str) -> String {
    let mut parts = template_parts(body);
    let mut trim_next = false;
    for i in 0..parts.len() {
        let strip_prev = match &parts[i] {
            Part::Sequence { strip_before, .. } => *strip_before,
            Part::Literal(_) => false,
        };
        if strip_prev
            && i > 0
            && let Part::Literal(prev) = &mut parts[i - 1]
        {
            *prev = prev.trim_end().to_owned();
        }
        match &mut parts[i] {
            Part::Literal(text) => {
                if trim_next {
                    *text = text.trim_start().to_owned();
                }
                trim_next = false;
            }
            Part::Sequence { strip_after, .. } => trim_next = *strip_after,
        }
    }
    let mut min = usize::MAX;
    let mut newline = true;
    let mut adjust = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if newline {
            newline = false;
            let spaces = match part {
                Part::Literal(text) => {
                    let trimmed = text.trim_start();
                    if trimmed.is_empty() && text.ends_with('\n') {
                        usize::MAX
                    } else {
                        adjust.push(i);
                        text.chars().count() - trimmed.chars().count()
                    }
                }
                Part::Sequence { .. } => 0,
            };
            min = min.min(spaces);
        }
        if let Part::Literal(text) = part
            && text.ends_with('\n')
        {
            newline = true;
        }
    }
    for i in adjust {
        if let Part::Literal(text) = &mut parts[i] {
            *text = text.chars().skip(min).collect();
        }
    }
    parts
        .into_iter()
        .map(|p| match p {
            Part::Literal(text) => text,
            Part::Sequence { text, .. } => {
                let text = text.replacen("${~", "${", 1).replacen("%{~", "%{", 1);
                match text.strip_suffix("~}") {
                    Some(head) => format!("{head}}}"),
                    None => text,
                }
            }
        })
        .collect()
}

/// The marker put after an object key that repeats an earlier one in the same
/// object: hcl-rs refuses such keys, HCL keeps the last value (see `dedup_keys`).
pub(crate) const DUPLICATE_KEY: char = '\u{2}';

/// Parses HCL text. An object key defined twice is renamed (`KEY` + marker + n) so
/// hcl-rs accepts it; values have the marker removed, later ones winning.
fn parse_body(name: &str, text: &str) -> Result<Body, Error> {
    let mut text = text.to_owned();
    for n in 0..64 {
        match hcl::parse(&text) {
            Ok(body) => return Ok(body),
            Err(hcl::Error::Parse(parse)) if parse.message().contains("redefined object key") => {
                let at = parse.location();
                let Some(patched) = rename_key(&text, at.line(), at.column(), n) else {
                    return Err(parse_error(name, &text, &hcl::Error::Parse(parse)));
                };
                text = patched;
            }
            Err(e) => return Err(parse_error(name, &text, &e)),
        }
    }
    hcl::parse(&text).map_err(|e| parse_error(name, &text, &e))
}

/// The key at `line`:`column` (1-based) as a quoted key with the duplicate marker.
fn rename_key(text: &str, line: usize, column: usize, n: usize) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 8);
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 != line {
            out.push_str(l);
            continue;
        }
        let chars: Vec<char> = l.chars().collect();
        let start = column.checked_sub(1)?;
        let (key, end) = if chars.get(start) == Some(&'"') {
            let end =
                (start + 1..chars.len()).find(|&j| chars[j] == '"' && chars[j - 1] != '\\')?;
            (chars[start + 1..end].iter().collect::<String>(), end + 1)
        } else {
            let end = (start..chars.len())
                .find(|&j| !(chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '-'))
                .unwrap_or(chars.len());
            (chars[start..end].iter().collect::<String>(), end)
        };
        if key.is_empty() {
            return None;
        }
        out.extend(&chars[..start]);
        out.push_str(&format!("\"{key}{DUPLICATE_KEY}{n}\""));
        out.extend(&chars[end..]);
    }
    Some(out)
}

/// Net `{` minus `}` in HCL text, outside strings and comments (a rough count).
fn brace_depth(text: &str) -> i64 {
    let mut depth = 0;
    let mut in_string = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' | '\n' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '#' => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// Whether a line holds an unterminated quoted string.
fn unterminated_string(line: &str) -> bool {
    let mut in_string = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (in_string, c) {
            (true, '\\') => {
                chars.next();
            }
            (_, '"') => in_string = !in_string,
            (false, '#') => break,
            _ => {}
        }
    }
    in_string
}

/// A parse error in HCL's words (`Summary; Detail`), found from hcl-rs's error and
/// the text around it: `file:line,column: Summary; Detail`.
fn parse_error(name: &str, text: &str, error: &hcl::Error) -> Error {
    let hcl::Error::Parse(parse) = error else {
        return Error::Hcl(format!("{name}: {error}"));
    };
    let at = parse.location();
    let message = parse.message();
    let lines: Vec<&str> = text.lines().collect();
    let line = lines
        .get(at.line().saturating_sub(1))
        .copied()
        .unwrap_or("");
    let column = at.column().saturating_sub(1);
    let at_char = line.chars().nth(column);
    let before: String = line.chars().take(column).collect();
    static BLOCK_OPEN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"^\s*[A-Za-z_][\w-]*(\s+("[^"]*"|[A-Za-z_][\w-]*))*\s*\{\s*[A-Za-z_][\w-]*\s*=[^}]*$"#)
            .expect("valid regex")
    });
    let summary = if unterminated_string(line) {
        "Invalid multi-line string; Quoted strings may not be split over multiple lines. To produce a multi-line string, either use the \\n escape to represent a newline character or use the \"heredoc\" multi-line template syntax.".to_owned()
    } else if BLOCK_OPEN.is_match(line) {
        "Invalid single-argument block definition; An argument definition on the same line as its containing block creates a single-line block definition, which must also be closed on the same line. Place the block's closing brace immediately after the argument definition.".to_owned()
    } else if message.contains("redefined attribute") {
        let key: String = line
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        let first = lines[..at.line().saturating_sub(1)]
            .iter()
            .enumerate()
            .rev()
            .find(|(_, l)| {
                l.trim_start()
                    .strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            });
        match first {
            Some((n, l)) => {
                let col = l.len() - l.trim_start().len() + 1;
                format!(
                    "Attribute redefined; The argument \"{key}\" was already set at {name}:{},{col}-{}. Each argument may be set only once.",
                    n + 1,
                    col + key.chars().count()
                )
            }
            None => format!(
                "Attribute redefined; The argument \"{key}\" was already set. Each argument may be set only once."
            ),
        }
    } else if message.contains("expected newline or eof") {
        if at_char == Some(',') {
            "Unexpected comma after argument; Argument definitions must be separated by newlines, not commas. An argument definition must end with a newline.".to_owned()
        } else if before.trim_end().ends_with('}') && !before.contains('=') {
            "Missing newline after block definition; A block definition must end with a newline."
                .to_owned()
        } else {
            "Missing newline after argument; An argument definition must end with a newline."
                .to_owned()
        }
    } else if message.contains("expected `}`") && before.trim().is_empty() && at_char == Some('=') {
        "Argument or block definition required; An argument or block definition is required here."
            .to_owned()
    } else if brace_depth(text) > 0 && message.contains("expected `}`") {
        "Unclosed configuration block; There is no closing brace for this block before the end of the file. This may be caused by incorrect brace nesting elsewhere in this file.".to_owned()
    } else if message.contains("expected `]`") {
        "Missing item separator; Expected a comma to mark the beginning of the next item."
            .to_owned()
    } else if message.contains("expected `}`") {
        "Missing attribute separator; Expected a newline or comma to mark the beginning of the next attribute."
            .to_owned()
    } else if message.contains("invalid structure") {
        let after_ident = before
            .trim_end()
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
        if after_ident {
            "Argument or block definition required; An argument or block definition is required here. To set an argument, use the equals sign \"=\" to introduce the argument value.".to_owned()
        } else {
            "Argument or block definition required; An argument or block definition is required here.".to_owned()
        }
    } else if message.contains("invalid expression") {
        "Invalid expression; Expected the start of an expression, but found an invalid expression token.".to_owned()
    } else {
        format!("Invalid syntax; {message}")
    };
    Error::Hcl(format!(
        "{name}:{},{}: {summary}\n  {}",
        at.line(),
        at.column(),
        parse.line()
    ))
}

/// HCL's `nameSuggestion`: the first candidate within an edit distance of 2.
pub(crate) fn name_suggestion<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates.into_iter().find(|c| levenshtein(given, c) < 3)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A `function` block: only `params`, `variadic_params` and `result` are accepted.
fn function_block(block: &hcl::Block) -> Result<UserFunction, Error> {
    const KNOWN: [&str; 3] = ["params", "variadic_params", "result"];
    let attrs: Vec<(String, Expression)> = block
        .body()
        .attributes()
        .map(|a| (a.key().to_owned(), a.expr().clone()))
        .collect();
    for (key, _) in &attrs {
        if !KNOWN.contains(&key.as_str()) {
            let hint = name_suggestion(key, KNOWN)
                .map(|s| format!(" Did you mean \"{s}\"?"))
                .unwrap_or_default();
            return Err(Error::Hcl(format!(
                "Unsupported argument; An argument named \"{key}\" is not expected here.{hint}"
            )));
        }
    }
    if let Some(inner) = block.body().blocks().next() {
        return Err(Error::Hcl(format!(
            "Unsupported block type; Blocks of type \"{}\" are not expected here.",
            inner.identifier()
        )));
    }
    let get = |k: &str| attrs.iter().rev().find(|(key, _)| key == k).map(|(_, e)| e);
    // A keyword, or in a JSON file a string holding one.
    let keyword = |e: &Expression| match e {
        Expression::Variable(v) => Some(v.to_string()),
        Expression::String(s) if is_identifier(s) => Some(s.clone()),
        _ => None,
    };
    let params = match get("params") {
        None => None,
        Some(Expression::Array(items)) => Some(
            items
                .iter()
                .map(|i| {
                    keyword(i).ok_or_else(|| {
                        Error::Hcl(
                            "Invalid param element; Each parameter name must be an identifier."
                                .to_owned(),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => {
            return Err(Error::Hcl(
                "Invalid expression; A static list expression is required.".to_owned(),
            ));
        }
    };
    let variadic = match get("variadic_params") {
        None => None,
        Some(e) => Some(keyword(e).ok_or_else(|| {
            Error::Hcl(
                "Invalid param element; Each parameter name must be an identifier.".to_owned(),
            )
        })?),
    };
    Ok(UserFunction {
        params: params.clone().unwrap_or_default(),
        has_params: params.is_some(),
        variadic,
        result: get("result").cloned(),
    })
}

/// The variables buildx defines itself (they cannot be overridden).
fn builtin_variables() -> BTreeMap<String, Value> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64/v8",
        "x86" => "386",
        "arm" => "arm/v7",
        other => other,
    };
    BTreeMap::from([
        ("BAKE_CMD_CONTEXT".to_owned(), Value::from("cwd://")),
        (
            "BAKE_LOCAL_PLATFORM".to_owned(),
            Value::from(format!("linux/{arch}")),
        ),
    ])
}

impl Definition {
    /// `env` overrides variables; `compose_env` (the environment over `.env`) feeds
    /// Compose interpolation.
    pub(crate) fn parse(
        sources: &[Source],
        env: &BTreeMap<String, String>,
        compose_env: &BTreeMap<String, String>,
    ) -> Result<Self, Error> {
        let mut definition = Definition::default();
        let mut variables: BTreeMap<String, Variable> = BTreeMap::new();
        let mut variable_order: Vec<String> = Vec::new();
        let builtins = builtin_variables();
        let is_compose = |s: &Source| {
            let lower = s.name.to_lowercase();
            lower.ends_with(".yml") || lower.ends_with(".yaml")
        };
        // Compose files are read first, whatever their position among the files.
        let ordered = sources
            .iter()
            .filter(|s| is_compose(s))
            .chain(sources.iter().filter(|s| !is_compose(s)));
        for source in ordered {
            let text = if source.name.ends_with(".json") {
                crate::json::check(&source.text, &source.name)?;
                let json: serde_json::Value = serde_json::from_str(&source.text)
                    .map_err(|e| Error::Hcl(format!("{}: {e}", source.name)))?;
                json_to_hcl(&json)?
            } else if is_compose(source) {
                json_to_hcl(&compose::to_bake_json(source, compose_env)?)?
            } else {
                flush_heredocs(&source.text)
            };
            let body: Body = parse_body(&source.name, &text)?;
            for block in body.blocks() {
                let labels = block.labels();
                let name = labels
                    .first()
                    .map(|l| l.as_str().to_owned())
                    .unwrap_or_default();
                let attrs: Vec<(String, Expression)> = block
                    .body()
                    .attributes()
                    .map(|a| (a.key().to_owned(), a.expr().clone()))
                    .collect();
                let kind = match block.identifier() {
                    "target" => Some(Kind::Target),
                    "group" => Some(Kind::Group),
                    _ => None,
                };
                if kind.is_some() && labels.len() != 1 {
                    let shown: Vec<&str> = labels.iter().map(|l| l.as_str()).collect();
                    return Err(Error::Hcl(format!(
                        "Invalid block; invalid block label: [{}]",
                        shown.join(" ")
                    )));
                }
                match block.identifier() {
                    "target" | "group" => definition.blocks.push(BlockDef {
                        kind: kind.expect("target or group"),
                        label: name,
                        block: Block { attrs },
                    }),
                    "function" => {
                        let function = function_block(block)?;
                        if !builtins.contains_key(&name) {
                            definition.functions.insert(name, function);
                        }
                    }
                    "variable" => {
                        if builtins.contains_key(&name) {
                            continue;
                        }
                        if !variables.contains_key(&name) {
                            variable_order.push(name.clone());
                        }
                        // A later block replaces an earlier one of the same name
                        // entirely (default, type, validations and all), as buildx
                        // keeps only the last.
                        let variable = variables.entry(name).or_default();
                        *variable = Variable {
                            attribute: variable.attribute.take(),
                            block: true,
                            ..Variable::default()
                        };
                        for (key, expr) in attrs {
                            match key.as_str() {
                                "default" => variable.default = Some(expr),
                                "type" => variable.kind = Some(expr),
                                "description" => variable.description = Some(expr),
                                _ => {}
                            }
                        }
                        for validation in block
                            .body()
                            .blocks()
                            .filter(|b| b.identifier() == "validation")
                        {
                            for attr in validation.body().attributes() {
                                if !matches!(attr.key(), "condition" | "error_message") {
                                    let hint =
                                        name_suggestion(attr.key(), ["condition", "error_message"])
                                            .map(|s| format!(" Did you mean \"{s}\"?"))
                                            .unwrap_or_default();
                                    return Err(Error::Hcl(format!(
                                        "Unsupported argument; An argument named \"{}\" is not expected here.{hint}",
                                        attr.key()
                                    )));
                                }
                            }
                            let get = |k: &str| {
                                validation
                                    .body()
                                    .attributes()
                                    .find(|a| a.key() == k)
                                    .map(|a| a.expr().clone())
                            };
                            variable
                                .validations
                                .push((get("condition"), get("error_message")));
                        }
                    }
                    _ => {}
                }
            }
            // Top-level attributes are variables too (`TAG = "x"`).
            for attr in body.attributes() {
                let name = attr.key().to_owned();
                if builtins.contains_key(&name) || name == "function" {
                    continue;
                }
                if !variables.contains_key(&name) {
                    variable_order.push(name.clone());
                }
                variables.entry(name).or_default().attribute = Some(attr.expr().clone());
            }
        }
        calls::set_variable_types(
            variables
                .iter()
                .filter(|(_, v)| v.attribute.is_none())
                .filter_map(|(name, v)| {
                    let ty = type_constraint(v.kind.as_ref()?).ok()?;
                    Some((name.clone(), ty))
                })
                .collect(),
        );
        let mut resolver = Variables {
            declared: &variables,
            env,
            functions: &definition.functions,
            builtins: &builtins,
            values: builtins.clone(),
            progress: BTreeSet::new(),
            used_functions: BTreeSet::new(),
            function_progress: BTreeSet::new(),
        };
        // Every `variable` block first (pulling in what their defaults use) ...
        for name in variable_order.iter().filter(|n| variables[*n].block) {
            resolver.resolve(name).map_err(|e| e.top("Invalid value"))?;
        }
        // ... then their validations, which see only what is resolved by now ...
        resolver.validate(&variable_order)?;
        // ... then the functions ...
        let names: Vec<String> = definition.functions.keys().cloned().collect();
        for name in &names {
            resolver
                .resolve_function(name)
                .map_err(|e| e.top("Invalid function"))?;
        }
        // ... and the remaining top-level attributes.
        for name in &variable_order {
            resolver
                .resolve(name)
                .map_err(|e| e.top("Invalid attribute"))?;
        }
        definition.variables = resolver.values;
        definition.declarations = variables;
        Ok(definition)
    }

    /// An evaluation context with the variables and functions.
    pub(crate) fn context(&self) -> Context<'static> {
        let mut ctx = Context::new();
        funcs::declare(&mut ctx);
        calls::set_known_variables(self.variables.keys().cloned());
        for (name, value) in &self.variables {
            ctx.declare_var(name.clone(), value.clone());
        }
        ctx
    }
}

/// A problem resolving a variable: a diagnostic already in `Summary; Detail` form, a
/// plain error buildx wraps in a diagnostic where it surfaces, or an undefined name.
#[derive(Debug)]
enum VarError {
    Diag(String),
    Plain(String),
    Undefined,
}

impl VarError {
    /// A plain error raised while loading what an expression uses: buildx wraps it
    /// as an `Invalid expression` diagnostic.
    fn in_expression(self) -> VarError {
        match self {
            VarError::Plain(p) => VarError::Diag(format!("Invalid expression; {p}")),
            other => other,
        }
    }

    fn top(self, summary: &str) -> Error {
        match self {
            VarError::Diag(d) => Error::Hcl(d),
            VarError::Plain(p) => Error::Hcl(format!("{summary}; {p}")),
            VarError::Undefined => Error::Hcl(format!("{summary}; undefined")),
        }
    }
}

struct Variables<'a> {
    declared: &'a BTreeMap<String, Variable>,
    env: &'a BTreeMap<String, String>,
    functions: &'a Functions,
    builtins: &'a BTreeMap<String, Value>,
    values: BTreeMap<String, Value>,
    progress: BTreeSet<String>,
    /// User functions resolved (a default called them, or all after validation):
    /// the only ones validations can call.
    used_functions: BTreeSet<String>,
    function_progress: BTreeSet<String>,
}

impl Variables<'_> {
    fn context(&self) -> Context<'static> {
        let mut ctx = Context::new();
        funcs::declare(&mut ctx);
        calls::set_known_variables(self.values.keys().cloned());
        for (name, value) in &self.values {
            ctx.declare_var(name.clone(), value.clone());
        }
        ctx
    }

    /// buildx's `valueHasOverride`: the environment's value, and whether it is JSON
    /// (`NAME_JSON`, taken when `NAME` is unset or the variable is typed).
    fn override_of(&self, name: &str, favor_json: bool) -> Option<(String, bool)> {
        let plain = self.env.get(name).cloned();
        if plain.is_none() || favor_json {
            let json_name = format!("{name}_JSON");
            if !self.declared.get(&json_name).is_some_and(|v| v.block)
                && !self.builtins.contains_key(&json_name)
                && let Some(json) = self.env.get(&json_name)
            {
                return Some((json.clone(), true));
            }
        }
        plain.map(|p| (p, false))
    }

    /// Resolves what `expr` refers to (variables, user functions) first, as buildx's
    /// `loadDeps` does; names that do not exist are left for the evaluation to report.
    fn load_deps(&mut self, expr: &Expression) -> Result<(), VarError> {
        let mut names = Vec::new();
        let mut calls = Vec::new();
        references(expr, &[], &mut names, &mut calls);
        for call in calls {
            if self.functions.contains_key(&call) {
                self.resolve_function(&call)
                    .map_err(VarError::in_expression)?;
            }
        }
        for name in names {
            self.dep(&name)?;
        }
        Ok(())
    }

    /// buildx's `resolveFunction`: a user function's result must only use its
    /// parameters, variables and functions that exist, without a cycle.
    fn resolve_function(&mut self, name: &str) -> Result<(), VarError> {
        if self.used_functions.contains(name) {
            return Ok(());
        }
        let Some(function) = self.functions.get(name) else {
            return Err(VarError::Plain(format!(
                "function \"{name}\" does not exist: undefined"
            )));
        };
        if !self.function_progress.insert(name.to_owned()) {
            return Err(VarError::Plain(format!(
                "function cycle not allowed for {name}"
            )));
        }
        let Some(result) = &function.result else {
            return Err(VarError::Plain(format!(
                "empty result not allowed for {name}"
            )));
        };
        if !function.has_params {
            return Err(VarError::Plain(format!(
                "empty params not allowed for {name}"
            )));
        }
        let mut bound = function.params.clone();
        bound.extend(function.variadic.clone());
        let mut vars = Vec::new();
        let mut calls = Vec::new();
        references(result, &bound, &mut vars, &mut calls);
        for call in calls {
            if crate::specs::spec(&call).is_some()
                || matches!(call.as_str(), "can" | "try" | "convert")
            {
                continue;
            }
            self.resolve_function(&call)
                .map_err(VarError::in_expression)?;
        }
        for var in vars {
            match self.resolve(&var) {
                Ok(()) => {}
                Err(VarError::Undefined) => {
                    return Err(VarError::Diag(format!(
                        "Invalid expression; variable \"{var}\" does not exist: undefined"
                    )));
                }
                Err(e) => return Err(VarError::in_expression(e)),
            }
        }
        self.used_functions.insert(name.to_owned());
        Ok(())
    }

    fn dep(&mut self, name: &str) -> Result<(), VarError> {
        match self.resolve(name) {
            Ok(()) | Err(VarError::Undefined) => Ok(()),
            Err(VarError::Plain(p)) => Err(VarError::Diag(format!("Invalid expression; {p}"))),
            Err(e) => Err(e),
        }
    }

    /// buildx's `resolveValue`.
    fn resolve(&mut self, name: &str) -> Result<(), VarError> {
        if self.values.contains_key(name) {
            return Ok(());
        }
        let Some(variable) = self.declared.get(name) else {
            return Err(VarError::Undefined);
        };
        if !self.progress.insert(name.to_owned()) {
            return Err(VarError::Plain(format!(
                "variable cycle not allowed for {name}"
            )));
        }
        let value = self.value_of(name, variable)?;
        self.values.insert(name.to_owned(), value);
        Ok(())
    }

    fn value_of(&mut self, name: &str, variable: &Variable) -> Result<Value, VarError> {
        let (def, ty, type_specified) = match &variable.attribute {
            Some(expr) => (Some(expr), None, false),
            None => {
                let ty = match &variable.kind {
                    None => None,
                    Some(Expression::Null) => None,
                    Some(expr) => Some(type_constraint(expr).map_err(VarError::Diag)?),
                };
                let specified = ty.is_some();
                (variable.default.as_ref(), ty, specified)
            }
        };
        let is_var = variable.block;
        let overridden = self.override_of(name, type_specified);
        if def.is_none() && overridden.is_none() && !type_specified {
            // An untyped variable with no value is the empty string.
            return Ok(Value::from(""));
        }
        let mut value = Value::Null;
        if let Some(def) = def {
            self.load_deps(def)?;
            let ctx = self.context();
            let functions = self.visible_functions();
            value = calls::evaluate(def, &ctx, &functions).map_err(VarError::Diag)?;
            if let Some(ty) = &ty {
                value = convert::convert(&value, ty).map_err(|e| {
                    VarError::Plain(format!(
                        "invalid type {} for variable {name} default value: {e}",
                        ty.friendly()
                    ))
                })?;
            }
        }
        let Some((raw, json)) = overridden else {
            return Ok(value);
        };
        if !is_var {
            return Ok(value);
        }
        let ty_ref = ty.as_ref();
        Ok(match ty_ref {
            Some(ty) if json => {
                let parsed: serde_json::Value = serde_json::from_str(&raw).map_err(|e| {
                    VarError::Plain(format!("failed to convert variable {name} from JSON: {e}"))
                })?;
                let v = hcl::to_value(&parsed).unwrap_or(Value::Null);
                json_attributes_known(&v, ty).map_err(|e| {
                    VarError::Plain(format!("failed to convert variable {name} from JSON: {e}"))
                })?;
                convert::convert(&v, ty).map_err(|e| {
                    VarError::Plain(format!("failed to convert variable {name} from JSON: {e}"))
                })?
            }
            Some(ty) if ty.csv_supported() => value_from_csv(name, &raw, ty).map_err(|e| {
                VarError::Plain(format!("failed to convert variable {name} from CSV: {e}"))
            })?,
            Some(ty) if ty.is_primitive() => {
                convert_primitive(name, &raw, ty).map_err(VarError::Plain)?
            }
            Some(ty) => {
                return Err(VarError::Plain(format!(
                    "unsupported type {} for variable {name}",
                    ty.friendly()
                )));
            }
            None if def.is_none() => Value::from(raw),
            None => match &value {
                Value::Null => Value::from(raw),
                Value::String(_) => Value::from(raw),
                Value::Number(_) => {
                    convert_primitive(name, &raw, &Type::Number).map_err(VarError::Plain)?
                }
                Value::Bool(_) => {
                    convert_primitive(name, &raw, &Type::Bool).map_err(VarError::Plain)?
                }
                Value::Array(_) => {
                    return Err(VarError::Plain(format!(
                        "unsupported type tuple for variable {name}"
                    )));
                }
                Value::Object(_) => {
                    return Err(VarError::Plain(format!(
                        "unsupported type object for variable {name}"
                    )));
                }
            },
        })
    }

    /// The user functions expressions may call at this point.
    fn visible_functions(&self) -> Functions {
        self.functions
            .iter()
            .filter(|(name, _)| self.used_functions.contains(*name))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// buildx's `validateVariables`: the first failure, in declaration order.
    fn validate(&self, order: &[String]) -> Result<(), Error> {
        let ctx = self.context();
        let functions = self.visible_functions();
        for name in order {
            let variable = &self.declared[name];
            if !variable.block {
                continue;
            }
            for (condition, message) in &variable.validations {
                let result = match condition {
                    Some(c) => calls::evaluate(c, &ctx, &functions).map_err(Error::Hcl)?,
                    None => Value::Null,
                };
                let ok = match result {
                    Value::Null => {
                        return Err(Error::Hcl(
                            "Invalid condition result; Condition expression must return either true or false, not null."
                                .to_owned(),
                        ));
                    }
                    Value::Bool(b) => b,
                    Value::String(s) if s == "true" || s == "1" => true,
                    Value::String(s) if s == "false" || s == "0" => false,
                    _ => {
                        return Err(Error::Hcl(
                            "Invalid condition result; Invalid condition result value: a bool is required"
                                .to_owned(),
                        ));
                    }
                };
                if ok {
                    continue;
                }
                let text = match message {
                    Some(m) => match calls::evaluate(m, &ctx, &functions).map_err(Error::Hcl)? {
                        Value::Null => None,
                        other => crate::model::scalar_string(&other),
                    },
                    None => None,
                };
                let text = text.unwrap_or_else(|| {
                    "This check failed, but has an invalid error message.".to_owned()
                });
                return Err(Error::Hcl(format!("Validation failed; {text}")));
            }
        }
        Ok(())
    }
}

/// cty's JSON decoding into an object type refuses attributes the type does not
/// name (converting a value would drop them).
fn json_attributes_known(value: &Value, ty: &Type) -> Result<(), String> {
    match (ty, value) {
        (Type::Object(attrs), Value::Object(map)) => {
            for (key, v) in map {
                match attrs.iter().find(|(name, _, _)| name == key) {
                    Some((_, t, _)) => json_attributes_known(v, t)?,
                    None => {
                        return Err(format!(
                            "unsupported attribute {}",
                            crate::model::go_quote(key)
                        ));
                    }
                }
            }
            Ok(())
        }
        (Type::List(t) | Type::Set(t) | Type::Map(t), Value::Array(items)) => {
            items.iter().try_for_each(|i| json_attributes_known(i, t))
        }
        (Type::Map(t), Value::Object(map)) => {
            map.values().try_for_each(|v| json_attributes_known(v, t))
        }
        (Type::Tuple(types), Value::Array(items)) => items
            .iter()
            .zip(types)
            .try_for_each(|(i, t)| json_attributes_known(i, t)),
        _ => Ok(()),
    }
}

/// A variable's `type`, read as a type expression (a JSON file gives it as a string
/// holding one).
fn type_constraint(kind: &Expression) -> Result<Type, String> {
    if let Expression::String(text) = kind {
        let body: Body = hcl::parse(&format!("t = {text}"))
            .map_err(|e| format!("Invalid type specification; {e}"))?;
        let expr = body
            .attributes()
            .next()
            .map(|a| a.expr().clone())
            .unwrap_or(Expression::Null);
        return convert::parse_type(&expr);
    }
    convert::parse_type(kind)
}

/// `convertPrimitive`: an environment value as a string, bool or number.
fn convert_primitive(name: &str, raw: &str, ty: &Type) -> Result<Value, String> {
    match ty {
        Type::Bool => crate::model::parse_bool(raw).map(Value::Bool).map_err(|_| {
            format!(
                "failed to parse {name} as bool: strconv.ParseBool: parsing {}: invalid syntax",
                crate::model::go_quote(raw)
            )
        }),
        Type::Number => match parse_go_float(raw) {
            Some(n) if n.is_finite() => Ok(funcs::num(n)),
            Some(_) => Err(format!(
                "failed to parse {name} as number: invalid number value"
            )),
            None => Err(format!(
                "failed to parse {name} as number: strconv.ParseFloat: parsing {}: invalid syntax",
                crate::model::go_quote(raw)
            )),
        },
        Type::String => Ok(Value::from(raw)),
        other => Err(format!(
            "{name} of type {} is not a primitive",
            other.friendly()
        )),
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for the forms people write.
fn parse_go_float(raw: &str) -> Option<f64> {
    let s = raw.replace('_', "");
    if raw.trim() != raw || s.is_empty() {
        return None;
    }
    match s.to_lowercase().trim_start_matches(['+', '-']) {
        "inf" | "infinity" | "nan" => return s.parse().ok(),
        _ => {}
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(|i| i as f64);
    }
    s.parse().ok()
}

/// `valueFromCSV`: a list, set, tuple or map variable from a CSV environment value.
fn value_from_csv(name: &str, raw: &str, ty: &Type) -> Result<Value, String> {
    let fields =
        crate::model::csv_fields(raw).map_err(|e| format!("failed to parse {raw} as CSV: {e}"))?;
    let element_error =
        |e: String| format!("failed to parse element of type {}: {e}", ty.friendly());
    match ty {
        Type::List(element) | Type::Set(element) => {
            if !element.is_primitive() {
                return Err(format!(
                    "unsupported type {} for CSV specification",
                    ty.friendly()
                ));
            }
            let items = fields
                .iter()
                .map(|f| convert_primitive(name, f, element).map_err(element_error))
                .collect::<Result<Vec<_>, _>>()?;
            match ty {
                Type::Set(_) => convert::convert(&Value::Array(items), ty),
                _ => Ok(Value::Array(items)),
            }
        }
        Type::Tuple(types) => {
            if types.len() != fields.len() {
                return Err(format!(
                    "{} expects {} elements but only {} provided",
                    ty.friendly(),
                    types.len(),
                    fields.len()
                ));
            }
            let mut items = Vec::new();
            for (f, t) in fields.iter().zip(types) {
                if !t.is_primitive() {
                    return Err(format!(
                        "unsupported type {} for CSV specification",
                        ty.friendly()
                    ));
                }
                items.push(convert_primitive(name, f, t).map_err(element_error)?);
            }
            Ok(Value::Array(items))
        }
        Type::Map(element) => {
            if !element.is_primitive() {
                return Err(format!(
                    "unsupported type {} for CSV specification",
                    ty.friendly()
                ));
            }
            let mut map = hcl::Map::new();
            for f in &fields {
                let kv: Vec<&str> = f.split(':').collect();
                if kv.len() != 2 {
                    return Err(format!(
                        "expected one k/v pair but got {} pieces from {f}",
                        kv.len()
                    ));
                }
                let v = convert_primitive(name, kv[1], element).map_err(|e| {
                    format!("failed to parse element from type {}: {e}", ty.friendly())
                })?;
                map.insert(kv[0].to_owned(), v);
            }
            Ok(Value::Object(map))
        }
        _ => Err(format!(
            "unsupported type {} for CSV specification",
            ty.friendly()
        )),
    }
}

/// The root variable names and the function names an expression uses (HCL's
/// `Variables()` and buildx's `funcCalls`), names bound by `for` (and by a user
/// function's parameters, in `bound`) left out.
pub(crate) fn references(
    expr: &Expression,
    bound: &[String],
    vars: &mut Vec<String>,
    calls: &mut Vec<String>,
) {
    use hcl::expr::{Operation, TraversalOperator};
    let walk = |e: &Expression, vars: &mut Vec<String>, calls: &mut Vec<String>| {
        references(e, bound, vars, calls);
    };
    match expr {
        Expression::Variable(v) => {
            let name = v.as_str().to_owned();
            if !bound.contains(&name) && !vars.contains(&name) {
                vars.push(name);
            }
        }
        Expression::Array(items) => items.iter().for_each(|i| walk(i, vars, calls)),
        Expression::Object(object) => {
            for (k, v) in object {
                if let hcl::expr::ObjectKey::Expression(k) = k {
                    walk(k, vars, calls);
                }
                walk(v, vars, calls);
            }
        }
        Expression::TemplateExpr(t) => {
            if let Ok(template) = hcl::template::Template::from_expr(t) {
                template_references(&template, bound, vars, calls);
            }
        }
        Expression::Traversal(t) => {
            walk(&t.expr, vars, calls);
            for op in &t.operators {
                if let TraversalOperator::Index(i) = op {
                    walk(i, vars, calls);
                }
            }
        }
        Expression::FuncCall(call) => {
            let name = call.name.to_string();
            if !calls.contains(&name) {
                calls.push(name);
            }
            call.args.iter().for_each(|a| walk(a, vars, calls));
        }
        Expression::Parenthesis(inner) => walk(inner, vars, calls),
        Expression::Conditional(c) => {
            walk(&c.cond_expr, vars, calls);
            walk(&c.true_expr, vars, calls);
            walk(&c.false_expr, vars, calls);
        }
        Expression::Operation(op) => match op.as_ref() {
            Operation::Unary(u) => walk(&u.expr, vars, calls),
            Operation::Binary(b) => {
                walk(&b.lhs_expr, vars, calls);
                walk(&b.rhs_expr, vars, calls);
            }
        },
        Expression::ForExpr(f) => {
            walk(&f.collection_expr, vars, calls);
            let mut inner: Vec<String> = bound.to_vec();
            inner.push(f.value_var.to_string());
            if let Some(k) = &f.key_var {
                inner.push(k.to_string());
            }
            for e in [
                Some(&f.value_expr),
                f.key_expr.as_ref(),
                f.cond_expr.as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                references(e, &inner, vars, calls);
            }
        }
        _ => {}
    }
}

fn template_references(
    template: &hcl::template::Template,
    bound: &[String],
    vars: &mut Vec<String>,
    calls: &mut Vec<String>,
) {
    use hcl::template::{Directive, Element};
    for element in template.elements() {
        match element {
            Element::Literal(_) => {}
            Element::Interpolation(i) => references(&i.expr, bound, vars, calls),
            Element::Directive(d) => match d.as_ref() {
                Directive::If(i) => {
                    references(&i.cond_expr, bound, vars, calls);
                    template_references(&i.true_template, bound, vars, calls);
                    if let Some(f) = &i.false_template {
                        template_references(f, bound, vars, calls);
                    }
                }
                Directive::For(f) => {
                    references(&f.collection_expr, bound, vars, calls);
                    let mut inner: Vec<String> = bound.to_vec();
                    inner.push(f.value_var.to_string());
                    if let Some(k) = &f.key_var {
                        inner.push(k.to_string());
                    }
                    template_references(&f.template, &inner, vars, calls);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::flush_heredocs;
    use crate::model::csv_fields;

    #[test]
    fn flush_heredocs_like_hcl() {
        // A strip marker eats the newline, so the next line is not a line start and
        // keeps its indentation.
        let hcl = "x = <<-EOT\n    FROM a\n    %{ for p in L ~}\n    RUN ${p}\n    %{ endfor ~}\n    END\n    EOT\n";
        assert_eq!(
            flush_heredocs(hcl),
            "x = <<EOT\nFROM a\n%{ for p in L }    RUN ${p}\n%{ endfor }    END\n    EOT\n"
        );
        // A sequence at the start of a line makes the indentation to remove zero.
        assert_eq!(
            flush_heredocs("x = <<-EOT\n  a\n${b}\n  c\n  EOT\n"),
            "x = <<EOT\n  a\n${b}\n  c\n  EOT\n"
        );
        // Indentation before a sequence counts; blank lines do not.
        assert_eq!(
            flush_heredocs("x = <<-EOT\n      a\n\n    ${b}\n  EOT\n"),
            "x = <<EOT\n  a\n\n${b}\n  EOT\n"
        );
        let plain = "x = \"<<-EOT\"\n";
        assert_eq!(flush_heredocs(plain), plain);
    }

    #[test]
    fn list_variables_from_the_environment_are_csv() {
        assert_eq!(
            csv_fields(r#"dev,1.0,"edge""#).unwrap(),
            ["dev", "1.0", "edge"]
        );
        assert_eq!(csv_fields(r#""a,b",c"#).unwrap(), ["a,b", "c"]);
        assert_eq!(csv_fields(r#""say ""hi""""#).unwrap(), [r#"say "hi""#]);
        assert_eq!(csv_fields("x,").unwrap(), ["x", ""]);
    }

    #[test]
    fn suggestions_are_within_two_edits() {
        assert_eq!(
            super::name_suggestion("variadic_param", ["params", "variadic_params", "result"]),
            Some("variadic_params")
        );
        assert_eq!(super::name_suggestion("zzz", ["params"]), None);
    }
}
