//! A client of BuildKit's API, for kilnd and buildkitd alike: connecting (unix socket,
//! TCP, TCP with mutual TLS), solving with a session that lends the client's files,
//! secrets and output places, following the progress, and the cache's records.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

use crate::proto::moby::buildkit::v1 as control;
use crate::proto::moby::buildkit::v1::control_client::ControlClient;
use crate::proto::moby::buildkit::v1::frontend as gateway;
use crate::session::attachables::Attachables;
use crate::session::headers;

/// What can go wrong talking to a daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address is not one a client can reach.
    #[error("{address}: {message}")]
    Address {
        /// The address given.
        address: String,
        /// What is wrong with it.
        message: String,
    },
    /// Connecting failed.
    #[error("connecting to {address}")]
    Connect {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// A TLS file could not be read.
    #[error("reading a TLS file")]
    Tls {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The daemon answered with an error (its message; the status is not a cause).
    #[error("{}", .0.message())]
    Status(tonic::Status),
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Self::Status(status)
    }
}

/// Certificates for TCP with mutual TLS (`--tlscacert`, `--tlscert`, `--tlskey`).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// The CA the daemon's certificate must be signed by.
    pub ca: Option<PathBuf>,
    /// The client's certificate.
    pub cert: Option<PathBuf>,
    /// Its key.
    pub key: Option<PathBuf>,
    /// The name the daemon's certificate must carry (default: the host).
    pub server_name: Option<String>,
}

/// A connection to a daemon.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
}

impl Client {
    /// Connects to `unix:///path`, `tcp://host:port` (TLS when `tls` names files).
    pub async fn connect(address: &str, tls: &TlsFiles) -> Result<Self, Error> {
        let bad = |message: &str| Error::Address {
            address: address.to_owned(),
            message: message.to_owned(),
        };
        let connect_failed = |source| Error::Connect {
            address: address.to_owned(),
            source,
        };
        let channel = if let Some(path) = address.strip_prefix("unix://") {
            let path = PathBuf::from(path);
            Endpoint::from_static("http://kiln")
                .initial_stream_window_size(crate::session::STREAM_WINDOW)
                .initial_connection_window_size(crate::session::CONNECTION_WINDOW)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                }))
                .await
                .map_err(connect_failed)?
        } else if let Some(host_port) = address.strip_prefix("tcp://") {
            let read = |path: &PathBuf| {
                fs_err::read(path).map_err(|source| Error::Tls {
                    path: path.clone(),
                    source,
                })
            };
            let with_tls = tls.ca.is_some() || tls.cert.is_some();
            let scheme = if with_tls { "https" } else { "http" };
            let mut endpoint = Endpoint::from_shared(format!("{scheme}://{host_port}"))
                .map_err(|_| bad("not a host:port"))?
                .initial_stream_window_size(crate::session::STREAM_WINDOW)
                .initial_connection_window_size(crate::session::CONNECTION_WINDOW);
            if with_tls {
                let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
                let mut config = ClientTlsConfig::new()
                    .domain_name(tls.server_name.clone().unwrap_or_else(|| host.to_owned()));
                if let Some(ca) = &tls.ca {
                    config = config.ca_certificate(Certificate::from_pem(read(ca)?));
                }
                if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
                    config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
                }
                endpoint = endpoint.tls_config(config).map_err(connect_failed)?;
            }
            endpoint.connect().await.map_err(connect_failed)?
        } else {
            return Err(bad("use unix:///path or tcp://host:port"));
        };
        Ok(Self { channel })
    }

    fn control(&self) -> ControlClient<Channel> {
        ControlClient::new(self.channel.clone())
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(16 << 20)
    }

    /// The daemon's BuildKit version.
    pub async fn info(&self) -> Result<control::InfoResponse, Error> {
        Ok(self
            .control()
            .info(control::InfoRequest {})
            .await?
            .into_inner())
    }

    /// The daemon's workers.
    pub async fn workers(&self) -> Result<Vec<control::types::WorkerRecord>, Error> {
        Ok(self
            .control()
            .list_workers(control::ListWorkersRequest::default())
            .await?
            .into_inner()
            .record)
    }

    /// The build cache's records.
    pub async fn disk_usage(
        &self,
        filter: Vec<String>,
    ) -> Result<Vec<control::UsageRecord>, Error> {
        Ok(self
            .control()
            .disk_usage(control::DiskUsageRequest {
                filter,
                ..control::DiskUsageRequest::default()
            })
            .await?
            .into_inner()
            .record)
    }

    /// The builds the daemon ran and runs (`ListenBuildHistory`, ended at once).
    pub async fn history(&self) -> Result<Vec<control::BuildHistoryRecord>, Error> {
        let mut stream = self
            .control()
            .listen_build_history(control::BuildHistoryRequest {
                early_exit: true,
                ..control::BuildHistoryRequest::default()
            })
            .await?
            .into_inner();
        let mut records = Vec::new();
        while let Some(event) = stream.next().await {
            let event = event?;
            if event.r#type != control::BuildHistoryEventType::Deleted as i32 {
                records.extend(event.record);
            }
        }
        Ok(records)
    }

    /// Removes cache records; returns what went.
    pub async fn prune(
        &self,
        request: control::PruneRequest,
    ) -> Result<Vec<control::UsageRecord>, Error> {
        let mut stream = self.control().prune(request).await?.into_inner();
        let mut removed = Vec::new();
        while let Some(record) = stream.next().await {
            removed.push(record?);
        }
        Ok(removed)
    }

    /// Runs a solve with a session lending `attachables`; `on_status` sees every
    /// progress update; returns the exporters' response.
    pub async fn solve(
        &self,
        mut request: control::SolveRequest,
        attachables: Attachables,
        shared_key: &str,
        on_status: impl Fn(control::StatusResponse) + Send + 'static,
    ) -> Result<HashMap<String, String>, Error> {
        if request.r#ref.is_empty() {
            request.r#ref = crate::history::new_build_id();
        }
        let (session_id, session) = self.open_session(attachables, shared_key).await?;
        request.session = session_id;
        let status = self.follow_status(&request.r#ref, on_status);
        let solved = self.control().solve(request).await;
        let _ = tokio::time::timeout(STATUS_DRAIN, status).await;
        session.abort();
        Ok(solved?.into_inner().exporter_response.into_iter().collect())
    }

    /// Asks the daemon's Dockerfile frontend a subrequest (`frontend_attrs` name it
    /// with `requestid`) and returns its answer's metadata. As buildx does, the client
    /// drives the build through the gateway: BuildKit passes a frontend's metadata
    /// back to gateway clients only.
    pub async fn call(
        &self,
        frontend_attrs: HashMap<String, String>,
        attachables: Attachables,
        shared_key: &str,
    ) -> Result<HashMap<String, Vec<u8>>, Error> {
        let build = self
            .start_gateway_build(
                control::SolveRequest::default(),
                attachables,
                shared_key,
                |_| {},
            )
            .await?;
        let answer = build
            .solve(gateway::SolveRequest {
                frontend: "dockerfile.v0".to_owned(),
                frontend_opt: frontend_attrs,
                ..gateway::SolveRequest::default()
            })
            .await;
        // The build ends either way: with nothing to export, or with the error.
        let returned = answer.as_ref().map(|_| gateway::Result::default());
        let finished = build.finish(returned).await;
        let answer = answer?;
        finished?;
        Ok(answer.result.map(|r| r.metadata).unwrap_or_default())
    }

    /// Builds `root` through the gateway on the results of its inputs, as buildx builds
    /// a Bake target on others (`target:` links): every input is solved first, and its
    /// definition and image config go to the solve that names it as the frontend
    /// input (`context:NAME=input:NAME`). `request` holds the exporters and caches of
    /// the result; returns their response.
    pub async fn solve_frontends(
        &self,
        request: control::SolveRequest,
        root: FrontendSolve,
        attachables: Attachables,
        shared_key: &str,
        on_status: impl Fn(control::StatusResponse) + Send + 'static,
    ) -> Result<HashMap<String, String>, Error> {
        let mut build = self
            .start_gateway_build(request, attachables, shared_key, on_status)
            .await?;
        let solved = build.solve_tree(root).await;
        let returned = solved.as_ref().map(|(reference, config)| gateway::Result {
            metadata: HashMap::from([(IMAGE_CONFIG_KEY.to_owned(), config.clone())]),
            result: Some(gateway::result::Result::Ref(gateway::Ref {
                id: reference.id.clone(),
                def: None,
            })),
            ..gateway::Result::default()
        });
        let response = build.finish(returned).await;
        solved?;
        response
    }

    /// Opens a session and a solve with no frontend, which the client then drives
    /// through the gateway (LLBBridge) and ends with a returned result.
    async fn start_gateway_build(
        &self,
        mut request: control::SolveRequest,
        attachables: Attachables,
        shared_key: &str,
        on_status: impl Fn(control::StatusResponse) + Send + 'static,
    ) -> Result<GatewayBuild, Error> {
        let build_id = crate::history::new_build_id();
        let (session_id, session) = self.open_session(attachables, shared_key).await?;
        request.r#ref = build_id.clone();
        request.session = session_id;
        request.frontend.clear();
        let status = self.follow_status(&build_id, on_status);
        let mut control = self.control();
        let solve = tokio::spawn(async move { control.solve(request).await });
        Ok(GatewayBuild {
            client: self.clone(),
            build_id,
            bridge: gateway::llb_bridge_client::LlbBridgeClient::new(self.channel.clone())
                .max_decoding_message_size(16 << 20)
                .max_encoding_message_size(16 << 20),
            solve,
            status,
            sessions: vec![session],
        })
    }

    /// Follows the progress of solve `id`, each update to `on_status`, until its
    /// stream ends.
    fn follow_status(
        &self,
        id: &str,
        on_status: impl Fn(control::StatusResponse) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let mut control = self.control();
        let request = control::StatusRequest {
            r#ref: id.to_owned(),
        };
        tokio::spawn(async move {
            if let Ok(stream) = control.status(request).await {
                let mut stream = stream.into_inner();
                while let Some(Ok(update)) = stream.next().await {
                    on_status(update);
                }
            }
        })
    }

    /// Opens a session serving `attachables`; returns its id and the task serving it.
    async fn open_session(
        &self,
        attachables: Attachables,
        shared_key: &str,
    ) -> Result<
        (
            String,
            tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
        ),
        Error,
    > {
        let session_id = crate::history::new_build_id();
        // The session: the client serves its attachables on the stream's connection.
        let (outbound, messages) = tokio::sync::mpsc::channel(64);
        let mut open = tonic::Request::new(ReceiverStream::new(messages));
        let metadata = open.metadata_mut();
        for (key, value) in [
            (headers::UUID, session_id.as_str()),
            (headers::NAME, "kiln"),
            (headers::SHARED_KEY, shared_key),
        ] {
            if let Ok(value) = MetadataValue::try_from(value) {
                metadata.insert(key, value);
            }
        }
        for method in attachables.methods() {
            metadata.append(headers::METHOD, MetadataValue::from_static(method));
        }
        let inbound = self.control().session(open).await?.into_inner();
        let (pipe, _closed) = crate::session::duplex(inbound, outbound);
        Ok((session_id, tokio::spawn(attachables.serve(pipe))))
    }
}

/// How long a solve's progress may go on arriving after the solve has answered: the
/// updates still on their way arrive before the stream ends.
const STATUS_DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

/// The metadata key of a frontend's image config.
const IMAGE_CONFIG_KEY: &str = "containerimage.config";

/// A Dockerfile frontend solve: its attributes, the directories it reads when a
/// session of its own lends them, and the solves whose results it takes as named
/// contexts, by name.
#[derive(Debug, Clone, Default)]
pub struct FrontendSolve {
    /// The frontend's attributes.
    pub attrs: HashMap<String, String>,
    /// Directories lent in a session of their own (a build another is built on has
    /// its own `context` and `dockerfile`), with that session's shared key; `None`:
    /// the build's session lends them.
    pub own_session: Option<(BTreeMap<String, PathBuf>, String)>,
    /// Named contexts that are other solves' results.
    pub inputs: Vec<(String, FrontendSolve)>,
}

/// Leaves out a definition's source locations and op metadata entries that are empty
/// (they say nothing). prost writes such an entry without its value, which Go decodes
/// as a nil message, and buildkitd v0.24 crashes on the nil when it reads the
/// definition back as a frontend input.
fn drop_empty_map_values(definition: &mut crate::proto::pb::Definition) {
    definition
        .metadata
        .retain(|_, metadata| *metadata != Default::default());
    if let Some(source) = &mut definition.source {
        source
            .locations
            .retain(|_, locations| !locations.locations.is_empty());
        for info in &mut source.infos {
            if let Some(definition) = &mut info.definition {
                drop_empty_map_values(definition);
            }
        }
    }
}

/// The one ref of a frontend's result and its image config: BuildKit's Dockerfile
/// frontend answers a build for one platform with a map keyed by that platform.
fn single_ref(mut result: gateway::Result) -> Result<(gateway::Ref, Vec<u8>), Error> {
    let unsupported = |what: String| Error::Status(tonic::Status::unimplemented(what));
    let (reference, config_key) = match result.result {
        Some(gateway::result::Result::Ref(reference)) => (reference, IMAGE_CONFIG_KEY.to_owned()),
        Some(gateway::result::Result::Refs(map)) if map.refs.len() == 1 => {
            let (platform, reference) = map.refs.into_iter().next().unwrap_or_default();
            (reference, format!("{IMAGE_CONFIG_KEY}/{platform}"))
        }
        Some(gateway::result::Result::Refs(map)) => {
            let platforms: Vec<String> = map.refs.into_keys().collect();
            return Err(unsupported(format!(
                "a build for several platforms ({}) cannot be built on by another yet",
                platforms.join(", ")
            )));
        }
        _ => {
            return Err(unsupported(
                "the daemon answered a Dockerfile solve without a ref".to_owned(),
            ));
        }
    };
    let config = result.metadata.remove(&config_key).unwrap_or_default();
    Ok((reference, config))
}

/// A build the client drives through the gateway: its id, the bridge, and the tasks
/// of its `Control.Solve`, its progress and its session.
struct GatewayBuild {
    client: Client,
    build_id: String,
    bridge: gateway::llb_bridge_client::LlbBridgeClient<Channel>,
    solve: tokio::task::JoinHandle<Result<tonic::Response<control::SolveResponse>, tonic::Status>>,
    status: tokio::task::JoinHandle<()>,
    /// The build's session, then those opened for its solves.
    sessions: Vec<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl GatewayBuild {
    /// A gateway request of this build.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(id) = MetadataValue::try_from(self.build_id.as_str()) {
            request.metadata_mut().insert(headers::BUILD_ID, id);
        }
        request
    }

    async fn solve(&self, request: gateway::SolveRequest) -> Result<gateway::SolveResponse, Error> {
        let mut bridge = self.bridge.clone();
        Ok(bridge.solve(self.request(request)).await?.into_inner())
    }

    /// Solves `root` after its inputs (deepest first), each input's definition and
    /// image config handed to the solve that names it; returns the root's ref and
    /// image config.
    async fn solve_tree(&mut self, root: FrontendSolve) -> Result<(gateway::Ref, Vec<u8>), Error> {
        use base64::Engine as _;
        // Post-order, without recursion: a node's inputs are solved before it.
        let mut order = Vec::new();
        let mut pending = vec![(root, None::<(usize, String)>)];
        while let Some((mut node, parent)) = pending.pop() {
            let index = order.len();
            for (name, input) in std::mem::take(&mut node.inputs) {
                pending.push((input, Some((index, name))));
            }
            order.push((node, parent, HashMap::new()));
        }
        let mut root_result = None;
        while let Some((node, parent, inputs)) = order.pop() {
            let mut attrs = node.attrs;
            if let Some((dirs, shared_key)) = node.own_session {
                // The frontend reads these from that session (`local-sessionid:NAME`),
                // and the definition it answers with names it, so a later solve
                // reading the definition finds them there.
                let names: Vec<String> = dirs.keys().cloned().collect();
                let lent = Attachables {
                    dirs,
                    ..Attachables::default()
                };
                let (session_id, session) = self.client.open_session(lent, &shared_key).await?;
                self.sessions.push(session);
                for name in names {
                    attrs.insert(format!("local-sessionid:{name}"), session_id.clone());
                }
            }
            let frontend_inputs = inputs
                .into_iter()
                .map(|(name, (definition, config)): (String, (_, Vec<u8>))| {
                    attrs.insert(format!("context:{name}"), format!("input:{name}"));
                    let metadata = serde_json::json!({
                        IMAGE_CONFIG_KEY: base64::engine::general_purpose::STANDARD.encode(&config),
                    });
                    attrs.insert(format!("input-metadata:{name}"), metadata.to_string());
                    (name, definition)
                })
                .collect();
            let answer = self
                .solve(gateway::SolveRequest {
                    frontend: "dockerfile.v0".to_owned(),
                    frontend_opt: attrs,
                    frontend_inputs,
                    allow_result_return: true,
                    allow_result_array_ref: true,
                    ..gateway::SolveRequest::default()
                })
                .await?;
            let (reference, config) = single_ref(answer.result.unwrap_or_default())?;
            match parent {
                Some((index, name)) => {
                    let definition = reference.def.ok_or_else(|| {
                        Error::Status(tonic::Status::unimplemented(
                            "gateway did not return reference with definition",
                        ))
                    })?;
                    let mut definition = definition;
                    drop_empty_map_values(&mut definition);
                    order[index].2.insert(name, (definition, config));
                }
                None => root_result = Some((reference, config)),
            }
        }
        root_result.ok_or_else(|| Error::Status(tonic::Status::internal("nothing was solved")))
    }

    /// Returns the result (or the error instead) and waits for the solve to export
    /// it; returns the exporters' response.
    async fn finish(
        mut self,
        returned: Result<gateway::Result, &Error>,
    ) -> Result<HashMap<String, String>, Error> {
        let request = match returned {
            Ok(result) => gateway::ReturnRequest {
                result: Some(result),
                error: None,
            },
            Err(error) => {
                let (code, message) = match error {
                    Error::Status(status) => (status.code() as i32, status.message().to_owned()),
                    other => (tonic::Code::Unknown as i32, other.to_string()),
                };
                gateway::ReturnRequest {
                    result: None,
                    error: Some(crate::proto::google::rpc::Status {
                        code,
                        message,
                        details: Vec::new(),
                    }),
                }
            }
        };
        let request = self.request(request);
        let _ = self.bridge.r#return(request).await;
        let solved = (&mut self.solve).await;
        let _ = tokio::time::timeout(STATUS_DRAIN, &mut self.status).await;
        for session in &self.sessions {
            session.abort();
        }
        match solved {
            Ok(Ok(response)) => Ok(response
                .into_inner()
                .exporter_response
                .into_iter()
                .collect()),
            Ok(Err(status)) => Err(status.into()),
            Err(joined) => Err(Error::Status(tonic::Status::internal(joined.to_string()))),
        }
    }
}
