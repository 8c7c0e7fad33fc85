//! Snapshots as overlay layers: each snapshot owns one upper directory; its content is
//! that directory on top of its parents', mounted with overlayfs. Where overlay mounts
//! are refused (overlay on overlay, some containers), the native driver copies instead:
//! a mount is a directory with the layers applied, and committing a writable one writes
//! its difference from the layers below as the snapshot's own layer, whiteouts and
//! all, so layers look the same to everything else either way.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use fs_err as fs;
use rustix::mount::{MountFlags, UnmountFlags, mount, unmount};

use crate::Error;
use crate::tree::{self, Hardlinks};

/// A snapshot's number.
pub type SnapshotId = u64;

/// In a layer's directory: the layers it is the difference from, one id a line.
const PARENTS_FILE: &str = "parents";

/// A snapshot: its own layer and the layers under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Layers from the bottom up; the last is this snapshot's own.
    pub chain: Vec<SnapshotId>,
}

impl Snapshot {
    /// This snapshot's own layer.
    pub fn id(&self) -> SnapshotId {
        *self
            .chain
            .last()
            .expect("a snapshot has at least its own layer")
    }
}

/// How snapshots are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// overlayfs mounts.
    Overlay,
    /// Copies (the `native` snapshotter).
    Native,
}

/// Creates, mounts and removes snapshots under one directory.
#[derive(Debug)]
pub struct Snapshotter {
    root: PathBuf,
    next: AtomicU64,
    /// How snapshots mount, decided when the first one is (with `auto`, by probing
    /// overlay): a build that mounts nothing, like a no-op, does not probe.
    mounting: OnceLock<Mounting>,
}

#[derive(Debug, Clone, Copy)]
struct Mounting {
    driver: Driver,
    /// Writable overlay mounts are `volatile` (Linux 5.10): unmounting one does not sync
    /// the whole filesystem under the state directory, which would wait for every byte
    /// any earlier step wrote. Layer files are never synced one by one either, so this
    /// loses nothing a crash of the process (not of the machine) would keep.
    volatile: bool,
}

/// A mounted snapshot; unmounted (or, for the native driver, removed) when dropped.
/// A writable mount's changes are kept by [`MountGuard::commit`].
#[derive(Debug)]
pub struct MountGuard {
    target: PathBuf,
    native: Option<NativeMount>,
}

/// What a native mount needs to commit: the layers below as they were, and the layer
/// that receives the difference.
#[derive(Debug)]
struct NativeMount {
    below: Option<PathBuf>,
    layer: PathBuf,
}

impl MountGuard {
    /// Where the snapshot is mounted.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Keeps a writable mount's changes in its snapshot's layer and releases it. With
    /// overlay they are there already; the native driver writes the difference now.
    pub fn commit(self) -> Result<(), Error> {
        if let Some(NativeMount {
            below: Some(below),
            layer,
        }) = &self.native
        {
            let failed = |source: std::io::Error| Error::Mount {
                target: layer.clone(),
                source,
            };
            // The layer is rewritten whole: what it held is in the mount already.
            let _ = fs::remove_dir_all(layer);
            fs::create_dir_all(layer).map_err(failed)?;
            tree::write_diff(
                Some(below),
                Some(&self.target),
                layer,
                &mut Hardlinks::new(),
            )
            .map_err(failed)?;
        }
        Ok(())
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        match &self.native {
            None => {
                let _ = unmount(&self.target, UnmountFlags::DETACH);
                let _ = std::fs::remove_dir(&self.target);
            }
            Some(native) => {
                let _ = fs::remove_dir_all(&self.target);
                if let Some(below) = &native.below {
                    let _ = fs::remove_dir_all(below);
                }
            }
        }
    }
}

impl Snapshotter {
    /// Opens (creating) the snapshot directory, with overlay when this kernel mounts it
    /// there and the native driver otherwise.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::open_with(root, "auto")
    }

    /// Opens with a driver chosen as buildkitd.toml's `snapshotter` says: `overlayfs`
    /// (an error when overlay cannot be mounted), `native`, or `auto`.
    pub fn open_with(root: impl Into<PathBuf>, snapshotter: &str) -> Result<Self, Error> {
        let root = root.into();
        fs::create_dir_all(root.join("empty"))?;
        fs::create_dir_all(root.join("mnt"))?;
        // Mounts left by a process that died (kill -9): whoever opens the store owns it.
        remove_mounts(&root.join("mnt"))?;
        let mut max = 0;
        for entry in fs::read_dir(&root)? {
            if let Some(n) = entry?
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            {
                max = max.max(n);
            }
        }
        let mounting = OnceLock::new();
        match snapshotter {
            "native" => {
                let _ = mounting.set(Mounting {
                    driver: Driver::Native,
                    volatile: false,
                });
            }
            "overlayfs" => {
                let _ = mounting.set(Mounting {
                    driver: Driver::Overlay,
                    volatile: overlay_works(&root)?,
                });
            }
            _ => {}
        }
        Ok(Self {
            root,
            next: AtomicU64::new(max + 1),
            mounting,
        })
    }

    /// Removes every mount (those of work that never ended, when the process stops).
    pub fn remove_leftover_mounts(&self) -> Result<(), Error> {
        remove_mounts(&self.root.join("mnt"))
    }

    /// The driver in use.
    pub fn driver(&self) -> Driver {
        self.mounting().driver
    }

    fn mounting(&self) -> Mounting {
        *self
            .mounting
            .get_or_init(|| match overlay_works(&self.root) {
                Ok(volatile) => Mounting {
                    driver: Driver::Overlay,
                    volatile,
                },
                Err(_) => Mounting {
                    driver: Driver::Native,
                    volatile: false,
                },
            })
    }

    /// A directory with `layers` (bottom first) applied, for the native driver.
    fn materialize(&self, layers: &[SnapshotId], dir: &Path) -> Result<(), Error> {
        let failed = |source: std::io::Error| Error::Mount {
            target: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(failed)?;
        let mut links = Hardlinks::new();
        for id in layers {
            tree::apply_layer(&self.layer_dir(*id), dir, &mut links).map_err(failed)?;
        }
        Ok(())
    }

    /// Every layer on disk.
    pub fn layer_ids(&self) -> Result<Vec<SnapshotId>, Error> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            if let Some(id) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Everything of one layer on disk (its upper and work directories).
    pub fn layer_root(&self, id: SnapshotId) -> PathBuf {
        self.root.join(id.to_string())
    }

    /// The directory of one layer (its upper dir).
    pub fn layer_dir(&self, id: SnapshotId) -> PathBuf {
        self.root.join(id.to_string()).join("fs")
    }

    /// A new, empty layer on top of `parent` (or of nothing).
    pub fn create(&self, parent: Option<&Snapshot>) -> Result<Snapshot, Error> {
        let mut chain = parent.map(|p| p.chain.clone()).unwrap_or_default();
        chain.push(self.new_layer(&chain)?);
        Ok(Snapshot { chain })
    }

    /// A new, empty layer on top of an explicit list of layers (bottom first).
    pub fn create_on(&self, lowers: &[SnapshotId]) -> Result<Snapshot, Error> {
        let mut chain = lowers.to_vec();
        chain.push(self.new_layer(&chain)?);
        Ok(Snapshot { chain })
    }

    fn new_layer(&self, parents: &[SnapshotId]) -> Result<SnapshotId, Error> {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let dir = self.root.join(id.to_string());
        fs::create_dir_all(dir.join("fs"))?;
        fs::create_dir_all(dir.join("work"))?;
        self.set_parents(id, parents)?;
        Ok(id)
    }

    /// Records the layers (bottom first) that layer `id` is the difference from: those
    /// it was made on, unless set otherwise (a diff op's layer is made on nothing but
    /// holds the difference from its lower state). A layer is exported as that
    /// difference, wherever a merge stacks it later, as BuildKit computes a layer's blob
    /// against its own parents.
    pub fn set_parents(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<(), Error> {
        let text: String = parents.iter().map(|p| format!("{p}\n")).collect();
        fs::write(self.layer_root(id).join(PARENTS_FILE), text)?;
        Ok(())
    }

    /// The layers (bottom first) layer `id` is the difference from, when recorded (layers
    /// made by an older kiln have no record).
    pub fn parents(&self, id: SnapshotId) -> Option<Vec<SnapshotId>> {
        let text = fs::read_to_string(self.layer_root(id).join(PARENTS_FILE)).ok()?;
        text.lines().map(|l| l.parse().ok()).collect()
    }

    /// Removes a layer's directory (nothing may still use it).
    pub fn remove_layer(&self, id: SnapshotId) -> Result<(), Error> {
        let dir = self.root.join(id.to_string());
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        Ok(())
    }

    /// Mounts `snapshot` writable at a fresh directory: changes land in its own layer.
    pub fn mount(&self, snapshot: &Snapshot) -> Result<MountGuard, Error> {
        let target = self.root.join("mnt").join(format!(
            "{}-{}",
            snapshot.id(),
            self.next.fetch_add(1, Ordering::SeqCst)
        ));
        let own = snapshot.id();
        if self.driver() == Driver::Native {
            let below = target.with_extension("below");
            let below_layers = &snapshot.chain[..snapshot.chain.len() - 1];
            let guard = MountGuard {
                target: target.clone(),
                native: Some(NativeMount {
                    below: Some(below.clone()),
                    layer: self.layer_dir(own),
                }),
            };
            self.materialize(below_layers, &below)?;
            self.materialize(&snapshot.chain, &target)?;
            return Ok(guard);
        }
        fs::create_dir_all(&target)?;
        let mut lowers: Vec<PathBuf> = snapshot.chain[..snapshot.chain.len() - 1]
            .iter()
            .rev()
            .map(|id| self.layer_dir(*id))
            .collect();
        if lowers.is_empty() {
            lowers.push(self.root.join("empty"));
        }
        let work = self.layer_root(own).join("work");
        let volatile = self.mounting().volatile;
        if volatile {
            // What an earlier volatile mount of this layer left: overlay refuses the
            // work directory until it is gone.
            let _ = fs::remove_dir_all(work.join("work").join("incompat"));
        }
        let upper = (self.layer_dir(own), work);
        mount_overlay(&target, &lowers, Some(&upper), volatile)?;
        Ok(MountGuard {
            target,
            native: None,
        })
    }

    /// Removes from `snapshot`'s own layer the directories among `dirs` (paths relative
    /// to its root) that overlay copied up and nothing changed: empty in the layer, not
    /// opaque, and with the same metadata as in the layers below. An exec leaves such a
    /// directory when runc creates a mount stub in it (`/etc` for `/etc/hosts`) and the
    /// stub is removed afterwards; BuildKit's differ skips it, so the layer must not
    /// hold it either (a diff or merge would show it as added). Only for an unmounted
    /// snapshot; the native driver's layers hold nothing unchanged already.
    pub fn drop_copied_up_dirs(&self, snapshot: &Snapshot, dirs: &[PathBuf]) -> Result<(), Error> {
        let below_chain = &snapshot.chain[..snapshot.chain.len() - 1];
        if self.driver() == Driver::Native || below_chain.is_empty() {
            return Ok(());
        }
        let layer = self.layer_dir(snapshot.id());
        let mut candidates: Vec<&PathBuf> =
            dirs.iter().filter(|rel| plain_dir(&layer, rel)).collect();
        // The usual case, with nothing to do, needs no mount.
        if !candidates.iter().any(|rel| empty_plain_dir(&layer, rel)) {
            return Ok(());
        }
        // Deepest first: a parent can only go once its children have.
        candidates.sort_by_key(|rel| std::cmp::Reverse(rel.components().count()));
        candidates.dedup();
        let below = self.mount_readonly(&Snapshot {
            chain: below_chain.to_vec(),
        })?;
        for rel in candidates {
            if !empty_plain_dir(&layer, rel) || !plain_dir(below.path(), rel) {
                continue;
            }
            if same_dir_attributes(&below.path().join(rel), &layer.join(rel))? {
                remove_dir_keeping_parent_times(&layer.join(rel))?;
            }
        }
        Ok(())
    }

    /// Mounts `snapshot` read-only at a fresh directory.
    pub fn mount_readonly(&self, snapshot: &Snapshot) -> Result<MountGuard, Error> {
        let target = self.root.join("mnt").join(format!(
            "ro-{}-{}",
            snapshot.id(),
            self.next.fetch_add(1, Ordering::SeqCst)
        ));
        if self.driver() == Driver::Native {
            let guard = MountGuard {
                target: target.clone(),
                native: Some(NativeMount {
                    below: None,
                    layer: self.layer_dir(snapshot.id()),
                }),
            };
            self.materialize(&snapshot.chain, &target)?;
            return Ok(guard);
        }
        fs::create_dir_all(&target)?;
        let mut lowers: Vec<PathBuf> = snapshot
            .chain
            .iter()
            .rev()
            .map(|id| self.layer_dir(*id))
            .collect();
        // Overlay needs two lower layers when it has no upper one.
        lowers.push(self.root.join("empty"));
        mount_overlay(&target, &lowers, None, false)?;
        Ok(MountGuard {
            target,
            native: None,
        })
    }
}

/// Removes every mount under `mnt`: an overlay mount point is unmounted, then removed
/// (empty); a native mount is a plain directory tree (unmount says it is no mount
/// point) and goes whole.
fn remove_mounts(mnt: &Path) -> Result<(), Error> {
    for entry in fs::read_dir(mnt)? {
        let path = entry?.path();
        match unmount(&path, UnmountFlags::DETACH) {
            Ok(()) => {
                let _ = std::fs::remove_dir(&path);
            }
            Err(rustix::io::Errno::INVAL) => {
                let _ = fs::remove_dir_all(&path);
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// Whether `rel` (not empty) is a directory under `root` reached through directories
/// only (no symlink that could lead out of `root`).
fn plain_dir(root: &Path, rel: &Path) -> bool {
    let mut path = root.to_path_buf();
    rel.components().next().is_some()
        && rel.components().all(|component| {
            path.push(component);
            matches!(component, std::path::Component::Normal(_))
                && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
        })
}

/// Whether `rel` is an empty, not opaque [`plain_dir`] under `root`.
fn empty_plain_dir(root: &Path, rel: &Path) -> bool {
    let path = root.join(rel);
    plain_dir(root, rel)
        && !tree::is_opaque(&path)
        && fs::read_dir(&path).is_ok_and(|mut entries| entries.next().is_none())
}

/// Whether two directories are the same: mode, owner, modification time and file
/// capabilities (dropping one whose time changed would change what a mount shows).
fn same_dir_attributes(a: &Path, b: &Path) -> Result<bool, Error> {
    use std::os::unix::fs::MetadataExt;
    let (ma, mb) = (fs::symlink_metadata(a)?, fs::symlink_metadata(b)?);
    if (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
        return Ok(false);
    }
    let capability = |path: &Path| {
        let mut value = vec![0u8; 256];
        rustix::fs::lgetxattr(path, "security.capability", &mut value).map(|n| value[..n].to_vec())
    };
    Ok(ma.mode() == mb.mode()
        && ma.uid() == mb.uid()
        && ma.gid() == mb.gid()
        && capability(a).ok() == capability(b).ok())
}

/// Removes an empty directory; its parent keeps its times (a copied-up parent must still
/// look unchanged).
fn remove_dir_keeping_parent_times(dir: &Path) -> Result<(), Error> {
    let parent = dir.parent().unwrap_or(dir);
    use std::os::unix::fs::MetadataExt;
    let before = fs::symlink_metadata(parent)?;
    fs::remove_dir(dir)?;
    tree::set_times(parent, before.mtime(), before.mtime_nsec())?;
    Ok(())
}

/// Whether overlay mounts work under `root` (a throwaway mount of an empty layer), and
/// whether they take `volatile`. The volatile probe comes first: a plain one would sync
/// the filesystem when unmounted, which after a build that wrote much data takes
/// longer than a no-op build.
fn overlay_works(root: &Path) -> Result<bool, Error> {
    let probe = |volatile: bool| {
        let probe = root
            .join("mnt")
            .join(format!("probe-{}", std::process::id()));
        let _ = fs::remove_dir_all(&probe);
        for dir in ["lower", "upper", "work", "merged"] {
            fs::create_dir_all(probe.join(dir))?;
        }
        let upper = (probe.join("upper"), probe.join("work"));
        let merged = probe.join("merged");
        let mounted = mount_overlay(&merged, &[probe.join("lower")], Some(&upper), volatile);
        if mounted.is_ok() {
            let _ = unmount(&merged, UnmountFlags::DETACH);
        }
        let _ = fs::remove_dir_all(&probe);
        mounted
    };
    match probe(true) {
        Ok(()) => Ok(true),
        Err(_) => probe(false).map(|()| false),
    }
}

/// The longest option string `mount(2)` takes (one page, less a margin).
const MOUNT_OPTIONS_MAX: usize = 4000;

/// Mounts overlay at `target`: `lowers` top first, and an (upper, work) pair for a
/// writable mount. A chain whose paths do not fit in one page of mount options
/// (about 130 layers) is mounted through the new mount API, one `lowerdir+` per layer
/// (Linux 6.8 and later); overlay itself stacks at most 500 layers.
fn mount_overlay(
    target: &Path,
    lowers: &[PathBuf],
    upper: Option<&(PathBuf, PathBuf)>,
    volatile: bool,
) -> Result<(), Error> {
    let failed = |source: std::io::Error| Error::Mount {
        target: target.to_owned(),
        source,
    };
    let mut options = format!(
        "lowerdir={}",
        lowers
            .iter()
            .map(|l| l.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    );
    if let Some((upper, work)) = upper {
        options.push_str(&format!(
            ",upperdir={},workdir={}",
            upper.display(),
            work.display()
        ));
        if volatile {
            options.push_str(",volatile");
        }
    }
    if options.len() > MOUNT_OPTIONS_MAX {
        return mount_overlay_layer_by_layer(target, lowers, upper, volatile).map_err(failed);
    }
    let options = std::ffi::CString::new(options)
        .map_err(|e| failed(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        Some(options.as_c_str()),
    )
    .map_err(|e| failed(e.into()))
}

fn mount_overlay_layer_by_layer(
    target: &Path,
    lowers: &[PathBuf],
    upper: Option<&(PathBuf, PathBuf)>,
    volatile: bool,
) -> std::io::Result<()> {
    use rustix::mount::{
        FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, fsconfig_create,
        fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for lower in lowers {
        fsconfig_set_string(&fs, "lowerdir+", lower)?;
    }
    if let Some((upper, work)) = upper {
        fsconfig_set_string(&fs, "upperdir", upper)?;
        fsconfig_set_string(&fs, "workdir", work)?;
        if volatile {
            fsconfig_set_flag(&fs, "volatile")?;
        }
    }
    fsconfig_create(&fs)?;
    let mounted = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    move_mount(
        &mounted,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// A layer remembers what it was made on (what it is exported as the difference
    /// from), unless told otherwise; a layer without the record has none.
    #[test]
    fn layers_remember_their_parents() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = Snapshotter::open_with(dir.path().join("snapshots"), "native").unwrap();
        let bottom = snapshots.create(None).unwrap();
        let top = snapshots.create(Some(&bottom)).unwrap();
        assert_eq!(snapshots.parents(bottom.id()), Some(vec![]));
        assert_eq!(snapshots.parents(top.id()), Some(vec![bottom.id()]));
        let diff = snapshots.create_on(&[]).unwrap();
        snapshots.set_parents(diff.id(), &top.chain).unwrap();
        assert_eq!(snapshots.parents(diff.id()), Some(top.chain.clone()));
        fs::remove_file(snapshots.layer_root(top.id()).join(PARENTS_FILE)).unwrap();
        assert_eq!(snapshots.parents(top.id()), None);
    }

    /// A directory overlay copied up for a mount stub that is gone again leaves the
    /// layer; one whose metadata changed, one holding a file and one that is new stay.
    #[test]
    fn copied_up_dirs_that_nothing_changed_leave_the_layer() {
        if !is_root() {
            kiln_test::skip("mounting needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let snapshots = Snapshotter::open(dir.path().join("snapshots")).unwrap();
        let base = snapshots.create(None).unwrap();
        for sub in ["etc", "a/b", "chmodded", "kept", "retimed"] {
            fs::create_dir_all(snapshots.layer_dir(base.id()).join(sub)).unwrap();
        }
        let step = snapshots.create(Some(&base)).unwrap();
        let mount = snapshots.mount(&step).unwrap();
        let root = mount.path().to_path_buf();
        // A stub made and removed, its directory's times put back (as kiln-exec does).
        for stubbed in ["etc", "a/b"] {
            let before = fs::metadata(root.join(stubbed)).unwrap();
            fs::write(root.join(stubbed).join("hosts"), "").unwrap();
            fs::remove_file(root.join(stubbed).join("hosts")).unwrap();
            let times = std::fs::FileTimes::new()
                .set_accessed(before.accessed().unwrap())
                .set_modified(before.modified().unwrap());
            fs::File::open(root.join(stubbed))
                .unwrap()
                .set_times(times)
                .unwrap();
        }
        // A directory whose time the step set stays.
        let touched = std::fs::FileTimes::new().set_modified(std::time::UNIX_EPOCH);
        fs::File::open(root.join("retimed"))
            .unwrap()
            .set_times(touched)
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(
            root.join("chmodded"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        fs::write(root.join("kept/file"), "x").unwrap();
        fs::create_dir(root.join("new")).unwrap();
        drop(mount);
        let layer = snapshots.layer_dir(step.id());
        assert!(layer.join("etc").is_dir(), "overlay copied /etc up");

        let dirs = [
            "etc", "a", "a/b", "chmodded", "kept", "retimed", "new", "missing",
        ]
        .map(PathBuf::from);
        snapshots.drop_copied_up_dirs(&step, &dirs).unwrap();

        let left: Vec<&str> = ["etc", "a", "a/b", "chmodded", "kept", "retimed", "new"]
            .into_iter()
            .filter(|d| layer.join(d).exists())
            .collect();
        assert_eq!(left, ["chmodded", "kept", "retimed", "new"]);
    }

    /// 300 layers (far past one page of mount options) mount, read-only and writable,
    /// with every layer's file visible.
    #[test]
    fn long_layer_chains_mount() {
        if !is_root() {
            kiln_test::skip("mounting needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let snapshots = Snapshotter::open(dir.path().join("snapshots")).unwrap();
        let mut top: Option<Snapshot> = None;
        for i in 0..300 {
            let snapshot = snapshots.create(top.as_ref()).unwrap();
            fs::write(
                snapshots.layer_dir(snapshot.id()).join(format!("f{i}")),
                i.to_string(),
            )
            .unwrap();
            top = Some(snapshot);
        }
        let top = top.unwrap();
        let readonly = snapshots.mount_readonly(&top).unwrap();
        for i in [0, 150, 299] {
            assert_eq!(
                fs::read_to_string(readonly.path().join(format!("f{i}"))).unwrap(),
                i.to_string()
            );
        }
        drop(readonly);
        let child = snapshots.create(Some(&top)).unwrap();
        let writable = snapshots.mount(&child).unwrap();
        assert!(writable.path().join("f0").is_file());
        fs::write(writable.path().join("new"), "x").unwrap();
        drop(writable);
        assert!(snapshots.layer_dir(child.id()).join("new").is_file());
    }

    /// A writable snapshot mounts again after a (volatile) mount of it was released,
    /// with what the first mount wrote.
    #[test]
    fn writable_snapshots_mount_again() {
        if !is_root() {
            kiln_test::skip("mounting needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let snapshots = Snapshotter::open(dir.path().join("snapshots")).unwrap();
        assert_eq!(snapshots.driver(), Driver::Overlay);
        let base = snapshots.create(None).unwrap();
        let child = snapshots.create(Some(&base)).unwrap();
        for round in ["one", "two"] {
            let mounted = snapshots.mount(&child).unwrap();
            fs::write(mounted.path().join(round), round).unwrap();
            mounted.commit().unwrap();
        }
        let layer = snapshots.layer_dir(child.id());
        assert_eq!(fs::read_to_string(layer.join("one")).unwrap(), "one");
        assert_eq!(fs::read_to_string(layer.join("two")).unwrap(), "two");
    }
}
