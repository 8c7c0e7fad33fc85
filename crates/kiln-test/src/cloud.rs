//! Cloud storage emulators for the `type=s3` and `type=azblob` cache tests: moto's S3
//! server (PyPI `moto[server]`) and Azurite's blob service (npm `azurite`), each on a
//! free port of 127.0.0.1, stopped when dropped. `.ci/run` installs both and names
//! them in `KILN_MOTO_SERVER` / `KILN_AZURITE`; elsewhere `moto_server` / `azurite-blob`
//! on PATH do. Missing, the test skips (a failure under CI).

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{KillOnDrop, find_tool, free_port, skip};

/// Azurite's well-known development account and key.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// The key of [`AZURITE_ACCOUNT`].
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn wait_for_port(port: u16, child: &mut KillOnDrop, what: &str) {
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 30 s");
}

const MOTO_AUTHORIZATION: &str = "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

/// A moto S3 server.
pub struct Moto {
    /// Its port.
    pub port: u16,
    _child: KillOnDrop,
    /// Where it keeps its request recording (its own: moto's default is a file in
    /// the working directory, shared by every server a test run starts).
    _recording: tempfile::TempDir,
}

impl Moto {
    /// Starts one, or skips when moto is not installed.
    pub fn start() -> Option<Moto> {
        let Some(server) = find_tool("KILN_MOTO_SERVER", "moto_server") else {
            skip(
                "moto's S3 server not found (pip install 'moto[server]', or set KILN_MOTO_SERVER)",
            );
            return None;
        };
        let port = free_port();
        let recording = tempfile::tempdir().expect("a temp directory");
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env(
                "MOTO_RECORDER_FILEPATH",
                recording.path().join("recording.jsonl"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let mut child = KillOnDrop(child);
        wait_for_port(port, &mut child, "moto_server");
        Some(Moto {
            port,
            _child: child,
            _recording: recording,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (moto takes unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        let status = self.request(&["-X", "PUT"], &format!("/{bucket}"), None).0;
        assert!(status == 200, "creating bucket {bucket}: HTTP {status}");
    }

    /// An object's bytes, `None` when there is none.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let (status, body) = self.request(&[], &format!("/{bucket}/{key}"), None);
        (status == 200).then_some(body)
    }

    /// Replaces an object's bytes.
    pub fn put_object(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let status = self
            .request(&["-X", "PUT"], &format!("/{bucket}/{key}"), Some(bytes))
            .0;
        assert_eq!(status, 200, "writing {key}");
    }

    /// Starts recording the requests moto answers (moto's own recorder).
    pub fn start_recording(&self) {
        let status = self
            .request(&["-X", "POST"], "/moto-api/recorder/start-recording", None)
            .0;
        assert_eq!(status, 200, "starting moto's recorder");
    }

    /// The requests recorded since [`Moto::start_recording`]: method and URL each.
    pub fn recorded(&self) -> Vec<(String, String)> {
        let (status, body) = self.request(&[], "/moto-api/recorder/download-recording", None);
        assert_eq!(status, 200, "reading moto's recording");
        String::from_utf8_lossy(&body)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|r| {
                let field = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                (field("method"), field("url"))
            })
            .filter(|(_, url)| {
                url.contains(&format!("127.0.0.1:{}/", self.port)) && !url.contains("/moto-api/")
            })
            .collect()
    }

    /// The keys under `prefix`, sorted.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) =
            self.request(&[], &format!("/{bucket}?list-type=2&prefix={prefix}"), None);
        assert_eq!(status, 200, "listing {bucket}");
        let text = String::from_utf8_lossy(&body);
        let mut keys: Vec<String> = text
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(k, _)| k.to_owned()))
            .collect();
        keys.sort();
        keys
    }

    /// `curl` against the server: the status and the body.
    fn request(&self, args: &[&str], path: &str, body: Option<&[u8]>) -> (u16, Vec<u8>) {
        let dir = tempfile::tempdir().expect("a temp directory");
        let (sent, received) = (dir.path().join("sent"), dir.path().join("received"));
        let mut curl = Command::new("curl");
        // moto checks no signature, but answers an object's GET only to a request
        // that claims one.
        curl.args(["-s", "-g", "-H", MOTO_AUTHORIZATION, "-o"])
            .arg(&received)
            .args(["-w", "%{http_code}"])
            .args(args);
        if let Some(body) = body {
            fs_err::write(&sent, body).expect("the request body");
            curl.args([
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
            ])
            .arg(format!("@{}", sent.display()));
        }
        let output = curl
            .arg(format!("{}{path}", self.endpoint()))
            .output()
            .expect("curl runs");
        let status = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        (status, fs_err::read(&received).unwrap_or_default())
    }
}

/// Azurite's blob service, its data in a temp directory.
pub struct Azurite {
    /// Its port.
    pub port: u16,
    _child: KillOnDrop,
    /// Where it keeps blobs and its database.
    pub dir: tempfile::TempDir,
}

impl Azurite {
    /// Starts one, or skips when Azurite is not installed.
    pub fn start() -> Option<Azurite> {
        let Some(server) = find_tool("KILN_AZURITE", "azurite-blob") else {
            skip(
                "Azurite not found (npm install azurite, or set KILN_AZURITE to its azurite-blob)",
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("a temp directory");
        let port = free_port();
        let child = Command::new(server)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path())
            .args([
                "--silent",
                "--skipApiVersionCheck",
                "--disableProductStyleUrl",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite-blob starts");
        let mut child = KillOnDrop(child);
        wait_for_port(port, &mut child, "azurite-blob");
        Some(Azurite {
            port,
            _child: child,
            dir,
        })
    }

    /// The account URL: `http://127.0.0.1:PORT/devstoreaccount1`.
    pub fn account_url(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.port)
    }
}

/// The fake GitHub Actions cache service (`fakes/gha_cache.py`), with its v2 blobs in
/// an [`Azurite`] when given one.
pub struct GhaFake {
    /// Its port.
    pub port: u16,
    /// The runtime token it accepts: a JWT whose scopes are `refs/heads/main`
    /// (read and write).
    pub token: String,
    /// The GitHub token its REST listing accepts.
    pub ghtoken: String,
    _child: KillOnDrop,
}

impl GhaFake {
    /// Starts one (python3 runs it).
    pub fn start(azurite: Option<&Azurite>) -> GhaFake {
        let port = free_port();
        let token = runtime_token(r#"[{"Scope":"refs/heads/main","Permission":3}]"#);
        let ghtoken = "ghp_kiln_fake_listing_token".to_owned();
        let script = crate::workspace_root().join("crates/kiln-test/fakes/gha_cache.py");
        let mut command = Command::new("python3");
        command.arg(script).args([
            "--port",
            &port.to_string(),
            "--token",
            &token,
            "--ghtoken",
            &ghtoken,
        ]);
        if let Some(azurite) = azurite {
            command.args([
                "--azurite-url",
                &azurite.account_url(),
                "--azurite-key",
                AZURITE_KEY,
            ]);
        }
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 runs the fake cache service");
        let mut child = KillOnDrop(child);
        wait_for_port(port, &mut child, "the fake GitHub Actions cache service");
        GhaFake {
            port,
            token,
            ghtoken,
            _child: child,
        }
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// How many requests of each kind it answered (`v1 lookup`, `v2 reserve`, …).
    pub fn stats(&self) -> serde_json::Value {
        let output = Command::new("curl")
            .args(["-s", &format!("{}_fake/stats", self.url())])
            .output()
            .expect("curl runs");
        serde_json::from_slice(&output.stdout).expect("the fake's stats")
    }
}

/// A runtime token as GitHub's runner hands it out: a JWT whose `ac` claim lists the
/// scopes (unsigned: clients read it without verifying, the service checks it whole).
pub fn runtime_token(scopes: &str) -> String {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({"ac": scopes, "nbf": now - 60, "exp": now + 6 * 3600});
    format!(
        "{}.{}.unsigned",
        encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        encode(claims.to_string().as_bytes())
    )
}
