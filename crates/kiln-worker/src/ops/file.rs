//! File ops: mkdir, mkfile, rm, symlink and copy actions applied to a new layer.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use fs_err as fs;
use kiln_llb::pb;
use kiln_store::MountGuard;

use crate::fsutil::{CopySpec, copy_entry, expand_sources, resolve_in_root, set_times};
use crate::source::dockerignore::Matcher;
use crate::{Error, Ref, Worker};

/// Resolves a chown option against the destination's passwd/group files.
fn owner(root: &Path, chown: &Option<pb::ChownOpt>) -> Result<Option<(u32, u32)>, Error> {
    let Some(chown) = chown else { return Ok(None) };
    let part = |u: &Option<pb::UserOpt>| match u.as_ref().and_then(|u| u.user.as_ref()) {
        Some(pb::user_opt::User::ById(id)) => Some(id.to_string()),
        Some(pb::user_opt::User::ByName(n)) => Some(n.name.clone()),
        None => None,
    };
    let user = part(&chown.user).unwrap_or_else(|| "0".to_owned());
    let spec = match part(&chown.group) {
        Some(group) => format!("{user}:{group}"),
        None => user,
    };
    let resolved = kiln_exec::resolve_user(root, &spec)?;
    Ok(Some((resolved.uid, resolved.gid)))
}

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
        results[end - 1] = Some(apply_actions(worker, &base, group, &secondaries)?);
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

/// Applies `actions` in order to one new layer over `base`; `secondaries[i]` is what
/// action i copies from. Returns the new layer's ref.
fn apply_actions(
    worker: &Worker,
    base: &Ref,
    actions: &[pb::FileAction],
    secondaries: &[Ref],
) -> Result<Ref, Error> {
    let snapshot = worker.snapshots.create(base.snapshot().as_ref())?;
    match copy_context_into_layer(worker, actions, secondaries, base, &snapshot) {
        Ok(true) => {
            return Ok(Ref {
                chain: snapshot.chain,
                key: String::new(),
            });
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
        // Copy sources mounted once each, however many actions read them.
        let mut sources: HashMap<&[u64], MountGuard> = HashMap::new();
        for (action, secondary) in actions.iter().zip(secondaries) {
            match &action.action {
                Some(pb::file_action::Action::Mkdir(mkdir)) => {
                    let path = resolve_in_root(root, &mkdir.path, true)?;
                    let owner = owner(root, &mkdir.owner)?;
                    // Like `mkdir -p`, an existing directory is left as it is.
                    if !path.is_dir() {
                        let mode = mkdir.mode as u32 & 0o7777;
                        if mkdir.make_parents {
                            create_parents(&path, owner, None)?;
                        } else {
                            fs::create_dir(&path)?;
                            chown_path(&path, owner)?;
                        }
                        fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
                        set_timestamp(&path, mkdir.timestamp)?;
                    }
                }
                Some(pb::file_action::Action::Mkfile(mkfile)) => {
                    let path = resolve_in_root(root, &mkfile.path, true)?;
                    let owner = owner(root, &mkfile.owner)?;
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
                    let owner = owner(root, &link.owner)?;
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
                    copy_action(root, &source_root, copy, false)?;
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
    Ok(Ref {
        chain: snapshot.chain,
        key: String::new(),
    })
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
    let Ok(file) = fs::File::open(path) else {
        return false;
    };
    let mut reader: Box<dyn Read> = if is_gzip(path) {
        Box::new(flate2::read::GzDecoder::new(io::BufReader::new(file)))
    } else {
        Box::new(io::BufReader::new(file))
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
    let source_root = worker.snapshots.layer_dir(source_layer);
    copy_action(&layer, &source_root, copy, true)?;
    Ok(true)
}

/// One copy action into `dest_root` (where owner names are looked up too); with
/// `link`, files the copy keeps as they are may be hardlinked.
fn copy_action(
    dest_root: &Path,
    src_root: &Path,
    copy: &pb::FileActionCopy,
    link: bool,
) -> Result<(), Error> {
    let patterns = Patterns::new(copy);
    let owner = owner(dest_root, &copy.owner)?;
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
    let dest_is_dir_hint = copy.dest.ends_with('/') || copy.dest.ends_with("/.");
    let dest = resolve_in_root(dest_root, &copy.dest, true)?;
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
            fs::create_dir_all(&dest)?;
            let file = fs::File::open(&src)?;
            let mut reader: Box<dyn io::Read> = if is_gzip(&src) {
                Box::new(flate2::read::GzDecoder::new(io::BufReader::new(file)))
            } else {
                Box::new(io::BufReader::new(file))
            };
            crate::source::image::extract_tar(&dest, &mut reader)?;
            continue;
        }
        if meta.is_dir() && copy.dir_copy_contents {
            if copy.create_dest_path {
                create_parents(&dest, owner, spec.mode)?;
            }
            if !dest.is_dir() {
                fs::create_dir(&dest)?;
            }
            for name in kiln_store::tree::sorted_names(&src)? {
                let rel = name.to_string_lossy().into_owned();
                copy_filtered(
                    &src.join(&name),
                    &dest.join(&name),
                    &rel,
                    &patterns,
                    &spec,
                    &mut links,
                )?;
            }
            // The destination directory takes the source directory's attributes, its
            // times once what it holds is in place (as BuildKit's copy does).
            copy_dir_attributes(&src, &dest, &spec)?;
            continue;
        }
        // A wildcard's matches are filtered by their names (`COPY --exclude=*.txt hom* /`).
        let wildcard = copy.allow_wildcard && copy.src.contains(['*', '?', '[']);
        let name = Path::new(rel)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if wildcard && !patterns.is_empty() && !patterns.allows(&name) {
            continue;
        }
        let target = if dest_is_dir_hint || dest.is_dir() || sources.len() > 1 {
            create_parents(&dest, owner, spec.mode)?;
            let base = Path::new(rel)
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            dest.join(base)
        } else {
            if let Some(parent) = dest.parent() {
                if copy.create_dest_path {
                    create_parents(parent, owner, spec.mode)?;
                }
            }
            dest.clone()
        };
        copy_filtered(&src, &target, "", &patterns, &spec, &mut links)?;
    }
    Ok(())
}

/// Creates `dir` and its missing parents; the ones it creates get `owner` and, when
/// given, `mode` (BuildKit gives created parents a `--chmod` mode too).
fn create_parents(dir: &Path, owner: Option<(u32, u32)>, mode: Option<u32>) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut current = dir;
    while fs::symlink_metadata(current).is_err() {
        missing.push(current.to_path_buf());
        match current.parent() {
            Some(parent) => current = parent,
            None => break,
        }
    }
    fs::create_dir_all(dir)?;
    for created in missing {
        chown_path(&created, owner)?;
        if let Some(mode) = mode {
            fs::set_permissions(&created, std::fs::Permissions::from_mode(mode))?;
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
    match spec.timestamp {
        Some(ns) => set_times(
            dest,
            ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000),
        ),
        None => set_times(dest, meta.mtime(), meta.mtime_nsec()),
    }
}

fn is_gzip(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 2];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == [0x1f, 0x8b]
}
