//! Build contexts a client names instead of lending a directory: by URL in its
//! `context` attribute (a git repository, an http(s) download, or an upload through its
//! session, `http://buildkit-session/ID`, which buildx sends for a tar archive on its
//! stdin), and OCI layouts it lends as content stores (`oci-layout://STORE@DIGEST`).
//! Fetched here, on the daemon's side, as buildkitd fetches them.

use kiln_api::build::BuildContext;
use kiln_api::context::{self, Fetched, RemoteContext};
use kiln_api::session::content::{self as content_store, ContentClient};
use kiln_api::session::{oci_layout, upload};
use tonic::Status;

use crate::control::{Daemon, error_chain};
use crate::jobs::Job;
use crate::session::Session;

/// The context `spec` names when it is a URL, fetched into a directory the job keeps;
/// `None` when it names a directory the client lends.
pub(crate) async fn fetch(
    daemon: &Daemon,
    session: &Session,
    spec: &str,
    job: &Job,
) -> Result<Option<Fetched>, Status> {
    let uploaded = upload::upload_id(spec).is_some();
    let remote = if uploaded {
        None
    } else {
        match context::detect(spec).map_err(|e| Status::invalid_argument(error_chain(&e)))? {
            Some(remote) => Some(remote),
            None => return Ok(None),
        }
    };
    // BuildKit's names for these steps.
    let name = match &remote {
        Some(RemoteContext::Git(_)) => format!("[internal] load git source {spec}"),
        _ => "[internal] load remote build context".to_owned(),
    };
    let scratch = scratch_dir(daemon, "context-")?;
    let root = scratch.path().to_owned();
    let started = Job::now();
    let fetched = match remote {
        Some(remote) => tokio::task::spawn_blocking(move || context::fetch(&remote, &root))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::invalid_argument(error_chain(&e))),
        None => pull_upload(session, spec, root).await,
    };
    let step_id = format!("kilnd-remote-context-{spec}");
    job.step(
        &step_id,
        &name,
        started,
        fetched.as_ref().err().map(|e| e.message().to_owned()),
    );
    job.keep(scratch);
    fetched.map(Some)
}

/// Pulls the upload `url` from the client, then unpacks it (or takes it as the
/// Dockerfile) under `root`.
async fn pull_upload(
    session: &Session,
    url: &str,
    root: std::path::PathBuf,
) -> Result<Fetched, Status> {
    if !session.serves(upload::PULL) {
        return Err(Status::invalid_argument(format!(
            "the build context is {url}, but the client's session lends no uploads"
        )));
    }
    let file = root.join("upload");
    let mut out = tokio::fs::File::create(&file)
        .await
        .map_err(|e| Status::internal(format!("{}: {e}", file.display())))?;
    upload::pull(session.channel.clone(), url, &mut out).await?;
    drop(out);
    tokio::task::spawn_blocking(move || {
        context::unpack_or_dockerfile(&file, "the uploaded build context", &root)
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
    .map_err(|e| Status::invalid_argument(error_chain(&e)))
}

/// A fresh directory for what one job fetches, under kilnd's state directory.
fn scratch_dir(daemon: &Daemon, prefix: &str) -> Result<tempfile::TempDir, Status> {
    let internal = |e: std::io::Error| Status::internal(format!("kilnd's state directory: {e}"));
    let scratch_root = daemon.root.join("kilnd/remote");
    fs_err::create_dir_all(&scratch_root).map_err(internal)?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&scratch_root)
        .map_err(internal)
}

/// The named context `name` = `oci-layout://STORE[:TAG]@DIGEST` (the `oci-layout://`
/// taken off): the image's blobs copied from the client's content store `oci:STORE`
/// into a layout directory the job keeps, each checked against its digest.
pub(crate) async fn client_layout(
    daemon: &Daemon,
    session: &Session,
    name: &str,
    reference: &str,
    job: &Job,
) -> Result<BuildContext, Status> {
    let invalid = |what: &str| {
        Status::invalid_argument(format!(
            "named context {name}: oci-layout reference {reference:?} {what}"
        ))
    };
    let (name_and_tag, digest) = reference
        .rsplit_once('@')
        .ok_or_else(|| invalid("has no digest"))?;
    if !content_store::is_sha256_digest(digest) {
        return Err(invalid("has no sha256 digest"));
    }
    let store = match name_and_tag.rsplit_once(':') {
        Some((store, tag)) if !tag.contains('/') => store,
        _ => name_and_tag,
    };
    if !content_store::METHODS.iter().all(|m| session.serves(m)) {
        return Err(invalid(
            "names a content store, but the client's session lends none",
        ));
    }
    let client = ContentClient::new(session.channel.clone(), &format!("oci:{store}"))?;
    let scratch = scratch_dir(daemon, "layout-")?;
    let dir = scratch.path().to_owned();
    let started = Job::now();
    let copied = oci_layout::copy_image(client, digest, &dir).await;
    job.step(
        &format!("kilnd-oci-layout-{name}"),
        &format!("[context {name}] OCI load from client"),
        started,
        copied.as_ref().err().map(|e| e.message().to_owned()),
    );
    job.keep(scratch);
    copied?;
    Ok(BuildContext::OciLayout {
        path: dir,
        selector: digest.to_owned(),
    })
}
