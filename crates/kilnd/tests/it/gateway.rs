//! The LLBBridge gateway as a client-side frontend drives it, through a gRPC client of
//! our own: a solve with no frontend, then gateway calls naming it, then its result.

use std::process::Command;

use kiln_api::proto::moby::buildkit::v1 as control;
use kiln_api::proto::moby::buildkit::v1::control_client::ControlClient;
use kiln_api::proto::moby::buildkit::v1::frontend as gw;
use kiln_api::proto::moby::buildkit::v1::frontend::llb_bridge_client::LlbBridgeClient;
use kiln_api::proto::pb;
use tokio::task::JoinHandle;
use tonic::Request;
use tonic::transport::Channel;

use crate::support::{Kilnd, connect};

/// A client-driven build: its `Control.Solve` waits while the test calls the gateway.
struct GatewayBuild {
    id: String,
    bridge: LlbBridgeClient<Channel>,
    solve: JoinHandle<Result<tonic::Response<control::SolveResponse>, tonic::Status>>,
}

impl GatewayBuild {
    /// Opens the solve `id`, exporting with `exporters`.
    async fn open(kilnd: &Kilnd, id: &str, exporters: Vec<control::Exporter>) -> GatewayBuild {
        let channel = connect(&kilnd.socket).await;
        let mut control = ControlClient::new(channel.clone());
        let request = control::SolveRequest {
            r#ref: id.to_owned(),
            exporters,
            ..control::SolveRequest::default()
        };
        let solve = tokio::spawn(async move { control.solve(request).await });
        GatewayBuild {
            id: id.to_owned(),
            bridge: LlbBridgeClient::new(channel),
            solve,
        }
    }

    /// `message` as a gateway call of this build.
    fn call<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert(
            "buildkit-controlapi-buildid",
            self.id.parse().expect("an ascii id"),
        );
        request
    }

    /// Returns `result` and waits for the solve to end.
    async fn finish(mut self, result: gw::Result) -> Result<control::SolveResponse, tonic::Status> {
        let request = self.call(gw::ReturnRequest {
            result: Some(result),
            error: None,
        });
        self.bridge.r#return(request).await.expect("return");
        self.solve
            .await
            .expect("the solve task")
            .map(tonic::Response::into_inner)
    }
}

fn image_source(identifier: &str) -> pb::SourceOp {
    pb::SourceOp {
        identifier: identifier.to_owned(),
        attrs: Default::default(),
    }
}

/// `ResolveSourceMeta` as BuildKit answers it: an image source gets its manifest digest
/// and config (what the registry serves), other sources come back as they are, and
/// an unknown resolve mode is refused.
#[tokio::test]
async fn resolve_source_meta_answers_images_and_passes_other_sources() {
    if !crate::support::can_build() {
        return;
    }
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let mut build = GatewayBuild::open(&kilnd, "resolve-source-meta", Vec::new()).await;

    let identifier = format!("docker-image://{image}");
    let request = build.call(gw::ResolveSourceMetaRequest {
        source: Some(image_source(&identifier)),
        platform: Some(pb::Platform {
            os: "linux".to_owned(),
            architecture: "amd64".to_owned(),
            ..pb::Platform::default()
        }),
        resolve_mode: "pull".to_owned(),
        ..gw::ResolveSourceMetaRequest::default()
    });
    let answer = build
        .bridge
        .resolve_source_meta(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.source.unwrap().identifier, identifier);
    let resolved = answer.image.expect("an image's metadata");
    let inspected = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ])
        .output()
        .unwrap();
    let inspected: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(resolved.digest, inspected["Digest"].as_str().unwrap());
    let config: serde_json::Value = serde_json::from_slice(&resolved.config).unwrap();
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["rootfs"]["type"], "layers");

    let git = image_source("git://github.com/moby/buildkit.git#v0.24.0");
    let request = build.call(gw::ResolveSourceMetaRequest {
        source: Some(git.clone()),
        ..gw::ResolveSourceMetaRequest::default()
    });
    let answer = build
        .bridge
        .resolve_source_meta(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.source, Some(git));
    assert!(answer.image.is_none());

    let request = build.call(gw::ResolveSourceMetaRequest {
        source: Some(image_source(&identifier)),
        resolve_mode: "sometimes".to_owned(),
        ..gw::ResolveSourceMetaRequest::default()
    });
    let refused = build.bridge.resolve_source_meta(request).await.unwrap_err();
    assert!(
        refused.message().contains("invalid resolvemode"),
        "{refused:?}"
    );
    build.finish(gw::Result::default()).await.unwrap();
}
