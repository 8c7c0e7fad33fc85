//! One instruction onto a stage: the LLB it adds and the image config it changes
//! (BuildKit's `dispatch*` functions).

use kiln_llb::{ChownOpt, FileAction, OpOptions, Platform, State, UserOpt};
use kiln_oci::go::{clean_path, join_path};

use super::copy::{CopyConfig, dispatch_copy};
use super::gofmt;
use super::lint::Linter;
use super::run::dispatch_run;
use super::{Context, HISTORY_COMMENT, StageCommand, StageState, range_to_pb};
use kiln_oci::image::{Healthcheck, History};
use std::collections::BTreeSet;

use crate::error::{Error, SourceRange};
use crate::instructions::{CommandLine, Instruction, SourcesAndDest};
use crate::shell::Lexer;

pub(super) type Sources = [Option<(State, bool, String)>];

pub(super) fn env_of(state: &State) -> Vec<(String, String)> {
    state.meta().env.clone()
}

/// BuildKit's `system.NormalizePath` for Linux.
pub(super) fn normalize_path(parent: &str, new_path: &str, keep_slash: bool) -> String {
    let parent = if parent.is_empty() { "/" } else { parent };
    let mut out = if new_path.starts_with('/') {
        new_path.to_owned()
    } else {
        join_path(&[parent, new_path])
    };
    out = clean_path(&out);
    if keep_slash {
        if new_path.ends_with('/') && !out.ends_with('/') {
            out.push('/');
        } else if new_path.ends_with("/.") {
            if out != "/" {
                out.push('/');
            }
            out.push('.');
        }
    }
    out
}

/// `->arm64` after a step's platform when the stage's `TARGET*` variables name another
/// architecture (a cross-compiling stage on `$BUILDPLATFORM`), `->linux/arm64` for
/// another OS; BuildKit's `formatTargetPlatform(platform, platformFromEnv(env))`.
pub(super) fn target_arrow(platform: &Platform, env: &[(String, String)]) -> String {
    let mut target = Platform::default();
    let mut set = false;
    for (key, value) in env {
        match key.as_str() {
            "TARGETPLATFORM" => match value.parse::<Platform>() {
                Ok(parsed) => {
                    target = parsed;
                    set = true;
                    break;
                }
                Err(_) => continue,
            },
            "TARGETOS" => target.os = value.clone(),
            "TARGETARCH" => target.architecture = value.clone(),
            "TARGETVARIANT" => target.variant = value.clone(),
            _ => continue,
        }
        set = true;
    }
    if !set {
        return String::new();
    }
    if target.os.is_empty() {
        target.os = platform.os.clone();
    }
    if target.architecture.is_empty() {
        target.architecture = platform.architecture.clone();
    }
    let text = format!("{}/{}/{}", target.os, target.architecture, target.variant);
    let target: Platform = text.trim_end_matches('/').parse().unwrap_or(target);
    if target.os != platform.os {
        format!("->{target}")
    } else if target.architecture != platform.architecture {
        match target.variant.as_str() {
            "" => format!("->{}", target.architecture),
            variant => format!("->{}/{variant}", target.architecture),
        }
    } else {
        String::new()
    }
}

/// `[stage 2/5] ` before a step's name, counting the step; `[linux/arm64 stage 2/5] `
/// when several platforms are built, as BuildKit names steps then.
pub(super) fn prefix_command(ctx: &Context<'_>, st: &mut StageState, text: &str) -> String {
    if st.cmd_total == 0 {
        return text.to_owned();
    }
    let mut out = String::from("[");
    if ctx.options.multi_platform {
        let platform = st.platform.as_ref().unwrap_or(&ctx.target_platform);
        let target = target_arrow(platform, &env_of(&st.state));
        out.push_str(&format!("{platform}{target} "));
    }
    if !st.display_name.is_empty() {
        out.push_str(&st.display_name);
        out.push(' ');
    }
    st.cmd_index += 1;
    let width = 1 + st.cmd_total.ilog10() as usize;
    out.push_str(&format!("{:>width$}/{}] ", st.cmd_index, st.cmd_total));
    if st.cmd_is_onbuild {
        out.push_str("ONBUILD ");
    }
    out + text
}

pub(super) fn uppercase_cmd(s: &str) -> String {
    match s.split_once(' ') {
        Some((first, rest)) => format!("{} {rest}", first.to_uppercase()),
        None => s.to_uppercase(),
    }
}

/// The step name: the instruction with its words processed by `lexer`.
pub(super) fn step_name(lexer: &Lexer, code: &str, env: &[(String, String)]) -> String {
    uppercase_cmd(&lexer.expand(code, env).unwrap_or_else(|_| code.to_owned()))
}

/// RUN names keep quotes and unset variables as written.
pub(super) fn raw_lexer(ctx: &Context<'_>) -> Lexer {
    Lexer {
        raw_quotes: true,
        skip_unset_env: true,
        ..ctx.lexer
    }
}

pub(super) fn commit(st: &mut StageState, ctx: &Context<'_>, message: String, with_layer: bool) {
    st.image.history.push(History {
        created: ctx.epoch.map(kiln_oci::rfc3339_utc),
        created_by: message,
        comment: HISTORY_COMMENT.to_owned(),
        empty_layer: !with_layer,
        ..History::default()
    });
}

pub(super) fn op_options(
    ctx: &Context<'_>,
    st: &StageState,
    name: String,
    location: SourceRange,
) -> OpOptions {
    let mut op = OpOptions::default()
        .custom_name(name)
        .location(&ctx.source_map, vec![range_to_pb(location)]);
    if st.ignore_cache {
        op = op.ignore_cache();
    }
    op
}

/// BuildKit's `llb.WithUser` for chown: `uid[:gid]`, names where not numeric.
pub(super) fn parse_chown(spec: &str) -> ChownOpt {
    let parse = |v: &str| match v {
        "root" => UserOpt::Id(0),
        _ => v
            .parse::<u32>()
            .map_or_else(|_| UserOpt::Name(v.to_owned()), UserOpt::Id),
    };
    let mut parts = spec.splitn(2, ':');
    ChownOpt {
        user: parts.next().map(parse),
        group: parts.next().map(parse),
    }
}

/// Sets the working directory (from an image config or a WORKDIR) without a layer.
pub(super) fn set_workdir(st: &mut StageState, path: &str) -> String {
    let wd = if path.starts_with('/') {
        clean_path(path)
    } else {
        clean_path(&format!("/{}/{path}", st.image.config.working_dir))
    };
    st.image.config.working_dir = wd.clone();
    st.state = st.state.dir(&wd);
    wd
}

/// Expands the words an instruction supports expansion in (BuildKit's `Expand`);
/// returns the variables referred to that were not set.
pub(super) fn expand_command(
    ctx: &Context<'_>,
    st: &StageState,
    instruction: &mut Instruction,
) -> Result<BTreeSet<String>, Error> {
    let env = env_of(&st.state);
    let unmatched = std::cell::RefCell::new(BTreeSet::new());
    let expand = |word: &str| -> Result<String, Error> {
        let expansion = ctx.lexer.process(word, &env)?;
        unmatched.borrow_mut().extend(expansion.unmatched);
        Ok(expansion.word)
    };
    let expand_paths = |paths: &mut SourcesAndDest| -> Result<(), Error> {
        for source in &mut paths.sources {
            *source = expand(source)?;
        }
        paths.dest = expand(&paths.dest)?;
        let raw = Lexer {
            skip_process_quotes: true,
            ..Lexer::new('\\')
        };
        for content in &mut paths.contents {
            if content.expand {
                content.data = raw.expand(&content.data, &env)?;
            }
        }
        Ok(())
    };
    match instruction {
        Instruction::Env(kvs) | Instruction::Label(kvs) => {
            for kv in kvs {
                kv.key = expand(&kv.key)?;
                kv.value = expand(&kv.value)?;
            }
        }
        Instruction::Add(add) => {
            add.chown = expand(&add.chown)?;
            add.chmod = expand(&add.chmod)?;
            add.checksum = expand(&add.checksum)?;
            expand_paths(&mut add.paths)?;
        }
        Instruction::Copy(copy) => {
            copy.chown = expand(&copy.chown)?;
            copy.chmod = expand(&copy.chmod)?;
            expand_paths(&mut copy.paths)?;
        }
        Instruction::Workdir(path) | Instruction::User(path) | Instruction::StopSignal(path) => {
            *path = expand(path)?
        }
        Instruction::Volume(volumes) => {
            for v in volumes {
                *v = expand(v)?;
            }
        }
        _ => {}
    }
    Ok(unmatched.into_inner())
}

/// `UndefinedVar`: variables an instruction used that neither ENV nor ARG set (the
/// automatic platform args are never reported).
pub(super) fn report_undefined(
    st: &StageState,
    unmatched: BTreeSet<String>,
    location: SourceRange,
    lint: &mut Linter,
) {
    let env = env_of(&st.state);
    for name in unmatched {
        let declared = st.build_args.iter().any(|(k, _)| *k == name);
        let automatic = super::AUTOMATIC_ARGS.contains(&name.as_str());
        if declared || automatic {
            continue;
        }
        let hint = crate::suggest::search(&name, env.iter().map(|(k, _)| k.as_str()), true)
            .map(|s| format!(" (did you mean ${s}?)"))
            .unwrap_or_default();
        lint.report(
            "UndefinedVar",
            &format!("Usage of undefined variable '${name}'{hint}"),
            location,
        );
    }
}

pub(super) fn dispatch(
    ctx: &Context<'_>,
    st: &mut StageState,
    cmd: &StageCommand,
    sources: &Sources,
    _source_paths: &mut Vec<(usize, String)>,
    lint: &mut Linter,
) -> Result<(), Error> {
    st.cmd_is_onbuild = cmd.on_build;
    let mut instruction = cmd.command.instruction.clone();
    let unmatched = expand_command(ctx, st, &mut instruction)?;
    let location = cmd.command.location;
    report_undefined(st, unmatched, location, lint);
    let code = cmd.command.code.as_str();
    match instruction {
        Instruction::Maintainer(m) => {
            st.image.author = m.clone();
            commit(st, ctx, format!("MAINTAINER {m}"), false);
        }
        Instruction::Env(kvs) => {
            let mut message = String::from("ENV");
            for kv in kvs {
                super::lint::check_secret_key("ENV", &kv.key, location, lint);
                if kv.no_delimiter {
                    lint.report("LegacyKeyValueFormat", "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format", location);
                }
                message.push_str(&format!(" {}={}", kv.key, kv.value));
                st.state = st.state.add_env(kv.key.clone(), kv.value.clone());
                add_image_env(&mut st.image.config.env, &kv.key, &kv.value);
            }
            commit(st, ctx, message, false);
        }
        Instruction::Label(kvs) => {
            let mut message = String::from("LABEL");
            for kv in kvs {
                if kv.no_delimiter {
                    lint.report("LegacyKeyValueFormat", "\"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format", location);
                }
                message.push_str(&format!(" {}={}", kv.key, kv.value));
                st.image.config.labels.insert(kv.key, kv.value);
            }
            commit(st, ctx, message, false);
        }
        Instruction::Run(run) => dispatch_run(ctx, st, &run, code, location, sources)?,
        Instruction::Workdir(path) => {
            if !st.workdir_set && !path.starts_with('/') {
                lint.report("WorkdirRelativePath", &format!("Relative workdir \"{path}\" can have unexpected results if the base image changes"), location);
            }
            st.workdir_set = true;
            let wd = set_workdir(st, &path);
            let mut with_layer = false;
            if wd != "/" {
                let user = st.image.config.user.clone();
                let chown = (!user.is_empty()).then(|| parse_chown(&user));
                let env = env_of(&st.state);
                let name = step_name(&ctx.lexer, code, &env);
                let name = prefix_command(ctx, st, &name);
                let action = FileAction::mkdir(
                    &wd,
                    0o755,
                    true,
                    chown,
                    ctx.epoch.map(|s| s * 1_000_000_000),
                );
                let op = op_options(ctx, st, name, location);
                st.state = st.state.file(action, op);
                with_layer = true;
            }
            commit(st, ctx, format!("WORKDIR {wd}"), with_layer);
        }
        Instruction::Add(add) => {
            let config = CopyConfig {
                paths: add.paths,
                excludes: add.excludes,
                source: ctx.build_context.clone(),
                is_add: true,
                code,
                chown: add.chown,
                chmod: add.chmod,
                link: add.link,
                keep_git_dir: add.keep_git_dir,
                checksum: add.checksum,
                parents: false,
                unpack: add.unpack,
                location,
            };
            let from_context: Vec<String> = config
                .paths
                .sources
                .iter()
                .filter(|s| !s.starts_with("http://") && !s.starts_with("https://"))
                .cloned()
                .collect();
            dispatch_copy(ctx, st, config)?;
            for src in from_context {
                st.ctx_paths.insert(join_path(&["/", &src]));
            }
        }
        Instruction::Copy(copy) => {
            let source = match sources.first() {
                Some(Some((state, dispatched, _))) => {
                    if !dispatched {
                        return Err(Error::new(format!(
                            "cannot copy from stage {}, it needs to be defined before current stage {}",
                            crate::go_quote(&copy.from),
                            crate::go_quote(&st.display_name)
                        )));
                    }
                    state.clone()
                }
                _ => ctx.build_context.clone(),
            };
            let from_context = sources.first().is_none_or(Option::is_none);
            let srcs = copy.paths.sources.clone();
            let config = CopyConfig {
                paths: copy.paths,
                excludes: copy.excludes,
                source,
                is_add: false,
                code,
                chown: copy.chown,
                chmod: copy.chmod,
                link: copy.link,
                keep_git_dir: false,
                checksum: String::new(),
                parents: copy.parents,
                unpack: None,
                location,
            };
            dispatch_copy(ctx, st, config)?;
            if from_context {
                for src in srcs {
                    st.ctx_paths.insert(join_path(&["/", &src]));
                }
            }
        }
        Instruction::Onbuild(expr) => st.image.config.on_build.push(expr),
        Instruction::Cmd(line) => {
            if std::mem::replace(&mut st.cmd_set, true) {
                lint.report("MultipleInstructionsDisallowed", "Multiple CMD instructions should not be used in the same stage because only the last one will be used", location);
            }
            let args = shell_args(st, &line, "CMD", location, lint);
            st.image.config.cmd = args.clone();
            st.image.config.args_escaped = true;
            commit(st, ctx, format!("CMD {}", gofmt::quote_list(&args)), false);
        }
        Instruction::Entrypoint(line) => {
            let args = shell_args(st, &line, "ENTRYPOINT", location, lint);
            st.image.config.entrypoint = args.clone();
            if !st.cmd_set {
                st.image.config.cmd.clear();
            }
            commit(
                st,
                ctx,
                format!("ENTRYPOINT {}", gofmt::quote_list(&args)),
                false,
            );
        }
        Instruction::Healthcheck(h) => {
            let health = Healthcheck {
                test: h.test,
                interval: h.interval,
                timeout: h.timeout,
                start_period: h.start_period,
                start_interval: h.start_interval,
                retries: i64::from(h.retries),
            };
            let message = format!(
                "HEALTHCHECK &{{{} {} {} {} {} {}}}",
                gofmt::quote_list(&health.test),
                crate::go_quote(&kiln_oci::go::duration_string(health.interval)),
                crate::go_quote(&kiln_oci::go::duration_string(health.timeout)),
                crate::go_quote(&kiln_oci::go::duration_string(health.start_period)),
                crate::go_quote(&kiln_oci::go::duration_string(health.start_interval)),
                gofmt::quote_rune(health.retries)
            );
            st.image.config.healthcheck = Some(health);
            commit(st, ctx, message, false);
        }
        Instruction::Expose(ports) => {
            let env = env_of(&st.state);
            let mut expanded = Vec::new();
            for port in &ports {
                expanded.extend(ctx.lexer.expand_words(port, &env)?);
            }
            for spec in &expanded {
                for port in parse_port_spec(spec)? {
                    st.image
                        .config
                        .exposed_ports
                        .insert(port, serde_json::Map::new());
                }
            }
            // BuildKit v0.24 prints the instruction's location and a pointer here.
            let message = format!(
                "EXPOSE &{{[{{{{{} {}}} {{{} {}}}}}] 0xc000000000}}",
                location.start.line,
                location.start.character,
                location.end.line,
                location.end.character
            );
            commit(st, ctx, message, false);
        }
        Instruction::User(user) => {
            st.state = st.state.user(user.clone());
            st.image.config.user = user.clone();
            commit(st, ctx, format!("USER {user}"), false);
        }
        Instruction::Volume(volumes) => {
            for v in &volumes {
                if v.is_empty() {
                    return Err(Error::new("VOLUME specified can not be an empty string"));
                }
                st.image
                    .config
                    .volumes
                    .insert(v.clone(), serde_json::Map::new());
            }
            commit(
                st,
                ctx,
                format!("VOLUME {}", gofmt::plain_list(&volumes)),
                false,
            );
        }
        Instruction::StopSignal(signal) => {
            check_signal(&signal)?;
            st.image.config.stop_signal = signal.clone();
            commit(st, ctx, format!("STOPSIGNAL {signal}"), false);
        }
        Instruction::Shell(shell) => {
            st.image.config.shell = shell.clone();
            commit(
                st,
                ctx,
                format!("SHELL {}", gofmt::plain_list(&shell)),
                false,
            );
        }
        Instruction::Arg(args) => {
            let mut parts = Vec::with_capacity(args.len());
            for (order, arg) in args.into_iter().enumerate() {
                super::lint::check_secret_key("ARG", &arg.key, location, lint);
                let from_build = ctx.options.build_args.get(&arg.key).cloned();
                let mut value = arg.value.clone();
                // An ARG naming a global one without a value takes the global's, and
                // the outline keeps describing the global ARG.
                let mut inherited = false;
                if value.is_none() && from_build.is_none() {
                    value = super::env_get(&ctx.global_args, &arg.key).map(str::to_owned);
                    inherited = value.is_some();
                } else if let Some(v) = from_build {
                    value = Some(v);
                } else if let Some(default) = &value {
                    value = Some(ctx.lexer.expand(default, &env_of(&st.state))?);
                }
                if let Some(v) = &value {
                    st.state = st.state.add_env(arg.key.clone(), v.clone());
                }
                parts.push(match &value {
                    Some(v) => format!("{}={v}", arg.key),
                    None => arg.key.clone(),
                });
                if !inherited {
                    st.outline.all_args.insert(
                        arg.key.clone(),
                        super::outline::ArgInfo {
                            arg: super::OutlineArg {
                                name: arg.key.clone(),
                                description: arg.comment.clone(),
                                value: value.clone().unwrap_or_default(),
                                location,
                            },
                            deps: BTreeSet::new(),
                            order,
                        },
                    );
                }
                st.outline.used_args.insert(arg.key.clone());
                st.build_args.push((arg.key, value));
            }
            commit(st, ctx, format!("ARG {}", parts.join(" ")), false);
        }
        Instruction::From(_) => {}
    }
    Ok(())
}

pub(super) fn add_image_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
        Some(existing) => *existing = entry,
        None => env.push(entry),
    }
}

/// The shell form wrapped in the stage's SHELL (default `/bin/sh -c`).
pub(super) fn with_shell(st: &StageState, args: &[String]) -> Vec<String> {
    let mut shell = if st.image.config.shell.is_empty() {
        vec!["/bin/sh".to_owned(), "-c".to_owned()]
    } else {
        st.image.config.shell.clone()
    };
    shell.push(args.join(" "));
    shell
}

pub(super) fn shell_args(
    st: &StageState,
    line: &CommandLine,
    name: &str,
    location: SourceRange,
    lint: &mut Linter,
) -> Vec<String> {
    if !line.prepend_shell {
        return line.args.clone();
    }
    if st.image.config.shell.is_empty() {
        lint.report(
            "JSONArgsRecommended",
            &format!("JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"),
            location,
        );
    }
    with_shell(st, &line.args)
}

/// Signal names Go's `signal.ParseSignal` accepts on Linux.
pub(super) const SIGNALS: [&str; 31] = [
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM",
];

pub(super) fn check_signal(signal: &str) -> Result<(), Error> {
    if let Ok(n) = signal.parse::<u32>() {
        if n == 0 {
            return Err(Error::new(format!("invalid signal: {signal}")));
        }
        return Ok(());
    }
    let name = signal.trim_start_matches("SIG");
    let upper = name.to_ascii_uppercase();
    let known = SIGNALS.contains(&upper.as_str())
        || ["WINCH", "XCPU", "XFSZ"].contains(&upper.as_str())
        || upper.strip_prefix("RTMIN").is_some_and(|r| {
            r.is_empty()
                || r.trim_start_matches('+')
                    .parse::<u32>()
                    .is_ok_and(|n| n <= 15)
        })
        || upper.strip_prefix("RTMAX").is_some_and(|r| {
            r.is_empty()
                || r.trim_start_matches('-')
                    .parse::<u32>()
                    .is_ok_and(|n| n <= 14)
        });
    if known {
        Ok(())
    } else {
        Err(Error::new(format!("invalid signal: {signal}")))
    }
}

/// `[ip:][hostPort:]containerPort[/proto]` to `port/proto` entries (ranges expanded).
pub(super) fn parse_port_spec(raw: &str) -> Result<Vec<String>, Error> {
    let parts: Vec<&str> = raw.split(':').collect();
    let container = *parts.last().unwrap_or(&"");
    let (port, proto) = container.split_once('/').unwrap_or((container, ""));
    if port.is_empty() {
        return Err(Error::new(format!("no port specified: {container}<empty>")));
    }
    let proto = match proto.to_ascii_lowercase().as_str() {
        "" => "tcp".to_owned(),
        p @ ("tcp" | "udp" | "sctp") => p.to_owned(),
        p => return Err(Error::new(format!("invalid proto: {p}"))),
    };
    let range = |s: &str| -> Option<(u16, u16)> {
        match s.split_once('-') {
            None => s.parse().ok().map(|p| (p, p)),
            Some((a, b)) => {
                let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
                (b >= a).then_some((a, b))
            }
        }
    };
    let (start, end) =
        range(port).ok_or_else(|| Error::new(format!("invalid containerPort: {port}")))?;
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(normalize_path("/app", "./", true), "/app/");
        assert_eq!(normalize_path("/", "/a/b", false), "/a/b");
        assert_eq!(normalize_path("/x", "y/", true), "/x/y/");
        assert_eq!(join_path(&["/", "a", "../b"]), "/b");
    }

    #[test]
    fn ports() {
        assert_eq!(
            parse_port_spec("8000-8002/udp").unwrap(),
            ["8000/udp", "8001/udp", "8002/udp"]
        );
        assert_eq!(parse_port_spec("80").unwrap(), ["80/tcp"]);
        assert!(parse_port_spec("80/xyz").is_err());
    }
}

#[cfg(test)]
mod platform_name_tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// BuildKit's `formatTargetPlatform`: another architecture is named after an arrow,
    /// another OS in full, the same architecture not at all.
    #[test]
    fn cross_compiling_steps_name_their_target() {
        let amd64: Platform = "linux/amd64".parse().unwrap();
        assert_eq!(target_arrow(&amd64, &env(&[])), "");
        assert_eq!(
            target_arrow(&amd64, &env(&[("TARGETARCH", "arm64")])),
            "->arm64"
        );
        assert_eq!(
            target_arrow(&amd64, &env(&[("TARGETPLATFORM", "linux/arm/v7")])),
            "->arm/v7"
        );
        assert_eq!(
            target_arrow(&amd64, &env(&[("TARGETPLATFORM", "windows/amd64")])),
            "->windows/amd64"
        );
        assert_eq!(target_arrow(&amd64, &env(&[("TARGETOS", "linux")])), "");
    }
}
