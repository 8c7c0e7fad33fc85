//! `bake --list`: every target, group and variable the definition files declare, as
//! buildx lists them (after variables are evaluated; before `inherits` and overrides).
//!
//! Variable values are the text buildx shows: strings as they are, numbers and bools
//! as cty prints them, anything else (and anything with a declared `type`) as cty's
//! JSON of the value converted to that type.

use hcl::{Expression, Value};

use crate::calls;
use crate::convert::Type;
use crate::eval::{Definition, Variable};
use crate::{Error, target};

/// What `bake --list` shows: the definition's targets, groups and variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Every target, a matrix target once per generated name, in definition order.
    pub targets: Vec<ListedTarget>,
    /// Every group, then one per matrix target (named after it, listing the names
    /// it generated), as buildx adds them.
    pub groups: Vec<ListedGroup>,
    /// The `variable` blocks (not top-level attributes), sorted by name.
    pub variables: Vec<ListedVariable>,
    /// Only Compose files were read: buildx then has no variable list at all (its
    /// JSON is `null`, not `[]`).
    pub compose_only: bool,
}

/// A target: its name and its own `description` (not inherited).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedTarget {
    pub name: String,
    pub description: String,
}

/// A group: its name, `description` and `targets` (duplicates dropped, as written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedGroup {
    pub name: String,
    pub description: String,
    pub targets: Vec<String>,
}

/// A variable: its declared type (cty's friendly name, empty when untyped), its value
/// as text (`None` for null) and its `description`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedVariable {
    pub name: String,
    pub type_name: String,
    pub value: Option<String>,
    pub description: String,
}

/// One row of `--list=targets`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetRow {
    pub name: String,
    pub description: String,
    pub group: bool,
}

impl Listing {
    /// Targets and groups merged and sorted by name (a target before a group of the
    /// same name), private names (`_` prefix) left out; a group's description is
    /// `DESCRIPTION (a, b)`, or just `a, b`, with its targets sorted.
    pub fn target_rows(&self) -> Vec<TargetRow> {
        let targets = self.targets.iter().map(|t| TargetRow {
            name: t.name.clone(),
            description: t.description.clone(),
            group: false,
        });
        let groups = self.groups.iter().map(|g| {
            let mut members = g.targets.clone();
            members.sort();
            let names = members.join(", ");
            let description = match (g.description.is_empty(), members.is_empty()) {
                (_, true) => g.description.clone(),
                (true, false) => names,
                (false, false) => format!("{} ({names})", g.description),
            };
            TargetRow {
                name: g.name.clone(),
                description,
                group: true,
            }
        });
        let mut rows: Vec<TargetRow> = targets.chain(groups).collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows.retain(|r| !r.name.starts_with('_'));
        rows
    }
}

pub(crate) fn listing(definition: &Definition, compose_only: bool) -> Result<Listing, Error> {
    let (targets, groups) = target::list(definition)?;
    let mut variables = Vec::new();
    for (name, declared) in &definition.declarations {
        if declared.block {
            variables.push(variable(definition, name, declared)?);
        }
    }
    Ok(Listing {
        targets,
        groups,
        variables,
        compose_only,
    })
}

fn variable(
    definition: &Definition,
    name: &str,
    declared: &Variable,
) -> Result<ListedVariable, Error> {
    let description = match &declared.description {
        None => String::new(),
        Some(Expression::String(s)) => s.clone(),
        Some(expr) => {
            let value = calls::evaluate(expr, &definition.context(), &definition.functions)
                .map_err(Error::Hcl)?;
            scalar_text(&value).unwrap_or_default()
        }
    };
    let kind = declared.kind.as_ref().and_then(parse_type);
    let value = definition.variables.get(name).unwrap_or(&Value::Null);
    let text = match (&kind, value) {
        // An untyped variable without a default is the empty string in buildx.
        (None, Value::Null) if declared.kind.is_none() && declared.default.is_none() => {
            Some(String::new())
        }
        (_, Value::Null) => None,
        (Some(kind), value) => {
            let mut out = String::new();
            marshal(value, kind, &mut out);
            // buildx shows typed strings unquoted, like untyped ones.
            if *kind == Type::String {
                out = out.trim_matches('"').to_owned();
            }
            Some(out)
        }
        (None, value) => Some(match scalar_text(value) {
            Some(text) => text,
            None => {
                let mut out = String::new();
                marshal(value, &implied_type(value), &mut out);
                out
            }
        }),
    };
    Ok(ListedVariable {
        name: name.to_owned(),
        type_name: kind
            .as_ref()
            .map(Type::friendly_constraint)
            .unwrap_or_default(),
        value: text,
        description,
    })
}

/// A string, number or bool as cty converts it to a string.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(number_text(n)),
        _ => None,
    }
}

/// A number as Go's `big.Float.Text('f', -1)`: integers plainly, fractions in the
/// shortest decimal that reads back, never with an exponent.
fn number_text(n: &hcl::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        n.as_f64().map(|f| f.to_string()).unwrap_or_default()
    }
}

/// A string as Go's `json.Marshal` writes it (`<`, `>`, `&`, U+2028 and U+2029
/// escaped too).
pub fn go_json_string(s: &str) -> String {
    kiln_oci::go::json_html_escape(&serde_json::to_string(s).unwrap_or_default())
}

/// A variable's `type` (HCL's type constraint, as the evaluator reads it), or a string
/// holding one (JSON files); `None` when it is not a valid type. Object types list
/// their attributes by name, as cty keeps them.
fn parse_type(expr: &Expression) -> Option<Type> {
    match expr {
        Expression::String(text) => {
            let body: hcl::Body = hcl::parse(&format!("t = {text}")).ok()?;
            let attr = body.attributes().next()?;
            match attr.expr() {
                Expression::String(_) => None,
                inner => parse_type(inner),
            }
        }
        other => crate::convert::parse_type(other).ok().map(by_name),
    }
}

/// `kind` with every object type's attributes sorted by name.
fn by_name(kind: Type) -> Type {
    match kind {
        Type::List(e) => Type::List(Box::new(by_name(*e))),
        Type::Set(e) => Type::Set(Box::new(by_name(*e))),
        Type::Map(e) => Type::Map(Box::new(by_name(*e))),
        Type::Tuple(items) => Type::Tuple(items.into_iter().map(by_name).collect()),
        Type::Object(fields) => {
            let mut fields: Vec<(String, Type, bool)> = fields
                .into_iter()
                .map(|(k, t, optional)| (k, by_name(t), optional))
                .collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Type::Object(fields)
        }
        other => other,
    }
}

/// The type cty gives a literal value: arrays are tuples, objects are objects.
fn implied_type(value: &Value) -> Type {
    match value {
        Value::Null => Type::Any,
        Value::Bool(_) => Type::Bool,
        Value::Number(_) => Type::Number,
        Value::String(_) => Type::String,
        Value::Array(items) => Type::Tuple(items.iter().map(implied_type).collect()),
        Value::Object(map) => {
            let mut fields: Vec<(String, Type, bool)> = map
                .iter()
                .map(|(k, v)| (k.clone(), implied_type(v), false))
                .collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Type::Object(fields)
        }
    }
}

/// cty's JSON form of a type (`"string"`, `["list","number"]`, ...).
fn type_json(kind: &Type) -> String {
    match kind {
        Type::String => "\"string\"".to_owned(),
        Type::Number => "\"number\"".to_owned(),
        Type::Bool => "\"bool\"".to_owned(),
        Type::Any => "\"dynamic\"".to_owned(),
        Type::List(e) => format!("[\"list\",{}]", type_json(e)),
        Type::Set(e) => format!("[\"set\",{}]", type_json(e)),
        Type::Map(e) => format!("[\"map\",{}]", type_json(e)),
        Type::Tuple(items) => format!(
            "[\"tuple\",[{}]]",
            items.iter().map(type_json).collect::<Vec<_>>().join(",")
        ),
        Type::Object(fields) => format!(
            "[\"object\",{{{}}}]",
            fields
                .iter()
                .map(|(k, t, _)| format!("{}:{}", go_json_string(k), type_json(t)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// cty's `json.Marshal(value, kind)`: the value converted to `kind` as compact JSON;
/// where `kind` is `any` the value is wrapped with its type, `{"value":…,"type":…}`.
fn marshal(value: &Value, kind: &Type, out: &mut String) {
    if *kind == Type::Any && *value != Value::Null {
        let actual = implied_type(value);
        out.push_str("{\"value\":");
        marshal(value, &actual, out);
        out.push_str(",\"type\":");
        out.push_str(&type_json(&actual));
        out.push('}');
        return;
    }
    // Where the value does not convert, it is written as it is.
    let as_is = |out: &mut String| marshal(value, &implied_type(value), out);
    match (kind, value) {
        (_, Value::Null) => out.push_str("null"),
        (Type::String, Value::Array(_) | Value::Object(_)) => as_is(out),
        (Type::String, scalar) => {
            out.push_str(&go_json_string(&scalar_text(scalar).unwrap_or_default()));
        }
        (Type::Number, Value::Number(n)) => out.push_str(&number_text(n)),
        (Type::Number, Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(n) => match hcl::Number::from_f64(n) {
                Some(n) => out.push_str(&number_text(&n)),
                None => as_is(out),
            },
            Err(_) => as_is(out),
        },
        (Type::Bool, Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        (Type::Bool, Value::String(s)) if s == "true" || s == "false" => out.push_str(s),
        (Type::List(e), Value::Array(items)) => marshal_items(items.iter(), e, out),
        (Type::Set(e), Value::Array(items)) => {
            let mut unique: Vec<&Value> = Vec::new();
            for item in items {
                if !unique.contains(&item) {
                    unique.push(item);
                }
            }
            unique.sort_by(|a, b| set_order(a, b));
            marshal_items(unique.into_iter(), e, out);
        }
        (Type::Tuple(kinds), Value::Array(items)) if kinds.len() == items.len() => {
            out.push('[');
            for (i, (item, kind)) in items.iter().zip(kinds).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                marshal(item, kind, out);
            }
            out.push(']');
        }
        (Type::Map(e), Value::Object(map)) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&go_json_string(key));
                out.push(':');
                marshal(&map[key], e, out);
            }
            out.push('}');
        }
        (Type::Object(fields), Value::Object(map)) => {
            out.push('{');
            for (i, (key, kind, _)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&go_json_string(key));
                out.push(':');
                marshal(map.get(key).unwrap_or(&Value::Null), kind, out);
            }
            out.push('}');
        }
        _ => {
            if implied_type(value) == *kind {
                // Unreachable for consistent types; avoid recursing forever.
                out.push_str("null");
            } else {
                as_is(out);
            }
        }
    }
}

fn marshal_items<'a>(items: impl Iterator<Item = &'a Value>, kind: &Type, out: &mut String) {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        marshal(item, kind, out);
    }
    out.push(']');
}

/// cty's set order: numbers by value, strings lexically, others by their JSON.
fn set_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => {
            let (mut x, mut y) = (String::new(), String::new());
            marshal(a, &implied_type(a), &mut x);
            marshal(b, &implied_type(b), &mut y);
            x.cmp(&y)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_of(src: &str) -> Value {
        let body: hcl::Body = hcl::parse(&format!("x = {src}")).unwrap();
        let expr = body.attributes().next().unwrap().expr().clone();
        calls::evaluate(&expr, &hcl::eval::Context::new(), &Default::default()).unwrap()
    }

    fn parsed(src: &str) -> Option<Type> {
        let body: hcl::Body = hcl::parse(&format!("x = {src}")).unwrap();
        parse_type(body.attributes().next().unwrap().expr())
    }

    fn kind_of(src: &str) -> Type {
        parsed(src).unwrap()
    }

    fn typed(value: &str, kind: &str) -> String {
        let mut out = String::new();
        marshal(&value_of(value), &kind_of(kind), &mut out);
        out
    }

    #[test]
    fn type_names_are_cty_friendly_names() {
        assert_eq!(kind_of("string").friendly_constraint(), "string");
        assert_eq!(
            kind_of("list(string)").friendly_constraint(),
            "list of string"
        );
        assert_eq!(kind_of("set(bool)").friendly_constraint(), "set of bool");
        assert_eq!(
            kind_of("map(list(number))").friendly_constraint(),
            "map of list of number"
        );
        assert_eq!(
            kind_of("tuple([number, string])").friendly_constraint(),
            "tuple"
        );
        assert_eq!(
            kind_of("object({a = string})").friendly_constraint(),
            "object"
        );
        assert_eq!(
            kind_of("\"list(string)\"").friendly_constraint(),
            "list of string"
        );
        assert_eq!(kind_of("any").friendly_constraint(), "any type");
        assert_eq!(
            kind_of("list(any)").friendly_constraint(),
            "list of any single type"
        );
        assert_eq!(parsed("(list(number))"), None, "buildx refuses parentheses");
        assert_eq!(parsed("list"), None);
        assert_eq!(parsed("strin"), None);
    }

    #[test]
    fn values_marshal_like_cty_json() {
        assert_eq!(typed("[\"hello\"]", "list(string)"), r#"["hello"]"#);
        assert_eq!(
            typed("[99, \"99\", true]", "tuple([number, string, bool])"),
            r#"[99,"99",true]"#
        );
        assert_eq!(typed("{b = 1, a = 2}", "map(number)"), r#"{"a":2,"b":1}"#);
        assert_eq!(
            typed("[\"b\", \"a\", \"b\"]", "set(string)"),
            r#"["a","b"]"#
        );
        assert_eq!(typed("[1, 2]", "list(string)"), r#"["1","2"]"#);
        assert_eq!(typed("1.5", "number"), "1.5");
        assert_eq!(typed("\"<a&b>\"", "string"), r#""\u003ca\u0026b\u003e""#);
        assert_eq!(
            typed("{a = 1, z = \"x\"}", "object({z = string, a = number})"),
            r#"{"a":1,"z":"x"}"#
        );
        assert_eq!(typed("\"x\"", "any"), r#"{"value":"x","type":"string"}"#);
        assert_eq!(
            typed("[1, \"a\"]", "any"),
            r#"{"value":[1,"a"],"type":["tuple",["number","string"]]}"#
        );
        let mut out = String::new();
        marshal(
            &value_of("{foo = \"bar\", a = [1]}"),
            &implied_type(&value_of("{foo = \"bar\", a = [1]}")),
            &mut out,
        );
        assert_eq!(out, r#"{"a":[1],"foo":"bar"}"#);
    }

    #[test]
    fn numbers_print_without_exponents() {
        assert_eq!(number_text(&hcl::Number::from(99)), "99");
        assert_eq!(number_text(&hcl::Number::from(-3)), "-3");
        assert_eq!(number_text(&hcl::Number::from_f64(0.5).unwrap()), "0.5");
        assert_eq!(
            number_text(&hcl::Number::from_f64(1e-7).unwrap()),
            "0.0000001"
        );
        assert_eq!(
            number_text(&hcl::Number::from_f64(2.5e20).unwrap()),
            "250000000000000000000"
        );
    }

    #[test]
    fn target_rows_merge_sort_and_hide_private_names() {
        let listing = Listing {
            targets: vec![
                ListedTarget {
                    name: "web".into(),
                    description: "The site".into(),
                },
                ListedTarget {
                    name: "_base".into(),
                    description: "hidden".into(),
                },
                ListedTarget {
                    name: "api".into(),
                    description: String::new(),
                },
            ],
            groups: vec![
                ListedGroup {
                    name: "default".into(),
                    description: "Everything".into(),
                    targets: vec!["web".into(), "api".into()],
                },
                ListedGroup {
                    name: "ci".into(),
                    description: String::new(),
                    targets: vec!["web".into(), "api".into()],
                },
                ListedGroup {
                    name: "empty".into(),
                    description: "Nothing".into(),
                    targets: Vec::new(),
                },
            ],
            ..Listing::default()
        };
        let rows: Vec<(String, String, bool)> = listing
            .target_rows()
            .into_iter()
            .map(|r| (r.name, r.description, r.group))
            .collect();
        let row = |n: &str, d: &str, g: bool| (n.to_owned(), d.to_owned(), g);
        assert_eq!(
            rows,
            [
                row("api", "", false),
                row("ci", "api, web", true),
                row("default", "Everything (api, web)", true),
                row("empty", "Nothing", true),
                row("web", "The site", false),
            ]
        );
    }
}
