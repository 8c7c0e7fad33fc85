//! OCI distribution client: resolve a reference to a manifest for a platform, fetch
//! blobs (verified by digest), with the anonymous token flow.
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
