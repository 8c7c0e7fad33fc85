//! Snapshots as overlay layers: each snapshot owns one upper directory; its content is
//! that directory on top of its parents', mounted with overlayfs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use fs_err as fs;
use rustix::mount::{MountFlags, UnmountFlags, mount, unmount};

use crate::Error;

/// A snapshot's number.
pub type SnapshotId = u64;

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

/// Creates, mounts and removes snapshots under one directory.
#[derive(Debug)]
pub struct Snapshotter {
    root: PathBuf,
    next: AtomicU64,
}

/// A mounted snapshot; unmounted when dropped.
#[derive(Debug)]
pub struct MountGuard {
    target: PathBuf,
    owned_dir: bool,
}

impl MountGuard {
    /// Where the snapshot is mounted.
    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = unmount(&self.target, UnmountFlags::DETACH);
        if self.owned_dir {
            let _ = std::fs::remove_dir(&self.target);
        }
    }
}

impl Snapshotter {
    /// Opens (creating) the snapshot directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        fs::create_dir_all(root.join("empty"))?;
        fs::create_dir_all(root.join("mnt"))?;
        // Mounts left by a process that died (kill -9): whoever opens the store owns it.
        for entry in fs::read_dir(root.join("mnt"))? {
            let path = entry?.path();
            let _ = unmount(&path, UnmountFlags::DETACH);
            let _ = std::fs::remove_dir(&path);
        }
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
        Ok(Self {
            root,
            next: AtomicU64::new(max + 1),
        })
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
        chain.push(self.new_layer()?);
        Ok(Snapshot { chain })
    }

    /// A new, empty layer on top of an explicit list of layers (bottom first).
    pub fn create_on(&self, lowers: &[SnapshotId]) -> Result<Snapshot, Error> {
        let mut chain = lowers.to_vec();
        chain.push(self.new_layer()?);
        Ok(Snapshot { chain })
    }

    fn new_layer(&self) -> Result<SnapshotId, Error> {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let dir = self.root.join(id.to_string());
        fs::create_dir_all(dir.join("fs"))?;
        fs::create_dir_all(dir.join("work"))?;
        Ok(id)
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
        fs::create_dir_all(&target)?;
        let own = snapshot.id();
        let mut lowers: Vec<String> = snapshot.chain[..snapshot.chain.len() - 1]
            .iter()
            .rev()
            .map(|id| self.layer_dir(*id).display().to_string())
            .collect();
        if lowers.is_empty() {
            lowers.push(self.root.join("empty").display().to_string());
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            self.layer_dir(own).display(),
            self.root.join(own.to_string()).join("work").display()
        );
        self.mount_overlay(&target, &options)?;
        Ok(MountGuard {
            target,
            owned_dir: true,
        })
    }

    /// Mounts `snapshot` read-only at a fresh directory.
    pub fn mount_readonly(&self, snapshot: &Snapshot) -> Result<MountGuard, Error> {
        let target = self.root.join("mnt").join(format!(
            "ro-{}-{}",
            snapshot.id(),
            self.next.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(&target)?;
        let mut lowers: Vec<String> = snapshot
            .chain
            .iter()
            .rev()
            .map(|id| self.layer_dir(*id).display().to_string())
            .collect();
        // Overlay needs two lower layers when it has no upper one.
        lowers.push(self.root.join("empty").display().to_string());
        self.mount_overlay(&target, &format!("lowerdir={}", lowers.join(":")))?;
        Ok(MountGuard {
            target,
            owned_dir: true,
        })
    }

    fn mount_overlay(&self, target: &Path, options: &str) -> Result<(), Error> {
        let options = std::ffi::CString::new(options).map_err(|e| Error::Mount {
            target: target.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        mount(
            "overlay",
            target,
            "overlay",
            MountFlags::empty(),
            Some(options.as_c_str()),
        )
        .map_err(|e| Error::Mount {
            target: target.to_owned(),
            source: e.into(),
        })
    }
}
