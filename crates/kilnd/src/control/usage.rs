//! `DiskUsage` and `Prune`: the build cache's records, as BuildKit lists them.

use std::sync::Arc;
use std::time::Duration;

use kiln_api::build::{CacheRecord, PruneOptions};
use kiln_api::proto::google::protobuf::Timestamp;
use kiln_api::proto::moby::buildkit::v1 as control;
use tonic::{Response, Status};

use super::{Daemon, ServerStream};

fn timestamp(unix_seconds: i64) -> Option<Timestamp> {
    (unix_seconds > 0).then_some(Timestamp {
        seconds: unix_seconds,
        nanos: 0,
    })
}

// `parent` is deprecated for `parents`, but older clients read it: both are set.
#[allow(deprecated)]
fn usage_record(record: &CacheRecord) -> control::UsageRecord {
    control::UsageRecord {
        id: record.id.clone(),
        mutable: false,
        in_use: false,
        size: i64::try_from(record.size).unwrap_or(i64::MAX),
        parent: record.parents.last().cloned().unwrap_or_default(),
        created_at: timestamp(record.created),
        last_used_at: timestamp(record.last_used),
        usage_count: i64::try_from(record.usage_count).unwrap_or(i64::MAX),
        description: record.description.clone(),
        record_type: record.kind.clone(),
        shared: false,
        parents: record.parents.clone(),
    }
}

pub(super) async fn disk_usage(
    daemon: &Arc<Daemon>,
    request: control::DiskUsageRequest,
) -> Result<Response<control::DiskUsageResponse>, Status> {
    let records = daemon
        .blocking(move |engine| engine.disk_usage(&request.filter))
        .await?;
    Ok(Response::new(control::DiskUsageResponse {
        record: records.iter().map(usage_record).collect(),
    }))
}

pub(super) async fn prune(
    daemon: &Arc<Daemon>,
    request: control::PruneRequest,
) -> Result<Response<ServerStream<control::UsageRecord>>, Status> {
    let mut filters = request.filter.clone();
    if request.keep_duration > 0 {
        // Records used within the duration stay (BuildKit's `keep-duration`).
        let keep = Duration::from_nanos(request.keep_duration as u64);
        filters.push(format!("until={}s", keep.as_secs()));
    }
    let keep = request.reserved_space.max(request.max_used_space).max(0) as u64;
    let options = PruneOptions {
        all: request.all,
        keep_storage: keep,
        filters,
    };
    let removed = daemon
        .blocking(move |engine| engine.prune(&options))
        .await?;
    let records: Vec<_> = removed.iter().map(|r| Ok(usage_record(r))).collect();
    Ok(Response::new(Box::pin(tokio_stream::iter(records))))
}
