//! Wire fidelity against `shared/conformance/llb`: every `definition.pb` that BuildKit
//! wrote decodes, re-encodes to the same bytes, and every op has the recorded digest
//! and the recorded content (`ops.json`). Prints `llb-wire: N passed, M failed`.
//!
//! The data directory is `KILN_CONFORMANCE_DIR` (a relative path is taken from the
//! workspace root), by default `../shared/conformance`.

use std::path::Path;

use fs_err as fs;
use kiln_llb::{Digest, LoadedDefinition, json, wire};
use serde_json::Value;

/// Checks one case; `Err` says what differs.
fn check_case(case: &Path) -> Result<(), String> {
    let bytes = fs::read(case.join("definition.pb")).map_err(|e| e.to_string())?;
    let expected: Vec<Value> = serde_json::from_str(
        &fs::read_to_string(case.join("ops.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let loaded = LoadedDefinition::decode(&bytes).map_err(|e| format!("decode: {e}"))?;
    let reencoded = wire::encode_definition(&loaded.definition);
    if reencoded != bytes {
        return Err(format!(
            "definition re-encodes to {} bytes, not the {} read",
            reencoded.len(),
            bytes.len()
        ));
    }
    if loaded.vertices.len() != expected.len() {
        return Err(format!(
            "{} ops, ops.json has {}",
            loaded.vertices.len(),
            expected.len()
        ));
    }
    for (i, (vertex, want)) in loaded.vertices.iter().zip(&expected).enumerate() {
        if wire::encode_op(&vertex.op) != vertex.bytes {
            return Err(format!(
                "op {i} ({}) does not re-encode to its bytes",
                vertex.digest
            ));
        }
        if want["digest"] != vertex.digest.to_string() {
            return Err(format!(
                "op {i}: digest {} != {}",
                vertex.digest, want["digest"]
            ));
        }
        if Digest::of(&vertex.bytes) != vertex.digest {
            return Err(format!("op {i}: digest is not the sha256 of its bytes"));
        }
        let op = json::op_to_json(&vertex.op);
        if op != want["op"] {
            return Err(format!(
                "op {i}: content differs\n  got:      {op}\n  expected: {}",
                want["op"]
            ));
        }
        let metadata = vertex
            .metadata
            .as_ref()
            .map_or(Value::Null, json::op_metadata_to_json);
        if metadata != want["metadata"] {
            return Err(format!(
                "op {i}: metadata differs\n  got:      {metadata}\n  expected: {}",
                want["metadata"]
            ));
        }
    }
    if let Some(last) = expected.last() {
        if last["terminal"] != true {
            return Err("the last op is not marked terminal".to_owned());
        }
        loaded.result().map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[test]
fn llb_wire() {
    let Some(dir) = kiln_test::conformance_dir("llb").map(|d| d.join("cases")) else {
        return;
    };
    kiln_test::run_suite(
        "llb-wire",
        &dir,
        |case| case.join("definition.pb").is_file(),
        check_case,
    );
}
