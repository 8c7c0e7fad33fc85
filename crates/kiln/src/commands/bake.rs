//! `kiln bake`: resolve the Bake files (and, for now, print them).

use anyhow::bail;

use crate::args::bake::BakeArgs;

pub(crate) fn run(args: &BakeArgs) -> anyhow::Result<()> {
    let mut sets = args.sets.clone();
    for (kind, value) in [("sbom", &args.sbom), ("provenance", &args.provenance)] {
        if let Some(attest) = value.as_deref().and_then(|v| attestation(kind, v)) {
            sets.push(format!("*.attest={attest}"));
        }
    }
    if args.push {
        sets.push("*.push=true".to_owned());
    }
    if args.load {
        sets.push("*.load=true".to_owned());
    }
    let call = if args.check {
        Some("check")
    } else {
        args.call.as_deref()
    };
    if let Some(call) = call {
        sets.push(format!("*.call={call}"));
    }
    let request = kiln_bake::Request {
        files: args.files.iter().map(|f| f.display().to_string()).collect(),
        dir: std::env::current_dir()?,
        env: std::env::vars().collect(),
        sets,
        targets: args.targets.clone(),
        no_cache: args.no_cache,
        pull: args.pull,
    };
    let resolved = kiln_bake::resolve(&request)?;
    if args.print {
        println!("{}", serde_json::to_string_pretty(&resolved.to_json())?);
        return Ok(());
    }
    bail!("building Bake targets is not supported yet; `kiln bake --print` shows how they resolve")
}

/// `--sbom`/`--provenance` values as an attest entry, the way buildx canonicalises them.
fn attestation(kind: &str, value: &str) -> Option<String> {
    match value {
        "" => None,
        "true" | "1" | "t" | "T" | "TRUE" | "True" => Some(format!("type={kind}")),
        "false" | "0" | "f" | "F" | "FALSE" | "False" => Some(format!("type={kind},disabled=true")),
        options => Some(format!("type={kind},{options}")),
    }
}
