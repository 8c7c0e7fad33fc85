//! What buildx's `toBuildOpt` checks and changes in a target before `bake --print`
//! prints it: the context path cleaned, and the values a build would refuse (bad
//! platforms, sizes, ulimits, annotations, missing secret files, an unusable ssh
//! agent, outputs without a destination) refused already.

pub(crate) use kiln_oci::go::clean_path;
use std::path::Path;

use crate::model::{ExportEntry, Target, go_quote, parse_bool};
use crate::{Error, Request};

fn fail(message: String) -> Error {
    Error::Target(message)
}

/// buildx's `IsRemoteURL`: an http(s) URL, or a git reference.
pub(crate) fn is_remote_url(s: &str) -> bool {
    if s.starts_with("https://") || s.starts_with("http://") {
        return true;
    }
    if s.starts_with("./") || s.starts_with("../") {
        return false;
    }
    if s.starts_with("github.com/") {
        return true;
    }
    if let Some((scheme, _)) = s.split_once("://") {
        return matches!(scheme.to_lowercase().as_str(), "git" | "ssh");
    }
    // scp-like `user@host:path`.
    static SCP: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^[a-zA-Z0-9\-_]+@[a-zA-Z0-9\-.]+:").expect("valid regex")
    });
    SCP.is_match(s)
}

/// Checks and normalises a resolved target as `toBuildOpt` does.
pub(crate) fn check(t: &mut Target, request: &Request) -> Result<(), Error> {
    if t.context.as_deref() == Some("-") {
        return Err(fail("context from stdin not allowed in bake".into()));
    }
    if t.dockerfile.as_deref() == Some("-") {
        return Err(fail("dockerfile from stdin not allowed in bake".into()));
    }
    let context = t.context.clone().unwrap_or_else(|| ".".to_owned());
    let context = match context.strip_prefix("cwd://") {
        Some(local) => clean_path(local),
        None if is_remote_url(&context) => context,
        None => clean_path(&context),
    };
    t.context = Some(context);

    if let Some(size) = &t.shm_size
        && !is_mem_bytes(size)
    {
        return Err(fail(format!(
            "invalid value {size} for membytes key shm-size"
        )));
    }
    for platform in t.platforms.iter().flatten() {
        for p in platform.split(',') {
            parse_platform(p).map_err(fail)?;
        }
    }
    check_secrets(t, request)?;
    check_ssh(t, request)?;
    if let Some(outputs) = &mut t.outputs {
        check_exports(outputs, &request.dir)?;
    }
    for annotation in t.annotations.iter().flatten() {
        check_annotation(annotation).map_err(fail)?;
    }
    for ulimit in t.ulimits.iter().flatten() {
        check_ulimit(ulimit).map_err(fail)?;
    }
    Ok(())
}

/// docker's `units.RAMInBytes` syntax.
fn is_mem_bytes(s: &str) -> bool {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$").expect("valid regex")
    });
    RE.is_match(s)
}

/// containerd's `platforms.Parse` errors (`local` is the host's platform).
fn parse_platform(specifier: &str) -> Result<(), String> {
    if specifier.eq_ignore_ascii_case("local") {
        return Ok(());
    }
    if specifier.contains('*') {
        return Err(format!(
            "{}: wildcards not yet supported: invalid argument",
            go_quote(specifier)
        ));
    }
    static OS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.-]*)\))?$").expect("valid regex")
    });
    static PART: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"^[A-Za-z0-9_.-]+$").expect("valid regex"));
    let parts: Vec<&str> = specifier.splitn(4, '/').collect();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            if !OS.is_match(part) {
                return Err(format!(
                    "{} is an invalid OS component of {}: OSAndVersion specifier component must match {}: invalid argument",
                    go_quote(part),
                    go_quote(specifier),
                    go_quote(OS.as_str())
                ));
            }
        } else if !PART.is_match(part) {
            return Err(format!(
                "{} is an invalid component of {}: platform specifier component must match {}: invalid argument",
                go_quote(part),
                go_quote(specifier),
                go_quote(PART.as_str())
            ));
        }
    }
    match parts.len() {
        1 => {
            let os = parts[0].to_lowercase();
            const OSES: [&str; 17] = [
                "aix",
                "android",
                "darwin",
                "dragonfly",
                "freebsd",
                "hurd",
                "illumos",
                "ios",
                "js",
                "linux",
                "nacl",
                "netbsd",
                "openbsd",
                "plan9",
                "solaris",
                "windows",
                "zos",
            ];
            const ARCHES: [&str; 24] = [
                "386",
                "amd64",
                "amd64p32",
                "arm",
                "armbe",
                "arm64",
                "arm64be",
                "ppc64",
                "ppc64le",
                "loong64",
                "mips",
                "mipsle",
                "mips64",
                "mips64le",
                "mips64p32",
                "mips64p32le",
                "ppc",
                "riscv",
                "riscv64",
                "s390",
                "s390x",
                "sparc",
                "sparc64",
                "wasm",
            ];
            let os = if os == "macos" {
                "darwin".to_owned()
            } else {
                os
            };
            let arch = match os.as_str() {
                "i386" => "386",
                "x86_64" | "x86-64" => "amd64",
                "aarch64" => "arm64",
                "armhf" | "armel" => "arm",
                other => other,
            };
            if OSES.contains(&os.as_str()) || ARCHES.contains(&arch) {
                Ok(())
            } else {
                Err(format!(
                    "{}: unknown operating system or architecture: invalid argument",
                    go_quote(specifier)
                ))
            }
        }
        2 | 3 => Ok(()),
        _ => Err(format!(
            "{}: cannot parse platform specifier: invalid argument",
            go_quote(specifier)
        )),
    }
}

fn resolve_path(dir: &Path, p: &str) -> std::path::PathBuf {
    if Path::new(p).is_absolute() {
        p.into()
    } else {
        dir.join(p)
    }
}

/// secretsprovider's `NewStore`.
fn check_secrets(t: &Target, request: &Request) -> Result<(), Error> {
    for secret in t.secrets.iter().flatten() {
        if secret.id.is_empty() {
            return Err(fail("secret missing ID".into()));
        }
        let mut src = secret.src.clone();
        if secret.env.is_empty() && src.is_empty() && !request.env.contains_key(&secret.id) {
            src = secret.id.clone();
        }
        if !src.is_empty() && fs_err::metadata(resolve_path(&request.dir, &src)).is_err() {
            return Err(fail(format!(
                "failed to stat {src}: stat {src}: no such file or directory"
            )));
        }
    }
    Ok(())
}

/// sshprovider's `NewSSHAgentProvider`.
fn check_ssh(t: &Target, request: &Request) -> Result<(), Error> {
    let mut seen: Vec<String> = Vec::new();
    for ssh in t.ssh.iter().flatten() {
        let id = if ssh.id.is_empty() {
            "default".to_owned()
        } else {
            ssh.id.clone()
        };
        if seen.contains(&id) {
            return Err(fail(format!("duplicate agent ID {}", go_quote(&id))));
        }
        seen.push(id.clone());
        let shown = format!("{{{} [{}] false}}", ssh.id, ssh.paths.join(" "));
        let wrap = |e: String| fail(format!("failed to convert agent config {shown}: {e}"));
        let mut paths = ssh.paths.clone();
        if paths.is_empty() || (paths.len() == 1 && paths[0].is_empty()) {
            paths = vec![
                request
                    .env
                    .get("SSH_AUTH_SOCK")
                    .cloned()
                    .unwrap_or_default(),
            ];
        }
        if paths[0].is_empty() {
            return Err(wrap(
                "invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set".into(),
            ));
        }
        let for_id = |e: String| {
            wrap(format!(
                "failed to convert agent config for ID: {}: {e}",
                go_quote(&id)
            ))
        };
        for p in &paths {
            let path = resolve_path(&request.dir, p);
            let Ok(meta) = fs_err::metadata(&path) else {
                return Err(for_id(format!("stat {p}: no such file or directory")));
            };
            use std::os::unix::fs::FileTypeExt as _;
            if meta.file_type().is_socket() {
                continue;
            }
            let text = fs_err::read(&path).unwrap_or_default();
            if !String::from_utf8_lossy(&text).contains("PRIVATE KEY-----") {
                return Err(for_id(format!("failed to parse {p}: ssh: no key found")));
            }
        }
    }
    Ok(())
}

/// buildx's `CreateExports`: its checks, and `dest` `-` filled in for file outputs
/// without one.
fn check_exports(outputs: &mut [ExportEntry], dir: &Path) -> Result<(), Error> {
    let mut stdout_used = false;
    for entry in outputs.iter_mut() {
        if entry.kind.is_empty() {
            return Err(fail("type is required for output".into()));
        }
        let (supports_file, supports_dir) = match entry.kind.as_str() {
            "local" => (false, true),
            "tar" => (true, false),
            "oci" | "docker" => {
                let tar = entry
                    .attrs
                    .get("tar")
                    .and_then(|v| parse_bool(v).ok())
                    .unwrap_or(true);
                (tar, !tar)
            }
            _ => (false, false),
        };
        if supports_dir {
            if entry.dest.is_empty() {
                return Err(fail(format!(
                    "dest is required for {} exporter",
                    entry.kind
                )));
            }
            if entry.dest == "-" {
                return Err(fail(format!(
                    "dest cannot be stdout for {} exporter",
                    entry.kind
                )));
            }
            if let Ok(meta) = fs_err::metadata(resolve_path(dir, &entry.dest))
                && !meta.is_dir()
            {
                return Err(fail(format!(
                    "destination directory {} is a file",
                    entry.dest
                )));
            }
        }
        if supports_file {
            if entry.dest.is_empty() && entry.kind != "docker" {
                entry.dest = "-".to_owned();
            }
            if entry.dest == "-" {
                if stdout_used {
                    return Err(fail(
                        "multiple outputs configured to write to stdout".into(),
                    ));
                }
                stdout_used = true;
            } else if !entry.dest.is_empty()
                && let Ok(meta) = fs_err::metadata(resolve_path(dir, &entry.dest))
                && meta.is_dir()
            {
                return Err(fail(format!(
                    "destination file {} is a directory",
                    entry.dest
                )));
            }
        }
    }
    Ok(())
}

/// buildx's `ParseAnnotations` checks.
fn check_annotation(annotation: &str) -> Result<(), String> {
    if annotation.is_empty() {
        return Ok(());
    }
    let Some((key, _)) = annotation.split_once('=') else {
        return Err(format!(
            "invalid annotation {}, expected key=value",
            go_quote(annotation)
        ));
    };
    let Some((types, _)) = key.split_once(':') else {
        return Ok(());
    };
    static TYPE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^([a-z-]+)(?:\[([A-Za-z0-9_/-]+)\])?$").expect("valid regex")
    });
    for type_and_platform in types.split(',') {
        let Some(groups) = TYPE.captures(type_and_platform) else {
            return Err(format!(
                "invalid annotation type {}, expected type and optional platform in square brackets",
                go_quote(type_and_platform)
            ));
        };
        let kind = &groups[1];
        if !matches!(
            kind,
            "index" | "index-descriptor" | "manifest" | "manifest-descriptor"
        ) {
            return Err(format!("unknown annotation type {}", go_quote(kind)));
        }
        if let Some(platform) = groups.get(2) {
            parse_platform(platform.as_str())
                .map_err(|e| format!("invalid platform {}: {e}", go_quote(platform.as_str())))?;
        }
    }
    Ok(())
}

/// docker's `units.ParseUlimit`.
fn check_ulimit(value: &str) -> Result<(), String> {
    const NAMES: [&str; 16] = [
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
        "as",
    ];
    let Some((name, limits)) = value.split_once('=') else {
        return Err(format!("invalid ulimit argument: {value}"));
    };
    if !NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let parse = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(s)))
    };
    let values: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match values.as_slice() {
        [soft] => {
            let s = parse(soft)?;
            (s, s)
        }
        [soft, hard] => {
            let h = parse(hard)?;
            (parse(soft)?, h)
        }
        _ => {
            return Err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            ));
        }
    };
    if hard != -1 {
        if soft == -1 {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}"
            ));
        }
        if soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_contexts_are_cleaned_like_go_path_clean() {
        assert_eq!(clean_path("./backend"), "backend");
        assert_eq!(clean_path("./"), ".");
        assert_eq!(clean_path("a/../b/./c/"), "b/c");
        assert_eq!(clean_path("../up"), "../up");
        assert_eq!(clean_path("/abs/../x"), "/x");
        assert!(is_remote_url(
            "https://github.com/moby/buildkit.git#v0.15.0"
        ));
        assert!(is_remote_url("git@github.com:moby/buildkit.git"));
        assert!(!is_remote_url("docker-image://alpine"));
        assert!(!is_remote_url("./a:b"));
    }

    #[test]
    fn platforms_fail_like_containerd() {
        assert!(parse_platform("linux/amd64").is_ok());
        assert!(parse_platform("arm64").is_ok());
        assert_eq!(
            parse_platform("foo").unwrap_err(),
            "\"foo\": unknown operating system or architecture: invalid argument"
        );
        assert!(parse_platform("linux/amd64/v2/x").is_err());
    }
}
