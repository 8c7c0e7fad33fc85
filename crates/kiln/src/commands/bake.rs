//! `kiln bake`: resolve the Bake files, then print them or build every target on one
//! builder (the embedded engine or a daemon), so stages the targets share are built
//! once and then cached.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use kiln_api::build::{BuildContext, BuildRequest, RunDefaults};
use serde_json::{Map, Value as Json};

use crate::args::bake::BakeArgs;
use crate::commands::build::{
    annotation_attr, parse_context_value, parse_entitlements, parse_secret, parse_size, parse_ssh,
    parse_ulimit,
};
use crate::outputs::Planned;
use crate::progress::Progress;

pub(crate) fn run(args: &BakeArgs) -> anyhow::Result<()> {
    // The deprecated flags, as cobra announces them.
    for (given, flag, kind) in [
        (args.list_targets, "list-targets", "targets"),
        (args.list_variables, "list-variables", "variables"),
    ] {
        if given {
            eprintln!(
                "Flag --{flag} has been deprecated, {flag} is deprecated, use list={kind} instead"
            );
        }
    }
    let list = match args.list.as_deref().filter(|l| !l.is_empty()) {
        Some(list) => Some(list),
        None if args.list_targets => Some("targets"),
        None if args.list_variables => Some("variables"),
        None => None,
    };
    if args.print && list.is_some() {
        bail!("--print and --list are mutually exclusive");
    }
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
        "check"
    } else {
        args.call.as_deref().unwrap_or_default()
    };
    // The flag's name applies to every target; its format and status to every call.
    let flag_call = super::call::CallFunc::parse(call)?;
    if let Some(call) = &flag_call {
        sets.push(format!("*.call={}", call.name));
    }
    // `kiln bake URL [TARGET…]`: the Bake files (and the default context) come from a
    // git repository or tarball, as buildx's remote definitions do.
    let remote_dir = tempfile::tempdir().context("creating a directory for a remote definition")?;
    let remote = match args.targets.first() {
        Some(first) => kiln_api::context::detect(first)?,
        None => None,
    };
    let (dir, targets) = match remote {
        Some(remote) => {
            let fetched = kiln_api::context::fetch(&remote, remote_dir.path())
                .with_context(|| format!("fetching the Bake definition {}", args.targets[0]))?;
            (fetched.context, args.targets[1..].to_vec())
        }
        None => (std::env::current_dir()?, args.targets.clone()),
    };
    let request = kiln_bake::Request {
        files: args.files.iter().map(|f| f.display().to_string()).collect(),
        dir,
        env: std::env::vars().collect(),
        sets,
        targets,
        no_cache: args.no_cache,
        pull: args.pull,
    };
    if let Some(list) = list {
        return crate::commands::bake_list::run(&request, list);
    }
    let resolved = kiln_bake::resolve(&request)?;
    if args.print {
        println!("{}", serde_json::to_string_pretty(&resolved.to_json())?);
        return Ok(());
    }
    let allowed = parse_entitlements(&args.allow)?;
    let remote_builder = args.builder.remote()?;
    let scratch = tempfile::tempdir().context("creating a directory for inline Dockerfiles")?;
    let requests = resolved
        .targets
        .iter()
        .map(|(name, target)| {
            build_request(
                &request.dir,
                name,
                target,
                &resolved.targets,
                &allowed,
                scratch.path(),
                remote_builder.is_some(),
            )
            .with_context(|| format!("target {name}"))
            .map(|r| (name, r))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let builder = crate::driver::open(remote_builder.as_ref())?;
    let quiet = args.progress == "quiet";
    let mut metadata = Map::new();
    let call_of = |name: &str| -> anyhow::Result<Option<super::call::CallFunc>> {
        let text = resolved.targets[name]
            .get("call")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let mut call =
            super::call::CallFunc::parse(text).with_context(|| format!("target {name}"))?;
        if let (Some(call), Some(flag)) = (call.as_mut(), &flag_call) {
            call.format = flag.format.clone();
            call.ignore_status = flag.ignore_status;
        }
        Ok(call)
    };
    let mut calls = Vec::new();
    let mut builds = Vec::new();
    for (name, request) in requests {
        match call_of(name)? {
            Some(call) => calls.push((name, request, call)),
            None => builds.push((name, request)),
        }
    }
    // As buildx: each call's answer under its target's name, by name.
    calls.sort_by(|a, b| a.0.cmp(b.0));
    let mut call_status = 0;
    for (i, (name, (build, _), call)) in calls.iter().enumerate() {
        if call.format == "json" {
            bail!(
                "target {name}: call {call:?}: kiln bake prints calls as tables only yet; drop format=json"
            );
        }
        let mut out = if i > 0 {
            "\n".to_owned()
        } else {
            String::new()
        };
        out.push_str(&format!("{name}\n"));
        if let Some(description) = resolved.targets[name.as_str()]
            .get("description")
            .and_then(Json::as_str)
            .filter(|d| !d.is_empty())
        {
            out.push_str(&format!("{description}\n"));
        }
        out.push('\n');
        let answer = builder.call(build, &call.subrequest())?;
        // As buildx names it: the target's Dockerfile joined to its context.
        let field = |key: &str| {
            resolved.targets[name.as_str()]
                .get(key)
                .and_then(Json::as_str)
                .map(str::to_owned)
        };
        let file = field("dockerfile").unwrap_or_else(|| "Dockerfile".to_owned());
        let dockerfile = match field("context") {
            Some(context) if kiln_api::context::detect(&context)?.is_some() => file,
            _ if file.starts_with('/') => file,
            context => kiln_oci::go::join_path(&[context.as_deref().unwrap_or("."), &file]),
        };
        match super::call::print_answer(call, &answer, &dockerfile, &mut out) {
            Ok(0) => {}
            Ok(status) if call_status == 0 => call_status = status,
            Ok(_) => {}
            Err(error) => {
                out.push_str(&format!("error: {error}\n"));
                call_status = 1;
            }
        }
        print!("{out}");
    }
    // Every target builds at once on the one engine: a step they share runs once
    // (the others wait for it and take it from the cache), one progress display.
    let progress = Progress::open(&args.progress, false)?;
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = builds
            .into_iter()
            .map(|(name, (build, planned))| {
                let (builder, progress) = (&builder, &progress);
                scope.spawn(move || {
                    let steps = crate::metadata::StepSources::default();
                    let result = builder.build(&build, &|event| {
                        steps.observe(&event);
                        progress.event(event)
                    });
                    (name, build, planned, result, steps)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a bake target's build thread panicked"))
            .collect::<Vec<_>>()
    });
    progress.finish();
    for (name, build, planned, result, steps) in results {
        let result = result.with_context(|| format!("target {name:?} failed to build"))?;
        for archive in crate::outputs::loads(&planned) {
            for message in crate::docker::load(&archive)? {
                if !quiet {
                    eprintln!("{message}");
                }
            }
        }
        if !quiet {
            for pushed in &result.pushed {
                eprintln!("pushed {pushed}");
            }
            for warning in &result.warnings {
                eprintln!("WARNING: {name}: {warning}");
            }
            crate::progress::checks::print_summary(&result.checks);
        }
        metadata.insert(
            name.clone(),
            crate::metadata::build_metadata(&build, &result, &steps),
        );
    }
    if let Some(path) = &args.metadata_file {
        crate::metadata::write_json(path, &Json::Object(metadata))?;
    }
    if call_status != 0 {
        return Err(crate::commands::Reported(call_status).into());
    }
    Ok(())
}

/// One resolved target as a build, with its planned exporters. A context named by URL
/// is fetched here for the embedded engine, and left for a remote builder to fetch (as
/// buildx leaves it).
fn build_request(
    dir: &Path,
    name: &str,
    target: &Map<String, Json>,
    all: &BTreeMap<String, Map<String, Json>>,
    allowed: &[String],
    scratch: &Path,
    remote_builder: bool,
) -> anyhow::Result<(BuildRequest, Vec<Planned>)> {
    let text = |key: &str| target.get(key).and_then(Json::as_str);
    let objects = |key: &str| -> Vec<Map<String, Json>> {
        target
            .get(key)
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(|o| o.as_object().cloned()).collect())
            .unwrap_or_default()
    };
    let csv = |entry: &Map<String, Json>| {
        entry
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(",")
    };
    let tags: Vec<String> = target
        .get("tags")
        .and_then(Json::as_array)
        .map(|t| {
            t.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let context_spec = text("context").unwrap_or(".");
    let url_context = kiln_api::context::detect(context_spec)?;
    let context_url = url_context
        .as_ref()
        .filter(|_| remote_builder)
        .map(|_| context_spec.to_owned());
    let remote = match url_context.filter(|_| !remote_builder) {
        Some(remote) => Some(kiln_api::context::fetch(
            &remote,
            &scratch.join(format!("{name}.context")),
        )?),
        None => None,
    };
    let mut named_contexts = BTreeMap::new();
    for (key, value) in target
        .get("contexts")
        .and_then(Json::as_object)
        .into_iter()
        .flatten()
    {
        let value = value.as_str().unwrap_or_default();
        let context = match value.strip_prefix("target:") {
            // A linked target's result is the context: built within this build.
            Some(linked) => {
                let linked_target = all
                    .get(linked)
                    .with_context(|| format!("contexts.{key}: no target {linked:?}"))?;
                let (linked_request, _) = build_request(
                    dir,
                    linked,
                    linked_target,
                    all,
                    allowed,
                    scratch,
                    remote_builder,
                )
                .with_context(|| format!("target {linked}"))?;
                BuildContext::Build(Box::new(linked_request))
            }
            None if value.contains("://") || value.starts_with("git@") => {
                parse_context_value(key, value)?
            }
            None => parse_context_value(key, &dir.join(value).display().to_string())?,
        };
        named_contexts.insert(key.clone(), context);
    }
    let (context, remote_dockerfile) = match remote {
        Some(fetched) => (fetched.context, fetched.dockerfile),
        // The builder fetches it: the Dockerfile's path is inside it.
        None if context_url.is_some() => (PathBuf::new(), None),
        None => (dir.join(context_spec), None),
    };
    let dockerfile = match (text("dockerfile-inline"), remote_dockerfile) {
        (Some(inline), _) => {
            let path = scratch.join(format!("{name}.Dockerfile"));
            fs_err::write(&path, inline)?;
            path
        }
        (None, Some(fetched)) => fetched,
        (None, None) => {
            let file = PathBuf::from(text("dockerfile").unwrap_or("Dockerfile"));
            if file.is_absolute() {
                file
            } else {
                context.join(file)
            }
        }
    };
    let strings = |key: &str| -> Vec<String> {
        target
            .get(key)
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let string_map = |key: &str| -> BTreeMap<String, String> {
        target
            .get(key)
            .and_then(Json::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut annotations = BTreeMap::new();
    for annotation in strings("annotations") {
        let (key, value) = annotation
            .split_once('=')
            .with_context(|| format!("annotations: {annotation:?} is not KEY=VALUE"))?;
        annotations.insert(annotation_attr(key), value.to_owned());
    }
    let mut planned = Vec::new();
    for entry in objects("output") {
        let mut attrs: BTreeMap<String, String> = entry
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let kind = attrs.remove("type").unwrap_or_else(|| "local".to_owned());
        planned.push(crate::outputs::plan(&kind, attrs, &tags, &annotations)?);
    }
    let mut entitlements = Vec::new();
    for wanted in target
        .get("entitlements")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
    {
        if !allowed.iter().any(|a| a == wanted) {
            bail!("additional privileges requested: {wanted}; grant them with --allow={wanted}");
        }
        entitlements.push(wanted.to_owned());
    }
    let request = BuildRequest {
        named_contexts,
        context,
        dockerfile,
        build_args: target
            .get("args")
            .and_then(Json::as_object)
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        target: text("target").map(str::to_owned),
        tags,
        outputs: planned.iter().map(|p| p.export.clone()).collect(),
        no_cache: target.get("no-cache") == Some(&Json::Bool(true)),
        secrets: objects("secret")
            .iter()
            .map(|s| parse_secret(&csv(s)))
            .collect::<anyhow::Result<_>>()?,
        ssh: objects("ssh")
            .iter()
            .map(|s| {
                let id = s.get("id").and_then(Json::as_str).unwrap_or("default");
                // `paths` is a list, as buildx prints it.
                let paths: Vec<&str> = s
                    .get("paths")
                    .and_then(Json::as_array)
                    .map(|p| p.iter().filter_map(Json::as_str).collect())
                    .unwrap_or_default();
                if paths.is_empty() {
                    parse_ssh(id)
                } else {
                    parse_ssh(&format!("{id}={}", paths.join(",")))
                }
            })
            .collect::<anyhow::Result<_>>()?,
        entitlements,
        labels: string_map("labels"),
        no_cache_filter: strings("no-cache-filter"),
        cache_imports: cache_entries(&objects("cache-from")),
        cache_exports: cache_entries(&objects("cache-to")),
        pull: target.get("pull") == Some(&Json::Bool(true)),
        run: RunDefaults {
            network: text("network").map(str::to_owned),
            extra_hosts: string_map("extra-hosts").into_iter().collect(),
            ulimits: strings("ulimits")
                .iter()
                .map(|u| parse_ulimit(u))
                .collect::<anyhow::Result<_>>()?,
            shm_size: match text("shm-size") {
                Some(size) => parse_size(size).with_context(|| format!("shm-size {size:?}"))?,
                None => 0,
            },
            // Bake targets have no cgroup-parent attribute (as in buildx).
            cgroup_parent: None,
        },
        platforms: super::build::parse_platforms(&strings("platforms"))?,
        context_url,
    };
    crate::outputs::refuse_manifest_lists(&planned, request.platforms.len())?;
    Ok((request, planned))
}

/// `--sbom`/`--provenance` values as an attest entry, the way buildx canonicalises them.
fn attestation(kind: &str, value: &str) -> Option<String> {
    match (value, kiln_oci::go::parse_bool(value)) {
        ("", _) => None,
        (_, Some(true)) => Some(format!("type={kind}")),
        (_, Some(false)) => Some(format!("type={kind},disabled=true")),
        (options, None) => Some(format!("type={kind},{options}")),
    }
}

/// Cache entries as `bake --print` has them (objects of `type` and attributes), filled
/// in from the environment as buildx sends them.
fn cache_entries(objects: &[Map<String, Json>]) -> Vec<kiln_api::build::CacheOptionsEntry> {
    objects
        .iter()
        .map(|object| {
            let mut attrs: BTreeMap<String, String> = object
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            kiln_api::build::CacheOptionsEntry {
                kind: attrs.remove("type").unwrap_or_default(),
                attrs,
            }
        })
        .filter_map(|entry| entry.with_client_environment(|name| std::env::var(name).ok()))
        .collect()
}
