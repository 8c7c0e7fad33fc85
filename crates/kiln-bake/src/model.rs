//! A Bake target as buildx types it (`bake.Target` and `util/buildflags`): its fields
//! with Go's nil-or-set distinction, the entries of its list attributes, how a later
//! definition merges over an earlier one (`Target.Merge`), how `--set` changes it
//! (`AddOverrides`), its clean-up (`normalize`) and its JSON.

use std::collections::BTreeMap;

use hcl::Value;
use serde_json::{Map, Value as Json};

use crate::Error;

/// An `output` entry (`buildflags.ExportEntry`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExportEntry {
    pub(crate) kind: String,
    pub(crate) attrs: BTreeMap<String, String>,
    pub(crate) dest: String,
}

/// A `cache-from`/`cache-to` entry (`buildflags.CacheOptionsEntry`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CacheEntry {
    pub(crate) kind: String,
    pub(crate) attrs: BTreeMap<String, String>,
}

/// A `secret` entry (`buildflags.Secret`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Secret {
    pub(crate) id: String,
    pub(crate) src: String,
    pub(crate) env: String,
}

/// An `ssh` entry (`buildflags.SSH`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ssh {
    pub(crate) id: String,
    pub(crate) paths: Vec<String>,
}

/// An `attest` entry (`buildflags.Attest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Attest {
    pub(crate) kind: String,
    pub(crate) disabled: bool,
    pub(crate) attrs: BTreeMap<String, String>,
}

/// A target with buildx's field types: `None` is Go's nil (not set), which is what
/// decides whether a later definition overrides an earlier one.
#[derive(Debug, Clone, Default)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) inherits: Vec<String>,
    pub(crate) annotations: Option<Vec<String>>,
    pub(crate) attest: Option<Vec<Attest>>,
    pub(crate) context: Option<String>,
    pub(crate) contexts: Option<BTreeMap<String, String>>,
    pub(crate) dockerfile: Option<String>,
    pub(crate) dockerfile_inline: Option<String>,
    pub(crate) args: Option<BTreeMap<String, Option<String>>>,
    pub(crate) labels: Option<BTreeMap<String, Option<String>>>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) cache_from: Option<Vec<CacheEntry>>,
    pub(crate) cache_to: Option<Vec<CacheEntry>>,
    pub(crate) target: Option<String>,
    pub(crate) secrets: Option<Vec<Secret>>,
    pub(crate) ssh: Option<Vec<Ssh>>,
    pub(crate) platforms: Option<Vec<String>>,
    pub(crate) outputs: Option<Vec<ExportEntry>>,
    pub(crate) pull: Option<bool>,
    pub(crate) no_cache: Option<bool>,
    pub(crate) network: Option<String>,
    pub(crate) no_cache_filter: Option<Vec<String>>,
    pub(crate) shm_size: Option<String>,
    pub(crate) ulimits: Option<Vec<String>>,
    pub(crate) call: Option<String>,
    pub(crate) entitlements: Option<Vec<String>>,
    pub(crate) extra_hosts: Option<BTreeMap<String, Option<String>>>,
    /// Pulled in only through another target's `target:` context.
    pub(crate) linked: bool,
}

/// A group: its `description` and `targets`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) targets: Vec<String>,
}

// ---------------------------------------------------------------------------------
// Go slice helpers

/// Go's `append(a, b...)` on a nil-able slice: appending nothing to nil stays nil.
fn append<T: Clone>(a: &mut Option<Vec<T>>, b: &[T]) {
    if b.is_empty() && a.is_none() {
        return;
    }
    a.get_or_insert_with(Vec::new).extend_from_slice(b);
}

/// buildflags' `removeDupes`: walks backwards, and a later duplicate of an element is
/// swapped with the last element and cut off (so the order can change). Returns the
/// new length; the slice itself is only permuted.
fn remove_dupes_swap<T: PartialEq>(s: &mut [T]) -> usize {
    let mut len = s.len();
    if len < 2 {
        return len;
    }
    let mut i = len - 1;
    while i > 0 {
        i -= 1;
        for j in i + 1..len {
            if s[i] == s[j] {
                s.swap(j, len - 1);
                len -= 1;
                break;
            }
        }
    }
    len
}

/// `Exports/CacheOptions.Normalize()`: nil when empty, else duplicates removed.
fn normalize_swap<T: PartialEq>(v: Option<Vec<T>>) -> Option<Vec<T>> {
    let mut v = v?;
    if v.is_empty() {
        return None;
    }
    let len = remove_dupes_swap(&mut v);
    v.truncate(len);
    Some(v)
}

/// `removeSecretDupes`/`removeSSHDupes`/`removeAttestDupes`: one entry per key, at the
/// first one's place, with the last one's value.
fn dedup_by_key<T: Clone>(v: &[T], key: impl Fn(&T) -> &str) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    for item in v {
        match at.get(key(item)) {
            Some(&i) => out[i] = item.clone(),
            None => {
                at.insert(key(item).to_owned(), out.len());
                out.push(item.clone());
            }
        }
    }
    out
}

/// `Secrets/SSHKeys/Attests.Normalize()` (nil when empty). Attests normalise an empty
/// list to `[]`, which is the same when printed.
fn normalize_keyed<T: Clone>(v: Option<Vec<T>>, key: impl Fn(&T) -> &str) -> Option<Vec<T>> {
    let v = v?;
    if v.is_empty() {
        return None;
    }
    Some(dedup_by_key(&v, key))
}

/// `Secrets/SSHKeys/Attests.Merge(other)` for a non-nil `other`.
fn merge_keyed<T: Clone>(
    a: Option<Vec<T>>,
    other: &[T],
    key: impl Fn(&T) -> &str,
) -> Option<Vec<T>> {
    match a {
        // The normalised copy is thrown away in buildx: `other` is kept as it is.
        None => Some(other.to_vec()),
        Some(mut a) => {
            a.extend_from_slice(other);
            normalize_keyed(Some(a), key)
        }
    }
}

/// `CacheOptions.Merge(other)` for a non-nil `other`.
fn merge_cache(a: Option<Vec<CacheEntry>>, other: Vec<CacheEntry>) -> Option<Vec<CacheEntry>> {
    match a {
        None => normalize_swap(Some(other)),
        Some(mut a) => {
            a.extend(other);
            normalize_swap(Some(a))
        }
    }
}

/// `Exports.Merge(other)` for a non-nil `other`: when one side is nil the other is
/// only permuted by the normalisation (its result is not kept).
fn merge_exports(
    a: Option<Vec<ExportEntry>>,
    mut other: Vec<ExportEntry>,
) -> Option<Vec<ExportEntry>> {
    match a {
        None => {
            remove_dupes_swap(&mut other);
            Some(other)
        }
        Some(mut a) => {
            a.extend(other);
            normalize_swap(Some(a))
        }
    }
}

/// `removeDupesStr`: duplicates and empty strings dropped, first occurrence kept.
pub(crate) fn remove_dupes_str(v: Option<Vec<String>>) -> Option<Vec<String>> {
    let v = v?;
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for s in v {
        if s.is_empty() || out.contains(&s) {
            continue;
        }
        out.push(s);
    }
    Some(out)
}

fn merge_map<V: Clone>(
    into: &mut Option<BTreeMap<String, Option<V>>>,
    from: &Option<BTreeMap<String, Option<V>>>,
) {
    for (k, v) in from.iter().flatten() {
        if v.is_none() {
            continue;
        }
        into.get_or_insert_with(BTreeMap::new)
            .insert(k.clone(), v.clone());
    }
}

impl Target {
    /// `Target.Merge`: `t2`'s fields over these, per field either replacing or appending
    /// as buildx does.
    pub(crate) fn merge(&mut self, t2: &Target) {
        if t2.context.is_some() {
            self.context.clone_from(&t2.context);
        }
        if t2.dockerfile.is_some() {
            self.dockerfile.clone_from(&t2.dockerfile);
        }
        if t2.dockerfile_inline.is_some() {
            self.dockerfile_inline.clone_from(&t2.dockerfile_inline);
        }
        merge_map(&mut self.args, &t2.args);
        for (k, v) in t2.contexts.iter().flatten() {
            self.contexts
                .get_or_insert_with(BTreeMap::new)
                .insert(k.clone(), v.clone());
        }
        merge_map(&mut self.labels, &t2.labels);
        if t2.tags.is_some() {
            self.tags.clone_from(&t2.tags);
        }
        if t2.target.is_some() {
            self.target.clone_from(&t2.target);
        }
        if t2.call.is_some() {
            self.call.clone_from(&t2.call);
        }
        if let Some(more) = &t2.annotations {
            append(&mut self.annotations, more);
        }
        if let Some(more) = &t2.attest {
            self.attest = merge_keyed(self.attest.take(), more, |a| &a.kind);
        }
        if let Some(more) = &t2.secrets {
            self.secrets = merge_keyed(self.secrets.take(), more, |s| &s.id);
        }
        if let Some(more) = &t2.ssh {
            self.ssh = merge_keyed(self.ssh.take(), more, |s| &s.id);
        }
        if t2.platforms.is_some() {
            self.platforms.clone_from(&t2.platforms);
        }
        if let Some(more) = &t2.cache_from {
            self.cache_from = merge_cache(self.cache_from.take(), more.clone());
        }
        if t2.cache_to.is_some() {
            self.cache_to.clone_from(&t2.cache_to);
        }
        if t2.outputs.is_some() {
            self.outputs.clone_from(&t2.outputs);
        }
        if t2.pull.is_some() {
            self.pull = t2.pull;
        }
        if t2.no_cache.is_some() {
            self.no_cache = t2.no_cache;
        }
        if t2.network.is_some() {
            self.network.clone_from(&t2.network);
        }
        if let Some(more) = &t2.no_cache_filter {
            append(&mut self.no_cache_filter, more);
        }
        if t2.shm_size.is_some() {
            self.shm_size.clone_from(&t2.shm_size);
        }
        if let Some(more) = &t2.ulimits {
            append(&mut self.ulimits, more);
        }
        if !t2.description.is_empty() {
            self.description.clone_from(&t2.description);
        }
        if let Some(more) = &t2.entitlements {
            append(&mut self.entitlements, more);
        }
        merge_map(&mut self.extra_hosts, &t2.extra_hosts);
        self.inherits.extend(t2.inherits.iter().cloned());
    }

    /// `Target.normalize`: duplicates dropped from every list, `network = "host"`
    /// implies the `network.host` entitlement, empty named contexts dropped.
    pub(crate) fn normalize(&mut self) {
        self.annotations = remove_dupes_str(self.annotations.take());
        self.attest = normalize_keyed(self.attest.take(), |a| &a.kind);
        self.tags = remove_dupes_str(self.tags.take());
        self.secrets = normalize_keyed(self.secrets.take(), |s| &s.id);
        self.ssh = normalize_keyed(self.ssh.take(), |s| &s.id);
        self.platforms = remove_dupes_str(self.platforms.take());
        self.cache_from = normalize_swap(self.cache_from.take());
        self.cache_to = normalize_swap(self.cache_to.take());
        self.outputs = normalize_swap(self.outputs.take());
        self.no_cache_filter = remove_dupes_str(self.no_cache_filter.take());
        self.ulimits = remove_dupes_str(self.ulimits.take());
        if self.network.as_deref() == Some("host") {
            append(&mut self.entitlements, &["network.host".to_owned()]);
        }
        self.entitlements = remove_dupes_str(self.entitlements.take());
        if let Some(contexts) = &mut self.contexts {
            contexts.retain(|_, v| !v.is_empty());
            if contexts.is_empty() {
                self.contexts = None;
            }
        }
    }

    /// The target as `bake --print` shows it.
    pub(crate) fn to_json(&self) -> Map<String, Json> {
        fn esc(s: &str) -> String {
            s.replace("${", "$${").replace("%{", "%%{")
        }
        let mut out = Map::new();
        let strings = |v: &[String]| Json::Array(v.iter().cloned().map(Json::String).collect());
        let string_map = |m: &BTreeMap<String, Option<String>>| {
            Json::Object(
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_deref().map_or(Json::Null, |s| Json::String(esc(s))),
                        )
                    })
                    .collect(),
            )
        };
        if !self.description.is_empty() {
            out.insert("description".into(), self.description.clone().into());
        }
        if let Some(v) = self.annotations.as_ref().filter(|v| !v.is_empty()) {
            let escaped: Vec<String> = v.iter().map(|s| esc(s)).collect();
            out.insert("annotations".into(), strings(&escaped));
        }
        if let Some(v) = self.attest.as_ref().filter(|v| !v.is_empty()) {
            out.insert(
                "attest".into(),
                Json::Array(v.iter().map(Attest::to_json).collect()),
            );
        }
        if let Some(v) = &self.context {
            out.insert("context".into(), v.clone().into());
        }
        if let Some(v) = self.contexts.as_ref().filter(|v| !v.is_empty()) {
            out.insert(
                "contexts".into(),
                Json::Object(
                    v.iter()
                        .map(|(k, v)| (k.clone(), Json::String(v.clone())))
                        .collect(),
                ),
            );
        }
        if let Some(v) = &self.dockerfile {
            out.insert("dockerfile".into(), v.clone().into());
        }
        if let Some(v) = &self.dockerfile_inline {
            out.insert("dockerfile-inline".into(), esc(v).into());
        }
        if let Some(v) = self.args.as_ref().filter(|v| !v.is_empty()) {
            out.insert("args".into(), string_map(v));
        }
        if let Some(v) = self.labels.as_ref().filter(|v| !v.is_empty()) {
            out.insert("labels".into(), string_map(v));
        }
        if let Some(v) = self.tags.as_ref().filter(|v| !v.is_empty()) {
            out.insert("tags".into(), strings(v));
        }
        for (key, list) in [
            ("cache-from", &self.cache_from),
            ("cache-to", &self.cache_to),
        ] {
            if let Some(v) = list.as_ref().filter(|v| !v.is_empty()) {
                out.insert(
                    key.into(),
                    Json::Array(v.iter().map(CacheEntry::to_json).collect()),
                );
            }
        }
        if let Some(v) = &self.target {
            out.insert("target".into(), v.clone().into());
        }
        if let Some(v) = self.secrets.as_ref().filter(|v| !v.is_empty()) {
            out.insert(
                "secret".into(),
                Json::Array(v.iter().map(Secret::to_json).collect()),
            );
        }
        if let Some(v) = self.ssh.as_ref().filter(|v| !v.is_empty()) {
            out.insert(
                "ssh".into(),
                Json::Array(v.iter().map(Ssh::to_json).collect()),
            );
        }
        if let Some(v) = self.platforms.as_ref().filter(|v| !v.is_empty()) {
            out.insert("platforms".into(), strings(v));
        }
        if let Some(v) = self.outputs.as_ref().filter(|v| !v.is_empty()) {
            out.insert(
                "output".into(),
                Json::Array(v.iter().map(ExportEntry::to_json).collect()),
            );
        }
        if let Some(v) = self.pull {
            out.insert("pull".into(), Json::Bool(v));
        }
        if let Some(v) = self.no_cache {
            out.insert("no-cache".into(), Json::Bool(v));
        }
        if let Some(v) = &self.network {
            out.insert("network".into(), v.clone().into());
        }
        if let Some(v) = self.no_cache_filter.as_ref().filter(|v| !v.is_empty()) {
            out.insert("no-cache-filter".into(), strings(v));
        }
        if let Some(v) = &self.shm_size {
            out.insert("shm-size".into(), v.clone().into());
        }
        if let Some(v) = self.ulimits.as_ref().filter(|v| !v.is_empty()) {
            out.insert("ulimits".into(), strings(v));
        }
        if let Some(v) = &self.call {
            out.insert("call".into(), v.clone().into());
        }
        if let Some(v) = self.entitlements.as_ref().filter(|v| !v.is_empty()) {
            out.insert("entitlements".into(), strings(v));
        }
        if let Some(v) = self.extra_hosts.as_ref().filter(|v| !v.is_empty()) {
            out.insert("extra-hosts".into(), string_map(v));
        }
        out
    }
}

impl ExportEntry {
    fn to_json(&self) -> Json {
        let mut m: Map<String, Json> = self
            .attrs
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        m.insert("type".into(), self.kind.clone().into());
        if !self.dest.is_empty() {
            m.insert("dest".into(), self.dest.clone().into());
        }
        Json::Object(m)
    }

    /// `ExportEntry.UnmarshalText`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let fields = csv_fields(s)?;
        let mut e = ExportEntry::default();
        if fields.len() == 1 && fields[0] == s && !s.starts_with("type=") {
            e.kind = if s == "-" { "tar" } else { "local" }.to_owned();
            e.dest = s.to_owned();
            return Ok(e);
        }
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(format!("invalid value {field}"));
            };
            match key.trim().to_lowercase().as_str() {
                "type" => e.kind = value.to_owned(),
                "dest" => e.dest = value.to_owned(),
                other => {
                    e.attrs.insert(other.to_owned(), value.to_owned());
                }
            }
        }
        e.validate()?;
        Ok(e)
    }

    fn validate(&self) -> Result<(), String> {
        if self.kind.is_empty() {
            return Err("type is required for output".to_owned());
        }
        Ok(())
    }

    /// `ExportEntry.FromCtyValue`: a CSV string or a map of strings.
    fn from_value(v: &Value) -> Result<Self, String> {
        if let Value::String(s) = v {
            return Self::parse(s);
        }
        let mut m = string_map_value(v)?;
        let e = ExportEntry {
            kind: m.remove("type").unwrap_or_default(),
            dest: m.remove("dest").unwrap_or_default(),
            attrs: m,
        };
        e.validate()?;
        Ok(e)
    }
}

impl CacheEntry {
    fn to_json(&self) -> Json {
        let mut m: Map<String, Json> = self
            .attrs
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        m.insert("type".into(), self.kind.clone().into());
        Json::Object(m)
    }

    /// `CacheOptionsEntry.UnmarshalText`.
    fn parse_one(input: &str) -> Result<Self, String> {
        let fields = csv_fields(input)?;
        if fields.len() == 1 && !fields[0].contains('=') {
            return Ok(CacheEntry {
                kind: "registry".to_owned(),
                attrs: BTreeMap::from([("ref".to_owned(), fields[0].clone())]),
            });
        }
        let mut e = CacheEntry::default();
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(format!("invalid value {field}"));
            };
            match key.to_lowercase().as_str() {
                "type" => e.kind = value.to_owned(),
                other => {
                    e.attrs.insert(other.to_owned(), value.to_owned());
                }
            }
        }
        if e.kind.is_empty() {
            return Err(format!("type required form> {}", go_quote(input)));
        }
        Ok(e)
    }

    /// `ParseCacheEntry`: a value without `=` is a CSV list of image references.
    pub(crate) fn parse_list(values: &[String]) -> Result<Vec<Self>, String> {
        let mut out = Vec::new();
        for v in values {
            if v.is_empty() {
                continue;
            }
            if !v.contains('=') {
                for field in csv_fields(v)? {
                    out.push(Self::parse_one(&field)?);
                }
                continue;
            }
            out.push(Self::parse_one(v)?);
        }
        Ok(out)
    }

    fn from_value(v: &Value) -> Result<Self, String> {
        let mut attrs = string_map_value(v)?;
        let kind = attrs.remove("type").unwrap_or_default();
        if kind.is_empty() {
            let text = serde_json::to_string(&value_json(v)).unwrap_or_default();
            return Err(format!("type required form> {}", go_quote(&text)));
        }
        Ok(CacheEntry { kind, attrs })
    }
}

impl Secret {
    fn to_json(&self) -> Json {
        let mut m = Map::new();
        for (k, v) in [("id", &self.id), ("src", &self.src), ("env", &self.env)] {
            if !v.is_empty() {
                m.insert(k.into(), v.clone().into());
            }
        }
        Json::Object(m)
    }

    /// `Secret.UnmarshalText`.
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        let fields = csv_fields(value).map_err(|e| format!("failed to parse csv secret: {e}"))?;
        let mut s = Secret::default();
        let mut kind = String::new();
        for field in fields {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.to_lowercase(), v),
                None => {
                    return Err(format!("invalid field '{field}' must be a key=value pair"));
                }
            };
            match key.as_str() {
                "type" => {
                    if value != "file" && value != "env" {
                        return Err(format!("unsupported secret type {}", go_quote(value)));
                    }
                    kind = value.to_owned();
                }
                "id" => s.id = value.to_owned(),
                "source" | "src" => s.src = value.to_owned(),
                "env" => s.env = value.to_owned(),
                _ => return Err(format!("unexpected key '{key}' in '{field}'")),
            }
        }
        if kind == "env" && s.env.is_empty() {
            s.env = std::mem::take(&mut s.src);
        }
        Ok(s)
    }

    fn from_value(v: &Value) -> Result<Self, String> {
        if let Value::String(s) = v {
            return Self::parse(s);
        }
        let Value::Object(map) = v else {
            return Err("object required".to_owned());
        };
        let get = |k: &str| -> Result<String, String> {
            match map.get(k) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(v) => scalar_string(v).ok_or_else(|| "string required".to_owned()),
            }
        };
        Ok(Secret {
            id: get("id")?,
            src: get("src")?,
            env: get("env")?,
        })
    }
}

impl Ssh {
    fn to_json(&self) -> Json {
        let mut m = Map::new();
        if !self.id.is_empty() {
            m.insert("id".into(), self.id.clone().into());
        }
        if !self.paths.is_empty() {
            m.insert(
                "paths".into(),
                Json::Array(self.paths.iter().cloned().map(Json::String).collect()),
            );
        }
        Json::Object(m)
    }

    /// `SSH.UnmarshalText`: `ID[=PATH,PATH…]`.
    pub(crate) fn parse(text: &str) -> Self {
        match text.split_once('=') {
            Some((id, paths)) => Ssh {
                id: id.to_owned(),
                paths: paths.split(',').map(str::to_owned).collect(),
            },
            None => Ssh {
                id: text.to_owned(),
                paths: Vec::new(),
            },
        }
    }

    fn from_value(v: &Value) -> Result<Self, String> {
        if let Value::String(s) = v {
            return Ok(Self::parse(s));
        }
        let Value::Object(map) = v else {
            return Err("object required".to_owned());
        };
        let id = match map.get("id") {
            None | Some(Value::Null) => String::new(),
            Some(v) => scalar_string(v).ok_or_else(|| "string required".to_owned())?,
        };
        let paths = match map.get("paths") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| scalar_string(i).ok_or_else(|| "string required".to_owned()))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("list of string required".to_owned()),
        };
        Ok(Ssh { id, paths })
    }
}

impl Attest {
    fn to_json(&self) -> Json {
        let mut m: Map<String, Json> = self
            .attrs
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        m.insert("type".into(), self.kind.clone().into());
        if self.disabled {
            m.insert("disabled".into(), Json::Bool(true));
        }
        Json::Object(m)
    }

    /// `Attest.UnmarshalText`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut a = Attest::default();
        for field in csv_fields(text)? {
            let Some((key, value)) = field.split_once('=') else {
                return Err(format!("invalid value {field}"));
            };
            match key.trim().to_lowercase().as_str() {
                "type" => a.kind = value.to_owned(),
                "disabled" => {
                    a.disabled = parse_bool(value).map_err(|e| {
                        format!(
                            "invalid value {field}: strconv.ParseBool: parsing {}: {e}",
                            go_quote(value)
                        )
                    })?;
                }
                _ => {
                    a.attrs.insert(key.to_owned(), value.to_owned());
                }
            }
        }
        if a.kind.is_empty() {
            return Err("attestation type not specified".to_owned());
        }
        Ok(a)
    }

    fn from_value(v: &Value) -> Result<Self, String> {
        if let Value::String(s) = v {
            return Self::parse(s);
        }
        let mut a = Attest::default();
        for (key, value) in string_map_value(v)? {
            match key.as_str() {
                "type" => a.kind = value,
                "disabled" => {
                    a.disabled = parse_bool(&value).map_err(|e| {
                        format!("strconv.ParseBool: parsing {}: {e}", go_quote(&value))
                    })?;
                }
                _ => {
                    a.attrs.insert(key, value);
                }
            }
        }
        Ok(a)
    }
}

// ---------------------------------------------------------------------------------
// Decoding evaluated attribute values into fields (gohcl + cty conversion)

/// A go-cty number as a string (`big.Float.Text('f', -1)`).
pub(crate) fn number_text(n: &hcl::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or_default();
    if f.fract() == 0.0 && f.abs() < 1e300 {
        // Whole numbers print without an exponent.
        return format!("{f:.0}");
    }
    let s = f.to_string();
    if s.contains('e') { format!("{f}") } else { s }
}

/// A primitive converted to a string as cty converts it.
pub(crate) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(number_text(n)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A value as JSON (for messages).
fn value_json(v: &Value) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// cty's conversion of a value to `map(string)`.
fn string_map_value(v: &Value) -> Result<BTreeMap<String, String>, String> {
    let Value::Object(map) = v else {
        return Err("map of string required".to_owned());
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        match v {
            Value::Null => {}
            other => {
                out.insert(
                    k.clone(),
                    scalar_string(other).ok_or_else(|| "map of string required".to_owned())?,
                );
            }
        }
    }
    Ok(out)
}

fn unsuitable(detail: &str) -> Error {
    Error::Hcl(format!("Unsuitable value type; Unsuitable value: {detail}"))
}

fn decode_string(v: &Value) -> Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        other => scalar_string(other)
            .map(Some)
            .ok_or_else(|| unsuitable("string required")),
    }
}

fn decode_bool(v: &Value) -> Result<Option<bool>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) => match s.as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            other => match other.to_lowercase().as_str() {
                l @ ("true" | "false") => Err(unsuitable(&format!(
                    "a bool is required; to convert from string, use lowercase \"{l}\""
                ))),
                _ => Err(unsuitable("a bool is required")),
            },
        },
        _ => Err(unsuitable("bool required")),
    }
}

fn decode_string_list(v: &Value) -> Result<Option<Vec<String>>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Null => Err(unsuitable("null value is not allowed")),
                other => scalar_string(other).ok_or_else(|| unsuitable("list of string required")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Err(unsuitable("list of string required")),
    }
}

fn decode_string_map(v: &Value) -> Result<Option<BTreeMap<String, Option<String>>>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::Null => Ok((k.clone(), None)),
                other => scalar_string(other)
                    .map(|s| (k.clone(), Some(s)))
                    .ok_or_else(|| unsuitable("map of string required")),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map(Some),
        _ => Err(unsuitable("map of string required")),
    }
}

fn decode_contexts(v: &Value) -> Result<Option<BTreeMap<String, String>>, Error> {
    match decode_string_map(v)? {
        None => Ok(None),
        Some(map) => map
            .into_iter()
            .map(|(k, v)| {
                v.map(|v| (k, v))
                    .ok_or_else(|| unsuitable("null value is not allowed"))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map(Some),
    }
}

/// The elements of a list attribute of entries, empty strings skipped (buildx's
/// `eachElement`).
fn entries<T>(
    v: &Value,
    want: &str,
    parse: impl Fn(&Value) -> Result<Vec<T>, String>,
) -> Result<Option<Vec<T>>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(s) if s.is_empty() => continue,
                    Value::Null => {
                        return Err(unsuitable("null value is not allowed"));
                    }
                    other => out.extend(parse(other).map_err(|e| unsuitable(&e))?),
                }
            }
            Ok(Some(out))
        }
        _ => Err(unsuitable(&format!("{want} required"))),
    }
}

impl Target {
    /// Sets one attribute from its evaluated value (gohcl's decoding into the field).
    /// Attributes buildx does not know are ignored.
    pub(crate) fn set_attr(&mut self, key: &str, v: &Value) -> Result<(), Error> {
        match key {
            "description" => self.description = decode_string(v)?.unwrap_or_default(),
            "inherits" => self.inherits = decode_string_list(v)?.unwrap_or_default(),
            "annotations" => self.annotations = decode_string_list(v)?,
            "attest" => {
                self.attest = entries(v, "list of map of string", |i| {
                    Attest::from_value(i).map(|a| vec![a])
                })?;
            }
            "context" => self.context = decode_string(v)?,
            "contexts" => self.contexts = decode_contexts(v)?,
            "dockerfile" => self.dockerfile = decode_string(v)?,
            "dockerfile-inline" => self.dockerfile_inline = decode_string(v)?,
            "args" => self.args = decode_string_map(v)?,
            "labels" => self.labels = decode_string_map(v)?,
            "tags" => self.tags = decode_string_list(v)?,
            "cache-from" | "cache-to" => {
                let list = entries(v, "list of map of string", |i| match i {
                    Value::String(s) => CacheEntry::parse_list(std::slice::from_ref(s)),
                    other => CacheEntry::from_value(other).map(|e| vec![e]),
                })?;
                if key == "cache-from" {
                    self.cache_from = list;
                } else {
                    self.cache_to = list;
                }
            }
            "target" => self.target = decode_string(v)?,
            "secret" => {
                self.secrets = entries(v, "list of object", |i| {
                    Secret::from_value(i).map(|s| vec![s])
                })?;
            }
            "ssh" => {
                self.ssh = entries(v, "list of object", |i| Ssh::from_value(i).map(|s| vec![s]))?;
            }
            "platforms" => self.platforms = decode_string_list(v)?,
            "output" => {
                self.outputs = entries(v, "list of map of string", |i| {
                    ExportEntry::from_value(i).map(|e| vec![e])
                })?;
            }
            "pull" => self.pull = decode_bool(v)?,
            "no-cache" => self.no_cache = decode_bool(v)?,
            "network" => self.network = decode_string(v)?,
            "no-cache-filter" => self.no_cache_filter = decode_string_list(v)?,
            "shm-size" => self.shm_size = decode_string(v)?,
            "ulimits" => self.ulimits = decode_string_list(v)?,
            "call" => self.call = decode_string(v)?,
            "entitlements" => self.entitlements = decode_string_list(v)?,
            "extra-hosts" => self.extra_hosts = decode_string_map(v)?,
            _ => {}
        }
        Ok(())
    }

    /// The value `target.NAME.ATTR` gives for one of the fields (null when not set).
    pub(crate) fn attr_value(&self, key: &str) -> Value {
        let s = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        let list = |v: &Option<Vec<String>>| {
            v.as_ref().map_or(Value::Null, |v| {
                Value::Array(v.iter().cloned().map(Value::String).collect())
            })
        };
        let map = |v: &Option<BTreeMap<String, Option<String>>>| {
            v.as_ref().map_or(Value::Null, |m| {
                Value::Object(
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
                        .collect(),
                )
            })
        };
        let objects = |json: Option<Vec<Json>>| {
            json.map_or(Value::Null, |items| {
                Value::Array(
                    items
                        .into_iter()
                        .map(|j| hcl::to_value(&j).unwrap_or(Value::Null))
                        .collect(),
                )
            })
        };
        match key {
            "name" => Value::String(self.name.clone()),
            "description" => Value::String(self.description.clone()),
            "inherits" => Value::Array(self.inherits.iter().cloned().map(Value::String).collect()),
            "annotations" => list(&self.annotations),
            "attest" => objects(
                self.attest
                    .as_ref()
                    .map(|v| v.iter().map(Attest::to_json).collect()),
            ),
            "context" => s(&self.context),
            "contexts" => self.contexts.as_ref().map_or(Value::Null, |m| {
                Value::Object(
                    m.iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                )
            }),
            "dockerfile" => s(&self.dockerfile),
            "dockerfile-inline" => s(&self.dockerfile_inline),
            "args" => map(&self.args),
            "labels" => map(&self.labels),
            "tags" => list(&self.tags),
            "cache-from" => objects(
                self.cache_from
                    .as_ref()
                    .map(|v| v.iter().map(CacheEntry::to_json).collect()),
            ),
            "cache-to" => objects(
                self.cache_to
                    .as_ref()
                    .map(|v| v.iter().map(CacheEntry::to_json).collect()),
            ),
            "target" => s(&self.target),
            "secret" => objects(
                self.secrets
                    .as_ref()
                    .map(|v| v.iter().map(Secret::to_json).collect()),
            ),
            "ssh" => objects(
                self.ssh
                    .as_ref()
                    .map(|v| v.iter().map(Ssh::to_json).collect()),
            ),
            "platforms" => list(&self.platforms),
            "output" => objects(
                self.outputs
                    .as_ref()
                    .map(|v| v.iter().map(ExportEntry::to_json).collect()),
            ),
            "pull" => self.pull.map_or(Value::Null, Value::Bool),
            "no-cache" => self.no_cache.map_or(Value::Null, Value::Bool),
            "network" => s(&self.network),
            "no-cache-filter" => list(&self.no_cache_filter),
            "shm-size" => s(&self.shm_size),
            "ulimits" => list(&self.ulimits),
            "call" => s(&self.call),
            "entitlements" => list(&self.entitlements),
            "extra-hosts" => map(&self.extra_hosts),
            _ => Value::Null,
        }
    }
}

// ---------------------------------------------------------------------------------
// --set

/// One `--set` override of one target key (buildx's `Override`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Override {
    pub(crate) value: String,
    pub(crate) arr_value: Vec<String>,
    pub(crate) append: bool,
}

/// `strconv.ParseBool`.
pub(crate) fn parse_bool(value: &str) -> Result<bool, String> {
    kiln_oci::go::parse_bool(value).ok_or_else(|| "invalid syntax".to_owned())
}

impl Target {
    /// `Target.AddOverrides`, the keys in the order given.
    pub(crate) fn add_overrides(&mut self, overrides: &[(String, Override)]) -> Result<(), Error> {
        let invalid = Error::Override;
        for (key, o) in overrides {
            let value = o.value.clone();
            let (first, rest) = match key.split_once('.') {
                Some((f, r)) => (f, Some(r)),
                None => (key.as_str(), None),
            };
            let sub_map = |what: &str, hint: &str| -> Result<String, Error> {
                rest.map(str::to_owned).ok_or_else(|| {
                    invalid(format!(
                        "invalid format for {what}, expecting {what}.<{hint}>=<value>"
                    ))
                })
            };
            match first {
                "context" => self.context = Some(value),
                "dockerfile" => self.dockerfile = Some(value),
                "args" => {
                    let k = sub_map("args", "name")?;
                    self.args
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k, Some(value));
                }
                "contexts" => {
                    let k = sub_map("contexts", "name")?;
                    self.contexts
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k, value);
                }
                "labels" => {
                    let k = sub_map("labels", "name")?;
                    self.labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k, Some(value));
                }
                "tags" => {
                    if o.append {
                        append(&mut self.tags, &o.arr_value);
                    } else {
                        self.tags = Some(o.arr_value.clone());
                    }
                }
                "cache-from" | "cache-to" => {
                    let parsed = CacheEntry::parse_list(&o.arr_value).map_err(invalid)?;
                    let field = if first == "cache-from" {
                        &mut self.cache_from
                    } else {
                        &mut self.cache_to
                    };
                    *field = if o.append {
                        merge_cache(field.take(), parsed)
                    } else {
                        Some(parsed)
                    };
                }
                "target" => self.target = Some(value),
                "call" => self.call = Some(value),
                "secrets" => {
                    let parsed = o
                        .arr_value
                        .iter()
                        .filter(|s| !s.is_empty())
                        .map(|s| Secret::parse(s))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| invalid(format!("invalid value for outputs: {e}")))?;
                    self.secrets = if o.append {
                        merge_keyed(self.secrets.take(), &parsed, |s| &s.id)
                    } else {
                        Some(parsed)
                    };
                }
                "ssh" => {
                    let parsed: Vec<Ssh> = o
                        .arr_value
                        .iter()
                        .filter(|s| !s.is_empty())
                        .map(|s| Ssh::parse(s))
                        .collect();
                    self.ssh = if o.append {
                        merge_keyed(self.ssh.take(), &parsed, |s| &s.id)
                    } else {
                        Some(parsed)
                    };
                }
                "platform" => {
                    if o.append {
                        append(&mut self.platforms, &o.arr_value);
                    } else {
                        self.platforms = Some(o.arr_value.clone());
                    }
                }
                "output" => {
                    let parsed = o
                        .arr_value
                        .iter()
                        .filter(|s| !s.is_empty())
                        .map(|s| ExportEntry::parse(s))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| invalid(format!("invalid value for outputs: {e}")))?;
                    self.outputs = if o.append {
                        merge_exports(self.outputs.take(), parsed)
                    } else {
                        Some(parsed)
                    };
                }
                "entitlements" => append(&mut self.entitlements, &o.arr_value),
                "annotations" => append(&mut self.annotations, &o.arr_value),
                "attest" => {
                    let parsed = o
                        .arr_value
                        .iter()
                        .filter(|s| !s.is_empty())
                        .map(|s| Attest::parse(s))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| invalid(format!("invalid value for attest: {e}")))?;
                    self.attest = merge_keyed(self.attest.take(), &parsed, |a| &a.kind);
                }
                "no-cache" | "pull" => {
                    let b = parse_bool(&value).map_err(|_| {
                        invalid(format!("invalid value {value} for boolean key {first}"))
                    })?;
                    if first == "pull" {
                        self.pull = Some(b);
                    } else {
                        self.no_cache = Some(b);
                    }
                }
                "no-cache-filter" => {
                    if o.append {
                        append(&mut self.no_cache_filter, &o.arr_value);
                    } else {
                        self.no_cache_filter = Some(o.arr_value.clone());
                    }
                }
                "shm-size" => self.shm_size = Some(value),
                "ulimits" => {
                    if o.append {
                        append(&mut self.ulimits, &o.arr_value);
                    } else {
                        self.ulimits = Some(o.arr_value.clone());
                    }
                }
                "network" => self.network = Some(value),
                "push" | "load" => {
                    let b = parse_bool(&value).map_err(|_| {
                        invalid(format!("invalid value {value} for boolean key {first}"))
                    })?;
                    let outputs = self.outputs.take().unwrap_or_default();
                    let outputs = if first == "push" {
                        set_push(outputs, b)
                    } else {
                        set_load(outputs, b)
                    };
                    self.outputs = Some(outputs);
                }
                "extra-hosts" => {
                    let k = rest.map(str::to_owned).ok_or_else(|| {
                        invalid(
                            "invalid format for extra-hosts, expecting extra-hosts.<hostname>=<ip>"
                                .to_owned(),
                        )
                    })?;
                    self.extra_hosts
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k, Some(value));
                }
                other => return Err(invalid(format!("unknown key: {other}"))),
            }
        }
        Ok(())
    }
}

/// `setPushOverride`.
pub(crate) fn set_push(mut outputs: Vec<ExportEntry>, push: bool) -> Vec<ExportEntry> {
    if !push {
        let mut i = 0;
        while i < outputs.len() {
            match outputs[i].kind.as_str() {
                "registry" => {
                    let last = outputs.len() - 1;
                    outputs.swap(i, last);
                    outputs.truncate(last);
                    continue;
                }
                "image" => {
                    outputs[i].attrs.insert("push".into(), "false".into());
                }
                _ => {}
            }
            i += 1;
        }
        return outputs;
    }
    let mut add = true;
    for o in outputs.iter_mut() {
        if o.kind != "docker" {
            add = false;
        }
        if o.kind == "image" {
            o.attrs.insert("push".into(), "true".into());
        }
    }
    if add {
        outputs.push(ExportEntry {
            kind: "image".into(),
            attrs: BTreeMap::from([("push".to_owned(), "true".to_owned())]),
            dest: String::new(),
        });
    }
    outputs
}

/// `setLoadOverride`.
pub(crate) fn set_load(mut outputs: Vec<ExportEntry>, load: bool) -> Vec<ExportEntry> {
    if !load {
        return outputs;
    }
    for o in &outputs {
        match o.kind.as_str() {
            "docker" if o.dest.is_empty() => return outputs,
            "docker" | "image" | "registry" | "oci" => {}
            _ => return outputs,
        }
    }
    outputs.push(ExportEntry {
        kind: "docker".into(),
        ..Default::default()
    });
    outputs
}

// ---------------------------------------------------------------------------------
// Small Go-isms

/// Go's `%q` for a string (`strconv.Quote`).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One CSV record as `csvvalue.Fields` reads it, its error as text.
pub(crate) fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    kiln_oci::go::csv_fields(line).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(r: &str) -> CacheEntry {
        CacheEntry {
            kind: "registry".into(),
            attrs: BTreeMap::from([("ref".to_owned(), r.to_owned())]),
        }
    }

    #[test]
    fn remove_dupes_swaps_later_duplicates_out_like_buildx() {
        let mut v = vec!["a", "a", "b", "c"];
        let n = remove_dupes_swap(&mut v);
        assert_eq!(&v[..n], ["a", "c", "b"]);
        let mut v = vec!["x", "u", "y", "x"];
        let n = remove_dupes_swap(&mut v);
        assert_eq!(&v[..n], ["x", "u", "y"]);
    }

    #[test]
    fn merge_overrides_or_appends_per_field() {
        let mut a = Target {
            tags: Some(vec!["a".into()]),
            annotations: Some(vec!["a=1".into()]),
            cache_from: Some(vec![cache("x"), cache("u")]),
            secrets: Some(vec![Secret::parse("id=a,src=a").unwrap()]),
            ..Default::default()
        };
        let b = Target {
            tags: Some(vec!["b".into()]),
            annotations: Some(vec!["b=2".into(), "a=1".into()]),
            cache_from: Some(vec![cache("y"), cache("x")]),
            secrets: Some(vec![
                Secret::parse("id=a,src=b").unwrap(),
                Secret::parse("id=c,env=C").unwrap(),
            ]),
            ..Default::default()
        };
        a.merge(&b);
        a.normalize();
        assert_eq!(a.tags, Some(vec!["b".to_owned()]));
        assert_eq!(
            a.annotations,
            Some(vec!["a=1".to_owned(), "b=2".to_owned()])
        );
        assert_eq!(a.cache_from, Some(vec![cache("x"), cache("u"), cache("y")]));
        let secrets = a.secrets.unwrap();
        assert_eq!(secrets.len(), 2);
        assert_eq!(secrets[0].src, "b");
    }

    #[test]
    fn host_network_implies_its_entitlement() {
        let mut t = Target {
            network: Some("host".into()),
            entitlements: Some(vec!["network.host".into(), "".into()]),
            ..Default::default()
        };
        t.normalize();
        assert_eq!(t.entitlements, Some(vec!["network.host".to_owned()]));
    }

    #[test]
    fn entries_parse_like_buildflags() {
        assert_eq!(
            CacheEntry::parse_list(&["a,b".to_owned()]).unwrap(),
            vec![cache("a"), cache("b")]
        );
        // A single field without `type=` is a local destination, even with `=`.
        let e = ExportEntry::parse("dest=x").unwrap();
        assert_eq!((e.kind.as_str(), e.dest.as_str()), ("local", "dest=x"));
        let e = ExportEntry::parse("dest=x,push=true").unwrap_err();
        assert_eq!(e, "type is required for output");
        let e = ExportEntry::parse("out").unwrap();
        assert_eq!((e.kind.as_str(), e.dest.as_str()), ("local", "out"));
        let s = Secret::parse("type=env,id=A,src=B").unwrap();
        assert_eq!(
            (s.id.as_str(), s.env.as_str(), s.src.as_str()),
            ("A", "B", "")
        );
        assert_eq!(
            Ssh::parse("key=a,b"),
            Ssh {
                id: "key".into(),
                paths: vec!["a".into(), "b".into()]
            }
        );
        assert_eq!(csv_fields("\"a,b\",c").unwrap(), ["a,b", "c"]);
    }

    #[test]
    fn push_false_drops_registry_outputs_by_swapping() {
        let outputs = vec![
            ExportEntry {
                kind: "registry".into(),
                ..Default::default()
            },
            ExportEntry {
                kind: "local".into(),
                dest: "a".into(),
                ..Default::default()
            },
            ExportEntry {
                kind: "tar".into(),
                dest: "b".into(),
                ..Default::default()
            },
        ];
        let kinds: Vec<String> = set_push(outputs, false)
            .into_iter()
            .map(|o| o.kind)
            .collect();
        assert_eq!(kinds, ["tar", "local"]);
    }
}
