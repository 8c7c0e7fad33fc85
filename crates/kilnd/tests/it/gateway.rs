//! The LLBBridge gateway as a client-side frontend drives it, through a gRPC client of
//! our own: a solve with no frontend, then gateway calls naming it, then its result.

use std::collections::HashMap;
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
    /// The solve: the exporters' response, or the error's message.
    solve: JoinHandle<Result<HashMap<String, String>, String>>,
}

impl GatewayBuild {
    /// Opens the solve `id`, exporting with `exporters`.
    async fn open(kilnd: &Kilnd, id: &str, exporters: Vec<control::Exporter>) -> GatewayBuild {
        Self::open_with(
            kilnd,
            control::SolveRequest {
                r#ref: id.to_owned(),
                exporters,
                ..control::SolveRequest::default()
            },
        )
        .await
    }

    /// Opens the solve `request` (its `ref` names it).
    async fn open_with(kilnd: &Kilnd, request: control::SolveRequest) -> GatewayBuild {
        let id = request.r#ref.clone();
        let channel = connect(&kilnd.socket).await;
        let mut control = ControlClient::new(channel.clone());
        let solve = tokio::spawn(async move {
            control
                .solve(request)
                .await
                .map(|r| r.into_inner().exporter_response)
                .map_err(|e| e.message().to_owned())
        });
        GatewayBuild {
            id,
            bridge: LlbBridgeClient::new(channel),
            solve,
        }
    }

    /// Opens the solve `id` with a session lending `dirs` (exporting nothing).
    async fn open_with_session(
        kilnd: &Kilnd,
        id: &str,
        dirs: &[(&str, &std::path::Path)],
    ) -> GatewayBuild {
        let client = kiln_api::client::Client::connect(&kilnd.address(), &Default::default())
            .await
            .unwrap();
        let attachables = kiln_api::session::attachables::Attachables {
            dirs: dirs
                .iter()
                .map(|(name, dir)| ((*name).to_owned(), dir.to_path_buf()))
                .collect(),
            ..Default::default()
        };
        let request = control::SolveRequest {
            r#ref: id.to_owned(),
            ..control::SolveRequest::default()
        };
        let solve = tokio::spawn(async move {
            client
                .solve(request, attachables, "gateway-test", |_| {})
                .await
                .map_err(|e| e.to_string())
        });
        GatewayBuild {
            id: id.to_owned(),
            bridge: LlbBridgeClient::new(connect(&kilnd.socket).await),
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
    async fn finish(mut self, result: gw::Result) -> Result<HashMap<String, String>, String> {
        let request = self.call(gw::ReturnRequest {
            result: Some(result),
            error: None,
        });
        self.bridge.r#return(request).await.expect("return");
        self.solve.await.expect("the solve task")
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

/// A definition making `/platform.txt`, as a gateway solve's ref id.
async fn solve_file(build: &mut GatewayBuild, content: &str) -> String {
    use kiln_llb::{FileAction, MarshalOptions, OpOptions, State, wire};
    let state = State::scratch().file(
        FileAction::mkfile("/platform.txt", 0o644, content, None, None),
        OpOptions::default(),
    );
    let definition: pb::Definition = prost::Message::decode(
        wire::encode_definition(&state.marshal(&MarshalOptions::default())).as_slice(),
    )
    .unwrap();
    let request = build.call(gw::SolveRequest {
        definition: Some(definition),
        ..gw::SolveRequest::default()
    });
    let solved = build.bridge.solve(request).await.unwrap().into_inner();
    match solved.result.and_then(|r| r.result) {
        Some(gw::result::Result::Ref(reference)) => reference.id,
        other => panic!("not one ref: {other:?}"),
    }
}

/// A result keyed by platform, with `refs.platforms` and per-platform image configs,
/// as BuildKit's Dockerfile frontend returns it.
fn platform_map(refs: &[(&str, &str)]) -> gw::Result {
    let platforms: Vec<serde_json::Value> = refs
        .iter()
        .map(|(platform, _)| {
            let (os, architecture) = platform.split_once('/').unwrap();
            serde_json::json!({"ID": platform, "Platform": {"os": os, "architecture": architecture}})
        })
        .collect();
    let mut metadata = HashMap::from([(
        "refs.platforms".to_owned(),
        serde_json::to_vec(&serde_json::json!({ "Platforms": platforms })).unwrap(),
    )]);
    for (platform, _) in refs {
        let (os, architecture) = platform.split_once('/').unwrap();
        let config = serde_json::json!({
            "os": os, "architecture": architecture,
            "config": {"Env": [format!("BUILT_FOR={platform}")]},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        metadata.insert(
            format!("containerimage.config/{platform}"),
            serde_json::to_vec(&config).unwrap(),
        );
    }
    gw::Result {
        metadata,
        result: Some(gw::result::Result::Refs(gw::RefMap {
            refs: refs
                .iter()
                .map(|(platform, id)| {
                    (
                        (*platform).to_owned(),
                        gw::Ref {
                            id: (*id).to_owned(),
                            def: None,
                        },
                    )
                })
                .collect(),
        })),
        ..gw::Result::default()
    }
}

/// A result keyed by platform is exported when it holds one platform (with that
/// platform's image config); one of several platforms is taken by a build that
/// exports nothing, and refused, clearly, by one that exports.
#[tokio::test]
async fn a_result_keyed_by_platform_is_exported_when_it_holds_one() {
    if !crate::support::can_build() {
        return;
    }
    let registry = kiln_test::Registry::start();
    let kilnd = Kilnd::start(&[]);
    let name = format!("{}/keyed:1", registry.host());
    let push = || {
        vec![control::Exporter {
            r#type: "image".to_owned(),
            attrs: HashMap::from([
                ("name".to_owned(), name.clone()),
                ("push".to_owned(), "true".to_owned()),
            ]),
        }]
    };

    let mut build = GatewayBuild::open(&kilnd, "keyed-one", push()).await;
    let id = solve_file(&mut build, "amd64").await;
    let response = build
        .finish(platform_map(&[("linux/amd64", &id)]))
        .await
        .unwrap();
    assert!(
        response.contains_key("containerimage.digest"),
        "{response:?}"
    );
    let config = Command::new("skopeo")
        .args([
            "inspect",
            "--config",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ])
        .output()
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    assert_eq!(config["config"]["Env"][0], "BUILT_FOR=linux/amd64");

    let mut build = GatewayBuild::open(&kilnd, "keyed-two-no-export", Vec::new()).await;
    let amd64 = solve_file(&mut build, "amd64").await;
    let arm64 = solve_file(&mut build, "arm64").await;
    build
        .finish(platform_map(&[
            ("linux/amd64", &amd64),
            ("linux/arm64", &arm64),
        ]))
        .await
        .unwrap();

    let mut build = GatewayBuild::open(&kilnd, "keyed-two-export", push()).await;
    let amd64 = solve_file(&mut build, "amd64").await;
    let arm64 = solve_file(&mut build, "arm64").await;
    let refused = build
        .finish(platform_map(&[
            ("linux/amd64", &amd64),
            ("linux/arm64", &arm64),
        ]))
        .await
        .unwrap_err();
    assert!(refused.contains("linux/amd64, linux/arm64"), "{refused}");
}

/// `frontend.lint` through the gateway's Dockerfile frontend: no build, but BuildKit's
/// lint results (every stage's checks, the Dockerfile as source, a parse error as part
/// of the answer) in the result's metadata; the client lends no context.
#[tokio::test]
async fn the_dockerfile_frontend_answers_a_lint_subrequest() {
    if !kiln_test::is_root() {
        kiln_test::skip("kilnd needs root");
        return;
    }
    let kilnd = Kilnd::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let lint = |build: &GatewayBuild| {
        build.call(gw::SolveRequest {
            frontend: "dockerfile.v0".to_owned(),
            frontend_opt: HashMap::from([
                ("requestid".to_owned(), "frontend.lint".to_owned()),
                ("target".to_owned(), String::new()),
            ]),
            ..gw::SolveRequest::default()
        })
    };
    let lint_results = |response: gw::SolveResponse| {
        let metadata = response.result.unwrap().metadata;
        assert_eq!(metadata["result.statuscode"], b"1");
        assert_eq!(metadata["version"], b"1.0.0");
        serde_json::from_slice::<serde_json::Value>(&metadata["result.json"]).unwrap()
    };

    let dockerfile = "FROM scratch AS Base\nCOPY a /\n\nFROM scratch AS other\nmaintainer me\n";
    fs_err::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    let mut build =
        GatewayBuild::open_with_session(&kilnd, "lint-warnings", &[("dockerfile", dir.path())])
            .await;
    let answer = build.bridge.solve(lint(&build)).await.unwrap().into_inner();
    let results = lint_results(answer);
    let rules: Vec<&str> = results["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["ruleName"].as_str().unwrap())
        .collect();
    // The unused stage `other` is linted too, in BuildKit v0.24's order (recorded).
    assert_eq!(
        rules,
        [
            "StageNameCasing",
            "MaintainerDeprecated",
            "ConsistentInstructionCasing"
        ],
        "{results}"
    );
    let first = &results["warnings"][0];
    assert_eq!(first["description"], "Stage names should be lowercase");
    assert_eq!(first["location"]["ranges"][0]["start"]["line"], 1);
    assert_eq!(results["sources"][0]["filename"], "Dockerfile");
    assert!(results.get("buildError").is_none(), "{results}");
    build.finish(gw::Result::default()).await.unwrap();

    fs_err::write(dir.path().join("Dockerfile"), "FROM scratch\nBADCMD\n").unwrap();
    let mut build =
        GatewayBuild::open_with_session(&kilnd, "lint-error", &[("dockerfile", dir.path())]).await;
    let answer = build.bridge.solve(lint(&build)).await.unwrap().into_inner();
    let results = lint_results(answer);
    assert_eq!(
        results["buildError"]["message"],
        "dockerfile parse error on line 2: unknown instruction: BADCMD"
    );
    assert_eq!(
        results["buildError"]["location"]["ranges"][0]["start"]["line"],
        2
    );
    build.finish(gw::Result::default()).await.unwrap();
}

/// The gateway's solves run with what the client's `Control.Solve` was granted: a
/// step on the host's network runs when `network.host` was allowed, and is refused
/// otherwise, even when its result is cached.
#[tokio::test]
async fn gateway_solves_have_the_entitlements_of_their_build() {
    use kiln_llb::{ImageOptions, MarshalOptions, NetMode, Run, State, wire};
    if !crate::support::can_build() {
        return;
    }
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&["--allow-insecure-entitlement", "network.host"]);
    let on_host_network = State::image(&image, ImageOptions::default())
        .add_env("PATH", "/bin")
        .run(Run::new(["true"]).network(NetMode::Host))
        .root()
        .marshal(&MarshalOptions::default());
    let definition: pb::Definition =
        prost::Message::decode(wire::encode_definition(&on_host_network).as_slice()).unwrap();
    // Granted first: the refused build then finds the step's result in the cache, and
    // must still be refused.
    for granted in [true, false] {
        let entitlements = if granted {
            vec!["network.host".to_owned()]
        } else {
            Vec::new()
        };
        let mut build = GatewayBuild::open_with(
            &kilnd,
            control::SolveRequest {
                r#ref: format!("entitled-{granted}"),
                entitlements,
                ..control::SolveRequest::default()
            },
        )
        .await;
        let request = build.call(gw::SolveRequest {
            definition: Some(definition.clone()),
            ..gw::SolveRequest::default()
        });
        let solved = build.bridge.solve(request).await;
        if granted {
            solved.unwrap();
        } else {
            let refused = solved.unwrap_err();
            assert!(
                refused.message().contains("network.host is not allowed"),
                "{refused:?}"
            );
        }
        build.finish(gw::Result::default()).await.unwrap();
    }
    kiln_test::reliability_figure(
        "hostile clients",
        "a gateway solve asking network.host its build was not granted: refused, served",
        "1 of 1, 0",
    );
}

/// `frontend.targets`: every stage with its description comment, base, place, and the
/// default (last) one marked, in BuildKit's format.
#[tokio::test]
async fn the_dockerfile_frontend_lists_its_targets() {
    if !kiln_test::is_root() {
        kiln_test::skip("kilnd needs root");
        return;
    }
    let kilnd = Kilnd::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let dockerfile =
        "\n# build compiles the binary\nFROM alpine AS build\nRUN true\n\nFROM build\n";
    fs_err::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    let mut build =
        GatewayBuild::open_with_session(&kilnd, "targets", &[("dockerfile", dir.path())]).await;
    let request = build.call(gw::SolveRequest {
        frontend: "dockerfile.v0".to_owned(),
        frontend_opt: HashMap::from([("requestid".to_owned(), "frontend.targets".to_owned())]),
        ..gw::SolveRequest::default()
    });
    let metadata = build
        .bridge
        .solve(request)
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .metadata;
    let list: serde_json::Value = serde_json::from_slice(&metadata["result.json"]).unwrap();
    assert_eq!(
        list["targets"],
        serde_json::json!([
            {"name": "build", "description": "compiles the binary", "base": "alpine",
             "location": {"ranges": [{"start": {"line": 3}, "end": {"line": 3}}]}},
            {"base": "build", "default": true,
             "location": {"ranges": [{"start": {"line": 6}, "end": {"line": 6}}]}},
        ])
    );
    assert_eq!(
        String::from_utf8_lossy(&metadata["result.txt"]),
        "TARGET    DESCRIPTION\nbuild     compiles the binary\n(default) \n"
    );

    // The subrequests answered are described.
    let request = build.call(gw::SolveRequest {
        frontend: "dockerfile.v0".to_owned(),
        frontend_opt: HashMap::from([(
            "requestid".to_owned(),
            "frontend.subrequests.describe".to_owned(),
        )]),
        ..gw::SolveRequest::default()
    });
    let metadata = build
        .bridge
        .solve(request)
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .metadata;
    let described: serde_json::Value = serde_json::from_slice(&metadata["result.json"]).unwrap();
    let names: Vec<&str> = described
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "frontend.outline",
            "frontend.targets",
            "frontend.subrequests.describe"
        ]
    );
    assert_eq!(described[0]["metadata"][0]["name"], "result.json");

    // One it does not answer is refused with BuildKit's typed detail naming it.
    let request = build.call(gw::SolveRequest {
        frontend: "dockerfile.v0".to_owned(),
        frontend_opt: HashMap::from([(
            "requestid".to_owned(),
            "frontend.subrequests.notexist".to_owned(),
        )]),
        ..gw::SolveRequest::default()
    });
    let refused = build.bridge.solve(request).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented);
    let details: kiln_api::proto::google::rpc::Status =
        prost::Message::decode(refused.details()).unwrap();
    assert_eq!(
        details.details[0].type_url,
        "type.googleapis.com/errdefs.Subrequest"
    );
    assert!(
        String::from_utf8_lossy(&details.details[0].value).contains("notexist"),
        "{details:?}"
    );

    // So is a frontend capability it lacks.
    let request = build.call(gw::SolveRequest {
        frontend: "dockerfile.v0".to_owned(),
        frontend_opt: HashMap::from([(
            "frontend.caps".to_owned(),
            "moby.buildkit.frontend.subrequests,moby.buildkit.frontend.notexistcap".to_owned(),
        )]),
        ..gw::SolveRequest::default()
    });
    let refused = build.bridge.solve(request).await.unwrap_err();
    assert_eq!(
        refused.message(),
        "unsupported frontend capability moby.buildkit.frontend.notexistcap"
    );
    let details: kiln_api::proto::google::rpc::Status =
        prost::Message::decode(refused.details()).unwrap();
    assert_eq!(
        details.details[0].type_url,
        "type.googleapis.com/errdefs.FrontendCap"
    );
    build.finish(gw::Result::default()).await.unwrap();
}

/// `Inputs` answers the frontend inputs the solve came with, and a definition's solve
/// answers with the definition (what a client hands back as an input later).
#[tokio::test(flavor = "multi_thread")]
async fn inputs_are_the_solves_and_refs_carry_their_definition() {
    use kiln_llb::{FileAction, MarshalOptions, OpOptions, State, wire};
    let kilnd = Kilnd::start(&[]);
    let state = State::scratch().file(
        FileAction::mkfile("/input.txt", 0o644, "an input", None, None),
        OpOptions::default(),
    );
    let definition: pb::Definition = prost::Message::decode(
        wire::encode_definition(&state.marshal(&MarshalOptions::default())).as_slice(),
    )
    .unwrap();
    let mut build = GatewayBuild::open_with(
        &kilnd,
        control::SolveRequest {
            r#ref: "inputs-test".to_owned(),
            frontend_inputs: HashMap::from([("base".to_owned(), definition.clone())]),
            ..control::SolveRequest::default()
        },
    )
    .await;
    let request = build.call(gw::InputsRequest {});
    let inputs = build.bridge.inputs(request).await.unwrap().into_inner();
    assert_eq!(inputs.definitions.len(), 1);
    assert_eq!(inputs.definitions["base"].def, definition.def);
    let request = build.call(gw::SolveRequest {
        definition: Some(definition.clone()),
        ..gw::SolveRequest::default()
    });
    let solved = build.bridge.solve(request).await.unwrap().into_inner();
    let Some(gw::result::Result::Ref(reference)) = solved.result.and_then(|r| r.result) else {
        panic!("not one ref");
    };
    assert_eq!(reference.def.map(|d| d.def), Some(definition.def));
    build.finish(gw::Result::default()).await.unwrap();
}
