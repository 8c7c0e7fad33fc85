//! What a client asks a builder for and what it gets back: plain data, the same for
//! the embedded engine and a daemon (BuildKit's `client.SolveOpt` and
//! `client.SolveResponse`, in kiln's shape).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A named context's value (`--build-context NAME=VALUE`, Bake's `contexts`).
#[derive(Debug, Clone)]
pub enum BuildContext {
    /// `docker-image://REF`: an image.
    Image(String),
    /// A directory on this machine.
    Dir(PathBuf),
    /// An image in an OCI layout directory, by tag or digest (empty: its only image).
    OciLayout {
        /// The layout directory.
        path: PathBuf,
        /// A tag (`org.opencontainers.image.ref.name`) or `sha256:` digest.
        selector: String,
    },
    /// A file over http(s): the context holds it, named after the URL.
    Http(String),
    /// A git repository at a ref (`ref:subdir` names a subdirectory).
    Git {
        /// The repository's URL.
        url: String,
        /// The ref, and `:subdir` when given.
        reference: String,
    },
    /// Another build whose result is the context (Bake's `target:NAME`).
    Build(Box<BuildRequest>),
    /// The result of an LLB definition solved earlier, handed to the frontend as an
    /// input: buildx's `input:` contexts, how Bake's `target:` links reach a daemon.
    Definition {
        /// The definition, in BuildKit's wire format.
        definition: Vec<u8>,
        /// The image config that came with it (`containerimage.config`), if any.
        image_config: Option<Vec<u8>>,
        /// Where a daemon received the directories its local sources read, by local
        /// name (a directory of another session under `NAME@SESSION`); empty on
        /// the client.
        locals: BTreeMap<String, PathBuf>,
    },
}

/// An exporter as BuildKit's `ExportEntry` names it: its type (`image`, `local`,
/// `tar`, `oci`, `docker`, `cacheonly`, `registry`) and its attributes. A `dest` is a
/// path on the client's machine (`-` for standard output); the builder parses the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Export {
    /// The exporter's type.
    pub kind: String,
    /// Its attributes, keys as BuildKit names them.
    pub attrs: BTreeMap<String, String>,
}

/// A remote cache to import from or export to (`--cache-from`/`--cache-to`; BuildKit's
/// `CacheOptionsEntry`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheOptionsEntry {
    /// The backend (`registry`, `local`, `inline`, …).
    pub kind: String,
    /// Its attributes, keys as BuildKit names them.
    pub attrs: BTreeMap<String, String>,
}

impl CacheOptionsEntry {
    /// The entry as buildx sends it, filled in from the client's environment (`env`
    /// looks a variable up): a `gha` cache takes `token`, `url` and `url_v2` from a
    /// workflow's `ACTIONS_*` variables, an `s3` cache its credentials from the `AWS_*`
    /// ones, options given winning. `None` for a gha cache that still has no token or
    /// URL: buildx drops it silently, so one Bake file works in and out of workflows.
    pub fn with_client_environment(mut self, env: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let attrs = &mut self.attrs;
        match self.kind.as_str() {
            "gha" => {
                let truthy = |v: String| kiln_oci::go::parse_bool(&v) == Some(true);
                let v2 = match attrs.get("version") {
                    Some(version) => version == "2",
                    None => env("ACTIONS_CACHE_SERVICE_V2").is_some_and(truthy),
                };
                if !attrs.contains_key("token") {
                    if let Some(token) = env("ACTIONS_RUNTIME_TOKEN") {
                        attrs.insert("token".to_owned(), token);
                    }
                }
                if v2 && !attrs.contains_key("url_v2") {
                    if let Some(url) = env("ACTIONS_RESULTS_URL") {
                        attrs.insert("url_v2".to_owned(), url);
                    }
                }
                if !attrs.contains_key("url") {
                    if let Some(url) =
                        env("ACTIONS_CACHE_URL").or_else(|| env("ACTIONS_RESULTS_URL"))
                    {
                        attrs.insert("url".to_owned(), url);
                    }
                }
                let set = |key: &str| attrs.get(key).is_some_and(|v| !v.is_empty());
                if !(set("token") && (set("url") || set("url_v2"))) {
                    return None;
                }
            }
            // Given keys win, and a session token goes only with credentials of the
            // environment.
            "s3" if !(attrs.contains_key("access_key_id")
                && attrs.contains_key("secret_access_key")) =>
            {
                for (key, var) in [
                    ("access_key_id", "AWS_ACCESS_KEY_ID"),
                    ("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
                    ("session_token", "AWS_SESSION_TOKEN"),
                ] {
                    if let Some(value) = env(var).filter(|v| !v.is_empty()) {
                        attrs.entry(key.to_owned()).or_insert(value);
                    }
                }
            }
            _ => {}
        }
        Some(self)
    }
}

/// A Dockerfile build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile.
    pub dockerfile: PathBuf,
    /// `--build-arg`s.
    pub build_args: BTreeMap<String, String>,
    /// Named contexts (`--build-context`).
    pub named_contexts: BTreeMap<String, BuildContext>,
    /// `--target`.
    pub target: Option<String>,
    /// `-t` names (the exporters carry the names they use).
    pub tags: Vec<String>,
    /// Where results go.
    pub outputs: Vec<Export>,
    /// Ignore the cache.
    pub no_cache: bool,
    /// Secrets by id (`--secret`).
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// ssh-agent sockets by id (`--ssh`).
    pub ssh: BTreeMap<String, PathBuf>,
    /// Entitlements the client grants (`--allow`).
    pub entitlements: Vec<String>,
    /// Labels added to the image (`--label`).
    pub labels: BTreeMap<String, String>,
    /// Stages that ignore the cache (`--no-cache-filter`).
    pub no_cache_filter: Vec<String>,
    /// `--pull`: ask the registry for every image, never use an earlier resolution.
    pub pull: bool,
    /// How RUN steps are set up (`--network`, `--add-host`, `--ulimit`, `--shm-size`).
    pub run: RunDefaults,
    /// Remote caches to import results from (`--cache-from`).
    pub cache_imports: Vec<CacheOptionsEntry>,
    /// Remote caches to export results to (`--cache-to`).
    pub cache_exports: Vec<CacheOptionsEntry>,
    /// `--platform`: the platforms to build for (none: the builder's own). More than one
    /// makes a multi-platform image.
    pub platforms: Vec<kiln_oci::Platform>,
    /// A context named by URL (git, http(s)) for a remote builder to fetch, as buildx
    /// hands it on: `context` is then unused, and a relative `dockerfile` is a path
    /// inside the fetched context (an absolute one is a file of the client's).
    pub context_url: Option<String>,
}

impl BuildRequest {
    /// The directory holding the Dockerfile: the `dockerfile` local source.
    pub fn dockerfile_dir(&self) -> PathBuf {
        self.dockerfile
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default()
    }
    /// The Dockerfile frontend's attributes for this build, as a client sends them
    /// (what a history record keeps); none when a named context cannot be described.
    pub fn frontend_attrs(&self) -> BTreeMap<String, String> {
        crate::remote::frontend_attrs(self)
            .unwrap_or_default()
            .into_iter()
            .collect()
    }
}

/// Settings every RUN step gets unless it chooses otherwise.
#[derive(Debug, Clone, Default)]
pub struct RunDefaults {
    /// `--network`: `none` or `host` (`default` leaves each RUN's own).
    pub network: Option<String>,
    /// `--add-host name:address`.
    pub extra_hosts: Vec<(String, String)>,
    /// `--ulimit name=soft[:hard]`: (name, soft, hard).
    pub ulimits: Vec<(String, i64, i64)>,
    /// `--shm-size`, in bytes.
    pub shm_size: i64,
    /// `--cgroup-parent`.
    pub cgroup_parent: Option<String>,
}

/// An LLB definition to build (`kiln debug build-llb`, `buildctl build`).
#[derive(Debug, Clone, Default)]
pub struct DefinitionRequest {
    /// The binary `pb.Definition`.
    pub definition: Vec<u8>,
    /// Local sources by name (`local://NAME`), as `buildctl build --local NAME=DIR`.
    pub locals: BTreeMap<String, PathBuf>,
    /// Where the result goes.
    pub outputs: Vec<Export>,
    /// Ignore the cache.
    pub no_cache: bool,
    /// Granted entitlements.
    pub entitlements: Vec<String>,
    /// Remote caches to import results from.
    pub cache_imports: Vec<CacheOptionsEntry>,
    /// Remote caches to export results to.
    pub cache_exports: Vec<CacheOptionsEntry>,
}

/// What a build produced.
#[derive(Debug, Clone, Default)]
pub struct BuildResult {
    /// The image manifest's digest, when an image was exported.
    pub manifest_digest: Option<String>,
    /// The image config's digest, when an image was exported.
    pub config_digest: Option<String>,
    /// The image manifest's descriptor, when an image was exported.
    pub manifest: Option<kiln_oci::Descriptor>,
    /// The names the image was given (the first image exporter's).
    pub image_names: Vec<String>,
    /// `name@digest` of each push.
    pub pushed: Vec<String>,
    /// The build checks that fired.
    pub checks: Vec<CheckWarning>,
    /// What the exporters adjusted (e.g. OCI media types turned on for zstd).
    pub warnings: Vec<String>,
    /// The cache manifest a `--cache-to` wrote last (BuildKit's `cache.manifest`): a
    /// remote builder's client names it in its local cache directory's index.json.
    pub cache_manifest: Option<kiln_oci::Descriptor>,
}

impl BuildResult {
    /// What BuildKit's exporters answer for this result: the image's digests,
    /// descriptor and names, and the cache manifest.
    pub fn exporter_response(&self) -> BTreeMap<String, String> {
        use base64::Engine as _;
        let mut response = BTreeMap::new();
        if let Some(digest) = &self.manifest_digest {
            response.insert("containerimage.digest".to_owned(), digest.clone());
        }
        if let Some(digest) = &self.config_digest {
            response.insert("containerimage.config.digest".to_owned(), digest.clone());
        }
        if let Some(json) = self
            .manifest
            .as_ref()
            .and_then(|d| serde_json::to_vec(d).ok())
        {
            response.insert(
                "containerimage.descriptor".to_owned(),
                base64::engine::general_purpose::STANDARD.encode(json),
            );
        }
        if !self.image_names.is_empty() {
            response.insert("image.name".to_owned(), self.image_names.join(","));
        }
        if let Some(json) = self
            .cache_manifest
            .as_ref()
            .and_then(|m| serde_json::to_string(m).ok())
        {
            response.insert("cache.manifest".to_owned(), json);
        }
        response
    }
}

/// A build check that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckWarning {
    /// The rule, e.g. `FromAsCasing`.
    pub rule: String,
    /// What is wrong.
    pub message: String,
    /// The rule's documentation.
    pub url: String,
    /// The first line it concerns (1-based; 0 when it has no place).
    pub line: usize,
    /// The Dockerfile lines, marked (BuildKit's excerpt).
    pub excerpt: String,
    /// BuildKit's description of the rule.
    pub description: String,
    /// Where in the Dockerfile.
    pub location: SourceRange,
}

impl CheckWarning {
    /// BuildKit's one-line form (`linter.LintFormatShort`): `Rule: message (line N)`.
    pub fn short(&self) -> String {
        match self.line {
            0 => format!("{}: {}", self.rule, self.message),
            line => format!("{}: {} (line {line})", self.rule, self.message),
        }
    }
}

/// A place in a source file (BuildKit's `pb.Position`): line 1-based, character
/// 0-based. In JSON as Go writes the protobuf type: zero fields left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// The line.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub line: usize,
    /// The character in the line.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub character: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A span of a source file (BuildKit's `pb.Range`; the end line inclusive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SourceRange {
    /// Where it starts.
    pub start: Position,
    /// Where it ends.
    pub end: Position,
}

impl SourceRange {
    /// Whole lines `start..=end`.
    pub fn lines(start: usize, end: usize) -> Self {
        let position = |line| Position { line, character: 0 };
        Self {
            start: position(start),
            end: position(end),
        }
    }
}

/// Progress of a build, in BuildKit's model: vertices start, end (done, failed or
/// found in the cache) and log their processes' output.
#[derive(Debug, Clone)]
pub enum Event {
    /// A vertex started.
    Started {
        /// Its digest.
        digest: String,
        /// Its name.
        name: String,
    },
    /// A vertex's result came from the cache.
    Cached {
        /// Its digest.
        digest: String,
        /// Its name.
        name: String,
    },
    /// A vertex finished.
    Done {
        /// Its digest.
        digest: String,
        /// How long it took.
        duration: Duration,
    },
    /// A vertex failed.
    Failed {
        /// Its digest.
        digest: String,
        /// Why.
        error: String,
        /// How long it ran.
        duration: Duration,
    },
    /// Output of a running process.
    Log {
        /// The vertex's digest.
        digest: String,
        /// The bytes.
        data: Vec<u8>,
    },
}

/// One build-cache record, as `du` lists it (BuildKit's `UsageRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRecord {
    /// Its id (a layer's number, a cache mount's key, or `content`).
    pub id: String,
    /// `regular`, `source.local`, `exec.cachemount` or `internal`.
    pub kind: String,
    /// What made it (the step's name).
    pub description: String,
    /// Bytes on disk (blocks), its blobs included.
    pub size: u64,
    /// When it was made (Unix seconds).
    pub created: i64,
    /// When a build last used it (Unix seconds).
    pub last_used: i64,
    /// How many builds used it.
    pub usage_count: u64,
    /// The layers under it, nearest last.
    pub parents: Vec<String>,
}

/// Which records `prune` removes (BuildKit's `PruneRequest`).
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Also internal records (`--all`).
    pub all: bool,
    /// Keep this many bytes, removing the least recently used first (0: remove all).
    pub keep_storage: u64,
    /// Filters as buildx passes them (`type==X`, `until=24h` …), all of which a record
    /// must match; the builder parses them.
    pub filters: Vec<String>,
}

#[cfg(test)]
mod cache_entry_tests {
    use super::*;

    fn entry(kind: &str, pairs: &[(&str, &str)]) -> CacheOptionsEntry {
        CacheOptionsEntry {
            kind: kind.to_owned(),
            attrs: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn a_workflow_fills_in_a_gha_cache_as_buildx_does() {
        let workflow = env(&[
            ("ACTIONS_RUNTIME_TOKEN", "tok"),
            ("ACTIONS_CACHE_URL", "http://v1/"),
            ("ACTIONS_RESULTS_URL", "http://v2/"),
            ("ACTIONS_CACHE_SERVICE_V2", "true"),
        ]);
        assert_eq!(
            entry("gha", &[("scope", "app")]).with_client_environment(&workflow),
            Some(entry(
                "gha",
                &[
                    ("scope", "app"),
                    ("token", "tok"),
                    ("url", "http://v1/"),
                    ("url_v2", "http://v2/")
                ]
            ))
        );
        // Outside a workflow the cache is dropped; other types are kept as they are.
        assert_eq!(entry("gha", &[]).with_client_environment(env(&[])), None);
        assert_eq!(
            entry("local", &[("dest", "d")]).with_client_environment(env(&[])),
            Some(entry("local", &[("dest", "d")]))
        );
        // Given options win; v1 unless asked for v2.
        assert_eq!(
            entry("gha", &[("token", "mine")]).with_client_environment(env(&[
                ("ACTIONS_RUNTIME_TOKEN", "tok"),
                ("ACTIONS_RESULTS_URL", "http://v2/")
            ])),
            Some(entry("gha", &[("token", "mine"), ("url", "http://v2/")]))
        );
    }

    #[test]
    fn s3_credentials_come_from_the_aws_environment_unless_given() {
        let aws = env(&[
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "session"),
        ]);
        assert_eq!(
            entry("s3", &[("bucket", "b")]).with_client_environment(&aws),
            Some(entry(
                "s3",
                &[
                    ("bucket", "b"),
                    ("access_key_id", "id"),
                    ("secret_access_key", "secret"),
                    ("session_token", "session")
                ]
            ))
        );
        let given = entry("s3", &[("access_key_id", "a"), ("secret_access_key", "s")]);
        assert_eq!(given.clone().with_client_environment(&aws), Some(given));
    }
}
