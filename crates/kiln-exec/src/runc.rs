//! Running a spec with the `runc` binary.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fs_err as fs;

use crate::spec::{Mount, MountKind, NetworkMode, Process, runtime_spec};
use crate::{Error, Executor};

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Its exit code; 128 + the signal for a process a signal ended.
    pub code: i32,
    /// SIGKILL while the kernel's out-of-memory killer was at work.
    pub oom_killed: bool,
    /// What runc itself reported failing (the container could not be set up or
    /// started: a mount that failed, a missing binary, …); `None` when the process ran.
    pub runtime_error: Option<String>,
}

/// The last error runc logged (`--log-format json`): why it could not run the
/// container, in its own words.
fn runtime_error(log: &Path) -> Option<String> {
    let text = fs_err::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["level"] == "error")
        .find_map(|entry| entry["msg"].as_str().map(str::to_owned))
}

/// How many processes the out-of-memory killer has ended since boot.
fn oom_kills() -> u64 {
    fs_err::read_to_string("/proc/vmstat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Which output a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Runs processes with runc, keeping bundles and runc state under one directory.
#[derive(Debug, Clone)]
pub struct Runc {
    runtime: PathBuf,
    root: PathBuf,
    /// /etc/resolv.conf for processes with a network; `None`: the host's.
    resolv_conf: Option<String>,
    /// Set to stop: running containers are killed, no new one starts.
    cancelled: Arc<AtomicBool>,
}

impl Runc {
    /// An executor using `runtime` (e.g. `runc`), with state under `root`. Containers
    /// and bundles left by a process that died (kill -9) are removed first: whoever
    /// opens the state directory owns it.
    pub fn new(runtime: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        let executor = Self {
            runtime: runtime.into(),
            root: root.into(),
            resolv_conf: None,
            cancelled: Arc::new(AtomicBool::new(false)),
        };
        executor.remove_leftovers();
        executor
    }

    /// Processes with a network get this /etc/resolv.conf rather than the host's.
    pub fn with_resolv_conf(mut self, resolv_conf: Option<String>) -> Self {
        self.resolv_conf = resolv_conf;
        self
    }

    fn runc(&self) -> Command {
        let mut command = Command::new(&self.runtime);
        command.arg("--root").arg(self.root.join("runc"));
        command
    }
}

impl Executor for Runc {
    fn cancellation(&self) -> Arc<AtomicBool> {
        self.cancelled.clone()
    }

    fn remove_leftovers(&self) {
        if let Ok(entries) = fs::read_dir(self.root.join("runc")) {
            for entry in entries.flatten() {
                let _ = self
                    .runc()
                    .args(["delete", "--force"])
                    .arg(entry.file_name())
                    .output();
            }
        }
        let _ = fs::remove_dir_all(self.root.join("bundles"));
    }

    /// Mount points the run had to create are removed afterwards, so they do not
    /// become part of the layer.
    fn run(
        &self,
        id: &str,
        rootfs: &Path,
        process: &Process,
        mounts: &[Mount],
        output: &(dyn Fn(OutputStream, &[u8]) + Sync),
    ) -> Result<Exit, Error> {
        let bundle = self.root.join("bundles").join(id);
        fs::create_dir_all(&bundle)?;
        let etc = bundle.join("etc");
        fs::create_dir_all(&etc)?;
        let hostname = if process.hostname.is_empty() {
            "buildkitsandbox"
        } else {
            &process.hostname
        };
        let mut hosts =
            format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for (name, address) in &process.extra_hosts {
            hosts.push_str(&format!("{address}\t{name}\n"));
        }
        fs::write(etc.join("hosts"), hosts)?;
        let resolv = match process.network {
            NetworkMode::None => String::new(),
            NetworkMode::Host => match &self.resolv_conf {
                Some(text) => text.clone(),
                None => fs_err::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            },
        };
        fs::write(etc.join("resolv.conf"), resolv)?;

        let stubs = missing_paths(rootfs, &mount_points(mounts));
        let stub_parents =
            StubParents::create_stubs(rootfs, &stubs, &mount_point_kinds(rootfs, mounts));

        let spec = runtime_spec(id, rootfs, process, mounts, &etc);
        fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap_or_default(),
        )?;

        let cancelled = || {
            self.cancelled.load(Ordering::Relaxed)
                || process
                    .cancelled
                    .as_ref()
                    .is_some_and(|c| c.load(Ordering::Relaxed))
        };
        if cancelled() {
            let _ = fs::remove_dir_all(&bundle);
            return Err(Error::Cancelled);
        }
        fs::create_dir_all(self.root.join("runc"))?;
        let oom_kills_before = oom_kills();
        let spawned = self
            .runc()
            .arg("--log")
            .arg(bundle.join("runc.log"))
            .args(["--log-format", "json", "run", "--bundle"])
            .arg(&bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| {
                let runtime = self.runtime.display().to_string();
                if source.kind() == std::io::ErrorKind::NotFound {
                    Error::RuntimeMissing { runtime }
                } else {
                    Error::Spawn { runtime, source }
                }
            });
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                remove_stubs(rootfs, &stubs, &stub_parents);
                let _ = fs::remove_dir_all(&bundle);
                return Err(e);
            }
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let mut killed = false;
        let status = std::thread::scope(|scope| {
            if let Some(pipe) = stdout {
                scope.spawn(move || pump(pipe, OutputStream::Stdout, output));
            }
            if let Some(pipe) = stderr {
                scope.spawn(move || pump(pipe, OutputStream::Stderr, output));
            }
            // Waits, killing the container (its init, and with it the whole pid
            // namespace) once the build is cancelled.
            loop {
                if let Some(status) = child.try_wait()? {
                    return Ok::<_, Error>(status);
                }
                if !killed && cancelled() {
                    let _ = self.runc().args(["kill", id, "KILL"]).output();
                    killed = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let _ = self.runc().args(["delete", "--force", id]).output();
        remove_stubs(rootfs, &stubs, &stub_parents);
        let code = status.map(|s| s.code().unwrap_or(128 + 9));
        let runtime_error = match code {
            Ok(0) | Err(_) => None,
            Ok(_) => runtime_error(&bundle.join("runc.log")),
        };
        let _ = fs::remove_dir_all(&bundle);
        if killed {
            return Err(Error::Cancelled);
        }
        let code = code?;
        Ok(Exit {
            code,
            oom_killed: code == 128 + 9 && oom_kills() > oom_kills_before,
            runtime_error,
        })
    }
}

/// Every path a run mounts something on in its rootfs: the generated `/etc/hosts` and
/// `/etc/resolv.conf`, then `mounts`' destinations.
pub fn mount_points(mounts: &[Mount]) -> Vec<String> {
    let mut points: Vec<String> = vec!["/etc/hosts".into(), "/etc/resolv.conf".into()];
    points.extend(mounts.iter().map(|m| m.destination.clone()));
    points
}

/// What a mount point needs: an empty file, or a directory made by kiln or by runc.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StubKind {
    File,
    Dir,
    /// A tmpfs takes the mode of a mount point that exists (runc chmods it), and 1777
    /// on one runc makes: runc makes it, as in BuildKit.
    LeftToRunc,
}

/// Each mount point in `rootfs` with the stub it needs: files for the generated
/// `/etc/hosts` and `/etc/resolv.conf` and for binds of anything but a directory.
fn mount_point_kinds(rootfs: &Path, mounts: &[Mount]) -> Vec<(PathBuf, StubKind)> {
    let mut points = vec![
        ("etc/hosts".to_owned(), StubKind::File),
        ("etc/resolv.conf".to_owned(), StubKind::File),
    ];
    for mount in mounts {
        let kind = match &mount.kind {
            MountKind::Bind { source, .. } if !source.is_dir() => StubKind::File,
            MountKind::Bind { .. } => StubKind::Dir,
            MountKind::Tmpfs { .. } => StubKind::LeftToRunc,
        };
        points.push((mount.destination.trim_start_matches('/').to_owned(), kind));
    }
    points
        .into_iter()
        .map(|(point, kind)| (rootfs.join(point), kind))
        .collect()
}

/// Passes everything read from `pipe` to `output`.
fn pump(mut pipe: impl Read, stream: OutputStream, output: &(dyn Fn(OutputStream, &[u8]) + Sync)) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 {
            break;
        }
        output(stream, &buf[..n]);
    }
}

/// The deepest-first list of paths (mount points and their parents) that do not exist
/// in `rootfs` yet.
fn missing_paths(rootfs: &Path, destinations: &[String]) -> Vec<PathBuf> {
    let mut missing = Vec::new();
    for destination in destinations {
        let mut path = rootfs.to_path_buf();
        for component in destination.split('/').filter(|c| !c.is_empty()) {
            path.push(component);
            if std::fs::symlink_metadata(&path).is_err() && !missing.contains(&path) {
                missing.push(path.clone());
            }
        }
    }
    missing.reverse();
    missing
}

/// The directories that existed before a run and hold its mount stubs: their times
/// before the stubs, and their modification time just after.
struct StubParents(Vec<StubParent>);

struct StubParent {
    path: PathBuf,
    before: std::fs::FileTimes,
    after_stubs: Option<std::time::SystemTime>,
}

impl StubParents {
    /// Creates the mount points `rootfs` lacks as runc would (directories, and empty
    /// files where a file is mounted, mode 0755; a tmpfs's own is left to runc), noting
    /// the times of the directories
    /// holding them: one still at its after-stubs time when the run ends was changed
    /// by nothing else. A stub reached through a symlink is left to runc.
    fn create_stubs(rootfs: &Path, stubs: &[PathBuf], points: &[(PathBuf, StubKind)]) -> Self {
        let mut parents: Vec<StubParent> = Vec::new();
        for stub in stubs.iter().rev() {
            let Some(parent) = stub.parent() else {
                continue;
            };
            if !stubs.iter().any(|s| s == parent) && !parents.iter().any(|p| p.path == parent) {
                let Ok(meta) = fs_err::symlink_metadata(parent) else {
                    continue;
                };
                let before = std::fs::FileTimes::new()
                    .set_accessed(meta.accessed().unwrap_or(std::time::UNIX_EPOCH))
                    .set_modified(meta.modified().unwrap_or(std::time::UNIX_EPOCH));
                parents.push(StubParent {
                    path: parent.to_path_buf(),
                    before,
                    after_stubs: None,
                });
            }
            let kind = points
                .iter()
                .find(|(point, _)| point == stub)
                .map_or(StubKind::Dir, |(_, kind)| *kind);
            if kind != StubKind::LeftToRunc && inside_without_symlinks(rootfs, parent) {
                let _ = create_stub(stub, kind == StubKind::File);
            }
        }
        for parent in &mut parents {
            parent.after_stubs = fs_err::symlink_metadata(&parent.path)
                .and_then(|m| m.modified())
                .ok();
        }
        Self(parents)
    }

    /// The parents nothing changed after their stubs were made.
    fn untouched(&self) -> impl Iterator<Item = &StubParent> {
        self.0.iter().filter(|parent| {
            let now = fs_err::symlink_metadata(&parent.path).and_then(|m| m.modified());
            matches!((parent.after_stubs, now), (Some(after), Ok(now)) if after == now)
        })
    }
}

/// A mount point: an empty file 0755 for a file, else a directory 0755 (runc's).
fn create_stub(stub: &Path, is_file: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if is_file {
        fs_err::File::create_new(stub)?;
    } else {
        fs_err::create_dir(stub)?;
    }
    fs_err::set_permissions(stub, std::fs::Permissions::from_mode(0o755))
}

/// Whether `dir` is `rootfs` or under it through real directories only.
fn inside_without_symlinks(rootfs: &Path, dir: &Path) -> bool {
    let Ok(relative) = dir.strip_prefix(rootfs) else {
        return false;
    };
    let mut path = rootfs.to_path_buf();
    relative.components().all(|component| {
        path.push(component);
        matches!(component, std::path::Component::Normal(_))
            && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
    })
}

/// Removes mount stubs that are still empty (BuildKit's `executor.MountStubsCleaner`):
/// the directory holding each one gets its access and modification times back, so a
/// stub leaves no trace in the layer's times either (moby/buildkit#3148). A directory
/// only the stubs' creation changed gets the times it had before the run, so it is
/// unchanged (a layer need not hold it); one the process changed keeps its times.
fn remove_stubs(rootfs: &Path, stubs: &[PathBuf], parents: &StubParents) {
    let untouched: Vec<&StubParent> = parents.untouched().collect();
    remove_empty_stubs(rootfs, stubs);
    for parent in untouched {
        let stubs_left = stubs
            .iter()
            .any(|s| s.parent() == Some(parent.path.as_path()) && s.symlink_metadata().is_ok());
        if !stubs_left {
            let _ = fs_err::File::open(&parent.path).and_then(|dir| dir.set_times(parent.before));
        }
    }
}

/// Removes the stubs that are still empty, each parent keeping its times.
fn remove_empty_stubs(rootfs: &Path, stubs: &[PathBuf]) {
    let real_root = std::fs::canonicalize(rootfs).ok();
    for stub in stubs {
        let remove = match std::fs::symlink_metadata(stub) {
            Ok(m) if m.is_dir() => fs_err::read_dir(stub).is_ok_and(|mut d| d.next().is_none()),
            Ok(m) => m.len() == 0,
            Err(_) => false,
        };
        if !remove {
            continue;
        }
        // The parent's times, unless it is reached through a symlink.
        let parent = stub.parent().filter(|parent| {
            let relative = parent.strip_prefix(rootfs).ok();
            match (&real_root, relative, std::fs::canonicalize(parent)) {
                (Some(root), Some(relative), Ok(real)) => real == root.join(relative),
                _ => false,
            }
        });
        let times = parent
            .and_then(|p| fs_err::metadata(p).ok())
            .and_then(|m| Some((m.accessed().ok()?, m.modified().ok()?)));
        let removed = if std::fs::symlink_metadata(stub).is_ok_and(|m| m.is_dir()) {
            std::fs::remove_dir(stub)
        } else {
            fs_err::remove_file(stub)
        };
        if let (Ok(()), Some(parent), Some((accessed, modified))) = (removed, parent, times) {
            let _ = fs_err::File::open(parent).and_then(|dir| {
                dir.set_times(
                    std::fs::FileTimes::new()
                        .set_accessed(accessed)
                        .set_modified(modified),
                )
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn set_times(path: &Path, secs: u64) {
        let t = SystemTime::UNIX_EPOCH + Duration::new(secs, 500_000_000);
        fs::File::open(path)
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
            .unwrap();
    }

    fn mtime(path: &Path) -> SystemTime {
        fs::metadata(path).unwrap().modified().unwrap()
    }

    /// BuildKit's `MountStubsCleaner`: empty stubs go, a directory that holds one keeps
    /// the times it had before the removal, and a stub that was written to stays.
    #[test]
    fn stubs_are_removed_and_their_parents_keep_their_times() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        let destinations = vec![
            "/etc/hosts".to_owned(),
            "/etc/resolv.conf".to_owned(),
            "/mnt/a/b".to_owned(),
        ];
        let stubs = missing_paths(&rootfs, &destinations);
        let parents = StubParents(Vec::new());
        // What runc does: create the mount points.
        fs::write(rootfs.join("etc/hosts"), "").unwrap();
        fs::write(rootfs.join("etc/resolv.conf"), "nameserver 1.1.1.1\n").unwrap();
        fs::create_dir_all(rootfs.join("mnt/a/b")).unwrap();
        set_times(&rootfs.join("etc"), 1_600_000_000);
        set_times(&rootfs.join("mnt/a"), 1_600_000_100);
        set_times(&rootfs, 1_600_000_200);
        let before = [rootfs.join("etc"), rootfs.clone()].map(|p| mtime(&p));

        remove_stubs(&rootfs, &stubs, &parents);

        assert!(!rootfs.join("etc/hosts").exists());
        assert!(rootfs.join("etc/resolv.conf").exists());
        assert!(!rootfs.join("mnt").exists());
        assert_eq!(
            [rootfs.join("etc"), rootfs.clone()].map(|p| mtime(&p)),
            before
        );
    }
}
