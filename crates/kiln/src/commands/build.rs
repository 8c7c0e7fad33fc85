//! `kiln build`: turn the flags into a build request and run it on the embedded engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use kiln_api::build::{BuildContext, BuildRequest, RunDefaults};

use crate::args::build::BuildArgs;
use crate::progress::Progress;

/// `--build-arg` values (`KEY=VALUE`, or `KEY` taken from the environment); like
/// buildx, a non-empty `SOURCE_DATE_EPOCH` in the environment is passed as that build
/// arg unless one is given.
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
    if let Some(epoch) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .filter(|v| !v.is_empty())
    {
        out.entry("SOURCE_DATE_EPOCH".to_owned()).or_insert(epoch);
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

/// A named context's value as buildx reads it: `docker-image://REF`, a git repository
/// (`https://host/repo.git#ref:subdir`), an http(s) URL, an OCI layout, a directory,
/// or (from Bake) `target:NAME`, which the caller resolves.
pub(crate) fn parse_context_value(name: &str, value: &str) -> anyhow::Result<BuildContext> {
    if let Some(reference) = value.strip_prefix("docker-image://") {
        return Ok(BuildContext::Image(reference.to_owned()));
    }
    if let Some(remote) = kiln_api::context::detect(value)? {
        return Ok(remote.into_named_context());
    }
    if let Some(layout) = value.strip_prefix("oci-layout://") {
        let (path, selector) = oci_layout_parts(layout);
        if !Path::new(path).join("index.json").is_file() {
            bail!("named context {name}={value}: {path} is no OCI layout (no index.json)");
        }
        return Ok(BuildContext::OciLayout {
            path: PathBuf::from(path),
            selector: selector.to_owned(),
        });
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

/// An OCI layout context's directory and the image it names: `PATH`, `PATH:TAG`,
/// `PATH@DIGEST` or `PATH:TAG@DIGEST` (the digest wins, as in buildx; a tag is after the
/// last path component's `:`). Without either, the layout's only (or first) image.
fn oci_layout_parts(layout: &str) -> (&str, &str) {
    let (rest, digest) = layout.split_once('@').unwrap_or((layout, ""));
    let (path, tag) = match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, tag),
        _ => (rest, ""),
    };
    (path, if digest.is_empty() { tag } else { digest })
}

/// `--build-context NAME=VALUE`.
fn parse_build_context(spec: &str) -> anyhow::Result<(String, BuildContext)> {
    let (name, value) = spec
        .split_once('=')
        .with_context(|| format!("invalid --build-context {spec:?}: expected NAME=VALUE"))?;
    Ok((name.to_owned(), parse_context_value(name, value)?))
}

/// `--cache-from`/`--cache-to` values, parsed as buildx parses them.
pub(crate) fn cache_entries(
    flag: &str,
    values: &[String],
) -> anyhow::Result<Vec<kiln_api::build::CacheOptionsEntry>> {
    let entries =
        kiln_bake::parse_cache_entries(values).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    Ok(entries
        .into_iter()
        .filter_map(|(kind, attrs)| {
            kiln_api::build::CacheOptionsEntry { kind, attrs }
                .with_client_environment(|name| std::env::var(name).ok())
        })
        .collect())
}

/// `--platform` values (each may list several, comma-separated) as platforms, each
/// once, in order; `local` is this machine's.
pub(crate) fn parse_platforms(values: &[String]) -> anyhow::Result<Vec<kiln_oci::Platform>> {
    let mut platforms: Vec<kiln_oci::Platform> = Vec::new();
    for value in values.iter().flat_map(|v| v.split(',')) {
        let platform = match value.trim() {
            "" => continue,
            "local" => kiln_oci::Platform::host(),
            other => other
                .parse()
                .with_context(|| format!("--platform {other:?}"))?,
        };
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    Ok(platforms)
}

/// The build context and Dockerfile, reading either from stdin when given as `-`: a
/// tar archive on stdin is the context; other input on stdin is the Dockerfile.
/// All of stdin; `what` names it in the error.
fn read_stdin(what: &str) -> anyhow::Result<Vec<u8>> {
    let mut input = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut input)
        .with_context(|| format!("reading the {what} from stdin"))?;
    Ok(input)
}

/// A Dockerfile given on stdin (`-f -`), written to a directory kept in `keep`.
fn dockerfile_from_stdin(keep: &mut Vec<tempfile::TempDir>) -> anyhow::Result<PathBuf> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("Dockerfile");
    fs_err::write(&path, read_stdin("Dockerfile")?)?;
    keep.push(dir);
    Ok(path)
}

fn context_and_dockerfile(
    args: &BuildArgs,
    keep: &mut Vec<tempfile::TempDir>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dockerfile_stdin = args.file.as_deref() == Some(Path::new("-"));
    let context = if args.context.as_os_str() == "-" {
        if dockerfile_stdin {
            bail!("invalid argument: can't use stdin for both build context and dockerfile");
        }
        let input = read_stdin("build context")?;
        let dir = tempfile::tempdir()?;
        let is_tar = input.get(257..262) == Some(b"ustar".as_slice());
        if is_tar {
            tar::Archive::new(input.as_slice())
                .unpack(dir.path())
                .context("unpacking the build context from stdin")?;
        } else {
            // A Dockerfile on stdin and an empty context.
            fs_err::write(dir.path().join("Dockerfile"), &input)?;
        }
        let path = dir.path().to_path_buf();
        keep.push(dir);
        path
    } else if args.context.is_dir() {
        args.context.clone()
    } else if let Some(remote) = kiln_api::context::detect(&args.context.to_string_lossy())? {
        let dir = tempfile::tempdir()?;
        let fetched = kiln_api::context::fetch(&remote, dir.path())?;
        keep.push(dir);
        if let (Some(dockerfile), None) = (fetched.dockerfile, &args.file) {
            return Ok((fetched.context, dockerfile));
        }
        // `-f` names a file inside a remote context.
        if let Some(file) = args.file.as_ref().filter(|_| !dockerfile_stdin) {
            return Ok((fetched.context.clone(), fetched.context.join(file)));
        }
        fetched.context
    } else {
        bail!(
            "unable to prepare context: path {:?} not found",
            args.context.display().to_string()
        );
    };
    let dockerfile = match &args.file {
        Some(_) if dockerfile_stdin => dockerfile_from_stdin(keep)?,
        Some(file) => lowercase_dockerfile(file.clone()),
        None => lowercase_dockerfile(context.join("Dockerfile")),
    };
    Ok((context, dockerfile))
}

/// The Dockerfile of a build whose context a remote builder fetches: a path inside that
/// context (relative; `Dockerfile` by default), or a file of the client's (`-f` with an
/// absolute path, or `-f -` read from stdin), lent to the builder.
fn dockerfile_beside_remote_context(
    args: &BuildArgs,
    keep: &mut Vec<tempfile::TempDir>,
) -> anyhow::Result<PathBuf> {
    Ok(match &args.file {
        Some(file) if file.as_os_str() == "-" => dockerfile_from_stdin(keep)?,
        Some(file) => file.clone(),
        None => PathBuf::from("Dockerfile"),
    })
}

/// A `Dockerfile` that is not there but a `dockerfile` is, beside it: that one
/// (moby/moby#10858, as buildx's `handleLowercaseDockerfile`).
fn lowercase_dockerfile(path: PathBuf) -> PathBuf {
    if path.file_name().is_none_or(|name| name != "Dockerfile") {
        return path;
    }
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(names) = fs_err::read_dir(dir) else {
        return path;
    };
    let mut lowercase = false;
    for name in names.filter_map(|e| e.ok()).map(|e| e.file_name()) {
        if name == "Dockerfile" {
            return path;
        }
        lowercase |= name == "dockerfile";
    }
    if lowercase {
        path.with_file_name("dockerfile")
    } else {
        path
    }
}

/// `manifest:KEY` → `annotation-manifest.KEY`, `KEY` → `annotation.KEY` (buildx).
pub(crate) fn annotation_attr(key: &str) -> String {
    match key.split_once(':') {
        Some((kind, rest))
            if [
                "manifest",
                "index",
                "manifest-descriptor",
                "index-descriptor",
            ]
            .iter()
            .any(|k| kind.split('[').next() == Some(*k)) =>
        {
            format!("annotation-{kind}.{rest}")
        }
        _ => format!("annotation.{key}"),
    }
}

/// Repeated `KEY=VALUE` flags into a map.
fn key_values(flag: &str, values: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    values
        .iter()
        .map(|v| {
            v.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("invalid {flag} {v:?}: expected KEY=VALUE"))
        })
        .collect()
}

/// `--add-host name:address` (or `name=address`; IPv6 addresses keep their colons).
pub(crate) fn parse_add_host(spec: &str) -> anyhow::Result<(String, String)> {
    let (name, address) = spec
        .split_once('=')
        .or_else(|| spec.split_once(':'))
        .with_context(|| format!("invalid --add-host {spec:?}: expected host:ip"))?;
    if name.is_empty() || address.is_empty() {
        bail!("invalid --add-host {spec:?}: expected host:ip");
    }
    Ok((name.to_owned(), address.to_owned()))
}

/// `--ulimit nofile=1024[:2048]`.
pub(crate) fn parse_ulimit(spec: &str) -> anyhow::Result<(String, i64, i64)> {
    let bad = || format!("invalid --ulimit {spec:?}: expected NAME=SOFT[:HARD]");
    let (name, limits) = spec.split_once('=').with_context(bad)?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let soft: i64 = soft.parse().ok().with_context(bad)?;
    let hard: i64 = hard.parse().ok().with_context(bad)?;
    if soft > hard {
        bail!("invalid --ulimit {spec:?}: soft limit above the hard limit");
    }
    Ok((name.to_owned(), soft, hard))
}

/// A byte size as buildx reads one (go-units' `RAMInBytes`: `128m`, `1g`, `512kb`).
pub(crate) fn parse_size(text: &str) -> anyhow::Result<i64> {
    kiln_oci::go::ram_in_bytes(text).map_err(anyhow::Error::msg)
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
    let platforms = parse_platforms(&args.platform)?;
    // Kept until the build ends: a context or Dockerfile read from stdin.
    let mut stdin_dirs = Vec::new();
    let remote = args.builder.remote()?;
    // A remote builder fetches a context named by URL itself, as buildx has it do.
    let context_url = match &remote {
        Some(_) if args.context.as_os_str() != "-" && !args.context.is_dir() => {
            let spec = args.context.to_string_lossy().into_owned();
            kiln_api::context::detect(&spec)?.map(|_| spec)
        }
        _ => None,
    };
    let (context, dockerfile) = match &context_url {
        Some(_) => (
            PathBuf::new(),
            dockerfile_beside_remote_context(args, &mut stdin_dirs)?,
        ),
        None => context_and_dockerfile(args, &mut stdin_dirs)?,
    };
    let mut annotations = BTreeMap::new();
    for annotation in &args.annotations {
        let (key, value) = annotation
            .split_once('=')
            .with_context(|| format!("invalid --annotation {annotation:?}: expected KEY=VALUE"))?;
        annotations.insert(annotation_attr(key), value.to_owned());
    }
    let planned = crate::outputs::plan_all(
        &args.outputs,
        &args.tags,
        &annotations,
        args.push,
        args.load,
    )?;
    crate::outputs::refuse_manifest_lists(&planned, platforms.len())?;
    let outputs = planned.iter().map(|p| p.export.clone()).collect();
    let request = BuildRequest {
        platforms,
        context_url,
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
        labels: key_values("--label", &args.labels)?,
        pull: args.pull,
        no_cache_filter: args
            .no_cache_filter
            .iter()
            .flat_map(|f| f.split(','))
            .map(str::to_owned)
            .collect(),
        run: RunDefaults {
            network: args.network.clone(),
            extra_hosts: args
                .add_hosts
                .iter()
                .map(|h| parse_add_host(h))
                .collect::<anyhow::Result<_>>()?,
            ulimits: args
                .ulimits
                .iter()
                .map(|u| parse_ulimit(u))
                .collect::<anyhow::Result<_>>()?,
            shm_size: match &args.shm_size {
                Some(size) => parse_size(size).with_context(|| format!("--shm-size {size:?}"))?,
                None => 0,
            },
            cgroup_parent: args.cgroup_parent.clone().filter(|p| !p.is_empty()),
        },
        cache_imports: cache_entries("--cache-from", &args.cache_from)?,
        cache_exports: cache_entries("--cache-to", &args.cache_to)?,
    };
    let call = if args.check {
        "check"
    } else {
        args.call.as_str()
    };
    let call = super::call::CallFunc::parse(call)?;
    let builder = crate::driver::open(remote.as_ref())?;
    if let Some(call) = call {
        let answer = builder.call(&request, &call.subrequest())?;
        let dockerfile = super::call::dockerfile_display_name(
            &args.context.to_string_lossy(),
            args.file.as_deref().map(|f| f.to_string_lossy()).as_deref(),
        );
        let mut out = String::new();
        let printed = super::call::print_answer(&call, &answer, &dockerfile, &mut out);
        print!("{out}");
        return match printed? {
            0 => Ok(()),
            status => Err(crate::commands::Reported(status).into()),
        };
    }
    let progress = Progress::open(&progress_mode, quiet)?;
    let steps = crate::metadata::StepSources::default();
    let result = builder.build(&request, &|event| {
        steps.observe(&event);
        progress.event(event)
    });
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
        if request.outputs.is_empty() && remote.is_none() {
            eprintln!(
                "WARNING: No output specified with the embedded builder.\n         Build result will only remain in the build cache.\n         To push result image into registry use --push or\n         to load image into docker use --load"
            );
        }
    }
    if let Some(path) = &args.metadata_file {
        crate::metadata::write_json(
            path,
            &crate::metadata::build_metadata(&request, &result, &steps),
        )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_hosts_ulimits_and_annotations() {
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("512kb").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("1q").is_err());
        assert_eq!(
            parse_add_host("db:10.0.0.2").unwrap(),
            ("db".to_owned(), "10.0.0.2".to_owned())
        );
        assert_eq!(parse_add_host("v6=::1").unwrap().1, "::1");
        assert_eq!(
            parse_ulimit("nofile=1024:2048").unwrap(),
            ("nofile".to_owned(), 1024, 2048)
        );
        assert_eq!(parse_ulimit("nproc=5").unwrap().2, 5);
        assert!(parse_ulimit("nofile=9:1").is_err());
        assert_eq!(annotation_attr("org.x"), "annotation.org.x");
        assert_eq!(annotation_attr("index:org.x"), "annotation-index.org.x");
    }

    #[test]
    fn oci_layout_contexts_name_a_directory_and_an_image() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(oci_layout_parts("/l"), ("/l", ""));
        assert_eq!(oci_layout_parts("/l:v1"), ("/l", "v1"));
        assert_eq!(
            oci_layout_parts(&format!("/l@{digest}")),
            ("/l", digest.as_str())
        );
        assert_eq!(
            oci_layout_parts(&format!("/l:v1@{digest}")),
            ("/l", digest.as_str())
        );
        assert_eq!(oci_layout_parts("./a/b"), ("./a/b", ""));
    }
}
