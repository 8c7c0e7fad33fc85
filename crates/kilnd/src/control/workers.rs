//! `ListWorkers` and `Info`: the one OCI worker, labelled as buildkitd labels it, and
//! the BuildKit API version kilnd serves.

use std::collections::HashMap;
use std::sync::Arc;

use kiln_api::proto::moby::buildkit::v1 as control;
use kiln_api::proto::moby::buildkit::v1::types::{BuildkitVersion, GcPolicy, WorkerRecord};
use kiln_api::proto::pb;
use tonic::{Response, Status};

use super::Daemon;

pub(super) fn version() -> BuildkitVersion {
    BuildkitVersion {
        package: "github.com/moby/buildkit".to_owned(),
        version: crate::BUILDKIT_API_VERSION.to_owned(),
        revision: format!("kiln-{}", env!("CARGO_PKG_VERSION")),
    }
}

/// The worker's id: made once and kept in the state directory, as buildkitd keeps its.
fn worker_id(daemon: &Daemon) -> String {
    let path = daemon.root.join("kilnd-worker-id");
    if let Ok(id) = fs_err::read_to_string(&path) {
        if !id.trim().is_empty() {
            return id.trim().to_owned();
        }
    }
    let mut bytes = [0u8; 12];
    let id = match fs_err::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
    {
        Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => format!("kiln{}", std::process::id()),
    };
    let _ = fs_err::write(&path, &id);
    id
}

fn hostname() -> String {
    fs_err::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

pub(super) fn list(
    daemon: &Arc<Daemon>,
    _request: control::ListWorkersRequest,
) -> Result<Response<control::ListWorkersResponse>, Status> {
    Ok(Response::new(control::ListWorkersResponse {
        record: records(daemon),
    }))
}

/// The one worker's record.
pub(crate) fn records(daemon: &Daemon) -> Vec<WorkerRecord> {
    const LABEL: &str = "org.mobyproject.buildkit.worker.";
    let mut labels: HashMap<String, String> = [
        ("executor", "oci".to_owned()),
        ("hostname", hostname()),
        ("network", "host".to_owned()),
        ("oci.process-mode", "sandbox".to_owned()),
        ("selinux.enabled", "false".to_owned()),
        ("snapshotter", "overlayfs".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{LABEL}{k}"), v))
    .collect();
    labels.extend(daemon.labels.iter().cloned());
    let gc_policy = daemon
        .gc
        .iter()
        .flatten()
        .map(|p| GcPolicy {
            all: p.all,
            keep_duration: p
                .keep_duration
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            filters: p.filters.clone(),
            reserved_space: p.keep_bytes as i64,
            max_used_space: p.max_used.unwrap_or(0) as i64,
            min_free_space: p.min_free.unwrap_or(0) as i64,
        })
        .collect();
    vec![WorkerRecord {
        id: worker_id(daemon),
        labels,
        platforms: daemon
            .engine
            .worker_platforms()
            .iter()
            .map(|platform| pb::Platform {
                architecture: platform.architecture.clone(),
                os: platform.os.clone(),
                variant: platform.variant.clone(),
                ..pb::Platform::default()
            })
            .collect(),
        gc_policy,
        buildkit_version: Some(version()),
        cdi_devices: Vec::new(),
    }]
}
