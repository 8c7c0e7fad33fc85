//! Bake's function library (go-cty's stdlib names and behaviour): the argument
//! readers every function uses and the common functions here, the rest by theme in
//! `more` (collections, encodings, strings), `net` (CIDR) and `time`.

mod more;
mod net;
mod time;

pub(crate) use more::set;

use hcl::eval::{FuncArgs, FuncDef, ParamType};
use hcl::{Number, Value};

pub(crate) type Result<T> = std::result::Result<T, String>;

/// A library function: name, fixed parameter count, variadic or not, implementation.
pub(crate) type Entry = (&'static str, usize, bool, fn(FuncArgs) -> Result<Value>);

pub(crate) fn string(v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err("argument must not be null".to_owned()),
        other => Err(format!("string required, got {other:?}")),
    }
}

pub(crate) fn number(v: &Value) -> Result<f64> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| "number out of range".to_owned()),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("a number is required, got {s:?}")),
        other => Err(format!("number required, got {other:?}")),
    }
}

/// A whole-number argument, as go-cty converts one to a Go `int`: a fraction or a
/// value beyond 64 bits is an error.
pub(crate) fn integer(v: &Value) -> Result<i64> {
    if let Value::Number(n) = v {
        if let Some(i) = n.as_i64() {
            return Ok(i);
        }
    }
    let f = number(v)?;
    // 2^63 is the first value past i64::MAX; -2^63 is i64::MIN itself.
    if f.fract() != 0.0 || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
        return Err(format!(
            "value must be a whole number, between {} and {}",
            i64::MIN,
            i64::MAX
        ));
    }
    Ok(f as i64)
}

pub(crate) fn num(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        Value::Number(Number::from(f as i64))
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

pub(crate) fn list(v: &Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) => Ok(items.clone()),
        other => Err(format!("list required, got {other:?}")),
    }
}

pub(crate) fn all(args: &FuncArgs) -> Vec<Value> {
    args.iter().cloned().collect()
}

fn f_join(args: FuncArgs) -> Result<Value> {
    let sep = string(&args[0])?;
    let lists = &all(&args)[1..];
    if lists.is_empty() {
        return Err("at least one list is required".to_owned());
    }
    let mut parts = Vec::new();
    for (ai, l) in lists.iter().enumerate() {
        for (ei, item) in list(l)?.into_iter().enumerate() {
            if matches!(item, Value::Null) {
                return Err(crate::calls::arg_error(
                    ai + 1,
                    if lists.len() > 1 {
                        format!(
                            "element {ei} of list {} is null; cannot concatenate null values",
                            ai + 1
                        )
                    } else {
                        format!("element {ei} is null; cannot concatenate null values")
                    },
                ));
            }
            parts.push(string(&item)?);
        }
    }
    Ok(Value::String(parts.join(&sep)))
}

fn f_split(args: FuncArgs) -> Result<Value> {
    let sep = string(&args[0])?;
    let s = string(&args[1])?;
    Ok(Value::Array(
        s.split(sep.as_str())
            .map(|p| Value::String(p.to_owned()))
            .collect(),
    ))
}

fn f_replace(args: FuncArgs) -> Result<Value> {
    let s = string(&args[0])?;
    let from = string(&args[1])?;
    let to = string(&args[2])?;
    // Plain substring replacement: buildx uses go-cty's replace, which has no `/regex/` form.
    Ok(Value::String(s.replace(&from, &to)))
}

fn f_regex_replace(args: FuncArgs) -> Result<Value> {
    let s = string(&args[0])?;
    let re = regex::Regex::new(&string(&args[1])?).map_err(|e| e.to_string())?;
    let to = string(&args[2])?;
    // Go's `$1`/`${name}` replacement syntax is the regex crate's too.
    Ok(Value::String(re.replace_all(&s, to.as_str()).into_owned()))
}

fn f_regex(args: FuncArgs) -> Result<Value> {
    let re = regex::Regex::new(&string(&args[0])?).map_err(|e| e.to_string())?;
    let s = string(&args[1])?;
    let caps = re
        .captures(&s)
        .ok_or_else(|| "pattern did not match any part of the given string".to_owned())?;
    let names: Vec<Option<&str>> = re.capture_names().collect();
    if names.iter().skip(1).any(Option::is_some) {
        let mut map = hcl::Map::new();
        for name in names.iter().skip(1).flatten() {
            map.insert(
                (*name).to_owned(),
                caps.name(name)
                    .map_or(Value::Null, |m| Value::String(m.as_str().to_owned())),
            );
        }
        return Ok(Value::Object(map));
    }
    if caps.len() == 1 {
        return Ok(Value::String(caps[0].to_owned()));
    }
    Ok(Value::Array(
        caps.iter()
            .skip(1)
            .map(|m| m.map_or(Value::Null, |m| Value::String(m.as_str().to_owned())))
            .collect(),
    ))
}

fn f_regexall(args: FuncArgs) -> Result<Value> {
    let re = regex::Regex::new(&string(&args[0])?).map_err(|e| e.to_string())?;
    let s = string(&args[1])?;
    Ok(Value::Array(
        re.captures_iter(&s)
            .map(|caps| {
                if caps.len() == 1 {
                    Value::String(caps[0].to_owned())
                } else {
                    Value::Array(
                        caps.iter()
                            .skip(1)
                            .map(|m| {
                                m.map_or(Value::Null, |m| Value::String(m.as_str().to_owned()))
                            })
                            .collect(),
                    )
                }
            })
            .collect(),
    ))
}

fn f_upper(args: FuncArgs) -> Result<Value> {
    Ok(Value::String(string(&args[0])?.to_uppercase()))
}

fn f_lower(args: FuncArgs) -> Result<Value> {
    Ok(Value::String(string(&args[0])?.to_lowercase()))
}

fn f_trimspace(args: FuncArgs) -> Result<Value> {
    Ok(Value::String(string(&args[0])?.trim().to_owned()))
}

fn f_trimprefix(args: FuncArgs) -> Result<Value> {
    let s = string(&args[0])?;
    let p = string(&args[1])?;
    Ok(Value::String(
        s.strip_prefix(p.as_str()).unwrap_or(&s).to_owned(),
    ))
}

fn f_trimsuffix(args: FuncArgs) -> Result<Value> {
    let s = string(&args[0])?;
    let p = string(&args[1])?;
    Ok(Value::String(
        s.strip_suffix(p.as_str()).unwrap_or(&s).to_owned(),
    ))
}

fn f_strlen(args: FuncArgs) -> Result<Value> {
    Ok(num(string(&args[0])?.chars().count() as f64))
}

fn f_length(args: FuncArgs) -> Result<Value> {
    Ok(num(match &args[0] {
        Value::Array(a) => a.len(),
        // An object (what `{…}` and most values are) is not a collection to cty;
        // only a map (a typed variable) would be.
        _ => return Err("collection must be a list, a map or a tuple".to_owned()),
    } as f64))
}

fn f_element(args: FuncArgs) -> Result<Value> {
    let Value::Array(items) = &args[0] else {
        return Err(format!(
            "cannot read elements from {}",
            crate::calls::type_name(&args[0])
        ));
    };
    let i = integer(&args[1]).map_err(|e| format!("invalid index: {e}"))?;
    if items.is_empty() {
        return Err("cannot use element function with an empty list".to_owned());
    }
    Ok(items[i.rem_euclid(items.len() as i64) as usize].clone())
}

fn f_concat(args: FuncArgs) -> Result<Value> {
    if args.is_empty() {
        return Err("at least one argument is required".to_owned());
    }
    let mut out = Vec::new();
    for (i, l) in all(&args).into_iter().enumerate() {
        match l {
            Value::Array(items) => out.extend(items),
            other => {
                return Err(crate::calls::arg_error(
                    i,
                    format!(
                        "all arguments must be lists or tuples; got {}",
                        crate::calls::type_name(&other)
                    ),
                ));
            }
        }
    }
    Ok(Value::Array(out))
}

/// cty's equality of two values: a number and a string are never equal.
pub(crate) fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

fn f_contains(args: FuncArgs) -> Result<Value> {
    let Value::Array(items) = &args[0] else {
        return Err("argument must be list, tuple, or set".to_owned());
    };
    Ok(Value::Bool(items.iter().any(|v| equal(v, &args[1]))))
}

fn f_distinct(args: FuncArgs) -> Result<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in list(&args[0])? {
        if !out.iter().any(|o| equal(o, &v)) {
            out.push(v);
        }
    }
    Ok(Value::Array(out))
}

fn f_flatten(args: FuncArgs) -> Result<Value> {
    fn go(v: &[Value], out: &mut Vec<Value>) {
        for item in v {
            match item {
                Value::Array(inner) => go(inner, out),
                other => out.push(other.clone()),
            }
        }
    }
    let Value::Array(items) = &args[0] else {
        return Err("can only flatten lists, sets and tuples".to_owned());
    };
    let mut out = Vec::new();
    go(items, &mut out);
    Ok(Value::Array(out))
}

fn f_reverse(args: FuncArgs) -> Result<Value> {
    let mut items = list(&args[0])?;
    items.reverse();
    Ok(Value::Array(items))
}

fn f_sort(args: FuncArgs) -> Result<Value> {
    let items = list(&args[0])?;
    if let Some(i) = items.iter().position(|v| matches!(v, Value::Null)) {
        return Err(format!(
            "given list element {i} is null; a null string cannot be sorted"
        ));
    }
    let mut items: Vec<String> = items.iter().map(string).collect::<Result<_>>()?;
    items.sort();
    Ok(Value::Array(items.into_iter().map(Value::String).collect()))
}

fn f_indexof(args: FuncArgs) -> Result<Value> {
    let Value::Array(items) = &args[0] else {
        return Err("argument must be a list or tuple".to_owned());
    };
    if items.is_empty() {
        return Err("cannot search an empty list".to_owned());
    }
    items
        .iter()
        .position(|v| equal(v, &args[1]))
        .map(|i| num(i as f64))
        .ok_or_else(|| "item not found".to_owned())
}

fn f_keys(args: FuncArgs) -> Result<Value> {
    match &args[0] {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            Ok(Value::Array(
                keys.into_iter().map(|k| Value::String(k.clone())).collect(),
            ))
        }
        _ => Err(crate::calls::arg_error(0, "must have map or object type")),
    }
}

fn f_values(args: FuncArgs) -> Result<Value> {
    match &args[0] {
        Value::Object(o) => {
            let mut entries: Vec<(&String, &Value)> = o.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Ok(Value::Array(
                entries.into_iter().map(|(_, v)| v.clone()).collect(),
            ))
        }
        _ => Err("values() requires a map as the first argument".to_owned()),
    }
}

fn f_lookup(args: FuncArgs) -> Result<Value> {
    match &args[0] {
        Value::Object(o) => {
            let key = string(&args[1])?;
            Ok(o.get(&key).cloned().unwrap_or_else(|| args[2].clone()))
        }
        _ => Err(crate::calls::arg_error(
            0,
            "lookup() requires a map as the first argument",
        )),
    }
}

fn f_merge(args: FuncArgs) -> Result<Value> {
    let mut out = hcl::Map::new();
    for v in all(&args) {
        match v {
            Value::Object(o) => out.extend(o),
            Value::Null => {}
            other => {
                return Err(format!(
                    "arguments must be maps or objects, got \"{}\"",
                    crate::calls::type_name(&other)
                ));
            }
        }
    }
    Ok(Value::Object(out))
}

fn f_equal(args: FuncArgs) -> Result<Value> {
    Ok(Value::Bool(equal(&args[0], &args[1])))
}

fn f_notequal(args: FuncArgs) -> Result<Value> {
    Ok(Value::Bool(!equal(&args[0], &args[1])))
}

macro_rules! arith {
    ($name:ident, $op:expr) => {
        fn $name(args: FuncArgs) -> Result<Value> {
            let op: fn(f64, f64) -> Result<f64> = $op;
            Ok(num(op(number(&args[0])?, number(&args[1])?)?))
        }
    };
}

arith!(f_add, |a, b| Ok(a + b));
arith!(f_subtract, |a, b| Ok(a - b));
arith!(f_multiply, |a, b| Ok(a * b));
arith!(f_divide, |a, b| if b == 0.0 {
    Err("divide by zero".to_owned())
} else {
    Ok(a / b)
});
arith!(f_modulo, |a, b| if b == 0.0 {
    Err("divide by zero".to_owned())
} else {
    Ok(a % b)
});

fn f_min(args: FuncArgs) -> Result<Value> {
    if args.is_empty() {
        return Err("must pass at least one number".to_owned());
    }
    let nums: Vec<f64> = all(&args).iter().map(number).collect::<Result<_>>()?;
    Ok(num(nums.into_iter().fold(f64::INFINITY, f64::min)))
}

fn f_max(args: FuncArgs) -> Result<Value> {
    if args.is_empty() {
        return Err("must pass at least one number".to_owned());
    }
    let nums: Vec<f64> = all(&args).iter().map(number).collect::<Result<_>>()?;
    Ok(num(nums.into_iter().fold(f64::NEG_INFINITY, f64::max)))
}

fn f_floor(args: FuncArgs) -> Result<Value> {
    Ok(num(number(&args[0])?.floor()))
}

fn f_ceil(args: FuncArgs) -> Result<Value> {
    Ok(num(number(&args[0])?.ceil()))
}

fn f_basename(args: FuncArgs) -> Result<Value> {
    Ok(Value::String(
        kiln_oci::go::base_path(&string(&args[0])?).to_owned(),
    ))
}

fn f_dirname(args: FuncArgs) -> Result<Value> {
    let s = string(&args[0])?;
    let trimmed = s.trim_end_matches('/');
    Ok(Value::String(match trimmed.rsplit_once('/') {
        Some(("", _)) => "/".to_owned(),
        Some((dir, _)) => dir.to_owned(),
        None => ".".to_owned(),
    }))
}

fn f_sanitize(args: FuncArgs) -> Result<Value> {
    let s = string(&args[0])?;
    Ok(Value::String(
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
    ))
}

fn f_timestamp(_: FuncArgs) -> Result<Value> {
    Ok(Value::String("1970-01-01T00:00:00Z".to_owned()))
}

/// Go's `fmt.Sprintf` for `%s`, `%d`, `%v`, `%q`, `%f` and `%%`.
fn sprintf(format: &str, args: &[Value]) -> Result<String> {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next = args.iter();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // Go-style `%[flags][width][.precision]verb`.
        let mut flags = String::new();
        while let Some(f) = chars.next_if(|c| "-+0 #".contains(*c)) {
            flags.push(f);
        }
        let mut width = String::new();
        while let Some(d) = chars.next_if(char::is_ascii_digit) {
            width.push(d);
        }
        let mut precision: Option<usize> = None;
        if chars.next_if_eq(&'.').is_some() {
            let mut digits = String::new();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                digits.push(d);
            }
            precision = Some(digits.parse().unwrap_or(0));
        }
        let verb = chars
            .next()
            .ok_or_else(|| "format ends with %".to_owned())?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = next
            .next()
            .ok_or_else(|| "not enough arguments for format string".to_owned())?;
        let text = match verb {
            's' | 'v' => {
                // Lists, objects and null as compact JSON (go-cty's `%v`).
                let s = match arg {
                    Value::Array(_) | Value::Object(_) | Value::Null => {
                        serde_json::to_string(arg).map_err(|e| e.to_string())?
                    }
                    other => string(other)?,
                };
                match precision {
                    Some(p) => s.chars().take(p).collect(),
                    None => s,
                }
            }
            'd' => {
                let n = number(arg)? as i64;
                if flags.contains('+') && n >= 0 {
                    format!("+{n}")
                } else {
                    n.to_string()
                }
            }
            'f' => format!("{:.*}", precision.unwrap_or(6), number(arg)?),
            'x' => format!("{:x}", number(arg)? as i64),
            'X' => format!("{:X}", number(arg)? as i64),
            'q' => format!("{:?}", string(arg)?),
            other => return Err(format!("unsupported format verb %{other}")),
        };
        let width: usize = width.parse().unwrap_or(0);
        let pad = width.saturating_sub(text.chars().count());
        if flags.contains('-') {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', pad));
        } else if flags.contains('0') && matches!(verb, 'd' | 'f' | 'x' | 'X') {
            // Zeros go after the sign.
            let (sign, digits) = match text.strip_prefix(['-', '+']) {
                Some(rest) => (&text[..1], rest),
                None => ("", text.as_str()),
            };
            out.push_str(sign);
            out.extend(std::iter::repeat_n('0', pad));
            out.push_str(digits);
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&text);
        }
    }
    Ok(out)
}

fn f_format(args: FuncArgs) -> Result<Value> {
    let items = all(&args);
    Ok(Value::String(sprintf(&string(&items[0])?, &items[1..])?))
}

fn f_formatlist(args: FuncArgs) -> Result<Value> {
    let items = all(&args);
    let format = string(&items[0])?;
    let len = items[1..]
        .iter()
        .filter_map(|v| {
            if let Value::Array(a) = v {
                Some(a.len())
            } else {
                None
            }
        })
        .max()
        .unwrap_or(1);
    let mut out = Vec::new();
    for i in 0..len {
        let row: Vec<Value> = items[1..]
            .iter()
            .map(|v| {
                if let Value::Array(a) = v {
                    a.get(i).cloned().unwrap_or(Value::Null)
                } else {
                    v.clone()
                }
            })
            .collect();
        out.push(Value::String(sprintf(&format, &row)?));
    }
    Ok(Value::Array(out))
}

fn f_chomp(args: FuncArgs) -> Result<Value> {
    Ok(Value::String(
        string(&args[0])?.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}

fn f_title(args: FuncArgs) -> Result<Value> {
    let s = string(&args[0])?;
    let mut out = String::new();
    let mut start = true;
    for c in s.chars() {
        out.extend(if start {
            c.to_uppercase().collect::<Vec<_>>()
        } else {
            vec![c]
        });
        start = c.is_whitespace();
    }
    Ok(Value::String(out))
}

/// go-cty's `coalesce`: the first argument that is not null (an empty string counts),
/// converted to the type all the arguments unify to.
fn f_coalesce(args: FuncArgs) -> Result<Value> {
    let values = all(&args);
    let present: Vec<&Value> = values
        .iter()
        .filter(|v| !matches!(v, Value::Null))
        .collect();
    let same_type = || "all arguments must have the same type".to_owned();
    if values.is_empty() {
        return Err(same_type());
    }
    let primitive = |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
    let primitives = present.iter().filter(|v| primitive(v)).count();
    if primitives != 0 && primitives != present.len() {
        return Err(same_type());
    }
    let has = |f: fn(&Value) -> bool| present.iter().any(|v| f(v));
    let to_string = has(|v| matches!(v, Value::String(_)))
        && (has(|v| matches!(v, Value::Number(_))) || has(|v| matches!(v, Value::Bool(_))));
    if !to_string && has(|v| matches!(v, Value::Number(_))) && has(|v| matches!(v, Value::Bool(_)))
    {
        return Err(same_type());
    }
    let first = present
        .first()
        .ok_or_else(|| "no non-null arguments".to_owned())?;
    Ok(if to_string {
        Value::String(string(first)?)
    } else {
        (*first).clone()
    })
}

fn f_not(args: FuncArgs) -> Result<Value> {
    match &args[0] {
        Value::Bool(b) => Ok(Value::Bool(!b)),
        other => Err(format!("bool required, got {other:?}")),
    }
}

pub(crate) fn declare(ctx: &mut hcl::eval::Context<'_>) {
    let any = || ParamType::Any;
    let def = |params: usize, variadic: bool, f: fn(FuncArgs) -> Result<Value>| {
        let mut b = FuncDef::builder();
        for _ in 0..params {
            b = b.param(any());
        }
        if variadic {
            b = b.variadic_param(any());
        }
        b.build(f)
    };
    let table: [Entry; 47] = [
        ("add", 2, false, f_add),
        ("basename", 1, false, f_basename),
        ("ceil", 1, false, f_ceil),
        ("concat", 0, true, f_concat),
        ("contains", 2, false, f_contains),
        ("dirname", 1, false, f_dirname),
        ("distinct", 1, false, f_distinct),
        ("divide", 2, false, f_divide),
        ("element", 2, false, f_element),
        ("equal", 2, false, f_equal),
        ("flatten", 1, false, f_flatten),
        ("floor", 1, false, f_floor),
        ("format", 1, true, f_format),
        ("formatlist", 1, true, f_formatlist),
        ("indexof", 2, false, f_indexof),
        ("join", 1, true, f_join),
        ("keys", 1, false, f_keys),
        ("length", 1, false, f_length),
        ("lookup", 3, false, f_lookup),
        ("lower", 1, false, f_lower),
        ("max", 0, true, f_max),
        ("merge", 0, true, f_merge),
        ("min", 0, true, f_min),
        ("modulo", 2, false, f_modulo),
        ("multiply", 2, false, f_multiply),
        ("notequal", 2, false, f_notequal),
        ("regex", 2, false, f_regex),
        ("regexall", 2, false, f_regexall),
        ("regex_replace", 3, false, f_regex_replace),
        ("replace", 3, false, f_replace),
        ("reverse", 1, false, f_reverse),
        ("reverselist", 1, false, f_reverse),
        ("sanitize", 1, false, f_sanitize),
        ("sort", 1, false, f_sort),
        ("split", 2, false, f_split),
        ("strlen", 1, false, f_strlen),
        ("subtract", 2, false, f_subtract),
        ("timestamp", 0, false, f_timestamp),
        ("trimprefix", 2, false, f_trimprefix),
        ("trimspace", 1, false, f_trimspace),
        ("trimsuffix", 2, false, f_trimsuffix),
        ("upper", 1, false, f_upper),
        ("values", 1, false, f_values),
        ("chomp", 1, false, f_chomp),
        ("title", 1, false, f_title),
        ("coalesce", 0, true, f_coalesce),
        ("not", 1, false, f_not),
    ];
    let library = table
        .iter()
        .chain(more::TABLE)
        .chain(net::TABLE)
        .chain(time::TABLE);
    for &(name, params, variadic, f) in library {
        // The arity HCL checks is go-cty's (calls.rs checks it first, with its words).
        let (params, variadic) = match crate::specs::spec(name) {
            Some((fixed, var)) => (fixed.len(), var.is_some()),
            None => (params, variadic),
        };
        ctx.declare_func(name, def(params, variadic, f));
    }
}

/// Evaluates one HCL expression with the whole library (for the functions' tests).
#[cfg(test)]
pub(crate) fn eval_expr(src: &str) -> std::result::Result<Value, String> {
    use hcl::eval::{Context, Evaluate};
    let body: hcl::Body = hcl::parse(&format!("x = {src}")).map_err(|e| e.to_string())?;
    let mut ctx = Context::new();
    declare(&mut ctx);
    body.attributes()
        .next()
        .ok_or("no attribute")?
        .expr()
        .evaluate(&ctx)
        .map_err(|e| e.to_string())
}
