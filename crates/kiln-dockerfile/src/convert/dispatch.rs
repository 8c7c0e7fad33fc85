//! One instruction onto a stage: the LLB it adds and the image config it changes
//! (BuildKit's `dispatch*` functions).

use kiln_llb::{
    CacheSharing, ChownOpt, CopyOptions, FileAction, GitOptions, HttpOptions, Mount, NetMode,
    OpOptions, Platform, Run, SecretEnv, SecretMount, SecurityMode, SshMount, State, UserOpt,
};
use kiln_oci::go::{clean_path, join_path};

use super::gofmt;
use super::image::{Healthcheck, History};
use super::lint::Linter;
use super::{Context, HISTORY_COMMENT, StageCommand, StageState, range_to_pb};
use std::collections::BTreeSet;

use crate::error::{Error, SourceRange};
use crate::instructions::{self, CommandLine, Instruction, MountType, SourcesAndDest};
use crate::parser::{chomp_heredoc_content, parse_heredoc};
use crate::shell::Lexer;

type Sources = [Option<(State, bool, String)>];

fn env_of(state: &State) -> Vec<(String, String)> {
    state.meta().env.clone()
}

/// BuildKit's `system.NormalizePath` for Linux.
fn normalize_path(parent: &str, new_path: &str, keep_slash: bool) -> String {
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
fn target_arrow(platform: &Platform, env: &[(String, String)]) -> String {
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

fn uppercase_cmd(s: &str) -> String {
    match s.split_once(' ') {
        Some((first, rest)) => format!("{} {rest}", first.to_uppercase()),
        None => s.to_uppercase(),
    }
}

/// The step name: the instruction with its words processed by `lexer`.
fn step_name(lexer: &Lexer, code: &str, env: &[(String, String)]) -> String {
    uppercase_cmd(&lexer.expand(code, env).unwrap_or_else(|_| code.to_owned()))
}

/// RUN names keep quotes and unset variables as written.
fn raw_lexer(ctx: &Context<'_>) -> Lexer {
    Lexer {
        raw_quotes: true,
        skip_unset_env: true,
        ..ctx.lexer
    }
}

fn commit(st: &mut StageState, ctx: &Context<'_>, message: String, with_layer: bool) {
    st.image.history.push(History {
        created: ctx.epoch.map(kiln_oci::rfc3339_utc),
        created_by: message,
        comment: HISTORY_COMMENT.to_owned(),
        empty_layer: !with_layer,
        ..History::default()
    });
}

fn op_options(
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
fn parse_chown(spec: &str) -> ChownOpt {
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
fn expand_command(
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
fn report_undefined(
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
                crate::go_quote(&gofmt::duration(health.interval)),
                crate::go_quote(&gofmt::duration(health.timeout)),
                crate::go_quote(&gofmt::duration(health.start_period)),
                crate::go_quote(&gofmt::duration(health.start_interval)),
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

fn add_image_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
        Some(existing) => *existing = entry,
        None => env.push(entry),
    }
}

/// The shell form wrapped in the stage's SHELL (default `/bin/sh -c`).
fn with_shell(st: &StageState, args: &[String]) -> Vec<String> {
    let mut shell = if st.image.config.shell.is_empty() {
        vec!["/bin/sh".to_owned(), "-c".to_owned()]
    } else {
        st.image.config.shell.clone()
    };
    shell.push(args.join(" "));
    shell
}

fn shell_args(
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
const SIGNALS: [&str; 31] = [
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM",
];

fn check_signal(signal: &str) -> Result<(), Error> {
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
fn parse_port_spec(raw: &str) -> Result<Vec<String>, Error> {
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

fn dispatch_run(
    ctx: &Context<'_>,
    st: &mut StageState,
    run: &instructions::RunCommand,
    code: &str,
    location: SourceRange,
    sources: &Sources,
) -> Result<(), Error> {
    let mut args = run.command.args.clone();
    let mut custom = code.to_owned();
    let mut extra_mounts: Vec<Mount> = Vec::new();
    if let Some(first) = run.command.files.first() {
        if args.len() != 1 || !run.command.prepend_shell {
            return Err(Error::new(format!(
                "parsing produced an invalid run command: {args:?}"
            )));
        }
        if parse_heredoc(&args[0]).ok().flatten().is_some() {
            let mut data = first.data.clone();
            if first.chomp {
                data = chomp_heredoc_content(&data);
            }
            if data.starts_with("#!") {
                // A single heredoc with a shebang: write it to a file and run that.
                let file = State::scratch().dir("/").file(
                    FileAction::mkfile(&first.name, 0o755, data.into_bytes(), None, None),
                    OpOptions::default().custom_name("[internal] preparing inline document"),
                );
                extra_mounts.push(Mount::bind("/dev/pipes/", &file).selector("/").readonly());
                args = vec![join_path(&["/dev/pipes/", &first.name])];
            } else {
                args = vec![data];
            }
            custom.push_str(&format!(" ({})", summarize_heredoc(&first.data)));
        } else {
            let mut text = args[0].clone();
            for file in &run.command.files {
                text.push('\n');
                text.push_str(&file.data);
                text.push_str(&file.name);
            }
            args = vec![text];
        }
    }
    if run.command.prepend_shell {
        args = with_shell(st, &args);
    }
    let env = env_of(&st.state);
    let mut exec = Run::new(args.clone());
    for mount in extra_mounts {
        exec = exec.mount(mount);
    }
    if let Some(proxy) = &ctx.proxy {
        exec = exec.proxy_env(proxy.clone());
    }
    let expand = |word: &str| -> Result<String, Error> { Ok(ctx.lexer.expand(word, &env)?) };
    let mounts = run.mounts(&expand)?;
    if !run.devices.is_empty() && !ctx.features.labs {
        return Err(Error::new(
            "device feature is only supported in Dockerfile frontend 1.14.0-labs or later",
        ));
    }
    let dir = st
        .state
        .meta()
        .dir
        .clone()
        .unwrap_or_else(|| "/".to_owned());
    for (i, mount) in mounts.iter().enumerate() {
        match mount.kind {
            MountType::Secret => {
                let (secret, as_env) = secret_mount(mount)?;
                let id = as_env.as_ref().map_or(&secret.id, |e| &e.id);
                st.outline.mount(true, id, mount.required, location);
                exec = match as_env {
                    Some(env) => exec.secret_env(env),
                    None => exec.secret(secret),
                };
                continue;
            }
            MountType::Ssh => {
                if !mount.source.is_empty() {
                    return Err(Error::new("ssh does not support source"));
                }
                let id = match mount.cache_id.as_str() {
                    "" => "default",
                    id => id,
                };
                st.outline.mount(false, id, mount.required, location);
                let explicit = mount.uid.is_some() || mount.gid.is_some() || mount.mode.is_some();
                exec = exec.ssh(SshMount {
                    id: mount.cache_id.clone(),
                    target: mount.target.clone(),
                    uid: mount.uid.unwrap_or(0),
                    gid: mount.gid.unwrap_or(0),
                    mode: if explicit {
                        mount.mode.unwrap_or(0o600)
                    } else {
                        0o600
                    },
                    optional: !mount.required,
                });
                continue;
            }
            _ => {}
        }
        // A bind mount without `from` reads the build context; a cache mount without it
        // starts empty (its source is `scratch`); one with `from` reads that stage or
        // image, which must be dispatched already.
        let mut source = if mount.from.is_empty() && mount.kind != MountType::Cache {
            ctx.build_context.clone()
        } else {
            match sources.get(i).and_then(Option::as_ref) {
                Some((state, true, _)) => state.clone(),
                Some((_, false, _)) => {
                    return Err(Error::new(format!(
                        "cannot mount from stage {} to {}, stage needs to be defined before current command",
                        crate::go_quote(&mount.from),
                        crate::go_quote(&mount.target)
                    )));
                }
                None => {
                    return Err(Error::new(format!("mount {i} of RUN has no source stage")));
                }
            }
        };
        let target = if clean_path(&mount.target).starts_with('/') {
            mount.target.clone()
        } else {
            join_path(&["/", &dir, &mount.target])
        };
        if target == "/" {
            return Err(Error::new(format!(
                "invalid mount target {}",
                crate::go_quote(&target)
            )));
        }
        let mut m = match mount.kind {
            MountType::Tmpfs => {
                source = State::scratch();
                Mount::tmpfs(&target, mount.size_limit.unwrap_or(0))
            }
            MountType::Cache => {
                let sharing = match mount.cache_sharing {
                    Some(instructions::CacheSharing::Private) => CacheSharing::Private,
                    Some(instructions::CacheSharing::Locked) => CacheSharing::Locked,
                    _ => CacheSharing::Shared,
                };
                let id = if mount.cache_id.is_empty() {
                    mount.target.clone()
                } else {
                    mount.cache_id.clone()
                };
                Mount::cache(&target, format!("{}/{id}", ctx.cache_namespace), sharing)
            }
            _ => Mount::bind(&target, &source),
        };
        if mount.read_only {
            m = m.readonly();
        } else if mount.kind == MountType::Bind {
            m = m.no_output();
        }
        let src_path = join_path(&["/", &mount.source]);
        if src_path != "/" {
            m = m.selector(src_path);
        } else if mount.uid.is_some() || mount.gid.is_some() || mount.mode.is_some() {
            source = source.file(
                FileAction::mkdir(
                    "/cache",
                    mount.mode.unwrap_or(0o755),
                    false,
                    Some(ChownOpt {
                        user: Some(UserOpt::Id(mount.uid.unwrap_or(0))),
                        group: Some(UserOpt::Id(mount.gid.unwrap_or(0))),
                    }),
                    None,
                ),
                OpOptions::default().custom_name("[internal] setting cache mount permissions"),
            );
            m = m.selector("/cache");
        }
        if mount.kind != MountType::Tmpfs && !source.is_scratch() {
            m = m.source(&source);
        }
        exec = exec.mount(m);
        if mount.from.is_empty() && mount.kind != MountType::Cache && mount.kind != MountType::Tmpfs
        {
            st.ctx_paths.insert(join_path(&["/", &mount.source]));
        }
    }
    if ctx.options.shm_size > 0 {
        exec = exec.mount(Mount::tmpfs("/dev/shm", ctx.options.shm_size));
    }
    if run.security == "insecure" {
        exec = exec.security(SecurityMode::Insecure);
    }
    match run.network.as_str() {
        "none" => exec = exec.network(NetMode::None),
        "host" => exec = exec.network(NetMode::Host),
        _ => {}
    }
    let masked: Vec<(String, String)> = {
        let mut env = env.clone();
        for mount in &mounts {
            if let (MountType::Secret, Some(name)) = (mount.kind, &mount.env) {
                super::env_set(&mut env, name, "****".to_owned());
            }
        }
        env
    };
    let name = step_name(&raw_lexer(ctx), &custom, &masked);
    let name = prefix_command(ctx, st, &name);
    let op =
        op_options(ctx, st, name, location).description("com.docker.dockerfile.v1.command", code);
    exec = exec.options(op);
    st.state = st.state.run(exec).root();
    let history = format!("RUN {}", run_command_string(&args, &st.build_args, &env));
    commit(st, ctx, format!("{history} # buildkit"), true);
    Ok(())
}

fn secret_mount(mount: &instructions::Mount) -> Result<(SecretMount, Option<SecretEnv>), Error> {
    let mut id = mount.cache_id.clone();
    if !mount.source.is_empty() {
        id = mount.source.clone();
    }
    if id.is_empty() {
        if mount.target.is_empty() {
            return Err(Error::new("one of source, target required"));
        }
        id = mount
            .target
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
    }
    if let Some(name) = &mount.env {
        return Ok((
            SecretMount::default(),
            Some(SecretEnv {
                id,
                name: name.clone(),
                optional: !mount.required,
            }),
        ));
    }
    let target = if mount.target.is_empty() {
        format!("/run/secrets/{}", id.rsplit('/').next().unwrap_or_default())
    } else {
        mount.target.clone()
    };
    let explicit = mount.uid.is_some() || mount.gid.is_some() || mount.mode.is_some();
    Ok((
        SecretMount {
            id,
            target,
            uid: mount.uid.unwrap_or(0),
            gid: mount.gid.unwrap_or(0),
            mode: if explicit {
                mount.mode.unwrap_or(0o400)
            } else {
                0o400
            },
            optional: !mount.required,
        },
        None,
    ))
}

fn summarize_heredoc(doc: &str) -> String {
    let doc = doc.trim();
    let normalized = doc.replace("\r\n", "\n");
    let mut lines = normalized.split('\n');
    let first = lines.next().unwrap_or_default().to_owned();
    if lines.next().is_some() {
        format!("{first}...")
    } else {
        first
    }
}

/// The RUN history text: `|N K=V … ` build args first when the stage declared any.
fn run_command_string(
    args: &[String],
    build_args: &[(String, Option<String>)],
    env: &[(String, String)],
) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (key, value) in build_args {
        let v = super::env_get(env, key)
            .map(str::to_owned)
            .unwrap_or_else(|| value.clone().unwrap_or_default());
        match pairs.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = v,
            None => pairs.push((key.clone(), v)),
        }
    }
    let mut parts: Vec<String> = Vec::new();
    if !pairs.is_empty() {
        parts.push(format!("|{}", pairs.len()));
        parts.extend(pairs.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    parts.extend(args.iter().cloned());
    parts.join(" ")
}

struct CopyConfig<'a> {
    paths: SourcesAndDest,
    excludes: Vec<String>,
    source: State,
    is_add: bool,
    code: &'a str,
    chown: String,
    chmod: String,
    link: bool,
    keep_git_dir: bool,
    checksum: String,
    parents: bool,
    unpack: Option<bool>,
    location: SourceRange,
}

/// A git source of ADD, as BuildKit tells one: a git URL that could not also be a
/// local path (`github.com/o/r` is one); a git URL with bad options is an error.
fn git_source(src: &str) -> Result<Option<kiln_llb::GitRef>, Error> {
    match kiln_llb::GitRef::parse(src) {
        Ok(git) => Ok(git.filter(|g| !g.indistinguishable_from_local)),
        Err(e) => Err(Error::new(e.to_string())),
    }
}

fn dispatch_copy(ctx: &Context<'_>, st: &mut StageState, cfg: CopyConfig<'_>) -> Result<(), Error> {
    let dir = st
        .state
        .meta()
        .dir
        .clone()
        .unwrap_or_else(|| "/".to_owned());
    let dest = if cfg.paths.dest.starts_with('/') {
        normalize_path("/", &cfg.paths.dest, true)
    } else {
        let p = if cfg.paths.dest == "." || cfg.paths.dest.is_empty() {
            "./"
        } else {
            &cfg.paths.dest
        };
        normalize_path(&dir, p, true)
    };
    let chown = (!cfg.chown.is_empty()).then(|| parse_chown(&cfg.chown));
    let (mode, mode_str) = if cfg.chmod.is_empty() {
        (None, String::new())
    } else {
        match instructions::parse_chmod(&cfg.chmod)? {
            instructions::Chmod::Octal(mode) => (Some(mode), String::new()),
            instructions::Chmod::Symbolic(symbolic) => (None, symbolic),
        }
    };
    if !cfg.checksum.is_empty() {
        if !cfg.is_add {
            return Err(Error::new("checksum can't be specified for COPY"));
        }
        if cfg.paths.sources.len() != 1 {
            return Err(Error::new(
                "checksum can't be specified for multiple sources",
            ));
        }
        let src = &cfg.paths.sources[0];
        if !(src.starts_with("http://")
            || src.starts_with("https://")
            || git_source(src)?.is_some())
        {
            return Err(Error::new("checksum requires HTTP(S) or Git sources"));
        }
    }
    let mut message = String::from(if cfg.is_add { "ADD" } else { "COPY" });
    if cfg.parents {
        message.push_str(" --parents");
    }
    if !cfg.chown.is_empty() {
        message.push_str(&format!(" --chown={}", cfg.chown));
    }
    if !cfg.chmod.is_empty() {
        message.push_str(&format!(" --chmod={}", cfg.chmod));
    }
    let env = env_of(&st.state);
    let name = step_name(&ctx.lexer, cfg.code, &env);
    let group_name = prefix_command(ctx, st, &name);
    let base = CopyOptions {
        chown: chown.clone(),
        mode,
        mode_str: mode_str.clone(),
        exclude_patterns: cfg.excludes.clone(),
        ..CopyOptions::default()
    };
    let mut action: Option<FileAction> = None;
    let mut push = |a: FileAction| {
        action = Some(match action.take() {
            Some(prev) => prev.and(a),
            None => a,
        });
    };
    for src in &cfg.paths.sources {
        message.push(' ');
        message.push_str(src);
        if let Some(git) = git_source(src)? {
            if !cfg.is_add {
                return Err(Error::new("source can't be a git ref for COPY"));
            }
            let keep = git.keep_git_dir.unwrap_or(cfg.keep_git_dir);
            let checksum = if git.checksum.is_empty() {
                cfg.checksum.clone()
            } else {
                git.checksum.clone()
            };
            let mut reference = git.reference.clone();
            if !git.subdir.is_empty() {
                reference = format!("{reference}:{}", git.subdir);
            }
            let state = State::git(
                &git.remote,
                &reference,
                GitOptions {
                    keep_git_dir: keep,
                    checksum: (!checksum.is_empty()).then_some(checksum),
                    skip_submodules: git.submodules == Some(false),
                    op: OpOptions::default().custom_name(group_name.clone()),
                    ..GitOptions::default()
                },
            );
            push(FileAction::copy(
                &state,
                "/",
                &dest,
                CopyOptions {
                    create_dest_path: true,
                    ..base.clone()
                },
            ));
        } else if src.starts_with("http://") || src.starts_with("https://") {
            if !cfg.is_add {
                return Err(Error::new("source can't be a URL for COPY"));
            }
            let path = src
                .split_once("://")
                .map_or("", |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
            let path = path.split(['?', '#']).next().unwrap_or_default();
            let filename = match clean_path(&format!("/{path}")).rsplit('/').next() {
                Some(base) if !base.is_empty() && base != "." => base.to_owned(),
                _ => "__unnamed__".to_owned(),
            };
            let state = State::http(
                src,
                HttpOptions {
                    filename: Some(filename.clone()),
                    checksum: (!cfg.checksum.is_empty()).then(|| cfg.checksum.clone()),
                    op: OpOptions::default()
                        .custom_name(group_name.clone())
                        .description("com.docker.dockerfile.v1.command", ""),
                    ..HttpOptions::default()
                },
            );
            push(FileAction::copy(
                &state,
                &filename,
                &dest,
                CopyOptions {
                    create_dest_path: true,
                    attempt_unpack: cfg.unpack.unwrap_or(false),
                    ..base.clone()
                },
            ));
        } else {
            let mut src_path = src.clone();
            let mut include = Vec::new();
            if cfg.parents {
                let (parent, pattern) = match src.split_once("/./") {
                    Some((parent, pattern)) => (parent.to_owned(), pattern.to_owned()),
                    None => ("/".to_owned(), src.clone()),
                };
                let pattern = normalize_path("/", &pattern, false);
                include.push(pattern.trim_start_matches('/').to_owned());
                src_path = parent;
            }
            let src_path = normalize_path("/", &src_path, false);
            push(FileAction::copy(
                &cfg.source,
                &src_path,
                &dest,
                CopyOptions {
                    follow_symlink: true,
                    dir_copy_contents: true,
                    include_patterns: include,
                    attempt_unpack: cfg.unpack.unwrap_or(cfg.is_add),
                    create_dest_path: true,
                    allow_wildcard: true,
                    allow_empty_wildcard: true,
                    ..base.clone()
                },
            ));
        }
    }
    for content in &cfg.paths.contents {
        message.push_str(&format!(" <<{}", content.path));
        let file = State::scratch().file(
            FileAction::mkfile(
                &content.path,
                0o644,
                content.data.clone().into_bytes(),
                None,
                None,
            ),
            OpOptions::default().custom_name("[internal] preparing inline document"),
        );
        push(FileAction::copy(
            &file,
            &content.path,
            &dest,
            CopyOptions {
                create_dest_path: true,
                ..base.clone()
            },
        ));
    }
    message.push(' ');
    message.push_str(&cfg.paths.dest);
    let Some(action) = action else {
        return Err(Error::new("no sources to copy"));
    };
    let op = op_options(ctx, st, group_name.clone(), cfg.location);
    if cfg.link && cfg.chmod.is_empty() {
        let group = format!("progress-group-{}", st.cmd_index);
        st.cmd_index -= 1;
        let copy_name = prefix_command(ctx, st, &name);
        st.cmd_index -= 1;
        let link_name = prefix_command(ctx, st, &format!("LINK {name}"));
        let copied = State::scratch().file(
            action,
            op.clone()
                .custom_name(copy_name.clone())
                .progress_group(&group, &copy_name, true),
        );
        let merged = State::merge(
            &[st.state.clone(), copied],
            op.custom_name(link_name)
                .progress_group(&group, &copy_name, false),
        );
        st.state = st.state.with_output_of(&merged);
    } else {
        st.state = st.state.file(action, op);
    }
    commit(st, ctx, format!("{message} # buildkit"), true);
    Ok(())
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
