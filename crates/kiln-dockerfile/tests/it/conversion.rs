//! Conversion rules checked against BuildKit v0.24.0: flag values read once their
//! variables are expanded, the sources RUN mounts read, owners by name, and errors in
//! BuildKit's words.

use kiln_dockerfile::convert::{self, ConvertOptions};
use kiln_llb::{LoadedDefinition, MarshalOptions, json, wire};
use serde_json::Value;

use crate::llb_convert::FixedResolver;

fn convert(dockerfile: &str) -> Result<Vec<Value>, String> {
    let conversion = convert::convert(
        dockerfile.as_bytes(),
        &ConvertOptions::default(),
        &FixedResolver,
    )
    .map_err(|e| e.to_string())?;
    let def = conversion.state.marshal(&MarshalOptions {
        platform: Some(conversion.platform.clone()),
        local_unique_id: Some("0".to_owned()),
    });
    let loaded = LoadedDefinition::decode(&wire::encode_definition(&def)).unwrap();
    Ok(loaded
        .vertices
        .iter()
        .map(|v| json::op_to_json(&v.op))
        .collect())
}

fn converted(dockerfile: &str) -> Vec<Value> {
    convert(dockerfile).unwrap()
}

fn error(dockerfile: &str) -> String {
    convert(dockerfile).unwrap_err()
}

/// The mounts of the last exec op (in BuildKit's JSON form: 64-bit numbers as
/// strings, zero values left out).
fn last_mounts(ops: &[Value]) -> Vec<Value> {
    let exec = ops
        .iter()
        .rev()
        .find(|op| op.get("exec").is_some())
        .unwrap();
    exec["exec"]["mounts"].as_array().unwrap().clone()
}

/// The copy actions of every file op, in order.
fn copies(ops: &[Value]) -> Vec<Value> {
    ops.iter()
        .filter_map(|op| op["file"]["actions"].as_array())
        .flatten()
        .filter_map(|a| a.get("copy").cloned())
        .collect()
}

#[test]
fn a_mount_type_from_a_variable_reads_what_that_type_reads() {
    // A cache mount starts empty (its source is scratch), never from the context.
    let ops = converted("FROM busybox\nARG T=cache\nRUN --mount=type=$T,target=/m true\n");
    let cache = &last_mounts(&ops)[1];
    assert!(cache.get("cacheOpt").is_some(), "{cache}");
    assert_eq!(cache["input"], "-1", "{cache}");
    // Every option, not only the type.
    let ops = converted(
        "FROM busybox\nARG T=tmpfs\nARG S=1m\nRUN --mount=type=$T,target=/t,size=$S true\n",
    );
    let tmpfs = &last_mounts(&ops)[1];
    assert_eq!(tmpfs["TmpfsOpt"]["size"], "1048576", "{tmpfs}");
    // A bind mount made writable by a variable still reads the context, as output-less.
    let ops = converted("FROM busybox\nARG RW=true\nRUN --mount=target=/c,rw=$RW true\n");
    let bind = &last_mounts(&ops)[1];
    assert_eq!(bind["output"], "-1", "{bind}");
    assert!(bind.get("readonly").is_none(), "{bind}");
}

#[test]
fn mount_options_are_checked_only_in_stages_that_are_built() {
    let unused = "FROM busybox AS unused\nRUN --mount=type=volume,target=/x true\n\
                  FROM busybox\nRUN true\n";
    assert!(convert(unused).is_ok());
    assert_eq!(
        error("FROM busybox\nRUN --mount=type=tmpf,target=/x true\n"),
        "unsupported mount type \"tmpf\" (did you mean tmpfs?)"
    );
    assert_eq!(
        error("FROM busybox\nARG T=volume\nRUN --mount=type=$T,target=/x true\n"),
        "unsupported mount type \"volume\""
    );
    assert_eq!(
        error("FROM busybox\nRUN --device=/dev/null true\n"),
        "device feature is only supported in Dockerfile frontend 1.14.0-labs or later"
    );
}

#[test]
fn chmod_is_expanded_then_read() {
    let ops = converted(
        "FROM busybox\nARG M=0700\nARG S=u+x\nCOPY --chmod=$M a /a\nADD --chmod=${S} b /b\n",
    );
    let copies = copies(&ops);
    assert_eq!(copies[0]["mode"], 0o700, "{}", copies[0]);
    assert_eq!(copies[1]["modeStr"], "u+x", "{}", copies[1]);
    assert_eq!(
        error("FROM busybox\nARG M=abc\nCOPY --chmod=$M a /a\n"),
        "invalid syntax"
    );
    assert_eq!(
        error("FROM busybox\nCOPY --chmod=99 a /a\n"),
        "invalid chmod parameter: '99'. it should be octal string and between 0 and 07777"
    );
}

#[test]
fn owner_names_are_looked_up_in_the_base_for_every_source() {
    // BuildKit marshals `byName.input` as the base's index for each action of the op,
    // also the second copy, whose own input is the first copy's result.
    let ops = converted("FROM busybox\nCOPY --chown=app:grp a b /dst/\n");
    let copies = copies(&ops);
    assert_eq!(copies.len(), 2);
    for copy in &copies {
        for part in ["user", "group"] {
            // Input 0, which the JSON form leaves out.
            let named = &copy["owner"][part]["byName"];
            assert!(
                named.get("input").is_none() && named.get("name").is_some(),
                "{copy}"
            );
        }
    }
}
