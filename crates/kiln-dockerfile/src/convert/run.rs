//! RUN onto a stage: the exec op with its mounts, network and security, and the
//! image history it adds (BuildKit's `dispatchRun`).

use kiln_llb::{
    CacheSharing, ChownOpt, FileAction, Mount, NetMode, OpOptions, Run, SecretEnv, SecretMount,
    SecurityMode, SshMount, State, UserOpt,
};
use kiln_oci::go::{clean_path, join_path};

use super::dispatch::*;
use super::{Context, StageState};
use crate::error::{Error, SourceRange};
use crate::instructions::{self, MountType};
use crate::parser::{chomp_heredoc_content, parse_heredoc};

pub(super) fn dispatch_run(
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
    let dir = st.working_dir();
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
                exec = exec.ssh(SshMount {
                    id: mount.cache_id.clone(),
                    target: mount.target.clone(),
                    uid: mount.uid.unwrap_or(0),
                    gid: mount.gid.unwrap_or(0),
                    mode: mount.mode.unwrap_or(0o600),
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

pub(super) fn secret_mount(
    mount: &instructions::Mount,
) -> Result<(SecretMount, Option<SecretEnv>), Error> {
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
    Ok((
        SecretMount {
            id,
            target,
            uid: mount.uid.unwrap_or(0),
            gid: mount.gid.unwrap_or(0),
            mode: mount.mode.unwrap_or(0o400),
            optional: !mount.required,
        },
        None,
    ))
}

pub(super) fn summarize_heredoc(doc: &str) -> String {
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
pub(super) fn run_command_string(
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
