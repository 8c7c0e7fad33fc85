//! OCI distribution client: resolve a reference to a manifest for a platform, fetch
//! blobs (verified by digest), push blobs (with cross-repository mounts) and manifests
//! (`kiln-export` orders and parallelises a whole push), with Basic and token
//! authentication (`auth.rs`, credentials from `kiln_oci::docker_config`), mirrors and
//! insecure hosts (`client.rs`), and retries of transient failures (`retry.rs`).
//!
//! A registry on `localhost` or 127.0.0.0/8 is spoken to over plain HTTP when HTTPS
//! fails, as Docker does. This crate must not depend on the store, solver or worker.

mod auth;
mod client;
mod error;
mod retry;

pub use auth::{CredentialSource, DockerConfig};
pub use client::{Fetched, HostOptions, RegistryClient, Resolved};
pub use error::Error;
pub use kiln_oci::docker_config::Credentials;
pub use retry::retry_transient;
