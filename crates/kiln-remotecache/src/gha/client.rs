//! The cache service's client: entries looked up, reserved, uploaded and committed in
//! either protocol; blobs of v2 go to (and come from) Azure through the signed URLs the
//! service hands out, by the object-store code s3 and azblob use.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use futures_util::StreamExt as _;
use kiln_oci::Descriptor;
use serde::Deserialize;
use serde_json::json;
use sha2::Digest as _;

use super::{GhaApi, GhaConfig};
use crate::objects::{Streamed, download, prepare, run, upload, write_stream};
use crate::{CacheBackend, Error, Layout};

/// The cache format's version in entry keys, as BuildKit writes it.
const FORMAT: &str = "1";
/// Upload chunks of v1.
const CHUNK: usize = 8 << 20;
/// The largest index read.
const MAX_INDEX: usize = 64 << 20;

/// The `version` every entry is saved and looked up with: go-actions-cache's constant.
fn entry_version() -> String {
    hex::encode(sha2::Sha256::digest(b"|go-actionscache-1.0"))
}

fn blob_key(digest: &str) -> String {
    format!("buildkit-blob-{FORMAT}-{digest}")
}

/// A token scope as the token's `ac` claim lists it.
#[derive(Debug, Clone, Deserialize)]
struct TokenScope {
    #[serde(rename = "Scope")]
    scope: String,
    #[serde(rename = "Permission")]
    permission: u32,
}

const PERMISSION_WRITE: u32 = 2;

/// The scopes a runtime token grants (its JWT claims, read without verifying: the
/// service verifies it), after checking it is valid now.
fn token_scopes(token: &str) -> Result<Vec<TokenScope>, String> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or("the token is not a JWT (header.claims.signature)")?;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| format!("the token's claims are not base64: {e}"))?;
    let claims: serde_json::Value = serde_json::from_slice(&claims)
        .map_err(|e| format!("the token's claims are not JSON: {e}"))?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let time = |name: &str| {
        claims[name]
            .as_f64()
            .ok_or_else(|| format!("the token has no {name} time"))
    };
    if time("exp")? < now {
        return Err(format!(
            "the token expired at {} (a workflow's token lasts 6 hours)",
            kiln_oci::rfc3339_utc(time("exp")? as i64)
        ));
    }
    if time("nbf")? > now {
        return Err("the token is not valid yet".to_owned());
    }
    let access = claims["ac"]
        .as_str()
        .ok_or("the token has no access controls (ac)")?;
    serde_json::from_str(access).map_err(|e| format!("the token's access controls: {e}"))
}

/// The index entry's key for the token scope `scope` (`#N` follows).
fn index_key(config: &GhaConfig, scope: &str) -> String {
    let hash = hex::encode(sha2::Sha256::digest(scope.as_bytes()));
    format!("index-{}-{FORMAT}-{}", config.scope, &hash[..8])
}

/// An entry found by a lookup.
#[derive(Debug, Clone)]
struct Found {
    key: String,
    /// Where its bytes are: a plain URL (v1) or an Azure blob's signed URL (v2).
    url: String,
}

/// A reservation.
enum Reserved {
    /// v1: the cache ID to upload to.
    V1(u64),
    /// v2: the signed URL of the Azure blob to write.
    V2(String),
    /// Someone has the key already.
    Exists,
}

/// The service as requests need it (cheap to clone into a request's task).
#[derive(Clone)]
struct Service {
    http: reqwest::Client,
    url: String,
    api: GhaApi,
    token: String,
    timeout: Duration,
}

impl Service {
    fn v1_url(&self, path: &str) -> String {
        format!(
            "{}/_apis/artifactcache/{path}",
            self.url.trim_end_matches('/')
        )
    }

    fn v2_url(&self, method: &str) -> String {
        format!(
            "{}/twirp/github.actions.results.api.v1.CacheService/{method}",
            self.url.trim_end_matches('/')
        )
    }

    /// Sends a request, retrying what may pass later (429, 5xx, a cut connection) with
    /// growing pauses until `timeout`; the response's status and body.
    async fn send(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), String> {
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(500);
        loop {
            let answer = request()
                .bearer_auth(&self.token)
                .header("User-Agent", concat!("kiln/", env!("CARGO_PKG_VERSION")))
                .send()
                .await;
            let retry = match answer {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if status != 429 && status < 500 {
                        let body = response.bytes().await.map_err(|e| e.to_string())?;
                        return Ok((status, body.to_vec()));
                    }
                    format!("HTTP {status}")
                }
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => e.to_string(),
                Err(e) => return Err(e.to_string()),
            };
            if Instant::now() + pause > deadline {
                return Err(format!(
                    "{retry} (retried until timeout={:?})",
                    self.timeout
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(4));
        }
    }

    /// The newest entry whose key starts with one of `keys`.
    async fn load(self, keys: Vec<String>) -> Result<Option<Found>, String> {
        let version = entry_version();
        match self.api {
            GhaApi::V1 => {
                let url = self.v1_url("cache");
                let (status, body) = self
                    .send(|| {
                        self.http
                            .get(&url)
                            .query(&[("keys", keys.join(",")), ("version", version.clone())])
                            .header("Accept", "application/json;api-version=6.0-preview.1")
                    })
                    .await?;
                if status == 204 || body.is_empty() {
                    return Ok(None);
                }
                check(status, &body)?;
                #[derive(Deserialize)]
                struct Entry {
                    #[serde(rename = "cacheKey", default)]
                    key: String,
                    #[serde(rename = "archiveLocation", default)]
                    url: String,
                }
                let entry: Entry = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                Ok((!entry.key.is_empty()).then_some(Found {
                    key: entry.key,
                    url: entry.url,
                }))
            }
            GhaApi::V2 => {
                let url = self.v2_url("GetCacheEntryDownloadURL");
                let request = json!({"key": keys[0], "restore_keys": keys, "version": version});
                let (status, body) = self.send(|| self.http.post(&url).json(&request)).await?;
                check(status, &body)?;
                #[derive(Deserialize)]
                struct Answer {
                    #[serde(default)]
                    ok: bool,
                    #[serde(default)]
                    signed_download_url: String,
                    #[serde(default)]
                    matched_key: String,
                }
                let answer: Answer = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                Ok(answer.ok.then_some(Found {
                    key: answer.matched_key,
                    url: answer.signed_download_url,
                }))
            }
        }
    }

    async fn reserve(self, key: String) -> Result<Reserved, String> {
        let request = json!({"key": key, "version": entry_version()});
        let url = match self.api {
            GhaApi::V1 => self.v1_url("caches"),
            GhaApi::V2 => self.v2_url("CreateCacheEntry"),
        };
        let (status, body) = self.send(|| self.http.post(&url).json(&request)).await?;
        if already_exists(status, &body) {
            return Ok(Reserved::Exists);
        }
        check(status, &body)?;
        let answer: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        match self.api {
            GhaApi::V1 => answer["cacheID"]
                .as_u64()
                .filter(|id| *id != 0)
                .map(Reserved::V1)
                .ok_or_else(|| format!("no cache ID in {}", String::from_utf8_lossy(&body))),
            GhaApi::V2 => match (answer["ok"].as_bool(), answer["signed_upload_url"].as_str()) {
                (Some(true), Some(url)) => Ok(Reserved::V2(url.to_owned())),
                _ => Err(format!(
                    "reserving {key}: {}",
                    String::from_utf8_lossy(&body)
                )),
            },
        }
    }

    async fn upload_chunk(self, id: u64, offset: usize, chunk: Vec<u8>) -> Result<(), String> {
        let url = self.v1_url(&format!("caches/{id}"));
        let range = format!("bytes {}-{}/*", offset, offset + chunk.len() - 1);
        let chunk = bytes::Bytes::from(chunk);
        let (status, body) = self
            .send(|| {
                self.http
                    .patch(&url)
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Range", &range)
                    .body(chunk.clone())
            })
            .await?;
        check(status, &body)
    }

    async fn commit(self, key: String, reserved: u64, size: usize) -> Result<(), String> {
        let (status, body) = match self.api {
            GhaApi::V1 => {
                let url = self.v1_url(&format!("caches/{reserved}"));
                let request = json!({"size": size});
                self.send(|| self.http.post(&url).json(&request)).await?
            }
            GhaApi::V2 => {
                let url = self.v2_url("FinalizeCacheEntryUpload");
                let request = json!({"key": key, "size_bytes": size, "version": entry_version()});
                self.send(|| self.http.post(&url).json(&request)).await?
            }
        };
        check(status, &body)?;
        if self.api == GhaApi::V2 {
            let answer: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            if answer["ok"].as_bool() != Some(true) {
                return Err(format!(
                    "committing {key}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
        }
        Ok(())
    }
}

/// A service error's status and message.
fn check(status: u16, body: &[u8]) -> Result<(), String> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let message = answer["message"]
        .as_str()
        .or_else(|| answer["msg"].as_str())
        .or_else(|| answer["code"].as_str())
        .map_or_else(|| String::from_utf8_lossy(body).into_owned(), str::to_owned);
    Err(format!("HTTP {status}: {message}"))
}

/// Whether an error answer says the key is taken (v1's `…AlreadyExists…` type key or
/// message, v2's twirp code `already_exists`).
fn already_exists(status: u16, body: &[u8]) -> bool {
    if (200..300).contains(&status) {
        return false;
    }
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    answer["typeKey"]
        .as_str()
        .is_some_and(|k| k.contains("AlreadyExists"))
        || answer["message"]
            .as_str()
            .is_some_and(|m| m.to_lowercase().contains("already exists"))
        || answer["code"].as_str() == Some("already_exists")
}

/// An Azure blob's signed URL as an object store and the blob's path in it.
fn signed_blob(
    url: &str,
) -> Result<(Arc<dyn object_store::ObjectStore>, object_store::path::Path), String> {
    prepare();
    let parsed = url::Url::parse(url).map_err(|e| format!("signed URL {url:?}: {e}"))?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let segments: Vec<&str> = parsed
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    let mut origin = format!("{}://{}", parsed.scheme(), host);
    if let Some(port) = parsed.port() {
        origin.push_str(&format!(":{port}"));
    }
    // An address (Azurite, a test) names the account in the path; a host name in its
    // first label.
    let by_path = host.parse::<std::net::IpAddr>().is_ok() || host == "localhost";
    let (account, rest) = if by_path {
        let (account, rest) = segments
            .split_first()
            .ok_or_else(|| format!("signed URL {url:?} names no account"))?;
        origin.push_str(&format!("/{account}"));
        ((*account).to_owned(), rest)
    } else {
        (
            host.split('.').next().unwrap_or_default().to_owned(),
            &segments[..],
        )
    };
    let (container, blob) = rest
        .split_first()
        .filter(|(_, blob)| !blob.is_empty())
        .ok_or_else(|| format!("signed URL {url:?} names no container and blob"))?;
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let store = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account(account)
        .with_container_name(*container)
        .with_endpoint(origin)
        .with_allow_http(parsed.scheme() == "http")
        .with_sas_authorization(pairs)
        .with_retry(crate::objects::retry())
        .build()
        .map_err(|e| e.to_string())?;
    let path = blob
        .iter()
        .map(|part| percent_decode(part))
        .collect::<Vec<String>>()
        .join("/");
    Ok((Arc::new(store), object_store::path::Path::from(path)))
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Counts what a reader gives.
struct Counting<'a> {
    inner: &'a mut (dyn Read + Send),
    count: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n;
        Ok(n)
    }
}

/// A cache in the GitHub Actions cache service.
pub(crate) struct GhaCache {
    config: GhaConfig,
    service: Service,
    scopes: Vec<TokenScope>,
    /// Blob keys the repository's caches hold, listed once (with `repository` and
    /// `ghtoken`); `None` inside when the listing is not possible.
    listed: OnceLock<Option<HashSet<String>>>,
}

impl GhaConfig {
    /// The cache as a backend.
    pub fn open(&self) -> Result<Arc<dyn CacheBackend>, Error> {
        prepare();
        let scopes = token_scopes(&self.token.0).map_err(|cause| Error::Cloud {
            context: "type=gha: token=".to_owned(),
            cause,
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Cloud {
                context: "type=gha".to_owned(),
                cause: e.to_string(),
            })?;
        Ok(Arc::new(GhaCache {
            service: Service {
                http,
                url: self.url.clone(),
                api: self.api,
                token: self.token.0.clone(),
                timeout: self.timeout,
            },
            config: self.clone(),
            scopes,
            listed: OnceLock::new(),
        }))
    }
}

impl GhaCache {
    fn failed(&self, doing: String, cause: String) -> Error {
        Error::Cloud {
            context: format!(
                "gha cache (scope {}) at {}: {doing}",
                self.config.scope, self.config.url
            ),
            cause,
        }
    }

    fn load(&self, keys: Vec<String>) -> Result<Option<Found>, Error> {
        let what = keys.join(", ");
        run(self.service.clone().load(keys))
            .map_err(|e| self.failed(format!("looking up {what}"), e))
    }

    /// The scope an export writes: the token's last writable one (none: the empty
    /// scope, as BuildKit names it).
    fn write_scope(&self) -> &str {
        self.scopes
            .iter()
            .rev()
            .find(|s| s.permission & PERMISSION_WRITE != 0)
            .map_or("", |s| s.scope.as_str())
    }

    fn download(&self, found: &Found, out: &mut dyn Write) -> Result<(), Error> {
        let fail = |e: String| self.failed(format!("reading {}", found.key), e);
        match self.service.api {
            GhaApi::V2 => {
                let (store, path) = signed_blob(&found.url).map_err(fail)?;
                download(store, path, out).map_err(|e| match e {
                    Streamed::Store(e) => fail(e.to_string()),
                    Streamed::Local(e) => Error::Io(e),
                })
            }
            GhaApi::V1 => {
                let (http, url) = (self.service.http.clone(), found.url.clone());
                let open = async move {
                    let response = http.get(&url).send().await.map_err(|e| e.to_string())?;
                    if !response.status().is_success() {
                        return Err(format!("HTTP {}", response.status()));
                    }
                    Ok(response
                        .bytes_stream()
                        .map(|c| c.map_err(|e| e.to_string())))
                };
                write_stream(open, out).map_err(|e| match e {
                    Streamed::Store(e) => fail(e),
                    Streamed::Local(e) => Error::Io(e),
                })
            }
        }
    }

    /// Saves `content` under `key`; `false` when the key was taken already.
    fn save(&self, key: &str, content: &mut (dyn Read + Send)) -> Result<bool, Error> {
        let fail = |e: String| self.failed(format!("writing {key}"), e);
        let reserved = run(self.service.clone().reserve(key.to_owned())).map_err(fail)?;
        let mut counting = Counting {
            inner: content,
            count: 0,
        };
        let id = match reserved {
            Reserved::Exists => return Ok(false),
            Reserved::V1(id) => {
                loop {
                    let mut chunk = Vec::with_capacity(CHUNK);
                    (&mut counting).take(CHUNK as u64).read_to_end(&mut chunk)?;
                    if chunk.is_empty() {
                        break;
                    }
                    let offset = counting.count - chunk.len();
                    run(self.service.clone().upload_chunk(id, offset, chunk)).map_err(fail)?;
                }
                id
            }
            Reserved::V2(url) => {
                let (store, path) = signed_blob(&url).map_err(fail)?;
                upload(store, path, &mut counting).map_err(|e| match e {
                    Streamed::Store(e) => fail(e.to_string()),
                    Streamed::Local(e) => Error::Io(e),
                })?;
                0
            }
        };
        run(self
            .service
            .clone()
            .commit(key.to_owned(), id, counting.count))
        .map_err(fail)?;
        Ok(true)
    }

    /// The repository's blob keys, listed through GitHub's REST API once.
    fn listed_blobs(&self) -> Option<&HashSet<String>> {
        self.listed
            .get_or_init(|| {
                let (repository, ghtoken) = (
                    self.config.repository.as_ref()?,
                    self.config.ghtoken.as_ref()?,
                );
                let api = std::env::var("GITHUB_API_URL")
                    .unwrap_or_else(|_| "https://api.github.com".to_owned());
                let service = Service {
                    token: ghtoken.0.clone(),
                    url: api,
                    ..self.service.clone()
                };
                let scopes: Vec<String> = self.scopes.iter().map(|s| s.scope.clone()).collect();
                let prefix = format!("buildkit-blob-{FORMAT}-");
                let repository = repository.clone();
                // A listing that fails costs only the shortcut: lookups one by one.
                run(async move {
                    let mut keys = HashSet::new();
                    for scope in scopes {
                        for page in 1.. {
                            let url = format!(
                                "{}/repos/{repository}/actions/caches",
                                service.url.trim_end_matches('/')
                            );
                            let (status, body) = service
                                .send(|| {
                                    service
                                        .http
                                        .get(&url)
                                        .query(&[
                                            ("key", prefix.as_str()),
                                            ("ref", scope.as_str()),
                                            ("per_page", "100"),
                                            ("page", &page.to_string()),
                                        ])
                                        .header("Accept", "application/vnd.github+json")
                                })
                                .await
                                .ok()?;
                            check(status, &body).ok()?;
                            let answer: serde_json::Value = serde_json::from_slice(&body).ok()?;
                            let caches = answer["actions_caches"].as_array()?;
                            keys.extend(
                                caches
                                    .iter()
                                    .filter_map(|c| c["key"].as_str().map(str::to_owned)),
                            );
                            if caches.len() < 100 {
                                break;
                            }
                        }
                    }
                    Some(keys)
                })
            })
            .as_ref()
    }
}

impl CacheBackend for GhaCache {
    fn layout(&self) -> Layout {
        Layout::AnnotatedConfig
    }

    fn read_manifest(&self) -> Result<Vec<u8>, Error> {
        let mut found = Vec::new();
        for scope in &self.scopes {
            let Some(entry) = self.load(vec![index_key(&self.config, &scope.scope)])? else {
                continue;
            };
            let mut bytes = Vec::new();
            self.download(
                &entry,
                &mut LimitedWriter {
                    inner: &mut bytes,
                    left: MAX_INDEX,
                },
            )?;
            found.push(bytes);
        }
        match found.len() {
            0 => Err(Error::NotFound(format!(
                "no cache of scope {} in the GitHub Actions cache at {}: export one with --cache-to type=gha,scope={}",
                self.config.scope, self.config.url, self.config.scope
            ))),
            1 => Ok(found.remove(0)),
            _ => crate::format::merge_config_bytes(&found),
        }
    }

    fn read_blob(&self, blob: &Descriptor, out: &mut dyn Write) -> Result<(), Error> {
        let key = blob_key(&blob.digest);
        let found = self
            .load(vec![key.clone()])?
            .filter(|f| f.key == key)
            .ok_or_else(|| Error::NotFound(format!("the gha cache has no blob {}", blob.digest)))?;
        self.download(&found, out)
    }

    fn has_blob(&self, blob: &Descriptor) -> Result<bool, Error> {
        let key = blob_key(&blob.digest);
        if let Some(listed) = self.listed_blobs() {
            return Ok(listed.contains(&key));
        }
        Ok(self.load(vec![key.clone()])?.is_some_and(|f| f.key == key))
    }

    fn write_blob(&self, blob: &Descriptor, content: &mut (dyn Read + Send)) -> Result<(), Error> {
        if self.has_blob(blob)? {
            return Ok(());
        }
        // Taken by another build meanwhile: that one's bytes are the same blob.
        self.save(&blob_key(&blob.digest), content).map(drop)
    }

    /// A new `#N` entry of the index, one past the newest: entries cannot be written
    /// twice. A number another export reserved but never committed (it crashed) is
    /// waited for up to 15 s, then skipped, as go-actions-cache's `SaveMutable` does.
    fn write_manifest(&self, bytes: &[u8], _media_type: &str) -> Result<(), Error> {
        let base = index_key(&self.config, self.write_scope());
        let mut blocked = Duration::ZERO;
        'fresh: loop {
            let newest = self.load(vec![format!("{base}#")])?;
            let mut number: u64 = match &newest {
                None => 0,
                Some(found) => found
                    .key
                    .strip_prefix(&format!("{base}#"))
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| {
                        self.failed(
                            format!("reading {base}"),
                            format!("bad index key {}", found.key),
                        )
                    })?,
            };
            loop {
                number += 1;
                if self.save(&format!("{base}#{number}"), &mut &bytes[..])? {
                    return Ok(());
                }
                if blocked <= Duration::from_secs(15) {
                    blocked += Duration::from_secs(2);
                    std::thread::sleep(Duration::from_secs(2));
                    continue 'fresh;
                }
            }
        }
    }
}

/// A writer that refuses more than `left` bytes (an index is small; a hostile one is
/// not read whole).
struct LimitedWriter<'a> {
    inner: &'a mut Vec<u8>,
    left: usize,
}

impl Write for LimitedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.left {
            return Err(std::io::Error::other(
                "the cache index is larger than 64 MiB",
            ));
        }
        self.left -= buf.len();
        self.inner.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token as GitHub's runner has them (unsigned here: the client never checks).
    pub(crate) fn token(scopes: &str, exp: i64) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = json!({"ac": scopes, "exp": exp, "nbf": 1_600_000_000});
        format!(
            "{}.{}.sig",
            engine.encode(br#"{"alg":"RS256"}"#),
            engine.encode(claims.to_string())
        )
    }

    #[test]
    fn keys_are_buildkits() {
        assert_eq!(
            entry_version(),
            hex::encode(sha2::Sha256::digest(b"|go-actionscache-1.0"))
        );
        assert_eq!(blob_key("sha256:ab"), "buildkit-blob-1-sha256:ab");
        let config = GhaConfig::parse(
            &[("token", "t"), ("url", "http://c/"), ("scope", "app")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
        .unwrap();
        let hash = hex::encode(sha2::Sha256::digest(b"refs/heads/main"));
        assert_eq!(
            index_key(&config, "refs/heads/main"),
            format!("index-app-1-{}", &hash[..8])
        );
    }

    #[test]
    fn tokens_give_their_scopes_and_expire() {
        let scopes = r#"[{"Scope":"refs/heads/main","Permission":1},{"Scope":"refs/pull/1/merge","Permission":3}]"#;
        let read = token_scopes(&token(scopes, 4_000_000_000)).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].scope, "refs/pull/1/merge");
        assert_eq!(read[1].permission & PERMISSION_WRITE, PERMISSION_WRITE);
        let expired = token_scopes(&token(scopes, 1_600_000_001)).unwrap_err();
        assert!(expired.contains("expired"), "{expired}");
        assert!(token_scopes("not-a-jwt").is_err());
    }

    #[test]
    fn signed_urls_of_azure_and_azurite() {
        let (_, path) =
            signed_blob("https://acct.blob.core.windows.net/cache/entries/7?sv=2021&sig=a%2Bb")
                .unwrap();
        assert_eq!(path.as_ref(), "entries/7");
        let (_, path) =
            signed_blob("http://127.0.0.1:10000/devstoreaccount1/cache/entries/7?sig=x").unwrap();
        assert_eq!(path.as_ref(), "entries/7");
        assert!(signed_blob("http://127.0.0.1:10000/devstoreaccount1/cache").is_err());
    }
}
