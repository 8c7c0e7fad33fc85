//! BuildKit's frontend subrequests on the daemon's side (the engine answers them, in
//! `kiln_api::subrequests`' terms): the typed errors for what the frontend does not
//! answer, and the frontend capabilities a request may ask for.

use std::collections::HashMap;

pub(crate) use kiln_api::subrequests::REQUEST_ID;

/// BuildKit's `errdefs.Subrequest` and `errdefs.FrontendCap`: the typed detail naming
/// what a frontend does not answer.
#[derive(Clone, PartialEq, prost::Message)]
struct NamedDetail {
    #[prost(string, tag = "1")]
    name: String,
}

/// BuildKit's `errdefs.UnsupportedSubrequestError`.
pub(crate) fn unsupported(request: &str) -> tonic::Status {
    unimplemented_with_detail(
        format!("unsupported request {request}"),
        "errdefs.Subrequest",
        request,
    )
}

/// The frontend capabilities (`frontend.caps` option) BuildKit's Dockerfile frontend
/// knows.
const FRONTEND_CAPS: [&str; 4] = [
    "moby.buildkit.frontend.inputs",
    "moby.buildkit.frontend.subrequests",
    "moby.buildkit.frontend.contexts",
    "moby.buildkit.frontend.gitquerystring",
];

/// Refuses a `frontend.caps` option naming a capability the frontend lacks, with
/// BuildKit's `errdefs.UnsupportedFrontendCapError` (kilnd has no other frontend to
/// forward it to, so `+forward` changes nothing).
pub(crate) fn check_frontend_caps(attrs: &HashMap<String, String>) -> Result<(), tonic::Status> {
    let Some(caps) = attrs.get("frontend.caps").filter(|c| !c.is_empty()) else {
        return Ok(());
    };
    for cap in caps.split(',') {
        let name = cap.split_once('+').map_or(cap, |(name, _)| name);
        if !FRONTEND_CAPS.contains(&name) {
            return Err(unimplemented_with_detail(
                format!("unsupported frontend capability {name}"),
                "errdefs.FrontendCap",
                name,
            ));
        }
    }
    Ok(())
}

/// An Unimplemented status carrying a typed detail, as BuildKit's `grpcerrors` encodes
/// it (a `google.rpc.Status` whose details its clients decode by type).
fn unimplemented_with_detail(message: String, detail_type: &str, name: &str) -> tonic::Status {
    use kiln_api::proto::google::{protobuf::Any, rpc};
    use prost::Message as _;
    let detail = Any {
        type_url: format!("type.googleapis.com/{detail_type}"),
        value: NamedDetail {
            name: name.to_owned(),
        }
        .encode_to_vec(),
    };
    let status = rpc::Status {
        code: tonic::Code::Unimplemented as i32,
        message: message.clone(),
        details: vec![detail],
    };
    tonic::Status::with_details(
        tonic::Code::Unimplemented,
        message,
        status.encode_to_vec().into(),
    )
}
