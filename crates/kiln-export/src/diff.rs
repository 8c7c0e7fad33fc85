//! A layer's tar from its overlay upper directory, entry for entry as BuildKit writes it:
//! BuildKit's overlay differ (`util/overlay/overlay_linux.go`, `Changes`) decides what
//! changed, containerd's `archive.ChangeWriter` (`pkg/archive/tar.go`) turns each change
//! into tar headers, and [`crate::gotar`] encodes them as Go's `archive/tar` does.
//!
//! The differ walks the upper directory in Go's `filepath.Walk` order (names sorted
//! bytewise, a directory before what it holds) and compares each entry with the layers
//! below, merged as overlayfs merges them:
//! - a whiteout (char device 0/0) deletes what is below, and is dropped when nothing is;
//! - an entry that is below with the same type, mode, owner, device number and
//!   `security.capability`, and for a non-directory the same size and mtime (seconds;
//!   content or link target too when both have whole-second mtimes), is not recorded: a
//!   directory copied up because something under it changed, or a file copied up by a
//!   `chmod` to the same mode, leaves no entry of its own;
//! - an opaque directory that hides something below is compared with it whole
//!   (continuity's double-walking differ): whiteouts for what is gone, no opaque marker.
//!
//! The writer adds the parent directories of every entry it writes (from the upper
//! directory) that it has not written yet, keeps only the `security.capability`
//! attribute, skips sockets, writes a second name of an inode as a hardlink to the
//! first, and truncates times to seconds (then clamps them to `rewrite-timestamp`'s
//! epoch, which is what BuildKit's rewrite of the tar gives).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use fs_err as fs;

use crate::Error;
use crate::gotar::{self, Header};

const CAPABILITY: &str = "security.capability";

/// An overlay whiteout: a character device numbered 0/0.
fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// An opaque directory (overlayfs's `trusted.` or, unprivileged, `user.` attribute).
fn is_opaque(path: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|key| xattr(path, key).as_deref() == Some(b"y"))
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Some(buf);
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < 1 << 16 => {
                buf.resize(buf.len() * 4, 0);
            }
            Err(_) => return None,
        }
    }
}

fn sorted_names(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

fn join(rel: &[u8], name: &OsStr) -> Vec<u8> {
    let mut out = Vec::with_capacity(rel.len() + name.len() + 1);
    if !rel.is_empty() {
        out.extend_from_slice(rel);
        out.push(b'/');
    }
    out.extend_from_slice(name.as_bytes());
    out
}

/// A directory of the layers below, merged as overlayfs merges them: the directories
/// at its path in the layers that contribute, nearest first.
#[derive(Debug, Clone, Default)]
struct LowerDir {
    dirs: Vec<PathBuf>,
}

impl LowerDir {
    /// The root of `layers` (nearest first).
    fn root(layers: &[PathBuf]) -> Self {
        let mut dirs = Vec::new();
        for layer in layers {
            dirs.push(layer.clone());
            if is_opaque(layer) {
                break;
            }
        }
        Self { dirs }
    }

    /// `name` as the merged view shows it (`lstat`): the nearest layer's entry, unless
    /// that is a whiteout.
    fn lookup(&self, name: &OsStr) -> Option<(PathBuf, Metadata)> {
        for dir in &self.dirs {
            let path = dir.join(name);
            if let Ok(meta) = std::fs::symlink_metadata(&path) {
                return (!is_whiteout(&meta)).then_some((path, meta));
            }
        }
        None
    }

    /// The merged directory `name`: the nearest layer's, then each one below while they
    /// are directories too, down to the first opaque one.
    fn child(&self, name: &OsStr) -> Self {
        let mut dirs = Vec::new();
        for dir in &self.dirs {
            let path = dir.join(name);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    let opaque = is_opaque(&path);
                    dirs.push(path);
                    if opaque {
                        break;
                    }
                }
                // A whiteout or a non-directory hides everything below.
                Ok(_) => break,
                Err(_) => {}
            }
        }
        Self { dirs }
    }

    /// Every entry under this directory, in walk order (`rel` prefixed).
    fn walk(&self, rel: &[u8], out: &mut Vec<Entry>) -> io::Result<()> {
        let mut names = BTreeSet::new();
        for dir in &self.dirs {
            for name in sorted_names(dir)? {
                names.insert(name.into_vec());
            }
        }
        for name in names {
            let name = OsString::from_vec(name);
            let Some((path, meta)) = self.lookup(&name) else {
                continue;
            };
            let is_dir = meta.is_dir();
            out.push(Entry {
                rel: join(rel, &name),
                path,
                meta,
            });
            if is_dir {
                let rel = out.last().map(|e| e.rel.clone()).unwrap_or_default();
                self.child(&name).walk(&rel, out)?;
            }
        }
        Ok(())
    }
}

/// One path of a walk.
struct Entry {
    rel: Vec<u8>,
    path: PathBuf,
    meta: Metadata,
}

/// The upper directory `dir` as overlayfs shows it with nothing below: whiteouts hidden.
fn walk_upper_view(dir: &Path, rel: &[u8], out: &mut Vec<Entry>) -> io::Result<()> {
    for name in sorted_names(dir)? {
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path)?;
        if is_whiteout(&meta) {
            continue;
        }
        let is_dir = meta.is_dir();
        out.push(Entry {
            rel: join(rel, &name),
            path: path.clone(),
            meta,
        });
        if is_dir {
            let rel = out.last().map(|e| e.rel.clone()).unwrap_or_default();
            walk_upper_view(&path, &rel, out)?;
        }
    }
    Ok(())
}

/// Continuity's `directoryCompare`: paths compared with `/` as the lowest byte, which
/// is walk order.
fn directory_compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c };
    a.iter().map(|&c| key(c)).cmp(b.iter().map(|&c| key(c)))
}

/// BuildKit's `sameDirent` (continuity's `sameFile`): whether `upper` leaves `lower`
/// as it was.
fn same_dirent(lower: &Entry, upper: &Entry) -> io::Result<bool> {
    let (m1, m2) = (&lower.meta, &upper.meta);
    if m1.dev() == m2.dev() && m1.ino() == m2.ino() {
        return Ok(true);
    }
    if m1.mode() != m2.mode()
        || m1.uid() != m2.uid()
        || m1.gid() != m2.gid()
        || m1.rdev() != m2.rdev()
    {
        return Ok(false);
    }
    if xattr(&lower.path, CAPABILITY) != xattr(&upper.path, CAPABILITY) {
        return Ok(false);
    }
    if m1.is_dir() {
        return Ok(true);
    }
    if m1.size() != m2.size() || m1.mtime() != m2.mtime() {
        return Ok(false);
    }
    if m1.mtime_nsec() == 0 && m2.mtime_nsec() == 0 {
        if m1.file_type().is_symlink() {
            return Ok(fs::read_link(&lower.path)? == fs::read_link(&upper.path)?);
        }
        if m1.size() == 0 {
            return Ok(true);
        }
        return same_content(&lower.path, &upper.path);
    }
    Ok(m1.mtime_nsec() == m2.mtime_nsec())
}

fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut a, mut b) = (
        io::BufReader::new(fs::File::open(a)?),
        io::BufReader::new(fs::File::open(b)?),
    );
    let (mut x, mut y) = ([0u8; 32 * 1024], [0u8; 32 * 1024]);
    loop {
        let n = read_full(&mut a, &mut x)?;
        let m = read_full(&mut b, &mut y)?;
        if x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Continuity's change kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Modify,
    Unmodified,
}

/// containerd's `ChangeWriter`, writing into a [`gotar::Writer`].
struct ChangeWriter<W: Write> {
    tw: gotar::Writer<W>,
    /// The upper directory (BuildKit reads files and parents from its overlay view).
    source: PathBuf,
    clamp: Option<i64>,
    added_dirs: HashSet<Vec<u8>>,
    inode_src: HashMap<(u64, u64), Vec<u8>>,
    inode_refs: HashMap<(u64, u64), Vec<Vec<u8>>>,
}

impl<W: Write> ChangeWriter<W> {
    fn path(&self, rel: &[u8]) -> PathBuf {
        self.source.join(OsStr::from_bytes(rel))
    }

    fn mtime(&self, secs: i64) -> i64 {
        match self.clamp {
            Some(clamp) if secs > clamp => clamp,
            _ => secs,
        }
    }

    /// A deleted path: its whiteout, dated 1970 as containerd 2 does.
    fn delete(&mut self, rel: &[u8]) -> Result<(), Error> {
        let split = rel.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
        let mut name = rel[..split].to_vec();
        name.extend_from_slice(b".wh.");
        name.extend_from_slice(&rel[split..]);
        let header = Header {
            name,
            typeflag: gotar::TYPE_REG,
            mtime: self.mtime(0),
            ..Header::default()
        };
        self.include_parents(&header)?;
        self.tw.write_header(&header)?;
        Ok(())
    }

    /// An added, modified or (hardlinked) unmodified path.
    fn change(&mut self, kind: Kind, rel: &[u8], meta: &Metadata) -> Result<(), Error> {
        let file_type = meta.file_type();
        if file_type.is_socket() {
            return Ok(());
        }
        let source = self.path(rel);
        let mut header = Header {
            name: rel.to_vec(),
            mode: i64::from(meta.mode() & 0o7777),
            uid: i64::from(meta.uid()),
            gid: i64::from(meta.gid()),
            mtime: self.mtime(meta.mtime()),
            ..Header::default()
        };
        if file_type.is_file() {
            header.typeflag = gotar::TYPE_REG;
            header.size = meta.len() as i64;
        } else if file_type.is_dir() {
            header.typeflag = gotar::TYPE_DIR;
            header.name.push(b'/');
        } else if file_type.is_symlink() {
            header.typeflag = gotar::TYPE_SYMLINK;
            header.linkname = fs::read_link(&source)?.into_os_string().into_vec();
        } else if file_type.is_char_device() || file_type.is_block_device() {
            header.typeflag = if file_type.is_char_device() {
                gotar::TYPE_CHAR
            } else {
                gotar::TYPE_BLOCK
            };
            header.devmajor = i64::from(rustix::fs::major(meta.rdev()));
            header.devminor = i64::from(rustix::fs::minor(meta.rdev()));
        } else if file_type.is_fifo() {
            header.typeflag = gotar::TYPE_FIFO;
        } else {
            return Err(Error::Unsupported(format!(
                "{}: unknown file type",
                source.display()
            )));
        }

        let mut additional_links = Vec::new();
        let inode = (meta.dev(), meta.ino());
        if !meta.is_dir() && meta.nlink() > 1 {
            if let Some(first) = self.inode_src.get(&inode) {
                header.typeflag = gotar::TYPE_LINK;
                header.linkname = first.clone();
                header.size = 0;
            } else {
                if kind == Kind::Unmodified {
                    self.inode_refs
                        .entry(inode)
                        .or_default()
                        .push(header.name.clone());
                    return Ok(());
                }
                self.inode_src.insert(inode, header.name.clone());
                additional_links = self.inode_refs.remove(&inode).unwrap_or_default();
            }
        } else if kind == Kind::Unmodified {
            return Ok(());
        }

        if let Some(capability) = xattr(&source, CAPABILITY).filter(|c| !c.is_empty()) {
            header
                .pax_records
                .insert(format!("SCHILY.xattr.{CAPABILITY}"), capability);
        }
        self.include_parents(&header)?;
        self.tw.write_header(&header)?;
        if header.typeflag == gotar::TYPE_REG && header.size > 0 {
            let mut file = fs::File::open(&source)?;
            self.tw.copy_data(&mut file).map_err(|e| {
                Error::Io(io::Error::new(
                    e.kind(),
                    format!("{}: {e}", source.display()),
                ))
            })?;
        }
        let first = header.name.clone();
        for extra in additional_links {
            header.name = extra;
            header.typeflag = gotar::TYPE_LINK;
            header.linkname = first.clone();
            header.size = 0;
            self.include_parents(&header)?;
            self.tw.write_header(&header)?;
        }
        Ok(())
    }

    /// The parent directory of `header`, unless written already (or the root).
    fn include_parents(&mut self, header: &Header) -> Result<(), Error> {
        let end = header.name.len() - header.name.iter().rev().take_while(|&&c| c == b'/').count();
        let name = &header.name[..end];
        if let Some(split) = name.iter().rposition(|&c| c == b'/') {
            let parent = name[..split].to_vec();
            if !parent.is_empty() && !self.added_dirs.contains(&parent) {
                self.added_dirs.insert(parent.clone());
                let meta = fs::metadata(self.path(&parent))?;
                self.change(Kind::Modify, &parent, &meta)?;
            }
        }
        if header.typeflag == gotar::TYPE_DIR {
            self.added_dirs.insert(name.to_vec());
        }
        Ok(())
    }

    /// BuildKit's `Changes` over the upper directory `dir` (at `rel`), with `lower` the
    /// same directory in the layers below.
    fn walk(&mut self, dir: &Path, rel: &[u8], lower: &LowerDir) -> Result<(), Error> {
        for name in sorted_names(dir)? {
            let upper = Entry {
                rel: join(rel, &name),
                path: dir.join(&name),
                meta: fs::symlink_metadata(dir.join(&name))?,
            };
            let base = lower.lookup(&name).map(|(path, meta)| Entry {
                rel: upper.rel.clone(),
                path,
                meta,
            });
            if is_whiteout(&upper.meta) {
                if base.is_some() {
                    self.delete(&upper.rel)?;
                }
                continue;
            }
            let (kind, same) = match &base {
                Some(base) => (Kind::Modify, same_dirent(base, &upper)?),
                None => (Kind::Add, false),
            };
            if !same {
                self.change(kind, &upper.rel, &upper.meta)?;
            }
            if upper.meta.is_dir() {
                let below = lower.child(&name);
                if base.is_some() && is_opaque(&upper.path) {
                    self.double_walk(&upper, &below)?;
                } else {
                    self.walk(&upper.path, &upper.rel, &below)?;
                }
            }
        }
        Ok(())
    }

    /// Continuity's `doubleWalkDiff` of an opaque directory against what it hides.
    fn double_walk(&mut self, dir: &Entry, lower: &LowerDir) -> Result<(), Error> {
        let mut base = Vec::new();
        lower.walk(b"", &mut base)?;
        let mut upper = Vec::new();
        walk_upper_view(&dir.path, b"", &mut upper)?;
        let at = |e: &Entry| {
            let mut rel = dir.rel.clone();
            rel.push(b'/');
            rel.extend_from_slice(&e.rel);
            rel
        };
        let (mut i, mut j) = (0, 0);
        let mut rmdir: Option<Vec<u8>> = None;
        while i < base.len() || j < upper.len() {
            let order = match (base.get(i), upper.get(j)) {
                (Some(a), Some(b)) => directory_compare(&a.rel, &b.rel),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Greater => {
                    rmdir = None;
                    let entry = &upper[j];
                    j += 1;
                    self.change(Kind::Add, &at(entry), &entry.meta)?;
                }
                std::cmp::Ordering::Less => {
                    let entry = &base[i];
                    i += 1;
                    if rmdir.as_ref().is_some_and(|r| entry.rel.starts_with(r)) {
                        continue;
                    }
                    rmdir = entry.meta.is_dir().then(|| {
                        let mut r = entry.rel.clone();
                        r.push(b'/');
                        r
                    });
                    self.delete(&at(entry))?;
                }
                std::cmp::Ordering::Equal => {
                    let (a, b) = (&base[i], &upper[j]);
                    i += 1;
                    j += 1;
                    let same = same_dirent(a, b)?;
                    rmdir = (a.meta.is_dir() && !b.meta.is_dir()).then(|| {
                        let mut r = a.rel.clone();
                        r.push(b'/');
                        r
                    });
                    let kind = if same {
                        if b.meta.is_dir() || b.meta.nlink() <= 1 {
                            continue;
                        }
                        Kind::Unmodified
                    } else {
                        Kind::Modify
                    };
                    self.change(kind, &at(b), &b.meta)?;
                }
            }
        }
        Ok(())
    }
}

/// Writes the layer diff of the upper directory `dir` over `lowers` (nearest first) as
/// a tar into `out`. `clamp`: no time is later than this (`rewrite-timestamp`).
pub(crate) fn write_diff(
    dir: &Path,
    lowers: &[PathBuf],
    clamp: Option<i64>,
    out: impl Write,
) -> Result<(), Error> {
    let mut writer = ChangeWriter {
        tw: gotar::Writer::new(out),
        source: dir.to_path_buf(),
        clamp,
        added_dirs: HashSet::new(),
        inode_src: HashMap::new(),
        inode_refs: HashMap::new(),
    };
    writer.walk(dir, b"", &LowerDir::root(lowers))?;
    writer.tw.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    const EPOCH: i64 = 1_700_000_000;

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    fn times(path: &Path, secs: i64, nanos: i64) {
        kiln_store::tree::set_times(path, secs, nanos).unwrap();
    }

    fn dir(path: &Path) {
        fs::create_dir_all(path).unwrap();
        fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn file(path: &Path, content: &str, mode: u32) {
        fs::write(path, content).unwrap();
        fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn whiteout(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
    }

    fn tar_of(upper: &Path, lowers: &[PathBuf], clamp: Option<i64>) -> Vec<u8> {
        let mut out = Vec::new();
        write_diff(upper, lowers, clamp, &mut out).unwrap();
        out
    }

    fn names(tar: &[u8]) -> Vec<String> {
        tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                String::from_utf8_lossy(&e.path_bytes()).into_owned()
            })
            .collect()
    }

    /// The upper directory overlayfs leaves after the second RUN of
    /// `testdata/README.md`'s Dockerfile, over the layers below it, gives the layer
    /// BuildKit wrote for that RUN, byte for byte.
    #[test]
    fn run_layer_is_buildkit_s() {
        if !is_root() {
            eprintln!("skipped: whiteouts and opaque directories need root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (base, run1, upper) = (
            tmp.path().join("base"),
            tmp.path().join("run1"),
            tmp.path().join("upper"),
        );
        // The base image's /etc.
        let passwd =
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
        let group = "root:x:0:\nnogroup:x:65534:\n";
        dir(&base.join("etc"));
        file(&base.join("etc/passwd"), passwd, 0o644);
        file(&base.join("etc/group"), group, 0o644);
        for p in ["etc/passwd", "etc/group", "etc"] {
            times(&base.join(p), 1_577_836_800, 0);
        }
        // The first RUN's layer.
        dir(&run1.join("a/b/c"));
        file(&run1.join("a/b/c/f"), "1\n", 0o644);
        fs::hard_link(run1.join("a/b/c/f"), run1.join("a/hl")).unwrap();
        symlink("../x", run1.join("a/sym")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            run1.join("a/fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        file(&run1.join("a/old"), "", 0o644);
        times(&run1.join("a/old"), 1_500_000_000, 0);
        file(&run1.join("a/keep"), "keep\n", 0o644);
        times(&run1.join("a/keep"), 1_790_000_000, 123_456_789);
        // The second RUN: /a/b removed and made again (opaque), /a/hl removed, /a/old
        // and /etc/passwd copied up by chmod (the latter to its own mode), /a/keep
        // copied up by a hardlink to it, /etc/group appended to.
        dir(&upper.join("a/b"));
        rustix::fs::lsetxattr(
            upper.join("a/b"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        file(&upper.join("a/b/new"), "2\n", 0o644);
        whiteout(&upper.join("a/hl"));
        file(&upper.join("a/old"), "", 0o4755);
        times(&upper.join("a/old"), 1_500_000_000, 0);
        file(&upper.join("a/keep"), "keep\n", 0o644);
        times(&upper.join("a/keep"), 1_790_000_000, 123_456_789);
        fs::hard_link(upper.join("a/keep"), upper.join("a/keep2")).unwrap();
        dir(&upper.join("etc"));
        file(&upper.join("etc/passwd"), passwd, 0o644);
        times(&upper.join("etc/passwd"), 1_577_836_800, 0);
        file(&upper.join("etc/group"), &format!("{group}g\n"), 0o644);
        dir(&upper.join("n/m"));
        symlink("/x", upper.join("n/m/s")).unwrap();

        let ours = tar_of(&upper, &[run1, base], Some(EPOCH));
        let theirs = include_bytes!("testdata/buildkit-run-layer.tar");
        assert_eq!(
            names(&ours),
            names(theirs),
            "entries differ from BuildKit's"
        );
        for (i, (a, b)) in ours.chunks(512).zip(theirs.chunks(512)).enumerate() {
            assert_eq!(a, b, "block {i} differs");
        }
        assert_eq!(ours.len(), theirs.len());
    }

    /// Walk order puts a directory's content right after it (`a/`, `a/x`, `a.txt`); a
    /// whiteout of nothing below is dropped; a directory copied up with another mode is
    /// recorded, one with the same mode only as the parent of what changed in it.
    #[test]
    fn walk_order_and_what_is_recorded() {
        if !is_root() {
            eprintln!("skipped: whiteouts need root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (lower, upper) = (tmp.path().join("lower"), tmp.path().join("upper"));
        for d in ["same", "same-empty", "other"] {
            dir(&lower.join(d));
            dir(&upper.join(d));
        }
        fs::set_permissions(upper.join("other"), std::fs::Permissions::from_mode(0o700)).unwrap();
        file(&upper.join("same/new"), "", 0o644);
        dir(&upper.join("a"));
        file(&upper.join("a/x"), "", 0o644);
        file(&upper.join("a.txt"), "", 0o644);
        whiteout(&upper.join("never-there"));
        let tar = tar_of(&upper, &[lower], None);
        assert_eq!(
            names(&tar),
            ["a/", "a/x", "a.txt", "other/", "same/", "same/new"]
        );
    }

    /// `security.capability` is the one attribute kept (as a PAX record), and a
    /// directory copied up with other capabilities is recorded.
    #[test]
    fn capabilities_are_kept() {
        if !is_root() {
            eprintln!("skipped: capabilities need root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let upper = tmp.path().join("upper");
        dir(&upper);
        file(&upper.join("ping"), "", 0o755);
        let mut caps = vec![1u8, 0, 0, 2, 0, 0x20];
        caps.resize(20, 0);
        rustix::fs::lsetxattr(
            upper.join("ping"),
            CAPABILITY,
            &caps,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let _ = rustix::fs::lsetxattr(
            upper.join("ping"),
            "user.other",
            b"x",
            rustix::fs::XattrFlags::empty(),
        );
        let tar = tar_of(&upper, &[], None);
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        let records: Vec<(String, Vec<u8>)> = entry
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                (r.key().unwrap().to_owned(), r.value_bytes().to_vec())
            })
            .collect();
        assert_eq!(
            records,
            [("SCHILY.xattr.security.capability".to_owned(), caps)]
        );
    }
}

/// Helpers other modules' tests share.
#[cfg(test)]
pub(crate) mod tests_support {
    use std::path::Path;

    /// Sets a path's times to `secs` (whole seconds).
    pub(crate) fn set_mtime(path: &Path, secs: i64) {
        kiln_store::tree::set_times(path, secs, 0).unwrap();
    }
}
