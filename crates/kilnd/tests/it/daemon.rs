//! The calls every client makes, through a gRPC client of our own: workers, info,
//! disk usage, health; buildkitd's command line; TCP with mutual TLS.

use std::process::Command;

use kiln_api::proto::health::HealthCheckRequest;
use kiln_api::proto::health::health_client::HealthClient;
use kiln_api::proto::moby::buildkit::v1 as control;
use kiln_api::proto::moby::buildkit::v1::control_client::ControlClient;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::support::{Kilnd, connect};

/// The worker's platforms: the native one and those QEMU runs, as BuildKit detects
/// them; `--oci-worker-platform` replaces them.
#[tokio::test]
async fn worker_platforms_detected_or_configured() {
    if !kiln_test::is_root() {
        kiln_test::skip("kilnd needs root");
        return;
    }
    let platforms_of = |args: &'static [&'static str]| async move {
        let kilnd = Kilnd::start(args);
        let mut client = ControlClient::new(connect(&kilnd.socket).await);
        let workers = client
            .list_workers(control::ListWorkersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .record;
        workers[0]
            .platforms
            .iter()
            .map(|p| match p.variant.as_str() {
                "" => format!("{}/{}", p.os, p.architecture),
                variant => format!("{}/{}/{variant}", p.os, p.architecture),
            })
            .collect::<Vec<_>>()
    };
    let configured = platforms_of(&[
        "--oci-worker-platform",
        "linux/amd64,linux/arm/v7",
        "--oci-worker-platform",
        "linux/s390x",
    ])
    .await;
    assert_eq!(configured, ["linux/amd64", "linux/arm/v7", "linux/s390x"]);
    if !std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
        kiln_test::skip("qemu-user-static's handlers are not registered in binfmt_misc");
        return;
    }
    let detected = platforms_of(&[]).await;
    assert_eq!(detected[0], "linux/amd64");
    for emulated in [
        "linux/arm64",
        "linux/arm/v7",
        "linux/riscv64",
        "linux/s390x",
    ] {
        assert!(detected.iter().any(|p| p == emulated), "{detected:?}");
    }
}

#[tokio::test]
async fn serves_workers_info_disk_usage_and_health() {
    if !kiln_test::is_root() {
        kiln_test::skip("kilnd needs root");
        return;
    }
    let kilnd = Kilnd::start(&["--oci-worker-labels", "team=build"]);
    let channel = connect(&kilnd.socket).await;
    let mut client = ControlClient::new(channel.clone());
    let workers = client
        .list_workers(control::ListWorkersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .record;
    assert_eq!(workers.len(), 1, "{workers:?}");
    let worker = &workers[0];
    assert_eq!(worker.platforms[0].os, "linux");
    assert_eq!(
        worker.labels["org.mobyproject.buildkit.worker.executor"],
        "oci"
    );
    assert_eq!(worker.labels["team"], "build");
    let info = client
        .info(control::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.buildkit_version.unwrap().version, "v0.24.0");
    let usage = client
        .disk_usage(control::DiskUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(usage.record.is_empty(), "{usage:?}");
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");
    // An unknown frontend is refused by name, and the daemon keeps serving.
    let refused = client
        .solve(control::SolveRequest {
            r#ref: "bad-frontend".to_owned(),
            frontend: "nosuch.v0".to_owned(),
            ..control::SolveRequest::default()
        })
        .await
        .unwrap_err();
    assert!(refused.message().contains("nosuch.v0"), "{refused:?}");
    assert!(client.info(control::InfoRequest {}).await.is_ok());
}

#[test]
fn version_and_command_line_as_buildkitd() {
    let version = Command::new(env!("CARGO_BIN_EXE_kilnd"))
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&version.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "{text}");
    assert_eq!(
        fields[0..3],
        ["kilnd", "github.com/moby/buildkit", "v0.24.0"]
    );
    // Installed as buildkitd, it says so.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("buildkitd");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kilnd"), &link).unwrap();
    let as_buildkitd = Command::new(&link).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&as_buildkitd.stdout).starts_with("buildkitd "));
    // What it has not got is refused, naming the flag.
    for (flag, expected) in [
        ("--containerd-worker=true", "--containerd-worker"),
        ("--oci-worker=false", "--oci-worker"),
        ("--oci-worker-snapshotter=zfs", "--oci-worker-snapshotter"),
    ] {
        let refused = Command::new(env!("CARGO_BIN_EXE_kilnd"))
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg(flag)
            .output()
            .unwrap();
        assert!(!refused.status.success(), "{flag} was accepted");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(expected), "{flag}: {stderr}");
    }
}

/// Plain TCP is served on loopback only (with buildkitd's warning); elsewhere it needs
/// mutual TLS, and then a client without a certificate the CA signed is refused.
#[tokio::test]
async fn tcp_needs_mutual_tls_off_loopback() {
    if !kiln_test::is_root() || !kiln_test::on_path("openssl") {
        kiln_test::skip("needs root and openssl");
        return;
    }
    let port = kiln_test::free_port();
    let refused = Command::new(env!("CARGO_BIN_EXE_kilnd"))
        .arg("--root")
        .arg(tempfile::tempdir().unwrap().path())
        .arg("--addr")
        .arg(format!("tcp://0.0.0.0:{port}"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--tlscert"),
        "{refused:?}"
    );

    let certs = tempfile::tempdir().unwrap();
    let made = Command::new("sh")
        .arg("-c")
        .arg(
            "set -e
             openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kiln-test-ca -keyout ca.key -out ca.pem 2>/dev/null
             for who in server client; do
               openssl req -newkey rsa:2048 -nodes -subj /CN=$who -keyout $who.key -out $who.csr 2>/dev/null
               printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' > $who.ext
               openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile $who.ext -out $who.pem 2>/dev/null
             done",
        )
        .current_dir(certs.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let path = |name: &str| certs.path().join(name).display().to_string();
    let address = format!("tcp://127.0.0.1:{port}");
    let kilnd = Kilnd::start(&[
        "--addr",
        &address,
        "--tlscert",
        &path("server.pem"),
        "--tlskey",
        &path("server.key"),
        "--tlscacert",
        &path("ca.pem"),
    ]);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let read = |name: &str| fs_err::read(certs.path().join(name)).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .domain_name("localhost");
    let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{port}")).unwrap();
    let with_certificate = endpoint
        .clone()
        .tls_config(
            tls.clone()
                .identity(Identity::from_pem(read("client.pem"), read("client.key"))),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let info = ControlClient::new(with_certificate)
        .info(control::InfoRequest {})
        .await;
    assert!(info.is_ok(), "{info:?}\n{}", kilnd.log());
    let without = match endpoint.tls_config(tls).unwrap().connect().await {
        Ok(channel) => ControlClient::new(channel)
            .info(control::InfoRequest {})
            .await
            .is_ok(),
        Err(_) => false,
    };
    assert!(!without, "a client without a certificate was served");
    kiln_test::reliability_figure(
        "hostile clients",
        "kilnd on TCP: a listener off loopback without TLS, a TLS client without a certificate: refused, served",
        "2 of 2, 0",
    );
}

/// A client that goes away mid-build cancels it: its running step's container is
/// killed and removed, and the daemon keeps serving.
#[tokio::test]
async fn a_client_that_goes_away_cancels_its_build() {
    use kiln_llb::{ImageOptions, MarshalOptions, Run, State, wire};
    if !crate::support::can_build() {
        return;
    }
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let channel = connect(&kilnd.socket).await;
    let definition = State::image(&image, ImageOptions::default())
        .add_env("PATH", "/bin")
        .dir("/")
        .run(Run::new(["sh", "-c", "touch /started && sleep 60"]))
        .root()
        .marshal(&MarshalOptions::default());
    let definition: kiln_api::proto::pb::Definition =
        prost::Message::decode(wire::encode_definition(&definition).as_slice()).unwrap();
    let mut client = ControlClient::new(channel.clone());
    let build = tokio::spawn(async move {
        client
            .solve(control::SolveRequest {
                r#ref: "goes-away".to_owned(),
                definition: Some(definition),
                ..control::SolveRequest::default()
            })
            .await
    });
    let runc_root = kilnd.dir.path().join("root/exec/runc");
    let containers = || {
        let listed = Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(["list", "-q"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&listed.stdout).trim().to_owned()
    };
    let mut running = false;
    for _ in 0..200 {
        if !containers().is_empty() {
            running = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(running, "the step never started:\n{}", kilnd.log());
    build.abort();
    drop(channel);
    // Its container is killed and removed, and its mounts released, soon after.
    let state = kilnd.dir.path().display().to_string();
    let mounted = || {
        fs_err::read_to_string("/proc/mounts")
            .unwrap()
            .contains(&state)
    };
    let mut gone = false;
    for _ in 0..200 {
        if containers().is_empty() && !mounted() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        gone,
        "the build outlived its client: containers {:?}, mounts left: {}",
        containers(),
        mounted()
    );
    let mut client = ControlClient::new(connect(&kilnd.socket).await);
    assert!(client.info(control::InfoRequest {}).await.is_ok());
}

/// Bad requests get a clear error and the daemon keeps serving: a definition whose op
/// names an input it lacks, a message over the size limit, an unknown frontend.
#[tokio::test]
async fn bad_requests_get_clear_errors() {
    use kiln_api::proto::pb;
    if !kiln_test::is_root() {
        kiln_test::skip("kilnd needs root");
        return;
    }
    let kilnd = Kilnd::start(&[]);
    let mut client =
        ControlClient::new(connect(&kilnd.socket).await).max_encoding_message_size(64 << 20);
    let dangling = pb::Op {
        inputs: vec![pb::Input {
            digest: format!("sha256:{}", "0".repeat(64)),
            index: 0,
        }],
        ..pb::Op::default()
    };
    let definition = pb::Definition {
        def: vec![prost::Message::encode_to_vec(&dangling)],
        ..pb::Definition::default()
    };
    let refused = client
        .solve(control::SolveRequest {
            r#ref: "dangling".to_owned(),
            definition: Some(definition),
            ..control::SolveRequest::default()
        })
        .await
        .unwrap_err();
    assert!(refused.message().contains("input"), "{refused:?}");

    let oversize = client
        .solve(control::SolveRequest {
            r#ref: "oversize".to_owned(),
            frontend: "dockerfile.v0".to_owned(),
            frontend_attrs: [("build-arg:BIG".to_owned(), "x".repeat(20 << 20))]
                .into_iter()
                .collect(),
            ..control::SolveRequest::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            oversize.code(),
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        ),
        "{oversize:?}"
    );
    assert!(client.info(control::InfoRequest {}).await.is_ok());
    kiln_test::reliability_figure(
        "hostile clients",
        "a definition naming an input it lacks, a 20 MiB request: refused with a clear error, daemon still serving",
        "2 of 2, yes",
    );
}

/// Sessions beyond `--max-sessions` are refused with a clear error while the others
/// stay open; once one closes, the next client gets its place.
#[tokio::test]
async fn sessions_beyond_the_limit_are_refused() {
    use kiln_api::session::headers;
    if !kiln_test::is_root() {
        kiln_test::skip("kilnd needs root");
        return;
    }
    let kilnd = Kilnd::start(&["--max-sessions", "2"]);
    let open = |id: &'static str| {
        let socket = kilnd.socket.clone();
        async move {
            let mut client = ControlClient::new(connect(&socket).await);
            // The client's side of the stream stays open as long as `sender` lives.
            let (sender, messages) = tokio::sync::mpsc::channel::<control::BytesMessage>(1);
            let mut request =
                tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(messages));
            request
                .metadata_mut()
                .insert(headers::UUID, id.parse().unwrap());
            client.session(request).await.map(|stream| (sender, stream))
        }
    };
    let first = open("first").await.expect("the first session opens");
    let _second = open("second").await.expect("the second session opens");
    let refused = open("third").await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("at most 2 sessions"),
        "{refused:?}"
    );
    drop(first);
    let mut admitted = None;
    for _ in 0..50 {
        if let Ok(session) = open("fourth").await {
            admitted = Some(session);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(admitted.is_some(), "a closed session's place was not freed");
}

/// Two clients whose builds share a step at once: both succeed, and the shared step
/// runs once (the other build finds its result).
#[tokio::test]
async fn overlapping_builds_run_a_shared_step_once() {
    use kiln_llb::{ImageOptions, MarshalOptions, Run, State, wire};
    if !crate::support::can_build() {
        return;
    }
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let shared = State::image(&image, ImageOptions::default())
        .add_env("PATH", "/bin")
        .dir("/")
        .run(Run::new(["sh", "-c", "sleep 1 && date +%s%N > /stamp"]))
        .root();
    let definition = |last: &str| {
        let state = shared
            .run(Run::new(["sh", "-c", &format!("echo {last} > /last")]))
            .root();
        let bytes = wire::encode_definition(&state.marshal(&MarshalOptions::default()));
        prost::Message::decode(bytes.as_slice()).unwrap()
    };
    let channel = connect(&kilnd.socket).await;
    let solve = |id: &'static str, definition| {
        let mut client = ControlClient::new(channel.clone());
        tokio::spawn(async move {
            client
                .solve(control::SolveRequest {
                    r#ref: id.to_owned(),
                    definition: Some(definition),
                    ..control::SolveRequest::default()
                })
                .await
        })
    };
    let status = |id: &'static str| {
        let mut client = ControlClient::new(channel.clone());
        tokio::spawn(async move {
            let mut stream = client
                .status(control::StatusRequest {
                    r#ref: id.to_owned(),
                })
                .await
                .unwrap()
                .into_inner();
            let mut ran = Vec::new();
            while let Some(update) = tokio_stream::StreamExt::next(&mut stream).await {
                let update = update.unwrap();
                for vertex in update.vertexes {
                    if !vertex.cached && vertex.completed.is_some() {
                        ran.push(vertex.digest);
                    }
                }
            }
            ran
        })
    };
    let (first, second) = (
        solve("first", definition("a")),
        solve("second", definition("b")),
    );
    let (first_ran, second_ran) = (status("first"), status("second"));
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    // Each build ran its own last step; no step ran in both.
    let first_ran = first_ran.await.unwrap();
    let second_ran = second_ran.await.unwrap();
    assert!(
        !first_ran.is_empty() && !second_ran.is_empty(),
        "{first_ran:?} {second_ran:?}\n{}",
        kilnd.log()
    );
    let both: Vec<&String> = first_ran
        .iter()
        .filter(|d| second_ran.contains(d))
        .collect();
    assert!(both.is_empty(), "steps run by both builds: {both:?}");
}

/// kilnd killed with SIGKILL mid-build: the next kilnd on the same state directory
/// leaves no container or mount of the killed build, and builds.
#[tokio::test]
async fn a_killed_daemon_restarts_on_a_consistent_store() {
    use kiln_llb::{ImageOptions, MarshalOptions, Run, State, wire};
    if !crate::support::can_build() {
        return;
    }
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let mut kilnd = Kilnd::start(&[]);
    let definition = |script: &str| -> kiln_api::proto::pb::Definition {
        let state = State::image(&image, ImageOptions::default())
            .add_env("PATH", "/bin")
            .dir("/")
            .run(Run::new(["sh", "-c", script]))
            .root();
        let bytes = wire::encode_definition(&state.marshal(&MarshalOptions::default()));
        prost::Message::decode(bytes.as_slice()).unwrap()
    };
    let long = definition("dd if=/dev/zero of=/big bs=1M count=20 && sleep 60");
    let mut client = ControlClient::new(connect(&kilnd.socket).await);
    let build = tokio::spawn(async move {
        client
            .solve(control::SolveRequest {
                r#ref: "killed".to_owned(),
                definition: Some(long),
                ..control::SolveRequest::default()
            })
            .await
    });
    let runc_root = kilnd.dir.path().join("root/exec/runc");
    let containers = || {
        let listed = Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(["list", "-q"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&listed.stdout).trim().to_owned()
    };
    for _ in 0..200 {
        if !containers().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!containers().is_empty(), "the step never started");
    kilnd.kill_and_restart(&[]);
    build.abort();
    // The killed build's container (its init killed with the daemon's own children or
    // not) is gone once the new daemon has opened the store and a build has run.
    let mut client = ControlClient::new(connect(&kilnd.socket).await);
    client
        .solve(control::SolveRequest {
            r#ref: "after".to_owned(),
            definition: Some(definition("echo fine > /fine")),
            ..control::SolveRequest::default()
        })
        .await
        .unwrap();
    let state = kilnd.dir.path().join("root").display().to_string();
    let mounts = fs_err::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.lines().any(|l| l.contains(&state)),
        "mounts left under the state:\n{mounts}"
    );
    assert!(containers().is_empty(), "containers left: {}", containers());
}

/// A context whose directory became a file between two builds of one project: the
/// second transfer replaces the directory (only what changed travels, into the same
/// place).
#[tokio::test]
async fn a_context_directory_that_became_a_file_is_transferred() {
    use kiln_api::session::attachables::Attachables;
    if !kiln_test::is_root() {
        kiln_test::skip("kilnd needs root");
        return;
    }
    let kilnd = Kilnd::start(&[]);
    let client = kiln_api::client::Client::connect(&kilnd.address(), &Default::default())
        .await
        .unwrap();
    let build = |dir: std::path::PathBuf| {
        let client = client.clone();
        async move {
            let request = control::SolveRequest {
                frontend: "dockerfile.v0".to_owned(),
                ..control::SolveRequest::default()
            };
            let attachables = Attachables {
                dirs: [("context", &dir), ("dockerfile", &dir)]
                    .into_iter()
                    .map(|(name, dir)| (name.to_owned(), dir.clone()))
                    .collect(),
                ..Attachables::default()
            };
            client
                .solve(request, attachables, "dir-to-file", |_| {})
                .await
        }
    };
    let first = tempfile::tempdir().unwrap();
    fs_err::write(
        first.path().join("Dockerfile"),
        "FROM scratch\nCOPY foo /\n",
    )
    .unwrap();
    fs_err::create_dir(first.path().join("foo")).unwrap();
    fs_err::write(first.path().join("foo/bar"), "contents").unwrap();
    build(first.path().to_path_buf()).await.unwrap();

    let second = tempfile::tempdir().unwrap();
    fs_err::copy(
        first.path().join("Dockerfile"),
        second.path().join("Dockerfile"),
    )
    .unwrap();
    fs_err::write(second.path().join("foo"), "contents2").unwrap();
    build(second.path().to_path_buf()).await.unwrap();
}

/// A Dockerfile spelt `dockerfile` is found when no file name is given, as BuildKit
/// finds it.
#[tokio::test]
async fn a_lower_case_dockerfile_is_found() {
    use kiln_api::session::attachables::Attachables;
    if !kiln_test::is_root() {
        kiln_test::skip("kilnd needs root");
        return;
    }
    let kilnd = Kilnd::start(&[]);
    let client = kiln_api::client::Client::connect(&kilnd.address(), &Default::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("dockerfile"), "FROM scratch\n").unwrap();
    let attachables = Attachables {
        dirs: ["context", "dockerfile"]
            .into_iter()
            .map(|name| (name.to_owned(), dir.path().to_path_buf()))
            .collect(),
        ..Attachables::default()
    };
    let request = control::SolveRequest {
        frontend: "dockerfile.v0".to_owned(),
        ..control::SolveRequest::default()
    };
    client
        .solve(request, attachables, "lower-case", |_| {})
        .await
        .unwrap();
}

/// An HTTP GET of `path` on a unix socket; the whole response.
fn http_get(socket: &std::path::Path, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The debug address answers BuildKit's harness (`/debug/pprof/goroutine`) with the
/// solves running; SIGTERM stops a daemon within seconds even with a step running and
/// another waiting for the `sharing=locked` cache it holds, leaving no container or
/// mount behind.
#[tokio::test]
async fn sigterm_stops_a_daemon_whose_builds_are_stuck() {
    use kiln_llb::{CacheSharing, ImageOptions, MarshalOptions, Mount, Run, State, wire};
    if !crate::support::can_build() {
        return;
    }
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let debug_dir = tempfile::tempdir().unwrap();
    let debug_socket = debug_dir.path().join("debug.sock");
    let debug_address = format!("unix://{}", debug_socket.display());
    let mut kilnd = Kilnd::start(&["--debugaddr", &debug_address]);
    let definition = |script: &str| -> kiln_api::proto::pb::Definition {
        let state = State::image(&image, ImageOptions::default())
            .add_env("PATH", "/bin")
            .run(Run::new(["sh", "-c", script]).mount(Mount::cache(
                "/cache",
                "held",
                CacheSharing::Locked,
            )))
            .root();
        let bytes = wire::encode_definition(&state.marshal(&MarshalOptions::default()));
        prost::Message::decode(bytes.as_slice()).unwrap()
    };
    let mut builds = Vec::new();
    for (name, script) in [("holder", "sleep 600"), ("waiter", "sleep 601")] {
        let mut client = ControlClient::new(connect(&kilnd.socket).await);
        let definition = definition(script);
        builds.push(tokio::spawn(async move {
            client
                .solve(control::SolveRequest {
                    r#ref: name.to_owned(),
                    definition: Some(definition),
                    ..control::SolveRequest::default()
                })
                .await
        }));
    }
    let runc_root = kilnd.dir.path().join("root/exec/runc");
    let containers = || {
        let listed = Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(["list", "-q"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&listed.stdout).trim().to_owned()
    };
    for _ in 0..200 {
        if !containers().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        !containers().is_empty(),
        "no step started:\n{}",
        kilnd.log()
    );

    let dump = http_get(&debug_socket, "/debug/pprof/goroutine?debug=2");
    assert!(dump.starts_with("HTTP/1.1 200 OK"), "{dump}");
    assert!(dump.contains("holder") && dump.contains("waiter"), "{dump}");
    assert!(http_get(&debug_socket, "/nothing").starts_with("HTTP/1.1 404"));

    let started = std::time::Instant::now();
    let stopped = kilnd.terminate(std::time::Duration::from_secs(15));
    assert!(stopped, "kilnd did not stop on SIGTERM:\n{}", kilnd.log());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "stopping took {:?}",
        started.elapsed()
    );
    for build in builds {
        build.abort();
    }
    assert!(containers().is_empty(), "containers left: {}", containers());
    let state = kilnd.dir.path().display().to_string();
    let mounts = fs_err::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.lines().any(|l| l.contains(&state)),
        "mounts left under the state:\n{mounts}"
    );
}

/// One step mounting the same `sharing=locked` cache twice sees one directory in both
/// places, and does not wait for itself (BuildKit's TestDuplicateCacheMount).
#[tokio::test]
async fn a_locked_cache_mounted_twice_in_one_step() {
    use kiln_llb::{CacheSharing, ImageOptions, MarshalOptions, Mount, Run, State, wire};
    if !crate::support::can_build() {
        return;
    }
    let registry = kiln_test::Registry::start();
    let image = registry.push_busybox();
    let kilnd = Kilnd::start(&[]);
    let state = State::image(&image, ImageOptions::default())
        .add_env("PATH", "/bin")
        .run(
            Run::new([
                "sh",
                "-e",
                "-c",
                "[ ! -f /m2/foo ]; touch /m1/foo; [ -f /m2/foo ]",
            ])
            .mount(Mount::cache("/m1", "twice", CacheSharing::Locked))
            .mount(Mount::cache("/m2", "twice", CacheSharing::Locked)),
        )
        .root();
    let bytes = wire::encode_definition(&state.marshal(&MarshalOptions::default()));
    let definition: kiln_api::proto::pb::Definition =
        prost::Message::decode(bytes.as_slice()).unwrap();
    let mut client = ControlClient::new(connect(&kilnd.socket).await);
    let solved = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        client.solve(control::SolveRequest {
            r#ref: "twice".to_owned(),
            definition: Some(definition),
            ..control::SolveRequest::default()
        }),
    )
    .await
    .expect("the step waited for itself");
    assert!(solved.is_ok(), "{solved:?}\n{}", kilnd.log());
}
