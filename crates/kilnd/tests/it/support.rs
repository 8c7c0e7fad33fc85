//! Starting kilnd for a test, and a gRPC client of its socket.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// A kilnd on a unix socket in a temp directory, with its own state; killed when
/// dropped.
pub(crate) struct Kilnd {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) socket: PathBuf,
    child: Child,
}

impl Kilnd {
    /// Starts kilnd with `args` (besides `--root` and `--addr`), waiting until its
    /// socket answers.
    pub(crate) fn start(args: &[&str]) -> Kilnd {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("kilnd.sock");
        let child = Self::spawn(dir.path(), &socket, args);
        let kilnd = Kilnd { dir, socket, child };
        kilnd.wait_listening();
        kilnd
    }

    /// Kills the daemon with SIGKILL (nothing it could clean up) and starts another on
    /// the same state directory and socket.
    pub(crate) fn kill_and_restart(&mut self, args: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.dir.path(), &self.socket, args);
        self.wait_listening();
    }

    fn spawn(dir: &Path, socket: &Path, args: &[&str]) -> Child {
        let log = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("kilnd.log"))
            .unwrap();
        // A daemon holds few files open, whatever it transfers: it runs here with a
        // small limit (512), below what a large context has files.
        Command::new("sh")
            .arg("-c")
            .arg("ulimit -n 512 && exec \"$@\"")
            .arg("kilnd")
            .arg(env!("CARGO_BIN_EXE_kilnd"))
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--addr")
            .arg(format!("unix://{}", socket.display()))
            .args(args)
            .stdout(Stdio::null())
            .stderr(log.into_parts().0)
            .spawn()
            .unwrap()
    }

    fn wait_listening(&self) {
        for _ in 0..200 {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("kilnd did not listen:\n{}", self.log());
    }

    /// Sends SIGTERM; whether the daemon exited within `within`.
    pub(crate) fn terminate(&mut self, within: Duration) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The daemon's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn address(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub(crate) fn log(&self) -> String {
        fs_err::read_to_string(self.dir.path().join("kilnd.log")).unwrap_or_default()
    }
}

impl Drop for Kilnd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gRPC channel to a unix socket.
pub(crate) async fn connect(socket: &Path) -> Channel {
    let socket = socket.to_path_buf();
    Endpoint::from_static("http://kilnd")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .unwrap()
}

/// Whether this test can run a daemon that runs containers (root, runc, the
/// registry, skopeo, umoci, busybox); otherwise it is skipped (a failure under CI).
pub(crate) fn can_build() -> bool {
    let ok = kiln_test::is_root()
        && ["runc", "docker-registry", "skopeo", "umoci", "busybox"]
            .iter()
            .all(|b| kiln_test::on_path(b));
    if !ok {
        kiln_test::skip("needs root, runc, docker-registry, skopeo, umoci and busybox-static");
    }
    ok
}
