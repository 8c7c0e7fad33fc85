//! Targets as buildx resolves them: every block evaluated (matrices expanded, names
//! checked) into a `Config` of targets and groups; then the requested names and
//! patterns expanded through groups, each target resolved through its `inherits`
//! with `--set` applied, `target:` contexts linked, and the checks `bake --print`
//! makes before printing.

use std::collections::{BTreeMap, BTreeSet};

use hcl::eval::Context;
use hcl::{Expression, Value};
use serde_json::{Map, Value as Json, json};

use crate::calls;
use crate::eval::{Block, Definition, Kind};
use crate::glob;
use crate::model::{Group, Override, Target, go_quote};
use crate::{Error, ListedGroup, ListedTarget, Request};

/// A resolved group as `bake --print` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrintedGroup {
    /// Its `description`.
    pub description: String,
    /// Its members, as written (or, for `default`, the requested names).
    pub targets: Vec<String>,
}

/// The resolved groups and targets.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Group name → the group.
    pub groups: BTreeMap<String, PrintedGroup>,
    /// Target name → its fields as `bake --print` shows them.
    pub targets: BTreeMap<String, Map<String, Json>>,
}

impl Resolved {
    /// `{"group": {...}, "target": {...}}`.
    pub fn to_json(&self) -> Json {
        let groups: Map<String, Json> = self
            .groups
            .iter()
            .map(|(k, g)| {
                let mut m = Map::new();
                if !g.description.is_empty() {
                    m.insert("description".into(), g.description.clone().into());
                }
                m.insert("targets".into(), json!(g.targets));
                (k.clone(), Json::Object(m))
            })
            .collect();
        let targets: Map<String, Json> = self
            .targets
            .iter()
            .map(|(k, v)| (k.clone(), Json::Object(v.clone())))
            .collect();
        json!({"group": groups, "target": targets})
    }
}

/// buildx's `Config`: every target (blocks of one name merged) and group, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub(crate) targets: Vec<Target>,
    pub(crate) groups: Vec<Group>,
}

const VALID_NAME: &str = "[a-zA-Z0-9_-]+";

/// buildx's `validateTargetName`.
fn validate_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Ok(())
    } else {
        Err(format!("only {} are allowed", go_quote(VALID_NAME)))
    }
}

fn invalid_name(detail: impl std::fmt::Display) -> Error {
    Error::Hcl(format!("Invalid name; {detail}"))
}

/// One evaluation of a block: the name it gets and the context (a matrix entry).
#[derive(Clone)]
struct Entry {
    name: String,
    ctx: Context<'static>,
}

/// Evaluates the blocks of a definition.
struct Evaluator<'a> {
    definition: &'a Definition,
    base: Context<'static>,
    /// Per block: its entries.
    entries: Vec<Vec<Entry>>,
    /// (kind, name) → the blocks and entries that produce it, in order.
    producers: BTreeMap<(Kind, String), Vec<(usize, usize)>>,
    /// Attribute values already evaluated, per block entry and attribute.
    memo: BTreeMap<(usize, usize, String), Value>,
    progress: BTreeSet<(usize, usize, String)>,
}

fn eval_error(text: String) -> Error {
    Error::Hcl(text)
}

impl<'a> Evaluator<'a> {
    fn new(definition: &'a Definition) -> Self {
        Evaluator {
            definition,
            base: definition.context(),
            entries: Vec::new(),
            producers: BTreeMap::new(),
            memo: BTreeMap::new(),
            progress: BTreeSet::new(),
        }
    }

    fn eval(&self, expr: &Expression, ctx: &Context<'_>) -> Result<Value, Error> {
        calls::evaluate(expr, ctx, &self.definition.functions).map_err(eval_error)
    }

    /// buildx's `GetEvalContexts` and `GetName` for every block, in order.
    fn names(&mut self) -> Result<(), Error> {
        for (index, def) in self.definition.blocks.iter().enumerate() {
            let entries = self.block_entries(def.kind, &def.label, &def.block)?;
            for (e, entry) in entries.iter().enumerate() {
                self.producers
                    .entry((def.kind, entry.name.clone()))
                    .or_default()
                    .push((index, e));
            }
            self.entries.push(entries);
        }
        Ok(())
    }

    fn block_entries(&self, kind: Kind, label: &str, block: &Block) -> Result<Vec<Entry>, Error> {
        if kind == Kind::Group {
            if block.get("matrix").is_some() {
                return Err(invalid_name("matrix is not supported for groups"));
            }
            validate_name(label).map_err(invalid_name)?;
            if block.get("name").is_some() {
                return Err(invalid_name("name is not supported for groups"));
            }
            return Ok(vec![Entry {
                name: label.to_owned(),
                ctx: self.base.clone(),
            }]);
        }
        let contexts = match block.get("matrix") {
            None => vec![self.base.clone()],
            Some(matrix) => self.matrix_contexts(matrix)?,
        };
        let mut entries: Vec<Entry> = Vec::new();
        for ctx in contexts {
            validate_name(label).map_err(invalid_name)?;
            let name = match block.get("name") {
                None => label.to_owned(),
                Some(expr) => {
                    if block.get("matrix").is_none() {
                        return Err(invalid_name("name requires matrix"));
                    }
                    let value = self.eval(expr, &ctx)?;
                    crate::model::scalar_string(&value)
                        .ok_or_else(|| invalid_name("string required"))?
                }
            };
            validate_name(&name).map_err(invalid_name)?;
            entries.push(Entry { name, ctx });
        }
        let mut seen = BTreeSet::new();
        for entry in &entries {
            if !seen.insert(entry.name.clone()) {
                return Err(invalid_name(format!(
                    "duplicate name {}",
                    go_quote(&entry.name)
                )));
            }
        }
        Ok(entries)
    }

    /// A matrix's contexts: keys in order, each key's values in the outer loop, so
    /// the first key varies fastest (buildx walks the keys as Go iterates the map:
    /// almost always in sorted order).
    fn matrix_contexts(&self, matrix: &Expression) -> Result<Vec<Context<'static>>, Error> {
        let value = self.eval(matrix, &self.base)?;
        let Value::Object(map) = value else {
            return Err(invalid_name("matrix must be a map"));
        };
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        let mut combos: Vec<Vec<(String, Value)>> = vec![Vec::new()];
        for key in keys {
            let values: Vec<Value> = match &map[key] {
                Value::Array(items) => items.clone(),
                Value::Object(o) => {
                    let mut entries: Vec<(&String, &Value)> = o.iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                    entries.into_iter().map(|(_, v)| v.clone()).collect()
                }
                _ => return Err(invalid_name("matrix values must be a list")),
            };
            let mut next = Vec::new();
            for v in &values {
                for combo in &combos {
                    let mut c = combo.clone();
                    c.push((key.clone(), v.clone()));
                    next.push(c);
                }
            }
            combos = next;
        }
        Ok(combos
            .into_iter()
            .map(|combo| {
                let mut ctx = self.base.clone();
                for (k, v) in combo {
                    ctx.declare_var(k, v);
                }
                ctx
            })
            .collect())
    }

    /// Evaluates `expr`, first resolving the `target.NAME.ATTR` (and `group.…`) values
    /// it refers to.
    fn eval_with_refs(&mut self, expr: &Expression, ctx: &Context<'_>) -> Result<Value, Error> {
        static REF: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r"\b(target|group)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
                .expect("valid regex")
        });
        let text = expr.to_string();
        let refs: BTreeSet<(String, String, String)> = REF
            .captures_iter(&text)
            .map(|c| (c[1].to_owned(), c[2].to_owned(), c[3].to_owned()))
            .collect();
        if refs.is_empty() {
            return self.eval(expr, ctx);
        }
        let mut scopes: BTreeMap<String, hcl::Map<String, Value>> = BTreeMap::new();
        for (kind_name, name, attr) in refs {
            let kind = if kind_name == "target" {
                Kind::Target
            } else {
                Kind::Group
            };
            let Some(&(block, entry)) = self
                .producers
                .get(&(kind, name.clone()))
                .and_then(|p| p.last())
            else {
                continue;
            };
            let value = self.attr_value(block, entry, &attr)?;
            let objects = scopes.entry(kind_name).or_default();
            if let Value::Object(attrs) = objects.entry(name.clone()).or_insert_with(|| {
                Value::Object(hcl::Map::from_iter([(
                    "name".to_owned(),
                    Value::String(name.clone()),
                )]))
            }) {
                attrs.insert(attr, value);
            }
        }
        let mut scope = ctx.clone();
        for (kind_name, objects) in scopes {
            scope.declare_var(kind_name, Value::Object(objects));
        }
        self.eval(expr, &scope)
    }

    /// One attribute of a block entry, decoded as its field: what `target.NAME.ATTR`
    /// gives (null when the block does not set it).
    fn attr_value(&mut self, block: usize, entry: usize, attr: &str) -> Result<Value, Error> {
        if self.definition.blocks[block].block.get(attr).is_none() {
            return Ok(match attr {
                "name" => Value::String(self.entries[block][entry].name.clone()),
                _ => Value::Null,
            });
        }
        let raw = self.raw_attr(block, entry, attr)?;
        if self.definition.blocks[block].kind == Kind::Target {
            let mut t = Target::default();
            t.set_attr(attr, &raw)?;
            Ok(t.attr_value(attr))
        } else {
            Ok(raw)
        }
    }

    /// Every block evaluated, merged into buildx's `Config`.
    fn config(&mut self) -> Result<Config, Error> {
        self.names()?;
        let mut config = Config::default();
        let mut renamed: Vec<(String, Vec<String>)> = Vec::new();
        for (index, def) in self.definition.blocks.iter().enumerate() {
            for (e, entry) in self.entries[index].clone().into_iter().enumerate() {
                match def.kind {
                    Kind::Target => {
                        let mut target = Target {
                            name: entry.name.clone(),
                            ..Default::default()
                        };
                        for (key, _) in &def.block.attrs {
                            if matches!(key.as_str(), "matrix" | "name") {
                                continue;
                            }
                            if !is_target_field(key) {
                                continue;
                            }
                            let raw_value = self.raw_attr(index, e, key)?;
                            target.set_attr(key, &raw_value)?;
                        }
                        match config.targets.iter_mut().find(|t| t.name == target.name) {
                            Some(existing) => existing.merge(&target),
                            None => config.targets.push(target),
                        }
                    }
                    Kind::Group => {
                        let mut group = Group {
                            name: entry.name.clone(),
                            ..Default::default()
                        };
                        if def.block.get("targets").is_none() {
                            return Err(Error::Hcl(
                                "Missing required argument; The argument \"targets\" is required, but no definition was found."
                                    .to_owned(),
                            ));
                        }
                        for (key, expr) in &def.block.attrs {
                            let value = match key.as_str() {
                                "description" | "targets" => {
                                    self.eval_with_refs(expr, &entry.ctx.clone())?
                                }
                                _ => continue,
                            };
                            if key == "description" {
                                group.description = match &value {
                                    Value::Null => String::new(),
                                    v => crate::model::scalar_string(v).ok_or_else(|| {
                                        Error::Hcl(
                                            "Unsuitable value type; Unsuitable value: string required"
                                                .to_owned(),
                                        )
                                    })?,
                                };
                            } else {
                                group.targets = string_list(&value)?;
                            }
                        }
                        match config.groups.iter_mut().find(|g| g.name == group.name) {
                            Some(existing) => *existing = group,
                            None => config.groups.push(group),
                        }
                    }
                }
            }
            if def.kind == Kind::Target {
                let names: Vec<String> =
                    self.entries[index].iter().map(|e| e.name.clone()).collect();
                match renamed.iter_mut().find(|(label, _)| *label == def.label) {
                    Some((_, all)) => all.extend(names),
                    None if !names.is_empty() => renamed.push((def.label.clone(), names)),
                    None => {}
                }
            }
        }
        for (label, names) in renamed {
            let names = dedup(names);
            if names.len() == 1 && names[0] == label {
                continue;
            }
            config.groups.push(Group {
                name: label,
                description: String::new(),
                targets: names,
            });
        }
        for group in &mut config.groups {
            group.targets = dedup(std::mem::take(&mut group.targets));
        }
        Ok(config)
    }

    /// A block entry's attribute evaluated (not decoded), once: a `target.NAME.ATTR`
    /// reference and the block itself see the same value. An attribute that needs
    /// itself is a reference cycle.
    fn raw_attr(&mut self, block: usize, entry: usize, attr: &str) -> Result<Value, Error> {
        let key = (block, entry, attr.to_owned());
        if let Some(v) = self.memo.get(&key) {
            return Ok(v.clone());
        }
        let def = &self.definition.blocks[block];
        let Some(expr) = def.block.get(attr).cloned() else {
            return Ok(Value::Null);
        };
        if !self.progress.insert(key.clone()) {
            let kind = if def.kind == Kind::Target {
                "target"
            } else {
                "group"
            };
            return Err(Error::Hcl(format!(
                "Invalid expression; reference cycle not allowed for {kind}.{}.{attr}",
                self.entries[block][entry].name
            )));
        }
        let ctx = self.entries[block][entry].ctx.clone();
        let result = self.eval_with_refs(&expr, &ctx);
        self.progress.remove(&key);
        let value = result?;
        self.memo.insert(key, value.clone());
        Ok(value)
    }
}

/// The attributes buildx's `Target` decodes (others are ignored, not evaluated).
fn is_target_field(key: &str) -> bool {
    matches!(
        key,
        "description"
            | "inherits"
            | "annotations"
            | "attest"
            | "context"
            | "contexts"
            | "dockerfile"
            | "dockerfile-inline"
            | "args"
            | "labels"
            | "tags"
            | "cache-from"
            | "cache-to"
            | "target"
            | "secret"
            | "ssh"
            | "platforms"
            | "output"
            | "pull"
            | "no-cache"
            | "network"
            | "no-cache-filter"
            | "shm-size"
            | "ulimits"
            | "call"
            | "entitlements"
            | "extra-hosts"
    )
}

fn string_list(v: &Value) -> Result<Vec<String>, Error> {
    let unsuitable = || {
        Error::Hcl("Unsuitable value type; Unsuitable value: list of string required".to_owned())
    };
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Null => Err(Error::Hcl(
                    "Unsuitable value type; Unsuitable value: null value is not allowed".to_owned(),
                )),
                other => crate::model::scalar_string(other).ok_or_else(unsuitable),
            })
            .collect(),
        _ => Err(unsuitable()),
    }
}

/// buildx's `dedupSlice`.
fn dedup(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The definition's `Config` (what `--list` shows and targets resolve from).
pub(crate) fn config(definition: &Definition) -> Result<Config, Error> {
    Evaluator::new(definition).config()
}

/// Every target and group, for `--list`.
pub(crate) fn list(
    definition: &Definition,
) -> Result<(Vec<ListedTarget>, Vec<ListedGroup>), Error> {
    let config = config(definition)?;
    let targets = config
        .targets
        .iter()
        .map(|t| ListedTarget {
            name: t.name.clone(),
            description: t.description.clone(),
        })
        .collect();
    let groups = config
        .groups
        .iter()
        .map(|g| ListedGroup {
            name: g.name.clone(),
            description: g.description.clone(),
            targets: g.targets.clone(),
        })
        .collect();
    Ok((targets, groups))
}

impl Config {
    /// `matchNames`: a name, or the groups then targets a pattern matches.
    fn match_names(&self, pattern: &str) -> Result<Vec<String>, Error> {
        if !pattern.contains(['*', '?', '[', ']']) {
            return Ok(vec![pattern.to_owned()]);
        }
        let names: Vec<String> = self
            .groups
            .iter()
            .map(|g| &g.name)
            .chain(self.targets.iter().map(|t| &t.name))
            .filter(|n| glob::matches(pattern, n) == Ok(true))
            .cloned()
            .collect();
        if names.is_empty() {
            return Err(Error::NoMatch {
                quoted: go_quote(pattern),
            });
        }
        Ok(names)
    }

    /// `expandTargets`: the targets (not groups) a `--set` pattern names.
    fn expand_targets(&self, pattern: &str) -> Result<Vec<String>, Error> {
        if self.targets.iter().any(|t| t.name == pattern) {
            return Ok(vec![pattern.to_owned()]);
        }
        let mut names = Vec::new();
        for t in &self.targets {
            match glob::matches(pattern, &t.name) {
                Ok(true) => names.push(t.name.clone()),
                Ok(false) => {}
                Err(glob::BadPattern) => return Err(Error::BadPattern(pattern.to_owned())),
            }
        }
        if names.is_empty() {
            return Err(Error::NoMatch {
                quoted: format!("'{pattern}'"),
            });
        }
        Ok(names)
    }

    /// `ResolveGroup`: the targets and groups a name expands to.
    fn resolve_group(&self, name: &str) -> (Vec<String>, Vec<String>) {
        let mut visited: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
        let (targets, groups) = self.group(name, &mut visited);
        (dedup(targets), dedup(groups))
    }

    fn group(
        &self,
        name: &str,
        visited: &mut BTreeMap<String, (Vec<String>, Vec<String>)>,
    ) -> (Vec<String>, Vec<String>) {
        if let Some(v) = visited.get(name) {
            return v.clone();
        }
        let Some(g) = self.groups.iter().find(|g| g.name == name) else {
            return (vec![name.to_owned()], Vec::new());
        };
        visited.insert(name.to_owned(), (Vec::new(), Vec::new()));
        let mut targets = Vec::new();
        let mut groups = vec![name.to_owned()];
        for t in &g.targets {
            let (tt, tg) = self.group(t, visited);
            if tt.is_empty() {
                targets.push(t.clone());
            } else {
                targets.extend(tt);
            }
            groups.extend(tg);
        }
        visited.insert(name.to_owned(), (targets.clone(), groups.clone()));
        (targets, groups)
    }

    /// `ResolveTarget`: the target through its `inherits`, with `--set` applied.
    fn resolve_target(&self, name: &str, overrides: &Overrides) -> Result<Target, Error> {
        let mut visited: BTreeMap<String, Option<Target>> = BTreeMap::new();
        let mut t = self
            .target(name, &mut visited, overrides)?
            .expect("a target resolved first is never a cycle");
        t.inherits.clear();
        if t.context.is_none() {
            t.context = Some(".".to_owned());
        }
        if t.dockerfile.as_deref().is_none_or(str::is_empty) {
            t.dockerfile = Some("Dockerfile".to_owned());
        }
        Ok(t)
    }

    fn target(
        &self,
        name: &str,
        visited: &mut BTreeMap<String, Option<Target>>,
        overrides: &Overrides,
    ) -> Result<Option<Target>, Error> {
        if let Some(t) = visited.get(name) {
            return Ok(t.clone());
        }
        visited.insert(name.to_owned(), None);
        let Some(t) = self.targets.iter().find(|t| t.name == name) else {
            return Err(Error::UnknownTarget(name.to_owned()));
        };
        let mut tt = Target::default();
        for parent in &t.inherits {
            if let Some(p) = self.target(parent, visited, overrides)? {
                tt.merge(&p);
            }
        }
        let mut m = Target::default();
        m.merge(&tt);
        m.merge(t);
        m.name = name.to_owned();
        if let Some(o) = overrides.get(name) {
            m.add_overrides(o)?;
        }
        m.normalize();
        visited.insert(name.to_owned(), Some(m.clone()));
        Ok(Some(m))
    }

    /// `newOverrides`: `--set` values per target and key, keys in first-given order.
    fn new_overrides(
        &self,
        sets: &[String],
        env: &BTreeMap<String, String>,
    ) -> Result<Overrides, Error> {
        let mut m: Overrides = BTreeMap::new();
        for v in sets {
            let (lhs, value) = match v.split_once('=') {
                Some((l, r)) => (l, Some(r)),
                None => (v.as_str(), None),
            };
            let append = lhs.ends_with('+');
            let skey = lhs.strip_suffix('+').unwrap_or(lhs);
            let keys: Vec<&str> = skey.splitn(3, '.').collect();
            if keys.len() < 2 {
                return Err(Error::Override(format!(
                    "invalid override key {skey}, expected target.name"
                )));
            }
            let pattern = keys[0];
            if value.is_none() && keys[1] != "args" {
                return Err(Error::Override(format!(
                    "invalid override {v}, expected target.name=value"
                )));
            }
            let names = self.expand_targets(pattern)?;
            let okey = keys[1..].join(".");
            for name in names {
                let target = m.entry(name).or_default();
                let slot = match target.iter().position(|(k, _)| *k == okey) {
                    Some(i) => i,
                    None => {
                        target.push((okey.clone(), Override::default()));
                        target.len() - 1
                    }
                };
                let o = &mut target[slot].1;
                match keys[1] {
                    "output" | "cache-to" | "cache-from" | "tags" | "platform" | "secrets"
                    | "ssh" | "attest" | "entitlements" | "network" | "annotations" => {
                        if let Some(value) = value {
                            o.append = append;
                            o.arr_value.push(value.to_owned());
                        }
                    }
                    "args" | "contexts" => {
                        if keys.len() != 3 {
                            return Err(Error::Override(format!(
                                "invalid key {lhs}, {} requires name",
                                keys[1]
                            )));
                        }
                        match value {
                            Some(value) => o.value = value.to_owned(),
                            None => match env.get(keys[2]) {
                                Some(from_env) => o.value = from_env.clone(),
                                None => {
                                    // Not set: no override at all.
                                    if o.value.is_empty() && o.arr_value.is_empty() {
                                        target.remove(slot);
                                    }
                                    continue;
                                }
                            },
                        }
                    }
                    _ => {
                        if let Some(value) = value {
                            o.value = value.to_owned();
                        }
                    }
                }
            }
        }
        Ok(m)
    }

    /// `loadLinks`: targets named by `target:` contexts are resolved too (building only
    /// to the cache), their entitlements flow to the target using them, and their
    /// platforms must cover its own.
    fn load_links(
        &self,
        name: &str,
        targets: &mut BTreeMap<String, Target>,
        overrides: &Overrides,
        visited: &[String],
    ) -> Result<(), Error> {
        let mut visited = visited.to_vec();
        visited.push(name.to_owned());
        let contexts: Vec<String> = targets[name]
            .contexts
            .iter()
            .flatten()
            .map(|(_, v)| v.clone())
            .collect();
        for v in contexts {
            let Some(linked) = v.strip_prefix("target:") else {
                continue;
            };
            if linked == name {
                return Err(Error::SelfLink(linked.to_owned()));
            }
            if visited.iter().any(|n| n == linked) {
                return Err(Error::LinkLoop {
                    from: name.to_owned(),
                    to: linked.to_owned(),
                });
            }
            if !targets.contains_key(linked) {
                let mut t2 = self.resolve_target(linked, overrides)?;
                t2.outputs = Some(vec![crate::model::ExportEntry {
                    kind: "cacheonly".into(),
                    ..Default::default()
                }]);
                t2.linked = true;
                targets.insert(linked.to_owned(), t2);
            }
            self.load_links(linked, targets, overrides, &visited)?;
            let t2 = targets[linked].clone();
            let t = targets.get_mut(name).expect("resolved");
            for e in t2.entitlements.iter().flatten() {
                let list = t.entitlements.get_or_insert_with(Vec::new);
                if !list.contains(e) {
                    list.push(e.clone());
                }
            }
            let (mine, theirs) = (
                t.platforms.clone().unwrap_or_default(),
                t2.platforms.clone().unwrap_or_default(),
            );
            if mine.len() > 1 && theirs.len() > 1 && !mine.iter().all(|p| theirs.contains(p)) {
                return Err(Error::LinkPlatforms {
                    linked: linked.to_owned(),
                    user: name.to_owned(),
                    user_platforms: mine,
                    linked_platforms: theirs,
                });
            }
        }
        Ok(())
    }
}

/// `--set` overrides: target → (key, override), keys in the order first given.
type Overrides = BTreeMap<String, Vec<(String, Override)>>;

/// buildx's `sanitizeTargetName`: Compose service names may hold dots.
fn sanitize_target_name(name: &str) -> String {
    name.replace('.', "_")
}

/// `bake --print`: `ReadTargets`, then the checks and clean-up of building options.
pub(crate) fn resolve(definition: &Definition, request: &Request) -> Result<Resolved, Error> {
    let config = config(definition)?;
    let requested: Vec<String> = if request.targets.is_empty() {
        vec!["default".to_owned()]
    } else {
        request
            .targets
            .iter()
            .map(|t| sanitize_target_name(t))
            .collect()
    };
    let mut names = Vec::new();
    for t in &requested {
        names.extend(config.match_names(t)?);
    }
    let names = dedup(names);

    let mut sets = request.sets.clone();
    if request.no_cache {
        sets.push("*.no-cache=true".to_owned());
    }
    if request.pull {
        sets.push("*.pull=true".to_owned());
    }
    let overrides = config.new_overrides(&sets, &request.env)?;

    let mut targets: BTreeMap<String, Target> = BTreeMap::new();
    let mut groups: BTreeMap<String, PrintedGroup> = BTreeMap::new();
    for name in &names {
        let (ts, gs) = config.resolve_group(name);
        for t in ts {
            let target = config.resolve_target(&t, &overrides)?;
            targets.insert(t, target);
        }
        for g in gs {
            if let Some(group) = config.groups.iter().find(|x| x.name == g) {
                groups.insert(
                    g,
                    PrintedGroup {
                        description: group.description.clone(),
                        targets: group.targets.clone(),
                    },
                );
            }
        }
    }
    for name in &names {
        if groups.contains_key("default") && name == "default" {
            continue;
        }
        groups
            .entry("default".to_owned())
            .or_default()
            .targets
            .push(name.clone());
    }
    if let Some(g) = groups.get_mut("default") {
        g.targets = dedup(std::mem::take(&mut g.targets));
        g.targets.sort();
    }
    let resolved_names: Vec<String> = targets.keys().cloned().collect();
    for name in resolved_names {
        config.load_links(&name, &mut targets, &overrides, &[])?;
    }

    if let Some(epoch) = request
        .env
        .get("SOURCE_DATE_EPOCH")
        .filter(|v| !v.is_empty())
    {
        for t in targets.values_mut() {
            let args = t.args.get_or_insert_with(BTreeMap::new);
            args.entry("SOURCE_DATE_EPOCH".to_owned())
                .or_insert_with(|| Some(epoch.clone()));
        }
    }
    for t in targets.values_mut() {
        crate::options::check(t, request)?;
    }
    Ok(Resolved {
        groups,
        targets: targets
            .into_iter()
            .map(|(name, t)| (name, t.to_json()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::validate_name;

    #[test]
    fn target_names_are_checked_like_buildx() {
        assert!(validate_name("foo-bar_1").is_ok());
        assert_eq!(
            validate_name("foo.bar").unwrap_err(),
            "only \"[a-zA-Z0-9_-]+\" are allowed"
        );
        assert!(validate_name("").is_err());
    }
}
