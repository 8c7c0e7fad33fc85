//! Content checksums of selected paths of a result, for cache keys that depend only on
//! what an op reads (BuildKit's `cache/contenthash`). A file's checksum covers its
//! type, permission bits, owner, link target and bytes, a directory's its entries'
//! names and checksums (not its own metadata); never times. Symlinks are followed inside the
//! result's root as a process chrooted there would.
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
    /// A file's sha256 (hex).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) digest: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Record {
    /// The record of an entry from its metadata (a file's digest and a link's target
    /// are filled in by the caller).
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
            link: String::new(),
            rdev: if matches!(kind, 'c' | 'b') { rdev } else { 0 },
            digest: String::new(),
        }
    }

    fn header(&self) -> String {
        format!(
            "{} {:o} {}:{} {} {} {}",
            self.kind, self.mode, self.uid, self.gid, self.rdev, self.link, self.digest
        )
    }
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
const INDEX_FILE: &str = "content-index.json";

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

    fn load(layer_root: &Path) -> Option<Self> {
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
        match record.kind {
            'l' => record.link = fs::read_link(&path)?.to_string_lossy().into_owned(),
            'f' => record.digest = file_sha256(&path)?,
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

/// A file's sha256 (hex).
pub(crate) fn file_sha256(path: &Path) -> Result<String, Error> {
    let mut hasher = Sha256::new();
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(kiln_store::sha256_hex(hasher))
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

/// The entries a wildcard path names (component by component, as a copy expands it).
fn expand(tree: &dyn Tree, pattern: &str) -> Result<Vec<String>, Error> {
    let mut found = vec![String::new()];
    for component in pattern.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let mut next = Vec::new();
        for prefix in &found {
            let join = |name: &str| {
                if prefix.is_empty() {
                    name.to_owned()
                } else {
                    format!("{prefix}/{name}")
                }
            };
            if !component.contains(['*', '?', '[']) {
                next.push(join(component));
                continue;
            }
            let dir = resolve(tree, prefix, true)?;
            if tree.record(&dir)?.is_none_or(|r| r.kind != 'd') {
                continue;
            }
            for name in tree.children(&dir)? {
                if crate::fsutil::match_component(component, &name) {
                    next.push(join(&name));
                }
            }
        }
        found = next;
    }
    let mut present = Vec::new();
    for path in found {
        if tree.record(&resolve(tree, &path, false)?)?.is_some() {
            present.push(path);
        }
    }
    Ok(present)
}

/// The checksum of the entry at `rel` and, for a directory, of what is below it that
/// `patterns` keep (`below` is the entry's path relative to the selected one).
fn entry_digest(
    tree: &dyn Tree,
    rel: &str,
    below: &str,
    patterns: &Patterns,
) -> Result<String, Error> {
    let Some(record) = tree.record(rel)? else {
        return Ok("missing".to_owned());
    };
    let mut hasher = Sha256::new();
    // A directory is its entries: its own mode, owner and times never count, as in
    // BuildKit's contenthash (a chmod of a copied directory leaves the copy cached).
    if record.kind == 'd' {
        hasher.update(b"dir");
    } else {
        hasher.update(record.header().as_bytes());
    }
    if record.kind == 'd' {
        for name in tree.children(rel)? {
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let child_below = if below.is_empty() {
                name.clone()
            } else {
                format!("{below}/{name}")
            };
            if !patterns.is_empty()
                && !patterns.allows(&child_below)
                && !patterns.may_descend(&child_below)
            {
                continue;
            }
            hasher.update([0]);
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(entry_digest(tree, &child, &child_below, patterns)?.as_bytes());
        }
    }
    Ok(kiln_store::sha256_hex(hasher))
}

fn selector_digest(tree: &dyn Tree, selector: &Selector) -> Result<String, Error> {
    let patterns = Patterns::from_lists(&selector.include, &selector.exclude);
    if !selector.wildcard {
        let rel = resolve(tree, &selector.path, selector.follow_links)?;
        return entry_digest(tree, &rel, "", &patterns);
    }
    let mut hasher = Sha256::new();
    hasher.update(b"wildcard");
    for found in expand(tree, &selector.path)? {
        let rel = resolve(tree, &found, selector.follow_links)?;
        hasher.update([0]);
        hasher.update(found.as_bytes());
        hasher.update([0]);
        hasher.update(entry_digest(tree, &rel, "", &patterns)?.as_bytes());
    }
    Ok(kiln_store::sha256_hex(hasher))
}

/// The checksum of what `selectors` select in `tree`.
pub(crate) fn checksum(tree: &dyn Tree, selectors: &[Selector]) -> Result<String, Error> {
    let digests = selectors
        .iter()
        .map(|s| selector_digest(tree, s))
        .collect::<Result<Vec<_>, _>>()?;
    let parts: Vec<&[u8]> = digests.iter().map(|d| d.as_bytes()).collect();
    Ok(sha256_hex(&parts))
}

/// Where checksums of results are remembered: by result key and selectors.
const CHECKSUMS_TABLE: &str = "content-checksums";

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
    fn a_directory_is_its_entries() {
        let dir = tree();
        let app = [Selector::follow("/app")];
        let before = sum(dir.path(), &app);
        fs::set_permissions(
            dir.path().join("app/sub"),
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
        )
        .unwrap();
        assert_eq!(sum(dir.path(), &app), before);
        fs::create_dir(dir.path().join("app/empty")).unwrap();
        assert_ne!(sum(dir.path(), &app), before);
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
