//! The calls hcl-rs cannot make itself: user `function` blocks (they need their own
//! scope), `can`/`try` (they need their argument unevaluated) and `convert` (its
//! second argument is a type expression). Such calls are replaced by their values
//! before hcl-rs evaluates the rest of the expression.

use std::collections::BTreeMap;

use hcl::eval::{Context, Evaluate};
use hcl::expr::{Conditional, ForExpr, FuncCall, Operation, TemplateExpr, Traversal};
use hcl::template::{Element, Template};
use hcl::{Expression, Value};

use crate::convert;

/// A `function "name" { params = [...]; variadic_param = x; result = ... }` block.
#[derive(Debug, Clone)]
pub(crate) struct UserFunction {
    pub(crate) params: Vec<String>,
    pub(crate) variadic: Option<String>,
    pub(crate) result: Expression,
}

/// User functions by name.
pub(crate) type Functions = BTreeMap<String, UserFunction>;

/// Evaluates `expr` in `ctx`, making user-function, `can`, `try` and `convert` calls on
/// the way.
pub(crate) fn evaluate(
    expr: &Expression,
    ctx: &Context<'_>,
    functions: &Functions,
) -> Result<Value, String> {
    expand(expr, ctx, functions)?
        .evaluate(ctx)
        .map_err(|e| e.to_string())
}

/// Whether `expr` calls anything this module must make (a cheap textual check: a
/// false positive only costs an evaluation done here instead of in hcl-rs).
fn needs_expansion(expr: &Expression, functions: &Functions) -> bool {
    let text = expr.to_string();
    ["can(", "try(", "convert("]
        .into_iter()
        .map(str::to_owned)
        .chain(functions.keys().map(|name| format!("{name}(")))
        .any(|call| text.contains(&call))
}

fn expand(
    expr: &Expression,
    ctx: &Context<'_>,
    functions: &Functions,
) -> Result<Expression, String> {
    if !needs_expansion(expr, functions) {
        return Ok(expr.clone());
    }
    let value = |v: Value| Ok(Expression::from(v));
    match expr {
        Expression::FuncCall(call) if call.name.namespace.is_empty() => {
            let name = call.name.name.as_str();
            match name {
                "can" => {
                    let ok = call
                        .args
                        .first()
                        .is_some_and(|a| evaluate(a, ctx, functions).is_ok());
                    value(Value::Bool(ok))
                }
                "try" => {
                    let mut last = "try: no arguments".to_owned();
                    for arg in &call.args {
                        match evaluate(arg, ctx, functions) {
                            Ok(v) => return value(v),
                            Err(e) => last = e,
                        }
                    }
                    Err(format!(
                        "Error in function call; Call to function \"try\" failed: no expression succeeded: {last}"
                    ))
                }
                "convert" => value(call_convert(call, ctx, functions)?),
                _ => {
                    let mut args = call
                        .args
                        .iter()
                        .map(|a| evaluate(a, ctx, functions))
                        .collect::<Result<Vec<_>, _>>()?;
                    if call.expand_final {
                        if let Some(Value::Array(last)) = args.pop() {
                            args.extend(last);
                        }
                    }
                    match functions.get(name) {
                        Some(function) => value(call_user(name, function, args, ctx, functions)?),
                        None => {
                            // A built-in call whose arguments held the special calls.
                            let mut call = call.clone();
                            call.args = args.into_iter().map(Expression::from).collect();
                            call.expand_final = false;
                            Ok(Expression::FuncCall(call))
                        }
                    }
                }
            }
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
                other => Err(format!(
                    "Incorrect condition type; The condition expression must be of type bool, not {other}"
                )),
            }
        }
        Expression::Operation(op) => {
            let mut op = op.as_ref().clone();
            match &mut op {
                Operation::Unary(u) => u.expr = expand(&u.expr, ctx, functions)?,
                Operation::Binary(b) => {
                    b.lhs_expr = expand(&b.lhs_expr, ctx, functions)?;
                    b.rhs_expr = expand(&b.rhs_expr, ctx, functions)?;
                }
            }
            Ok(Expression::Operation(Box::new(op)))
        }
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

/// `convert(value, type)`, its type argument read as a type expression.
fn call_convert(
    call: &FuncCall,
    ctx: &Context<'_>,
    functions: &Functions,
) -> Result<Value, String> {
    let [value, ty] = call.args.as_slice() else {
        return Err(format!(
            "Invalid number of arguments; Function \"convert\" expects 2 arguments, got {}",
            call.args.len()
        ));
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
    let fixed = function.params.len();
    let arity_ok = match function.variadic {
        Some(_) => args.len() >= fixed,
        None => args.len() == fixed,
    };
    if !arity_ok {
        return Err(format!(
            "Invalid number of arguments; Function \"{name}\" expects {fixed} argument(s), got {}",
            args.len()
        ));
    }
    let rest = args.split_off(fixed);
    let mut scope = ctx.clone();
    for (param, arg) in function.params.iter().zip(args) {
        scope.declare_var(param.clone(), arg);
    }
    if let Some(variadic) = &function.variadic {
        scope.declare_var(variadic.clone(), Value::Array(rest));
    }
    evaluate(&function.result, &scope, functions)
}

/// A `for` expression whose body makes special calls, evaluated here.
fn evaluate_for(f: &ForExpr, ctx: &Context<'_>, functions: &Functions) -> Result<Value, String> {
    let entries: Vec<(Value, Value)> = match evaluate(&f.collection_expr, ctx, functions)? {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Value::from(i as u64), v))
            .collect(),
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (Value::String(k), v))
            .collect(),
        other => return Err(format!("Iteration over non-iterable value {other}")),
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
            if evaluate(cond, &scope, functions)? != Value::Bool(true) {
                continue;
            }
        }
        let v = evaluate(&f.value_expr, &scope, functions)?;
        match &f.key_expr {
            None => list.push(v),
            Some(key_expr) => {
                let Value::String(k) = evaluate(key_expr, &scope, functions)? else {
                    return Err("Invalid object key; the key must be a string".to_owned());
                };
                if f.grouping {
                    match object.entry(k).or_insert_with(|| Value::Array(Vec::new())) {
                        Value::Array(group) => group.push(v),
                        _ => unreachable!("grouped values are arrays"),
                    }
                } else {
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

/// A template made only of text and interpolations is evaluated piece by piece;
/// one with directives is left to hcl-rs.
fn expand_template(
    t: &TemplateExpr,
    ctx: &Context<'_>,
    functions: &Functions,
) -> Result<Expression, String> {
    let template = Template::from_expr(t).map_err(|e| e.to_string())?;
    let mut out = String::new();
    for element in template.elements() {
        match element {
            Element::Literal(text) => out.push_str(text),
            Element::Interpolation(i) => match evaluate(&i.expr, ctx, functions)? {
                Value::String(s) => out.push_str(&s),
                Value::Number(n) => out.push_str(&n.to_string()),
                Value::Bool(b) => out.push_str(&b.to_string()),
                Value::Null => {}
                other => {
                    return Err(format!(
                        "Invalid template interpolation value; Cannot include {other} in a string template"
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
            variadic: variadic.map(str::to_owned),
            result: body.attributes().next().unwrap().expr().clone(),
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
        assert!(run("tag()", &functions).unwrap_err().contains("expects 1"));
    }
}
