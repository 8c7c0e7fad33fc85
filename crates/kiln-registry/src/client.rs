//! The distribution API client.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use kiln_oci::{Index, Manifest, Platform, Reference, media_type};
use sha2::{Digest as _, Sha256};
use ureq::Agent;

use crate::Error;
use crate::auth::CredentialSource;
use crate::retry::{Backoff, retry_transient};

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Blobs larger than this are uploaded in chunks of this size.
const UPLOAD_CHUNK: u64 = 16 * 1024 * 1024;

/// A reference resolved for one platform.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The digest the reference resolved to (the index's when the tag names an index).
    pub digest: String,
    /// The platform's manifest.
    pub manifest: Manifest,
    /// That manifest's digest.
    pub manifest_digest: String,
    /// The image config JSON.
    pub config: Vec<u8>,
}

/// Content fetched by digest, verified.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its media type.
    pub media_type: String,
}

/// How one registry host is reached (buildkitd.toml's `[registry."host"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostOptions {
    /// Hosts (`host[:port]`) tried in order before this one when pulling.
    pub mirrors: Vec<String>,
    /// Speak plain HTTP.
    pub plain_http: bool,
    /// HTTPS without verifying the server's certificate.
    pub skip_verify: bool,
    /// PEM certificates the server's certificate is verified against (instead of the
    /// public roots).
    pub ca_pem: Vec<Vec<u8>>,
    /// A client certificate chain and its key, PEM.
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
}

/// A registry client; share one for connection reuse and cached tokens.
pub struct RegistryClient {
    agent: Agent,
    /// Per-host settings, by the host's name as users write it (`docker.io`).
    hosts: HashMap<String, HostOptions>,
    /// Agents with a host's own TLS settings, by API host.
    tls_agents: HashMap<String, Agent>,
    /// `host` → scheme that worked (`https` or `http`).
    schemes: Mutex<HashMap<String, &'static str>>,
    /// `host repository actions` → the `Authorization` value that worked (Bearer or
    /// Basic).
    tokens: Mutex<HashMap<String, String>>,
    /// Hosts that may be spoken to over plain HTTP (`registry.insecure`), besides loopback.
    insecure: Mutex<std::collections::HashSet<String>>,
    /// Where credentials come from: this process's docker configuration, or a client's.
    credentials: Arc<dyn CredentialSource>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl Default for RegistryClient {
    fn default() -> Self {
        Self::new()
    }
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Registries on loopback may be plain HTTP.
fn is_local(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

/// Docker Hub's API host.
fn api_host(domain: &str) -> &str {
    if domain == "docker.io" {
        "registry-1.docker.io"
    } else {
        domain
    }
}

/// `Bearer realm="…",service="…",scope="…"` into its parameters.
fn parse_challenge(header: &str) -> Option<HashMap<String, String>> {
    let rest = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))?;
    let mut out = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            chars.by_ref().take_while(|c| *c != '"').collect()
        } else {
            chars.by_ref().take_while(|c| *c != ',').collect()
        };
        out.insert(key.trim().to_owned(), value);
    }
    Some(out)
}

struct Response {
    status: u16,
    content_type: String,
    /// The `Location` header (upload sessions).
    location: String,
    body: Box<dyn Read + Send + Sync>,
}

/// What a call sends.
#[derive(Default)]
enum Body<'a> {
    #[default]
    Empty,
    Bytes(&'a [u8]),
    /// A stream of a known length.
    Reader(&'a mut (dyn Read + Send), u64),
}

/// Where a call goes: a path under `/v2/<repository>/`, or a URL the registry gave.
enum Target<'a> {
    Path(&'a str),
    Url(&'a str),
}

/// One HTTP call to a registry.
struct Call<'a> {
    method: &'static str,
    target: Target<'a>,
    accept: Option<&'a str>,
    content_type: Option<&'a str>,
    /// `Content-Range` of a chunk upload.
    content_range: Option<&'a str>,
    /// `Range` of a download that resumes.
    range: Option<&'a str>,
    body: Body<'a>,
    /// Whether the call needs push access (its token scope).
    push: bool,
}

impl Default for Call<'_> {
    fn default() -> Self {
        Self {
            method: "GET",
            target: Target::Path(""),
            accept: None,
            content_type: None,
            content_range: None,
            range: None,
            body: Body::Empty,
            push: false,
        }
    }
}

impl RegistryClient {
    /// A client with default settings.
    pub fn new() -> Self {
        Self::with_hosts(HashMap::new()).expect("no host settings to fail on")
    }

    /// A client with settings for some hosts (mirrors, plain HTTP, TLS); fails on a
    /// certificate or key that does not parse.
    pub fn with_hosts(hosts: HashMap<String, HostOptions>) -> Result<Self, Error> {
        let agent_with = |tls: Option<ureq::tls::TlsConfig>| -> Agent {
            let mut config = Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(std::time::Duration::from_secs(10)));
            if let Some(tls) = tls {
                config = config.tls_config(tls);
            }
            config.build().into()
        };
        let mut tls_agents = HashMap::new();
        for (host, options) in &hosts {
            if !options.skip_verify && options.ca_pem.is_empty() && options.client_pem.is_none() {
                continue;
            }
            let bad = |what: &str, e: &dyn std::fmt::Display| Error::Http {
                url: host.clone(),
                message: format!("{what}: {e}"),
                transient: false,
            };
            let mut tls = ureq::tls::TlsConfig::builder().disable_verification(options.skip_verify);
            if !options.ca_pem.is_empty() {
                let mut roots = Vec::new();
                for pem in &options.ca_pem {
                    for item in ureq::tls::parse_pem(pem) {
                        if let ureq::tls::PemItem::Certificate(cert) =
                            item.map_err(|e| bad("CA certificate", &e))?
                        {
                            roots.push(cert);
                        }
                    }
                }
                if roots.is_empty() {
                    return Err(bad("CA certificate", &"no certificate in the file"));
                }
                tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&roots));
            }
            if let Some((cert_pem, key_pem)) = &options.client_pem {
                let chain = ureq::tls::parse_pem(cert_pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(cert)) => Some(Ok(cert)),
                        Ok(_) => None,
                        Err(e) => Some(Err(e)),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad("client certificate", &e))?;
                let key =
                    ureq::tls::PrivateKey::from_pem(key_pem).map_err(|e| bad("client key", &e))?;
                tls = tls.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&chain, key)));
            }
            tls_agents.insert(api_host(host).to_owned(), agent_with(Some(tls.build())));
        }
        Ok(Self {
            agent: agent_with(None),
            hosts,
            tls_agents,
            schemes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            insecure: Mutex::new(std::collections::HashSet::new()),
            credentials: Arc::new(crate::auth::DockerConfig),
        })
    }

    /// The same client acting for someone else: credentials from `source` (a remote
    /// client's session), and tokens of its own, so no client rides on another's.
    pub fn with_credentials(&self, source: Arc<dyn CredentialSource>) -> Self {
        let copy = |m: &Mutex<HashMap<String, &'static str>>| {
            Mutex::new(m.lock().map(|m| m.clone()).unwrap_or_default())
        };
        Self {
            agent: self.agent.clone(),
            hosts: self.hosts.clone(),
            tls_agents: self.tls_agents.clone(),
            schemes: copy(&self.schemes),
            tokens: Mutex::new(HashMap::new()),
            insecure: Mutex::new(self.insecure.lock().map(|h| h.clone()).unwrap_or_default()),
            credentials: source,
        }
    }

    /// The agent for a URL: its host's own TLS settings, else the default.
    fn agent_for(&self, url: &str) -> &Agent {
        let host = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest.split('/').next().unwrap_or_default());
        self.tls_agents.get(host).unwrap_or(&self.agent)
    }

    /// A host's settings, by its name or its API host.
    fn host_options(&self, domain: &str) -> Option<&HostOptions> {
        self.hosts.get(domain).or_else(|| {
            self.hosts
                .iter()
                .find(|(name, _)| api_host(name) == domain)
                .map(|(_, options)| options)
        })
    }

    /// Lets a registry be reached over plain HTTP when HTTPS fails.
    pub fn allow_plain_http(&self, domain: &str) {
        if let Ok(mut hosts) = self.insecure.lock() {
            hosts.insert(api_host(domain).to_owned());
        }
    }

    /// GET `path` on the reference's registry (pull access).
    fn get(
        &self,
        reference: &Reference,
        path: &str,
        accept: Option<&str>,
    ) -> Result<Response, Error> {
        self.send(
            reference,
            Call {
                method: "GET",
                target: Target::Path(path),
                accept,
                ..Call::default()
            },
        )
    }

    /// Sends a call to the reference's registry; a pull tries the host's mirrors first,
    /// in order, each with the same repository path, and the registry itself last.
    fn send(&self, reference: &Reference, mut call: Call<'_>) -> Result<Response, Error> {
        if matches!(call.target, Target::Path(_)) && !call.push {
            let mirrors = self
                .host_options(&reference.domain)
                .map(|o| o.mirrors.clone())
                .unwrap_or_default();
            for mirror in mirrors {
                let mirrored = Reference {
                    domain: mirror,
                    ..reference.clone()
                };
                // A mirror without the content (or out of reach) passes the call on.
                if let Ok(response) = self.send_to_host(&mirrored, &mut call) {
                    return Ok(response);
                }
            }
        }
        self.send_to_host(reference, &mut call)
    }

    /// Sends a call to the reference's own host: for a path, HTTPS then (for loopback
    /// and `registry.insecure`) HTTP, or HTTP only when the host's settings say so; on
    /// a 401, the token dance for the scope the call needs, then once more.
    fn send_to_host(&self, reference: &Reference, call: &mut Call<'_>) -> Result<Response, Error> {
        let host = api_host(&reference.domain).to_owned();
        let path = match call.target {
            Target::Url(url) => return self.send_url(url, reference, call),
            Target::Path(path) => path,
        };
        let known = self
            .schemes
            .lock()
            .map(|s| s.get(&host).copied())
            .unwrap_or(None);
        let plain_http = self
            .host_options(&reference.domain)
            .is_some_and(|o| o.plain_http);
        let schemes: Vec<&'static str> = match known {
            Some(s) => vec![s],
            None if plain_http => vec!["http"],
            None if is_local(&host) || self.insecure.lock().is_ok_and(|h| h.contains(&host)) => {
                vec!["https", "http"]
            }
            None => vec!["https"],
        };
        let mut last_error = None;
        for scheme in schemes {
            let url = format!("{scheme}://{host}/v2/{}/{path}", reference.path);
            match self.send_url(&url, reference, call) {
                Ok(response) => {
                    if let Ok(mut s) = self.schemes.lock() {
                        s.insert(host.clone(), scheme);
                    }
                    return Ok(response);
                }
                Err(e @ Error::Http { .. }) => last_error = Some(e),
                // HTTP to a server that speaks HTTPS: what went wrong is HTTPS's failure
                // (an untrusted certificate, usually), so that is the error to show.
                Err(Error::Status { status: 400, .. })
                    if scheme == "http" && last_error.is_some() =>
                {
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(Error::Http { url, message, .. }) = &last_error {
            if message.to_ascii_lowercase().contains("certificate") {
                return Err(Error::Http {
                    transient: false,
                    url: url.clone(),
                    message: format!(
                        "{message} (to trust this registry, name its CA with `ca` under [registry.\"{}\"] in kilnd.toml, or skip the check with `insecure = true`)",
                        reference.domain
                    ),
                });
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Http {
            url: host,
            message: "no scheme to try".to_owned(),
            transient: false,
        }))
    }

    fn send_url(
        &self,
        url: &str,
        reference: &Reference,
        call: &mut Call<'_>,
    ) -> Result<Response, Error> {
        let actions = if call.push { "pull,push" } else { "pull" };
        let token_key = format!("{} {} {actions}", reference.domain, reference.path);
        let mut retried = false;
        loop {
            let mut request = ureq::http::Request::builder().method(call.method).uri(url);
            if let Some(accept) = call.accept {
                request = request.header("Accept", accept);
            }
            if let Some(content_type) = call.content_type {
                request = request.header("Content-Type", content_type);
            }
            if let Some(range) = call.content_range {
                request = request.header("Content-Range", range);
            }
            if let Some(range) = call.range {
                request = request.header("Range", range);
            }
            let token = self
                .tokens
                .lock()
                .ok()
                .and_then(|t| t.get(&token_key).cloned());
            if let Some(authorization) = &token {
                request = request.header("Authorization", authorization.as_str());
            }
            let http_error = |e: &dyn std::fmt::Display| Error::Http {
                url: url.to_owned(),
                message: e.to_string(),
                transient: false,
            };
            let response = match &mut call.body {
                Body::Empty => {
                    let request = request
                        .header("Content-Length", "0")
                        .body(())
                        .map_err(|e| http_error(&e))?;
                    self.agent_for(url).run(request)
                }
                Body::Bytes(bytes) => {
                    let request = request.body(*bytes).map_err(|e| http_error(&e))?;
                    self.agent_for(url).run(request)
                }
                Body::Reader(reader, size) => {
                    let request = request
                        .header("Content-Length", size.to_string())
                        .body(ureq::SendBody::from_reader(&mut **reader))
                        .map_err(|e| http_error(&e))?;
                    self.agent_for(url).run(request)
                }
            }
            .map_err(|e| Error::Http {
                url: url.to_owned(),
                message: e.to_string(),
                transient: cut_short(&e),
            })?;
            let status = response.status().as_u16();
            // A streamed body cannot be sent twice; the caller has authenticated before.
            let replayable = !matches!(call.body, Body::Reader(..));
            if status == 401 && !retried && replayable {
                let challenge = response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|h| h.to_str().ok())
                    .and_then(parse_challenge);
                let basic = response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|h| h.to_str().ok())
                    .is_some_and(|h| h.to_ascii_lowercase().starts_with("basic"));
                let credentials = self.credentials.credentials(api_host(&reference.domain));
                let authorization = match (challenge, basic, &credentials) {
                    (Some(challenge), _, _) => Some(format!(
                        "Bearer {}",
                        self.fetch_token(&challenge, reference, actions, credentials.as_ref())?
                    )),
                    (None, true, Some(credentials)) => Some(crate::auth::basic(credentials)),
                    _ => None,
                };
                if let Some(authorization) = authorization {
                    if let Ok(mut t) = self.tokens.lock() {
                        t.insert(token_key.clone(), authorization);
                    }
                    retried = true;
                    continue;
                }
            }
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let content_type = header("content-type");
            let location = header("location");
            let retry_after = header("retry-after").trim().parse().ok();
            let body = Box::new(response.into_body().into_reader());
            if !(200..300).contains(&status) {
                let mut text = String::new();
                let _ = body.take(512).read_to_string(&mut text);
                return Err(Error::Status {
                    url: url.to_owned(),
                    status,
                    body: text.trim().to_owned(),
                    retry_after,
                });
            }
            return Ok(Response {
                status,
                content_type,
                location,
                body,
            });
        }
    }

    fn fetch_token(
        &self,
        challenge: &HashMap<String, String>,
        reference: &Reference,
        actions: &str,
        credentials: Option<&kiln_oci::docker_config::Credentials>,
    ) -> Result<String, Error> {
        let realm = challenge.get("realm").cloned().unwrap_or_default();
        let mut url = format!("{realm}?scope=repository:{}:{actions}", reference.path);
        if let Some(service) = challenge.get("service") {
            url.push_str(&format!("&service={service}"));
        }
        let mut request = self.agent.get(&url);
        // The token server knows the user by the stored credentials.
        if let Some(credentials) = credentials {
            request = request.header("Authorization", crate::auth::basic(credentials));
        }
        let mut response = request.call().map_err(|e| Error::Http {
            url: url.clone(),
            message: e.to_string(),
            transient: cut_short(&e),
        })?;
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| Error::Http {
                url: url.clone(),
                message: e.to_string(),
                transient: cut_short(&e),
            })?;
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        Ok(body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .unwrap_or_default()
            .to_owned())
    }

    /// Fetches a manifest or index by tag or digest, verifying a digest reference.
    pub fn fetch_manifest(
        &self,
        reference: &Reference,
        tag_or_digest: &str,
    ) -> Result<Fetched, Error> {
        let path = format!("manifests/{tag_or_digest}");
        let (response, bytes) = retry_transient(|| {
            let mut response = self.get(reference, &path, Some(MANIFEST_ACCEPT))?;
            let mut bytes = Vec::new();
            response
                .body
                .read_to_end(&mut bytes)
                .map_err(|e| cut_body(reference, &path, &e))?;
            Ok((response, bytes))
        })?;
        if tag_or_digest.starts_with("sha256:") {
            let actual = sha256_digest(&bytes);
            if actual != tag_or_digest {
                return Err(Error::DigestMismatch {
                    what: "manifest",
                    expected: tag_or_digest.to_owned(),
                    actual,
                });
            }
        }
        let mut media = response
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if media.is_empty() || media == "application/json" {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            media = v["mediaType"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    if v.get("manifests").is_some() {
                        media_type::OCI_INDEX.to_owned()
                    } else {
                        media_type::OCI_MANIFEST.to_owned()
                    }
                });
        }
        Ok(Fetched {
            bytes,
            media_type: media,
        })
    }

    /// Streams a blob into `out`, verifying its digest; returns its size. A download
    /// cut short resumes where it stopped (a `Range` request), so nothing is fetched
    /// twice and `out` gets each byte once.
    pub fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &str,
        out: &mut impl Write,
    ) -> Result<u64, Error> {
        let path = format!("blobs/{digest}");
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        let mut backoff = Backoff::new();
        'tries: loop {
            let range = (size > 0).then(|| format!("bytes={size}-"));
            let call = Call {
                method: "GET",
                target: Target::Path(&path),
                range: range.as_deref(),
                ..Call::default()
            };
            let mut response = match self.send(reference, call) {
                Ok(response) => response,
                Err(error) if backoff.wait(&error) => continue,
                Err(error) => return Err(error),
            };
            // A registry that ignores the range sends the blob from its start again.
            let mut skip = if response.status == 206 { 0 } else { size };
            loop {
                let n = match response.body.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        let error = cut_body(reference, &path, &e);
                        if backoff.wait(&error) {
                            continue 'tries;
                        }
                        return Err(error);
                    }
                };
                if n == 0 {
                    break 'tries;
                }
                let skipped = skip.min(n as u64) as usize;
                skip -= skipped as u64;
                let fresh = &buf[skipped..n];
                hasher.update(fresh);
                out.write_all(fresh)?;
                size += fresh.len() as u64;
            }
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: "blob",
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(size)
    }

    /// Whether the repository already has a blob (HEAD).
    pub fn has_blob(&self, reference: &Reference, digest: &str) -> Result<bool, Error> {
        let path = format!("blobs/{digest}");
        let head = retry_transient(|| {
            self.send(
                reference,
                Call {
                    method: "HEAD",
                    target: Target::Path(&path),
                    push: true,
                    ..Call::default()
                },
            )
        });
        match head {
            Ok(_) => Ok(true),
            Err(Error::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads a blob of `size` bytes from `content` (streamed: one POST to open an
    /// upload session, one PUT with the whole blob), unless the repository has it.
    /// With `mount_from` (another repository of the same registry that has the blob)
    /// the registry is first asked to mount it from there; when it declines (202), the
    /// upload goes on in the session it opened. The registry checks `digest`.
    pub fn push_blob(
        &self,
        reference: &Reference,
        digest: &str,
        size: u64,
        content: &mut (dyn Read + Send),
        mount_from: Option<&str>,
    ) -> Result<(), Error> {
        if self.has_blob(reference, digest)? {
            return Ok(());
        }
        let mount_path = mount_from
            .filter(|from| *from != reference.path)
            .map(|from| format!("blobs/uploads/?mount={digest}&from={from}"));
        let session = self.send(
            reference,
            Call {
                method: "POST",
                target: Target::Path(mount_path.as_deref().unwrap_or("blobs/uploads/")),
                push: true,
                ..Call::default()
            },
        )?;
        // 201: mounted, nothing to upload.
        if session.status == 201 {
            return Ok(());
        }
        if session.location.is_empty() {
            return Err(Error::Invalid {
                what: "upload session",
                reference: reference.to_string(),
                message: "the registry gave no Location".to_owned(),
            });
        }
        let mut location = self.absolute_url(reference, &session.location);
        // Large blobs go up in chunks (PATCH with Content-Range), so no single request
        // carries more than a registry or a proxy in between may take.
        let mut remaining = size;
        if size > UPLOAD_CHUNK {
            let mut offset = 0;
            while offset < size {
                let len = UPLOAD_CHUNK.min(size - offset);
                let mut chunk = Read::take(&mut *content, len);
                let range = format!("{offset}-{}", offset + len - 1);
                let answer = self.send(
                    reference,
                    Call {
                        method: "PATCH",
                        target: Target::Url(&location),
                        content_type: Some("application/octet-stream"),
                        content_range: Some(&range),
                        body: Body::Reader(&mut chunk, len),
                        push: true,
                        ..Call::default()
                    },
                )?;
                if !answer.location.is_empty() {
                    location = self.absolute_url(reference, &answer.location);
                }
                offset += len;
            }
            remaining = 0;
        }
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={digest}");
        self.send(
            reference,
            Call {
                method: "PUT",
                target: Target::Url(&url),
                content_type: Some("application/octet-stream"),
                body: if remaining == 0 {
                    Body::Empty
                } else {
                    Body::Reader(content, size)
                },
                push: true,
                ..Call::default()
            },
        )?;
        Ok(())
    }

    /// Puts a manifest or index under a tag or its digest.
    pub fn push_manifest(
        &self,
        reference: &Reference,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let path = format!("manifests/{tag_or_digest}");
        retry_transient(|| {
            self.send(
                reference,
                Call {
                    method: "PUT",
                    target: Target::Path(&path),
                    content_type: Some(media_type),
                    body: Body::Bytes(bytes),
                    push: true,
                    ..Call::default()
                },
            )
        })?;
        Ok(())
    }

    /// A `Location` the registry gave, made absolute against the scheme that worked.
    fn absolute_url(&self, reference: &Reference, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            return location.to_owned();
        }
        let host = api_host(&reference.domain);
        let scheme = self
            .schemes
            .lock()
            .ok()
            .and_then(|s| s.get(host).copied())
            .unwrap_or("https");
        format!("{scheme}://{host}{location}")
    }

    /// Resolves a reference for a platform: the top digest, the platform's manifest and
    /// its config.
    pub fn resolve(&self, reference: &Reference, platform: &Platform) -> Result<Resolved, Error> {
        let tag_or_digest = reference
            .digest
            .clone()
            .or_else(|| reference.tag.clone())
            .unwrap_or_else(|| "latest".to_owned());
        let top = self.fetch_manifest(reference, &tag_or_digest)?;
        let digest = sha256_digest(&top.bytes);
        let (manifest_bytes, manifest_digest) = if media_type::is_index(&top.media_type) {
            let index: Index = serde_json::from_slice(&top.bytes).map_err(|e| Error::Invalid {
                what: "index",
                reference: reference.to_string(),
                message: e.to_string(),
            })?;
            let chosen = index
                .manifests
                .iter()
                .find(|m| {
                    m.platform.as_ref().is_some_and(|p| {
                        p.os == platform.os
                            && p.architecture == platform.architecture
                            && (platform.variant.is_empty() || p.variant == platform.variant)
                    })
                })
                .ok_or_else(|| Error::NoPlatform {
                    reference: reference.to_string(),
                    platform: platform.to_string(),
                })?;
            let fetched = self.fetch_manifest(reference, &chosen.digest)?;
            (fetched.bytes, chosen.digest.clone())
        } else {
            (top.bytes.clone(), digest.clone())
        };
        let manifest: Manifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| Error::Invalid {
                what: "manifest",
                reference: reference.to_string(),
                message: e.to_string(),
            })?;
        let mut config = Vec::new();
        self.fetch_blob(reference, &manifest.config.digest, &mut config)?;
        Ok(Resolved {
            digest,
            manifest,
            manifest_digest,
            config,
        })
    }
}

/// Whether a failed exchange was cut (reset, ended early, timed out) rather than
/// refused or rejected: then trying again may pass.
fn cut_short(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::Io(e) => io_cut_short(e),
        ureq::Error::Timeout(_) | ureq::Error::Protocol(_) | ureq::Error::BodyStalled => true,
        _ => false,
    }
}

fn io_cut_short(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | TimedOut | Interrupted
    ) || error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(cut_short)
}

/// A response body that could not be read to its end.
fn cut_body(reference: &Reference, path: &str, error: &std::io::Error) -> Error {
    Error::Http {
        url: format!("{}/v2/{}/{path}", reference.domain, reference.path),
        message: format!("reading the answer: {error}"),
        transient: io_cut_short(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#).unwrap();
        assert_eq!(c["realm"], "https://auth.example/token");
        assert_eq!(c["service"], "registry.example");
        assert!(parse_challenge("Basic realm=x").is_none());
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_local("localhost:5000"));
        assert!(is_local("127.0.0.1:5000"));
        assert!(!is_local("ghcr.io"));
    }
}
