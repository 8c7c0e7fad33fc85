//! What an op's cache key is made of, as BuildKit's `CacheMap` says it
//! (`solver/llbsolver/ops/{file,exec}.go`): the op's description with the parts that
//! must not split the cache blanked out, and for each input either its own key or the
//! content checksum of the paths the op selects from it. A `COPY app/ /app/` is thus
//! keyed by what `app/` holds, not by the whole context, and a change elsewhere in the
//! context leaves it (and every step after it) cached.

use kiln_llb::pb;

use crate::Error;
use crate::contenthash::Selector;

/// How one input enters the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dep {
    /// By the input's own key, with the paths selected from it when it has some (an
    /// exec mount that may write into its selection).
    Key { selectors: Vec<String> },
    /// By the content of the selected paths: the same bytes give the same key,
    /// whichever build or op produced them.
    Content(Vec<Selector>),
}

/// An op's cache key material: its description and one entry per input.
#[derive(Debug, Clone)]
pub(crate) struct CacheMap {
    /// The op as keyed (encoded), input digests and key-neutral fields cleared.
    pub(crate) op: Vec<u8>,
    pub(crate) deps: Vec<Dep>,
}

/// The cache map of a non-source op with `inputs` inputs.
pub(crate) fn of(op: &pb::Op) -> Result<CacheMap, Error> {
    let mut keyed = op.clone();
    let inputs = keyed.inputs.len();
    // An input op's digest never counts (a changed `local.unique` with the same
    // content hits); its result's key or content does.
    for input in &mut keyed.inputs {
        input.digest.clear();
    }
    let deps = match &mut keyed.op {
        Some(pb::op::Op::File(file)) => file_deps(file, inputs)?,
        Some(pb::op::Op::Exec(exec)) => exec_deps(exec, inputs)?,
        _ => vec![Dep::Key { selectors: vec![] }; inputs],
    };
    Ok(CacheMap {
        op: kiln_llb::wire::encode_op(&keyed),
        deps,
    })
}

/// File ops: an input that a copy reads from (and that no action writes on) is keyed
/// by the content of the copied paths; the copy's source path counts only through that
/// content (BuildKit keeps its base name in the description). Chown by name reads
/// `/etc/passwd` and `/etc/group` of the named input.
fn file_deps(file: &mut pb::FileOp, inputs: usize) -> Result<Vec<Dep>, Error> {
    let mut selected: Vec<Vec<Selector>> = vec![Vec::new(); inputs];
    let mut written = vec![false; inputs];
    let input_index = |i: i64| usize::try_from(i).ok().filter(|i| *i < inputs);
    for action in &mut file.actions {
        if let Some(i) = input_index(action.input) {
            written[i] = true;
        }
        use pb::file_action::Action;
        let owner = match &mut action.action {
            Some(Action::Mkdir(mkdir)) => mkdir.owner.as_ref(),
            Some(Action::Mkfile(mkfile)) => mkfile.owner.as_ref(),
            Some(Action::Copy(copy)) => {
                if let Some(i) = input_index(action.secondary_input) {
                    selected[i].push(Selector {
                        path: copy.src.clone(),
                        wildcard: copy.allow_wildcard && contains_wildcards(&copy.src),
                        follow_links: copy.follow_symlink,
                        include: copy.include_patterns.clone(),
                        exclude: copy.exclude_patterns.clone(),
                    });
                    copy.src = go_path_base(&copy.src);
                }
                copy.owner.as_ref()
            }
            _ => None,
        };
        for (user, file) in owner
            .into_iter()
            .flat_map(|o| [(&o.user, "/etc/passwd"), (&o.group, "/etc/group")])
        {
            if let Some(pb::user_opt::User::ByName(named)) =
                user.as_ref().and_then(|u| u.user.as_ref())
            {
                let i = usize::try_from(named.input).map_err(|_| {
                    Error::Unsupported(format!("invalid user index {}", named.input))
                })?;
                if i < inputs {
                    selected[i].push(Selector::follow(file));
                }
            }
        }
    }
    Ok(selected
        .into_iter()
        .zip(written)
        .map(|(selectors, written)| {
            if written || selectors.is_empty() {
                Dep::Key { selectors: vec![] }
            } else {
                Dep::Content(dedupe_selectors(selectors))
            }
        })
        .collect())
}

/// Exec ops: a mount of an input's subtree is keyed by that subtree's content when the
/// step cannot change what later steps see of the input (read-only, no output, or the
/// whole input mounted), never for the root mount (BuildKit's `getMountDeps`). Extra
/// hosts' addresses, mount selectors, proxy settings and non-default cache-mount ids
/// stay out of the description.
fn exec_deps(exec: &mut pb::ExecOp, inputs: usize) -> Result<Vec<Dep>, Error> {
    let mut selectors: Vec<Vec<String>> = vec![Vec::new(); inputs];
    let mut content_based = vec![false; inputs];
    for mount in &exec.mounts {
        if [
            pb::MountType::Secret,
            pb::MountType::Ssh,
            pb::MountType::Tmpfs,
        ]
        .into_iter()
        .any(|t| t as i32 == mount.mount_type)
        {
            continue;
        }
        let Ok(i) = usize::try_from(mount.input) else {
            continue;
        };
        if i >= inputs {
            return Err(Error::Unsupported(format!(
                "mount of {} names input {i}, which the op does not have",
                mount.dest
            )));
        }
        let selector = go_path_join_root(&mount.selector);
        let mut by_content = mount.output == -1 || mount.readonly || selector == "/";
        match mount.content_cache {
            c if c == pb::MountContentCache::Off as i32 => by_content = false,
            c if c == pb::MountContentCache::On as i32 => {
                if !by_content {
                    return Err(Error::Unsupported(format!(
                        "mount of {} asks for content-based caching, which a writable mount of part of its input cannot have",
                        mount.dest
                    )));
                }
            }
            _ => {
                if mount.dest == "/" {
                    by_content = false;
                }
            }
        }
        selectors[i].push(selector);
        content_based[i] = by_content;
    }
    if let Some(meta) = &mut exec.meta {
        meta.proxy_env = None;
        for host in &mut meta.extra_hosts {
            host.ip.clear();
        }
    }
    for mount in &mut exec.mounts {
        mount.selector.clear();
        if let Some(cache) = &mut mount.cache_opt {
            if !is_default_cache_id(cache, &mount.dest) {
                cache.id.clear();
                cache.sharing = 0;
            }
        }
    }
    Ok(selectors
        .into_iter()
        .zip(content_based)
        .map(|(paths, by_content)| {
            if by_content {
                let paths = dedupe_paths(paths);
                let selectors = if paths.iter().any(|p| p.is_empty() || p == "/") {
                    vec![Selector::follow("/")]
                } else {
                    paths.iter().map(|p| Selector::follow(p)).collect()
                };
                Dep::Content(selectors)
            } else {
                Dep::Key { selectors: paths }
            }
        })
        .collect())
}

/// A Dockerfile cache mount's own id (its target, maybe under a namespace) with the
/// default sharing: the one kind of id that stays in the key.
fn is_default_cache_id(cache: &pb::CacheOpt, dest: &str) -> bool {
    let default_sharing = cache.sharing == 0;
    default_sharing
        && (cache.id == dest
            || cache
                .id
                .split_once('/')
                .is_some_and(|(_, rest)| rest == dest))
}

/// Go's `path.Base`.
fn go_path_base(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_owned();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
}

/// Go's `path.Join("/", p)`: absolute and clean.
fn go_path_join_root(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Whether a copy source has wildcards (a backslash escapes the next character).
fn contains_wildcards(name: &str) -> bool {
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Paths without those below another of them, sorted.
fn dedupe_paths(paths: Vec<String>) -> Vec<String> {
    let mut unique: Vec<String> = paths;
    unique.sort();
    unique.dedup();
    let parent_of = |parent: &str, child: &str| {
        let parent = if parent.ends_with('/') {
            parent.to_owned()
        } else {
            format!("{parent}/")
        };
        child.starts_with(&parent)
    };
    unique
        .iter()
        .filter(|p| !unique.iter().any(|q| q != *p && parent_of(q, p)))
        .cloned()
        .collect()
}

/// BuildKit's `dedupeSelectors`: plain paths de-duplicated (separately for followed and
/// not followed links), wildcard and filtered selectors kept as they are, all by path.
fn dedupe_selectors(selectors: Vec<Selector>) -> Vec<Selector> {
    let (filtered, plain): (Vec<Selector>, Vec<Selector>) = selectors
        .into_iter()
        .partition(Selector::has_wildcard_or_filters);
    let paths = |follow: bool| {
        dedupe_paths(
            plain
                .iter()
                .filter(|s| s.follow_links == follow)
                .map(|s| s.path.clone())
                .collect(),
        )
    };
    let mut out: Vec<Selector> = paths(false)
        .into_iter()
        .map(|path| Selector {
            path,
            ..Selector::default()
        })
        .chain(paths(true).into_iter().map(|p| Selector::follow(&p)))
        .chain(filtered)
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(src: &str, input: i64, secondary: i64) -> pb::FileAction {
        pb::FileAction {
            input,
            secondary_input: secondary,
            output: 0,
            action: Some(pb::file_action::Action::Copy(pb::FileActionCopy {
                src: src.to_owned(),
                dest: "/app/".to_owned(),
                allow_wildcard: true,
                follow_symlink: true,
                ..Default::default()
            })),
        }
    }

    fn file_op(actions: Vec<pb::FileAction>, inputs: usize) -> pb::Op {
        pb::Op {
            inputs: (0..inputs)
                .map(|i| pb::Input {
                    digest: format!("sha256:{i}"),
                    index: 0,
                })
                .collect(),
            op: Some(pb::op::Op::File(pb::FileOp { actions })),
            ..Default::default()
        }
    }

    #[test]
    fn a_copy_is_keyed_by_the_content_it_reads() {
        let map = of(&file_op(vec![copy("/app/", 0, 1)], 2)).unwrap();
        assert_eq!(map.deps[0], Dep::Key { selectors: vec![] });
        assert_eq!(map.deps[1], Dep::Content(vec![Selector::follow("/app/")]));
        // Only the base name of the source stays in the description.
        let other = of(&file_op(vec![copy("/elsewhere/app", 0, 1)], 2)).unwrap();
        assert_eq!(map.op, other.op);
        assert_ne!(
            map.op,
            of(&file_op(vec![copy("/other", 0, 1)], 2)).unwrap().op
        );
    }

    #[test]
    fn an_input_written_on_is_keyed_whole() {
        // Copying within one input: it is both read and written.
        let map = of(&file_op(vec![copy("/a", 0, 0)], 1)).unwrap();
        assert_eq!(map.deps[0], Dep::Key { selectors: vec![] });
    }

    #[test]
    fn wildcards_and_filters_stay_separate_selectors() {
        let mut action = copy("/src/*.txt", 0, 1);
        let second = copy("/src", 0, 1);
        let mut third = copy("/src/sub", 0, 1);
        if let Some(pb::file_action::Action::Copy(c)) = &mut third.action {
            c.follow_symlink = false;
        }
        if let Some(pb::file_action::Action::Copy(c)) = &mut action.action {
            c.exclude_patterns = vec!["*.md".to_owned()];
        }
        let map = of(&file_op(vec![action, second, third], 2)).unwrap();
        let Dep::Content(selectors) = &map.deps[1] else {
            panic!("{:?}", map.deps[1]);
        };
        let paths: Vec<_> = selectors
            .iter()
            .map(|s| (s.path.as_str(), s.wildcard, s.follow_links))
            .collect();
        assert_eq!(
            paths,
            [
                ("/src", false, true),
                ("/src/*.txt", true, true),
                ("/src/sub", false, false)
            ]
        );
    }

    fn exec_op(mounts: Vec<pb::Mount>) -> pb::Op {
        let inputs = mounts.iter().filter(|m| m.input >= 0).count();
        pb::Op {
            inputs: (0..inputs)
                .map(|i| pb::Input {
                    digest: format!("sha256:{i}"),
                    index: 0,
                })
                .collect(),
            op: Some(pb::op::Op::Exec(pb::ExecOp {
                meta: Some(pb::Meta {
                    args: vec!["true".to_owned()],
                    ..Default::default()
                }),
                mounts,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn mount(input: i64, dest: &str, selector: &str, readonly: bool, output: i64) -> pb::Mount {
        pb::Mount {
            input,
            dest: dest.to_owned(),
            selector: selector.to_owned(),
            readonly,
            output,
            ..Default::default()
        }
    }

    #[test]
    fn read_only_bind_mounts_are_keyed_by_content() {
        let map = of(&exec_op(vec![
            mount(0, "/", "", false, 0),
            mount(1, "/src", "sub", true, -1),
        ]))
        .unwrap();
        assert_eq!(
            map.deps[0],
            Dep::Key {
                selectors: vec!["/".to_owned()]
            }
        );
        assert_eq!(map.deps[1], Dep::Content(vec![Selector::follow("/sub")]));
        // The selector is not in the description: the content stands for it.
        let other = of(&exec_op(vec![
            mount(0, "/", "", false, 0),
            mount(1, "/src", "other", true, -1),
        ]))
        .unwrap();
        assert_eq!(map.op, other.op);
    }

    #[test]
    fn a_writable_mount_of_part_of_an_input_is_keyed_by_the_input() {
        let map = of(&exec_op(vec![
            mount(0, "/", "", false, 0),
            mount(1, "/src", "sub", false, 1),
        ]))
        .unwrap();
        assert_eq!(
            map.deps[1],
            Dep::Key {
                selectors: vec!["/sub".to_owned()]
            }
        );
    }

    #[test]
    fn go_paths() {
        assert_eq!(go_path_base("/app/"), "app");
        assert_eq!(go_path_base("/"), "/");
        assert_eq!(go_path_base(""), ".");
        assert_eq!(go_path_join_root("a/../b/./c/"), "/b/c");
        assert_eq!(go_path_join_root(""), "/");
        assert!(contains_wildcards("a*"));
        assert!(!contains_wildcards("a\\*"));
        assert_eq!(
            dedupe_paths(vec!["/a/b".into(), "/a".into(), "/ab".into(), "/a".into()]),
            ["/a", "/ab"]
        );
    }
}
