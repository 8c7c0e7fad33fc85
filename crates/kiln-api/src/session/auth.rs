//! The client's `Auth` service: a daemon asks for registry credentials by host, and
//! the client answers from its user's docker configuration (as buildx's and buildctl's
//! auth providers do). Only `Credentials` is offered: the daemon then runs the token
//! flow itself; the token-authority methods (BuildKit's signed-token scheme) are not.

use tonic::{Request, Response, Status};

use crate::proto::moby::filesync::v1 as fs;

/// Answers from the docker configuration of the user running the client.
pub(crate) struct DockerConfigAuth;

#[tonic::async_trait]
impl fs::auth_server::Auth for DockerConfigAuth {
    async fn credentials(
        &self,
        request: Request<fs::CredentialsRequest>,
    ) -> Result<Response<fs::CredentialsResponse>, Status> {
        let host = request.into_inner().host;
        // Credential helpers are processes: not on the runtime's threads.
        let found =
            tokio::task::spawn_blocking(move || kiln_oci::docker_config::credentials(&host))
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        let (username, secret) = found.map(|c| (c.username, c.secret)).unwrap_or_default();
        Ok(Response::new(fs::CredentialsResponse { username, secret }))
    }

    async fn fetch_token(
        &self,
        _request: Request<fs::FetchTokenRequest>,
    ) -> Result<Response<fs::FetchTokenResponse>, Status> {
        Err(Status::unimplemented("the client fetches no tokens"))
    }

    async fn get_token_authority(
        &self,
        _request: Request<fs::GetTokenAuthorityRequest>,
    ) -> Result<Response<fs::GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("the client has no token authority"))
    }

    async fn verify_token_authority(
        &self,
        _request: Request<fs::VerifyTokenAuthorityRequest>,
    ) -> Result<Response<fs::VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("the client has no token authority"))
    }
}
