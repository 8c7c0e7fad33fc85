//! `Control.ListenBuildHistory` and `UpdateBuildHistory`: the engine keeps the records
//! of ended builds; the running ones are known here, and every change goes out to the
//! clients listening (as `docker buildx history` reads them).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kiln_api::history::HistoryRecord;
use kiln_api::proto::moby::buildkit::v1 as control;
use kiln_api::proto::moby::buildkit::v1::BuildHistoryEventType;
use tokio::sync::broadcast;
use tonic::metadata::MetadataValue;
use tonic::{Response, Status};

use super::{Daemon, ServerStream};

/// The running builds' records, and the channel their changes go out on.
pub(crate) struct History {
    running: Mutex<BTreeMap<String, HistoryRecord>>,
    changes: broadcast::Sender<control::BuildHistoryEvent>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            running: Mutex::default(),
            changes: broadcast::channel(256).0,
        }
    }
}

fn event(kind: BuildHistoryEventType, record: &HistoryRecord) -> control::BuildHistoryEvent {
    control::BuildHistoryEvent {
        r#type: kind as i32,
        record: Some(record.to_proto()),
    }
}

impl History {
    /// A build started.
    pub(crate) fn started(&self, record: &HistoryRecord) {
        self.lock().insert(record.id.clone(), record.clone());
        let _ = self
            .changes
            .send(event(BuildHistoryEventType::Started, record));
    }

    /// A build ended (its record is the engine's from now on).
    pub(crate) fn ended(&self, record: &HistoryRecord) {
        self.lock().remove(&record.id);
        let _ = self
            .changes
            .send(event(BuildHistoryEventType::Complete, record));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, HistoryRecord>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The records asked for (running ones as `STARTED`, ended ones as `COMPLETE`, the
/// newest `limit`), then, unless the client asked to stop there (`EarlyExit`), every
/// change until it goes away. Filters are left to the client (buildx applies them to
/// what it receives, as it does for daemons that do not filter).
pub(super) async fn listen(
    daemon: &Arc<Daemon>,
    request: control::BuildHistoryRequest,
) -> Result<Response<ServerStream<control::BuildHistoryEvent>>, Status> {
    let wanted =
        move |record: &HistoryRecord| request.r#ref.is_empty() || record.id == request.r#ref;
    // Subscribed first: a build ending meanwhile is not missed.
    let mut changes = daemon.history.changes.subscribe();
    let mut events: Vec<(std::time::SystemTime, control::BuildHistoryEvent)> = daemon
        .history
        .lock()
        .values()
        .filter(|r| wanted(r))
        .map(|r| (r.created_at, event(BuildHistoryEventType::Started, r)))
        .collect();
    if !request.active_only {
        let ended = daemon.blocking(|engine| engine.history()).await?;
        events.extend(
            ended
                .iter()
                .filter(|r| wanted(r))
                .map(|r| (r.created_at, event(BuildHistoryEventType::Complete, r))),
        );
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.0));
    if let Ok(limit) = usize::try_from(request.limit) {
        if limit > 0 {
            events.truncate(limit);
        }
    }
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let early_exit = request.early_exit;
    tokio::spawn(async move {
        for (_, event) in events {
            if sender.send(Ok(event)).await.is_err() {
                return;
            }
        }
        if early_exit {
            return;
        }
        loop {
            let change = tokio::select! {
                change = changes.recv() => change,
                () = sender.closed() => return,
            };
            match change {
                Ok(change) => {
                    let matches = change
                        .record
                        .as_ref()
                        .is_some_and(|r| wanted(&HistoryRecord::from_proto(r.clone())));
                    if matches && sender.send(Ok(change)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let mut response = Response::new(
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
            as ServerStream<control::BuildHistoryEvent>,
    );
    // What a client measures a running build's duration against (BuildKit sends it).
    let now = kiln_api::go::rfc3339_nano_utc(std::time::SystemTime::now());
    if let Ok(value) = MetadataValue::try_from(now) {
        response
            .metadata_mut()
            .insert("buildkit-current-timestamp", value);
    }
    Ok(response)
}

/// Pins, unpins or deletes an ended build's record; `Finalize` has nothing to do (the
/// record is whole once the build ends).
pub(super) async fn update(
    daemon: &Arc<Daemon>,
    request: control::UpdateBuildHistoryRequest,
) -> Result<Response<control::UpdateBuildHistoryResponse>, Status> {
    if request.finalize {
        return Ok(Response::new(control::UpdateBuildHistoryResponse {}));
    }
    let id = request.r#ref.clone();
    let record = daemon
        .blocking(move |engine| engine.update_history(&id, request.pinned, request.delete))
        .await?;
    let Some(record) = record else {
        return Err(Status::not_found(format!(
            "no build record {} in the history",
            request.r#ref
        )));
    };
    if request.delete {
        let _ = daemon
            .history
            .changes
            .send(event(BuildHistoryEventType::Deleted, &record));
    }
    Ok(Response::new(control::UpdateBuildHistoryResponse {}))
}
