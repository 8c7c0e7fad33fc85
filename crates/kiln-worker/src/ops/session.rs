//! What a RUN borrows from the client for one run: secrets as files on tmpfs (never in a
//! snapshot) and ssh-agent sockets proxied with the mode and owner the mount asks for.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fs_err as fs;

/// A private directory on tmpfs, removed when dropped.
pub(crate) struct TmpfsDir {
    path: PathBuf,
}

impl TmpfsDir {
    pub(crate) fn new(kind: &str) -> io::Result<Self> {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = base.join(format!("kiln-{kind}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path)?;
        fs::set_permissions(&path, std::fs::Permissions::from_mode(0o711))?;
        Ok(Self { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TmpfsDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

fn chown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    rustix::fs::chown(
        path,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(io::Error::from)
}

/// Writes a secret file with its owner and mode; returns its path.
pub(crate) fn secret_file(
    dir: &TmpfsDir,
    name: &str,
    data: &[u8],
    uid: u32,
    gid: u32,
    mode: u32,
) -> io::Result<PathBuf> {
    let path = dir.path().join(name);
    fs::write(&path, data)?;
    chown(&path, uid, gid)?;
    fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(path)
}

/// A socket that forwards every connection to an ssh agent, while it lives.
pub(crate) struct AgentProxy {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    _dir: TmpfsDir,
}

impl AgentProxy {
    pub(crate) fn start(agent: PathBuf, uid: u32, gid: u32, mode: u32) -> io::Result<Self> {
        let dir = TmpfsDir::new("ssh")?;
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path)?;
        chown(&path, uid, gid)?;
        fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let agent = agent.clone();
                        std::thread::spawn(move || forward(client, &agent));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(20))
                    }
                    Err(_) => break,
                }
            }
        });
        Ok(Self {
            path,
            stop,
            _dir: dir,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AgentProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn forward(client: UnixStream, agent: &Path) {
    let _ = client.set_nonblocking(false);
    let Ok(upstream) = UnixStream::connect(agent) else {
        return;
    };
    let (Ok(mut client_read), Ok(mut upstream_write)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let to_agent = std::thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut upstream_write);
        let _ = upstream_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut upstream_read, mut client_write) = (upstream, client);
    let _ = io::copy(&mut upstream_read, &mut client_write);
    let _ = client_write.shutdown(std::net::Shutdown::Write);
    let _ = to_agent.join();
}
