//! A client of BuildKit's API, for kilnd and buildkitd alike: connecting (unix socket,
//! TCP, TCP with mutual TLS), solving with a session that lends the client's files,
//! secrets and output places, following the progress, and the cache's records.

use std::collections::HashMap;
use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

use crate::proto::moby::buildkit::v1 as control;
use crate::proto::moby::buildkit::v1::control_client::ControlClient;
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
    /// The daemon answered with an error.
    #[error("{0}")]
    Status(#[from] tonic::Status),
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

fn random_id() -> String {
    let mut bytes = [0u8; 13];
    if let Ok(mut urandom) = fs_err::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut urandom, &mut bytes);
    }
    bytes
        .iter()
        .map(|b| char::from_digit(u32::from(*b) % 36, 36).unwrap_or('0'))
        .collect()
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
                .map_err(|_| bad("not a host:port"))?;
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
            request.r#ref = random_id();
        }
        let (session_id, session) = self.open_session(attachables, shared_key).await?;
        request.session = session_id;
        // The progress, while the solve runs.
        let mut control = self.control();
        let status_request = control::StatusRequest {
            r#ref: request.r#ref.clone(),
        };
        let status = tokio::spawn(async move {
            if let Ok(stream) = control.status(status_request).await {
                let mut stream = stream.into_inner();
                while let Some(Ok(update)) = stream.next().await {
                    on_status(update);
                }
            }
        });
        let solved = self.control().solve(request).await;
        // Updates still on their way arrive before the stream ends.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), status).await;
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
        use crate::proto::moby::buildkit::v1::frontend as gateway;
        let build_id = random_id();
        let (session_id, session) = self.open_session(attachables, shared_key).await?;
        let mut control = self.control();
        let request = control::SolveRequest {
            r#ref: build_id.clone(),
            session: session_id,
            ..control::SolveRequest::default()
        };
        let solve = tokio::spawn(async move { control.solve(request).await });
        let mut bridge = gateway::llb_bridge_client::LlbBridgeClient::new(self.channel.clone())
            .max_decoding_message_size(16 << 20);
        fn for_build<T>(message: T, build_id: &str) -> tonic::Request<T> {
            let mut request = tonic::Request::new(message);
            if let Ok(id) = MetadataValue::try_from(build_id) {
                request.metadata_mut().insert(headers::BUILD_ID, id);
            }
            request
        }
        let answer = bridge
            .solve(for_build(
                gateway::SolveRequest {
                    frontend: "dockerfile.v0".to_owned(),
                    frontend_opt: frontend_attrs,
                    ..gateway::SolveRequest::default()
                },
                &build_id,
            ))
            .await;
        // The build ends either way: with nothing to export, or with the error.
        let returned = match &answer {
            Ok(_) => gateway::ReturnRequest {
                result: Some(gateway::Result::default()),
                error: None,
            },
            Err(status) => gateway::ReturnRequest {
                result: None,
                error: Some(crate::proto::google::rpc::Status {
                    code: status.code() as i32,
                    message: status.message().to_owned(),
                    details: Vec::new(),
                }),
            },
        };
        let _ = bridge.r#return(for_build(returned, &build_id)).await;
        let solved = solve.await;
        session.abort();
        let answer = answer?.into_inner();
        if let Ok(Err(status)) = solved {
            return Err(status.into());
        }
        Ok(answer.result.map(|r| r.metadata).unwrap_or_default())
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
        let session_id = random_id();
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
