//! The parameters of Bake's library functions, as go-cty declares them: their names
//! (which HCL's messages quote), the type an argument is converted to, and whether it
//! may be null. `can`, `try` and `convert` are made by `calls.rs` itself.

/// The type a parameter converts its argument to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamType {
    Any,
    String,
    Number,
    Bool,
    ListOfString,
    List,
    Set,
}

/// One parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Param {
    pub(crate) name: &'static str,
    pub(crate) ty: ParamType,
    pub(crate) allow_null: bool,
}

const fn p(name: &'static str, ty: ParamType, allow_null: bool) -> Param {
    Param {
        name,
        ty,
        allow_null,
    }
}

use ParamType::{
    Any as D, Bool as B, List as L, ListOfString as LS, Number as N, Set as SET, String as S,
};

type Spec = (&'static str, &'static [Param], Option<Param>);

const SPECS: &[Spec] = &[
    ("absolute", &[p("num", N, false)], None),
    ("add", &[p("a", N, false), p("b", N, false)], None),
    ("and", &[p("a", B, false), p("b", B, false)], None),
    ("base64decode", &[p("str", S, false)], None),
    ("base64encode", &[p("str", S, false)], None),
    ("basename", &[p("path", S, false)], None),
    ("bcrypt", &[p("str", S, false)], Some(p("cost", N, false))),
    ("byteslen", &[p("buf", D, false)], None),
    (
        "bytesslice",
        &[
            p("buf", D, false),
            p("offset", N, false),
            p("length", N, false),
        ],
        None,
    ),
    ("ceil", &[p("num", N, false)], None),
    ("chomp", &[p("str", S, false)], None),
    (
        "chunklist",
        &[p("list", L, false), p("size", N, false)],
        None,
    ),
    (
        "cidrhost",
        &[p("prefix", S, false), p("hostnum", N, false)],
        None,
    ),
    ("cidrnetmask", &[p("prefix", S, false)], None),
    (
        "cidrsubnet",
        &[
            p("prefix", S, false),
            p("newbits", N, false),
            p("netnum", N, false),
        ],
        None,
    ),
    (
        "cidrsubnets",
        &[p("prefix", S, false)],
        Some(p("newbits", N, false)),
    ),
    ("coalesce", &[], Some(p("vals", D, true))),
    ("coalescelist", &[], Some(p("vals", D, true))),
    ("compact", &[p("list", LS, false)], None),
    ("concat", &[], Some(p("seqs", D, false))),
    (
        "contains",
        &[p("list", D, false), p("value", D, false)],
        None,
    ),
    ("csvdecode", &[p("str", S, false)], None),
    ("dirname", &[p("path", S, false)], None),
    ("distinct", &[p("list", L, false)], None),
    ("divide", &[p("a", N, false), p("b", N, false)], None),
    (
        "element",
        &[p("list", D, false), p("index", N, false)],
        None,
    ),
    ("equal", &[p("a", D, true), p("b", D, true)], None),
    ("flatten", &[p("list", D, false)], None),
    ("floor", &[p("num", N, false)], None),
    ("format", &[p("format", S, false)], Some(p("args", D, true))),
    (
        "formatdate",
        &[p("format", S, false), p("time", S, false)],
        None,
    ),
    (
        "formatlist",
        &[p("format", S, false)],
        Some(p("args", D, true)),
    ),
    ("greaterthan", &[p("a", N, false), p("b", N, false)], None),
    (
        "greaterthanorequalto",
        &[p("a", N, false), p("b", N, false)],
        None,
    ),
    (
        "hasindex",
        &[p("collection", D, false), p("key", D, false)],
        None,
    ),
    ("homedir", &[], None),
    ("indent", &[p("spaces", N, false), p("str", S, false)], None),
    (
        "index",
        &[p("collection", D, false), p("key", D, false)],
        None,
    ),
    (
        "indexof",
        &[p("list", D, false), p("value", D, false)],
        None,
    ),
    ("int", &[p("num", N, false)], None),
    (
        "join",
        &[p("separator", S, false)],
        Some(p("lists", LS, false)),
    ),
    ("jsondecode", &[p("str", S, false)], None),
    ("jsonencode", &[p("val", D, true)], None),
    ("keys", &[p("inputMap", D, false)], None),
    ("length", &[p("collection", D, false)], None),
    ("lessthan", &[p("a", N, false), p("b", N, false)], None),
    (
        "lessthanorequalto",
        &[p("a", N, false), p("b", N, false)],
        None,
    ),
    ("log", &[p("num", N, false), p("base", N, false)], None),
    (
        "lookup",
        &[
            p("inputMap", D, false),
            p("key", S, false),
            p("default", D, false),
        ],
        None,
    ),
    ("lower", &[p("str", S, false)], None),
    ("max", &[], Some(p("numbers", N, false))),
    ("md5", &[p("str", S, false)], None),
    ("merge", &[], Some(p("maps", D, true))),
    ("min", &[], Some(p("numbers", N, false))),
    ("modulo", &[p("a", N, false), p("b", N, false)], None),
    ("multiply", &[p("a", N, false), p("b", N, false)], None),
    ("negate", &[p("num", N, false)], None),
    ("not", &[p("val", B, false)], None),
    ("notequal", &[p("a", D, true), p("b", D, true)], None),
    ("or", &[p("a", B, false), p("b", B, false)], None),
    (
        "parseint",
        &[p("number", D, false), p("base", N, false)],
        None,
    ),
    ("pow", &[p("num", N, false), p("power", N, false)], None),
    ("range", &[], Some(p("params", N, false))),
    (
        "regex_replace",
        &[
            p("str", S, false),
            p("pattern", S, false),
            p("replace", S, false),
        ],
        None,
    ),
    (
        "regex",
        &[p("pattern", S, false), p("string", S, false)],
        None,
    ),
    (
        "regexall",
        &[p("pattern", S, false), p("string", S, false)],
        None,
    ),
    (
        "replace",
        &[
            p("str", S, false),
            p("substr", S, false),
            p("replace", S, false),
        ],
        None,
    ),
    ("reverse", &[p("str", S, false)], None),
    ("reverselist", &[p("list", D, false)], None),
    (
        "rsadecrypt",
        &[p("ciphertext", S, false), p("privatekey", S, false)],
        None,
    ),
    ("sanitize", &[p("name", S, false)], None),
    (
        "sethaselement",
        &[p("set", SET, false), p("elem", D, false)],
        None,
    ),
    (
        "setintersection",
        &[p("first_set", SET, false)],
        Some(p("other_sets", SET, false)),
    ),
    ("setproduct", &[], Some(p("sets", D, false))),
    (
        "setsubtract",
        &[p("a", SET, false), p("b", SET, false)],
        None,
    ),
    (
        "setsymmetricdifference",
        &[p("first_set", SET, false)],
        Some(p("other_sets", SET, false)),
    ),
    (
        "setunion",
        &[p("first_set", SET, false)],
        Some(p("other_sets", SET, false)),
    ),
    ("sha1", &[p("str", S, false)], None),
    ("sha256", &[p("str", S, false)], None),
    ("sha512", &[p("str", S, false)], None),
    ("signum", &[p("num", N, false)], None),
    (
        "slice",
        &[
            p("list", D, false),
            p("start_index", N, false),
            p("end_index", N, false),
        ],
        None,
    ),
    ("sort", &[p("list", LS, false)], None),
    (
        "split",
        &[p("separator", S, false), p("str", S, false)],
        None,
    ),
    ("strlen", &[p("str", S, false)], None),
    (
        "substr",
        &[
            p("str", S, false),
            p("offset", N, false),
            p("length", N, false),
        ],
        None,
    ),
    ("subtract", &[p("a", N, false), p("b", N, false)], None),
    (
        "timeadd",
        &[p("timestamp", S, false), p("duration", S, false)],
        None,
    ),
    ("timestamp", &[], None),
    ("title", &[p("str", S, false)], None),
    ("trim", &[p("str", S, false), p("cutset", S, false)], None),
    (
        "trimprefix",
        &[p("str", S, false), p("prefix", S, false)],
        None,
    ),
    ("trimspace", &[p("str", S, false)], None),
    (
        "trimsuffix",
        &[p("str", S, false), p("suffix", S, false)],
        None,
    ),
    ("upper", &[p("str", S, false)], None),
    ("urlencode", &[p("str", S, false)], None),
    ("uuidv4", &[], None),
    (
        "uuidv5",
        &[p("namespace", S, false), p("name", S, false)],
        None,
    ),
    ("values", &[p("mapping", D, false)], None),
    (
        "zipmap",
        &[p("keys", LS, false), p("values", D, false)],
        None,
    ),
];

/// A library function's parameters and variadic parameter.
pub(crate) fn spec(name: &str) -> Option<(&'static [Param], Option<Param>)> {
    SPECS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, params, variadic)| (*params, *variadic))
}

/// Parameter `index` of a library function (the variadic one past the fixed ones).
pub(crate) fn param(name: &str, index: usize) -> Option<Param> {
    let (params, variadic) = spec(name)?;
    params.get(index).copied().or(variadic)
}

/// Every library function's name.
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    SPECS
        .iter()
        .map(|(n, _, _)| *n)
        .chain(["can", "try", "convert"])
}
