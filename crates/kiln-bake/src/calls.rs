//! Function calls as HCL makes them, and evaluation errors in buildx's words.
//!
//! Every call is made here rather than by hcl-rs: the arguments are counted, converted
//! to the parameter's type and checked for null the way HCL's `FunctionCallExpr` and
//! go-cty's `function.Call` do, so a wrong call fails with buildx's diagnostic. User
//! `function` blocks need their own scope, `can`/`try` their argument unevaluated and
//! `convert` a type expression; the library's implementations are hcl-rs functions
//! (see `funcs.rs`), called with the checked arguments.

use std::collections::BTreeMap;

use hcl::eval::{Context, Evaluate};
use hcl::expr::{Conditional, ForExpr, FuncCall, Operation, TemplateExpr, Traversal};
use hcl::template::{Element, Template};
use hcl::{Expression, Value};

use crate::convert::{self, Type};
use crate::specs::{self, Param, ParamType};

/// A `function "name" { params = [...]; variadic_params = x; result = ... }` block.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserFunction {
    pub(crate) params: Vec<String>,
    /// `params` was given (buildx refuses a function without it).
    pub(crate) has_params: bool,
    pub(crate) variadic: Option<String>,
    pub(crate) result: Option<Expression>,
}

/// User functions by name.
pub(crate) type Functions = BTreeMap<String, UserFunction>;

std::thread_local! {
    /// The declared types of typed variables: a `map(…)` variable is a map to cty
    /// (which `length` and `index` accept), where kiln's values cannot tell a map
    /// from an object.
    static VARIABLE_TYPES: std::cell::RefCell<BTreeMap<String, Type>> =
        const { std::cell::RefCell::new(BTreeMap::new()) };
}

std::thread_local! {
    /// The variables an expression can see, for HCL's "Did you mean" suggestion.
    static KNOWN_VARIABLES: std::cell::RefCell<Vec<String>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Records the variables in scope (for suggestions in unknown-variable errors).
pub(crate) fn set_known_variables(names: impl IntoIterator<Item = String>) {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    KNOWN_VARIABLES.with(|k| *k.borrow_mut() = names);
}

/// Records the declared types of the typed variables.
pub(crate) fn set_variable_types(types: BTreeMap<String, Type>) {
    VARIABLE_TYPES.with(|t| *t.borrow_mut() = types);
}

/// The declared type of what an argument expression names, when it is a typed
/// variable.
fn declared_type(expr: &Expression) -> Option<Type> {
    let Expression::Variable(v) = expr else {
        return None;
    };
    VARIABLE_TYPES.with(|t| t.borrow().get(v.as_str()).cloned())
}

/// The calls whose result depends on a map being a map: made here for a typed map.
fn call_on_map(name: &str, args: &[Value]) -> Option<Result<Value, String>> {
    let Value::Object(map) = args.first()? else {
        return None;
    };
    Some(match (name, args.get(1)) {
        ("length", _) => Ok(Value::from(map.len() as u64)),
        ("index", Some(key)) => match crate::model::scalar_string(key).and_then(|k| map.get(&k)) {
            Some(v) => Ok(v.clone()),
            None => Err(
                "Error in function call; Call to function \"index\" failed: invalid index."
                    .to_owned(),
            ),
        },
        ("hasindex", Some(key)) => Ok(Value::Bool(
            crate::model::scalar_string(key).is_some_and(|k| map.contains_key(&k)),
        )),
        _ => return None,
    })
}

/// The marker that starts an implementation's error about one argument:
/// `ARG_ERROR`, the argument's index, `ARG_ERROR`, the message.
pub(crate) const ARG_ERROR: char = '\u{1}';

/// An implementation's error about argument `index` (go-cty's `NewArgError`).
pub(crate) fn arg_error(index: usize, message: impl std::fmt::Display) -> String {
    format!("{ARG_ERROR}{index}{ARG_ERROR}{message}")
}

/// Evaluates `expr` in `ctx`; errors are `Summary; Detail` as buildx prints them.
pub(crate) fn evaluate(
    expr: &Expression,
    ctx: &Context<'_>,
    functions: &Functions,
) -> Result<Value, String> {
    let value = expand(expr, ctx, functions)?
        .evaluate(ctx)
        .map_err(|e| describe(&e, functions))?;
    Ok(dedup_keys(value))
}

/// Object keys a file defined twice (renamed when parsed) merged back: the last
/// definition wins, as in HCL.
fn dedup_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            if !map.keys().any(|k| k.contains(crate::eval::DUPLICATE_KEY)) {
                return Value::Object(map.into_iter().map(|(k, v)| (k, dedup_keys(v))).collect());
            }
            let mut out = hcl::Map::new();
            for (k, v) in map {
                let key = match k.split_once(crate::eval::DUPLICATE_KEY) {
                    Some((base, _)) => base.to_owned(),
                    None => k,
                };
                out.insert(key, dedup_keys(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(dedup_keys).collect()),
        other => other,
    }
}

/// An hcl-rs evaluation error as HCL's diagnostic.
fn describe(error: &hcl::eval::Error, functions: &Functions) -> String {
    use hcl::eval::ErrorKind;
    match error.kind() {
        ErrorKind::UndefinedVar(name) => {
            let hint = KNOWN_VARIABLES.with(|k| {
                let known = k.borrow();
                crate::eval::name_suggestion(name.as_str(), known.iter().map(String::as_str))
                    .map(|s| format!(" Did you mean \"{s}\"?"))
                    .unwrap_or_default()
            });
            format!("Unknown variable; There is no variable named \"{name}\".{hint}")
        }
        ErrorKind::UndefinedFunc(name) => unknown_function(&name.to_string(), functions),
        ErrorKind::FuncCall(name, message) => call_error(&name.to_string(), message),
        ErrorKind::NoSuchKey(key) => format!(
            "Unsupported attribute; This object does not have an attribute named \"{key}\"."
        ),
        ErrorKind::Index(_) => {
            "Invalid index; The given key does not identify an element in this collection value."
                .to_owned()
        }
        ErrorKind::UnaryOp(_, _) | ErrorKind::BinaryOp(_, _, _) => {
            format!("Invalid operand; {}", error.kind())
        }
        ErrorKind::Unexpected(Value::Null, _) => {
            "Attempt to get attribute from null value; This value is null, so it does not have any attributes."
                .to_owned()
        }
        other => other.to_string(),
    }
}

/// `Call to unknown function`, with HCL's suggestion.
fn unknown_function(name: &str, functions: &Functions) -> String {
    let mut names: Vec<&str> = specs::names().collect();
    names.extend(functions.keys().map(String::as_str));
    names.sort_unstable();
    let hint = crate::eval::name_suggestion(name, names)
        .map(|s| format!(" Did you mean \"{s}\"?"))
        .unwrap_or_default();
    format!("Call to unknown function; There is no function named \"{name}\".{hint}")
}

/// An implementation's error as HCL's diagnostic for the call.
fn call_error(name: &str, message: &str) -> String {
    if let Some(rest) = message.strip_prefix(ARG_ERROR)
        && let Some((index, text)) = rest.split_once(ARG_ERROR)
    {
        let index: usize = index.parse().unwrap_or(0);
        if let Some(param) = specs::param(name, index) {
            return format!(
                "Invalid function argument; Invalid value for \"{}\" parameter: {text}.",
                param.name
            );
        }
        return format!("Error in function call; Call to function \"{name}\" failed: {text}.");
    }
    format!("Error in function call; Call to function \"{name}\" failed: {message}.")
}

/// Whether `expr` needs evaluating here (anything but a literal or a variable:
/// calls, templates, operators and conditionals may sit anywhere inside).
fn needs_expansion(expr: &Expression) -> bool {
    !matches!(
        expr,
        Expression::Null
            | Expression::Bool(_)
            | Expression::Number(_)
            | Expression::String(_)
            | Expression::Variable(_)
    )
}

fn expand(
    expr: &Expression,
    ctx: &Context<'_>,
    functions: &Functions,
) -> Result<Expression, String> {
    if !needs_expansion(expr) {
        return Ok(expr.clone());
    }
    let value = |v: Value| Ok(Expression::from(v));
    match expr {
        Expression::FuncCall(call) if call.name.namespace.is_empty() => {
            value(call_function(call, ctx, functions)?)
        }
        Expression::Array(items) => Ok(Expression::Array(
            items
                .iter()
                .map(|i| expand(i, ctx, functions))
                .collect::<Result<_, _>>()?,
        )),
        Expression::Object(object) => {
            let mut out = object.clone();
            for v in out.values_mut() {
                *v = expand(v, ctx, functions)?;
            }
            Ok(Expression::Object(out))
        }
        Expression::Parenthesis(inner) => expand(inner, ctx, functions),
        Expression::Conditional(c) => {
            let Conditional {
                cond_expr,
                true_expr,
                false_expr,
            } = c.as_ref();
            // Only the branch taken is expanded: the other may fail by design.
            match evaluate(cond_expr, ctx, functions)? {
                Value::Bool(true) => expand(true_expr, ctx, functions),
                Value::Bool(false) => expand(false_expr, ctx, functions),
                Value::String(s) if s == "true" => expand(true_expr, ctx, functions),
                Value::String(s) if s == "false" => expand(false_expr, ctx, functions),
                Value::Null => Err(
                    "Null condition; The condition value is null. Conditions must either be true or false."
                        .to_owned(),
                ),
                _ => Err(
                    "Incorrect condition type; The condition expression must be of type bool."
                        .to_owned(),
                ),
            }
        }
        Expression::Operation(op) => value(operation(op, ctx, functions)?),
        Expression::Traversal(t) => {
            let Traversal { expr, operators } = t.as_ref();
            Ok(Expression::Traversal(Box::new(Traversal {
                expr: expand(expr, ctx, functions)?,
                operators: operators.clone(),
            })))
        }
        Expression::ForExpr(f) => value(evaluate_for(f, ctx, functions)?),
        Expression::TemplateExpr(t) => expand_template(t, ctx, functions),
        other => Ok(other.clone()),
    }
}

/// An operator applied as HCL applies it: both operands evaluated, converted to the
/// operator's parameter type (so `"5" + 1` is 6), `==`/`!=` comparing type and value.
fn operation(op: &Operation, ctx: &Context<'_>, functions: &Functions) -> Result<Value, String> {
    use hcl::expr::{BinaryOperator as B, UnaryOperator as U};
    let number = |v: &Value, side: &str| -> Result<Option<f64>, String> {
        match convert::convert(v, &Type::Number) {
            Ok(Value::Null) => Ok(None),
            Ok(Value::Number(n)) => Ok(n.as_f64()),
            Ok(_) => Ok(None),
            Err(e) => Err(format!(
                "Invalid operand; Unsuitable value for {side} operand: {e}."
            )),
        }
    };
    let boolean = |v: &Value, side: &str| -> Result<Option<bool>, String> {
        match convert::convert(v, &Type::Bool) {
            Ok(Value::Bool(b)) => Ok(Some(b)),
            Ok(_) => Ok(None),
            Err(e) => Err(format!(
                "Invalid operand; Unsuitable value for {side} operand: {e}."
            )),
        }
    };
    let null_operand =
        || "Operation failed; Error during operation: argument must not be null.".to_owned();
    match op {
        Operation::Unary(u) => {
            let v = evaluate(&u.expr, ctx, functions)?;
            match u.operator {
                U::Neg => number(&v, "unary")?
                    .map(|n| crate::funcs::num(-n))
                    .ok_or_else(null_operand),
                U::Not => boolean(&v, "unary")?
                    .map(|b| Value::Bool(!b))
                    .ok_or_else(null_operand),
            }
        }
        Operation::Binary(b) => {
            let lhs = evaluate(&b.lhs_expr, ctx, functions)?;
            let rhs = evaluate(&b.rhs_expr, ctx, functions)?;
            match b.operator {
                B::Eq => Ok(Value::Bool(crate::funcs::equal(&lhs, &rhs))),
                B::NotEq => Ok(Value::Bool(!crate::funcs::equal(&lhs, &rhs))),
                B::And | B::Or => {
                    let l = boolean(&lhs, "left");
                    let r = boolean(&rhs, "right");
                    let (l, r) = (l?, r?);
                    let (Some(l), Some(r)) = (l, r) else {
                        return Err(null_operand());
                    };
                    Ok(Value::Bool(if b.operator == B::And {
                        l && r
                    } else {
                        l || r
                    }))
                }
                _ => {
                    let l = number(&lhs, "left");
                    let r = number(&rhs, "right");
                    let (l, r) = (l?, r?);
                    let (Some(l), Some(r)) = (l, r) else {
                        return Err(null_operand());
                    };
                    Ok(match b.operator {
                        B::Less => Value::Bool(l < r),
                        B::LessEq => Value::Bool(l <= r),
                        B::Greater => Value::Bool(l > r),
                        B::GreaterEq => Value::Bool(l >= r),
                        B::Plus => crate::funcs::num(l + r),
                        B::Minus => crate::funcs::num(l - r),
                        B::Mul => crate::funcs::num(l * r),
                        B::Div => crate::funcs::num(l / r),
                        _ => crate::funcs::num(l % r),
                    })
                }
            }
        }
    }
}

/// The argument values of a call, the last one spread when it ends with `...`.
fn arguments(
    call: &FuncCall,
    ctx: &Context<'_>,
    functions: &Functions,
) -> Result<Vec<Value>, String> {
    let mut args = call
        .args
        .iter()
        .map(|a| evaluate(a, ctx, functions))
        .collect::<Result<Vec<_>, _>>()?;
    if call.expand_final {
        match args.pop() {
            Some(Value::Array(last)) => args.extend(last),
            Some(Value::Null) => {
                return Err(
                    "Invalid expanding argument value; The expanding argument (indicated by ...) must not be null."
                        .to_owned(),
                );
            }
            Some(_) => {
                return Err(
                    "Invalid expanding argument value; The expanding argument (indicated by ...) must be of a tuple, list, or set type."
                        .to_owned(),
                );
            }
            None => {}
        }
    }
    Ok(args)
}

/// HCL's argument count check: `Not enough function arguments` / `Too many …`.
fn check_arity(name: &str, params: &[&str], variadic: bool, given: usize) -> Result<(), String> {
    if given < params.len() {
        let qual = if variadic { " at least" } else { "" };
        return Err(format!(
            "Not enough function arguments; Function \"{name}\" expects{qual} {} argument(s). Missing value for \"{}\".",
            params.len(),
            params[given]
        ));
    }
    if !variadic && given > params.len() {
        return Err(format!(
            "Too many function arguments; Function \"{name}\" expects only {} argument(s).",
            params.len()
        ));
    }
    Ok(())
}

fn call_function(
    call: &FuncCall,
    ctx: &Context<'_>,
    functions: &Functions,
) -> Result<Value, String> {
    let name = call.name.name.as_str();
    match name {
        "can" => {
            let ok = match call.args.as_slice() {
                [arg] => evaluate(arg, ctx, functions).is_ok(),
                _ => {
                    return check_arity(name, &["expression"], false, call.args.len())
                        .map(|()| Value::Null);
                }
            };
            return Ok(Value::Bool(ok));
        }
        "try" => {
            if call.args.is_empty() {
                return Err(
                    "Error in function call; Call to function \"try\" failed: at least one argument is required."
                        .to_owned(),
                );
            }
            let mut detail = String::from("no expression succeeded:\n");
            for arg in &call.args {
                match evaluate(arg, ctx, functions) {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        let (summary, text) = e.split_once("; ").unwrap_or((e.as_str(), ""));
                        detail.push_str(&format!("- {summary}\n  {text}\n"));
                    }
                }
            }
            detail.push_str("\nAt least one expression must produce a successful result");
            return Err(format!(
                "Error in function call; Call to function \"try\" failed: {detail}."
            ));
        }
        "convert" => return call_convert(call, ctx, functions),
        _ => {}
    }
    if let Some(function) = functions.get(name) {
        let args = arguments(call, ctx, functions)?;
        return call_user(name, function, args, ctx, functions);
    }
    let Some((params, variadic)) = specs::spec(name) else {
        return Err(unknown_function(name, functions));
    };
    let mut args = arguments(call, ctx, functions)?;
    let names: Vec<&str> = params.iter().map(|p| p.name).collect();
    check_arity(name, &names, variadic.is_some(), args.len())?;
    if matches!(name, "length" | "index" | "hasindex")
        && matches!(
            call.args.first().and_then(declared_type),
            Some(Type::Map(_))
        )
        && let Some(result) = call_on_map(name, &args)
    {
        return result;
    }
    for (i, arg) in args.iter_mut().enumerate() {
        let param: &Param = params.get(i).or(variadic.as_ref()).expect("arity checked");
        *arg = convert_argument(arg, param)?;
    }
    for (i, arg) in args.iter().enumerate() {
        let param: &Param = params.get(i).or(variadic.as_ref()).expect("arity checked");
        if matches!(arg, Value::Null) && !param.allow_null {
            return Err(format!(
                "Invalid function argument; Invalid value for \"{}\" parameter: argument must not be null.",
                param.name
            ));
        }
    }
    let call = FuncCall {
        name: call.name.clone(),
        args: args.into_iter().map(Expression::from).collect(),
        expand_final: false,
    };
    Expression::FuncCall(Box::new(call))
        .evaluate(ctx)
        .map_err(|e| describe(&e, functions))
}

/// HCL's conversion of an argument to its parameter's type.
fn convert_argument(value: &Value, param: &Param) -> Result<Value, String> {
    let ty = match param.ty {
        ParamType::Any => return Ok(value.clone()),
        ParamType::String => Type::String,
        ParamType::Number => Type::Number,
        ParamType::Bool => Type::Bool,
        ParamType::ListOfString => Type::List(Box::new(Type::String)),
        ParamType::List => Type::List(Box::new(Type::Any)),
        ParamType::Set => Type::Set(Box::new(Type::Any)),
    };
    convert::convert(value, &ty).map_err(|e| {
        format!(
            "Invalid function argument; Invalid value for \"{}\" parameter: {e}.",
            param.name
        )
    })
}

/// `convert(value, type)`, its type argument read as a type expression.
fn call_convert(
    call: &FuncCall,
    ctx: &Context<'_>,
    functions: &Functions,
) -> Result<Value, String> {
    check_arity("convert", &["value", "type"], false, call.args.len())?;
    let [value, ty] = call.args.as_slice() else {
        unreachable!("arity checked");
    };
    let ty = convert::parse_type(ty)?;
    let value = evaluate(value, ctx, functions)?;
    convert::convert(&value, &ty).map_err(|e| {
        format!("Invalid function argument; Invalid value for \"value\" parameter: {e}.")
    })
}

fn call_user(
    name: &str,
    function: &UserFunction,
    mut args: Vec<Value>,
    ctx: &Context<'_>,
    functions: &Functions,
) -> Result<Value, String> {
    let params: Vec<&str> = function.params.iter().map(String::as_str).collect();
    check_arity(name, &params, function.variadic.is_some(), args.len())?;
    // User function parameters are go-cty parameters that do not allow null.
    for (i, arg) in args.iter().enumerate() {
        if matches!(arg, Value::Null) {
            let param = params
                .get(i)
                .copied()
                .or(function.variadic.as_deref())
                .unwrap_or_default();
            return Err(format!(
                "Invalid function argument; Invalid value for \"{param}\" parameter: argument must not be null."
            ));
        }
    }
    let rest = args.split_off(params.len());
    let mut scope = ctx.clone();
    for (param, arg) in function.params.iter().zip(args) {
        scope.declare_var(param.clone(), arg);
    }
    if let Some(variadic) = &function.variadic {
        scope.declare_var(variadic.clone(), Value::Array(rest));
    }
    let Some(result) = &function.result else {
        return Err(format!(
            "Invalid function; empty result not allowed for {name}"
        ));
    };
    evaluate(result, &scope, functions)
}

/// A `for` expression, evaluated here so the calls in it are made here.
fn evaluate_for(f: &ForExpr, ctx: &Context<'_>, functions: &Functions) -> Result<Value, String> {
    let entries: Vec<(Value, Value)> = match evaluate(&f.collection_expr, ctx, functions)? {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Value::from(i as u64), v))
            .collect(),
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries
                .into_iter()
                .map(|(k, v)| (Value::String(k), v))
                .collect()
        }
        Value::Null => {
            return Err(
                "Iteration over null value; A null value cannot be used as the collection in a 'for' expression."
                    .to_owned(),
            );
        }
        other => {
            return Err(format!(
                "Iteration over non-iterable value; A value of type {} cannot be used as the collection in a 'for' expression.",
                type_name(&other)
            ));
        }
    };
    let mut list = Vec::new();
    let mut object: hcl::Map<String, Value> = hcl::Map::new();
    for (key, item) in entries {
        let mut scope = ctx.clone();
        if let Some(key_var) = &f.key_var {
            scope.declare_var(key_var.clone(), key);
        }
        scope.declare_var(f.value_var.clone(), item);
        if let Some(cond) = &f.cond_expr {
            match evaluate(cond, &scope, functions)? {
                Value::Bool(true) => {}
                Value::Bool(false) => continue,
                Value::Null => {
                    return Err(
                        "Condition is null; The value of the 'if' clause must not be null."
                            .to_owned(),
                    );
                }
                _ => {
                    return Err(
                        "Invalid 'for' condition; The 'if' clause value is invalid: bool required."
                            .to_owned(),
                    );
                }
            }
        }
        let v = evaluate(&f.value_expr, &scope, functions)?;
        match &f.key_expr {
            None => list.push(v),
            Some(key_expr) => {
                let k = match evaluate(key_expr, &scope, functions)? {
                    Value::Null => {
                        return Err(
                            "Invalid object key; Key expression in 'for' expression must not produce a null value."
                                .to_owned(),
                        );
                    }
                    other => crate::model::scalar_string(&other).ok_or_else(|| {
                        "Invalid object key; The key expression produced an invalid result: string required."
                            .to_owned()
                    })?,
                };
                if f.grouping {
                    match object.entry(k).or_insert_with(|| Value::Array(Vec::new())) {
                        Value::Array(group) => group.push(v),
                        _ => unreachable!("grouped values are arrays"),
                    }
                } else {
                    if object.contains_key(&k) {
                        return Err(format!(
                            "Duplicate object key; Two different items produced the key \"{k}\" in this 'for' expression. If duplicates are expected, use the ellipsis (...) after the value expression to enable grouping by key."
                        ));
                    }
                    object.insert(k, v);
                }
            }
        }
    }
    Ok(match f.key_expr {
        None => Value::Array(list),
        Some(_) => Value::Object(object),
    })
}

/// cty's friendly name for a value's type.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "dynamic",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "tuple",
        Value::Object(_) => "object",
    }
}

/// A template made only of text and interpolations is evaluated piece by piece;
/// one with directives is left to hcl-rs.
fn expand_template(
    t: &TemplateExpr,
    ctx: &Context<'_>,
    functions: &Functions,
) -> Result<Expression, String> {
    let template = Template::from_expr(t).map_err(|e| e.to_string())?;
    // A template that is one interpolation is that value, unconverted (HCL's
    // `TemplateWrapExpr`): `"${x}"` may be null, a number or a list.
    if let [Element::Interpolation(i)] = template.elements() {
        return Ok(Expression::from(evaluate(&i.expr, ctx, functions)?));
    }
    let mut out = String::new();
    for element in template.elements() {
        match element {
            Element::Literal(text) => out.push_str(text),
            Element::Interpolation(i) => match evaluate(&i.expr, ctx, functions)? {
                Value::String(s) => out.push_str(&s),
                Value::Number(n) => out.push_str(&crate::model::number_text(&n)),
                Value::Bool(b) => out.push_str(&b.to_string()),
                Value::Null => {
                    return Err(
                        "Invalid template interpolation value; The expression result is null. Cannot include a null value in a string template."
                            .to_owned(),
                    );
                }
                other => {
                    return Err(format!(
                        "Invalid template interpolation value; Cannot include the given value in a string template: string required, but have {}.",
                        type_name(&other)
                    ));
                }
            },
            Element::Directive(_) => return Ok(Expression::TemplateExpr(Box::new(t.clone()))),
        }
    }
    Ok(Expression::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str, functions: &Functions) -> Result<Value, String> {
        let body: hcl::Body = hcl::parse(&format!("x = {src}")).unwrap();
        let expr = body.attributes().next().unwrap().expr().clone();
        let mut ctx = Context::new();
        crate::funcs::declare(&mut ctx);
        ctx.declare_var("V", "1.2");
        evaluate(&expr, &ctx, functions)
    }

    fn function(params: &[&str], variadic: Option<&str>, result: &str) -> UserFunction {
        let body: hcl::Body = hcl::parse(&format!("r = {result}")).unwrap();
        UserFunction {
            params: params.iter().map(|p| (*p).to_owned()).collect(),
            has_params: true,
            variadic: variadic.map(str::to_owned),
            result: Some(body.attributes().next().unwrap().expr().clone()),
        }
    }

    #[test]
    fn can_and_try_see_their_argument_fail() {
        let none = Functions::new();
        assert_eq!(
            run("can(regex(\"^[0-9]+$\", V))", &none),
            Ok(Value::Bool(false))
        );
        assert_eq!(run("can(V)", &none), Ok(Value::Bool(true)));
        assert_eq!(run("try(NOPE, \"fallback\")", &none), Ok("fallback".into()));
        assert!(run("try(NOPE)", &none).is_err());
        assert_eq!(run("true ? \"ok\" : try(NOPE)", &none), Ok("ok".into()));
    }

    #[test]
    fn user_functions_get_their_own_scope() {
        let mut functions = Functions::new();
        functions.insert("tag".into(), function(&["n"], None, "\"${n}:${V}\""));
        functions.insert(
            "all".into(),
            function(&[], Some("ns"), "[for n in ns : tag(n)]"),
        );
        assert_eq!(
            run("\"img-${tag(\"a\")}\"", &functions),
            Ok("img-a:1.2".into())
        );
        assert_eq!(
            run("all(\"a\", \"b\")", &functions),
            Ok(Value::Array(vec!["a:1.2".into(), "b:1.2".into()]))
        );
        assert_eq!(run("all()", &functions), Ok(Value::Array(vec![])));
        assert_eq!(
            run("tag()", &functions).unwrap_err(),
            "Not enough function arguments; Function \"tag\" expects 1 argument(s). Missing value for \"n\"."
        );
        assert_eq!(
            run("tag(1, 2)", &functions).unwrap_err(),
            "Too many function arguments; Function \"tag\" expects only 1 argument(s)."
        );
    }

    #[test]
    fn library_calls_fail_with_hcl_diagnostics() {
        let none = Functions::new();
        assert_eq!(
            run("compact(null)", &none).unwrap_err(),
            "Invalid function argument; Invalid value for \"list\" parameter: argument must not be null."
        );
        assert_eq!(
            run("lookup({a = 1}, \"a\")", &none).unwrap_err(),
            "Not enough function arguments; Function \"lookup\" expects 3 argument(s). Missing value for \"default\"."
        );
        assert_eq!(
            run("upperr(\"a\")", &none).unwrap_err(),
            "Call to unknown function; There is no function named \"upperr\". Did you mean \"upper\"?"
        );
        assert_eq!(
            run("\"a${null}\"", &none).unwrap_err(),
            "Invalid template interpolation value; The expression result is null. Cannot include a null value in a string template."
        );
    }
}
