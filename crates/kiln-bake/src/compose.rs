//! Compose files as Bake sees them: every service with a `build` section becomes a
//! target, after Compose's `${VAR}` interpolation. The result is a Bake JSON document
//! so it merges with HCL and JSON files through one path.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use crate::Error;
use crate::files::Source;

/// A Compose file's targets and `default` group in Bake's JSON form.
pub(crate) fn to_bake_json(source: &Source, env: &BTreeMap<String, String>) -> Result<Json, Error> {
    let name = &source.name;
    let yaml: Json =
        serde_norway::from_str(&source.text).map_err(|source| Error::ComposeSyntax {
            file: name.clone(),
            source,
        })?;
    let compose_error = |problem: String| Error::Compose {
        file: name.clone(),
        problem,
    };
    let yaml = interpolate_all(&yaml, env).map_err(compose_error)?;
    let Some(services) = yaml.get("services").and_then(Json::as_object) else {
        return Err(compose_error("no services in compose file".to_owned()));
    };
    let mut targets = Map::new();
    for (service, spec) in services {
        let Some(build) = spec.get("build") else {
            continue;
        };
        let mut target = service_target(spec, build, env)?;
        if let Some(Json::Array(secrets)) = build.get("secrets") {
            let entries = secrets
                .iter()
                .map(|s| secret_entry(s, &yaml, source))
                .collect::<Result<Vec<_>, _>>()?;
            target.insert("secret".into(), Json::Array(entries));
        }
        if let Some(x_bake) = build.get("x-bake") {
            apply_x_bake(&mut target, x_bake);
        }
        // buildx's `sanitizeTargetName`: service names may hold dots, target names not.
        let name = service.replace('.', "_");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::ServiceName(name));
        }
        targets.insert(name, Json::Object(target));
    }
    let names: Vec<&String> = targets.keys().collect();
    Ok(escape_templates(&json!({
        "group": {"default": {"targets": names}},
        "target": targets,
    })))
}

/// Interpolated values are literal text: keep HCL from reading `${`/`%{` in them.
fn escape_templates(value: &Json) -> Json {
    match value {
        Json::String(s) => Json::String(s.replace("${", "$${").replace("%{", "%%{")),
        Json::Array(items) => Json::Array(items.iter().map(escape_templates).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), escape_templates(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A service's build secret: a name from the top-level `secrets`, whose `file` or
/// `environment` is the source.
fn secret_entry(secret: &Json, project: &Json, source: &Source) -> Result<Json, Error> {
    let id = match secret {
        Json::String(id) => id.clone(),
        other => other
            .get("source")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned(),
    };
    let definition = project
        .get("secrets")
        .and_then(|s| s.get(&id))
        .ok_or_else(|| Error::Compose {
            file: source.name.clone(),
            problem: format!("service secret {id:?} is not defined in the top-level secrets"),
        })?;
    let target_id = secret
        .get("target")
        .and_then(Json::as_str)
        .unwrap_or(&id)
        .to_owned();
    if let Some(file) = definition.get("file").and_then(Json::as_str) {
        let path = source.dir.join(file);
        // The file's directory is absolute (the Bake files' directory joined), so Go's
        // `path.Clean` is what Compose does to it.
        let src = crate::options::clean_path(&path.to_string_lossy());
        return Ok(json!({"id": target_id, "src": src}));
    }
    if let Some(var) = definition.get("environment").and_then(Json::as_str) {
        return Ok(json!({"id": target_id, "env": var}));
    }
    Err(Error::Compose {
        file: source.name.clone(),
        problem: format!("secret {id:?} needs a file or an environment variable"),
    })
}

/// `x-bake` (buildx's `composeExtTarget`): lists add to what Compose set (tags,
/// platforms and no-cache filters without duplicates), `contexts` only adds names
/// Compose did not set, `pull`/`no-cache` replace; other keys are ignored. A list
/// may be given as a single string.
fn apply_x_bake(target: &mut Map<String, Json>, x_bake: &Json) {
    let Some(fields) = x_bake.as_object() else {
        return;
    };
    for (key, value) in fields {
        match key.as_str() {
            "tags" | "platforms" | "no-cache-filter" | "cache-from" | "cache-to" | "secret"
            | "ssh" | "output" => {
                let more = strings(value);
                if more.is_empty() {
                    continue;
                }
                let entry = target.entry(key.clone()).or_insert_with(|| json!([]));
                if let Json::Array(list) = entry {
                    let dedup = matches!(key.as_str(), "tags" | "platforms" | "no-cache-filter");
                    for item in more {
                        if !dedup || !list.contains(&json!(item)) {
                            list.push(json!(item));
                        }
                    }
                }
                if key == "ssh" {
                    sort_ssh(target);
                }
            }
            "contexts" => {
                let entry = target.entry("contexts").or_insert_with(|| json!({}));
                if let Json::Object(existing) = entry {
                    for (k, v) in key_values(value, '=') {
                        existing.entry(k).or_insert(v);
                    }
                }
            }
            "pull" | "no-cache" => {
                if let Json::Bool(b) = value {
                    target.insert(key.clone(), json!(b));
                }
            }
            _ => {}
        }
    }
}

/// Compose's ssh entries are sorted by id, then paths (`SSH.Less`).
fn sort_ssh(target: &mut Map<String, Json>) {
    if let Some(Json::Array(list)) = target.get_mut("ssh") {
        let key = |v: &Json| {
            let s = v.as_str().unwrap_or_default();
            match s.split_once('=') {
                Some((id, paths)) => (id.to_owned(), paths.split(',').map(str::to_owned).collect()),
                None => (s.to_owned(), Vec::<String>::new()),
            }
        };
        list.sort_by_key(key);
    }
}

/// One service's build section as Bake target attributes.
fn service_target(
    spec: &Json,
    build: &Json,
    env: &BTreeMap<String, String>,
) -> Result<Map<String, Json>, Error> {
    let mut target = Map::new();
    let build = match build {
        // `build: ./dir` is the context alone.
        Json::String(context) => json!({ "context": context }),
        other => other.clone(),
    };
    let field = |key: &str| build.get(key).filter(|v| !v.is_null());
    target.insert(
        "context".into(),
        field("context").cloned().unwrap_or_else(|| json!(".")),
    );
    for (from, to) in [
        ("dockerfile", "dockerfile"),
        ("dockerfile_inline", "dockerfile-inline"),
        ("target", "target"),
        ("network", "network"),
    ] {
        if let Some(value) = field(from) {
            target.insert(to.into(), json!(scalar(value)));
        }
    }
    if field("network").and_then(Json::as_str) == Some("host") {
        target.insert("entitlements".into(), json!(["network.host"]));
    }
    if let Some(value) = field("args") {
        target.insert("args".into(), Json::Object(build_args(value, spec, env)));
    }
    if let Some(value) = field("labels") {
        target.insert("labels".into(), Json::Object(key_values(value, '=')));
    }
    if let Some(value) = field("additional_contexts") {
        target.insert(
            "contexts".into(),
            Json::Object(named_contexts(key_values(value, '='))),
        );
    }
    if let Some(hosts) = field("extra_hosts") {
        target.insert("extra-hosts".into(), Json::Object(extra_hosts(hosts)));
    }
    // Build tags win; the service's image names the result only when there are none.
    let tags = field("tags").map(strings).unwrap_or_default();
    if !tags.is_empty() {
        target.insert("tags".into(), json!(tags));
    } else if let Some(image) = spec.get("image").and_then(Json::as_str) {
        target.insert("tags".into(), json!([image]));
    }
    for (from, to) in [
        ("cache_from", "cache-from"),
        ("cache_to", "cache-to"),
        ("platforms", "platforms"),
    ] {
        if let Some(value) = field(from) {
            target.insert(to.into(), json!(strings(value)));
        }
    }
    if let Some(Json::Object(ulimits)) = field("ulimits") {
        // `nofile: {soft: 1024, hard: 2048}` or `nproc: 65535`.
        let entries: Vec<String> = ulimits
            .iter()
            .map(
                |(name, limit)| match (limit.get("soft"), limit.get("hard")) {
                    (Some(soft), Some(hard)) => format!("{name}={}:{}", scalar(soft), scalar(hard)),
                    // buildx reads only `soft`/`hard`: a single limit comes out as 0:0.
                    _ => format!("{name}=0:0"),
                },
            )
            .collect();
        target.insert("ulimits".into(), json!(entries));
    }
    if let Some(ssh) = field("ssh") {
        let entries: Vec<String> = match ssh {
            Json::Object(map) => map
                .iter()
                .map(|(k, v)| format!("{k}={}", scalar(v)))
                .collect(),
            other => strings(other),
        };
        target.insert("ssh".into(), json!(entries));
        sort_ssh(&mut target);
    }
    if let Some(size) = field("shm_size") {
        let size = scalar(size);
        // Compose reads it with go-units' `RAMInBytes` and Bake prints `BytesSize`.
        let bytes =
            kiln_oci::go::ram_in_bytes(&size).map_err(|_| Error::ShmSize(size.to_string()))?;
        target.insert(
            "shm-size".into(),
            json!(kiln_oci::go::bytes_size(bytes as f64)),
        );
    }
    // Compose's `no_cache: false` and `pull: false` are not set at all.
    for (from, to) in [("no_cache", "no-cache"), ("pull", "pull")] {
        if let Some(Json::Bool(true)) = field(from) {
            target.insert(to.into(), json!(true));
        }
    }
    Ok(target)
}

fn scalar(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn strings(value: &Json) -> Vec<String> {
    match value {
        Json::Array(items) => items.iter().map(scalar).collect(),
        other => vec![scalar(other)],
    }
}

/// A map, or a list of `KEY<sep>VALUE` strings, as a string map.
fn key_values(value: &Json, sep: char) -> Map<String, Json> {
    match value {
        Json::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), json!(scalar(v))))
            .collect(),
        Json::Array(items) => items
            .iter()
            .filter_map(|item| {
                let item = scalar(item);
                let (k, v) = item.split_once(sep)?;
                Some((k.to_owned(), json!(v)))
            })
            .collect(),
        _ => Map::new(),
    }
}

/// Build args; one without a value takes the service's `environment` value, else
/// the Compose environment's, and is left out when neither has it.
fn build_args(value: &Json, spec: &Json, env: &BTreeMap<String, String>) -> Map<String, Json> {
    let service_env = spec
        .get("environment")
        .map(|e| key_values(e, '='))
        .unwrap_or_default();
    let resolve = |name: &str| -> Option<Json> {
        match service_env.get(name) {
            Some(v) => Some(v.clone()),
            None => env.get(name).map(|v| json!(v)),
        }
    };
    let mut out = Map::new();
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                let v = if v.is_null() {
                    resolve(k)
                } else {
                    Some(json!(scalar(v)))
                };
                if let Some(v) = v {
                    out.insert(k.clone(), v);
                }
            }
        }
        Json::Array(items) => {
            for item in items {
                let item = scalar(item);
                let v = match item.split_once('=') {
                    Some((k, v)) => Some((k.to_owned(), json!(v))),
                    None => resolve(&item).map(|v| (item.clone(), v)),
                };
                if let Some((k, v)) = v {
                    out.insert(k, v);
                }
            }
        }
        _ => {}
    }
    out
}

/// `additional_contexts` as buildx names them: `service:NAME` is `target:NAME`
/// (sanitised), local paths are cleaned.
fn named_contexts(contexts: Map<String, Json>) -> Map<String, Json> {
    contexts
        .into_iter()
        .map(|(k, v)| {
            let s = v.as_str().unwrap_or_default();
            let out = if let Some(name) = s
                .strip_prefix("service:")
                .or_else(|| s.strip_prefix("target:"))
            {
                format!("target:{}", name.replace('.', "_"))
            } else if s.contains("://") || s.starts_with("docker-image:") {
                s.to_owned()
            } else {
                crate::options::clean_path(s)
            };
            (k, json!(out))
        })
        .collect()
}

/// `extra_hosts` entries are `host=ip` or `host:ip`.
fn extra_hosts(value: &Json) -> Map<String, Json> {
    match value {
        Json::Array(items) => items
            .iter()
            .filter_map(|item| {
                let item = scalar(item);
                let (k, v) = item.split_once('=').or_else(|| item.split_once(':'))?;
                Some((k.to_owned(), json!(v)))
            })
            .collect(),
        other => key_values(other, '='),
    }
}

fn interpolate_all(value: &Json, env: &BTreeMap<String, String>) -> Result<Json, String> {
    Ok(match value {
        Json::String(s) => Json::String(interpolate(s, env)?),
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|i| interpolate_all(i, env))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), interpolate_all(v, env)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Compose interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
/// `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?err}`, `${VAR?err}`, and `$$` for a `$`.
/// An unset variable without a default is empty.
fn interpolate(text: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(body) = rest.strip_prefix('{') {
            let end = closing_brace(body)
                .ok_or_else(|| format!("invalid interpolation format in {text:?}"))?;
            out.push_str(&braced(&body[..end], env)?);
            rest = &body[end + 1..];
        } else {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(env.get(&rest[..len]).map_or("", String::as_str));
            }
            rest = &rest[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` closing a `${`, allowing nested `${...}` in defaults.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn braced(body: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let name_len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (name, modifier) = body.split_at(name_len);
    let value = env.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    let word = |w: &str| interpolate(w, env);
    Ok(match modifier {
        "" => value.cloned().unwrap_or_default(),
        m if m.starts_with(":-") => match set_nonempty {
            true => value.cloned().unwrap_or_default(),
            false => word(&m[2..])?,
        },
        m if m.starts_with('-') => match value {
            Some(v) => v.clone(),
            None => word(&m[1..])?,
        },
        m if m.starts_with(":+") => match set_nonempty {
            true => word(&m[2..])?,
            false => String::new(),
        },
        m if m.starts_with('+') => match value {
            Some(_) => word(&m[1..])?,
            None => String::new(),
        },
        m if m.starts_with(":?") || m.starts_with('?') => {
            let strict = m.starts_with(":?");
            if (strict && !set_nonempty) || value.is_none() {
                let message = word(m.trim_start_matches(':').trim_start_matches('?'))?;
                return Err(format!(
                    "required variable {name} is missing a value: {message}"
                ));
            }
            value.cloned().unwrap_or_default()
        }
        _ => return Err(format!("invalid interpolation format for ${{{body}}}")),
    })
}

/// A `.env` file's `KEY=VALUE` lines (comments, blanks and `export ` skipped; one
/// layer of matching quotes removed).
pub(crate) fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
            .unwrap_or(value);
        out.insert(key.trim().to_owned(), unquoted.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_follows_compose() {
        let env: BTreeMap<String, String> = [("SET", "yes"), ("EMPTY", "")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let i = |s: &str| interpolate(s, &env).unwrap();
        assert_eq!(i("${SET}-$SET"), "yes-yes");
        assert_eq!(i("${UNSET}"), "");
        assert_eq!(i("${UNSET:-d}/${EMPTY:-d}/${EMPTY-d}"), "d/d/");
        assert_eq!(i("${SET:+alt}/${UNSET:+alt}"), "alt/");
        assert_eq!(i("$$SET costs $$5"), "$SET costs $5");
        assert_eq!(i("${UNSET:-${SET}}"), "yes");
        assert!(interpolate("${UNSET:?needed}", &env).is_err());
    }

    #[test]
    fn shm_size_is_read_and_printed_as_go_units_does() {
        let size = |text: &str| {
            let bytes = kiln_oci::go::ram_in_bytes(text).unwrap();
            kiln_oci::go::bytes_size(bytes as f64)
        };
        assert_eq!(size("256m"), "256MiB");
        assert_eq!(size("1.5g"), "1.5GiB");
        assert_eq!(size("64"), "64B");
    }
}
