//! File ops: mkdir, mkfile, rm, symlink and copy actions applied to a new layer.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use fs_err as fs;
use kiln_llb::pb;
use kiln_store::MountGuard;

use super::owner;
use crate::fsutil::{CopySpec, copy_entry, expand_sources, resolve_in_root, set_times};
use crate::source::dockerignore::Matcher;
use crate::{Error, Ref, Worker};

fn chown_path(path: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    rustix::fs::chownat(
        rustix::fs::CWD,
        path,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

fn set_timestamp(path: &Path, ns: i64) -> io::Result<()> {
    if ns < 0 {
        Ok(())
    } else {
        set_times(
            path,
            ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000),
        )
    }
}

/// Runs a file op: its actions in order, each on its input (an op input, an earlier
/// action's result, or scratch), copies reading their secondary input likewise; returns
/// the results of the actions that name an output, by output index. A run of actions
/// each on the one before, whose results nothing else uses, shares one new layer (the
/// usual chain `mkdir`, `mkfile`, `copy`, …).
pub(crate) fn run(worker: &Worker, op: &pb::FileOp, inputs: &[Ref]) -> Result<Vec<Ref>, Error> {
    let input_count = inputs.len() as i64;
    let actions = &op.actions;
    // How often each action's result is used by later actions.
    let mut uses = vec![0usize; actions.len()];
    for (i, action) in actions.iter().enumerate() {
        for reference in [action.input, action.secondary_input] {
            if reference >= input_count {
                let used = (reference - input_count) as usize;
                if used >= i {
                    return Err(Error::Unsupported(format!(
                        "file action {i} uses the result of action {used}, which does not come before it"
                    )));
                }
                uses[used] += 1;
            }
        }
    }
    let mut results: Vec<Option<Ref>> = vec![None; actions.len()];
    let resolve = |results: &[Option<Ref>], reference: i64| -> Result<Ref, Error> {
        if reference < 0 {
            return Ok(Ref::default());
        }
        if reference < input_count {
            return Ok(inputs[reference as usize].clone());
        }
        results[(reference - input_count) as usize]
            .clone()
            .ok_or_else(|| Error::Unsupported(format!("file op input {reference} has no result")))
    };
    let mut first = 0;
    while first < actions.len() {
        let mut end = first + 1;
        while end < actions.len()
            && actions[end].input == input_count + end as i64 - 1
            && actions[end - 1].output < 0
            && uses[end - 1] == 1
        {
            end += 1;
        }
        let base = resolve(&results, actions[first].input)?;
        let group = &actions[first..end];
        let secondaries = group
            .iter()
            .map(|a| match &a.action {
                Some(pb::file_action::Action::Copy(_)) => resolve(&results, a.secondary_input),
                _ => Ok(Ref::default()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Inputs other than the group's base whose user tables owner names are read from.
        let mut owner_inputs = HashMap::new();
        for input in group.iter().flat_map(named_owner_inputs) {
            if input >= 0 && input != group[0].input && !owner_inputs.contains_key(&input) {
                owner_inputs.insert(input, resolve(&results, input)?);
            }
        }
        results[end - 1] = Some(apply_actions(
            worker,
            &base,
            group,
            &secondaries,
            &owner_inputs,
        )?);
        first = end;
    }
    let count = actions
        .iter()
        .map(|a| a.output + 1)
        .max()
        .unwrap_or(0)
        .max(0) as usize;
    let mut outputs = vec![Ref::default(); count];
    for (i, action) in actions.iter().enumerate() {
        if action.output >= 0 {
            outputs[action.output as usize] = results[i].clone().unwrap_or_default();
        }
    }
    Ok(outputs)
}

/// An action's owner option, if it has one.
fn action_owner(action: &pb::FileAction) -> Option<&pb::ChownOpt> {
    match action.action.as_ref()? {
        pb::file_action::Action::Mkdir(a) => a.owner.as_ref(),
        pb::file_action::Action::Mkfile(a) => a.owner.as_ref(),
        pb::file_action::Action::Symlink(a) => a.owner.as_ref(),
        pb::file_action::Action::Copy(a) => a.owner.as_ref(),
        pb::file_action::Action::Rm(_) => None,
    }
}

/// The inputs whose `/etc/passwd` or `/etc/group` an action's owner names are read from.
fn named_owner_inputs(action: &pb::FileAction) -> Vec<i64> {
    let Some(owner) = action_owner(action) else {
        return Vec::new();
    };
    [&owner.user, &owner.group]
        .into_iter()
        .filter_map(|u| match u.as_ref()?.user.as_ref()? {
            pb::user_opt::User::ByName(named) => Some(named.input),
            pb::user_opt::User::ById(_) => None,
        })
        .collect()
}

/// The owners of `actions`, resolved before any of them runs: a name is read from the
/// input it names (BuildKit's `byName.input`, the op's base for Dockerfile steps), as
/// that input is, whatever earlier actions of the op write. `base_root` shows the
/// group's base input; `other_inputs` holds the other inputs names refer to.
fn resolve_owners(
    worker: &Worker,
    actions: &[pb::FileAction],
    base_root: &Path,
    other_inputs: &HashMap<i64, Ref>,
) -> Result<Vec<Option<(u32, u32)>>, Error> {
    let base_input = actions.first().map_or(-1, |a| a.input);
    let mut mounted: HashMap<i64, MountGuard> = HashMap::new();
    let mut root_of = |input: i64| -> Result<std::path::PathBuf, Error> {
        if input < 0 {
            return Err(Error::Unsupported(format!("invalid user index: {input}")));
        }
        if input == base_input {
            return Ok(base_root.to_path_buf());
        }
        if let Some(guard) = mounted.get(&input) {
            return Ok(guard.path().to_path_buf());
        }
        let path = match other_inputs.get(&input).and_then(Ref::snapshot) {
            Some(snapshot) => {
                let guard = worker.snapshots.mount_readonly(&snapshot)?;
                let path = guard.path().to_path_buf();
                mounted.insert(input, guard);
                path
            }
            None => tempdir_empty(worker)?,
        };
        Ok(path)
    };
    actions
        .iter()
        .map(|a| {
            action_owner(a)
                .map(|chown| owner::resolve(chown, &mut root_of))
                .transpose()
        })
        .collect()
}

/// Applies `actions` in order to one new layer over `base`; `secondaries[i]` is what
/// action i copies from, `owner_inputs` the inputs (other than `base`) whose user
/// tables owner names are read from. Returns the new layer's ref.
fn apply_actions(
    worker: &Worker,
    base: &Ref,
    actions: &[pb::FileAction],
    secondaries: &[Ref],
    owner_inputs: &HashMap<i64, Ref>,
) -> Result<Ref, Error> {
    let snapshot = worker.snapshots.create(base.snapshot().as_ref())?;
    match copy_context_into_layer(worker, actions, secondaries, base, &snapshot) {
        Ok(true) => {
            return Ok(Ref::unkeyed(snapshot.chain));
        }
        Ok(false) => {}
        Err(e) => {
            let _ = worker.snapshots.remove_layer(snapshot.id());
            return Err(e);
        }
    }
    let result = (|| -> Result<(), Error> {
        let mount = worker.snapshots.mount(&snapshot)?;
        let root = mount.path();
        let owners = resolve_owners(worker, actions, root, owner_inputs)?;
        // Copy sources mounted once each, however many actions read them.
        let mut sources: HashMap<&[u64], MountGuard> = HashMap::new();
        for ((action, secondary), owner) in actions.iter().zip(secondaries).zip(owners) {
            match &action.action {
                Some(pb::file_action::Action::Mkdir(mkdir)) => {
                    let path = resolve_in_root(root, &mkdir.path, true)?;
                    // As `mkdir -p`, an existing directory is left as it is; what is
                    // created, parents too, gets the mode, owner and time.
                    let mode = mkdir.mode as u32 & 0o777;
                    let time = (mkdir.timestamp >= 0).then_some(mkdir.timestamp);
                    if mkdir.make_parents {
                        create_parents(&path, owner, mode, time)?;
                    } else if !path.is_dir() {
                        fs::create_dir(&path)?;
                        fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
                        chown_path(&path, owner)?;
                        set_timestamp(&path, mkdir.timestamp)?;
                    }
                }
                Some(pb::file_action::Action::Mkfile(mkfile)) => {
                    let path = resolve_in_root(root, &mkfile.path, true)?;
                    fs::write(&path, &mkfile.data)?;
                    fs::set_permissions(
                        &path,
                        std::fs::Permissions::from_mode(mkfile.mode as u32 & 0o7777),
                    )?;
                    chown_path(&path, owner)?;
                    set_timestamp(&path, mkfile.timestamp)?;
                }
                Some(pb::file_action::Action::Rm(rm)) => {
                    let matches = expand_sources(root, &rm.path, rm.allow_wildcard)?;
                    for rel in matches {
                        let path = resolve_in_root(root, &rel, false)?;
                        match fs::symlink_metadata(&path) {
                            Ok(m) if m.is_dir() => fs::remove_dir_all(&path)?,
                            Ok(_) => fs::remove_file(&path)?,
                            Err(_) if rm.allow_not_found => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Some(pb::file_action::Action::Symlink(link)) => {
                    let path = resolve_in_root(root, &link.newpath, false)?;
                    symlink(&link.oldpath, &path)?;
                    chown_path(&path, owner)?;
                    set_timestamp(&path, link.timestamp)?;
                }
                Some(pb::file_action::Action::Copy(copy)) => {
                    let source_root = match secondary.snapshot() {
                        Some(s) => {
                            if !sources.contains_key(secondary.chain.as_slice()) {
                                let guard = worker.snapshots.mount_readonly(&s)?;
                                sources.insert(secondary.chain.as_slice(), guard);
                            }
                            sources[secondary.chain.as_slice()].path().to_path_buf()
                        }
                        None => tempdir_empty(worker)?,
                    };
                    copy_action(root, &source_root, copy, owner, false)?;
                }
                None => {}
            }
        }
        drop(sources);
        mount.commit()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = worker.snapshots.remove_layer(snapshot.id());
        return Err(e);
    }
    Ok(Ref::unkeyed(snapshot.chain))
}

fn tempdir_empty(worker: &Worker) -> Result<std::path::PathBuf, Error> {
    let dir = worker.config.root.join("empty");
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Whether a file is a tar archive, gzip-compressed or not: its first 512 bytes (after
/// decompression) are a tar header with a valid checksum.
fn is_archive(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut reader) = decompressed(path) else {
        return false;
    };
    let mut header = [0u8; 512];
    if reader.read_exact(&mut header).is_err() {
        return false;
    }
    let stored = std::str::from_utf8(&header[148..156])
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok());
    let computed: u32 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    stored == Some(computed)
}

/// BuildKit's copy: wildcards, directory contents, destination as a directory when it
/// ends with `/` or already is one.
/// A copy's include and exclude patterns (`COPY --exclude`, `--parents` filters), in
/// `.dockerignore` syntax, matched against paths relative to the copied source.
pub(crate) struct Patterns {
    include: Option<Matcher>,
    exclude: Option<Matcher>,
    /// Whether an exclusion can be undone below an excluded directory (`!` patterns).
    negated: bool,
}

impl Patterns {
    fn new(copy: &pb::FileActionCopy) -> Self {
        Self::from_lists(&copy.include_patterns, &copy.exclude_patterns)
    }

    pub(crate) fn from_lists(include: &[String], exclude: &[String]) -> Self {
        let matcher = |patterns: &[String]| (!patterns.is_empty()).then(|| Matcher::new(patterns));
        Self {
            include: matcher(include),
            exclude: matcher(exclude),
            negated: exclude.iter().any(|p| p.trim().starts_with('!')),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    /// Whether `rel` itself is copied.
    pub(crate) fn allows(&self, rel: &str) -> bool {
        self.include.as_ref().is_none_or(|m| m.matches(rel))
            && !self.exclude.as_ref().is_some_and(|m| m.matches(rel))
    }

    /// Whether something below the directory `rel` may be copied.
    pub(crate) fn may_descend(&self, rel: &str) -> bool {
        self.negated || !self.exclude.as_ref().is_some_and(|m| m.matches(rel))
    }
}

/// Copies `src` to `dst` keeping only what `patterns` allow (`rel` is `src`'s path
/// relative to the copy's source; directories left empty by the filter are dropped).
fn copy_filtered(
    src: &Path,
    dst: &Path,
    rel: &str,
    patterns: &Patterns,
    spec: &CopySpec,
    links: &mut crate::fsutil::Hardlinks,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    if !meta.is_dir() {
        if rel.is_empty() || patterns.allows(rel) {
            copy_entry(src, dst, spec, links)?;
        }
        return Ok(());
    }
    let allowed = rel.is_empty() || patterns.allows(rel);
    if !allowed && !patterns.may_descend(rel) {
        return Ok(());
    }
    let existed = kiln_store::tree::ensure_dir(dst)?;
    for name in kiln_store::tree::sorted_names(src)? {
        let child = match rel {
            "" => name.to_string_lossy().into_owned(),
            _ => format!("{rel}/{}", name.to_string_lossy()),
        };
        copy_filtered(
            &src.join(&name),
            &dst.join(&name),
            &child,
            patterns,
            spec,
            links,
        )?;
    }
    if !allowed && !existed && fs::read_dir(dst)?.next().is_none() {
        fs::remove_dir(dst)?;
        return Ok(());
    }
    copy_dir_attributes(src, dst, spec)
}

/// The copy of a context into a new layer, done in the layer's own directory without a
/// mount, its files hardlinked from the context's layer where the copy keeps them as
/// they are (both layers are never written again). Taken when nothing can differ from
/// the mounted copy: one copy action, from a context layer (no whiteouts), no archive
/// to unpack, no owner or one given as numbers (no passwd to read), and a destination
/// that the layers below have as a plain directory or not at all, under plain
/// directories (those that exist are made in the layer with their metadata, as
/// overlay's copy-up would). Returns whether it was taken.
fn copy_context_into_layer(
    worker: &Worker,
    actions: &[pb::FileAction],
    secondaries: &[Ref],
    base: &Ref,
    snapshot: &kiln_store::Snapshot,
) -> Result<bool, Error> {
    let ([action], [source]) = (actions, secondaries) else {
        return Ok(false);
    };
    let Some(pb::file_action::Action::Copy(copy)) = &action.action else {
        return Ok(false);
    };
    let &[source_layer] = source.chain.as_slice() else {
        return Ok(false);
    };
    // An owner needs no passwd or group file only when both are numbers.
    let by_number = |u: &Option<pb::UserOpt>| {
        matches!(
            u.as_ref().and_then(|u| u.user.as_ref()),
            Some(pb::user_opt::User::ById(_))
        )
    };
    if copy.attempt_unpack_docker_compatibility
        || copy
            .owner
            .as_ref()
            .is_some_and(|o| !by_number(&o.user) || !by_number(&o.group))
        || crate::usage::layer_kind(worker, source_layer).as_deref()
            != Some(crate::usage::SOURCE_LOCAL)
    {
        return Ok(false);
    }
    // Each existing parent of the destination, found in the layers below: the topmost
    // layer that has the path must have a plain directory there.
    let components: Vec<&str> = copy
        .dest
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if components.is_empty() || components.contains(&"..") {
        return Ok(false);
    }
    // The topmost of the layers from `floor` up that has `rel`, with its position.
    let topmost = |rel: &str, floor: usize| {
        base.chain[floor..]
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, id)| {
                let path = worker.snapshots.layer_dir(*id).join(rel);
                fs::symlink_metadata(&path)
                    .ok()
                    .map(|meta| (floor + i, path, meta))
            })
    };
    // The destination too, when a directory: the copy then goes into it, as through a
    // mount, its entries over the ones below. Below an opaque directory, the layers
    // under it do not count.
    let mut parents = Vec::new();
    let mut floor = 0;
    for depth in 1..=components.len() {
        let rel = components[..depth].join("/");
        match topmost(&rel, floor) {
            Some((at, path, meta)) if meta.is_dir() => {
                if kiln_store::tree::is_opaque(&path) {
                    floor = at;
                }
                parents.push((rel, path));
            }
            Some(_) => return Ok(false),
            None => break,
        }
    }
    let layer = worker.snapshots.layer_dir(snapshot.id());
    for (rel, lower) in &parents {
        let dir = layer.join(rel);
        fs::create_dir(&dir)?;
        kiln_store::tree::copy_metadata(lower, &dir)?;
    }
    // By numbers only (checked above): no user table is read.
    let owner = copy
        .owner
        .as_ref()
        .map(|chown| owner::resolve(chown, &mut |_| Ok(layer.clone())))
        .transpose()?;
    let source_root = worker.snapshots.layer_dir(source_layer);
    copy_action(&layer, &source_root, copy, owner, true)?;
    Ok(true)
}

/// One copy action into `dest_root`, what it creates owned by `owner`; with `link`,
/// files the copy keeps as they are may be hardlinked. Each source is copied as
/// BuildKit's `fsutil/copy.Copy` does: the destination's parent is created (or the
/// destination itself, when it ends with `/`); a file or, without `dir_copy_contents`,
/// a directory goes into a destination that is an existing directory; a directory's
/// contents go into the destination, which is created (0755 or the `--chmod` mode,
/// owned by `owner` or root) when missing and otherwise keeps its mode and owner.
fn copy_action(
    dest_root: &Path,
    src_root: &Path,
    copy: &pb::FileActionCopy,
    owner: Option<(u32, u32)>,
    link: bool,
) -> Result<(), Error> {
    let patterns = Patterns::new(copy);
    let mut links = crate::fsutil::Hardlinks::new();
    // `mode_str` holds a symbolic mode (or, from some clients, an octal one).
    let octal_str = u32::from_str_radix(&copy.mode_str, 8).ok();
    let symbolic_mode =
        (!copy.mode_str.is_empty() && octal_str.is_none()).then(|| copy.mode_str.clone());
    if let Some(symbolic) = &symbolic_mode {
        if kiln_store::tree::apply_symbolic_mode(symbolic, 0, false).is_none() {
            return Err(Error::Unsupported(format!(
                "invalid chmod parameter: {symbolic:?}: it should be octal or a symbolic mode such as u+x"
            )));
        }
    }
    let spec = CopySpec {
        // An octal mode comes as `mode`; a symbolic one as `mode_str` (with mode 0).
        mode: octal_str
            .or((copy.mode >= 0 && copy.mode_str.is_empty()).then_some(copy.mode as u32)),
        symbolic_mode,
        chown: owner,
        timestamp: (copy.timestamp >= 0).then_some(copy.timestamp),
        link,
    };
    // Directories the copy creates around what it copies: only a numeric `mode` is
    // theirs (permission bits only); otherwise 0755.
    let created_dir_mode = if copy.mode >= 0 && copy.mode_str.is_empty() {
        copy.mode as u32 & 0o777
    } else {
        0o755
    };
    // Paths the copy's patterns must find in the source (BuildKit's `requiredPaths`).
    for required in &copy.required_paths {
        let path = resolve_in_root(src_root, required, false)?;
        if fs::symlink_metadata(&path).is_err() {
            return Err(Error::Source(format!(
                "failed to calculate checksum of ref: \"/{}\": not found",
                required.trim_start_matches('/')
            )));
        }
    }
    let sources = expand_sources(src_root, &copy.src, copy.allow_wildcard)?;
    if sources.is_empty() {
        if copy.allow_empty_wildcard {
            return Ok(());
        }
        return Err(Error::Source(format!(
            "no source files were specified for {}",
            copy.src
        )));
    }
    // The destination's last component, unless it names a directory (`dir/`, `dir/.`).
    let dest_names_entry = !(copy.dest.ends_with('/') || copy.dest.ends_with("/."));
    let dest_parent = match copy.dest.rsplit_once('/') {
        Some((parent, _)) if dest_names_entry => parent.to_owned(),
        _ => copy.dest.clone(),
    };
    let wildcard = copy.allow_wildcard && copy.src.contains(['*', '?', '[']);
    for rel in &sources {
        let src = resolve_in_root(src_root, rel, copy.follow_symlink)?;
        let meta = fs::symlink_metadata(&src).map_err(|_| {
            let shown = if rel.is_empty() {
                "/".to_owned()
            } else {
                format!("/{rel}")
            };
            Error::Source(format!(
                "failed to calculate checksum of ref: \"{shown}\": not found"
            ))
        })?;
        if copy.attempt_unpack_docker_compatibility && meta.is_file() && is_archive(&src) {
            // Created like `mkdir -p` (0755, the owner); the archive's entries get the
            // owner too, when one is given.
            let dest = resolve_in_root(dest_root, &copy.dest, true)?;
            create_parents(&dest, owner, 0o755, spec.timestamp)?;
            let mut reader = decompressed(&src)?;
            let options = crate::source::image::ExtractOptions {
                owner,
                whiteouts: false,
            };
            crate::source::image::extract_tar(&dest, &mut reader, &options)?;
            continue;
        }
        // A wildcard's matches are filtered by their names (`COPY --exclude=*.txt hom* /`).
        let name = Path::new(rel)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if wildcard && !patterns.is_empty() && !meta.is_dir() && !patterns.allows(&name) {
            continue;
        }
        if copy.create_dest_path {
            let parent = resolve_in_root(dest_root, &dest_parent, true)?;
            create_parents(&parent, owner, created_dir_mode, spec.timestamp)?;
        } else {
            // BuildKit stats the parent of the cleaned destination (`/in/` → `/`):
            // the destination itself is made by the copy.
            let cleaned = copy.dest.trim_end_matches("/.").trim_end_matches('/');
            let checked = cleaned.rsplit_once('/').map_or("/", |(p, _)| p);
            let parent = resolve_in_root(dest_root, checked, true)?;
            if fs::symlink_metadata(&parent).is_err() {
                return Err(Error::Source(format!(
                    "failed to stat {}: no such file or directory",
                    copy.dest
                )));
            }
        }
        let dest = resolve_in_root(dest_root, &copy.dest, true)?;
        let dest_meta = fs::metadata(&dest).ok();
        // An existing destination is entered by a file when it is a directory, and by
        // a directory copied as itself (not its contents) whatever it is.
        let into_dest = match &dest_meta {
            Some(_) if meta.is_dir() => !copy.dir_copy_contents,
            Some(d) => d.is_dir(),
            None => false,
        };
        let target = if into_dest && !name.is_empty() {
            dest.join(&name)
        } else {
            dest
        };
        let missing_dir = if meta.is_dir() && copy.dir_copy_contents && dest_meta.is_none() {
            Some(target.as_path())
        } else {
            target.parent()
        };
        if let Some(dir) = missing_dir {
            create_parents(dir, owner, created_dir_mode, spec.timestamp)?;
        }
        if meta.is_dir() {
            copy_dir_into(&src, &target, &patterns, &spec, &mut links, copy)?;
        } else {
            if fs::symlink_metadata(&target).is_ok_and(|t| t.is_dir()) {
                return Err(Error::Source(format!(
                    "cannot replace to directory {} with file",
                    target.display()
                )));
            }
            copy_filtered(&src, &target, "", &patterns, &spec, &mut links)?;
        }
    }
    Ok(())
}

/// A directory source copied to `target`. A new `target` takes the source's mode,
/// owner and times (as overridden by the copy); an existing one keeps its mode and
/// owner and only takes the times, after its contents are copied.
fn copy_dir_into(
    src: &Path,
    target: &Path,
    patterns: &Patterns,
    spec: &CopySpec,
    links: &mut crate::fsutil::Hardlinks,
    copy: &pb::FileActionCopy,
) -> Result<(), Error> {
    let existed = match fs::symlink_metadata(target) {
        Ok(t) if t.is_dir() => true,
        Ok(_) if copy.always_replace_existing_dest_paths => {
            fs::remove_file(target)?;
            false
        }
        Ok(_) => {
            return Err(Error::Source(format!(
                "cannot copy to non-directory: {}",
                target.display()
            )));
        }
        Err(_) => false,
    };
    if !existed {
        fs::create_dir(target)?;
    }
    for name in kiln_store::tree::sorted_names(src)? {
        let rel = name.to_string_lossy().into_owned();
        copy_filtered(
            &src.join(&name),
            &target.join(&name),
            &rel,
            patterns,
            spec,
            links,
        )?;
    }
    if existed {
        copy_dir_times(src, target, spec)?;
    } else {
        copy_dir_attributes(src, target, spec)?;
    }
    Ok(())
}

/// Creates `dir` and its missing parents, as BuildKit's `MkdirAll`: each one it
/// creates gets `mode`, `owner` (else root's, this process's) and, when given, the
/// time; existing ones are left as they are.
fn create_parents(
    dir: &Path,
    owner: Option<(u32, u32)>,
    mode: u32,
    timestamp: Option<i64>,
) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut current = dir;
    while fs::metadata(current).is_err() {
        missing.push(current.to_path_buf());
        match current.parent() {
            Some(parent) => current = parent,
            None => break,
        }
    }
    for created in missing.iter().rev() {
        fs::create_dir(created)?;
        fs::set_permissions(created, std::fs::Permissions::from_mode(mode))?;
        chown_path(created, owner)?;
    }
    // Times last: creating a child changes its parent's.
    if let Some(ns) = timestamp {
        for created in &missing {
            set_timestamp(created, ns)?;
        }
    }
    Ok(())
}

/// Mode, owner and times of a copied directory onto its destination.
fn copy_dir_attributes(src: &Path, dest: &Path, spec: &CopySpec) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(src)?;
    let mode = spec.mode_of(&meta);
    fs::set_permissions(dest, std::fs::Permissions::from_mode(mode))?;
    chown_path(dest, Some(spec.chown.unwrap_or((meta.uid(), meta.gid()))))?;
    copy_dir_times(src, dest, spec)
}

/// The copy's time (or the source directory's) onto a destination directory.
fn copy_dir_times(src: &Path, dest: &Path, spec: &CopySpec) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    match spec.timestamp {
        Some(ns) => set_times(
            dest,
            ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000),
        ),
        None => {
            let meta = fs::metadata(src)?;
            set_times(dest, meta.mtime(), meta.mtime_nsec())
        }
    }
}

/// A file's bytes, decompressed when they start as gzip or zstd does (the formats
/// of BuildKit's `DecompressStream` that kiln reads; bzip2 and xz are not).
fn decompressed(path: &Path) -> io::Result<Box<dyn io::Read>> {
    use std::io::Read;
    let mut head = [0u8; 4];
    let read = fs::File::open(path)?.read(&mut head)?;
    let file = io::BufReader::new(fs::File::open(path)?);
    Ok(match &head[..read] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(file)),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(zstd::Decoder::with_buffer(file)?),
        _ => Box::new(file),
    })
}
