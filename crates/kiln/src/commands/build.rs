//! `kiln build`: turn the flags into a build request and run it on the embedded engine.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use kiln_engine::{BuildContext, BuildRequest};

use crate::args::build::BuildArgs;
use crate::progress::Progress;

fn parse_build_args(args: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for arg in args {
        match arg.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_owned(), v.to_owned());
            }
            None => {
                if let Ok(v) = std::env::var(arg) {
                    out.insert(arg.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

/// `--secret id=x,src=FILE` / `id=x,env=VAR` / `type=env,…`, as buildx reads them.
pub(crate) fn parse_secret(spec: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    let mut kind = None;
    for field in spec.split(',') {
        let (key, value) = field
            .split_once('=')
            .with_context(|| format!("invalid --secret {spec:?}: {field:?} is not KEY=VALUE"))?;
        match key.trim().to_ascii_lowercase().as_str() {
            "id" => id = Some(value.to_owned()),
            "src" | "source" => src = Some(value.to_owned()),
            "env" => env = Some(value.to_owned()),
            "type" => kind = Some(value.to_owned()),
            other => bail!("invalid --secret {spec:?}: unexpected key {other:?}"),
        }
    }
    let id = id
        .or_else(|| src.clone())
        .or_else(|| env.clone())
        .with_context(|| format!("invalid --secret {spec:?}: no id"))?;
    let from_env = |var: &str| {
        std::env::var(var)
            .map(String::into_bytes)
            .with_context(|| format!("--secret {spec:?}: environment variable {var} is not set"))
    };
    let value = match (kind.as_deref(), src, env) {
        (Some("env"), src, env) => from_env(&env.or(src).unwrap_or_else(|| id.clone()))?,
        (_, Some(src), _) => fs_err::read(&src).with_context(|| format!("--secret {spec:?}"))?,
        (_, None, Some(env)) => from_env(&env)?,
        (_, None, None) => from_env(&id)?,
    };
    Ok((id, value))
}

/// `--ssh default` (the agent in `SSH_AUTH_SOCK`) or `--ssh id=/path/to/agent.sock`.
pub(crate) fn parse_ssh(spec: &str) -> anyhow::Result<(String, PathBuf)> {
    let (id, path) = match spec.split_once('=') {
        Some((id, path)) => (
            id.to_owned(),
            PathBuf::from(path.split(',').next().unwrap_or_default()),
        ),
        None => (
            spec.to_owned(),
            std::env::var_os("SSH_AUTH_SOCK")
                .map(PathBuf::from)
                .with_context(|| format!("--ssh {spec}: SSH_AUTH_SOCK is not set"))?,
        ),
    };
    Ok((id, path))
}

/// A named context's value as buildx reads it: `docker-image://REF`, a directory, or
/// (from Bake) `target:NAME`, which the caller resolves.
pub(crate) fn parse_context_value(name: &str, value: &str) -> anyhow::Result<BuildContext> {
    if let Some(reference) = value.strip_prefix("docker-image://") {
        return Ok(BuildContext::Image(reference.to_owned()));
    }
    let unsupported = [
        "oci-layout://",
        "https://",
        "http://",
        "git@",
        "git://",
        "ssh://",
    ];
    if unsupported.iter().any(|p| value.starts_with(p)) || value.ends_with(".git") {
        bail!(
            "named context {name}={value}: only directories and docker-image:// are supported yet"
        );
    }
    if value.starts_with("target:") {
        bail!("named context {name}={value}: target: links are only valid in a Bake file");
    }
    let dir = PathBuf::from(value);
    if !dir.is_dir() {
        bail!("named context {name}={value}: no such directory");
    }
    Ok(BuildContext::Dir(dir))
}

/// `--build-context NAME=VALUE`.
fn parse_build_context(spec: &str) -> anyhow::Result<(String, BuildContext)> {
    let (name, value) = spec
        .split_once('=')
        .with_context(|| format!("invalid --build-context {spec:?}: expected NAME=VALUE"))?;
    Ok((name.to_owned(), parse_context_value(name, value)?))
}

/// `--allow network.host,security.insecure` (repeatable, comma-separated).
pub(crate) fn parse_entitlements(allow: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in allow.iter().flat_map(|a| a.split(',')) {
        match entry.trim() {
            e @ ("network.host" | "security.insecure") => out.push(e.to_owned()),
            other => bail!(
                "--allow {other:?}: unknown entitlement (known: network.host, security.insecure)"
            ),
        }
    }
    Ok(out)
}

pub(crate) fn run(args: &BuildArgs) -> anyhow::Result<()> {
    let quiet = args.quiet || args.progress == "quiet";
    let progress_mode = args.progress.clone();
    // Checked before any work; the display opens (the live view starts) when building.
    if !matches!(
        progress_mode.as_str(),
        "auto" | "plain" | "tty" | "quiet" | "rawjson"
    ) {
        bail!("--progress {progress_mode:?}: must be one of auto, plain, tty, quiet, rawjson");
    }
    let context = args.context.clone();
    if !context.is_dir() {
        bail!(
            "unable to prepare context: path {:?} not found",
            context.display().to_string()
        );
    }
    let dockerfile = args
        .file
        .clone()
        .unwrap_or_else(|| context.join("Dockerfile"));
    let planned = crate::outputs::plan_all(&args.outputs, &args.tags, args.push, args.load)?;
    let outputs = planned.iter().map(|p| p.output.clone()).collect();
    let request = BuildRequest {
        context,
        dockerfile,
        build_args: parse_build_args(&args.build_args)?,
        named_contexts: args
            .build_contexts
            .iter()
            .map(|c| parse_build_context(c))
            .collect::<anyhow::Result<_>>()?,
        target: args.target.clone(),
        tags: args.tags.clone(),
        outputs,
        no_cache: args.no_cache,
        secrets: args
            .secrets
            .iter()
            .map(|s| parse_secret(s))
            .collect::<anyhow::Result<_>>()?,
        ssh: args
            .ssh
            .iter()
            .map(|s| parse_ssh(s))
            .collect::<anyhow::Result<_>>()?,
        entitlements: parse_entitlements(&args.allow)?,
    };
    let engine = crate::driver::embedded::open()?;
    let call = if args.check {
        "check"
    } else {
        args.call.as_str()
    };
    match call {
        "build" => {}
        "check" => {
            let checks = engine.check(&request)?;
            if crate::progress::checks::print_report(&checks) {
                return Err(crate::commands::Reported.into());
            }
            return Ok(());
        }
        other => bail!(
            "--call {other:?}: supported are build and check (outline and targets are not yet)"
        ),
    }
    let progress = Progress::open(&progress_mode, quiet)?;
    let result = engine.build(&request, &|event| progress.event(event));
    progress.finish();
    let result = result?;
    for archive in crate::outputs::loads(&planned) {
        for message in crate::docker::load(&archive)? {
            if !quiet {
                eprintln!("{message}");
            }
        }
    }
    if !quiet {
        for name in &result.pushed {
            eprintln!("pushed {name}");
        }
        for warning in &result.warnings {
            eprintln!("WARNING: {warning}");
        }
        crate::progress::checks::print_summary(&result.checks);
        if request.outputs.is_empty() {
            eprintln!(
                "WARNING: No output specified with the embedded builder.\n         Build result will only remain in the build cache.\n         To push result image into registry use --push or\n         to load image into docker use --load"
            );
        }
    }
    if let Some(path) = &args.metadata_file {
        crate::metadata::write_json(path, &crate::metadata::build_metadata(&request, &result))?;
    }
    if let (Some(path), Some(id)) = (&args.iidfile, &result.config_digest) {
        crate::metadata::write_atomically(path, id)?;
    }
    // `-q` prints the image ID (the config digest), as buildx does.
    if let (true, Some(id)) = (args.quiet, &result.config_digest) {
        println!("{id}");
    } else if let (false, Some(digest)) = (quiet, &result.manifest_digest) {
        eprintln!("writing image {digest} done");
    }
    Ok(())
}
