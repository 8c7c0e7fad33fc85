//! What an op's cache key is made of, as BuildKit's `CacheMap` says it
//! (`solver/llbsolver/ops/{file,exec}.go`): the op's description with the parts that
//! must not split the cache blanked out, and for each input either its own key or the
//! content checksum of the paths the op selects from it. A `COPY app/ /app/` is thus
//! keyed by what `app/` holds, not by the whole context, and a change elsewhere in the
//! context leaves it (and every step after it) cached.

use kiln_llb::pb;
use kiln_oci::Platform;
use kiln_solver::cache_key;

use crate::contenthash::Selector;
use crate::{Error, go_json};

/// How one input enters the key: by its own key (with the selector digest), and, when
/// the op reads only some of its paths, by the content of those paths too (BuildKit
/// then keeps both links; the content one is what a rebuild after an unrelated edit
/// of the input hits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dep {
    /// BuildKit's selector digest of what the op selects from the input (`""`: all).
    pub(crate) selector: String,
    /// The paths whose content keys the input, for a content-based input.
    pub(crate) content: Option<Vec<Selector>>,
}

/// An op's cache map: BuildKit's digest of the op as keyed, and one entry per input.
#[derive(Debug, Clone)]
pub(crate) struct CacheMap {
    /// The digest of the op's description, key-neutral fields cleared.
    pub(crate) digest: String,
    pub(crate) deps: Vec<Dep>,
}

/// The cache map of a non-source op, as BuildKit v0.24's op of that type computes it;
/// an exec op without a platform of its own runs on `worker_platform`, and the
/// platform is normalised first (BuildKit's `NormalizeRuntimePlatforms` at load).
pub(crate) fn of(op: &pb::Op, worker_platform: &Platform) -> Result<CacheMap, Error> {
    use pb::op::Op;
    let inputs = op.inputs.len();
    match &op.op {
        Some(Op::File(file)) => file_map(file, inputs),
        Some(Op::Exec(exec)) => {
            let platform = crate::op_platform(op)
                .unwrap_or_else(|| worker_platform.clone())
                .normalized();
            exec_map(exec, &platform, inputs)
        }
        Some(Op::Merge(merge)) => Ok(CacheMap {
            digest: typed_digest("buildkit.merge.v0", "Merge", &go_json::merge_op(merge)),
            deps: keyed_whole(merge.inputs.len()),
        }),
        Some(Op::Diff(diff)) => {
            let present = |input: Option<i64>| input.is_some_and(|i| i != -1);
            let deps = usize::from(present(diff.lower.as_ref().map(|l| l.input)))
                + usize::from(present(diff.upper.as_ref().map(|u| u.input)));
            Ok(CacheMap {
                digest: typed_digest("buildkit.diff.v0", "Diff", &go_json::diff_op(diff)),
                deps: keyed_whole(deps),
            })
        }
        _ => Err(Error::Unsupported(
            "only file, exec, merge and diff ops have a cache map".to_owned(),
        )),
    }
}

fn keyed_whole(inputs: usize) -> Vec<Dep> {
    vec![
        Dep {
            selector: String::new(),
            content: None,
        };
        inputs
    ]
}

/// `sha256` of `{"Type":TYPE,"FIELD":JSON}`, the shape of merge and diff cache maps.
fn typed_digest(kind: &str, field: &str, json: &str) -> String {
    let text = go_json::Object::new()
        .string("Type", kind)
        .raw(field, json)
        .finish();
    cache_key::digest_of(text.as_bytes())
}

/// File ops: an input that a copy reads from (and that no action writes on) is keyed
/// by the content of the copied paths; the copy's source path counts only through that
/// content (BuildKit keeps its base name in the description). Chown by name reads
/// `/etc/passwd` and `/etc/group` of the named input.
fn file_map(file: &pb::FileOp, inputs: usize) -> Result<CacheMap, Error> {
    let mut selected: Vec<Vec<Selector>> = vec![Vec::new(); inputs];
    let mut written = vec![false; inputs];
    let mut actions = Vec::with_capacity(file.actions.len());
    let mut indexes = Vec::with_capacity(file.actions.len());
    let input_index = |i: i64| usize::try_from(i).ok().filter(|i| *i < inputs);
    for action in &file.actions {
        if let Some(i) = input_index(action.input) {
            written[i] = true;
        }
        use pb::file_action::Action;
        let (json, owner) = match &action.action {
            Some(Action::Mkdir(mkdir)) => (go_json::mkdir(mkdir), mkdir.owner.as_ref()),
            Some(Action::Mkfile(mkfile)) => (go_json::mkfile(mkfile), mkfile.owner.as_ref()),
            Some(Action::Rm(rm)) => (go_json::rm(rm), None),
            Some(Action::Symlink(symlink)) => (go_json::symlink(symlink), None),
            Some(Action::Copy(copy)) => {
                let mut keyed = copy.clone();
                if let Some(i) = input_index(action.secondary_input) {
                    selected[i].push(Selector {
                        path: copy.src.clone(),
                        wildcard: copy.allow_wildcard && contains_wildcards(&copy.src),
                        follow_links: copy.follow_symlink,
                        include: copy.include_patterns.clone(),
                        exclude: copy.exclude_patterns.clone(),
                    });
                    keyed.src = go_path_base(&copy.src);
                }
                (go_json::copy(&keyed), copy.owner.as_ref())
            }
            None => ("null".to_owned(), None),
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
        actions.push(go_json::bytes(json.as_bytes()));
        indexes.push([action.input, action.secondary_input, action.output]);
    }
    let mut description = go_json::Object::new()
        .string("Type", "buildkit.file.v0")
        .raw("Actions", &go_json::array(&actions));
    if !are_default_indexes(&indexes) {
        let indexes: Vec<String> = indexes
            .iter()
            .map(|[a, b, c]| format!("[{a},{b},{c}]"))
            .collect();
        description = description.raw("indexes", &go_json::array(&indexes));
    }
    let deps = selected
        .into_iter()
        .zip(written)
        .map(|(selectors, written)| {
            if written || selectors.is_empty() {
                return Dep {
                    selector: String::new(),
                    content: None,
                };
            }
            // Sorted and reversed, "for historical reasons".
            let mut paths: Vec<&str> = selectors.iter().map(|s| s.path.as_str()).collect();
            paths.sort_unstable();
            paths.reverse();
            Dep {
                selector: cache_key::digest_of(paths.join("\0").as_bytes()),
                content: Some(dedupe_selectors(selectors)),
            }
        })
        .collect();
    Ok(CacheMap {
        digest: cache_key::digest_of(description.finish().as_bytes()),
        deps,
    })
}

/// BuildKit's `isDefaultIndexes`: the common chain (first action on input 0, each next
/// one on the previous action's output, copies from input 1, the last one giving
/// output 0) leaves the indexes out of the description, as older versions did.
fn are_default_indexes(indexes: &[[i64; 3]]) -> bool {
    if indexes.is_empty() {
        return false;
    }
    let count = indexes.len() as i64;
    indexes
        .iter()
        .enumerate()
        .all(|(i, [input, secondary, output])| {
            let i = i as i64;
            let input_ok = if i == 0 {
                *input == 0
            } else {
                *input == count + i - 1
            };
            let last_ok = i != count - 1 || *output == 0;
            input_ok && (*secondary == -1 || *secondary == 1) && last_ok
        })
}

/// Exec ops: a mount of an input's subtree is keyed by that subtree's content when the
/// step cannot change what later steps see of the input (read-only, no output, or the
/// whole input mounted), never for the root mount (BuildKit's `getMountDeps`). Extra
/// hosts' addresses, mount selectors, proxy settings and non-default cache-mount ids
/// stay out of the description.
fn exec_map(exec: &pb::ExecOp, platform: &Platform, inputs: usize) -> Result<CacheMap, Error> {
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
        let selector = kiln_oci::go::join_path(&["/", &mount.selector]);
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
    let mut keyed = exec.clone();
    if let Some(meta) = &mut keyed.meta {
        meta.proxy_env = None;
        for host in &mut meta.extra_hosts {
            host.ip.clear();
        }
    }
    for mount in &mut keyed.mounts {
        mount.selector.clear();
        if let Some(cache) = &mut mount.cache_opt {
            if !is_default_cache_id(cache, &mount.dest) {
                cache.id.clear();
                cache.sharing = 0;
            }
        }
    }
    // Older BuildKit left the mounts out; a plain root mount (a Dockerfile RUN) still
    // is, so that caches stay compatible.
    if let [root] = keyed.mounts.as_slice() {
        if root.dest == "/"
            && !root.readonly
            && root.mount_type == pb::MountType::Bind as i32
            && root.cache_opt.is_none()
            && root.ssh_opt.is_none()
            && root.secret_opt.is_none()
            && root.result_id.is_empty()
        {
            keyed.mounts.clear();
        }
    }
    let description = go_json::Object::new()
        .string("Type", "buildkit.exec.v0")
        .raw("Exec", &go_json::exec_op(&keyed))
        .string("OS", &platform.os)
        .string("Arch", &platform.architecture)
        .some_string("Variant", &platform.variant)
        .some_string("OSVersion", &platform.os_version)
        .some_strings("OSFeatures", &platform.os_features)
        .finish();
    let deps = selectors
        .into_iter()
        .zip(content_based)
        .map(|(paths, by_content)| Dep {
            selector: if paths.is_empty() {
                String::new()
            } else {
                cache_key::digest_of(paths.join("\0").as_bytes())
            },
            content: by_content.then(|| {
                let paths = dedupe_paths(paths);
                // The whole input: BuildKit's empty selector list, the root unfollowed.
                if paths.iter().any(|p| p.is_empty() || p == "/") {
                    vec![Selector {
                        path: "/".to_owned(),
                        ..Selector::default()
                    }]
                } else {
                    paths.iter().map(|p| Selector::follow(p)).collect()
                }
            }),
        })
        .collect();
    Ok(CacheMap {
        digest: cache_key::digest_of(description.as_bytes()),
        deps,
    })
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

/// Whether a copy source has wildcards (a backslash escapes the next character).
pub(crate) fn contains_wildcards(name: &str) -> bool {
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

    fn map(op: &pb::Op) -> CacheMap {
        of(op, &Platform::linux("amd64")).unwrap()
    }

    fn by_key(selector: &str) -> Dep {
        Dep {
            selector: selector.to_owned(),
            content: None,
        }
    }

    #[test]
    fn a_copy_is_keyed_by_the_content_it_reads() {
        let copied = map(&file_op(vec![copy("/app/", 0, 1)], 2));
        assert_eq!(copied.deps[0], by_key(""));
        assert_eq!(
            copied.deps[1],
            Dep {
                selector: cache_key::digest_of(b"/app/"),
                content: Some(vec![Selector::follow("/app/")]),
            }
        );
        // Only the base name of the source stays in the description.
        let other = map(&file_op(vec![copy("/elsewhere/app", 0, 1)], 2));
        assert_eq!(copied.digest, other.digest);
        assert_ne!(
            copied.digest,
            map(&file_op(vec![copy("/other", 0, 1)], 2)).digest
        );
    }

    #[test]
    fn an_input_written_on_is_keyed_whole() {
        // Copying within one input: it is both read and written.
        assert_eq!(map(&file_op(vec![copy("/a", 0, 0)], 1)).deps[0], by_key(""));
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
        let copied = map(&file_op(vec![action, second, third], 2));
        let Some(selectors) = &copied.deps[1].content else {
            panic!("{:?}", copied.deps[1]);
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
        // The selector digest: every path, sorted and reversed.
        assert_eq!(
            copied.deps[1].selector,
            cache_key::digest_of(b"/src/sub\0/src/*.txt\0/src")
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
        let run = map(&exec_op(vec![
            mount(0, "/", "", false, 0),
            mount(1, "/src", "sub", true, -1),
        ]));
        assert_eq!(run.deps[0], by_key(&cache_key::digest_of(b"/")));
        assert_eq!(
            run.deps[1],
            Dep {
                selector: cache_key::digest_of(b"/sub"),
                content: Some(vec![Selector::follow("/sub")]),
            }
        );
        // The selector is not in the description: the content stands for it.
        let other = map(&exec_op(vec![
            mount(0, "/", "", false, 0),
            mount(1, "/src", "other", true, -1),
        ]));
        assert_eq!(run.digest, other.digest);
    }

    #[test]
    fn a_writable_mount_of_part_of_an_input_is_keyed_by_the_input() {
        let run = map(&exec_op(vec![
            mount(0, "/", "", false, 0),
            mount(1, "/src", "sub", false, 1),
        ]));
        assert_eq!(run.deps[1], by_key(&cache_key::digest_of(b"/sub")));
    }

    /// Each op of `recorded` (one JSON line per op: its case, digest, and the cache map
    /// BuildKit computed) against ours; the case's definition is `dir/CASE/definition.pb`.
    /// The ones that differ.
    fn differences_from_buildkit(recorded: &str, dir: &std::path::Path) -> (usize, Vec<String>) {
        use prost::Message as _;
        let mut passed = 0;
        let mut failures = Vec::new();
        for line in recorded.lines() {
            let expected: serde_json::Value = serde_json::from_str(line).unwrap();
            let case = expected["case"].as_str().unwrap();
            let definition = fs_err::read(dir.join(case).join("definition.pb")).unwrap();
            let definition = pb::Definition::decode(definition.as_slice()).unwrap();
            let op_digest = expected["op"].as_str().unwrap();
            let Some(op) = definition
                .def
                .iter()
                .find(|bytes| cache_key::digest_of(bytes) == op_digest)
            else {
                failures.push(format!("{case}: no op {op_digest}"));
                continue;
            };
            let op = pb::Op::decode(op.as_slice()).unwrap();
            let got = match of(&op, &Platform::linux("amd64")) {
                Ok(got) => got,
                Err(error) => {
                    failures.push(format!("{case} {op_digest}: {error}"));
                    continue;
                }
            };
            let deps: Vec<serde_json::Value> = got
                .deps
                .iter()
                .map(|d| {
                    serde_json::json!({"selector": d.selector, "content_based": d.content.is_some()})
                })
                .collect();
            let expected_deps = expected["deps"].as_array().cloned().unwrap_or_default();
            if got.digest != expected["cache_map"] || deps != expected_deps {
                failures.push(format!(
                    "{case} {op_digest}: {} {deps:?}, BuildKit {} {expected_deps:?}",
                    got.digest, expected["cache_map"]
                ));
            } else {
                passed += 1;
            }
        }
        (passed, failures)
    }

    /// Every exec, file, merge and diff op of the LLB conformance cases (made by
    /// BuildKit's Dockerfile frontend) has the cache map BuildKit v0.24 computes for it:
    /// the digest and, per input, the selector digest and whether its content keys it.
    /// `tests/data/buildkit-v0.24-cache-maps.jsonl` was written by a small Go program
    /// calling BuildKit v0.24.0's own `solver/llbsolver/ops` `CacheMap` on each
    /// `definition.pb`, after its loader's `NormalizeRuntimePlatforms` (built from
    /// BuildKit's sources, kept outside this repository).
    #[test]
    fn cache_maps_are_buildkits() {
        let Some(cases) = kiln_test::conformance_dir("llb") else {
            return;
        };
        let recorded = include_str!("../tests/data/buildkit-v0.24-cache-maps.jsonl");
        let (passed, failures) = differences_from_buildkit(recorded, &cases.join("cases"));
        kiln_test::report_suite("buildkit-cache-maps", passed, &failures);
    }

    /// Exec ops whose platform BuildKit normalises before keying (`arm64/v8` is
    /// `arm64`, `Linux/aarch64` too, `arm/7` is `arm/v7`, `x86_64/v1` is `amd64`, none
    /// is the worker's): the definitions in `tests/data/platform-llb` were written by
    /// the same kind of Go program with BuildKit's `pb` types, their cache maps by the
    /// program above.
    #[test]
    fn op_platforms_are_normalised_before_keying() {
        let recorded = include_str!("../tests/data/buildkit-v0.24-platform-cache-maps.jsonl");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/platform-llb");
        let (passed, failures) = differences_from_buildkit(recorded, &dir);
        assert!(failures.is_empty(), "{failures:#?}");
        assert_eq!(passed, 5);
    }

    #[test]
    fn go_paths() {
        assert_eq!(go_path_base("/app/"), "app");
        assert_eq!(go_path_base("/"), "/");
        assert_eq!(go_path_base(""), ".");
        assert!(contains_wildcards("a*"));
        assert!(!contains_wildcards("a\\*"));
        assert_eq!(
            dedupe_paths(vec!["/a/b".into(), "/a".into(), "/ab".into(), "/a".into()]),
            ["/a", "/ab"]
        );
    }
}
