//! Conversion fidelity against `shared/conformance/llb`: kiln's Dockerfile conversion,
//! with the settings its README gives, yields the op digests, the terminal digest and the
//! image config that BuildKit's frontend produced. Prints `llb-convert: N passed, M
//! failed` and, for a failing case, the first op field that differs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use fs_err as fs;
use kiln_dockerfile::convert::{self, ConvertOptions, ImageResolver, ResolvedImage};
use kiln_llb::{Digest, LoadedDefinition, MarshalOptions, Platform, json, wire};
use serde_json::Value;

const CONFIG: &str = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"]}}"#;

/// The README's fixed resolver: every reference gets the same config; the digest is the
/// pinned one or the sha256 of the canonical reference.
pub(crate) struct FixedResolver;

impl ImageResolver for FixedResolver {
    fn resolve_image_config(
        &self,
        reference: &str,
        _platform: &Platform,
    ) -> Result<ResolvedImage, String> {
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => (name.to_owned(), digest.to_owned()),
            None => (
                reference.to_owned(),
                Digest::of(reference.as_bytes()).to_string(),
            ),
        };
        Ok(ResolvedImage {
            reference: name,
            digest: Some(digest),
            config: CONFIG.as_bytes().to_vec(),
        })
    }
}

fn options(case: &Path) -> ConvertOptions {
    let opts: Value = fs::read_to_string(case.join("opts.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    let build_args: BTreeMap<String, String> = opts["build-args"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let platform: Platform = opts["platform"]
        .as_str()
        .unwrap_or("linux/amd64")
        .parse()
        .unwrap();
    ConvertOptions {
        target: opts["target"].as_str().map(str::to_owned),
        build_args,
        target_platform: Some(platform),
        build_platform: Some(Platform::linux("amd64")),
        context_unique_id: Some("0000000000000000000000000".to_owned()),
        ..ConvertOptions::default()
    }
}

/// The image config as compared: `created` removed, EXPOSE pointers normalised.
fn normalise_config(mut config: Value) -> Value {
    if let Some(obj) = config.as_object_mut() {
        obj.remove("created");
    }
    if let Some(history) = config["history"].as_array_mut() {
        for entry in history {
            if let Some(obj) = entry.as_object_mut() {
                obj.remove("created");
                if let Some(Value::String(by)) = obj.get_mut("created_by")
                    && by.starts_with("EXPOSE &{")
                    && let Some(i) = by.rfind(" 0x")
                {
                    *by = format!("{} <ptr>}}", &by[..i]);
                }
            }
        }
    }
    config
}

/// The first path at which two JSON values differ.
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                first_difference(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(&format!("{path}[{i}]"), p, q)),
        _ if a == b => None,
        _ => Some(format!("{path}: kiln {a}, BuildKit {b}")),
    }
}

fn op_kind(op: &Value) -> &'static str {
    ["exec", "source", "file", "merge", "diff", "build"]
        .into_iter()
        .find(|k| op.get(*k).is_some())
        .unwrap_or("terminal")
}

/// Explains a digest mismatch: our first op BuildKit did not make, against its closest op.
fn explain(ours: &[(String, Value)], expected: &[Value]) -> String {
    let expected_digests: BTreeSet<&str> = expected
        .iter()
        .filter_map(|o| o["digest"].as_str())
        .collect();
    let Some((digest, op)) = ours
        .iter()
        .find(|(d, _)| !expected_digests.contains(d.as_str()))
    else {
        return "op digests differ (BuildKit has ops kiln does not)".to_owned();
    };
    let closest = expected
        .iter()
        .filter(|e| op_kind(&e["op"]) == op_kind(op))
        .min_by_key(|e| {
            serde_json::to_string(&e["op"])
                .unwrap()
                .len()
                .abs_diff(serde_json::to_string(op).unwrap().len())
        });
    match closest.and_then(|e| first_difference("op", op, &e["op"])) {
        Some(diff) => format!("op {digest} ({}) differs: {diff}", op_kind(op)),
        None => format!("op {digest} ({}) has no counterpart", op_kind(op)),
    }
}

fn check_case(case: &Path) -> Result<(), String> {
    let source = fs::read(case.join("Dockerfile")).map_err(|e| e.to_string())?;
    let result = convert::convert(&source, &options(case), &FixedResolver);
    if case.join("error.txt").exists() {
        let expected = fs::read_to_string(case.join("error.txt")).unwrap_or_default();
        let expected = expected.trim();
        return match result {
            // BuildKit's own words.
            Err(e) if e.to_string() == expected => Ok(()),
            Err(e) => Err(format!("failed with {e:?}, BuildKit with {expected:?}")),
            Ok(_) => Err(format!("converted, but BuildKit failed with: {expected}")),
        };
    }
    let conversion = result.map_err(|e| format!("conversion failed: {e}"))?;
    let def = conversion.state.marshal(&MarshalOptions {
        platform: Some(conversion.platform.clone()),
        local_unique_id: Some("0000000000000000000000000".to_owned()),
    });
    let expected: Vec<Value> = serde_json::from_str(
        &fs::read_to_string(case.join("ops.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let loaded =
        LoadedDefinition::decode(&wire::encode_definition(&def)).map_err(|e| e.to_string())?;
    let ours: Vec<(String, Value)> = loaded
        .vertices
        .iter()
        .map(|v| (v.digest.to_string(), json::op_to_json(&v.op)))
        .collect();
    let our_set: BTreeSet<&str> = ours.iter().map(|(d, _)| d.as_str()).collect();
    let expected_set: BTreeSet<&str> = expected
        .iter()
        .filter_map(|o| o["digest"].as_str())
        .collect();
    if our_set != expected_set {
        return Err(explain(&ours, &expected));
    }
    let terminal = expected
        .iter()
        .find(|o| o["terminal"] == true)
        .and_then(|o| o["digest"].as_str());
    if ours.last().map(|(d, _)| d.as_str()) != terminal {
        return Err("terminal digest differs".to_owned());
    }
    let want = normalise_config(
        serde_json::from_str(
            &fs::read_to_string(case.join("image-config.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?,
    );
    let got = normalise_config(serde_json::to_value(&conversion.image).map_err(|e| e.to_string())?);
    if let Some(diff) = first_difference("config", &got, &want) {
        return Err(format!("image config differs: {diff}"));
    }
    if std::env::var_os("KILN_CONFORMANCE_STRICT").is_some() {
        // Optional stricter check: op metadata (names, descriptions, caps) as BuildKit's,
        // progress group ids numbered by first appearance as the README's data has them.
        let mut groups: Vec<String> = Vec::new();
        for vertex in &loaded.vertices {
            let mut ours = vertex
                .metadata
                .as_ref()
                .map_or(Value::Null, json::op_metadata_to_json);
            if let Some(Value::String(id)) = ours.pointer_mut("/progress_group/id") {
                let n = groups.iter().position(|g| g == id).unwrap_or_else(|| {
                    groups.push(id.clone());
                    groups.len() - 1
                });
                *id = format!("progress-group-{}", n + 1);
            }
            let theirs = expected
                .iter()
                .find(|e| e["digest"] == vertex.digest.to_string())
                .map(|e| e["metadata"].clone())
                .unwrap_or(Value::Null);
            if let Some(diff) = first_difference("metadata", &ours, &theirs) {
                return Err(format!("op {} metadata differs: {diff}", vertex.digest));
            }
        }
    }
    Ok(())
}

#[test]
fn llb_convert() {
    let Some(dir) = kiln_test::conformance_dir("llb").map(|d| d.join("cases")) else {
        return;
    };
    kiln_test::run_suite("llb-convert", &dir, |_| true, check_case);
}
