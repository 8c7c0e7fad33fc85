//! Targets: requested names and patterns expanded through groups, matrices and
//! `inherits`, attributes evaluated and normalised as `bake --print` shows them.

use std::collections::{BTreeMap, BTreeSet};

use hcl::eval::Context;
use hcl::{Expression, Value};
use serde_json::{Map, Value as Json, json};

use crate::calls::{self, Functions};
use crate::eval::{Block, Definition, is_map_attr};
use crate::{Error, ListedGroup, ListedTarget, Request};

/// The resolved groups and targets.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Group name → target names.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Target name → its fields as `bake --print` shows them.
    pub targets: BTreeMap<String, Map<String, Json>>,
}

impl Resolved {
    /// `{"group": {...}, "target": {...}}`.
    pub fn to_json(&self) -> Json {
        let groups: Map<String, Json> = self
            .groups
            .iter()
            .map(|(k, v)| (k.clone(), json!({"targets": v})))
            .collect();
        let targets: Map<String, Json> = self
            .targets
            .iter()
            .map(|(k, v)| (k.clone(), Json::Object(v.clone())))
            .collect();
        json!({"group": groups, "target": targets})
    }
}

fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Shell-style match of a whole name.
fn glob(pattern: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| m(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && m(&p[1..], &n[1..]),
            Some('[') => match p.iter().position(|c| *c == ']') {
                Some(close) if !n.is_empty() => {
                    let class = &p[1..close];
                    let (neg, class) = if class.first() == Some(&'!') || class.first() == Some(&'^')
                    {
                        (true, &class[1..])
                    } else {
                        (false, class)
                    };
                    let mut hit = false;
                    let mut i = 0;
                    while i < class.len() {
                        if i + 2 < class.len() && class[i + 1] == '-' {
                            hit |= class[i] <= n[0] && n[0] <= class[i + 2];
                            i += 3;
                        } else {
                            hit |= class[i] == n[0];
                            i += 1;
                        }
                    }
                    hit != neg && m(&p[close + 1..], &n[1..])
                }
                _ => false,
            },
            Some(c) => n.first() == Some(c) && m(&p[1..], &n[1..]),
        }
    }
    m(
        &pattern.chars().collect::<Vec<_>>(),
        &name.chars().collect::<Vec<_>>(),
    )
}

fn eval(expr: &Expression, ctx: &Context<'_>, functions: &Functions) -> Result<Value, Error> {
    calls::evaluate(expr, ctx, functions).map_err(|text| {
        if let Some(name) = text
            .split("undefined function `")
            .nth(1)
            .and_then(|r| r.split('`').next())
        {
            return Error::Hcl(format!(
                "Call to unknown function; There is no function named \"{name}\"."
            ));
        }
        Error::Hcl(text)
    })
}

fn to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string_list(key: &str, v: &Value) -> Result<Vec<String>, Error> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter(|i| !matches!(i, Value::Null))
            .map(|i| to_string(i).ok_or_else(|| unsuitable("list of string")))
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => {
            let _ = key;
            Err(unsuitable("list of string"))
        }
    }
}

fn unsuitable(what: &str) -> Error {
    Error::Hcl(format!(
        "Unsuitable value type; Unsuitable value: {what} required"
    ))
}

/// `${` and `%{` printed the way HCL would need them escaped.
fn escape_template(s: &str) -> String {
    s.replace("${", "$${").replace("%{", "%%{")
}

/// `type=local,dest=out` (CSV) into an object.
fn csv_object(s: &str) -> Map<String, Json> {
    let mut out = Map::new();
    for field in s.split(',') {
        if let Some((k, v)) = field.split_once('=') {
            out.insert(k.trim().to_owned(), Json::String(v.trim().to_owned()));
        }
    }
    out
}

/// A local context path in Go's `path.Clean` form; remote contexts as given.
fn clean_context(context: &str) -> String {
    if context.contains("://") || context.starts_with("git@") || context.contains(':') {
        return context.to_owned();
    }
    let rooted = context.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in context.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if rooted => {}
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// One entry of output/cache-from/cache-to/secret/attest/ssh as an object.
fn entry_object(field: &str, v: &Value) -> Result<Map<String, Json>, Error> {
    let mut object = match v {
        Value::String(s) => {
            if !s.contains('=') {
                match field {
                    "output" => {
                        let mut m = Map::new();
                        if s == "-" {
                            m.insert("type".into(), "tar".into());
                        } else {
                            m.insert("type".into(), "local".into());
                        }
                        m.insert("dest".into(), Json::String(s.clone()));
                        m
                    }
                    "cache-from" | "cache-to" => {
                        let mut m = Map::new();
                        m.insert("type".into(), "registry".into());
                        m.insert("ref".into(), Json::String(s.clone()));
                        m
                    }
                    "secret" | "ssh" | "attest" => {
                        let mut m = Map::new();
                        m.insert(
                            if field == "attest" { "type" } else { "id" }.into(),
                            Json::String(s.clone()),
                        );
                        m
                    }
                    _ => Map::new(),
                }
            } else {
                csv_object(s)
            }
        }
        Value::Object(o) => o
            .iter()
            .filter_map(|(k, v)| to_string(v).map(|s| (k.clone(), Json::String(s))))
            .collect(),
        _ => return Err(unsuitable("list of string")),
    };
    if field == "secret" {
        object.remove("type");
    }
    Ok(object)
}

/// The fields a target prints, from its evaluated attributes.
fn normalise(attrs: &BTreeMap<String, Value>) -> Result<Map<String, Json>, Error> {
    let mut out = Map::new();
    for (key, value) in attrs {
        if matches!(value, Value::Null) {
            continue;
        }
        match key.as_str() {
            "context" => {
                let s = to_string(value).ok_or_else(|| unsuitable("string"))?;
                out.insert(key.clone(), Json::String(clean_context(&s)));
            }
            "dockerfile" | "target" | "network" | "shm-size" | "description" | "call" => {
                let s = to_string(value).ok_or_else(|| unsuitable("string"))?;
                out.insert(key.clone(), Json::String(s));
            }
            "dockerfile-inline" => {
                let s = to_string(value).ok_or_else(|| unsuitable("string"))?;
                out.insert(key.clone(), Json::String(escape_template(&s)));
            }
            "tags" | "platforms" | "no-cache-filter" | "ulimits" | "entitlements" => {
                out.insert(key.clone(), json!(string_list(key, value)?));
            }
            "annotations" => {
                let items: Vec<String> = string_list(key, value)?
                    .iter()
                    .map(|s| escape_template(s))
                    .collect();
                out.insert(key.clone(), json!(items));
            }
            "args" | "labels" | "contexts" | "extra-hosts" => {
                let Value::Object(map) = value else {
                    return Err(unsuitable("map of string"));
                };
                let escape = key == "args" || key == "labels";
                let m: Map<String, Json> = map
                    .iter()
                    // An empty named context means "none" and is dropped, as buildx does.
                    .filter(|(_, v)| {
                        key != "contexts" || !matches!(v, Value::String(s) if s.is_empty())
                    })
                    .filter_map(|(k, v)| {
                        to_string(v).map(|s| {
                            (
                                k.clone(),
                                Json::String(if escape { escape_template(&s) } else { s }),
                            )
                        })
                    })
                    .collect();
                out.insert(key.clone(), Json::Object(m));
            }
            "output" | "cache-from" | "cache-to" | "secret" | "attest" | "ssh" => {
                let items = match value {
                    Value::Array(items) => items.clone(),
                    other => vec![other.clone()],
                };
                let objects: Vec<Json> = items
                    .iter()
                    .filter(|i| !matches!(i, Value::Null))
                    .map(|i| entry_object(key, i).map(Json::Object))
                    .collect::<Result<_, _>>()?;
                out.insert(key.clone(), Json::Array(objects));
            }
            "pull" | "no-cache" => match value {
                Value::Bool(b) => {
                    out.insert(key.clone(), Json::Bool(*b));
                }
                Value::String(s) if s == "true" || s == "false" => {
                    out.insert(key.clone(), Json::Bool(s == "true"));
                }
                _ => return Err(unsuitable("bool")),
            },
            _ => {}
        }
    }
    out.entry("context")
        .or_insert_with(|| Json::String(".".into()));
    out.entry("dockerfile")
        .or_insert_with(|| Json::String("Dockerfile".into()));
    Ok(out)
}

struct Resolver<'a> {
    definition: &'a Definition,
    base: Context<'static>,
    resolved: Resolved,
    /// Evaluated attributes of targets by name (after inherits), for `inherits` users.
    cache: BTreeMap<String, BTreeMap<String, Value>>,
    /// What is being evaluated, to stop cycles: target names (`inherits`) and
    /// `NAME.ATTR` keys (`target.NAME.ATTR` references).
    stack: Vec<String>,
}

/// Child attributes over parent ones; maps merge key by key.
fn merge_attrs(
    parent: &BTreeMap<String, Value>,
    child: &BTreeMap<String, Value>,
) -> BTreeMap<String, Value> {
    let mut out = parent.clone();
    for (key, value) in child {
        match (out.get(key), value) {
            (Some(Value::Object(a)), Value::Object(b)) if is_map_attr(key) => {
                let mut merged = a.clone();
                for (k, v) in b {
                    merged.insert(k.clone(), v.clone());
                }
                out.insert(key.clone(), Value::Object(merged));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out
}

/// The matrix's combinations, keys in order, values in order.
fn combinations(matrix: &Value) -> Result<Vec<Vec<(String, Value)>>, Error> {
    let Value::Object(map) = matrix else {
        return Err(unsuitable("map"));
    };
    let mut combos: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (key, values) in map {
        let Value::Array(values) = values else {
            return Err(unsuitable("list"));
        };
        let mut next = Vec::new();
        for combo in &combos {
            for v in values {
                let mut c = combo.clone();
                c.push((key.clone(), v.clone()));
                next.push(c);
            }
        }
        combos = next;
    }
    Ok(combos)
}

impl Resolver<'_> {
    /// The attributes of target `name` with its inherits applied, in `ctx`.
    fn target_attrs(
        &mut self,
        name: &str,
        ctx: &Context<'_>,
    ) -> Result<BTreeMap<String, Value>, Error> {
        if let Some(cached) = self.cache.get(name) {
            return Ok(cached.clone());
        }
        let block = self
            .definition
            .targets
            .get(name)
            .ok_or_else(|| Error::Invalid(format!("failed to find target {name}")))?
            .clone();
        if self.stack.iter().any(|s| s == name) {
            // buildx ignores the edge that closes an inherits cycle.
            return Ok(BTreeMap::new());
        }
        self.stack.push(name.to_owned());
        let mut attrs = BTreeMap::new();
        if let Some(inherits) = block.get("inherits") {
            let parents = string_list(
                "inherits",
                &eval(inherits, ctx, &self.definition.functions)?,
            )?;
            for parent in parents {
                let base = self.base.clone();
                let parent_attrs = self.target_attrs(&parent, &base)?;
                attrs = merge_attrs(&attrs, &parent_attrs);
            }
        }
        let own = self.evaluate_block(&block, ctx)?;
        attrs = merge_attrs(&attrs, &own);
        self.stack.pop();
        Ok(attrs)
    }

    /// Resolves a target (expanding its matrix); returns the names it produced.
    fn resolve_target(&mut self, name: &str) -> Result<Vec<String>, Error> {
        let block = self
            .definition
            .targets
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("failed to find target {name}")))?;
        let Some(matrix) = block.get("matrix") else {
            if !self.resolved.targets.contains_key(name) {
                let base = self.base.clone();
                let attrs = self.target_attrs(name, &base)?;
                self.cache.insert(name.to_owned(), attrs.clone());
                self.resolved
                    .targets
                    .insert(name.to_owned(), normalise(&attrs)?);
            }
            return Ok(vec![name.to_owned()]);
        };
        let mut names = Vec::new();
        for (generated, ctx) in self.matrix_entries(name, matrix, &block)? {
            self.cache.remove(name);
            let attrs = self.target_attrs(name, &ctx)?;
            self.cache.remove(name);
            self.resolved
                .targets
                .insert(generated.clone(), normalise(&attrs)?);
            names.push(generated);
        }
        self.resolved.groups.insert(name.to_owned(), names.clone());
        Ok(names)
    }

    /// A matrix target's generated names, each with the context it evaluates in.
    fn matrix_entries(
        &self,
        name: &str,
        matrix: &Expression,
        block: &Block,
    ) -> Result<Vec<(String, Context<'static>)>, Error> {
        let matrix = eval(matrix, &self.base, &self.definition.functions)?;
        let mut entries: Vec<(String, Context<'static>)> = Vec::new();
        for combo in combinations(&matrix)? {
            let mut ctx = self.base.clone();
            for (k, v) in &combo {
                ctx.declare_var(k.clone(), v.clone());
            }
            let generated = match block.get("name") {
                Some(expr) => to_string(&eval(expr, &ctx, &self.definition.functions)?)
                    .ok_or_else(|| unsuitable("string"))?,
                None => {
                    return Err(Error::Invalid(format!(
                        "matrix target {name} requires name"
                    )));
                }
            };
            if entries.iter().any(|(n, _)| *n == generated) {
                return Err(Error::Hcl(format!(
                    "Invalid name; duplicate name \"{generated}\""
                )));
            }
            entries.push((generated, ctx));
        }
        Ok(entries)
    }

    /// Resolves a name: a group (recursively), a target, or a pattern over both.
    fn resolve_name(&mut self, name: &str) -> Result<(), Error> {
        if is_pattern(name) {
            let matched = self.matching_names(name);
            if matched.is_empty() {
                return Err(Error::Invalid(format!(
                    "could not find any target matching {name:?}"
                )));
            }
            for n in matched {
                self.resolve_name(&n)?;
            }
            return Ok(());
        }
        if let Some(group) = self.definition.groups.get(name).cloned() {
            if self.resolved.groups.contains_key(name) && name != "default" {
                return Ok(());
            }
            let members = match group.get("targets") {
                Some(expr) => string_list(
                    "targets",
                    &eval(expr, &self.base, &self.definition.functions)?,
                )?,
                None => Vec::new(),
            };
            self.resolved
                .groups
                .insert(name.to_owned(), members.clone());
            for member in members {
                self.resolve_name(&member)?;
            }
            return Ok(());
        }
        if self.definition.targets.contains_key(name) {
            self.resolve_target(name)?;
            return Ok(());
        }
        Err(Error::Invalid(format!("failed to find target {name}")))
    }
}

impl Resolver<'_> {
    /// The target and group names a shell-style pattern matches.
    fn matching_names(&self, pattern: &str) -> BTreeSet<String> {
        self.definition
            .targets
            .keys()
            .chain(self.definition.groups.keys())
            .filter(|n| glob(pattern, n))
            .cloned()
            .collect()
    }

    /// The printed `default` group: the requested names with patterns expanded and
    /// a requested `default` group replaced by its members, sorted.
    fn default_members(&self, requested: &[String]) -> Result<Vec<String>, Error> {
        let mut members = BTreeSet::new();
        for name in requested {
            if is_pattern(name) {
                members.extend(self.matching_names(name));
            } else if name == "default" && self.definition.groups.contains_key(name) {
                members.extend(self.resolved.groups.get(name).cloned().unwrap_or_default());
            } else {
                members.insert(name.clone());
            }
        }
        Ok(members.into_iter().collect())
    }

    /// Targets named by `target:NAME` contexts, resolved too (transitively); their
    /// entitlements flow to the targets that use them. Returns the names that were
    /// only reached this way: they build to the cache only.
    fn resolve_links(&mut self) -> Result<BTreeSet<String>, Error> {
        let mut linked = BTreeSet::new();
        let mut queue: Vec<String> = self.resolved.targets.keys().cloned().collect();
        while let Some(name) = queue.pop() {
            for dep in link_targets(&self.resolved.targets[&name]) {
                if !self.resolved.targets.contains_key(&dep) {
                    if !self.definition.targets.contains_key(&dep) {
                        return Err(Error::Invalid(format!("failed to find target {dep}")));
                    }
                    self.resolve_target(&dep)?;
                    self.resolved.groups.remove(&dep);
                    linked.insert(dep.clone());
                    queue.push(dep);
                }
            }
        }
        // Repeat until nothing changes, so entitlements travel up chains of any length.
        let names: Vec<String> = self.resolved.targets.keys().cloned().collect();
        let mut changed = true;
        while changed {
            changed = false;
            for name in &names {
                let gathered: Vec<Json> = link_targets(&self.resolved.targets[name])
                    .iter()
                    .filter_map(|dep| match self.resolved.targets[dep].get("entitlements") {
                        Some(Json::Array(e)) => Some(e.clone()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                if gathered.is_empty() {
                    continue;
                }
                let target = self.resolved.targets.get_mut(name).expect("resolved");
                let entry = target
                    .entry("entitlements")
                    .or_insert_with(|| Json::Array(Vec::new()));
                if let Json::Array(existing) = entry {
                    for e in gathered {
                        if !existing.contains(&e) {
                            existing.push(e);
                            changed = true;
                        }
                    }
                }
            }
        }
        Ok(linked)
    }
}

/// The targets a target's `contexts` name as `target:NAME`.
fn link_targets(target: &Map<String, Json>) -> Vec<String> {
    let Some(Json::Object(contexts)) = target.get("contexts") else {
        return Vec::new();
    };
    contexts
        .values()
        .filter_map(|v| v.as_str()?.strip_prefix("target:").map(str::to_owned))
        .collect()
}

fn parse_bool(value: &str) -> Result<bool, Error> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(Error::Invalid(format!("invalid boolean value {value:?}"))),
    }
}

/// `push=true` marks image outputs to push and adds one when only `docker` outputs
/// (or none) exist; `push=false` turns pushing off and drops registry outputs.
fn set_push(outputs: &mut Json, push: bool) {
    let Json::Array(list) = outputs else { return };
    if !push {
        list.retain(|o| o["type"] != "registry");
        for o in list.iter_mut().filter(|o| o["type"] == "image") {
            o["push"] = json!("false");
        }
        return;
    }
    let mut add = true;
    for o in list.iter_mut() {
        if o["type"] != "docker" {
            add = false;
        }
        if o["type"] == "image" {
            o["push"] = json!("true");
        }
    }
    if add {
        list.push(json!({"type": "image", "push": "true"}));
    }
}

/// `load=true` adds a `docker` output unless one (without dest) exists or another
/// kind of output (local, tar, ...) is set.
fn set_load(outputs: &mut Json) {
    let Json::Array(list) = outputs else { return };
    for o in list.iter() {
        match o["type"].as_str() {
            Some("docker") if o.get("dest").is_none() => return,
            Some("docker" | "image" | "registry" | "oci") => {}
            _ => return,
        }
    }
    list.push(json!({"type": "docker"}));
}

impl Resolver<'_> {
    /// Evaluates a block's own attributes (not `inherits`, `matrix`, `name`).
    fn evaluate_block(
        &mut self,
        block: &Block,
        ctx: &Context<'_>,
    ) -> Result<BTreeMap<String, Value>, Error> {
        let mut out = BTreeMap::new();
        for (key, expr) in &block.attrs {
            if matches!(key.as_str(), "inherits" | "matrix" | "name") {
                continue;
            }
            let value = self.eval_with_refs(expr, ctx)?;
            match (out.get_mut(key), value) {
                (Some(Value::Object(earlier)), Value::Object(later)) if is_map_attr(key) => {
                    earlier.extend(later);
                }
                (_, value) => {
                    out.insert(key.clone(), value);
                }
            }
        }
        Ok(out)
    }

    /// Evaluates `expr` with the `target.NAME.ATTR` values it mentions in scope.
    fn eval_with_refs(&mut self, expr: &Expression, ctx: &Context<'_>) -> Result<Value, Error> {
        static REF: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r"\btarget\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)").expect("valid regex")
        });
        let text = expr.to_string();
        let refs: BTreeSet<(String, String)> = REF
            .captures_iter(&text)
            .map(|c| (c[1].to_owned(), c[2].to_owned()))
            .collect();
        if refs.is_empty() {
            return eval(expr, ctx, &self.definition.functions);
        }
        let mut targets: hcl::Map<String, Value> = hcl::Map::new();
        for (name, attr) in refs {
            let value = self.attribute_value(&name, &attr)?;
            if let Value::Object(attrs) = targets
                .entry(name)
                .or_insert_with(|| Value::Object(hcl::Map::new()))
            {
                attrs.insert(attr, value);
            }
        }
        let mut scope = ctx.clone();
        scope.declare_var("target", Value::Object(targets));
        eval(expr, &scope, &self.definition.functions)
    }

    /// One attribute of another target, for `target.NAME.ATTR`: its own value, else
    /// its parents', else the default (`context` ".", `dockerfile` "Dockerfile").
    fn attribute_value(&mut self, name: &str, attr: &str) -> Result<Value, Error> {
        let key = format!("{name}.{attr}");
        if self.stack.contains(&key) {
            return Err(Error::Invalid(format!(
                "target {name}: attribute {attr} refers to itself"
            )));
        }
        let block = self
            .definition
            .targets
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("failed to find target {name}")))?;
        self.stack.push(key);
        let base = self.base.clone();
        let result = (|| {
            if let Some(expr) = block.get(attr) {
                return self.eval_with_refs(expr, &base);
            }
            if let Some(inherits) = block.get("inherits") {
                let parents = string_list("inherits", &self.eval_with_refs(inherits, &base)?)?;
                for parent in parents.iter().rev() {
                    let value = self.attribute_value(parent, attr)?;
                    if !matches!(value, Value::Null) {
                        return Ok(value);
                    }
                }
            }
            Ok(match attr {
                "context" => Value::from("."),
                "dockerfile" => Value::from("Dockerfile"),
                _ => Value::Null,
            })
        })();
        self.stack.pop();
        result
    }
}

/// `--set pattern.key=value` and `key+=value` on the resolved targets.
fn apply_sets(resolved: &mut Resolved, request: &Request) -> Result<(), Error> {
    for set in &request.sets {
        // `pattern.args.NAME` alone takes NAME's value from the environment, if set.
        let (lhs, value) = match set.split_once('=') {
            Some((lhs, value)) => (lhs, value),
            None => match set.split_once(".args.") {
                Some((_, name)) => match request.env.get(name) {
                    Some(value) => (set.as_str(), value.as_str()),
                    None => continue,
                },
                None => return Err(Error::Invalid(format!("invalid override {set:?}"))),
            },
        };
        let (lhs, append) = match lhs.strip_suffix('+') {
            Some(l) => (l, true),
            None => (lhs, false),
        };
        let (pattern, key) = lhs.split_once('.').ok_or_else(|| {
            Error::Invalid(format!("invalid override key {lhs}, expected target.name"))
        })?;
        let names: Vec<String> = resolved
            .targets
            .keys()
            .filter(|n| glob(pattern, n))
            .cloned()
            .collect();
        if names.is_empty() {
            return Err(Error::Invalid(format!(
                "could not find any target matching '{pattern}'"
            )));
        }
        for name in names {
            let target = resolved.targets.get_mut(&name).expect("listed");
            let (field, sub) = match key.split_once('.') {
                Some((f, s)) => (f, Some(s)),
                None => (key, None),
            };
            let field = match field {
                "platform" => "platforms",
                "secrets" => "secret",
                "cache_from" => "cache-from",
                "cache_to" => "cache-to",
                other => other,
            };
            match (field, sub) {
                ("args" | "labels" | "contexts", Some(k)) => {
                    let map = target
                        .entry(field)
                        .or_insert_with(|| Json::Object(Map::new()));
                    if let Json::Object(m) = map {
                        m.insert(k.to_owned(), Json::String(value.to_owned()));
                    }
                }
                (
                    "tags" | "platforms" | "no-cache-filter" | "annotations" | "entitlements"
                    | "ulimits",
                    None,
                ) => {
                    let items: Vec<Json> = value
                        .split(',')
                        .map(|s| Json::String(s.to_owned()))
                        .collect();
                    let entry = target
                        .entry(field)
                        .or_insert_with(|| Json::Array(Vec::new()));
                    if let Json::Array(existing) = entry {
                        if append {
                            existing.extend(items);
                        } else {
                            *existing = items;
                        }
                    }
                }
                ("output" | "cache-from" | "cache-to" | "secret" | "attest" | "ssh", None) => {
                    let object =
                        Json::Object(entry_object(field, &Value::String(value.to_owned()))?);
                    let entry = target
                        .entry(field)
                        .or_insert_with(|| Json::Array(Vec::new()));
                    if let Json::Array(existing) = entry {
                        // Attestations are keyed by type: a new one replaces its kind.
                        let same_type = |e: &Json| e.get("type") == object.get("type");
                        if field == "attest"
                            && let Some(slot) = existing.iter_mut().find(|e| same_type(e))
                        {
                            *slot = object;
                        } else if append || field == "attest" {
                            existing.push(object);
                        } else {
                            *existing = vec![object];
                        }
                    }
                }
                ("context", None) => {
                    target.insert(field.to_owned(), Json::String(clean_context(value)));
                }
                (
                    "dockerfile" | "target" | "network" | "shm-size" | "call" | "description",
                    None,
                ) => {
                    target.insert(field.to_owned(), Json::String(value.to_owned()));
                }
                ("push" | "load", None) => {
                    let on = parse_bool(value)?;
                    let outputs = target.entry("output").or_insert_with(|| json!([]));
                    if field == "push" {
                        set_push(outputs, on);
                    } else if on {
                        set_load(outputs);
                    }
                    if outputs.as_array().is_some_and(Vec::is_empty) {
                        target.remove("output");
                    }
                }
                ("pull" | "no-cache", None) => {
                    target.insert(
                        field.to_owned(),
                        Json::Bool(value == "true" || value == "1"),
                    );
                }
                _ => return Err(Error::Invalid(format!("unknown key: {field}"))),
            }
        }
    }
    Ok(())
}

/// Every target (a matrix target once per generated name) with its own `description`,
/// and every group; a matrix target also makes a group of the names it generated, as
/// buildx's parser does. All target attributes are evaluated, so errors surface.
pub(crate) fn list(
    definition: &Definition,
) -> Result<(Vec<ListedTarget>, Vec<ListedGroup>), Error> {
    let mut resolver = Resolver {
        definition,
        base: definition.context(),
        resolved: Resolved::default(),
        cache: BTreeMap::new(),
        stack: Vec::new(),
    };
    let functions = &definition.functions;
    let text = |value: &Value| match value {
        Value::Null => Ok(String::new()),
        other => to_string(other).ok_or_else(|| unsuitable("string")),
    };
    let dedup = |names: Vec<String>| {
        let mut out: Vec<String> = Vec::with_capacity(names.len());
        for name in names {
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    };
    let mut groups = Vec::new();
    for (name, group) in &definition.groups {
        let description = match group.get("description") {
            Some(expr) => text(&eval(expr, &resolver.base, functions)?)?,
            None => String::new(),
        };
        let members = match group.get("targets") {
            Some(expr) => string_list("targets", &eval(expr, &resolver.base, functions)?)?,
            None => Vec::new(),
        };
        groups.push(ListedGroup {
            name: name.clone(),
            description,
            targets: dedup(members),
        });
    }
    let mut targets = Vec::new();
    for name in &definition.target_order {
        let block = definition.targets[name].clone();
        let entries = match block.get("matrix") {
            Some(matrix) => resolver.matrix_entries(name, matrix, &block)?,
            None => vec![(name.clone(), resolver.base.clone())],
        };
        let mut generated = Vec::new();
        for (target, ctx) in entries {
            let attrs = resolver.evaluate_block(&block, &ctx)?;
            let description = match attrs.get("description") {
                Some(value) => text(value)?,
                None => String::new(),
            };
            generated.push(target.clone());
            targets.push(ListedTarget {
                name: target,
                description,
            });
        }
        if generated != [name.clone()] {
            groups.push(ListedGroup {
                name: name.clone(),
                description: String::new(),
                targets: dedup(generated),
            });
        }
    }
    Ok((targets, groups))
}

pub(crate) fn resolve(definition: &Definition, request: &Request) -> Result<Resolved, Error> {
    let requested: Vec<String> = if request.targets.is_empty() {
        vec!["default".to_owned()]
    } else {
        request.targets.clone()
    };
    let mut resolver = Resolver {
        definition,
        base: definition.context(),
        resolved: Resolved::default(),
        cache: BTreeMap::new(),
        stack: Vec::new(),
    };
    for name in &requested {
        resolver.resolve_name(name)?;
    }
    let default_members = resolver.default_members(&requested)?;
    let linked = resolver.resolve_links()?;
    let mut resolved = resolver.resolved;
    resolved
        .groups
        .insert("default".to_owned(), default_members);
    apply_sets(&mut resolved, request)?;
    for (name, target) in resolved.targets.iter_mut() {
        if linked.contains(name) {
            target.insert("output".into(), json!([{"type": "cacheonly"}]));
        }
        if let Some(epoch) = request.env.get("SOURCE_DATE_EPOCH") {
            let args = target
                .entry("args")
                .or_insert_with(|| Json::Object(Map::new()));
            if let Json::Object(args) = args {
                args.entry("SOURCE_DATE_EPOCH")
                    .or_insert_with(|| Json::String(epoch.clone()));
            }
        }
        if request.no_cache {
            target.insert("no-cache".into(), Json::Bool(true));
        }
        if request.pull {
            target.insert("pull".into(), Json::Bool(true));
        }
        if let Some(Json::Array(ssh)) = target.get("ssh") {
            for entry in ssh {
                let no_paths = entry.get("paths").is_none();
                if no_paths && !request.env.contains_key("SSH_AUTH_SOCK") {
                    return Err(Error::Invalid(
                        "invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set".into(),
                    ));
                }
            }
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::{clean_context, set_load, set_push};
    use serde_json::json;

    #[test]
    fn push_and_load_shorthands_adjust_outputs_like_buildx() {
        let mut none = json!([]);
        set_push(&mut none, true);
        assert_eq!(none, json!([{"type": "image", "push": "true"}]));
        let mut image = json!([{"type": "image", "name": "x"}]);
        set_push(&mut image, true);
        assert_eq!(
            image,
            json!([{"type": "image", "name": "x", "push": "true"}])
        );
        let mut registry = json!([{"type": "registry"}, {"type": "image"}]);
        set_push(&mut registry, false);
        assert_eq!(registry, json!([{"type": "image", "push": "false"}]));
        let mut local = json!([{"type": "local", "dest": "out"}]);
        set_load(&mut local);
        assert_eq!(local, json!([{"type": "local", "dest": "out"}]));
        let mut pushed = json!([{"type": "image", "push": "true"}]);
        set_load(&mut pushed);
        assert_eq!(
            pushed,
            json!([{"type": "image", "push": "true"}, {"type": "docker"}])
        );
    }

    #[test]
    fn local_contexts_are_cleaned_like_go_path_clean() {
        assert_eq!(clean_context("./backend"), "backend");
        assert_eq!(clean_context("./"), ".");
        assert_eq!(clean_context("a/../b/./c/"), "b/c");
        assert_eq!(clean_context("../up"), "../up");
        assert_eq!(clean_context("/abs/../x"), "/x");
        assert_eq!(
            clean_context("https://github.com/moby/buildkit.git#v0.15.0"),
            "https://github.com/moby/buildkit.git#v0.15.0"
        );
    }
}
