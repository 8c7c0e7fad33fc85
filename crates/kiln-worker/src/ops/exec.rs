//! Exec ops: mount the inputs, run the process through runc, keep the writable mounts.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use fs_err as fs;
use kiln_exec::{Mount, MountKind, NetworkMode, OutputStream, Process};
use kiln_llb::{Platform, pb};
use kiln_store::{MountGuard, Snapshot};

use super::session::{self, AgentProxy, TmpfsDir};
use crate::fsutil::resolve_in_root;
use crate::{Error, Ref, Worker, sha256_hex};

/// Host networking and privileged runs need the build to be granted them, as in
/// BuildKit (`--allow network.host`, `--allow security.insecure`).
pub(crate) fn check_entitlements(exec: &pb::ExecOp, granted: &[String]) -> Result<(), Error> {
    let needs = |name: &str| -> Result<(), Error> {
        if granted.iter().any(|g| g == name) {
            Ok(())
        } else {
            Err(Error::Unsupported(format!(
                "{name} is not allowed: grant it with --allow {name} (and the engine must permit it)"
            )))
        }
    };
    if exec.network == pb::NetMode::Host as i32 {
        needs("network.host")?;
    }
    if exec.security == pb::SecurityMode::Insecure as i32 {
        needs("security.insecure")?;
    }
    Ok(())
}

/// The proxy variables a step gets, in both cases as BuildKit sets them.
fn proxy_env_list(proxy: &pb::ProxyEnv) -> Vec<String> {
    [
        ("HTTP_PROXY", &proxy.http_proxy),
        ("HTTPS_PROXY", &proxy.https_proxy),
        ("FTP_PROXY", &proxy.ftp_proxy),
        ("NO_PROXY", &proxy.no_proxy),
        ("ALL_PROXY", &proxy.all_proxy),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_empty())
    .flat_map(|(name, value)| {
        [
            format!("{name}={value}"),
            format!("{}={value}", name.to_lowercase()),
        ]
    })
    .collect()
}

/// A cache-mount directory held by one `sharing=private` user: the mount's own
/// directory when free, else the first free sibling (`1-<dir>`, `2-<dir>`, …; `du`
/// shows each by its name's start), kept for later private users as BuildKit keeps its
/// pool of private mounts.
struct PrivateMount<'a> {
    worker: &'a Worker,
    dir: PathBuf,
}

impl<'a> PrivateMount<'a> {
    fn claim(worker: &'a Worker, shared_dir: &Path) -> Self {
        let mut held = worker
            .private_mounts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let dir = (0..)
            .map(|n| match n {
                0 => shared_dir.to_path_buf(),
                n => shared_dir.with_file_name(format!(
                    "{n}-{}",
                    shared_dir.file_name().unwrap_or_default().to_string_lossy()
                )),
            })
            .find(|dir| !held.contains(dir))
            .expect("an unbounded search finds a free directory");
        held.insert(dir.clone());
        Self { worker, dir }
    }
}

impl Drop for PrivateMount<'_> {
    fn drop(&mut self) {
        self.worker
            .private_mounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.dir);
    }
}

/// The cache-mount directories one solve has started afresh. A step that ignores the
/// cache (`--no-cache`, `llb.IgnoreCache`) empties each cache it mounts, once per solve:
/// BuildKit prunes the cache mounts of such steps when it loads a definition, and the
/// solve's later steps share what is written after.
#[derive(Default)]
pub(crate) struct FreshCaches(std::sync::Mutex<std::collections::HashSet<PathBuf>>);

impl FreshCaches {
    /// Removes `dir` the first time this solve asks (it is made again, empty or seeded,
    /// as for a cache never used). A step of another build still using it keeps its
    /// mount of the directory moved away.
    fn reset_once(&self, dir: &Path) -> Result<(), Error> {
        let mut reset = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !reset.insert(dir.to_path_buf()) || !dir.exists() {
            return Ok(());
        }
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let trash = dir.with_file_name(format!(".reset-{name}-{}", std::process::id()));
        fs::rename(dir, &trash)?;
        fs::remove_dir_all(&trash)?;
        Ok(())
    }
}

/// Runs an exec op for `platform` (`None`: the worker's); returns one result per
/// output index.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    worker: &Worker,
    digest: &str,
    exec: &pb::ExecOp,
    inputs: &[Ref],
    options: &crate::SolveOptions<'_>,
    fresh_caches: Option<&FreshCaches>,
    platform: Option<&Platform>,
    log: &(dyn Fn(&[u8]) + Sync),
) -> Result<Vec<Ref>, Error> {
    let secrets = options.secrets;
    let cancelled = options.cancelled.as_ref();
    let meta = exec.meta.clone().unwrap_or_default();
    let input_of = |m: &pb::Mount| {
        usize::try_from(m.input)
            .ok()
            .and_then(|i| inputs.get(i))
            .cloned()
            .unwrap_or_default()
    };
    let mut guards: Vec<MountGuard> = Vec::new();
    // Writable mounts whose changes become the step's outputs, committed on success.
    let mut output_mounts: Vec<MountGuard> = Vec::new();
    let mut new_layers: Vec<(i64, Snapshot)> = Vec::new();
    let mut unchanged_outputs: Vec<(i64, Ref)> = Vec::new();
    let mut discard: Vec<Snapshot> = Vec::new();
    let mut locks = Vec::new();
    let mut claims: Vec<PrivateMount> = Vec::new();
    let mut rootfs: Option<PathBuf> = None;
    // The root's snapshot when the step's result is its root (the usual RUN).
    let mut root_output: Option<Snapshot> = None;
    let mut mounts: Vec<Mount> = Vec::new();
    let mut secret_dir: Option<TmpfsDir> = None;
    let mut proxies: Vec<AgentProxy> = Vec::new();
    let mut secret_env: Vec<String> = Vec::new();

    let outcome = (|| -> Result<kiln_exec::Exit, Error> {
        for m in &exec.mounts {
            let kind = pb::MountType::try_from(m.mount_type).unwrap_or(pb::MountType::Bind);
            let dest = absolute_dest(&meta.cwd, &m.dest);
            match kind {
                pb::MountType::Bind => {
                    let input = input_of(m);
                    // As BuildKit: the root is mounted writable even for a read-only
                    // step (runc makes its mount points there first), and an empty
                    // read-only mount is a fresh, throwaway snapshot.
                    let writable = !m.readonly || dest == "/" || input.snapshot().is_none();
                    let path = if writable {
                        let snapshot = worker.snapshots.create(input.snapshot().as_ref())?;
                        let guard = worker.snapshots.mount(&snapshot)?;
                        let path = guard.path().to_path_buf();
                        if m.output >= 0 {
                            if dest == "/" && (m.selector.is_empty() || m.selector == "/") {
                                root_output = Some(snapshot.clone());
                            }
                            new_layers.push((m.output, snapshot));
                            output_mounts.push(guard);
                        } else {
                            discard.push(snapshot);
                            guards.push(guard);
                        }
                        path
                    } else {
                        let snapshot = input.snapshot().expect("an empty mount is writable");
                        let guard = worker.snapshots.mount_readonly(&snapshot)?;
                        let path = guard.path().to_path_buf();
                        guards.push(guard);
                        if m.output >= 0 {
                            // A read-only mount's output is its input, unchanged.
                            unchanged_outputs.push((m.output, input.clone()));
                        }
                        path
                    };
                    let source = mount_source(&path, &m.selector, &dest)?;
                    if dest == "/" {
                        rootfs = Some(source);
                    } else {
                        mounts.push(Mount {
                            destination: dest.clone(),
                            kind: MountKind::Bind {
                                source,
                                readonly: m.readonly,
                            },
                        });
                    }
                }
                pb::MountType::Cache => {
                    let opt = m.cache_opt.clone().unwrap_or_default();
                    // One directory per id and seed, as BuildKit keys cache mounts.
                    let seed_key = input_of(m).key;
                    let shared_dir = worker.config.root.join("cachemounts").join(sha256_hex(&[
                        opt.id.as_bytes(),
                        seed_key.as_bytes(),
                        m.selector.as_bytes(),
                    ]));
                    let dir = if opt.sharing == pb::CacheSharingOpt::Private as i32 {
                        let claim = PrivateMount::claim(worker, &shared_dir);
                        let dir = claim.dir.clone();
                        claims.push(claim);
                        dir
                    } else {
                        shared_dir
                    };
                    if let Some(fresh_caches) = fresh_caches {
                        fresh_caches.reset_once(&dir)?;
                    }
                    let fresh = !dir.exists();
                    fs::create_dir_all(&dir)?;
                    if fresh {
                        if let Some(seed) = input_of(m).snapshot() {
                            let guard = worker.snapshots.mount_readonly(&seed)?;
                            let from = if m.selector.is_empty() {
                                guard.path().to_path_buf()
                            } else {
                                resolve_in_root(guard.path(), &m.selector, true)?
                            };
                            crate::fsutil::copy_dir_contents(&from, &dir)?;
                            let meta = fs::metadata(&from)?;
                            fs::set_permissions(&dir, meta.permissions())?;
                            use std::os::unix::fs::MetadataExt;
                            rustix::fs::chown(
                                &dir,
                                Some(rustix::fs::Uid::from_raw(meta.uid())),
                                Some(rustix::fs::Gid::from_raw(meta.gid())),
                            )
                            .map_err(std::io::Error::from)?;
                        }
                    }
                    if opt.sharing == pb::CacheSharingOpt::Locked as i32 {
                        let lock = worker.lock(&format!("cache {}", dir.display()));
                        // The same cache mounted twice in one step is locked once.
                        if !locks.iter().any(|held| std::sync::Arc::ptr_eq(held, &lock)) {
                            locks.push(lock);
                        }
                    }
                    mounts.push(Mount {
                        destination: dest.clone(),
                        kind: MountKind::Bind {
                            source: dir,
                            readonly: m.readonly,
                        },
                    });
                }
                pb::MountType::Tmpfs => mounts.push(Mount {
                    destination: dest.clone(),
                    kind: MountKind::Tmpfs {
                        size: m.tmpfs_opt.map_or(0, |t| t.size),
                        readonly: m.readonly,
                    },
                }),
                pb::MountType::Secret => {
                    let opt = m.secret_opt.clone().unwrap_or_default();
                    let Some(value) = secrets.secret(&opt.id) else {
                        if opt.optional {
                            continue;
                        }
                        return Err(Error::Source(format!("secret {}: not found", opt.id)));
                    };
                    if secret_dir.is_none() {
                        secret_dir = Some(TmpfsDir::new("secrets")?);
                    }
                    let dir = secret_dir.as_ref().expect("just created");
                    let name = format!("{}", mounts.len());
                    let path =
                        session::secret_file(dir, &name, &value, opt.uid, opt.gid, opt.mode)?;
                    mounts.push(Mount {
                        destination: dest.clone(),
                        kind: MountKind::Bind {
                            source: path,
                            readonly: true,
                        },
                    });
                }
                pb::MountType::Ssh => {
                    let opt = m.ssh_opt.clone().unwrap_or_default();
                    let id = if opt.id.is_empty() {
                        "default"
                    } else {
                        opt.id.as_str()
                    };
                    let Some(agent) = secrets.ssh_agent(id) else {
                        if opt.optional {
                            continue;
                        }
                        return Err(Error::Source(format!(
                            "no SSH key {id:?} forwarded from the client: pass --ssh {id} (the agent in SSH_AUTH_SOCK) or --ssh {id}=/path/to/agent.sock"
                        )));
                    };
                    let proxy = AgentProxy::start(agent, opt.uid, opt.gid, opt.mode)?;
                    mounts.push(Mount {
                        destination: dest.clone(),
                        kind: MountKind::Bind {
                            source: proxy.path().to_path_buf(),
                            readonly: false,
                        },
                    });
                    proxies.push(proxy);
                }
            }
        }
        for secret in &exec.secretenv {
            match secrets.secret(&secret.id) {
                Some(value) => secret_env.push(format!(
                    "{}={}",
                    secret.name,
                    String::from_utf8_lossy(&value)
                )),
                None if secret.optional => {}
                None => return Err(Error::Source(format!("secret {}: not found", secret.id))),
            }
        }
        let rootfs = rootfs
            .clone()
            .ok_or_else(|| Error::Unsupported("exec without a root mount".to_owned()))?;
        let mut env = meta.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={}", kiln_oci::image::DEFAULT_PATH));
        }
        env.extend(
            meta.proxy_env
                .as_ref()
                .map(proxy_env_list)
                .unwrap_or_default(),
        );
        env.extend(secret_env.iter().cloned());
        let cwd = if meta.cwd.is_empty() {
            "/".to_owned()
        } else {
            meta.cwd.clone()
        };
        let cwd_path = resolve_in_root(&rootfs, &cwd, true)?;
        if !cwd_path.exists() {
            fs::create_dir_all(&cwd_path)?;
        }
        let user = kiln_exec::resolve_user(&rootfs, &meta.user)?;
        // Parents before what is mounted inside them, as BuildKit orders them.
        mounts.sort_by(|a, b| a.destination.cmp(&b.destination));
        // A step that asks for no mode gets the worker's default.
        let network = match pb::NetMode::try_from(exec.network) {
            Ok(pb::NetMode::None) => NetworkMode::None,
            Ok(pb::NetMode::Host) => NetworkMode::Host,
            _ => worker.config.default_network,
        };
        let mut process = Process {
            args: meta.args.clone(),
            env,
            cwd,
            user,
            hostname: meta.hostname.clone(),
            network,
            privileged: exec.security == pb::SecurityMode::Insecure as i32,
            readonly_rootfs: exec.mounts.iter().any(|m| m.dest == "/" && m.readonly),
            extra_hosts: meta
                .extra_hosts
                .iter()
                .map(|h| (h.host.clone(), h.ip.clone()))
                .collect(),
            ulimits: meta
                .ulimit
                .iter()
                .map(|u| (u.name.clone(), u.soft, u.hard))
                .collect(),
            cgroup_parent: Some(meta.cgroup_parent.clone())
                .filter(|p| !p.is_empty())
                .or_else(|| worker.config.cgroup_parent.clone()),
            cancelled: cancelled.cloned(),
        };
        // Another architecture's step runs under QEMU.
        if let Some(platform) = platform {
            kiln_exec::emulator::emulate(platform, &mut process, &mut mounts)?;
        }
        let _held = hold_locks(&locks, &|| {
            worker.cancellation().load(Ordering::Relaxed)
                || cancelled.is_some_and(|c| c.load(Ordering::Relaxed))
        })?;
        let id = format!("kiln-{}-{}", &digest[7..19], std::process::id());
        let exit = worker.executor.run(
            &id,
            &rootfs,
            &process,
            &mounts,
            &|_: OutputStream, data: &[u8]| log(data),
        )?;
        Ok(exit)
    })();
    let outcome = outcome.and_then(|exit| {
        if succeeded(&exit, &meta.valid_exit_codes) {
            for mount in output_mounts.drain(..) {
                mount.commit()?;
            }
            if let Some(root) = &root_output {
                let parents = stub_parents(&kiln_exec::mount_points(&mounts));
                worker.snapshots.drop_copied_up_dirs(root, &parents)?;
            }
        }
        Ok(exit)
    });
    drop(output_mounts);
    drop(guards);
    drop(claims);
    drop(proxies);
    drop(secret_dir);
    for snapshot in &discard {
        let _ = worker.snapshots.remove_layer(snapshot.id());
    }
    let exit = match outcome {
        Ok(exit) => exit,
        Err(e) => {
            for (_, snapshot) in &new_layers {
                let _ = worker.snapshots.remove_layer(snapshot.id());
            }
            return Err(e);
        }
    };
    if !succeeded(&exit, &meta.valid_exit_codes) {
        // Checked before its layers go, while what filled the disk is still there.
        let full_state = filesystem_full(&worker.config.root).then(|| worker.config.root.clone());
        for (_, snapshot) in &new_layers {
            let _ = worker.snapshots.remove_layer(snapshot.id());
        }
        return Err(Error::ProcessFailed {
            command: meta.args.join(" "),
            code: exit.code,
            oom_killed: exit.oom_killed,
            runtime_error: exit.runtime_error,
            full_state,
        });
    }
    let results = new_layers
        .into_iter()
        .map(|(index, snapshot)| (index, Ref::unkeyed(snapshot.chain)))
        .chain(unchanged_outputs);
    let mut outputs = Vec::new();
    for (index, result) in results {
        let index = index as usize;
        if outputs.len() <= index {
            outputs.resize(index + 1, Ref::default());
        }
        outputs[index] = result;
    }
    Ok(outputs)
}

/// Whether a step succeeded: it exited 0, or with one of the codes it lists as valid
/// (`validExitCodes`, which replace 0 when given, as in BuildKit).
fn succeeded(exit: &kiln_exec::Exit, valid_exit_codes: &[i32]) -> bool {
    if exit.runtime_error.is_some() {
        return false;
    }
    if valid_exit_codes.is_empty() {
        exit.code == 0
    } else {
        valid_exit_codes.contains(&exit.code)
    }
}

/// Takes every lock, waiting as long as the build is not cancelled (a step waiting for
/// a `sharing=locked` cache mount must not hold up a daemon that stops).
fn hold_locks<'a>(
    locks: &'a [std::sync::Arc<std::sync::Mutex<()>>],
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<std::sync::MutexGuard<'a, ()>>, Error> {
    let mut held = Vec::new();
    for lock in locks {
        loop {
            match lock.try_lock() {
                Ok(guard) => break held.push(guard),
                Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                    break held.push(poisoned.into_inner());
                }
                Err(std::sync::TryLockError::WouldBlock) if cancelled() => {
                    return Err(kiln_exec::Error::Cancelled.into());
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    }
    Ok(held)
}

/// A mount's destination as an absolute path: a relative one is under the step's
/// working directory, as BuildKit places it.
fn absolute_dest(cwd: &str, dest: &str) -> String {
    if dest.starts_with('/') {
        return dest.to_owned();
    }
    let joined = Path::new("/").join(cwd).join(dest);
    let mut clean = PathBuf::from("/");
    for component in joined.components() {
        match component {
            std::path::Component::Normal(name) => clean.push(name),
            std::path::Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    clean.display().to_string()
}

/// The host path a bind mount's `selector` names in the mounted `root`; a path the
/// input lacks is an error naming it (runc would only say it cannot stat it).
fn mount_source(root: &Path, selector: &str, dest: &str) -> Result<PathBuf, Error> {
    if selector.is_empty() || selector == "/" {
        return Ok(root.to_path_buf());
    }
    let source = resolve_in_root(root, selector, true)?;
    if std::fs::symlink_metadata(&source).is_err() {
        return Err(Error::Source(format!(
            "mount {dest}: source path {selector:?}: no such file or directory"
        )));
    }
    Ok(source)
}

/// The directories above each mount point (`etc` for `/etc/hosts`), relative to the
/// root: where runc may have created a mount stub, making overlay copy them up.
fn stub_parents(mount_points: &[String]) -> Vec<PathBuf> {
    let mut parents: Vec<PathBuf> = mount_points
        .iter()
        .flat_map(|point| {
            let point = PathBuf::from(point.trim_start_matches('/'));
            point
                .ancestors()
                .skip(1)
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .collect::<Vec<_>>()
        })
        .collect();
    parents.sort();
    parents.dedup();
    parents
}

/// Whether the filesystem under `path` has (almost) no blocks or inodes left, even for
/// root: a step that failed then most likely failed for that.
fn filesystem_full(path: &Path) -> bool {
    rustix::fs::statvfs(path)
        .is_ok_and(|fs| fs.f_bfree.saturating_mul(fs.f_frsize) < 8 << 20 || fs.f_ffree < 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_network_and_insecure_need_entitlements() {
        let host = pb::ExecOp {
            network: pb::NetMode::Host as i32,
            ..pb::ExecOp::default()
        };
        let insecure = pb::ExecOp {
            security: pb::SecurityMode::Insecure as i32,
            ..pb::ExecOp::default()
        };
        assert!(check_entitlements(&host, &[]).is_err());
        assert!(check_entitlements(&host, &["network.host".to_owned()]).is_ok());
        let err = check_entitlements(&insecure, &["network.host".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--allow security.insecure"), "{err}");
        assert!(check_entitlements(&pb::ExecOp::default(), &[]).is_ok());
    }
}
