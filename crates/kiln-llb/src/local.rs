//! What a local source selects of a client's directory, as BuildKit's client-side
//! transfer (fsutil's `FilterFS`) selects it: exclude and include patterns, followed
//! paths with the symlinks on them resolved, and each entry as it is sent (owned by
//! root, a unix socket as an empty file). The embedded engine reads a context this
//! way, and a remote client sends it this way, so both see the same files.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::patterns::{Matcher, PatternError};
use crate::pb;

/// A local source's filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `local.includepattern`: only what these select.
    pub include_patterns: Vec<String>,
    /// `local.excludepatterns` (`.dockerignore`).
    pub exclude_patterns: Vec<String>,
    /// `local.followpaths`: only these paths (and what their symlinks point to).
    pub follow_paths: Vec<String>,
}

impl Filter {
    /// The filters of a local source op.
    pub fn of_source(source: &pb::SourceOp) -> Self {
        let list = |key: &str| -> Vec<String> {
            source
                .attrs
                .get(key)
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or_default()
        };
        Self {
            include_patterns: list("local.includepattern"),
            exclude_patterns: list("local.excludepatterns"),
            follow_paths: list("local.followpaths"),
        }
    }
}

/// Why a directory could not be selected.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// Reading the directory failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A pattern is malformed.
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

/// A path made safe to join under a root: no root, no `..` escaping it.
fn clean_relative(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            _ => {}
        }
    }
    Some(out)
}

/// What the walk of a context keeps of an entry's metadata: as the client sends it to
/// BuildKit, owned by root (buildx and buildctl reset every uid and gid) and with a
/// unix socket as an empty regular file (fsutil clears the socket bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    /// A unix socket, sent as an empty file.
    pub socket: bool,
}

impl Entry {
    /// The entry as sent: root's, and a socket turned into an empty file with its
    /// permission bits.
    fn as_sent(mut self) -> Self {
        self.uid = 0;
        self.gid = 0;
        if self.kind() == rustix::fs::FileType::Socket {
            self.mode = (self.mode & 0o7777) | rustix::fs::FileType::RegularFile.as_raw_mode();
            self.size = 0;
            self.socket = true;
        }
        self
    }
    /// The entry's type.
    pub fn kind(&self) -> rustix::fs::FileType {
        rustix::fs::FileType::from_raw_mode(self.mode)
    }
    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == rustix::fs::FileType::Directory
    }
    /// Whether it is a regular file.
    pub fn is_file(&self) -> bool {
        self.kind() == rustix::fs::FileType::RegularFile
    }
    /// Whether it is a symlink.
    pub fn is_symlink(&self) -> bool {
        self.kind() == rustix::fs::FileType::Symlink
    }
}

impl From<&std::fs::Metadata> for Entry {
    fn from(meta: &std::fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ino: meta.ino(),
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev(),
            socket: false,
        }
    }
}

/// A directory's entries (names) with their metadata, each looked up relative to the
/// open directory: one path component per lookup, however deep the context; with
/// `probe_xattrs`, whether each has extended attributes too (when the kernel can say).
fn read_dir_entries(path: &Path, probe_xattrs: bool) -> Result<Vec<Read>, SelectError> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let fd = rustix::fs::openat(
        rustix::fs::CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        SelectError::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    })?;
    let mut out = Vec::new();
    // The stream owns the descriptor (`read_from` would open the directory again).
    let mut dir = rustix::fs::Dir::new(fd).map_err(std::io::Error::from)?;
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(std::io::Error::from)?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let dir_fd = dir.fd().map_err(std::io::Error::from)?;
        let stat = rustix::fs::statat(dir_fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(std::io::Error::from)?;
        let xattrs = if probe_xattrs {
            kiln_oci::xattr::any_at(dir_fd, name)
        } else {
            None
        };
        out.push((
            name.to_string_lossy().into_owned(),
            Entry {
                size: stat.st_size as u64,
                mtime: stat.st_mtime as i64,
                mtime_nsec: stat.st_mtime_nsec as i64,
                ino: stat.st_ino as u64,
                mode: stat.st_mode as u32,
                uid: stat.st_uid,
                gid: stat.st_gid,
                rdev: stat.st_rdev as u64,
                socket: false,
            },
            xattrs,
        ));
    }
    Ok(out)
}

/// fsutil's `ComparePath`: byte order, except that `/` comes before every other byte,
/// so a directory's entries come right after it (`a`, `a/x`, `a.txt`). Senders list a
/// context's entries in this order, and BuildKit's receiver refuses any other
/// ("changes out of order").
pub fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

/// A directory's entry as read: its name, its metadata, and whether it has extended
/// attributes (`None`: not known; ask by path).
type Read = (String, Entry, Option<bool>);

/// The entries of `dir` that `filter` selects, relative paths in [`path_order`] with their
/// metadata as sent (each entry is looked at once).
pub fn select(dir: &Path, filter: &Filter) -> Result<Vec<(String, Entry)>, SelectError> {
    let mut out = Vec::new();
    walk(
        dir,
        filter,
        false,
        false,
        &|_, _, _| Ok(()),
        &mut |rel, entry, ()| {
            out.push((rel, entry.as_sent()));
            Ok(())
        },
    )?;
    Ok(out)
}

/// What a walk's reading threads make of each selected entry (its relative path, its
/// metadata, whether it has extended attributes when known) for whoever the walk hands
/// it on to.
pub type Enrich<'a, T> = dyn Fn(&str, &Entry, Option<bool>) -> Result<T, SelectError> + Sync + 'a;

/// [`select`] for a sender, which sends extended attributes too, as a stream: each
/// entry goes to `emit` (metadata as sent) as soon as every entry before it has, while
/// other threads read further directories and run `enrich` on the entries they find,
/// told whether each has extended attributes when the kernel can say so in the same
/// walk (`None`: not known). The first error of either stops the walk.
pub fn select_to_send<T: Send>(
    dir: &Path,
    filter: &Filter,
    enrich: &Enrich<'_, T>,
    emit: &mut dyn FnMut(String, Entry, T) -> Result<(), SelectError>,
) -> Result<(), SelectError> {
    walk(dir, filter, true, true, enrich, &mut |rel, entry, extra| {
        emit(rel, entry.as_sent(), extra)
    })
}

/// What [`select`] would return, from `listing` (every entry under `dir`, with its
/// metadata as on disk, sorted; what a receiver has just written there) rather than
/// a walk of `dir`: only followed symlinks are looked at.
pub fn select_listed(
    dir: &Path,
    listing: &[(String, Entry)],
    filter: &Filter,
) -> Result<Vec<(String, Entry)>, SelectError> {
    let selection = Selection::new(dir, filter)?;
    // A path a walk would not reach (under a directory that is not wanted) is not
    // wanted either: `wanted` holds for a path's parents when it holds for the path.
    Ok(listing
        .iter()
        .filter(|(rel, meta)| selection.wanted(rel) && !selection.ignored(rel, meta))
        .map(|(rel, meta)| (rel.clone(), meta.as_sent()))
        .collect())
}

/// Every entry under `dir`, relative paths in [`path_order`] with their metadata as it is on
/// disk (owners kept), each looked at once: what a receiver already has.
pub fn entries(dir: &Path) -> Result<Vec<(String, Entry)>, SelectError> {
    let mut out = Vec::new();
    walk(
        dir,
        &Filter::default(),
        false,
        false,
        &|_, _, _| Ok(()),
        &mut |rel, entry, ()| {
            out.push((rel, entry));
            Ok(())
        },
    )?;
    Ok(out)
}

/// A filter made ready to ask of paths under one directory.
struct Selection {
    excludes: Matcher,
    includes: Matcher,
    /// The followed paths with the symlinks on them resolved: what they name is sent
    /// too. `None`: everything.
    follow: Option<Vec<String>>,
}

impl Selection {
    fn new(dir: &Path, filter: &Filter) -> Result<Self, SelectError> {
        Ok(Self {
            excludes: Matcher::parse(&filter.exclude_patterns)?,
            includes: Matcher::parse(&filter.include_patterns)?,
            follow: if filter.follow_paths.is_empty() {
                None
            } else {
                follow_links(dir, &filter.follow_paths)?
            },
        })
    }

    /// Whether the followed paths reach `rel` (or lead through it).
    fn wanted(&self, rel: &str) -> bool {
        let Some(follow) = &self.follow else {
            return true;
        };
        follow.iter().any(|f| {
            let f = f.trim_end_matches('/');
            rel == f
                || rel.starts_with(&format!("{f}/"))
                || f.starts_with(&format!("{rel}/"))
                || f.split('/')
                    .zip(rel.split('/'))
                    .all(|(p, r)| crate::patterns::match_component(p, r))
        })
    }

    /// Whether the patterns leave `rel` out (a directory left out is still walked: it
    /// may hold re-included files).
    fn ignored(&self, rel: &str, meta: &Entry) -> bool {
        (!self.excludes.is_empty() && self.excludes.matches(rel))
            || (!self.includes.is_empty() && !meta.is_dir() && !self.includes.matches(rel))
    }
}

/// One directory's entries as a walk hands them on: each name (sorted), its metadata,
/// what `enrich` made of it when the filter selects it, and whether the walk descends
/// into it.
type Listed<T> = Vec<(String, Entry, Option<T>, bool)>;

/// What the threads of a walk share: the directories still to read (a stack, so that
/// the first subdirectory of the last one read comes next: the order the walk hands
/// entries on in), how many are being read, those read and not handed on yet, the one
/// the handing on waits for, and whether the walk is over.
struct WalkState<T> {
    to_read: Vec<String>,
    reading: usize,
    read: HashMap<String, Result<Listed<T>, SelectError>>,
    waiting_for: Option<String>,
    over: bool,
}

/// The entries `filter` selects, with their metadata as it is on disk, handed to `emit`
/// in [`path_order`] (a directory's entries right after it) while a few threads read
/// directories ahead: each entry's metadata taken relative to its open directory
/// (with `probe_xattrs`, whether it has extended attributes too), and `enrich` run on
/// each selected one. With `stream`, each entry is handed on as soon as every entry
/// before it is known; without, once the whole tree is read (no waiting in between).
fn walk<T: Send>(
    dir: &Path,
    filter: &Filter,
    probe_xattrs: bool,
    stream: bool,
    enrich: &Enrich<'_, T>,
    emit: &mut dyn FnMut(String, Entry, T) -> Result<(), SelectError>,
) -> Result<(), SelectError> {
    let selection = Selection::new(dir, filter)?;
    let state = std::sync::Mutex::new(WalkState {
        to_read: vec![String::new()],
        reading: 0,
        read: HashMap::new(),
        waiting_for: None,
        over: false,
    });
    // Readers wait for directories to read; the handing on waits for a listing.
    let work = std::sync::Condvar::new();
    let arrived = std::sync::Condvar::new();
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let join = |rel: &str, name: &str| {
        if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        }
    };
    // One directory: its entries sorted by name, each selected one enriched.
    let list = |rel: &str| -> Result<Listed<T>, SelectError> {
        let path = if rel.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(rel)
        };
        let mut entries = read_dir_entries(&path, probe_xattrs)?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut listed = Vec::with_capacity(entries.len());
        for (name, meta, xattrs) in entries {
            let child = join(rel, &name);
            if !selection.wanted(&child) {
                continue;
            }
            let extra = if selection.ignored(&child, &meta) {
                None
            } else {
                Some(enrich(&child, &meta, xattrs)?)
            };
            listed.push((name, meta, extra, meta.is_dir()));
        }
        Ok(listed)
    };
    let read_ahead = || {
        loop {
            let rel = {
                let mut state = lock();
                loop {
                    if state.over {
                        return;
                    }
                    if let Some(rel) = state.to_read.pop() {
                        state.reading += 1;
                        break rel;
                    }
                    state = work.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            };
            // A reader that panicked would leave the handing on waiting forever: its
            // directory fails instead.
            let listed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| list(&rel)))
                .unwrap_or_else(|_| {
                    Err(SelectError::Io(std::io::Error::other(format!(
                        "reading {rel:?} of the context panicked"
                    ))))
                });
            let mut state = lock();
            state.reading -= 1;
            let before = state.to_read.len();
            if let Ok(listed) = &listed {
                // Last first: the first subdirectory is read next.
                for (name, .., descend) in listed.iter().rev() {
                    if *descend {
                        state.to_read.push(join(&rel, name));
                    }
                }
            }
            let added = state.to_read.len() - before;
            let done = state.to_read.is_empty() && state.reading == 0;
            let awaited = state.waiting_for.as_deref() == Some(rel.as_str());
            state.read.insert(rel, listed);
            drop(state);
            // Wake only who has something to do.
            if added > 1 {
                work.notify_all();
            } else if added == 1 {
                work.notify_one();
            }
            if awaited || done {
                arrived.notify_one();
            }
        }
    };
    // The listing of `rel`, once a reader has it (it is read or on its way: a
    // directory is asked for only after its parent was read).
    let take = |rel: &str| -> Result<Listed<T>, SelectError> {
        let mut state = lock();
        loop {
            if let Some(listed) = state.read.remove(rel) {
                state.waiting_for = None;
                return listed;
            }
            state.waiting_for = Some(rel.to_owned());
            state = arrived.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    };
    /// Ends the walk however the handing on ends: the readers stop.
    struct Over<'a, T>(&'a std::sync::Mutex<WalkState<T>>, &'a std::sync::Condvar);
    impl<T> Drop for Over<'_, T> {
        fn drop(&mut self) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).over = true;
            self.1.notify_all();
        }
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(read_ahead);
        }
        let _over = Over(&state, &work);
        if !stream {
            let mut state = lock();
            while !(state.to_read.is_empty() && state.reading == 0) {
                state = arrived.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
        let mut stack = vec![(String::new(), take("")?.into_iter())];
        while let Some((rel, listed)) = stack.last_mut() {
            let Some((name, meta, extra, descend)) = listed.next() else {
                stack.pop();
                continue;
            };
            let child = join(rel, &name);
            if let Some(extra) = extra {
                emit(child.clone(), meta, extra)?;
            }
            if descend {
                let listed = take(&child)?;
                stack.push((child, listed.into_iter()));
            }
        }
        Ok(())
    })
}

/// fsutil's `FollowLinks`: the paths that `paths` (relative to `dir`) reach, each
/// symlink on the way (relative, absolute as if `dir` were `/`, or chained; a wildcard
/// component's matching symlinks too) kept with what it points to, sorted with
/// paths under another dropped. `None` when a path is the whole context.
fn follow_links(dir: &Path, paths: &[String]) -> Result<Option<Vec<String>>, SelectError> {
    let mut resolved = std::collections::BTreeSet::new();
    for path in paths {
        follow_path(dir, path, &mut resolved, 0)?;
    }
    let mut out: Vec<String> = Vec::new();
    for path in resolved {
        if path.is_empty() {
            return Ok(None);
        }
        if out
            .last()
            .is_some_and(|last| path.starts_with(&format!("{last}/")))
        {
            continue;
        }
        out.push(path);
    }
    Ok(Some(out))
}

/// Adds what `path` reaches to `resolved`, component by component (`""` is the root).
fn follow_path(
    dir: &Path,
    path: &str,
    resolved: &mut std::collections::BTreeSet<String>,
    depth: usize,
) -> Result<(), SelectError> {
    // A cycle of links ends where a path repeats; this bounds anything else.
    if depth > 255 {
        return Ok(());
    }
    let Some(cleaned) = clean_relative(path) else {
        return Ok(());
    };
    let components: Vec<String> = cleaned
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let mut current = String::new();
    for (i, component) in components.iter().enumerate() {
        current = if current.is_empty() {
            component.clone()
        } else {
            format!("{current}/{component}")
        };
        let rest = components[i + 1..].join("/");
        let targets = link_targets(dir, &current)?;
        if (rest.is_empty() || targets.is_some()) && resolved.contains(&current) {
            return Ok(());
        }
        if let Some(targets) = targets {
            resolved.insert(current);
            for target in targets {
                follow_path(dir, &format!("{target}/{rest}"), resolved, depth + 1)?;
            }
            return Ok(());
        }
    }
    resolved.insert(current);
    Ok(())
}

/// Where the symlink at `rel` points, as a path from the root (`/` being `dir`); for
/// a wildcard last component, the targets of the matching symlinks. `None` when
/// nothing there is a symlink.
fn link_targets(dir: &Path, rel: &str) -> Result<Option<Vec<String>>, SelectError> {
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    if name.contains(['*', '?', '[']) {
        let Ok(entries) = fs_err::read_dir(dir.join(parent)) else {
            return Ok(None);
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| crate::patterns::match_component(name, n))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for n in names {
            let matched = if parent.is_empty() {
                n
            } else {
                format!("{parent}/{n}")
            };
            out.extend(link_targets(dir, &matched)?.unwrap_or_default());
        }
        return Ok((!out.is_empty()).then_some(out));
    }
    let Ok(meta) = fs_err::symlink_metadata(dir.join(rel)) else {
        return Ok(None);
    };
    if !meta.file_type().is_symlink() {
        return Ok(None);
    }
    let link = fs_err::read_link(dir.join(rel))?
        .to_string_lossy()
        .into_owned();
    let target = if link.starts_with('/') {
        link
    } else {
        format!("/{parent}/{link}")
    };
    Ok(Some(vec![target]))
}
