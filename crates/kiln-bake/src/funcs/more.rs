//! The rest of Bake's function library: numbers, comparisons, encodings, hashes,
//! sets and collection helpers, with go-cty's behaviour.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hcl::Value;
use hcl::eval::FuncArgs;
use sha2::Digest as _;

use super::{Entry, Result, all, integer, list, num, number, string};

pub(crate) const TABLE: &[Entry] = &[
    ("absolute", 1, false, f_absolute),
    ("and", 2, false, f_and),
    ("base64decode", 1, false, f_base64decode),
    ("base64encode", 1, false, f_base64encode),
    ("bcrypt", 1, true, f_bcrypt),
    ("byteslen", 1, false, f_byteslen),
    ("bytesslice", 3, false, f_bytesslice),
    ("chunklist", 2, false, f_chunklist),
    ("coalescelist", 0, true, f_coalescelist),
    ("compact", 1, false, f_compact),
    ("csvdecode", 1, false, f_csvdecode),
    ("greaterthan", 2, false, f_greaterthan),
    ("greaterthanorequalto", 2, false, f_greaterthanorequalto),
    ("hasindex", 2, false, f_hasindex),
    ("homedir", 0, false, f_homedir),
    ("indent", 2, false, f_indent),
    ("index", 2, false, f_index),
    ("int", 1, false, f_int),
    ("jsondecode", 1, false, f_jsondecode),
    ("jsonencode", 1, false, f_jsonencode),
    ("lessthan", 2, false, f_lessthan),
    ("lessthanorequalto", 2, false, f_lessthanorequalto),
    ("log", 2, false, f_log),
    ("md5", 1, false, f_md5),
    ("negate", 1, false, f_negate),
    ("or", 2, false, f_or),
    ("parseint", 2, false, f_parseint),
    ("pow", 2, false, f_pow),
    ("range", 0, true, f_range),
    ("rsadecrypt", 2, false, f_rsadecrypt),
    ("sethaselement", 2, false, f_sethaselement),
    ("setintersection", 1, true, f_setintersection),
    ("setproduct", 0, true, f_setproduct),
    ("setsubtract", 2, false, f_setsubtract),
    ("setsymmetricdifference", 1, true, f_setsymmetricdifference),
    ("setunion", 1, true, f_setunion),
    ("sha1", 1, false, f_sha1),
    ("sha256", 1, false, f_sha256),
    ("sha512", 1, false, f_sha512),
    ("signum", 1, false, f_signum),
    ("slice", 3, false, f_slice),
    ("substr", 3, false, f_substr),
    ("trim", 2, false, f_trim),
    ("urlencode", 1, false, f_urlencode),
    ("uuidv4", 0, false, f_uuidv4),
    ("uuidv5", 2, false, f_uuidv5),
    ("zipmap", 2, false, f_zipmap),
];

fn boolean(v: &Value) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
        other => Err(format!("bool required, got {other:?}")),
    }
}

fn f_absolute(args: FuncArgs) -> Result<Value> {
    Ok(num(number(&args[0])?.abs()))
}

fn f_negate(args: FuncArgs) -> Result<Value> {
    Ok(num(-number(&args[0])?))
}

fn f_signum(args: FuncArgs) -> Result<Value> {
    let n = number(&args[0])?;
    Ok(num(if n > 0.0 {
        1.0
    } else if n < 0.0 {
        -1.0
    } else {
        0.0
    }))
}

fn f_int(args: FuncArgs) -> Result<Value> {
    Ok(num(number(&args[0])?.trunc()))
}

fn f_pow(args: FuncArgs) -> Result<Value> {
    Ok(num(number(&args[0])?.powf(number(&args[1])?)))
}

fn f_log(args: FuncArgs) -> Result<Value> {
    Ok(num(number(&args[0])?.log(number(&args[1])?)))
}

fn f_parseint(args: FuncArgs) -> Result<Value> {
    let s = string(&args[0])?;
    let base = number(&args[1])? as u32;
    if !(2..=62).contains(&base) {
        return Err(format!("base must be between 2 and 62, got {base}"));
    }
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(&s)),
    };
    let value = i64::from_str_radix(digits, base)
        .map_err(|_| format!("cannot parse {s:?} as a base {base} integer"))?;
    Ok(num(if negative { -value } else { value } as f64))
}

fn compare(args: &FuncArgs, check: fn(f64, f64) -> bool) -> Result<Value> {
    Ok(Value::Bool(check(number(&args[0])?, number(&args[1])?)))
}

fn f_greaterthan(args: FuncArgs) -> Result<Value> {
    compare(&args, |a, b| a > b)
}

fn f_greaterthanorequalto(args: FuncArgs) -> Result<Value> {
    compare(&args, |a, b| a >= b)
}

fn f_lessthan(args: FuncArgs) -> Result<Value> {
    compare(&args, |a, b| a < b)
}

fn f_lessthanorequalto(args: FuncArgs) -> Result<Value> {
    compare(&args, |a, b| a <= b)
}

fn f_and(args: FuncArgs) -> Result<Value> {
    Ok(Value::Bool(boolean(&args[0])? && boolean(&args[1])?))
}

fn f_or(args: FuncArgs) -> Result<Value> {
    Ok(Value::Bool(boolean(&args[0])? || boolean(&args[1])?))
}

fn f_base64encode(args: FuncArgs) -> Result<Value> {
    Ok(Value::String(BASE64.encode(string(&args[0])?)))
}

fn f_base64decode(args: FuncArgs) -> Result<Value> {
    let bytes = BASE64
        .decode(string(&args[0])?)
        .map_err(|e| format!("failed to decode base64 data: {e}"))?;
    String::from_utf8(bytes)
        .map(Value::String)
        .map_err(|_| "the result of decoding the provided string is not valid UTF-8".to_owned())
}

fn hex(bytes: &[u8]) -> Value {
    Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn f_md5(args: FuncArgs) -> Result<Value> {
    Ok(hex(&md5::Md5::digest(string(&args[0])?)))
}

fn f_sha1(args: FuncArgs) -> Result<Value> {
    Ok(hex(&sha1::Sha1::digest(string(&args[0])?)))
}

fn f_sha256(args: FuncArgs) -> Result<Value> {
    Ok(hex(&sha2::Sha256::digest(string(&args[0])?)))
}

fn f_sha512(args: FuncArgs) -> Result<Value> {
    Ok(hex(&sha2::Sha512::digest(string(&args[0])?)))
}

/// RFC 4122 name-based (SHA-1) UUID; the namespace is `dns`, `url`, `oid`, `x500`
/// or a UUID.
fn f_uuidv5(args: FuncArgs) -> Result<Value> {
    let namespace = match string(&args[0])?.as_str() {
        "dns" => "6ba7b810-9dad-11d1-80b4-00c04fd430c8".to_owned(),
        "url" => "6ba7b811-9dad-11d1-80b4-00c04fd430c8".to_owned(),
        "oid" => "6ba7b812-9dad-11d1-80b4-00c04fd430c8".to_owned(),
        "x500" => "6ba7b814-9dad-11d1-80b4-00c04fd430c8".to_owned(),
        other => other.to_owned(),
    };
    let digits: String = namespace.chars().filter(|c| *c != '-').collect();
    if digits.len() != 32 {
        return Err(format!("uuidv5: invalid namespace {namespace:?}"));
    }
    let mut ns = Vec::with_capacity(16);
    for i in (0..32).step_by(2) {
        ns.push(
            u8::from_str_radix(&digits[i..i + 2], 16)
                .map_err(|_| format!("uuidv5: invalid namespace {namespace:?}"))?,
        );
    }
    let mut hasher = sha1::Sha1::new();
    hasher.update(&ns);
    hasher.update(string(&args[1])?.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&hasher.finalize()[..16]);
    Ok(uuid(b, 5))
}

/// The RFC 4122 text form of 16 bytes, stamped with `version` and the RFC variant.
fn uuid(mut b: [u8; 16], version: u8) -> Value {
    b[6] = (b[6] & 0x0f) | (version << 4);
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Value::String(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// A random (version 4) UUID, from the kernel's random source.
fn f_uuidv4(_: FuncArgs) -> Result<Value> {
    use std::io::Read as _;
    let mut b = [0u8; 16];
    fs_err::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("uuidv4: {e}"))?;
    Ok(uuid(b, 4))
}

/// buildx's `bcrypt` and `rsadecrypt` need crypto libraries kiln does not carry:
/// declared, they fail with a clear message rather than as unknown functions.
fn f_bcrypt(_: FuncArgs) -> Result<Value> {
    Err("bcrypt is not supported by kiln yet".to_owned())
}

fn f_rsadecrypt(_: FuncArgs) -> Result<Value> {
    Err("rsadecrypt is not supported by kiln yet".to_owned())
}

/// `byteslen` and `bytesslice` take go-cty's `bytes` capsule, which nothing in
/// Bake's library produces: in buildx every call fails on its argument's type.
fn f_byteslen(_: FuncArgs) -> Result<Value> {
    Err("Invalid value for \"buf\" parameter: bytes required".to_owned())
}

fn f_bytesslice(_: FuncArgs) -> Result<Value> {
    Err("Invalid value for \"buf\" parameter: bytes required".to_owned())
}

fn f_homedir(_: FuncArgs) -> Result<Value> {
    std::env::var("HOME")
        .map(Value::String)
        .map_err(|_| "failed to get home directory".to_owned())
}

fn f_jsonencode(args: FuncArgs) -> Result<Value> {
    serde_json::to_string(&args[0])
        .map(Value::String)
        .map_err(|e| e.to_string())
}

fn f_jsondecode(args: FuncArgs) -> Result<Value> {
    let json: serde_json::Value =
        serde_json::from_str(&string(&args[0])?).map_err(|e| e.to_string())?;
    hcl::to_value(&json).map_err(|e| e.to_string())
}

/// Go's `url.QueryEscape`.
fn f_urlencode(args: FuncArgs) -> Result<Value> {
    let mut out = String::new();
    for b in string(&args[0])?.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    Ok(Value::String(out))
}

fn f_indent(args: FuncArgs) -> Result<Value> {
    let pad = " ".repeat(number(&args[0])? as usize);
    let s = string(&args[1])?;
    Ok(Value::String(s.replace('\n', &format!("\n{pad}"))))
}

fn f_trim(args: FuncArgs) -> Result<Value> {
    let cutset: Vec<char> = string(&args[1])?.chars().collect();
    Ok(Value::String(
        string(&args[0])?
            .trim_matches(|c| cutset.contains(&c))
            .to_owned(),
    ))
}

/// `substr(s, offset, length)`: negative offset counts from the end, length -1
/// means to the end.
fn f_substr(args: FuncArgs) -> Result<Value> {
    let chars: Vec<char> = string(&args[0])?.chars().collect();
    let len = chars.len() as i64;
    let mut offset = number(&args[1])? as i64;
    let length = number(&args[2])? as i64;
    if offset < 0 {
        offset += len;
    }
    let start = offset.clamp(0, len);
    let end = if length < 0 {
        len
    } else {
        (start + length).min(len)
    };
    Ok(Value::String(
        chars[start as usize..end.max(start) as usize]
            .iter()
            .collect(),
    ))
}

fn f_slice(args: FuncArgs) -> Result<Value> {
    use crate::calls::arg_error;
    let Value::Array(items) = &args[0] else {
        return Err(arg_error(0, "must be a list or tuple value"));
    };
    let len = items.len() as i64;
    let start = integer(&args[1]).map_err(|e| arg_error(1, format!("invalid start index: {e}")))?;
    if start < 0 {
        return Err(arg_error(1, "start index must not be less than zero"));
    }
    if start > len {
        return Err(arg_error(
            1,
            "start index must not be greater than the length of the list",
        ));
    }
    let end = integer(&args[2]).map_err(|e| arg_error(2, format!("invalid end index: {e}")))?;
    if end < 0 {
        return Err(arg_error(2, "end index must not be less than zero"));
    }
    if end > len {
        return Err(arg_error(
            2,
            "end index must not be greater than the length of the list",
        ));
    }
    if start > end {
        return Err(arg_error(
            1,
            "start index must not be greater than end index",
        ));
    }
    Ok(Value::Array(items[start as usize..end as usize].to_vec()))
}

fn f_chunklist(args: FuncArgs) -> Result<Value> {
    let items = list(&args[0])?;
    let size = number(&args[1])? as usize;
    if size == 0 {
        return Ok(Value::Array(vec![Value::Array(items)]));
    }
    Ok(Value::Array(
        items
            .chunks(size)
            .map(|c| Value::Array(c.to_vec()))
            .collect(),
    ))
}

/// go-cty's `coalescelist`: every argument must be a list or tuple (an untyped null
/// is neither); the first non-empty one.
fn f_coalescelist(args: FuncArgs) -> Result<Value> {
    let values = all(&args);
    if values.is_empty() {
        return Err("at least one argument is required".to_owned());
    }
    if values.iter().any(|v| !matches!(v, Value::Array(_))) {
        return Err("coalescelist arguments must be lists or tuples".to_owned());
    }
    values
        .into_iter()
        .find(|v| matches!(v, Value::Array(a) if !a.is_empty()))
        .ok_or_else(|| "no non-null arguments".to_owned())
}

fn f_compact(args: FuncArgs) -> Result<Value> {
    Ok(Value::Array(
        list(&args[0])?
            .into_iter()
            .filter(|v| !matches!(v, Value::Null) && *v != Value::String(String::new()))
            .collect(),
    ))
}

fn f_hasindex(args: FuncArgs) -> Result<Value> {
    Ok(Value::Bool(match &args[0] {
        Value::Array(items) => match &args[1] {
            Value::Number(_) => {
                integer(&args[1]).is_ok_and(|i| i >= 0 && (i as usize) < items.len())
            }
            _ => false,
        },
        _ => return Err("collection must be a list, a map or a tuple".to_owned()),
    }))
}

/// go-cty's `index(collection, key)` on a tuple (what a list literal is).
fn f_index(args: FuncArgs) -> Result<Value> {
    let Value::Array(items) = &args[0] else {
        return Err("collection must be a list, a map or a tuple".to_owned());
    };
    if !matches!(args[1], Value::Number(_)) {
        return Err("key for tuple must be number".to_owned());
    }
    let i = integer(&args[1]).map_err(|e| format!("invalid key for tuple: {e}"))?;
    if i < 0 || i >= items.len() as i64 {
        return Err(format!(
            "key must be between 0 and {} inclusive",
            items.len()
        ));
    }
    Ok(items[i as usize].clone())
}

fn f_zipmap(args: FuncArgs) -> Result<Value> {
    let keys = list(&args[0])?;
    let values = list(&args[1])?;
    if keys.len() != values.len() {
        return Err(format!(
            "number of keys ({}) does not match number of values ({})",
            keys.len(),
            values.len()
        ));
    }
    let mut map = hcl::Map::new();
    for (k, v) in keys.iter().zip(values) {
        map.insert(string(k)?, v);
    }
    Ok(Value::Object(map))
}

/// `range(limit)`, `range(start, limit)`, `range(start, limit, step)`.
fn f_range(args: FuncArgs) -> Result<Value> {
    let numbers: Vec<f64> = all(&args).iter().map(number).collect::<Result<_>>()?;
    let (start, limit, step) = match numbers.as_slice() {
        [limit] => (0.0, *limit, 1.0),
        [start, limit] => (*start, *limit, if start <= limit { 1.0 } else { -1.0 }),
        [start, limit, step] => (*start, *limit, *step),
        _ => return Err("range takes one to three arguments".to_owned()),
    };
    if step == 0.0 {
        return Err("step must not be zero".to_owned());
    }
    let mut out = Vec::new();
    let mut n = start;
    while (step > 0.0 && n < limit) || (step < 0.0 && n > limit) {
        out.push(num(n));
        n += step;
        if out.len() > 1024 {
            return Err("more than 1024 values were generated".to_owned());
        }
    }
    Ok(Value::Array(out))
}

/// A set's elements, deduplicated, in go-cty's order for printing (sorted).
pub(crate) fn set(v: &Value) -> Result<Vec<Value>> {
    let mut items = list(v)?;
    items.sort_by_key(sort_key);
    items.dedup();
    Ok(items)
}

fn sort_key(v: &Value) -> (u8, String) {
    match v {
        Value::Number(n) => (0, format!("{:030.10}", n.as_f64().unwrap_or(0.0))),
        Value::String(s) => (1, s.clone()),
        other => (2, other.to_string()),
    }
}

fn sets(args: &FuncArgs) -> Result<Vec<Vec<Value>>> {
    all(args).iter().map(set).collect()
}

fn sorted(mut items: Vec<Value>) -> Value {
    items.sort_by_key(sort_key);
    items.dedup();
    Value::Array(items)
}

fn f_sethaselement(args: FuncArgs) -> Result<Value> {
    Ok(Value::Bool(set(&args[0])?.contains(&args[1])))
}

fn f_setunion(args: FuncArgs) -> Result<Value> {
    Ok(sorted(sets(&args)?.into_iter().flatten().collect()))
}

fn f_setintersection(args: FuncArgs) -> Result<Value> {
    let all = sets(&args)?;
    let first = all.first().cloned().unwrap_or_default();
    Ok(sorted(
        first
            .into_iter()
            .filter(|v| all.iter().all(|s| s.contains(v)))
            .collect(),
    ))
}

fn f_setsubtract(args: FuncArgs) -> Result<Value> {
    let remove = set(&args[1])?;
    Ok(sorted(
        set(&args[0])?
            .into_iter()
            .filter(|v| !remove.contains(v))
            .collect(),
    ))
}

fn f_setsymmetricdifference(args: FuncArgs) -> Result<Value> {
    let all = sets(&args)?;
    let union: Vec<Value> = all.iter().flatten().cloned().collect();
    Ok(sorted(
        union
            .iter()
            .filter(|v| all.iter().filter(|s| s.contains(v)).count() % 2 == 1)
            .cloned()
            .collect(),
    ))
}

fn f_setproduct(args: FuncArgs) -> Result<Value> {
    let mut product: Vec<Vec<Value>> = vec![Vec::new()];
    for s in all(&args) {
        let items = list(&s)?;
        product = product
            .into_iter()
            .flat_map(|prefix| {
                items.iter().map(move |item| {
                    let mut row = prefix.clone();
                    row.push(item.clone());
                    row
                })
            })
            .collect();
    }
    if args.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    Ok(Value::Array(
        product.into_iter().map(Value::Array).collect(),
    ))
}

/// `csvdecode(s)` (go-cty's, on Go's encoding/csv): the first record names the
/// columns, each further record is an object of strings.
fn f_csvdecode(args: FuncArgs) -> Result<Value> {
    let text = string(&args[0])?;
    let mut records = csv_records(&text)?.into_iter();
    let Some((_, header)) = records.next() else {
        return Err("missing header line".to_owned());
    };
    for (i, name) in header.iter().enumerate() {
        if header[..i].contains(name) {
            return Err(format!(
                "duplicate column name {}",
                crate::model::go_quote(name)
            ));
        }
    }
    let mut out = Vec::new();
    for (line, row) in records {
        if row.len() != header.len() {
            return Err(format!(
                "CSV parse error on line {line}: wrong number of fields"
            ));
        }
        let object: hcl::Map<String, Value> = header
            .iter()
            .cloned()
            .zip(row.into_iter().map(Value::String))
            .collect();
        out.push(Value::Object(object));
    }
    Ok(Value::Array(out))
}

/// The records of `text` as Go's encoding/csv reads them, each with the line it starts
/// on: a record ends at a newline outside quotes, empty lines are skipped, and each
/// record's fields are read by the one CSV field reader (`kiln_oci::go::csv_fields`).
fn csv_records(text: &str) -> Result<Vec<(usize, Vec<String>)>> {
    let mut records = Vec::new();
    let mut read = |record: &str, line: usize| -> Result<()> {
        let record = record.strip_suffix('\r').unwrap_or(record);
        if record.is_empty() {
            return Ok(());
        }
        let fields = kiln_oci::go::csv_fields(record).map_err(|e| match e {
            kiln_oci::go::CsvError::Parse { reason, .. } => {
                format!("CSV parse error on line {line}: {reason}")
            }
            other => other.to_string(),
        })?;
        records.push((line, fields));
        Ok(())
    };
    let (mut start, mut line, mut record_line, mut quoted) = (0, 1, 1, false);
    for (at, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '\n' => {
                line += 1;
                if !quoted {
                    read(&text[start..at], record_line)?;
                    start = at + 1;
                    record_line = line;
                }
            }
            _ => {}
        }
    }
    read(&text[start..], record_line)?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use hcl::Value;

    fn eval(src: &str) -> Value {
        crate::funcs::eval_expr(src).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    #[test]
    fn library_matches_go_cty() {
        assert_eq!(
            eval("md5(\"hello\")"),
            Value::from("5d41402abc4b2a76b9719d911017c592")
        );
        assert_eq!(
            eval("base64decode(base64encode(\"kiln\"))"),
            Value::from("kiln")
        );
        assert_eq!(eval("urlencode(\"a b&c\")"), Value::from("a+b%26c"));
        assert_eq!(eval("substr(\"hello world\", -5, 3)"), Value::from("wor"));
        assert_eq!(
            eval("join(\",\", setunion([\"b\", \"a\"], [\"c\", \"a\"]))"),
            Value::from("a,b,c")
        );
        assert_eq!(
            eval("uuidv5(\"dns\", \"example.com\")"),
            Value::from("cfbff0d1-9375-5685-968c-48ce8b15ae17")
        );
        assert_eq!(
            eval("csvdecode(\"a,b\\n1,\\\"x,y\\\"\\n\")[0].b"),
            Value::from("x,y")
        );
        // A quoted field spans lines; empty lines are skipped.
        assert_eq!(
            eval("csvdecode(\"a,b\\n\\n1,\\\"x\\ny\\\"\\n2,z\")[1].b"),
            Value::from("z")
        );
        for (source, error) in [
            ("csvdecode(\"\")", "missing header line"),
            ("csvdecode(\"a,a\\n1,2\")", "duplicate column name \"a\""),
            (
                "csvdecode(\"a,b\\n1\")",
                "CSV parse error on line 2: wrong number of fields",
            ),
            (
                "csvdecode(\"a\\nx\\\"y\")",
                "CSV parse error on line 2: bare \" in non-quoted-field",
            ),
        ] {
            let got = crate::funcs::eval_expr(source).unwrap_err();
            assert!(got.contains(error), "{source}: {got}");
        }
        assert_eq!(eval("range(1, 7, 2)"), Value::from(vec![1, 3, 5]));
    }

    #[test]
    fn uuidv4_is_random_and_stamped() {
        let (Value::String(a), Value::String(b)) = (eval("uuidv4()"), eval("uuidv4()")) else {
            panic!("uuidv4 returns strings");
        };
        assert_ne!(a, b);
        let re = regex::Regex::new(
            "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        )
        .unwrap();
        assert!(re.is_match(&a), "{a}");
    }
}
