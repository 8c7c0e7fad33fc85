//! Content checksums of selected paths of a result, for cache keys that depend only on
//! what an op reads, computed as BuildKit v0.24's `cache/contenthash` computes them so
//! that the keys match BuildKit's: an entry's digest is the sha256 of its tarsum-v1
//! header (type, permission bits, owner, size, link target, device; no name, no times)
//! followed by a file's bytes; a directory's covers its own header and its entries'
//! names and digests. Symlinks are followed inside the result's root as a process
//! chrooted there would.
//!
//! A result is read through a [`Tree`]: a loaded context has an index of every entry
//! written when it was loaded (digests known from the context's own checksum pass, so
//! nothing is read again); any other result is mounted and walked. A checksum is
//! remembered by the result's key and the selectors, so a rebuild asks for none.

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use fs_err as fs;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use kiln_solver::cache_key;

use crate::ops::file::Patterns;
use crate::{Error, Ref, Worker, sha256_hex};

/// Paths an op reads from one input, as BuildKit's `opsutils.Selector`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Selector {
    pub(crate) path: String,
    /// `path` has wildcards to expand.
    pub(crate) wildcard: bool,
    /// A symlink at `path` (or at a wildcard's match) counts as what it points to.
    pub(crate) follow_links: bool,
    /// Copy filters (`.dockerignore` syntax) under the selected path.
    pub(crate) include: Vec<String>,
    pub(crate) exclude: Vec<String>,
}

impl Selector {
    pub(crate) fn follow(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            follow_links: true,
            ..Self::default()
        }
    }

    pub(crate) fn has_wildcard_or_filters(&self) -> bool {
        self.wildcard || !self.include.is_empty() || !self.exclude.is_empty()
    }
}

/// What a checksum takes of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// `f` file, `d` directory, `l` symlink, `c`/`b` device, `p` fifo, `s` socket.
    pub(crate) kind: char,
    /// Permission bits (`mode & 0o7777`).
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) link: String,
    /// A device's number.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) rdev: u64,
    /// A regular file's size.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) size: u64,
    /// A file's digest (header and bytes, `sha256:…`); for a directory, a header
    /// digest that stands for its own (a loaded context's root).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) digest: String,
    /// The extended attributes the header counts ([`counted_xattrs`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) xattrs: Vec<(String, Vec<u8>)>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Record {
    /// The record of an entry from its metadata (a file's size and digest and a link's
    /// target are filled in by the caller).
    pub(crate) fn from_mode(mode: u32, uid: u32, gid: u32, rdev: u64) -> Self {
        use rustix::fs::FileType;
        let kind = match FileType::from_raw_mode(mode) {
            FileType::RegularFile => 'f',
            FileType::Directory => 'd',
            FileType::Symlink => 'l',
            FileType::CharacterDevice => 'c',
            FileType::BlockDevice => 'b',
            FileType::Fifo => 'p',
            _ => 's',
        };
        Self {
            kind,
            mode: mode & 0o7777,
            uid,
            gid,
            size: 0,
            link: String::new(),
            rdev: if matches!(kind, 'c' | 'b') { rdev } else { 0 },
            digest: String::new(),
            xattrs: Vec::new(),
        }
    }

    /// The entry's tar header as BuildKit's `WriteV1TarsumHeaders` writes it for Go's
    /// `tar.FileInfoHeader` of the entry (a socket counts as an empty file).
    pub(crate) fn tar_header(&self) -> Vec<u8> {
        let typeflag = match self.kind {
            'd' => '5',
            'l' => '2',
            'c' => '3',
            'b' => '4',
            'p' => '6',
            _ => '0',
        };
        let size = if self.kind == 'f' { self.size } else { 0 };
        // Linux's encoding of device numbers (glibc's `major`/`minor`).
        let major = ((self.rdev >> 8) & 0xfff) | ((self.rdev >> 32) & !0xfff);
        let minor = (self.rdev & 0xff) | ((self.rdev >> 12) & !0xff);
        let mut header = format!(
            "namemode{}uid{}gid{}size{size}typeflag{typeflag}linkname{}unamegnamedevmajor{major}devminor{minor}",
            self.mode, self.uid, self.gid, self.link
        )
        .into_bytes();
        // tarsum v1's extended attributes, after the fixed fields: name, then value.
        for (name, value) in &self.xattrs {
            header.extend_from_slice(name.as_bytes());
            header.extend_from_slice(value);
        }
        header
    }

    /// The entry's own digest: a file's covers its bytes (filled in when recorded); a
    /// directory's is its header's unless a context root's fixed one is recorded.
    fn own_digest(&self) -> String {
        if self.digest.is_empty() {
            cache_key::digest_of(&self.tar_header())
        } else {
            self.digest.clone()
        }
    }
}

/// The extended attributes of `path` a checksum counts, as BuildKit's does: those
/// tarsum v1 keeps (`security.capability`, nothing else under `security.` or
/// `system.`: labels and ACLs are not content), sorted by name.
pub(crate) fn counted_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let counted = |name: &str| {
        name == "security.capability"
            || !(name.starts_with("security.") || name.starts_with("system."))
    };
    Ok(kiln_oci::xattr::list(path)?
        .into_iter()
        .filter(|(name, _)| counted(name))
        .collect())
}

/// The digest a loaded context's root directory has in BuildKit: its header is never
/// sent, and stands as the digest of nothing.
pub(crate) fn context_root_digest() -> String {
    cache_key::digest_of(b"")
}

/// A read-only view of a result's file system; paths are relative, `""` is the root.
pub(crate) trait Tree {
    /// The entry at `rel` (not following a symlink there); `None` if there is none.
    fn record(&self, rel: &str) -> Result<Option<Record>, Error>;
    /// A directory's entry names, sorted.
    fn children(&self, rel: &str) -> Result<Vec<String>, Error>;
}

/// Every entry of a loaded context, by relative path (the root is `""`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Index {
    entries: BTreeMap<String, Record>,
    #[serde(skip)]
    children: HashMap<String, Vec<String>>,
}

/// The file next to a context layer that holds its index.
const INDEX_FILE: &str = "content-index-v2.json";

impl Index {
    pub(crate) fn new(entries: BTreeMap<String, Record>) -> Self {
        let mut index = Self {
            entries,
            children: HashMap::new(),
        };
        index.link_children();
        index
    }

    fn link_children(&mut self) {
        for rel in self.entries.keys().filter(|k| !k.is_empty()) {
            let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
            self.children
                .entry(parent.to_owned())
                .or_default()
                .push(name.to_owned());
        }
        for names in self.children.values_mut() {
            names.sort();
        }
    }

    /// Writes the index of layer `layer_root`'s content (temp file, then rename).
    pub(crate) fn save(&self, layer_root: &Path) -> Result<(), Error> {
        let bytes = serde_json::to_vec(&self.entries)
            .map_err(|e| Error::Unsupported(format!("content index: {e}")))?;
        let temp = layer_root.join(format!("{INDEX_FILE}.tmp"));
        fs::write(&temp, bytes)?;
        fs::rename(&temp, layer_root.join(INDEX_FILE))?;
        Ok(())
    }

    pub(crate) fn load(layer_root: &Path) -> Option<Self> {
        let bytes = fs::read(layer_root.join(INDEX_FILE)).ok()?;
        let entries = serde_json::from_slice(&bytes).ok()?;
        Some(Self::new(entries))
    }
}

impl Tree for Index {
    fn record(&self, rel: &str) -> Result<Option<Record>, Error> {
        Ok(self.entries.get(rel).cloned())
    }

    fn children(&self, rel: &str) -> Result<Vec<String>, Error> {
        Ok(self.children.get(rel).cloned().unwrap_or_default())
    }
}

/// A mounted result, read from the file system (files are read to digest them).
struct Mounted<'a> {
    root: &'a Path,
}

impl Tree for Mounted<'_> {
    fn record(&self, rel: &str) -> Result<Option<Record>, Error> {
        let path = self.root.join(rel);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return Ok(None);
        };
        let mut record = Record::from_mode(meta.mode(), meta.uid(), meta.gid(), meta.rdev());
        record.xattrs = counted_xattrs(&path)?;
        match record.kind {
            'l' => record.link = fs::read_link(&path)?.to_string_lossy().into_owned(),
            'f' => {
                record.size = meta.len();
                record.digest = file_digest(&path, &record.tar_header())?;
            }
            _ => {}
        }
        Ok(Some(record))
    }

    fn children(&self, rel: &str) -> Result<Vec<String>, Error> {
        Ok(kiln_store::tree::sorted_names(&self.root.join(rel))?
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }
}

/// A file's digest: the sha256 of its tar `header` and then its bytes, as `sha256:…`.
pub(crate) fn file_digest(path: &Path, header: &[u8]) -> Result<String, Error> {
    Ok(format!(
        "sha256:{}",
        hex::encode(file_sha256(path, header)?)
    ))
}

/// The sha256 of `header` and then the file's bytes, read whole.
pub(crate) fn file_sha256(path: &Path, header: &[u8]) -> Result<[u8; 32], Error> {
    let mut hasher = Sha256::new();
    hasher.update(header);
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Resolves `path` inside the tree as a chrooted process would: `..` stops at the
/// root, symlinks are followed inside it (the last component only with
/// `follow_last`). Returns the relative path.
fn resolve(tree: &dyn Tree, path: &str, follow_last: bool) -> Result<String, Error> {
    let mut resolved: Vec<String> = Vec::new();
    let mut pending: Vec<String> = components_reversed(path);
    let mut links = 0;
    while let Some(component) = pending.pop() {
        match component.as_str() {
            "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        resolved.push(component);
        let is_last = pending.is_empty();
        if is_last && !follow_last {
            break;
        }
        if let Some(record) = tree.record(&resolved.join("/"))? {
            if record.kind == 'l' {
                links += 1;
                if links > 40 {
                    return Err(Error::Source(format!(
                        "too many levels of symbolic links: {path}"
                    )));
                }
                resolved.pop();
                if record.link.starts_with('/') {
                    resolved.clear();
                }
                pending.extend(components_reversed(&record.link));
            }
        }
    }
    Ok(resolved.join("/"))
}

fn components_reversed(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .rev()
        .collect()
}

/// The digest of the entry at `rel`: a directory's covers its header and, in name
/// order, each entry's name and digest (links below it are not followed).
fn entry_digest(tree: &dyn Tree, rel: &str) -> Result<String, Error> {
    let Some(record) = tree.record(rel)? else {
        // BuildKit fails here; the op reports the missing path itself.
        return Ok(cache_key::digest_of(format!("missing {rel}").as_bytes()));
    };
    if record.kind != 'd' {
        return Ok(record.own_digest());
    }
    let mut hasher = Sha256::new();
    hasher.update([0]);
    hasher.update(record.own_digest().as_bytes());
    for name in tree.children(rel)? {
        hasher.update([0]);
        hasher.update(name.as_bytes());
        hasher.update(entry_digest(tree, &join(rel, &name))?.as_bytes());
    }
    Ok(format!("sha256:{}", kiln_store::sha256_hex(hasher)))
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

/// One step of BuildKit's walk of a subtree in key order: a directory appears as its
/// record (standing for all it holds), then as its header, then its entries.
#[derive(PartialEq, Eq)]
enum Step {
    Dir,
    Header,
    Entry,
}

/// A walk's steps: the step, the entry's path in the tree and the path it is shown
/// (and matched) under.
type Walk = Vec<(Step, String, String)>;

/// The subtree at `rel` in key order, shown under `shown`.
fn walk(tree: &dyn Tree, rel: &str, shown: &str, out: &mut Walk) -> Result<(), Error> {
    match tree.record(rel)? {
        Some(record) if record.kind == 'd' => {
            out.push((Step::Dir, rel.to_owned(), shown.to_owned()));
            walk_below(tree, rel, shown, out)
        }
        Some(_) => {
            out.push((Step::Entry, rel.to_owned(), shown.to_owned()));
            Ok(())
        }
        None => Ok(()),
    }
}

/// A directory's header and then its entries' subtrees.
fn walk_below(tree: &dyn Tree, rel: &str, shown: &str, out: &mut Walk) -> Result<(), Error> {
    out.push((Step::Header, rel.to_owned(), shown.to_owned()));
    for name in tree.children(rel)? {
        walk(tree, &join(rel, &name), &format!("{shown}/{name}"), out)?;
    }
    Ok(())
}

/// An entry a filtered selection keeps: where it is shown, its digest, whether it is
/// a symlink (followed at the end when the selector follows links).
struct Kept {
    shown: String,
    digest: String,
    link: bool,
}

/// BuildKit's `includedPaths` and `Checksum` for a selector with wildcards or filters:
/// the files and directory headers the selection keeps, hashed with their base names.
fn filtered_digest(tree: &dyn Tree, selector: &Selector) -> Result<String, Error> {
    let patterns = Patterns::from_lists(&selector.include, &selector.exclude);
    let ends_in_separator = selector.path.ends_with('/');
    let p = kiln_oci::go::clean_path(&format!("/{}", selector.path));
    let p = if p == "/" { String::new() } else { p };
    let mut steps = Walk::new();
    if selector.wildcard {
        let (prefix, rest) = split_wildcards(&p);
        if prefix == "/" || prefix.is_empty() {
            walk(tree, "", "", &mut steps)?;
        } else {
            let resolved = resolve(tree, &prefix, !rest.is_empty())?;
            if tree.record(&resolved)?.is_some_and(|r| r.kind == 'd') {
                walk_below(tree, &resolved, &prefix, &mut steps)?;
            }
        }
    } else {
        let resolved = resolve(tree, &p, false)?;
        if tree.record(&resolved)?.is_some_and(|r| r.kind == 'd') {
            walk_below(tree, &resolved, &p, &mut steps)?;
        }
    }
    let mut kept: Vec<Kept> = Vec::new();
    // The directory headers above the current step, and whether each is kept yet.
    let mut headers: Vec<(Kept, bool)> = Vec::new();
    let mut last_matched = String::new();
    for (step, rel, shown) in steps {
        while headers
            .last()
            .is_some_and(|(dir, _)| !shown.starts_with(&format!("{}/", dir.shown)))
        {
            headers.pop();
        }
        let is_header = step == Step::Header;
        if is_header && shown == p && ends_in_separator {
            continue;
        }
        let candidate = if selector.wildcard {
            if !p.is_empty()
                && (last_matched.is_empty() || !shown.starts_with(&format!("{last_matched}/")))
            {
                if !path_matches(&p, &shown) {
                    continue;
                }
                last_matched.clone_from(&shown);
            }
            below(&shown, &last_matched)
        } else {
            if !format!("{shown}/").starts_with(&format!("{p}/")) {
                break;
            }
            below(&shown, &p)
        };
        let keep = patterns.is_empty() || patterns.allows(&candidate);
        // A directory's record is never kept: its header and entries are.
        if step == Step::Dir || (!keep && !is_header) {
            continue;
        }
        let Some(record) = tree.record(&rel)? else {
            continue;
        };
        let entry = Kept {
            shown,
            digest: record.own_digest(),
            link: record.kind == 'l',
        };
        if keep {
            for (header, header_kept) in &mut headers {
                if !*header_kept {
                    kept.push(Kept {
                        shown: header.shown.clone(),
                        digest: header.digest.clone(),
                        link: false,
                    });
                    *header_kept = true;
                }
            }
        }
        if is_header {
            if keep {
                kept.push(Kept {
                    shown: entry.shown.clone(),
                    digest: entry.digest.clone(),
                    link: false,
                });
            }
            headers.push((entry, keep));
        } else {
            kept.push(entry);
        }
    }
    if selector.follow_links {
        for entry in kept.iter_mut().filter(|e| e.link) {
            entry.digest = entry_digest(tree, &resolve(tree, &entry.shown, true)?)?;
        }
    }
    let base = |path: &str| path.rsplit('/').next().unwrap_or(path).to_owned();
    match kept.as_slice() {
        [] => Ok(cache_key::digest_of(b"")),
        [only] if base(&only.shown) == base(&p) => Ok(only.digest.clone()),
        _ => {
            let mut hasher = Sha256::new();
            for (i, entry) in kept.iter().enumerate() {
                if i != 0 {
                    hasher.update([0]);
                }
                hasher.update(base(&entry.shown).as_bytes());
                hasher.update(entry.digest.as_bytes());
            }
            Ok(format!("sha256:{}", kiln_store::sha256_hex(hasher)))
        }
    }
}

/// `path` relative to `dir` (`""` for `dir` itself), as BuildKit's candidate paths.
fn below(path: &str, dir: &str) -> String {
    format!("{path}/")
        .strip_prefix(&format!("{dir}/"))
        .unwrap_or("")
        .trim_end_matches('/')
        .to_owned()
}

/// BuildKit's `splitWildcards`: the components before the first with a wildcard, and
/// the rest.
fn split_wildcards(path: &str) -> (String, String) {
    let mut prefix = Vec::new();
    let mut rest = Vec::new();
    for part in path.split('/') {
        let part = if part.is_empty() { "/" } else { part };
        if rest.is_empty() && !crate::cache_map::contains_wildcards(part) {
            prefix.push(part);
        } else {
            rest.push(part);
        }
    }
    let join = |parts: &[&str]| {
        if parts.is_empty() {
            String::new()
        } else {
            kiln_oci::go::clean_path(&parts.join("/"))
        }
    };
    (join(&prefix), join(&rest))
}

/// Go's `path.Match` of a whole path, component by component.
fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(&path)
            .all(|(p, n)| crate::fsutil::match_component(p, n))
}

fn selector_digest(tree: &dyn Tree, selector: &Selector) -> Result<String, Error> {
    if selector.has_wildcard_or_filters() {
        return filtered_digest(tree, selector);
    }
    let rel = resolve(tree, &selector.path, selector.follow_links)?;
    entry_digest(tree, &rel)
}

/// The record digest of what `selectors` select in `tree` (BuildKit's slow cache key;
/// no selector selects the whole tree).
pub(crate) fn checksum(tree: &dyn Tree, selectors: &[Selector]) -> Result<String, Error> {
    let whole = [Selector {
        path: "/".to_owned(),
        ..Selector::default()
    }];
    let selectors = if selectors.is_empty() {
        &whole[..]
    } else {
        selectors
    };
    let digests = selectors
        .iter()
        .map(|s| selector_digest(tree, s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(cache_key::content_key(&digests))
}

/// Where checksums of results are remembered: by result key and selectors.
const CHECKSUMS_TABLE: &str = "content-checksums-v2";

impl Worker {
    /// The checksum of what `selectors` select in the result `input`.
    pub(crate) fn content_checksum(
        &self,
        input: &Ref,
        selectors: &[Selector],
    ) -> Result<String, Error> {
        let selection = serde_json::to_vec(selectors)
            .map_err(|e| Error::Unsupported(format!("selectors: {e}")))?;
        let memo = sha256_hex(&[input.key.as_bytes(), &selection]);
        if !input.key.is_empty() {
            if let Some(known) = self.db.get(CHECKSUMS_TABLE, &memo)? {
                if let Ok(known) = String::from_utf8(known) {
                    return Ok(known);
                }
            }
        }
        let digest = match input.snapshot() {
            None => checksum(&Index::default(), selectors)?,
            Some(snapshot) => {
                let index = match snapshot.chain.as_slice() {
                    [layer] => Index::load(&self.snapshots.layer_root(*layer)),
                    _ => None,
                };
                match index {
                    Some(index) => checksum(&index, selectors)?,
                    None => {
                        let mount = self.snapshots.mount_readonly(&snapshot)?;
                        let root: PathBuf = mount.path().to_path_buf();
                        checksum(&Mounted { root: &root }, selectors)?
                    }
                }
            }
        };
        if !input.key.is_empty() {
            self.db.put(CHECKSUMS_TABLE, &memo, digest.as_bytes())?;
        }
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("app/sub")).unwrap();
        fs::create_dir_all(root.join("docs")).unwrap();
        fs::write(root.join("app/main.c"), "int main;").unwrap();
        fs::write(root.join("app/sub/x.txt"), "x").unwrap();
        fs::write(root.join("app/notes.md"), "notes").unwrap();
        fs::write(root.join("docs/readme.txt"), "read me").unwrap();
        symlink("app", root.join("link")).unwrap();
        symlink("/app/sub/../main.c", root.join("abs")).unwrap();
        dir
    }

    fn sum(root: &Path, selectors: &[Selector]) -> String {
        checksum(&Mounted { root }, selectors).expect("checksum")
    }

    #[test]
    fn only_the_selected_paths_count() {
        let dir = tree();
        let app = [Selector::follow("/app/")];
        let before = sum(dir.path(), &app);
        let whole = sum(dir.path(), &[Selector::follow("/")]);
        fs::write(dir.path().join("docs/readme.txt"), "changed").unwrap();
        assert_eq!(sum(dir.path(), &app), before);
        assert_ne!(sum(dir.path(), &[Selector::follow("/")]), whole);
        fs::write(dir.path().join("app/sub/x.txt"), "y").unwrap();
        assert_ne!(sum(dir.path(), &app), before);
    }

    #[test]
    fn a_directory_is_its_header_and_its_entries() {
        let dir = tree();
        let app = [Selector::follow("/app")];
        let before = sum(dir.path(), &app);
        crate::fsutil::set_times(&dir.path().join("app/sub"), 12345, 0).unwrap();
        assert_eq!(sum(dir.path(), &app), before);
        // BuildKit hashes a directory's header: its mode counts.
        fs::set_permissions(
            dir.path().join("app/sub"),
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
        )
        .unwrap();
        let chmodded = sum(dir.path(), &app);
        assert_ne!(chmodded, before);
        fs::create_dir(dir.path().join("app/empty")).unwrap();
        assert_ne!(sum(dir.path(), &app), chmodded);
    }

    #[test]
    fn times_do_not_count_but_modes_do() {
        let dir = tree();
        let app = [Selector::follow("/app")];
        let before = sum(dir.path(), &app);
        crate::fsutil::set_times(&dir.path().join("app/main.c"), 12345, 0).unwrap();
        assert_eq!(sum(dir.path(), &app), before);
        fs::set_permissions(
            dir.path().join("app/main.c"),
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
        )
        .unwrap();
        assert_ne!(sum(dir.path(), &app), before);
    }

    /// Extended attributes count as BuildKit counts them. The digests were printed by
    /// BuildKit v0.24.0's own `contenthash.NewFileHash` (a small Go program built from
    /// its sources, kept outside this repository) for the same entries: root's, mode
    /// 0644 / 0755, content `x`.
    #[test]
    fn extended_attributes_count_as_in_buildkit() {
        if !kiln_test::is_root() {
            kiln_test::skip("the digests are of root's files");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mode = |path: &Path, mode: u32| {
            fs::set_permissions(
                path,
                <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(mode),
            )
            .unwrap();
        };
        let set = |path: &Path, name: &str, value: &[u8]| {
            rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
        };
        for name in ["plain", "tagged"] {
            fs::write(root.join(name), "x").unwrap();
            mode(&root.join(name), 0o644);
        }
        set(&root.join("tagged"), "user.kiln", b"v1");
        set(&root.join("tagged"), "user.another", b"two\0bin");
        fs::create_dir(root.join("dir")).unwrap();
        mode(&root.join("dir"), 0o755);
        set(&root.join("dir"), "user.kiln", b"d");
        let tree = Mounted { root };
        let digest = |rel: &str| tree.record(rel).unwrap().unwrap().own_digest();
        assert_eq!(
            digest("plain"),
            "sha256:99745d9d62a47cf71615dbdb41aaa0ae47dfdb822442f8b5494bbc4468ad3d00"
        );
        assert_eq!(
            digest("tagged"),
            "sha256:abb0288662ea23669b493bf01591f44d3f741619f4f276758d40a4c48fdf87b0"
        );
        assert_eq!(
            digest("dir"),
            "sha256:0945a5e5b284bf7b09bcb65321bb4ecdf21de62ab956c62b3e37fff3ec8cd1d9"
        );
    }

    #[test]
    fn symlinks_are_followed_inside_the_root() {
        let dir = tree();
        assert_eq!(
            sum(dir.path(), &[Selector::follow("/link")]),
            sum(dir.path(), &[Selector::follow("/app")])
        );
        assert_eq!(
            sum(dir.path(), &[Selector::follow("/abs")]),
            sum(dir.path(), &[Selector::follow("/app/main.c")])
        );
        // Not followed: the link itself.
        let unfollowed = Selector {
            path: "/link".to_owned(),
            ..Selector::default()
        };
        assert_ne!(
            sum(dir.path(), &[unfollowed]),
            sum(dir.path(), &[Selector::follow("/app")])
        );
    }

    #[test]
    fn wildcards_and_excludes() {
        let dir = tree();
        let txt = [Selector {
            path: "/app/*.c".to_owned(),
            wildcard: true,
            follow_links: true,
            ..Selector::default()
        }];
        let before = sum(dir.path(), &txt);
        fs::write(dir.path().join("app/notes.md"), "other notes").unwrap();
        assert_eq!(sum(dir.path(), &txt), before);
        fs::write(dir.path().join("app/new.c"), "new").unwrap();
        assert_ne!(sum(dir.path(), &txt), before);

        let no_md = [Selector {
            path: "/app".to_owned(),
            follow_links: true,
            exclude: vec!["*.md".to_owned()],
            ..Selector::default()
        }];
        let before = sum(dir.path(), &no_md);
        fs::write(dir.path().join("app/notes.md"), "third notes").unwrap();
        assert_eq!(sum(dir.path(), &no_md), before);
    }

    #[test]
    fn an_index_sums_as_the_tree_it_lists() {
        let dir = tree();
        let mut entries = BTreeMap::new();
        let mounted = Mounted { root: dir.path() };
        for entry in walk(dir.path(), "") {
            entries.insert(entry.clone(), mounted.record(&entry).unwrap().unwrap());
        }
        let index = Index::new(entries);
        for selectors in [
            vec![Selector::follow("/")],
            vec![Selector::follow("/link"), Selector::follow("/docs")],
            vec![Selector {
                path: "/*/*.txt".to_owned(),
                wildcard: true,
                ..Selector::default()
            }],
        ] {
            assert_eq!(
                checksum(&index, &selectors).unwrap(),
                sum(dir.path(), &selectors)
            );
        }
    }

    fn walk(root: &Path, rel: &str) -> Vec<String> {
        let mut out = vec![rel.to_owned()];
        let path = root.join(rel);
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            for name in kiln_store::tree::sorted_names(&path).unwrap() {
                let child = if rel.is_empty() {
                    name.to_string_lossy().into_owned()
                } else {
                    format!("{rel}/{}", name.to_string_lossy())
                };
                out.extend(walk(root, &child));
            }
        }
        out
    }
}
