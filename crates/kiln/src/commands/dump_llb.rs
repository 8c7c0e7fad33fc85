//! `kiln debug dump-llb`: decode a definition and print every op with its digest;
//! `kiln debug build-llb`: build one.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kiln_llb::{LoadedDefinition, json};
use serde_json::{Map, Value, json};

use crate::args::debug::{BuildLlbArgs, DumpLlbArgs};

/// A definition's bytes from a file, or standard input for none or `-`; and its name.
fn read_definition(file: Option<&Path>) -> anyhow::Result<(String, Vec<u8>)> {
    Ok(match file {
        None => ("standard input".to_owned(), read_stdin()?),
        Some(path) if path.as_os_str() == "-" => ("standard input".to_owned(), read_stdin()?),
        Some(path) => (path.display().to_string(), fs_err::read(path)?),
    })
}

pub(crate) fn build(args: &BuildLlbArgs) -> anyhow::Result<()> {
    let (name, definition) = read_definition(args.file.as_deref())?;
    LoadedDefinition::decode(&definition)
        .with_context(|| format!("{name} is not an LLB definition (a binary pb.Definition)"))?;
    let mut locals = BTreeMap::new();
    for local in &args.locals {
        let (key, dir) = local
            .split_once('=')
            .with_context(|| format!("--local {local:?}: give NAME=DIR"))?;
        locals.insert(key.to_owned(), PathBuf::from(dir));
    }
    let planned = crate::outputs::plan_all(&args.outputs, &[], &BTreeMap::new(), false, false)?;
    let request = kiln_api::build::DefinitionRequest {
        definition,
        locals,
        outputs: planned.iter().map(|p| p.export.clone()).collect(),
        no_cache: args.no_cache,
        entitlements: args.allow.clone(),
        ..Default::default()
    };
    let builder = crate::driver::open(None)?;
    let progress = crate::progress::Progress::open(&args.progress, false)?;
    let result = builder.build_definition(&request, &|event| progress.event(event));
    progress.finish();
    let result = result?;
    for warning in &result.warnings {
        eprintln!("WARNING: {warning}");
    }
    Ok(())
}

pub(crate) fn run(args: &DumpLlbArgs) -> anyhow::Result<()> {
    let (name, bytes) = read_definition(args.file.as_deref())?;
    let definition = LoadedDefinition::decode(&bytes)
        .with_context(|| format!("{name} is not an LLB definition (a binary pb.Definition)"))?;
    let mut out = std::io::stdout().lock();
    if args.dot {
        write_dot(&mut out, &definition)?;
    } else {
        for vertex in &definition.vertices {
            writeln!(out, "{}", op_line(vertex))?;
        }
    }
    Ok(())
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("reading standard input")?;
    Ok(bytes)
}

/// One op as buildctl prints it: `{"Op": …, "Digest": …, "OpMetadata": …}`, the op's
/// kind (`exec`, `source`, …) nested under `Op` as in BuildKit's Go structs.
fn op_line(vertex: &kiln_llb::Vertex) -> Value {
    let mut op = match json::op_to_json(&vertex.op) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let mut kind = Map::new();
    for key in ["exec", "source", "file", "build", "merge", "diff"] {
        if let Some(value) = op.remove(key) {
            kind.insert(key.to_owned(), value);
        }
    }
    op.insert("Op".to_owned(), Value::Object(kind));
    json!({
        "Op": op,
        "Digest": vertex.digest.to_string(),
        "OpMetadata": vertex.metadata.as_ref().map_or(Value::Null, json::op_metadata_to_json),
    })
}

/// The graph in Graphviz dot, labelled with each op's name, as `buildctl dump-llb --dot`.
fn write_dot(out: &mut impl std::io::Write, definition: &LoadedDefinition) -> anyhow::Result<()> {
    writeln!(out, "digraph {{")?;
    for vertex in &definition.vertices {
        let name = vertex
            .metadata
            .as_ref()
            .and_then(|m| m.description.get("llb.customname"))
            .cloned()
            .unwrap_or_else(|| vertex.digest.to_string());
        writeln!(
            out,
            "  \"{}\" [label={}];",
            vertex.digest,
            Value::String(name)
        )?;
        for input in &vertex.op.inputs {
            writeln!(out, "  \"{}\" -> \"{}\";", input.digest, vertex.digest)?;
        }
    }
    writeln!(out, "}}")?;
    Ok(())
}
