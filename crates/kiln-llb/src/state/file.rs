//! File ops: chains of mkdir, mkfile, rm, symlink and copy actions on a base state
//! (`client/llb/fileop.go`).

use super::{Node, OpKind, OpOptions, Output, State, clean_path};
use crate::{caps, pb};

/// A user or group, by id or by name (looked up in the base's `/etc/passwd`/`group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserOpt {
    /// A numeric id.
    Id(u32),
    /// A name.
    Name(String),
}

/// Ownership of created files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChownOpt {
    /// The owner.
    pub user: Option<UserOpt>,
    /// The group.
    pub group: Option<UserOpt>,
}

/// Options of a copy action; the defaults are BuildKit's (mode and timestamp kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// Owner of the copied files.
    pub chown: Option<ChownOpt>,
    /// Numeric mode (`None` keeps the source's).
    pub mode: Option<u32>,
    /// Symbolic mode such as `u+x` (`--chmod=u+x`).
    pub mode_str: String,
    /// Copy what a symlink source points to.
    pub follow_symlink: bool,
    /// Copy a directory's contents rather than the directory.
    pub dir_copy_contents: bool,
    /// Unpack archives (ADD).
    pub attempt_unpack: bool,
    /// Create missing parents of the destination.
    pub create_dest_path: bool,
    /// Expand wildcards in the source.
    pub allow_wildcard: bool,
    /// A wildcard matching nothing is not an error.
    pub allow_empty_wildcard: bool,
    /// Set every mtime to this Unix time (`None` keeps them).
    pub timestamp: Option<i64>,
    /// Only paths matching these patterns.
    pub include_patterns: Vec<String>,
    /// Skip paths matching these patterns.
    pub exclude_patterns: Vec<String>,
    /// Replace existing destination paths even when types differ.
    pub always_replace_existing_dest_paths: bool,
    /// Paths that must exist in the source.
    pub required_paths: Vec<String>,
}

#[derive(Debug, Clone)]
enum Action {
    Mkdir {
        path: String,
        mode: u32,
        make_parents: bool,
        chown: Option<ChownOpt>,
        timestamp: Option<i64>,
    },
    Mkfile {
        path: String,
        mode: u32,
        data: Vec<u8>,
        chown: Option<ChownOpt>,
        timestamp: Option<i64>,
    },
    Rm {
        path: String,
        allow_not_found: bool,
        allow_wildcard: bool,
    },
    Symlink {
        old: String,
        new: String,
        chown: Option<ChownOpt>,
        timestamp: Option<i64>,
    },
    Copy {
        source: State,
        src: String,
        dest: String,
        options: Box<CopyOptions>,
    },
}

/// One or more file actions, applied in order; see [`State::file`].
#[derive(Debug, Clone)]
pub struct FileAction {
    actions: Vec<Action>,
}

impl FileAction {
    fn single(action: Action) -> Self {
        Self {
            actions: vec![action],
        }
    }

    fn then(mut self, action: Action) -> Self {
        self.actions.push(action);
        self
    }

    /// Creates a directory.
    pub fn mkdir(
        path: impl Into<String>,
        mode: u32,
        make_parents: bool,
        chown: Option<ChownOpt>,
        timestamp: Option<i64>,
    ) -> Self {
        Self::single(Action::Mkdir {
            path: path.into(),
            mode,
            make_parents,
            chown,
            timestamp,
        })
    }

    /// Creates a file with this content.
    pub fn mkfile(
        path: impl Into<String>,
        mode: u32,
        data: impl Into<Vec<u8>>,
        chown: Option<ChownOpt>,
        timestamp: Option<i64>,
    ) -> Self {
        Self::single(Action::Mkfile {
            path: path.into(),
            mode,
            data: data.into(),
            chown,
            timestamp,
        })
    }

    /// Removes a path.
    pub fn rm(path: impl Into<String>, allow_not_found: bool, allow_wildcard: bool) -> Self {
        Self::single(Action::Rm {
            path: path.into(),
            allow_not_found,
            allow_wildcard,
        })
    }

    /// Creates a symlink `new` pointing to `old`.
    pub fn symlink(
        old: impl Into<String>,
        new: impl Into<String>,
        chown: Option<ChownOpt>,
        timestamp: Option<i64>,
    ) -> Self {
        Self::single(Action::Symlink {
            old: old.into(),
            new: new.into(),
            chown,
            timestamp,
        })
    }

    /// Copies `src` of `source` to `dest`.
    pub fn copy(
        source: &State,
        src: impl Into<String>,
        dest: impl Into<String>,
        options: CopyOptions,
    ) -> Self {
        Self::single(Action::Copy {
            source: source.clone(),
            src: src.into(),
            dest: dest.into(),
            options: Box::new(options),
        })
    }

    /// Appends another action (or chain) after this one.
    pub fn and(mut self, next: FileAction) -> Self {
        for action in next.actions {
            self = self.then(action);
        }
        self
    }
}

/// A file op before marshalling.
#[derive(Debug)]
pub(crate) struct FileSpec {
    base: Option<Output>,
    base_dir: String,
    actions: Vec<Action>,
}

impl State {
    /// Applies file actions to this state (BuildKit's `State.File`).
    pub fn file(&self, action: FileAction, mut options: OpOptions) -> State {
        options.add_cap(caps::FILE_BASE);
        let spec = FileSpec {
            base: self.output.clone(),
            base_dir: self.meta.dir.clone().unwrap_or_else(|| "/".to_owned()),
            actions: action.actions,
        };
        let node = Node {
            kind: OpKind::File(spec),
            options,
        };
        self.with_output_of(&State::from_node(node, 0))
    }
}

/// BuildKit's `normalizePath`: relative paths are joined to the base's directory; with
/// `keep_slash`, a trailing `/` or `/.` is kept (it means "into this directory").
fn normalize_path(parent: &str, p: &str, keep_slash: bool) -> String {
    let mut out = clean_path(p);
    if !out.starts_with('/') {
        out = clean_path(&format!("/{parent}/{out}"));
    }
    if keep_slash {
        if p.ends_with('/') && !out.ends_with('/') {
            out.push('/');
        } else if p.ends_with("/.") {
            if out != "/" {
                out.push('/');
            }
            out.push('.');
        }
    }
    out
}

fn marshal_user(user: &Option<UserOpt>, base: i64) -> Option<pb::UserOpt> {
    user.as_ref().map(|u| pb::UserOpt {
        user: Some(match u {
            UserOpt::Id(id) => pb::user_opt::User::ById(*id),
            UserOpt::Name(name) => pb::user_opt::User::ByName(pb::NamedUserOpt {
                name: name.clone(),
                input: base,
            }),
        }),
    })
}

fn marshal_chown(chown: &Option<ChownOpt>, base: i64) -> Option<pb::ChownOpt> {
    chown.as_ref().map(|c| pb::ChownOpt {
        user: marshal_user(&c.user, base),
        group: marshal_user(&c.group, base),
    })
}

impl FileSpec {
    /// The outputs the op reads, in BuildKit's order: the base, then copy sources.
    pub(crate) fn inputs(&self) -> Vec<Output> {
        let copies = self.actions.iter().filter_map(|a| match a {
            Action::Copy { source, .. } => source.output.clone(),
            _ => None,
        });
        self.base.iter().cloned().chain(copies).collect()
    }

    /// The `FileOp` and its inputs, given how to turn an output into an input.
    pub(crate) fn to_pb(
        &self,
        mut to_input: impl FnMut(&Output) -> pb::Input,
    ) -> (Vec<pb::Input>, pb::FileOp) {
        use pb::file_action::Action as PbAction;
        let mut inputs: Vec<pb::Input> = Vec::new();
        let mut add_input = |o: &Option<Output>| -> i64 {
            let Some(o) = o else { return -1 };
            let input = to_input(o);
            match inputs.iter().position(|i| *i == input) {
                Some(i) => i as i64,
                None => {
                    inputs.push(input);
                    inputs.len() as i64 - 1
                }
            }
        };
        // Owners named in any action are looked up in the base, as BuildKit marshals
        // every action's `byName.input` as the base's index, not the action's input.
        let base_index = add_input(&self.base);
        // (input, input is relative to the previous action, secondary input)
        let mut wiring = Vec::with_capacity(self.actions.len());
        for (i, action) in self.actions.iter().enumerate() {
            let input = if i == 0 { base_index } else { i as i64 - 1 };
            let secondary = match action {
                Action::Copy { source, .. } => add_input(&source.output),
                _ => -1,
            };
            wiring.push((input, i > 0, secondary));
        }
        let input_count = inputs.len() as i64;
        let last = self.actions.len().saturating_sub(1);
        let actions = self
            .actions
            .iter()
            .zip(wiring)
            .enumerate()
            .map(|(i, (action, (input, relative, secondary)))| {
                let input = if relative { input_count + input } else { input };
                let time = |t: &Option<i64>| t.unwrap_or(-1);
                let dir = &self.base_dir;
                let action = match action {
                    Action::Mkdir {
                        path,
                        mode,
                        make_parents,
                        chown,
                        timestamp,
                    } => PbAction::Mkdir(pb::FileActionMkDir {
                        path: normalize_path(dir, path, false),
                        mode: *mode as i32,
                        make_parents: *make_parents,
                        owner: marshal_chown(chown, base_index),
                        timestamp: time(timestamp),
                    }),
                    Action::Mkfile {
                        path,
                        mode,
                        data,
                        chown,
                        timestamp,
                    } => PbAction::Mkfile(pb::FileActionMkFile {
                        path: normalize_path(dir, path, false),
                        mode: *mode as i32,
                        data: data.clone(),
                        owner: marshal_chown(chown, base_index),
                        timestamp: time(timestamp),
                    }),
                    Action::Rm {
                        path,
                        allow_not_found,
                        allow_wildcard,
                    } => PbAction::Rm(pb::FileActionRm {
                        path: normalize_path(dir, path, false),
                        allow_not_found: *allow_not_found,
                        allow_wildcard: *allow_wildcard,
                    }),
                    Action::Symlink {
                        old,
                        new,
                        chown,
                        timestamp,
                    } => PbAction::Symlink(pb::FileActionSymlink {
                        oldpath: old.clone(),
                        newpath: normalize_path(dir, new, false),
                        owner: marshal_chown(chown, base_index),
                        timestamp: time(timestamp),
                    }),
                    Action::Copy {
                        source,
                        src,
                        dest,
                        options: o,
                    } => {
                        let src_dir = source.meta.dir.as_deref().unwrap_or("/");
                        let mut src_path = clean_path(src);
                        if !src_path.starts_with('/') {
                            src_path = clean_path(&format!("/{src_dir}/{src_path}"));
                        }
                        PbAction::Copy(pb::FileActionCopy {
                            src: src_path,
                            dest: normalize_path(dir, dest, true),
                            owner: marshal_chown(&o.chown, base_index),
                            // BuildKit writes 0 with a symbolic mode, -1 for "keep the source's".
                            mode: o
                                .mode
                                .map_or(if o.mode_str.is_empty() { -1 } else { 0 }, |m| m as i32),
                            follow_symlink: o.follow_symlink,
                            dir_copy_contents: o.dir_copy_contents,
                            attempt_unpack_docker_compatibility: o.attempt_unpack,
                            create_dest_path: o.create_dest_path,
                            allow_wildcard: o.allow_wildcard,
                            allow_empty_wildcard: o.allow_empty_wildcard,
                            timestamp: time(&o.timestamp),
                            include_patterns: o.include_patterns.clone(),
                            exclude_patterns: o.exclude_patterns.clone(),
                            always_replace_existing_dest_paths: o
                                .always_replace_existing_dest_paths,
                            mode_str: o.mode_str.clone(),
                            required_paths: o.required_paths.clone(),
                        })
                    }
                };
                pb::FileAction {
                    input,
                    secondary_input: secondary,
                    output: if i == last { 0 } else { -1 },
                    action: Some(action),
                }
            })
            .collect();
        (inputs, pb::FileOp { actions })
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_path;

    #[test]
    fn paths_like_buildkit() {
        assert_eq!(normalize_path("/app", "src", false), "/app/src");
        assert_eq!(normalize_path("/", "/a/b/", true), "/a/b/");
        assert_eq!(normalize_path("/app", ".", true), "/app");
        assert_eq!(normalize_path("/app", "./", true), "/app/");
        assert_eq!(normalize_path("/", "/x/.", true), "/x/.");
    }
}
