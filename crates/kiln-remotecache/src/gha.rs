//! `type=gha`: a cache in the GitHub Actions cache service, kept as BuildKit keeps it
//! there (`cache/remotecache/gha` over `tonistiigi/go-actions-cache`):
//!
//! - each layer blob is the entry `buildkit-blob-1-<digest>`;
//! - the cache config, its layers described in it, is the entry
//!   `index-<scope>-1-<h>#<n>`: `<h>` the first 8 hex digits of the SHA-256 of the
//!   token's writable scope (such as `refs/heads/main`), `<n>` counting up with every
//!   export, since an entry cannot be written twice; an import reads the newest of every
//!   scope the token may read, combined.
//!
//! Two protocols: v1, the REST API under `<url>/_apis/artifactcache/` (entries reserved,
//! uploaded in `PATCH` chunks, committed), and v2, the twirp `CacheService` under
//! `<url_v2>/twirp/` whose entries are Azure blobs reached by signed URLs. The version is
//! chosen as BuildKit chooses it (`version`, else v2 when `url_v2` is given).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::Error;
use crate::options::{Secret, go_duration};

/// The options of `type=gha`.
pub const KEYS: &[&str] = &[
    "scope",
    "url",
    "url_v2",
    "token",
    "version",
    "timeout",
    "repository",
    "ghtoken",
];

/// Which protocol of the cache service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GhaApi {
    /// The REST API (`_apis/artifactcache`).
    V1,
    /// The twirp API with Azure blobs (`twirp/github.actions.results.api.v1`).
    V2,
}

/// Where a GitHub Actions cache is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GhaConfig {
    /// `scope` (default `buildkit`): names the index, so that several images of one
    /// repository keep separate caches.
    pub scope: String,
    /// The service's URL (`url`, or `url_v2` for v2).
    pub url: String,
    /// The protocol.
    pub api: GhaApi,
    /// `token`: the runner's `ACTIONS_RUNTIME_TOKEN`.
    pub token: Secret,
    /// `timeout` (default 10m): how long a request may be retried.
    pub timeout: Duration,
    /// `repository` (`owner/name`): with `ghtoken`, blobs already cached are found with
    /// one listing instead of one lookup each.
    pub repository: Option<String>,
    /// `ghtoken`: a GitHub token that may list the repository's caches.
    pub ghtoken: Option<Secret>,
}

impl GhaConfig {
    /// The options of a `type=gha` cache (checked for unknown keys by the caller), as
    /// BuildKit reads them.
    pub fn parse(attrs: &BTreeMap<String, String>) -> Result<Self, Error> {
        let token = attrs
            .get("token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::Options(
                    "type=gha: token= is required (in a workflow, $ACTIONS_RUNTIME_TOKEN gives it)"
                        .to_owned(),
                )
            })?;
        let mut version = match attrs.get("version") {
            None => 0,
            Some(text) => text
                .parse::<u32>()
                .map_err(|_| Error::Options(format!("version={text}: expected 1 or 2")))?,
        };
        let mut url = None;
        if version != 1 {
            if let Some(v2) = attrs.get("url_v2") {
                url = Some(v2.clone());
                version = 2;
            }
        }
        let url = url
            .or_else(|| attrs.get("url").cloned())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                Error::Options(
                    "type=gha: url= (or url_v2=) is required (in a workflow, $ACTIONS_CACHE_URL or $ACTIONS_RESULTS_URL gives it)"
                        .to_owned(),
                )
            })?;
        // As BuildKit, for clients that say no version: GitHub's v2 service by its host.
        if version == 0 {
            version = if url.contains("results-receiver.actions.githubusercontent.com") {
                2
            } else {
                1
            };
        }
        let timeout = match attrs.get("timeout") {
            None => Duration::from_secs(600),
            Some(text) => go_duration(text).ok_or_else(|| {
                Error::Options(format!("timeout={text}: expected a duration such as 10m"))
            })?,
        };
        let non_empty = |key: &str| attrs.get(key).filter(|v| !v.is_empty()).cloned();
        Ok(Self {
            scope: attrs
                .get("scope")
                .cloned()
                .unwrap_or_else(|| "buildkit".to_owned()),
            url,
            api: if version >= 2 { GhaApi::V2 } else { GhaApi::V1 },
            token: Secret(token.clone()),
            timeout,
            repository: non_empty("repository"),
            ghtoken: non_empty("ghtoken").map(Secret),
        })
    }
}

#[cfg(feature = "gha")]
mod client;

#[cfg(not(feature = "gha"))]
impl GhaConfig {
    /// Refused: this build has no GitHub Actions cache client.
    pub fn open(&self) -> Result<std::sync::Arc<dyn crate::CacheBackend>, Error> {
        Err(crate::options::missing_feature("gha"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::attrs;

    #[test]
    fn the_version_is_chosen_as_buildkit_chooses_it() {
        let v1 = GhaConfig::parse(&attrs(&[("token", "t"), ("url", "http://c/")])).unwrap();
        assert_eq!((v1.api, v1.url.as_str()), (GhaApi::V1, "http://c/"));
        assert_eq!(v1.scope, "buildkit");
        assert_eq!(v1.timeout, Duration::from_secs(600));
        let v2 = GhaConfig::parse(&attrs(&[
            ("token", "t"),
            ("url", "http://c/"),
            ("url_v2", "http://r/"),
        ]))
        .unwrap();
        assert_eq!((v2.api, v2.url.as_str()), (GhaApi::V2, "http://r/"));
        let forced = GhaConfig::parse(&attrs(&[
            ("token", "t"),
            ("url", "http://c/"),
            ("url_v2", "http://r/"),
            ("version", "1"),
        ]))
        .unwrap();
        assert_eq!((forced.api, forced.url.as_str()), (GhaApi::V1, "http://c/"));
        let guessed = GhaConfig::parse(&attrs(&[
            ("token", "t"),
            (
                "url",
                "https://results-receiver.actions.githubusercontent.com/",
            ),
        ]))
        .unwrap();
        assert_eq!(guessed.api, GhaApi::V2);
        for (bad, message) in [
            (vec![("url", "http://c/")], "token= is required"),
            (vec![("token", "t")], "url= (or url_v2=) is required"),
            (
                vec![("token", "t"), ("url", "u"), ("timeout", "x")],
                "timeout=x",
            ),
        ] {
            let error = GhaConfig::parse(&attrs(&bad)).unwrap_err().to_string();
            assert!(error.contains(message), "{error}");
        }
    }
}
