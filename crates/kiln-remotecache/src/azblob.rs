//! `type=azblob`: a cache in an Azure Blob Storage container, laid out as BuildKit
//! lays it out: the cache config at `<prefix>/<manifests_prefix>/<name>`
//! (`manifests/buildkit` by default), blobs at `<prefix>/<blobs_prefix>/<digest>`.
//! Options and their `BUILDKIT_AZURE_STORAGE_*` fallbacks are BuildKit's
//! (`cache/remotecache/azblob`); without `secret_access_key` the credentials come from
//! the usual Azure environment. As BuildKit, an export creates the container when it
//! is missing.

use std::collections::BTreeMap;

use crate::Error;
use crate::options::{Secret, names};

/// The options of `type=azblob`.
pub const KEYS: &[&str] = &[
    "account_url",
    "account_name",
    "secret_access_key",
    "container",
    "prefix",
    "manifests_prefix",
    "blobs_prefix",
    "name",
];

/// Where an Azure Blob cache is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzblobConfig {
    /// `account_url` (or `$BUILDKIT_AZURE_STORAGE_ACCOUNT_URL`), such as
    /// `https://NAME.blob.core.windows.net` or Azurite's
    /// `http://127.0.0.1:10000/devstoreaccount1`.
    pub account_url: String,
    /// `account_name` (or `$BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME`, or the URL's first
    /// host label).
    pub account_name: String,
    /// `container` (or `$BUILDKIT_AZURE_STORAGE_CONTAINER`, default `buildkit-cache`).
    pub container: String,
    /// `prefix` (or `$BUILDKIT_AZURE_STORAGE_PREFIX`).
    pub prefix: String,
    /// `manifests_prefix` (default `manifests`).
    pub manifests_prefix: String,
    /// `blobs_prefix` (default `blobs`).
    pub blobs_prefix: String,
    /// `name`, `;`-separated (default `buildkit`): export writes each, import reads
    /// them all, combined.
    pub names: Vec<String>,
    /// `secret_access_key`: the account's shared key.
    pub secret_access_key: Option<Secret>,
}

fn option_or_env(attrs: &BTreeMap<String, String>, key: &str, env: &str) -> Option<String> {
    attrs.get(key).cloned().or_else(|| std::env::var(env).ok())
}

impl AzblobConfig {
    /// The options of a `type=azblob` cache (checked for unknown keys by the caller).
    pub fn parse(attrs: &BTreeMap<String, String>) -> Result<Self, Error> {
        let account_url =
            option_or_env(attrs, "account_url", "BUILDKIT_AZURE_STORAGE_ACCOUNT_URL")
                .filter(|u| !u.is_empty())
                .ok_or_else(|| {
                    Error::Options(
                        "type=azblob: account_url= (or $BUILDKIT_AZURE_STORAGE_ACCOUNT_URL) is required"
                            .to_owned(),
                    )
                })?;
        let host = account_url
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or(""))
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                Error::Options(format!(
                    "account_url={account_url}: expected a URL such as https://NAME.blob.core.windows.net"
                ))
            })?;
        let account_name =
            option_or_env(attrs, "account_name", "BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME")
                .unwrap_or_else(|| host.split('.').next().unwrap_or("").to_owned());
        if account_name.is_empty() {
            return Err(Error::Options(
                "type=azblob: account_name= (or $BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME) is required when the account URL does not name it"
                    .to_owned(),
            ));
        }
        Ok(Self {
            account_name,
            container: option_or_env(attrs, "container", "BUILDKIT_AZURE_STORAGE_CONTAINER")
                .unwrap_or_else(|| "buildkit-cache".to_owned()),
            prefix: option_or_env(attrs, "prefix", "BUILDKIT_AZURE_STORAGE_PREFIX")
                .unwrap_or_default(),
            manifests_prefix: attrs
                .get("manifests_prefix")
                .cloned()
                .unwrap_or_else(|| "manifests".to_owned()),
            blobs_prefix: attrs
                .get("blobs_prefix")
                .cloned()
                .unwrap_or_else(|| "blobs".to_owned()),
            names: names(attrs),
            secret_access_key: attrs
                .get("secret_access_key")
                .filter(|k| !k.is_empty())
                .cloned()
                .map(Secret),
            account_url,
        })
    }

    /// The manifest objects' keys, one per name.
    pub fn manifest_keys(&self) -> Vec<String> {
        self.names
            .iter()
            .map(|name| kiln_oci::go::join_path(&[&self.prefix, &self.manifests_prefix, name]))
            .collect()
    }

    /// The key prefix of blobs, the digest to follow.
    pub fn blob_key_prefix(&self) -> String {
        let joined = kiln_oci::go::join_path(&[&self.prefix, &self.blobs_prefix]);
        if joined.is_empty() {
            joined
        } else {
            joined + "/"
        }
    }
}

#[cfg(feature = "azblob")]
mod open {
    use std::sync::Arc;

    use object_store::azure::MicrosoftAzureBuilder;

    use super::AzblobConfig;
    use crate::objects::{Keys, ObjectCache, prepare};
    use crate::{CacheBackend, Error};

    impl AzblobConfig {
        /// Where the cache is, for messages.
        fn location(&self) -> String {
            format!(
                "{}/{}",
                self.account_url.trim_end_matches('/'),
                self.container
            )
        }

        /// The cache as a backend; for an export (`create`), the container is made
        /// when it is missing.
        pub fn open(&self, create: bool) -> Result<Arc<dyn CacheBackend>, Error> {
            prepare();
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_account(&self.account_name)
                .with_container_name(&self.container)
                .with_endpoint(self.account_url.trim_end_matches('/').to_owned())
                .with_allow_http(self.account_url.starts_with("http://"))
                .with_retry(crate::objects::retry());
            if let Some(key) = &self.secret_access_key {
                builder = builder.with_access_key(&key.0);
            }
            let store = builder.build().map_err(|e| Error::Cloud {
                context: format!("type=azblob at {}", self.location()),
                cause: e.to_string(),
            })?;
            if create {
                if let Some(key) = &self.secret_access_key {
                    create_container(self, &key.0).map_err(|cause| Error::Cloud {
                        context: format!(
                            "azblob cache at {}: creating the container",
                            self.location()
                        ),
                        cause,
                    })?;
                }
            }
            Ok(Arc::new(ObjectCache::new(
                "azblob",
                self.location(),
                Arc::new(store),
                Keys {
                    manifests: self.manifest_keys(),
                    blobs: self.blob_key_prefix(),
                    import_every_name: true,
                },
                None,
                4,
            )))
        }
    }

    /// Creates the container (a container that exists already is fine), signed
    /// with the account's shared key as Azure's REST API wants it.
    fn create_container(config: &AzblobConfig, key: &str) -> Result<(), String> {
        use base64::Engine as _;
        use hmac::{KeyInit as _, Mac as _};

        const VERSION: &str = "2021-08-06";
        let url = format!(
            "{}/{}?restype=container",
            config.account_url.trim_end_matches('/'),
            config.container
        );
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            .and_then(|p| p.split_once('?').map(|(path, _)| path))
            .unwrap_or("/");
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let string_to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{VERSION}\n/{}{path}\nrestype:container",
            config.account_name
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(key)
            .map_err(|e| format!("secret_access_key is not base64: {e}"))?;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
            .map_err(|e| format!("secret_access_key: {e}"))?;
        mac.update(string_to_sign.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let authorization = format!("SharedKey {}:{signature}", config.account_name);
        let response = crate::objects::run(async move {
            reqwest::Client::new()
                .put(url)
                .header("x-ms-date", date)
                .header("x-ms-version", VERSION)
                .header("Authorization", authorization)
                .header("Content-Length", "0")
                .send()
                .await
        })
        .map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            201 | 409 => Ok(()),
            status => Err(format!("HTTP {status}")),
        }
    }
}

#[cfg(not(feature = "azblob"))]
impl AzblobConfig {
    /// Refused: this build has no Azure client.
    pub fn open(&self, _create: bool) -> Result<std::sync::Arc<dyn crate::CacheBackend>, Error> {
        Err(crate::options::missing_feature("azblob"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::attrs;

    #[test]
    fn keys_and_defaults_are_buildkits() {
        let config = AzblobConfig::parse(&attrs(&[(
            "account_url",
            "https://myaccount.blob.core.windows.net",
        )]))
        .unwrap();
        assert_eq!(config.account_name, "myaccount");
        assert_eq!(config.container, "buildkit-cache");
        assert_eq!(config.manifest_keys(), ["manifests/buildkit"]);
        assert_eq!(config.blob_key_prefix(), "blobs/");
        let custom = AzblobConfig::parse(&attrs(&[
            ("account_url", "http://127.0.0.1:10000/devstoreaccount1"),
            ("account_name", "devstoreaccount1"),
            ("prefix", "ci/"),
            ("blobs_prefix", ""),
            ("name", "main;pr"),
        ]))
        .unwrap();
        assert_eq!(
            custom.manifest_keys(),
            ["ci/manifests/main", "ci/manifests/pr"]
        );
        assert_eq!(custom.blob_key_prefix(), "ci/");
        let error = AzblobConfig::parse(&attrs(&[("account_url", "nonsense")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("account_url=nonsense"), "{error}");
    }
}
