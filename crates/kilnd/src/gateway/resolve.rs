//! The gateway's metadata resolution (`ResolveImageConfig`, `ResolveSourceMeta`): what a
//! frontend asks before it writes its LLB, as BuildKit v0.24's worker answers it.

use kiln_engine::SessionHooks;
use std::sync::Arc;

use kiln_api::proto::moby::buildkit::v1::frontend as gw;
use kiln_api::proto::pb;
use kiln_engine::{Platform, ResolveMode};
use sha2::{Digest as _, Sha256};
use tonic::Status;

use crate::control::Daemon;
use crate::jobs::Job;

/// An image resolved for a frontend: its canonical name, manifest digest and config.
pub(crate) struct ResolvedImage {
    pub(crate) name: String,
    pub(crate) digest: String,
    pub(crate) config: Vec<u8>,
}

/// What a resolve request asks for, apart from the image itself.
pub(crate) struct ResolveOptions {
    pub(crate) platform: Option<Platform>,
    pub(crate) mode: ResolveMode,
    /// The progress vertex's name; BuildKit names one when the frontend does not.
    pub(crate) log_name: String,
}

impl ResolveOptions {
    pub(crate) fn new(
        platform: Option<&pb::Platform>,
        mode: &str,
        log_name: String,
    ) -> Result<Self, Status> {
        let mode = ResolveMode::parse(mode)
            .ok_or_else(|| Status::invalid_argument(format!("invalid resolvemode: {mode}")))?;
        Ok(Self {
            platform: platform.map(platform_of),
            mode,
            log_name,
        })
    }
}

fn platform_of(p: &pb::Platform) -> Platform {
    Platform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone(),
        os_version: p.os_version.clone(),
        os_features: p.os_features.clone(),
    }
}

/// Resolves `reference` on the registry (or from what it said last time, as the mode
/// allows), shown as one progress vertex as buildkitd shows it.
pub(crate) async fn image(
    daemon: &Arc<Daemon>,
    job: &Job,
    hooks: SessionHooks,
    reference: &str,
    options: ResolveOptions,
) -> Result<ResolvedImage, Status> {
    let platform = options
        .platform
        .clone()
        .unwrap_or_else(|| daemon.engine.platform().clone());
    let log_name = match options.log_name.as_str() {
        "" => format!("resolve image config for {reference}"),
        name => name.to_owned(),
    };
    let vertex = vertex_digest(&format!("{reference}{platform}"));
    let started = Job::now();
    let owned_reference = reference.to_owned();
    let resolved = daemon
        .blocking(move |engine| {
            engine.resolve_image_config(&owned_reference, Some(&platform), options.mode, &hooks)
        })
        .await;
    job.step(
        &vertex,
        &log_name,
        started,
        resolved.as_ref().err().map(|e| e.message().to_owned()),
    );
    let (name, digest, config) = resolved?;
    Ok(ResolvedImage {
        name,
        digest,
        config,
    })
}

/// BuildKit's id of a resolution's vertex: the digest of what identifies it.
fn vertex_digest(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// `ResolveSourceMeta`: an image source gets its digest and config; the others (git,
/// http, local) come back as they are, since BuildKit's worker resolves nothing more
/// for them.
pub(crate) async fn source_meta(
    daemon: &Arc<Daemon>,
    job: &Job,
    hooks: SessionHooks,
    request: gw::ResolveSourceMetaRequest,
) -> Result<gw::ResolveSourceMetaResponse, Status> {
    let source = request
        .source
        .ok_or_else(|| Status::invalid_argument("source is required"))?;
    let reference = match source.identifier.split_once("://") {
        Some(("docker-image", reference)) => reference.to_owned(),
        Some(("oci-layout", _)) => {
            return Err(Status::unimplemented(format!(
                "resolving {}: kilnd does not read OCI layouts through the session yet",
                source.identifier
            )));
        }
        _ => {
            return Ok(gw::ResolveSourceMetaResponse {
                source: Some(source),
                ..gw::ResolveSourceMetaResponse::default()
            });
        }
    };
    let options = ResolveOptions::new(
        request.platform.as_ref(),
        &request.resolve_mode,
        request.log_name,
    )?;
    let resolved = image(daemon, job, hooks, &reference, options).await?;
    Ok(gw::ResolveSourceMetaResponse {
        source: Some(source),
        image: Some(gw::ResolveSourceImageResponse {
            digest: resolved.digest,
            config: resolved.config,
            ..gw::ResolveSourceImageResponse::default()
        }),
        ..gw::ResolveSourceMetaResponse::default()
    })
}
