//! Registry credentials as the docker CLI keeps them: `$DOCKER_CONFIG/config.json`
//! (else `~/.docker/config.json`), an `auths` entry (`auth` = base64 of `user:pass`, or
//! `username`/`password`), or a credential helper (`credHelpers` per registry, else
//! `credsStore`) run as `docker-credential-NAME get`. Both the registry client and a
//! client's session (answering a daemon's `Auth.Credentials`) read them.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::Value;

/// A user name and secret for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    // The secret never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

fn config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json")),
    }
}

/// The names a registry may be stored under (Docker Hub keeps its old index URL).
fn server_keys(host: &str) -> Vec<String> {
    if matches!(
        host,
        "docker.io" | "registry-1.docker.io" | "index.docker.io"
    ) {
        return vec![
            "https://index.docker.io/v1/".to_owned(),
            "docker.io".to_owned(),
        ];
    }
    vec![
        host.to_owned(),
        format!("https://{host}"),
        format!("http://{host}"),
    ]
}

fn from_helper(helper: &str, server: &str) -> Option<Credentials> {
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(server.as_bytes()).ok()?;
    let output = child.wait_with_output().ok()?;
    if !output.status.success() {
        return None;
    }
    let value: Value = serde_json::from_slice(&output.stdout).ok()?;
    Some(Credentials {
        username: value["Username"].as_str()?.to_owned(),
        secret: value["Secret"].as_str()?.to_owned(),
    })
}

fn from_entry(entry: &Value) -> Option<Credentials> {
    if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (username, secret) = text.split_once(':')?;
        return Some(Credentials {
            username: username.to_owned(),
            secret: secret.to_owned(),
        });
    }
    Some(Credentials {
        username: entry["username"].as_str()?.to_owned(),
        secret: entry["password"].as_str()?.to_owned(),
    })
}

/// The credentials stored for a registry host, if any.
pub fn credentials(host: &str) -> Option<Credentials> {
    let text = fs_err::read_to_string(config_path()?).ok()?;
    let config: Value = serde_json::from_str(&text).ok()?;
    let keys = server_keys(host);
    for key in &keys {
        if let Some(helper) = config["credHelpers"][key.as_str()].as_str() {
            return from_helper(helper, key);
        }
    }
    for key in &keys {
        if let Some(found) = config["auths"].get(key.as_str()).and_then(from_entry) {
            return Some(found);
        }
    }
    let store = config["credsStore"].as_str()?;
    keys.iter().find_map(|key| from_helper(store, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_entries() {
        let entry =
            serde_json::json!({"auth": base64::engine::general_purpose::STANDARD.encode("me:pw")});
        let found = from_entry(&entry).unwrap();
        assert_eq!(
            (found.username.as_str(), found.secret.as_str()),
            ("me", "pw")
        );
        assert!(from_entry(&serde_json::json!({})).is_none());
        assert_eq!(server_keys("docker.io")[0], "https://index.docker.io/v1/");
    }
}
