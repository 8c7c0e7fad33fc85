//! A small evaluator of Go's `text/template`, for the `--format` templates buildx
//! takes (`imagetools inspect --format '{{json .Manifest}}'`).
//!
//! No crate fits: `gtmpl`, the one Rust port, keeps objects in `HashMap`s, so neither
//! struct field order (which Go's `json` keeps) nor map order (sorted in Go) survives,
//! and it is not maintained. This covers what buildx documents and people use: text,
//! `{{pipeline}}` with fields (`.A.B`), variables (`$`, `$x := …`), `(…)` and `|`,
//! `if`/`else if`/`else`, `range` (with `$k, $v :=` and `else`), `with`, comments,
//! `{{-`/`-}}` trimming, and the functions `json` (buildx's: `json.MarshalIndent`
//! with two spaces), `index`, `len`, `print`, `printf` (`%s %v %d %q`), `println`,
//! `eq ne lt le gt ge`, `and or not`. Values print as Go's `fmt` prints them
//! (`[a b]`, `map[k:v]`, `{a b}`); a struct field that Go keeps behind a pointer
//! prints its value, not Go's address.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A value a template sees, shaped as the Go value buildx hands its template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// What a missing map key gives (Go's invalid value: `<no value>`).
    Missing,
    /// A nil interface (`any`): JSON's `null` in a decoded document.
    Nil,
    /// A nil pointer (`<nil>`).
    NilPointer,
    /// A nil slice (`[]`, `null` in JSON).
    NilList,
    /// A nil map (`map[]`, `null` in JSON).
    NilMap,
    Bool(bool),
    Int(i64),
    /// A JSON number held in an `any` (Go's float64).
    Number(serde_json::Number),
    String(String),
    /// A `time.Time` as RFC 3339 text.
    Time(String),
    List(Vec<Value>),
    /// A Go map with string keys (sorted, as Go prints and encodes them).
    Map(BTreeMap<String, Value>),
    /// A Go struct: its fields in declaration order.
    Struct(Vec<Field>),
}

/// A struct field: the name templates use, its JSON name (empty: not in JSON, as a
/// method), and whether JSON leaves it out when empty (`omitempty`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) json: &'static str,
    pub(crate) omit_empty: bool,
    /// An embedded struct: its fields are reachable as the outer one's, and JSON
    /// inlines them.
    pub(crate) embedded: bool,
    pub(crate) value: Value,
}

impl Field {
    pub(crate) fn new(name: &'static str, json: &'static str, value: Value) -> Self {
        Self {
            name,
            json,
            omit_empty: false,
            embedded: false,
            value,
        }
    }

    pub(crate) fn embedded(name: &'static str, value: Value) -> Self {
        Self {
            name,
            json: name,
            omit_empty: false,
            embedded: true,
            value,
        }
    }

    pub(crate) fn omit_empty(name: &'static str, json: &'static str, value: Value) -> Self {
        Self {
            name,
            json,
            omit_empty: true,
            embedded: false,
            value,
        }
    }
}

impl Value {
    /// A JSON document as an `any` holds it (maps, slices, float64s).
    pub(crate) fn from_json(value: &serde_json::Value) -> Value {
        match value {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Number(n.clone()),
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(items) => {
                Value::List(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// What `omitempty` and `if` call empty.
    fn is_empty(&self) -> bool {
        match self {
            Value::Missing | Value::Nil | Value::NilPointer | Value::NilList | Value::NilMap => {
                true
            }
            Value::Bool(b) => !b,
            Value::Int(i) => *i == 0,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Time(_) | Value::Struct(_) => false,
            Value::List(items) => items.is_empty(),
            Value::Map(map) => map.is_empty(),
        }
    }

    fn field(&self, name: &str) -> Result<Value, String> {
        match self {
            Value::Struct(fields) => {
                if let Some(field) = fields.iter().find(|f| f.name == name) {
                    return Ok(field.value.clone());
                }
                // A field of an embedded struct is the outer one's.
                fields
                    .iter()
                    .filter(|f| f.embedded)
                    .find_map(|f| f.value.field(name).ok())
                    .ok_or_else(|| format!("can't evaluate field {name}"))
            }
            Value::Map(map) => Ok(map.get(name).cloned().unwrap_or(Value::Missing)),
            Value::Missing | Value::NilMap => Ok(Value::Missing),
            Value::Nil => Err(format!("nil pointer evaluating interface {{}}.{name}")),
            Value::NilPointer => Err(format!("nil pointer evaluating .{name}")),
            other => Err(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Missing | Value::Nil => "nil",
            Value::NilPointer => "pointer",
            Value::NilList => "slice",
            Value::NilMap => "map",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int64",
            Value::Number(_) => "float64",
            Value::String(_) => "string",
            Value::Time(_) => "time.Time",
            Value::List(_) => "slice",
            Value::Map(_) => "map",
            Value::Struct(_) => "struct",
        }
    }

    /// Go's `fmt.Sprint` of the value, as a template prints it.
    fn print(&self, top: bool, out: &mut String) {
        match self {
            Value::Missing => out.push_str("<no value>"),
            Value::Nil if top => out.push_str("<no value>"),
            Value::Nil | Value::NilPointer => out.push_str("<nil>"),
            Value::NilList => out.push_str("[]"),
            Value::NilMap => out.push_str("map[]"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Number(n) => out.push_str(&go_float(n)),
            Value::String(s) => out.push_str(s),
            Value::Time(t) => out.push_str(&go_time_string(t)),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    item.print(false, out);
                }
                out.push(']');
            }
            Value::Map(map) => {
                out.push_str("map[");
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.print(false, out);
                }
                out.push(']');
            }
            Value::Struct(fields) => {
                out.push('{');
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    f.value.print(false, out);
                }
                out.push('}');
            }
        }
    }

    fn printed(&self) -> String {
        let mut out = String::new();
        self.print(true, &mut out);
        out
    }

    /// Go's `json.MarshalIndent(v, "", "  ")`.
    pub(crate) fn to_json_indent(&self) -> String {
        let mut out = String::new();
        self.write_json(0, &mut out);
        out
    }

    /// A struct's fields as JSON writes them: embedded structs inlined, empty
    /// `omitempty` fields and method-like ones left out.
    fn json_fields(&self) -> Vec<&Field> {
        let Value::Struct(fields) = self else {
            return Vec::new();
        };
        let mut shown = Vec::new();
        for f in fields {
            if f.embedded {
                shown.extend(f.value.json_fields());
            } else if !(f.json.is_empty() || (f.omit_empty && f.value.is_empty())) {
                shown.push(f);
            }
        }
        shown
    }

    fn write_json(&self, depth: usize, out: &mut String) {
        let indent = |out: &mut String, depth: usize| {
            out.push('\n');
            out.push_str(&"  ".repeat(depth));
        };
        match self {
            Value::Missing | Value::Nil | Value::NilPointer | Value::NilList | Value::NilMap => {
                out.push_str("null");
            }
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Number(n) => out.push_str(&go_float(n)),
            Value::String(s) => out.push_str(&json_string(s)),
            Value::Time(t) => out.push_str(&json_string(&rfc3339_nano(t))),
            Value::List(items) if items.is_empty() => out.push_str("[]"),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    indent(out, depth + 1);
                    item.write_json(depth + 1, out);
                }
                indent(out, depth);
                out.push(']');
            }
            Value::Map(map) if map.is_empty() => out.push_str("{}"),
            Value::Map(map) => {
                out.push('{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    indent(out, depth + 1);
                    out.push_str(&json_string(k));
                    out.push_str(": ");
                    v.write_json(depth + 1, out);
                }
                indent(out, depth);
                out.push('}');
            }
            Value::Struct(_) => {
                let shown = self.json_fields();
                if shown.is_empty() {
                    out.push_str("{}");
                    return;
                }
                out.push('{');
                for (i, f) in shown.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    indent(out, depth + 1);
                    out.push_str(&json_string(f.json));
                    out.push_str(": ");
                    f.value.write_json(depth + 1, out);
                }
                indent(out, depth);
                out.push('}');
            }
        }
    }
}

/// A string as Go's `encoding/json` writes it (HTML characters escaped).
fn json_string(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// A float64 as Go prints and encodes it (integers without a fraction).
fn go_float(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

/// RFC 3339 with the fraction's trailing zeros dropped and a zero offset as `Z`, as
/// Go writes a `time.Time` it read.
fn rfc3339_nano(text: &str) -> String {
    let (main, zone) = split_zone(text);
    let main = match main.split_once('.') {
        Some((seconds, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                seconds.to_owned()
            } else {
                format!("{seconds}.{fraction}")
            }
        }
        None => main.to_owned(),
    };
    let zone = if matches!(zone, "+00:00" | "-00:00" | "z") {
        "Z"
    } else {
        zone
    };
    format!("{main}{zone}")
}

fn split_zone(text: &str) -> (&str, &str) {
    if let Some(main) = text.strip_suffix(['Z', 'z']) {
        return (main, &text[main.len()..]);
    }
    match text.rfind(['+', '-']) {
        Some(i) if i > 10 => (&text[..i], &text[i..]),
        _ => (text, ""),
    }
}

/// Go's `Time.String()` for a time read from RFC 3339 (`2024-01-02 03:04:05.5 +0000
/// UTC`).
fn go_time_string(text: &str) -> String {
    let normal = rfc3339_nano(text);
    let (main, zone) = split_zone(&normal);
    let main = main.replacen('T', " ", 1);
    if zone == "Z" {
        format!("{main} +0000 UTC")
    } else {
        let offset = zone.replace(':', "");
        format!("{main} {offset} {offset}")
    }
}

/// A parsed template.
#[derive(Debug)]
pub(crate) struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    /// `{{if}}`; an `{{else if}}` is an `If` alone in `otherwise`.
    If {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone, Default)]
struct Pipeline {
    /// The action's text, for errors.
    source: String,
    /// `$x :=` / `$k, $v :=`.
    declare: Vec<String>,
    /// `$x = …` (assigns an existing variable).
    assign: bool,
    commands: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Arg {
    /// `.A.B` (empty: `.`).
    Field(Vec<String>),
    /// `$name.A.B` (`$` alone: the data).
    Variable(String, Vec<String>),
    /// A function's name.
    Function(String),
    Literal(Value),
    /// `(pipeline).A.B`.
    Group(Box<Pipeline>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Field(Vec<String>),
    Variable(String, Vec<String>),
    Literal(Value),
    Open,
    Close(Vec<String>),
    Pipe,
    Declare,
    Assign,
    Comma,
}

/// The items of a template: text, and the tokens of each action.
enum Item {
    Text(String),
    /// The action's text and tokens.
    Action(String, Vec<Token>),
}

impl Template {
    /// Parses `text`; errors name what could not be read.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let items = split(text)?;
        let mut position = 0;
        let (nodes, end) = parse_nodes(&items, &mut position)?;
        if let Some(Token::Word(word)) = end.as_ref().and_then(|e| e.first()) {
            return Err(format!("unexpected {{{{{word}}}}}"));
        }
        Ok(Template { nodes })
    }

    /// Runs the template on `data`.
    pub(crate) fn execute(&self, data: &Value) -> Result<String, String> {
        let mut out = String::new();
        let mut vars = vec![("$".to_owned(), data.clone())];
        exec(&self.nodes, data, &mut vars, &mut out)?;
        Ok(out)
    }
}

/// Splits text and actions, trimming around `{{-` and `-}}` and dropping comments.
fn split(text: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut before = &rest[..start];
        if trim_next {
            before = before.trim_start();
        }
        let after = &rest[start + 2..];
        let (trim_before, inner_start) = match after.strip_prefix('-') {
            Some(r) if r.starts_with([' ', '\t', '\n', '\r']) => (true, r),
            _ => (false, after),
        };
        if trim_before {
            before = before.trim_end();
        }
        if !before.is_empty() {
            items.push(Item::Text(before.to_owned()));
        }
        let (inner, rest_after, trim_after) = find_close(inner_start)?;
        trim_next = trim_after;
        let trimmed = inner.trim();
        if !(trimmed.starts_with("/*") && trimmed.ends_with("*/")) {
            items.push(Item::Action(trimmed.to_owned(), lex(inner)?));
        }
        rest = rest_after;
    }
    let last = if trim_next { rest.trim_start() } else { rest };
    if !last.is_empty() {
        items.push(Item::Text(last.to_owned()));
    }
    Ok(items)
}

/// The action's text up to `}}` (outside strings), what follows it, and whether it
/// ended with ` -}}`.
fn find_close(text: &str) -> Result<(&str, &str, bool), String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) => {
                if c == b'\\' && q != b'`' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if matches!(c, b'"' | b'`' | b'\'') {
                    quote = Some(c);
                } else if text[i..].starts_with("}}") {
                    let inner = &text[..i];
                    let rest = &text[i + 2..];
                    if let Some(inner) = inner.strip_suffix('-') {
                        if inner.ends_with([' ', '\t', '\n', '\r']) {
                            return Ok((inner, rest, true));
                        }
                    }
                    return Ok((inner, rest, false));
                }
            }
        }
        i += 1;
    }
    Err("unclosed action".to_owned())
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The `.A.B` chain at the start of `text` (after a field, variable or `)`).
fn field_chain(chars: &[char], i: &mut usize) -> Vec<String> {
    let mut chain = Vec::new();
    while *i < chars.len() && chars[*i] == '.' {
        let start = *i + 1;
        let mut end = start;
        while end < chars.len() && is_ident(chars[end]) {
            end += 1;
        }
        if end == start {
            break;
        }
        chain.push(chars[start..end].iter().collect());
        *i = end;
    }
    chain
}

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            _ if c.is_whitespace() => i += 1,
            '|' => {
                tokens.push(Token::Pipe);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                i += 1;
                let chain = field_chain(&chars, &mut i);
                tokens.push(Token::Close(chain));
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::Declare);
                i += 2;
            }
            '=' => {
                tokens.push(Token::Assign);
                i += 1;
            }
            '.' => {
                let chain = field_chain(&chars, &mut i);
                if chain.is_empty() {
                    i += 1;
                }
                tokens.push(Token::Field(chain));
            }
            '$' => {
                let start = i;
                i += 1;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                let chain = field_chain(&chars, &mut i);
                tokens.push(Token::Variable(name, chain));
            }
            '"' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                let quoted: String = chars[start..i.min(chars.len())].iter().collect();
                let s: String =
                    serde_json::from_str(&quoted).map_err(|_| format!("bad string {quoted}"))?;
                tokens.push(Token::Literal(Value::String(s)));
            }
            '`' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                tokens.push(Token::Literal(Value::String(
                    chars[start..i.min(chars.len())].iter().collect(),
                )));
                i += 1;
            }
            _ if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let value = match text.parse::<i64>() {
                    Ok(n) => Value::Int(n),
                    Err(_) => Value::Number(
                        text.parse::<f64>()
                            .ok()
                            .and_then(serde_json::Number::from_f64)
                            .ok_or_else(|| format!("bad number {text}"))?,
                    ),
                };
                tokens.push(Token::Literal(value));
            }
            _ if is_ident(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                tokens.push(match word.as_str() {
                    "true" => Token::Literal(Value::Bool(true)),
                    "false" => Token::Literal(Value::Bool(false)),
                    "nil" => Token::Literal(Value::Nil),
                    _ => Token::Word(word),
                });
            }
            _ => return Err(format!("unexpected {c:?} in action")),
        }
    }
    Ok(tokens)
}

/// Parses nodes until an `{{else …}}` or `{{end}}`, whose tokens are returned.
fn parse_nodes(
    items: &[Item],
    position: &mut usize,
) -> Result<(Vec<Node>, Option<Vec<Token>>), String> {
    let mut nodes = Vec::new();
    while *position < items.len() {
        let item = &items[*position];
        *position += 1;
        let (source, tokens) = match item {
            Item::Text(text) => {
                nodes.push(Node::Text(text.clone()));
                continue;
            }
            Item::Action(source, tokens) => (source, tokens),
        };
        let parse = |tokens: &[Token]| {
            parse_pipeline(tokens).map(|p| Pipeline {
                source: source.clone(),
                ..p
            })
        };
        match tokens.first() {
            Some(Token::Word(w)) if w == "end" || w == "else" => {
                return Ok((nodes, Some(tokens.clone())));
            }
            Some(Token::Word(w)) if matches!(w.as_str(), "if" | "range" | "with") => {
                let keyword = w.clone();
                let pipe = parse(&tokens[1..])?;
                nodes.push(parse_control(&keyword, pipe, items, position)?);
            }
            Some(Token::Word(w))
                if matches!(
                    w.as_str(),
                    "template" | "define" | "block" | "break" | "continue"
                ) =>
            {
                return Err(format!("{{{{{w}}}}} is not supported"));
            }
            _ => nodes.push(Node::Action(parse(tokens)?)),
        }
    }
    Ok((nodes, None))
}

fn is_word(token: Option<&Token>, word: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w == word)
}

fn parse_control(
    keyword: &str,
    pipe: Pipeline,
    items: &[Item],
    position: &mut usize,
) -> Result<Node, String> {
    let unterminated = || format!("{{{{{keyword}}}}} without {{{{end}}}}");
    let (body, end) = parse_nodes(items, position)?;
    let end = end.ok_or_else(unterminated)?;
    let mut otherwise = Vec::new();
    if is_word(end.first(), "else") {
        let rest = &end[1..];
        match rest.first() {
            // `{{else if …}}`: a nested control that ends at the same `{{end}}`.
            Some(Token::Word(w)) if w == "if" || w == "with" => {
                let inner = parse_pipeline(&rest[1..])?;
                otherwise.push(parse_control(w, inner, items, position)?);
            }
            Some(_) => return Err("unexpected tokens after else".to_owned()),
            None => {
                let (nodes, end) = parse_nodes(items, position)?;
                if !end.is_some_and(|e| is_word(e.first(), "end")) {
                    return Err(unterminated());
                }
                otherwise = nodes;
            }
        }
    }
    Ok(match keyword {
        "if" => Node::If {
            pipe,
            body,
            otherwise,
        },
        "range" => Node::Range {
            pipe,
            body,
            otherwise,
        },
        _ => Node::With {
            pipe,
            body,
            otherwise,
        },
    })
}

fn parse_pipeline(tokens: &[Token]) -> Result<Pipeline, String> {
    let mut pipeline = Pipeline::default();
    let mut rest = tokens;
    // Declarations: `$x :=`, `$k, $v :=`, `$x =`.
    let declared = match rest {
        [Token::Variable(a, c), Token::Declare | Token::Assign, ..] if c.is_empty() => {
            Some((vec![a.clone()], 2))
        }
        [
            Token::Variable(a, c1),
            Token::Comma,
            Token::Variable(b, c2),
            Token::Declare | Token::Assign,
            ..,
        ] if c1.is_empty() && c2.is_empty() => Some((vec![a.clone(), b.clone()], 4)),
        _ => None,
    };
    if let Some((names, used)) = declared {
        pipeline.assign = rest[used - 1] == Token::Assign;
        pipeline.declare = names;
        rest = &rest[used..];
    }
    let mut command = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        match &rest[i] {
            Token::Pipe => {
                if command.is_empty() {
                    return Err("missing command before |".to_owned());
                }
                pipeline.commands.push(std::mem::take(&mut command));
            }
            Token::Open => {
                // The group runs to its matching `)`.
                let mut depth = 0;
                let mut j = i;
                loop {
                    match rest.get(j) {
                        Some(Token::Open) => depth += 1,
                        Some(Token::Close(_)) => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Some(_) => {}
                        None => return Err("unclosed (".to_owned()),
                    }
                    j += 1;
                }
                let inner = parse_pipeline(&rest[i + 1..j])?;
                let Token::Close(chain) = &rest[j] else {
                    unreachable!("the loop stops at a close")
                };
                command.push(Arg::Group(Box::new(inner), chain.clone()));
                i = j;
            }
            Token::Close(_) => return Err("unexpected )".to_owned()),
            Token::Field(chain) => command.push(Arg::Field(chain.clone())),
            Token::Variable(name, chain) => {
                command.push(Arg::Variable(name.clone(), chain.clone()))
            }
            Token::Literal(value) => command.push(Arg::Literal(value.clone())),
            Token::Word(word) => command.push(Arg::Function(word.clone())),
            Token::Declare | Token::Assign | Token::Comma => {
                return Err("unexpected declaration".to_owned());
            }
        }
        i += 1;
    }
    if command.is_empty() {
        return Err("missing value for command".to_owned());
    }
    pipeline.commands.push(command);
    Ok(pipeline)
}

type Vars = Vec<(String, Value)>;

fn exec(nodes: &[Node], dot: &Value, vars: &mut Vars, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Action(pipe) => {
                let value = eval_pipeline(pipe, dot, vars)?;
                if pipe.declare.is_empty() {
                    value.print(true, out);
                }
            }
            Node::If {
                pipe,
                body,
                otherwise,
            } => {
                let mark = vars.len();
                if eval_pipeline(pipe, dot, vars)?.is_empty() {
                    exec(otherwise, dot, vars, out)?;
                } else {
                    exec(body, dot, vars, out)?;
                }
                vars.truncate(mark);
            }
            Node::With {
                pipe,
                body,
                otherwise,
            } => {
                let mark = vars.len();
                let value = eval_pipeline(pipe, dot, vars)?;
                if value.is_empty() {
                    exec(otherwise, dot, vars, out)?;
                } else {
                    exec(body, &value, vars, out)?;
                }
                vars.truncate(mark);
            }
            Node::Range {
                pipe,
                body,
                otherwise,
            } => {
                let mark = vars.len();
                let plain = Pipeline {
                    declare: Vec::new(),
                    ..pipe.clone()
                };
                let value = eval_pipeline(&plain, dot, vars)?;
                let entries: Vec<(Value, Value)> = match value {
                    Value::List(items) => items
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Value::Int(i as i64), v))
                        .collect(),
                    Value::Map(map) => map
                        .into_iter()
                        .map(|(k, v)| (Value::String(k), v))
                        .collect(),
                    // Go: an invalid value (a nil map, a missing key) is no error.
                    Value::Missing | Value::Nil | Value::NilList | Value::NilMap => Vec::new(),
                    Value::Int(n) => (0..n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
                    other => {
                        return Err(format!(
                            "executing at <{}>: range can't iterate over {}",
                            pipe.source,
                            other.printed()
                        ));
                    }
                };
                if entries.is_empty() {
                    exec(otherwise, dot, vars, out)?;
                }
                for (key, value) in entries {
                    let inner = vars.len();
                    match pipe.declare.as_slice() {
                        [v] => vars.push((v.clone(), value.clone())),
                        [k, v] => {
                            vars.push((k.clone(), key));
                            vars.push((v.clone(), value.clone()));
                        }
                        _ => {}
                    }
                    exec(body, &value, vars, out)?;
                    vars.truncate(inner);
                }
                vars.truncate(mark);
            }
        }
    }
    Ok(())
}

/// Runs a pipeline; an error names the action, as Go's `executing "" at <…>`.
fn eval_pipeline(pipe: &Pipeline, dot: &Value, vars: &mut Vars) -> Result<Value, String> {
    let mut value: Option<Value> = None;
    for command in &pipe.commands {
        let result = eval_command(command, dot, vars, value).map_err(|e| {
            if pipe.source.is_empty() || e.starts_with("executing") {
                e
            } else {
                format!("executing at <{}>: {e}", pipe.source)
            }
        });
        value = Some(result?);
    }
    let value = value.unwrap_or(Value::Nil);
    if pipe.assign {
        for name in &pipe.declare {
            match vars.iter_mut().rev().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = value.clone(),
                None => return Err(format!("undefined variable: {name}")),
            }
        }
    } else if let [name] = pipe.declare.as_slice() {
        vars.push((name.clone(), value.clone()));
    }
    Ok(value)
}

fn chain(mut value: Value, fields: &[String]) -> Result<Value, String> {
    for field in fields {
        value = value.field(field)?;
    }
    Ok(value)
}

fn eval_arg(arg: &Arg, dot: &Value, vars: &mut Vars) -> Result<Value, String> {
    match arg {
        Arg::Field(fields) => chain(dot.clone(), fields),
        Arg::Variable(name, fields) => {
            let value = vars
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("undefined variable: {name}"))?;
            chain(value, fields)
        }
        Arg::Literal(value) => Ok(value.clone()),
        Arg::Group(pipe, fields) => chain(eval_pipeline(pipe, dot, vars)?, fields),
        Arg::Function(name) => call(name, Vec::new()),
    }
}

fn eval_command(
    command: &[Arg],
    dot: &Value,
    vars: &mut Vars,
    piped: Option<Value>,
) -> Result<Value, String> {
    match command {
        [Arg::Function(name), args @ ..] => {
            let mut values = args
                .iter()
                .map(|a| eval_arg(a, dot, vars))
                .collect::<Result<Vec<_>, _>>()?;
            values.extend(piped);
            call(name, values)
        }
        [single] if piped.is_none() => eval_arg(single, dot, vars),
        [_] => Err("can't give argument to non-function".to_owned()),
        _ => Err("can't give arguments to non-function".to_owned()),
    }
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    let number = |v: &Value| match v {
        Value::Int(i) => Some(*i as f64),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y).ok_or_else(|| "incomparable".to_owned()),
            _ => Err(format!(
                "incompatible types for comparison: {} and {}",
                a.type_name(),
                b.type_name()
            )),
        },
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(_) | Value::Number(_), Value::Int(_) | Value::Number(_)) => {
            compare(a, b) == Ok(std::cmp::Ordering::Equal)
        }
        _ => a == b,
    }
}

fn call(name: &str, args: Vec<Value>) -> Result<Value, String> {
    let arity = |n: usize| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        }
    };
    match name {
        "json" => {
            arity(1)?;
            Ok(Value::String(args[0].to_json_indent()))
        }
        "index" => {
            let Some((first, keys)) = args.split_first() else {
                return Err("wrong number of args for index".to_owned());
            };
            let mut value = first.clone();
            for key in keys {
                value = match (&value, key) {
                    (Value::Map(map), Value::String(k)) => {
                        map.get(k).cloned().unwrap_or(Value::Nil)
                    }
                    (Value::List(items), Value::Int(i)) => items
                        .get(usize::try_from(*i).map_err(|_| format!("index out of range: {i}"))?)
                        .cloned()
                        .ok_or_else(|| format!("index out of range: {i}"))?,
                    (Value::NilMap, _) => Value::Nil,
                    (Value::Missing | Value::Nil, _) => {
                        return Err("index of untyped nil".to_owned());
                    }
                    (v, k) => {
                        return Err(format!(
                            "can't index item of type {} with {}",
                            v.type_name(),
                            k.printed()
                        ));
                    }
                };
            }
            Ok(value)
        }
        "len" => {
            arity(1)?;
            match &args[0] {
                Value::String(s) => Ok(Value::Int(s.len() as i64)),
                Value::List(items) => Ok(Value::Int(items.len() as i64)),
                Value::Map(map) => Ok(Value::Int(map.len() as i64)),
                Value::NilList | Value::NilMap => Ok(Value::Int(0)),
                other => Err(format!("len of type {}", other.type_name())),
            }
        }
        "print" => {
            // Go's Sprint: spaces between operands when neither is a string.
            let mut out = String::new();
            for (i, arg) in args.iter().enumerate() {
                let is_string = |v: &Value| matches!(v, Value::String(_));
                if i > 0 && !is_string(arg) && !is_string(&args[i - 1]) {
                    out.push(' ');
                }
                arg.print(false, &mut out);
            }
            Ok(Value::String(out))
        }
        "println" => {
            let texts: Vec<String> = args
                .iter()
                .map(|a| {
                    let mut s = String::new();
                    a.print(false, &mut s);
                    s
                })
                .collect();
            Ok(Value::String(texts.join(" ") + "\n"))
        }
        "printf" => {
            let Some((Value::String(format), rest)) = args.split_first() else {
                return Err("printf needs a format string".to_owned());
            };
            Ok(Value::String(printf(format, rest)))
        }
        "eq" => {
            let Some((first, rest)) = args.split_first() else {
                return Err("missing argument for comparison".to_owned());
            };
            Ok(Value::Bool(rest.iter().any(|v| equal(first, v))))
        }
        "ne" => {
            arity(2)?;
            Ok(Value::Bool(!equal(&args[0], &args[1])))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(2)?;
            let order = compare(&args[0], &args[1])?;
            Ok(Value::Bool(match name {
                "lt" => order.is_lt(),
                "le" => order.is_le(),
                "gt" => order.is_gt(),
                _ => order.is_ge(),
            }))
        }
        "and" => Ok(args
            .iter()
            .find(|v| v.is_empty())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Nil)),
        "or" => Ok(args
            .iter()
            .find(|v| !v.is_empty())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Nil)),
        "not" => {
            arity(1)?;
            Ok(Value::Bool(args[0].is_empty()))
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %q %%`.
fn printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(verb) => match args.next() {
                Some(Value::String(s)) if verb == 'q' => out.push_str(&json_string(s)),
                Some(value) => value.print(false, &mut out),
                None => {
                    let _ = write!(out, "%!{verb}(MISSING)");
                }
            },
            None => out.push_str("%!(NOVERB)"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Value {
        Value::Struct(vec![
            Field::omit_empty("Name", "name", Value::String("r/x:1".into())),
            Field::omit_empty(
                "Manifest",
                "manifest",
                Value::Struct(vec![
                    Field::new("MediaType", "mediaType", Value::String("a<b".into())),
                    Field::new("Size", "size", Value::Int(12)),
                    Field::omit_empty("URLs", "urls", Value::NilList),
                    Field::new(
                        "Manifests",
                        "manifests",
                        Value::List(vec![
                            Value::Map(BTreeMap::from([(
                                "Digest".into(),
                                Value::String("d1".into()),
                            )])),
                            Value::Map(BTreeMap::from([(
                                "Digest".into(),
                                Value::String("d2".into()),
                            )])),
                        ]),
                    ),
                ]),
            ),
            Field::omit_empty(
                "Image",
                "image",
                Value::Map(BTreeMap::from([
                    (
                        "linux/amd64".into(),
                        Value::Map(BTreeMap::from([(
                            "os".into(),
                            Value::String("linux".into()),
                        )])),
                    ),
                    ("linux/arm64".into(), Value::Map(BTreeMap::new())),
                ])),
            ),
        ])
    }

    fn run(template: &str) -> String {
        Template::parse(template)
            .and_then(|t| t.execute(&data()))
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn fields_json_and_printing() {
        assert_eq!(run("{{.Name}}"), "r/x:1");
        assert_eq!(
            run("{{ .Manifest.Size }} {{.Manifest.MediaType}}"),
            "12 a<b"
        );
        assert_eq!(
            run("{{json .Manifest}}"),
            "{\n  \"mediaType\": \"a\\u003cb\",\n  \"size\": 12,\n  \"manifests\": [\n    {\n      \"Digest\": \"d1\"\n    },\n    {\n      \"Digest\": \"d2\"\n    }\n  ]\n}"
        );
        assert_eq!(
            run("{{.Manifest.Manifests}}"),
            "[map[Digest:d1] map[Digest:d2]]"
        );
        assert_eq!(run("{{.Image.nothing}}"), "<no value>");
        assert_eq!(
            run("{{.Manifest.Nope}}"),
            "error: executing at <.Manifest.Nope>: can't evaluate field Nope"
        );
    }

    #[test]
    fn range_if_with_and_variables() {
        assert_eq!(
            run("{{range .Manifest.Manifests}}{{.Digest}}\n{{end}}"),
            "d1\nd2\n"
        );
        assert_eq!(
            run(
                "{{range $p, $img := .Image}}{{$p}}={{if $img.os}}{{$img.os}}{{else}}none{{end}};{{end}}"
            ),
            "linux/amd64=linux;linux/arm64=none;"
        );
        assert_eq!(run("{{with .Manifest}}{{.Size}}{{end}}"), "12");
        assert_eq!(
            run("{{$n := .Name}}{{$n}}-{{len .Manifest.Manifests}}"),
            "r/x:1-2"
        );
        assert_eq!(run("{{(index .Image \"linux/amd64\").os}}"), "linux");
        assert_eq!(
            run("{{index .Image \"linux/amd64\" | json}}"),
            "{\n  \"os\": \"linux\"\n}"
        );
        assert_eq!(
            run("{{if eq .Manifest.Size 12}}twelve{{else if gt .Manifest.Size 1}}big{{end}}"),
            "twelve"
        );
        assert_eq!(
            run("{{if eq .Manifest.Size 3}}three{{else if gt .Manifest.Size 1}}big{{end}}"),
            "big"
        );
        assert_eq!(run("a {{- /* gone */ -}} b\n{{- \" c\"}}"), "ab c");
        assert_eq!(run("{{printf \"%s:%d\" .Name .Manifest.Size}}"), "r/x:1:12");
        assert_eq!(
            run("{{range .Manifest.URLs}}x{{else}}no urls{{end}}"),
            "no urls"
        );
        assert!(run("{{range .Name}}").starts_with("error:"));
        assert!(run("{{template \"x\"}}").starts_with("error:"));
    }

    #[test]
    fn times_as_go_writes_them() {
        assert_eq!(
            rfc3339_nano("2024-01-02T03:04:05.120000000Z"),
            "2024-01-02T03:04:05.12Z"
        );
        assert_eq!(
            rfc3339_nano("2024-01-02T03:04:05+00:00"),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(
            go_time_string("2024-01-02T03:04:05Z"),
            "2024-01-02 03:04:05 +0000 UTC"
        );
    }
}
