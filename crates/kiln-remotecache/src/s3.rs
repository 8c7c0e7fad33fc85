//! `type=s3`: a cache in an S3 bucket (or any S3-compatible store given by
//! `endpoint_url`), laid out as BuildKit lays it out: the cache config at
//! `<prefix><manifests_prefix><name>` (`manifests/buildkit` by default), blobs at
//! `<prefix><blobs_prefix><digest>`. Options and their environment fallbacks are
//! BuildKit's (`cache/remotecache/s3`); credentials not given as options come from the
//! usual AWS environment.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::Error;
use crate::options::{Secret, go_duration, names};

/// The options of `type=s3`.
pub const KEYS: &[&str] = &[
    "bucket",
    "region",
    "prefix",
    "manifests_prefix",
    "blobs_prefix",
    "name",
    "touch_refresh",
    "endpoint_url",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "use_path_style",
    "upload_parallelism",
];

/// Where an S3 cache is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `bucket` (or `$AWS_BUCKET`).
    pub bucket: String,
    /// `region` (or `$AWS_REGION`).
    pub region: String,
    /// `prefix`, before both of the next two.
    pub prefix: String,
    /// `manifests_prefix` (default `manifests/`).
    pub manifests_prefix: String,
    /// `blobs_prefix` (default `blobs/`).
    pub blobs_prefix: String,
    /// `name`, `;`-separated (default `buildkit`): export writes each, import reads the
    /// first.
    pub names: Vec<String>,
    /// `touch_refresh` (default 24h).
    pub touch_refresh: Duration,
    /// `endpoint_url`.
    pub endpoint_url: Option<String>,
    /// `access_key_id`.
    pub access_key_id: Option<String>,
    /// `secret_access_key`.
    pub secret_access_key: Option<Secret>,
    /// `session_token`.
    pub session_token: Option<Secret>,
    /// `use_path_style` (only with `endpoint_url`, as in BuildKit).
    pub use_path_style: bool,
    /// `upload_parallelism` (default 4).
    pub upload_parallelism: usize,
}

fn option_or_env(attrs: &BTreeMap<String, String>, key: &str, env: &str) -> Option<String> {
    attrs.get(key).cloned().or_else(|| std::env::var(env).ok())
}

impl S3Config {
    /// The options of a `type=s3` cache (checked for unknown keys by the caller).
    pub fn parse(attrs: &BTreeMap<String, String>) -> Result<Self, Error> {
        let bucket = option_or_env(attrs, "bucket", "AWS_BUCKET").ok_or_else(|| {
            Error::Options("type=s3: bucket= (or $AWS_BUCKET) is required".to_owned())
        })?;
        let region = option_or_env(attrs, "region", "AWS_REGION").ok_or_else(|| {
            Error::Options("type=s3: region= (or $AWS_REGION) is required".to_owned())
        })?;
        let touch_refresh = match attrs.get("touch_refresh") {
            None => Duration::from_secs(24 * 3600),
            Some(text) => go_duration(text).ok_or_else(|| {
                Error::Options(format!(
                    "touch_refresh={text}: expected a duration such as 24h or 90m"
                ))
            })?,
        };
        let upload_parallelism = match attrs.get("upload_parallelism") {
            None => 4,
            Some(text) => text.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::Options(format!(
                    "upload_parallelism={text}: must be a positive integer"
                ))
            })?,
        };
        let use_path_style = match attrs.get("use_path_style") {
            None => false,
            Some(text) => crate::options::parse_bool("use_path_style", text)?,
        };
        let non_empty = |key: &str| attrs.get(key).filter(|v| !v.is_empty()).cloned();
        Ok(Self {
            bucket,
            region,
            prefix: attrs.get("prefix").cloned().unwrap_or_default(),
            manifests_prefix: attrs
                .get("manifests_prefix")
                .cloned()
                .unwrap_or_else(|| "manifests/".to_owned()),
            blobs_prefix: attrs
                .get("blobs_prefix")
                .cloned()
                .unwrap_or_else(|| "blobs/".to_owned()),
            names: names(attrs),
            touch_refresh,
            endpoint_url: non_empty("endpoint_url"),
            access_key_id: non_empty("access_key_id"),
            secret_access_key: non_empty("secret_access_key").map(Secret),
            session_token: non_empty("session_token").map(Secret),
            use_path_style,
            upload_parallelism,
        })
    }
}

#[cfg(feature = "s3")]
mod open {
    use std::sync::Arc;

    use object_store::aws::AmazonS3Builder;

    use super::{S3Config, virtual_hosted_endpoint};
    use crate::objects::{Keys, ObjectCache, prepare};
    use crate::{CacheBackend, Error};

    impl S3Config {
        /// The cache as a backend.
        pub fn open(&self) -> Result<Arc<dyn CacheBackend>, Error> {
            prepare();
            // The environment first (AWS_* variables), then what the options say.
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(&self.bucket)
                .with_region(&self.region)
                .with_retry(crate::objects::retry());
            if let (Some(id), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(&secret.0);
                if let Some(token) = &self.session_token {
                    builder = builder.with_token(&token.0);
                }
            }
            builder = match &self.endpoint_url {
                // AWS's own endpoint: bucket.s3.region.amazonaws.com, as the AWS SDK does.
                None => builder.with_virtual_hosted_style_request(true),
                Some(endpoint) => {
                    let builder = builder.with_allow_http(endpoint.starts_with("http://"));
                    match virtual_hosted_endpoint(endpoint, &self.bucket, self.use_path_style) {
                        Some(hosted) => builder
                            .with_endpoint(hosted)
                            .with_virtual_hosted_style_request(true),
                        None => builder.with_endpoint(endpoint),
                    }
                }
            };
            let store = builder.build().map_err(|e| Error::Cloud {
                context: format!("type=s3,bucket={}", self.bucket),
                cause: e.to_string(),
            })?;
            let keys = Keys {
                manifests: self
                    .names
                    .iter()
                    .map(|name| format!("{}{}{name}", self.prefix, self.manifests_prefix))
                    .collect(),
                blobs: format!("{}{}", self.prefix, self.blobs_prefix),
                import_every_name: false,
            };
            Ok(Arc::new(ObjectCache::new(
                "s3",
                format!("s3://{}/{}", self.bucket, self.prefix),
                Arc::new(store),
                keys,
                Some(self.touch_refresh),
                self.upload_parallelism,
            )))
        }
    }
}

#[cfg(not(feature = "s3"))]
impl S3Config {
    /// Refused: this build has no S3 client.
    pub fn open(&self) -> Result<std::sync::Arc<dyn crate::CacheBackend>, Error> {
        Err(crate::options::missing_feature("s3"))
    }
}

/// The endpoint with the bucket as the host's first label, as the AWS SDK addresses a
/// bucket at a custom endpoint, or `None` for path-style requests: asked for, or an
/// endpoint named by an IP address (which the SDK's rules address by path too).
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
fn virtual_hosted_endpoint(endpoint: &str, bucket: &str, path_style: bool) -> Option<String> {
    if path_style {
        return None;
    }
    let (scheme, rest) = endpoint.split_once("://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    Some(format!("{scheme}://{bucket}.{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::attrs;

    #[test]
    fn defaults_and_checks_are_buildkits() {
        let config =
            S3Config::parse(&attrs(&[("bucket", "cache"), ("region", "eu-west-1")])).unwrap();
        assert_eq!(config.manifests_prefix, "manifests/");
        assert_eq!(config.blobs_prefix, "blobs/");
        assert_eq!(config.names, ["buildkit"]);
        assert_eq!(config.touch_refresh, Duration::from_secs(86400));
        assert_eq!(config.upload_parallelism, 4);
        let named = S3Config::parse(&attrs(&[
            ("bucket", "cache"),
            ("region", "eu-west-1"),
            ("name", "main;pr-1"),
            ("touch_refresh", "1h30m"),
        ]))
        .unwrap();
        assert_eq!(named.names, ["main", "pr-1"]);
        assert_eq!(named.touch_refresh, Duration::from_secs(5400));
        for (bad, message) in [
            (
                vec![
                    ("region", "r"),
                    ("bucket", "b"),
                    ("upload_parallelism", "0"),
                ],
                "positive",
            ),
            (
                vec![("region", "r"), ("bucket", "b"), ("touch_refresh", "soon")],
                "touch_refresh=soon",
            ),
        ] {
            let error = S3Config::parse(&attrs(&bad)).unwrap_err().to_string();
            assert!(error.contains(message), "{error}");
        }
    }

    #[test]
    fn buckets_are_addressed_as_the_aws_sdk_addresses_them() {
        assert_eq!(
            virtual_hosted_endpoint("https://minio.example:9000", "cache", false).as_deref(),
            Some("https://cache.minio.example:9000")
        );
        assert_eq!(
            virtual_hosted_endpoint("https://minio.example", "cache", true),
            None
        );
        assert_eq!(
            virtual_hosted_endpoint("http://127.0.0.1:9000", "cache", false),
            None
        );
        assert_eq!(
            virtual_hosted_endpoint("http://[::1]:9000", "cache", false),
            None
        );
    }
}
