//! `convert(value, type)`: HCL's conversion of a value to a type constraint. The
//! second argument is a type expression (`string`, `list(number)`,
//! `object({ name = string, port = optional(number) })`), not a value, so
//! calls.rs makes the call with that argument unevaluated.
//!
//! kiln's values carry no cty types (a list and a tuple are both arrays, a map and
//! an object both objects), so only what shows in the value is converted:
//! primitives, element by element, attribute by attribute. Sets come out
//! deduplicated and sorted as cty orders them.

use hcl::expr::ObjectKey;
use hcl::{Expression, Value};

use crate::funcs::{Result, num, string};

/// A type constraint.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Type {
    Any,
    String,
    Number,
    Bool,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Tuple(Vec<Type>),
    /// Attributes with their types, and whether each is `optional(...)`.
    Object(Vec<(String, Type, bool)>),
}

impl Type {
    /// cty's `FriendlyName` (`any` is `dynamic`).
    pub(crate) fn friendly(&self) -> String {
        self.friendly_name(false)
    }

    /// cty's `FriendlyNameForConstraint`, how a declared type is named: `any` is
    /// `any type`, and a collection of it holds `any single type`.
    pub(crate) fn friendly_constraint(&self) -> String {
        self.friendly_name(true)
    }

    fn friendly_name(&self, constraint: bool) -> String {
        let element = |t: &Type| match t {
            Type::Any if constraint => "any single type".to_owned(),
            t => t.friendly_name(constraint),
        };
        match self {
            Type::Any if constraint => "any type".to_owned(),
            Type::Any => "dynamic".to_owned(),
            Type::List(t) => format!("list of {}", element(t)),
            Type::Set(t) => format!("set of {}", element(t)),
            Type::Map(t) => format!("map of {}", element(t)),
            other => other.name(),
        }
    }

    /// A string, number or bool.
    pub(crate) fn is_primitive(&self) -> bool {
        matches!(self, Type::String | Type::Number | Type::Bool)
    }

    /// A type buildx reads from a CSV environment value (`supportedCSVType`).
    pub(crate) fn csv_supported(&self) -> bool {
        matches!(
            self,
            Type::List(_) | Type::Set(_) | Type::Tuple(_) | Type::Map(_)
        )
    }

    /// The name cty gives the type in its "… required" messages.
    fn name(&self) -> String {
        match self {
            Type::Any => "any".to_owned(),
            Type::String => "string".to_owned(),
            Type::Number => "number".to_owned(),
            Type::Bool => "bool".to_owned(),
            Type::List(t) => format!("list of {}", t.name()),
            Type::Set(t) => format!("set of {}", t.name()),
            Type::Map(t) => format!("map of {}", t.name()),
            Type::Tuple(_) => "tuple".to_owned(),
            Type::Object(_) => "object".to_owned(),
        }
    }
}

/// HCL's `typeexpr.TypeConstraint`: a type expression read as a type.
pub(crate) fn parse_type(expr: &Expression) -> Result<Type> {
    let keyword = match expr {
        Expression::Variable(v) => v.as_str(),
        Expression::FuncCall(call) if call.name.namespace.is_empty() => call.name.name.as_str(),
        _ => {
            return Err("Invalid type specification; A type specification is either a primitive type keyword (bool, number, string) or a complex type constructor call, like list(string).".to_owned());
        }
    };
    let args = match expr {
        Expression::FuncCall(call) => Some(call.args.as_slice()),
        _ => None,
    };
    match (keyword, args) {
        ("any", None) => Ok(Type::Any),
        ("string", None) => Ok(Type::String),
        ("number", None) => Ok(Type::Number),
        ("bool", None) => Ok(Type::Bool),
        ("any" | "string" | "number" | "bool", Some(_)) => Err(format!(
            "Invalid type specification; Primitive type keyword \"{keyword}\" does not expect arguments."
        )),
        ("list" | "set" | "map", Some([element])) => {
            let element = Box::new(parse_type(element)?);
            Ok(match keyword {
                "list" => Type::List(element),
                "set" => Type::Set(element),
                _ => Type::Map(element),
            })
        }
        ("list" | "set" | "map", _) => Err(format!(
            "Invalid type specification; The {keyword} type constructor requires one argument specifying the element type."
        )),
        ("tuple", Some([Expression::Array(items)])) => {
            Ok(Type::Tuple(items.iter().map(parse_type).collect::<Result<_>>()?))
        }
        ("tuple", _) => Err("Invalid type specification; The tuple type constructor requires one argument specifying the element types as a list.".to_owned()),
        ("object", Some([Expression::Object(attrs)])) => {
            let mut out = Vec::new();
            for (key, value) in attrs {
                let name = match key {
                    ObjectKey::Identifier(id) => id.as_str().to_owned(),
                    ObjectKey::Expression(Expression::String(s)) => s.clone(),
                    _ => {
                        return Err("Invalid type specification; Object constructor map keys must be attribute names.".to_owned());
                    }
                };
                let (ty, optional) = match value {
                    Expression::FuncCall(call) if call.name.name.as_str() == "optional" => {
                        match call.args.as_slice() {
                            [inner] => (parse_type(inner)?, true),
                            _ => {
                                return Err("Invalid type specification; Optional attribute modifier expects only one argument: the attribute type.".to_owned());
                            }
                        }
                    }
                    other => (parse_type(other)?, false),
                };
                out.push((name, ty, optional));
            }
            Ok(Type::Object(out))
        }
        ("object", _) => Err("Invalid type specification; The object type constructor requires one argument specifying the attribute types as a map.".to_owned()),
        ("optional", _) => Err("Invalid type specification; Keyword \"optional\" is valid only as a modifier for object type attributes.".to_owned()),
        (_, None) => Err(format!(
            "Invalid type specification; The keyword \"{keyword}\" is not a valid type specifier."
        )),
        (_, Some(_)) => Err(format!(
            "Invalid type specification; Keyword \"{keyword}\" is not a valid type constructor."
        )),
    }
}

/// go-cty's (unsafe) conversion of `value` to `ty`.
pub(crate) fn convert(value: &Value, ty: &Type) -> Result<Value> {
    match (ty, value) {
        (_, Value::Null) | (Type::Any, _) => Ok(value.clone()),
        (Type::String, Value::String(_) | Value::Number(_) | Value::Bool(_)) => {
            string(value).map(Value::String)
        }
        (Type::Number, Value::Number(_)) | (Type::Bool, Value::Bool(_)) => Ok(value.clone()),
        (Type::Number, Value::String(s)) => match s.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(num(n)),
            _ => Err("a number is required".to_owned()),
        },
        (Type::Bool, Value::String(s)) => match s.as_str() {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ if matches!(s.to_lowercase().as_str(), "true" | "false") => Err(format!(
                "a bool is required; to convert from string, use lowercase \"{}\"",
                s.to_lowercase()
            )),
            _ => Err("a bool is required".to_owned()),
        },
        (Type::List(element) | Type::Set(element), Value::Array(items)) => {
            let kind = if matches!(ty, Type::Set(_)) {
                "set"
            } else {
                "list"
            };
            let items = unify(
                items
                    .iter()
                    .map(|v| convert(v, element))
                    .collect::<Result<_>>()?,
                element,
                kind,
            )?;
            match ty {
                Type::Set(_) => Ok(Value::Array(crate::funcs::set(&Value::Array(items))?)),
                _ => Ok(Value::Array(items)),
            }
        }
        (Type::Map(element), Value::Object(map)) => {
            let values = unify(
                map.values()
                    .map(|v| convert(v, element))
                    .collect::<Result<_>>()?,
                element,
                "map",
            )?;
            Ok(Value::Object(map.keys().cloned().zip(values).collect()))
        }
        (Type::Tuple(types), Value::Array(items)) if types.len() == items.len() => {
            Ok(Value::Array(
                items
                    .iter()
                    .zip(types)
                    .map(|(v, t)| convert(v, t))
                    .collect::<Result<_>>()?,
            ))
        }
        (Type::Object(attrs), Value::Object(map)) => {
            // Attributes the type does not name are dropped.
            let mut out = hcl::Map::new();
            for (name, attr_ty, optional) in attrs {
                let v = match map.get(name) {
                    Some(v) => convert(v, attr_ty)?,
                    None if *optional => Value::Null,
                    None => return Err(format!("attribute {name:?} is required")),
                };
                out.insert(name.clone(), v);
            }
            Ok(Value::Object(out))
        }
        _ => Err(format!("{} required", ty.name())),
    }
}

/// A collection of `any` must hold one type: mixed primitives become strings when
/// one of them is a string (cty's unification), and are an error otherwise.
fn unify(items: Vec<Value>, element: &Type, kind: &str) -> Result<Vec<Value>> {
    if *element != Type::Any {
        return Ok(items);
    }
    let kinds = |pred: fn(&Value) -> bool| items.iter().filter(|v| pred(v)).count();
    let strings = kinds(|v| matches!(v, Value::String(_)));
    let numbers = kinds(|v| matches!(v, Value::Number(_)));
    let bools = kinds(|v| matches!(v, Value::Bool(_)));
    let present = [strings, numbers, bools].iter().filter(|&&n| n > 0).count();
    if present <= 1 {
        return Ok(items);
    }
    if strings == 0
        || strings + numbers + bools + kinds(|v| matches!(v, Value::Null)) != items.len()
    {
        return Err(format!("all {kind} elements must have the same type"));
    }
    items
        .into_iter()
        .map(|v| convert(&v, &Type::String))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::calls::{Functions, evaluate};

    fn run(src: &str) -> Result<Value> {
        let body: hcl::Body = hcl::parse(&format!("x = {src}")).unwrap();
        let expr = body.attributes().next().unwrap().expr().clone();
        let mut ctx = hcl::eval::Context::new();
        crate::funcs::declare(&mut ctx);
        evaluate(&expr, &ctx, &Functions::new())
    }

    #[test]
    fn convert_follows_cty() {
        assert_eq!(run("convert(5, string)"), Ok(Value::from("5")));
        assert_eq!(run("convert(\"5\", number)"), Ok(Value::from(5)));
        assert_eq!(run("convert(\"1\", bool)"), Ok(Value::Bool(true)));
        assert_eq!(run("convert(null, string)"), Ok(Value::Null));
        assert_eq!(
            run("convert([1, \"a\"], list(string))"),
            Ok(Value::from(vec!["1", "a"]))
        );
        assert_eq!(
            run("convert([1, \"a\"], list(any))"),
            Ok(Value::from(vec!["1", "a"]))
        );
        assert_eq!(
            run("convert([\"b\", \"a\", \"b\"], set(string))"),
            Ok(Value::from(vec!["a", "b"]))
        );
        assert_eq!(
            run("convert({ a = 1, b = true }, map(string))"),
            Ok(Value::Object(
                [("a", "1"), ("b", "true")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Value::from(v)))
                    .collect()
            ))
        );
        let object = run(
            "convert({ name = \"x\", extra = 1 }, object({ name = string, port = optional(number) }))",
        )
        .unwrap();
        let Value::Object(map) = object else {
            panic!("object expected");
        };
        let map: BTreeMap<_, _> = map.into_iter().collect();
        assert_eq!(
            map,
            BTreeMap::from([
                ("name".to_owned(), Value::from("x")),
                ("port".to_owned(), Value::Null),
            ])
        );
        assert_eq!(
            run("convert([\"1\", 2], tuple([number, string]))"),
            Ok(Value::Array(vec![Value::from(1), Value::from("2")]))
        );
    }

    #[test]
    fn convert_rejects_what_cty_rejects() {
        for (src, err) in [
            ("convert(\"yes\", bool)", "a bool is required"),
            (
                "convert([1, \"a\"], tuple([string, number]))",
                "a number is required",
            ),
            ("convert([1], tuple([string, number]))", "tuple required"),
            ("convert(\"True\", bool)", "use lowercase \"true\""),
            ("convert(true, number)", "number required"),
            ("convert([1], string)", "string required"),
            ("convert({}, list(string))", "list of string required"),
            (
                "convert([1, true], list(any))",
                "all list elements must have the same type",
            ),
            (
                "convert({}, object({ a = string }))",
                "attribute \"a\" is required",
            ),
            (
                "convert(1, strin)",
                "The keyword \"strin\" is not a valid type specifier.",
            ),
            (
                "convert(1, list)",
                "The list type constructor requires one argument",
            ),
            ("convert(1, string(1))", "does not expect arguments"),
            ("convert(1, optional(string))", "valid only as a modifier"),
            ("convert(1)", "expects 2 argument(s)"),
        ] {
            let got = run(src).expect_err(src);
            assert!(got.contains(err), "{src}: {got}");
        }
    }
}
