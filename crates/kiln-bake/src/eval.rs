//! Parsing definition files into blocks, and evaluating variables with their
//! environment overrides, types and validations.

use std::collections::BTreeMap;

use hcl::eval::Context;
use hcl::{Body, Expression, Value};

use crate::calls::{self, Functions, UserFunction};
use crate::compose;
use crate::files::Source;
use crate::{Error, funcs};

/// A `target` or `group` block: its attributes in order (later files override earlier
/// ones attribute by attribute).
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

    /// A later definition of the same block: its attributes win, except that map
    /// attributes keep both definitions, merged key by key when evaluated.
    fn merge(&mut self, other: &Block) {
        for (k, e) in &other.attrs {
            if !is_map_attr(k) {
                self.attrs.retain(|(key, _)| key != k);
            }
            self.attrs.push((k.clone(), e.clone()));
        }
    }
}

/// Target attributes whose maps merge key by key across definitions and `inherits`.
pub(crate) fn is_map_attr(key: &str) -> bool {
    matches!(key, "args" | "labels" | "contexts" | "extra-hosts")
}

/// Every file's blocks, merged, with the variables evaluated.
#[derive(Debug, Clone, Default)]
pub(crate) struct Definition {
    pub(crate) targets: BTreeMap<String, Block>,
    /// Target names in order of first definition.
    pub(crate) target_order: Vec<String>,
    pub(crate) groups: BTreeMap<String, Block>,
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
    validations: Vec<(Expression, Option<Expression>)>,
    /// The last `variable` block's `description` (buildx keeps the last block).
    pub(crate) description: Option<Expression>,
    /// Declared by a `variable` block (not only a top-level attribute).
    pub(crate) block: bool,
}

/// HCL's JSON form turned into HCL text: object keys are labels or attributes, strings
/// keep their `${}` templates.
fn json_to_hcl(value: &serde_json::Value) -> Result<String, Error> {
    fn expr(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => format!(
                "\"{}\"",
                s.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            ),
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

/// An HCL identifier: a letter or `_`, then letters, digits, `_` and `-`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// `Summary; Detail` from an hcl-rs parse error (buildx prints HCL diagnostics so).
/// `<<-` heredocs rewritten as plain `<<` ones with the indentation removed the way Go's
/// HCL removes it: by the smallest indent of the lines that start with text; a line
/// that starts with a `%{`/`${` sequence keeps its leading whitespace.
fn flush_heredocs(text: &str) -> String {
    let is_text_line = |line: &str| {
        let body = line.trim_start();
        !body.is_empty() && !body.starts_with("%{") && !body.starts_with("${")
    };
    let indent = |line: &str| line.len() - line.trim_start_matches([' ', '\t']).len();
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
        let body = &lines[i..end];
        let strip = body
            .iter()
            .filter(|l| is_text_line(l))
            .map(|l| indent(l))
            .min()
            .unwrap_or(0);
        let mut flushed = String::new();
        for l in body {
            if is_text_line(l) {
                flushed.push_str(&l[strip..]);
            } else {
                flushed.push_str(l);
            }
        }
        out.push_str(&format!("{head}<<{marker}\n"));
        out.push_str(&apply_strip_markers(&flushed));
        out.push_str(lines[end]);
        i = end + 1;
    }
    out
}

/// Template strip markers (`~}` eats the whitespace after a sequence, `%{~`/`${~` the
/// whitespace before it) applied to the text, since hcl-rs misses some (after `endfor`).
/// The body's final newline stays: it belongs to the heredoc.
fn apply_strip_markers(body: &str) -> String {
    static AFTER: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"~\}[ \t\r\n]*").expect("valid regex"));
    static BEFORE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"[ \t\r\n]*([%$])\{~").expect("valid regex")
    });
    let (content, newline) = match body.strip_suffix('\n') {
        Some(content) => (content, "\n"),
        None => (body, ""),
    };
    let stripped = AFTER.replace_all(content, "}");
    let stripped = BEFORE.replace_all(&stripped, "$1{");
    format!("{stripped}{newline}")
}

/// A parse error as buildx words it: `file:line,column: Summary; Detail.`
fn parse_error(name: &str, error: &hcl::Error) -> Error {
    let hcl::Error::Parse(parse) = error else {
        return Error::Hcl(format!("{name}: {error}"));
    };
    let at = parse.location();
    let message = parse.message();
    let summary = if message.contains("expected `]`") {
        "Missing item separator; Expected a comma to mark the beginning of the next item."
            .to_owned()
    } else if message.contains("expected `}`") {
        "Missing attribute separator; Expected a newline or comma to mark the beginning of the next attribute."
            .to_owned()
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
        for source in sources {
            let text = if source.name.ends_with(".json") {
                let json: serde_json::Value = serde_json::from_str(&source.text)
                    .map_err(|e| Error::Hcl(format!("{}: {e}", source.name)))?;
                json_to_hcl(&json)?
            } else if source.name.ends_with(".yml") || source.name.ends_with(".yaml") {
                json_to_hcl(&compose::to_bake_json(source, compose_env)?)?
            } else {
                flush_heredocs(&source.text)
            };
            let body: Body = hcl::parse(&text).map_err(|e| parse_error(&source.name, &e))?;
            for block in body.blocks() {
                let name = block
                    .labels()
                    .first()
                    .map(|l| l.as_str().to_owned())
                    .unwrap_or_default();
                let attrs: Vec<(String, Expression)> = block
                    .body()
                    .attributes()
                    .map(|a| (a.key().to_owned(), a.expr().clone()))
                    .collect();
                match block.identifier() {
                    "target" => {
                        if !definition.targets.contains_key(&name) {
                            definition.target_order.push(name.clone());
                        }
                        definition
                            .targets
                            .entry(name)
                            .or_default()
                            .merge(&Block { attrs });
                    }
                    "function" => {
                        let get = |k: &str| attrs.iter().rev().find(|(key, _)| key == k);
                        let param_name = |e: &Expression| match e {
                            Expression::Variable(v) => Some(v.to_string()),
                            _ => None,
                        };
                        let params = match get("params").map(|(_, e)| e) {
                            Some(Expression::Array(items)) => {
                                items.iter().filter_map(param_name).collect()
                            }
                            _ => Vec::new(),
                        };
                        let Some((_, result)) = get("result") else {
                            return Err(Error::Hcl(format!(
                                "{}: Missing required argument; The argument \"result\" is required in function \"{name}\".",
                                source.name
                            )));
                        };
                        definition.functions.insert(
                            name,
                            UserFunction {
                                params,
                                variadic: get("variadic_param").and_then(|(_, e)| param_name(e)),
                                result: result.clone(),
                            },
                        );
                    }
                    "group" => definition
                        .groups
                        .entry(name)
                        .or_default()
                        .merge(&Block { attrs }),
                    "variable" => {
                        if !variables.contains_key(&name) {
                            variable_order.push(name.clone());
                        }
                        let variable = variables.entry(name).or_default();
                        variable.block = true;
                        variable.description = None;
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
                            let get = |k: &str| {
                                validation
                                    .body()
                                    .attributes()
                                    .find(|a| a.key() == k)
                                    .map(|a| a.expr().clone())
                            };
                            if let Some(condition) = get("condition") {
                                variable.validations.push((condition, get("error_message")));
                            }
                        }
                    }
                    _ => {}
                }
            }
            // Top-level attributes are variables too (`TAG = "x"`).
            for attr in body.attributes() {
                let name = attr.key().to_owned();
                if !variables.contains_key(&name) {
                    variable_order.push(name.clone());
                }
                variables.entry(name).or_default().default = Some(attr.expr().clone());
            }
        }
        definition.variables =
            evaluate_variables(&variables, &variable_order, env, &definition.functions)?;
        definition.declarations = variables;
        Ok(definition)
    }

    /// An evaluation context with the variables and functions.
    pub(crate) fn context(&self) -> Context<'static> {
        let mut ctx = Context::new();
        funcs::declare(&mut ctx);
        for (name, value) in &self.variables {
            ctx.declare_var(name.clone(), value.clone());
        }
        ctx
    }
}

/// The type a variable's `type` expression names.
fn type_name(kind: &Expression) -> String {
    match kind {
        Expression::Variable(v) => v.as_str().to_owned(),
        Expression::FuncCall(call) => call.name.to_string(),
        other => format!("{other:?}"),
    }
}

fn env_value(
    name: &str,
    raw: &str,
    kind: Option<&Expression>,
    default: &Value,
) -> Result<Value, Error> {
    let invalid = |what: &str| {
        Error::Hcl(format!(
            "Invalid value; failed to parse {name} as {what}: {raw}"
        ))
    };
    let parse_as = |t: &str| -> Result<Value, Error> {
        match t {
            "number" => raw
                .trim()
                .parse::<f64>()
                .map(Value::from)
                .map_err(|_| invalid("number")),
            "bool" => match raw.trim() {
                "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(Value::Bool(true)),
                "false" | "0" | "f" | "F" | "FALSE" | "False" => Ok(Value::Bool(false)),
                _ => Err(invalid("bool")),
            },
            _ => Ok(Value::String(raw.to_owned())),
        }
    };
    if let Some(kind) = kind {
        let t = type_name(kind);
        return match t.as_str() {
            "list" | "set" | "tuple" => {
                let element = match kind {
                    Expression::FuncCall(call) => call
                        .args
                        .first()
                        .map(type_name)
                        .unwrap_or_else(|| "string".to_owned()),
                    _ => "string".to_owned(),
                };
                let items: Result<Vec<Value>, Error> = if raw.is_empty() {
                    Ok(Vec::new())
                } else {
                    crate::funcs_more::csv_record(raw)
                        .iter()
                        .map(|item| {
                            if element == "string" {
                                Ok(Value::String(item.clone()))
                            } else {
                                parse_as_item(item, &element, name)
                            }
                        })
                        .collect()
                };
                Ok(Value::Array(items?))
            }
            "map" | "object" => {
                let json: serde_json::Value = serde_json::from_str(raw).map_err(|_| invalid(&t))?;
                Ok(hcl::to_value(&json).map_err(|e| Error::Hcl(e.to_string()))?)
            }
            other => parse_as(other),
        };
    }
    match default {
        Value::Bool(_) => parse_as("bool"),
        Value::Number(_) => parse_as("number"),
        Value::Array(_) => Err(Error::Hcl(format!(
            "Invalid value; unsupported type tuple for variable {name}"
        ))),
        Value::Object(_) => Err(Error::Hcl(format!(
            "Invalid value; unsupported type object for variable {name}"
        ))),
        _ => Ok(Value::String(raw.to_owned())),
    }
}

fn parse_as_item(item: &str, element: &str, name: &str) -> Result<Value, Error> {
    match element {
        "number" => item.trim().parse::<f64>().map(Value::from).map_err(|_| {
            Error::Hcl(format!(
                "Invalid value; failed to parse {name} as number: {item}"
            ))
        }),
        "bool" => match item.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(Error::Hcl(format!(
                "Invalid value; failed to parse {name} as bool: {item}"
            ))),
        },
        _ => Ok(Value::String(item.to_owned())),
    }
}

/// Evaluates every variable (defaults may refer to each other), applies environment
/// overrides, then checks validations.
fn evaluate_variables(
    variables: &BTreeMap<String, Variable>,
    order: &[String],
    env: &BTreeMap<String, String>,
    functions: &Functions,
) -> Result<BTreeMap<String, Value>, Error> {
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    let mut pending: Vec<&String> = order.iter().collect();
    loop {
        let before = pending.len();
        let mut still = Vec::new();
        for name in pending {
            let variable = &variables[name];
            let mut ctx = Context::new();
            funcs::declare(&mut ctx);
            for (k, v) in &values {
                ctx.declare_var(k.clone(), v.clone());
            }
            let default = match &variable.default {
                Some(expr) => match calls::evaluate(expr, &ctx, functions) {
                    Ok(v) => v,
                    Err(e) if e.contains("undefined variable") => {
                        still.push(name);
                        continue;
                    }
                    Err(e) => return Err(Error::Hcl(e)),
                },
                None => Value::Null,
            };
            // A typed variable may also be given as JSON in `<NAME>_JSON`.
            let json_env = variable
                .kind
                .as_ref()
                .and_then(|_| env.get(&format!("{name}_JSON")));
            let value = match (env.get(name.as_str()), json_env) {
                (Some(raw), _) => env_value(name, raw, variable.kind.as_ref(), &default)?,
                (None, Some(raw)) => {
                    let json: serde_json::Value = serde_json::from_str(raw).map_err(|e| {
                        Error::Hcl(format!("Invalid value; failed to parse {name}_JSON: {e}"))
                    })?;
                    hcl::to_value(&json).map_err(|e| Error::Hcl(e.to_string()))?
                }
                (None, None) => default,
            };
            values.insert(name.clone(), value);
        }
        if still.is_empty() {
            break;
        }
        if still.len() == before {
            return Err(Error::Hcl(format!(
                "Variables not allowed; cycle or undefined variable in {}",
                still[0]
            )));
        }
        pending = still;
    }
    for name in order {
        let mut ctx = Context::new();
        funcs::declare(&mut ctx);
        for (k, v) in &values {
            ctx.declare_var(k.clone(), v.clone());
        }
        for (condition, message) in &variables[name].validations {
            let ok = calls::evaluate(condition, &ctx, functions).map_err(Error::Hcl)?;
            if ok != Value::Bool(true) {
                let message = match message {
                    Some(m) => match calls::evaluate(m, &ctx, functions).map_err(Error::Hcl)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    },
                    None => format!("validation failed for variable {name}"),
                };
                return Err(Error::Invalid(message));
            }
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::flush_heredocs;
    use crate::funcs_more::csv_record as csv_fields;

    #[test]
    fn flush_heredocs_keep_the_indent_of_directive_lines() {
        let hcl = "x = <<-EOT\n    a\n      b\n    %{ if true ~}\n    c\n    %{ endif ~}\n  EOT\n";
        assert_eq!(
            flush_heredocs(hcl),
            "x = <<EOT\na\n  b\n    %{ if true }c\n    %{ endif }\n  EOT\n"
        );
        let plain = "x = \"<<-EOT\"\n";
        assert_eq!(flush_heredocs(plain), plain);
    }

    #[test]
    fn list_variables_from_the_environment_are_csv() {
        assert_eq!(csv_fields(r#"dev,1.0,"edge""#), ["dev", "1.0", "edge"]);
        assert_eq!(csv_fields(r#""a,b",c"#), ["a,b", "c"]);
        assert_eq!(csv_fields(r#""say ""hi""""#), [r#"say "hi""#]);
        assert_eq!(csv_fields("x,"), ["x", ""]);
    }
}
