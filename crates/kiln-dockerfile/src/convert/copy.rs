//! COPY and ADD onto a stage: sources from the context, stages, URLs and git, with
//! their owners, modes and links (BuildKit's `dispatchCopy`).

use kiln_llb::{CopyOptions, FileAction, GitOptions, HttpOptions, OpOptions, State};
use kiln_oci::go::clean_path;

use super::dispatch::*;
use super::{Context, StageState};
use crate::error::{Error, SourceRange};
use crate::instructions::{self, SourcesAndDest};

pub(super) struct CopyConfig<'a> {
    pub(super) paths: SourcesAndDest,
    pub(super) excludes: Vec<String>,
    pub(super) source: State,
    pub(super) is_add: bool,
    pub(super) code: &'a str,
    pub(super) chown: String,
    pub(super) chmod: String,
    pub(super) link: bool,
    pub(super) keep_git_dir: bool,
    pub(super) checksum: String,
    pub(super) parents: bool,
    pub(super) unpack: Option<bool>,
    pub(super) location: SourceRange,
}

/// A git source of ADD, as BuildKit tells one: a git URL that could not also be a
/// local path (`github.com/o/r` is one); a git URL with bad options is an error.
pub(super) fn git_source(src: &str) -> Result<Option<kiln_llb::GitRef>, Error> {
    match kiln_llb::GitRef::parse(src) {
        Ok(git) => Ok(git.filter(|g| !g.indistinguishable_from_local)),
        Err(e) => Err(Error::new(e.to_string())),
    }
}

pub(super) fn dispatch_copy(
    ctx: &Context<'_>,
    st: &mut StageState,
    cfg: CopyConfig<'_>,
) -> Result<(), Error> {
    let dir = st.working_dir();
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
