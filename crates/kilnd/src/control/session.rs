//! `Control.Session`: a client's session opens; its byte stream becomes the connection
//! the daemon calls the client's services on, until the client closes it.

use std::sync::Arc;

use kiln_api::proto::moby::buildkit::v1::BytesMessage;
use kiln_api::session::headers;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{Daemon, ServerStream};
use crate::session::Session;

pub(super) fn open(
    daemon: &Arc<Daemon>,
    request: Request<tonic::Streaming<BytesMessage>>,
) -> Result<Response<ServerStream<BytesMessage>>, Status> {
    let metadata = request.metadata();
    let value = |name: &str| {
        metadata
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let id = value(headers::UUID);
    if id.is_empty() {
        return Err(Status::invalid_argument(format!(
            "a session needs the {} header",
            headers::UUID
        )));
    }
    let admitted = daemon.sessions.admit().map_err(|limit| {
        Status::resource_exhausted(format!(
            "kilnd serves at most {limit} sessions at once (--max-sessions) and all are open: retry when builds end"
        ))
    })?;
    let shared_key = value(headers::SHARED_KEY);
    let methods: Vec<String> = metadata
        .get_all(headers::METHOD)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|m| m.trim().to_owned())
        .collect();
    let (outbound, messages) = tokio::sync::mpsc::channel(64);
    let (pipe, closed) = kiln_api::session::duplex(request.into_inner(), outbound);
    let daemon = Arc::clone(daemon);
    // The HTTP/2 handshake runs over the response stream, which flows only once this
    // call has returned: connect in the background.
    tokio::spawn(async move {
        let _admitted = admitted;
        match kiln_api::session::channel(pipe).await {
            Ok(channel) => {
                daemon.sessions.insert(Session {
                    id: id.clone(),
                    shared_key,
                    methods,
                    channel,
                });
                let _ = closed.await;
                daemon.sessions.remove(&id);
            }
            Err(e) => eprintln!("kilnd: session {id}: connecting to the client: {e}"),
        }
    });
    Ok(Response::new(Box::pin(
        ReceiverStream::new(messages).map(Ok),
    )))
}
