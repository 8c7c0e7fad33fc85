//! Named contexts (`--build-context`): a FROM or `--from` naming one uses it, a stage
//! with its name is replaced by it, and image names match as BuildKit keys them.

use std::collections::BTreeMap;

use kiln_dockerfile::convert::{self, ConvertOptions, NamedContext};
use kiln_llb::{LoadedDefinition, MarshalOptions, json, wire};
use serde_json::Value;

use crate::llb_convert::FixedResolver;

/// The ops of a conversion as JSON, in definition order.
fn ops(dockerfile: &str, contexts: &[(&str, NamedContext)]) -> Vec<Value> {
    let options = ConvertOptions {
        named_contexts: contexts
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        ..ConvertOptions::default()
    };
    let conversion = convert::convert(dockerfile.as_bytes(), &options, &FixedResolver).unwrap();
    let def = conversion.state.marshal(&MarshalOptions {
        platform: Some(conversion.platform.clone()),
        local_unique_id: Some("0".to_owned()),
    });
    let loaded = LoadedDefinition::decode(&wire::encode_definition(&def)).unwrap();
    loaded
        .vertices
        .iter()
        .map(|v| json::op_to_json(&v.op))
        .collect()
}

fn sources(ops: &[Value]) -> Vec<String> {
    ops.iter()
        .filter_map(|op| op["source"]["identifier"].as_str().map(str::to_owned))
        .collect()
}

fn local(name: &str) -> NamedContext {
    NamedContext::Local {
        name: name.to_owned(),
        excludes: Vec::new(),
    }
}

#[test]
fn an_image_context_replaces_the_base_image() {
    let ops = ops(
        "FROM alpine:latest\nRUN true\n",
        &[(
            "alpine",
            NamedContext::Image("127.0.0.1:5000/mirror/alpine:3".to_owned()),
        )],
    );
    let sources = sources(&ops);
    assert_eq!(sources.len(), 1, "{sources:?}");
    assert!(
        sources[0].starts_with("docker-image://127.0.0.1:5000/mirror/alpine:3@sha256:"),
        "{sources:?}"
    );
}

#[test]
fn a_local_context_replaces_a_stage_and_feeds_copy_from() {
    let dockerfile = "FROM busybox AS deps\nRUN make\n\
                      FROM scratch\nCOPY --from=deps /a /\nCOPY --from=tools /t /\n";
    let ops = ops(
        dockerfile,
        &[("deps", local("deps")), ("tools", local("tools"))],
    );
    let sources = sources(&ops);
    assert!(sources.contains(&"local://deps".to_owned()), "{sources:?}");
    assert!(sources.contains(&"local://tools".to_owned()), "{sources:?}");
    // The replaced stage's own steps are gone: no busybox, no RUN.
    assert!(
        !sources.iter().any(|s| s.contains("busybox")),
        "{sources:?}"
    );
    assert!(!ops.iter().any(|op| op.get("exec").is_some()));
}

#[test]
fn without_a_matching_context_nothing_changes() {
    let ops = ops("FROM alpine:3.20\n", &[("alpine", local("other"))]);
    assert!(sources(&ops)[0].starts_with("docker-image://docker.io/library/alpine:3.20"));
}
