//! How the registry client finds credentials: the docker configuration of this
//! process's user (`kiln_oci::docker_config`), or whatever a daemon's client lends.

use base64::Engine as _;
use kiln_oci::docker_config::Credentials;

/// Where a registry client finds credentials for a host (the API host, e.g.
/// `registry-1.docker.io` for Docker Hub, as BuildKit asks a session's Auth service).
pub trait CredentialSource: Send + Sync {
    /// The credentials for `host`, if any.
    fn credentials(&self, host: &str) -> Option<Credentials>;
}

/// The docker CLI's configuration of this process's user.
#[derive(Debug, Default)]
pub struct DockerConfig;

impl CredentialSource for DockerConfig {
    fn credentials(&self, host: &str) -> Option<Credentials> {
        kiln_oci::docker_config::credentials(host)
    }
}

/// The `Authorization` header value for Basic authentication.
pub(crate) fn basic(credentials: &Credentials) -> String {
    let pair = format!("{}:{}", credentials.username, credentials.secret);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_authorization() {
        let credentials = Credentials {
            username: "me".to_owned(),
            secret: "pw".to_owned(),
        };
        assert_eq!(basic(&credentials), "Basic bWU6cHc=");
    }
}
