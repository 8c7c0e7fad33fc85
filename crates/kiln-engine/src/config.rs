//! The engine's configuration file, in buildkitd.toml's format so an existing file
//! works: `root`, `debug`, `insecure-entitlements`, `[dns]`, `[worker.oci]`
//! (`binary`, `snapshotter`, `max-parallelism`, `platforms`, `networkMode`,
//! `defaultCgroupParent`, `gc`, `gckeepstorage`/`reservedSpace`/`maxUsedSpace`/
//! `minFreeSpace`, `[[worker.oci.gcpolicy]]`) and `[registry."host"]` (`mirrors`,
//! `http`, `insecure`, `ca`, `[[keypair]]`). Keys for parts kiln has not built
//! (`[grpc]`, `[worker.containerd]`, `[history]`, ...) are accepted and reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fs_err as fs;
use kiln_worker::{PruneFilter, PruneOptions};
use serde::Deserialize;

use crate::Error;
use kiln_llb::Platform;

/// One garbage-collection rule: among the records its filters select, those unused
/// for `keep_duration` go, then the least recently used until `keep_bytes` remain.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcPolicy {
    /// Every record, internal ones included.
    pub all: bool,
    /// Bytes always kept (`reservedSpace`, formerly `keepBytes`); without the two
    /// limits below, the cache is pruned down to this (0: no limit by size).
    pub keep_bytes: u64,
    /// `maxUsedSpace`: the cache is pruned down to this (never below `keep_bytes`).
    pub max_used: Option<u64>,
    /// `minFreeSpace`: the cache is pruned until the disk has this much free (never
    /// below `keep_bytes`).
    pub min_free: Option<u64>,
    /// Records unused for longer than this go.
    pub keep_duration: Option<Duration>,
    /// `type==…` and other prune filters.
    pub filters: Vec<String>,
}

impl GcPolicy {
    /// The size the cache may keep, given its size now (`used`) and the disk's free
    /// bytes, as BuildKit's v0.17 policies compute it; 0 means no limit by size.
    pub(crate) fn budget(&self, used: u64, free: u64) -> u64 {
        if self.max_used.is_none() && self.min_free.is_none() {
            return self.keep_bytes;
        }
        let mut limit = self.max_used.unwrap_or(u64::MAX);
        if let Some(min_free) = self.min_free {
            limit = limit.min((used + free).saturating_sub(min_free));
        }
        limit.max(self.keep_bytes).max(1)
    }

    /// The prune runs this policy makes: records past their duration, then by size
    /// (with the cache's size now and the disk's free bytes).
    pub(crate) fn prunes(&self, used: u64, free: u64) -> Result<Vec<PruneOptions>, Error> {
        let filters = self
            .filters
            .iter()
            .map(|f| PruneFilter::parse(f))
            .collect::<Result<Vec<_>, _>>()?;
        let mut runs = Vec::new();
        if let Some(age) = self.keep_duration {
            let mut aged = filters.clone();
            aged.push(PruneFilter::Until(age));
            runs.push(PruneOptions {
                all: self.all,
                keep_storage: 0,
                filters: aged,
            });
        }
        let budget = self.budget(used, free);
        if budget > 0 {
            runs.push(PruneOptions {
                all: self.all,
                keep_storage: budget,
                filters,
            });
        }
        Ok(runs)
    }
}

/// A size as buildkitd.toml writes it: a number (bytes, or MB for `gckeepstorage`) or
/// a string with a unit (`512MB`, `10GB`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Number(u64),
    Text(String),
}

impl Size {
    fn bytes(&self, number_unit: u64) -> Result<u64, Error> {
        match self {
            Self::Number(n) => Ok(n * number_unit),
            Self::Text(text) => parse_size(text)
                .ok_or_else(|| Error::Usage(format!("invalid size {text:?} in the configuration"))),
        }
    }
}

/// `512MB`, `10GB`, `1.5GiB`, `100` (bytes).
pub fn parse_size(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = lower[digits.len()..].trim();
    let number: f64 = digits.trim().parse().ok()?;
    let scale = match unit {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((number * scale) as u64)
}

/// `48h`, `30m`, `3600s`, or a number of seconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Age {
    Seconds(u64),
    Text(String),
}

impl Age {
    fn duration(&self) -> Result<Duration, Error> {
        match self {
            Self::Seconds(s) => Ok(Duration::from_secs(*s)),
            Self::Text(text) => match PruneFilter::parse(&format!("until={text}"))? {
                PruneFilter::Until(age) => Ok(age),
                _ => Err(Error::Usage(format!("invalid duration {text:?}"))),
            },
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyFile {
    #[serde(default)]
    all: bool,
    /// The pre-v0.17 name of `reservedSpace`.
    keep_bytes: Option<Size>,
    reserved_space: Option<Size>,
    max_used_space: Option<Size>,
    min_free_space: Option<Size>,
    keep_duration: Option<Age>,
    #[serde(default)]
    filters: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct DnsFile {
    #[serde(default)]
    nameservers: Vec<String>,
    #[serde(default)]
    options: Vec<String>,
    #[serde(default, rename = "searchDomains")]
    search_domains: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct KeyPairFile {
    key: PathBuf,
    cert: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
struct RegistryFile {
    #[serde(default)]
    mirrors: Vec<String>,
    #[serde(default)]
    http: bool,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    ca: Vec<PathBuf>,
    #[serde(default)]
    keypair: Vec<KeyPairFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryFile {
    max_age: Option<Age>,
    max_entries: Option<u64>,
}

/// `[worker.oci]`, with buildkitd.toml's mix of key styles.
#[derive(Debug, Default, Deserialize)]
struct OciWorkerFile {
    enabled: Option<bool>,
    #[serde(rename = "max-parallelism")]
    max_parallelism: Option<usize>,
    #[serde(rename = "networkMode")]
    network_mode: Option<String>,
    gc: Option<bool>,
    gckeepstorage: Option<Size>,
    #[serde(rename = "reservedSpace")]
    reserved_space: Option<Size>,
    #[serde(rename = "maxUsedSpace")]
    max_used_space: Option<Size>,
    #[serde(rename = "minFreeSpace")]
    min_free_space: Option<Size>,
    #[serde(default)]
    gcpolicy: Vec<PolicyFile>,
    snapshotter: Option<String>,
    binary: Option<PathBuf>,
    #[serde(default)]
    platforms: Vec<String>,
    rootless: Option<bool>,
    #[serde(rename = "noProcessSandbox")]
    no_process_sandbox: Option<bool>,
    #[serde(rename = "defaultCgroupParent")]
    default_cgroup_parent: Option<String>,
    /// Accepted; kiln has no AppArmor, SELinux or CNI support (yet).
    #[serde(rename = "apparmor-profile")]
    apparmor_profile: Option<String>,
    selinux: Option<bool>,
    #[serde(rename = "cniBinaryDir")]
    cni_binary_dir: Option<String>,
    #[serde(rename = "cniConfigPath")]
    cni_config_path: Option<String>,
    #[serde(rename = "cniPoolSize")]
    cni_pool_size: Option<u64>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct WorkersFile {
    #[serde(default)]
    oci: OciWorkerFile,
    /// The containerd worker: not part of kiln (yet); accepted and reported.
    containerd: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct GrpcTlsFile {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrpcFile {
    #[serde(default)]
    address: Vec<String>,
    debug_address: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    tls: Option<GrpcTlsFile>,
}

/// `[grpc]`: where `kilnd` listens and with which certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcSettings {
    /// `address`: `unix:///path` or `tcp://host:port`, each listened on.
    pub addresses: Vec<String>,
    /// `uid`: the owner of unix sockets.
    pub uid: Option<u32>,
    /// `gid`: the group of unix sockets.
    pub gid: Option<u32>,
    /// `[grpc.tls] cert`: the server's certificate (TCP).
    pub tls_cert: Option<PathBuf>,
    /// `[grpc.tls] key`: its key.
    pub tls_key: Option<PathBuf>,
    /// `[grpc.tls] ca`: the CA client certificates must be signed by (mutual TLS).
    pub tls_ca: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ConfigFile {
    root: Option<PathBuf>,
    debug: Option<bool>,
    trace: Option<bool>,
    insecure_entitlements: Option<Vec<String>>,
    #[serde(default)]
    worker: WorkersFile,
    #[serde(default)]
    registry: BTreeMap<String, RegistryFile>,
    history: Option<HistoryFile>,
    dns: Option<DnsFile>,
    grpc: Option<GrpcFile>,
    // Sections for parts kiln has not built yet (tracing, devices, frontends,
    // logging): accepted and reported as not yet used.
    otel: Option<toml::Value>,
    cdi: Option<toml::Value>,
    frontend: Option<toml::Value>,
    log: Option<toml::Value>,
    system: Option<toml::Value>,
}

/// `[dns]`: what RUN steps get in /etc/resolv.conf instead of the host's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    /// `nameserver` lines.
    pub nameservers: Vec<String>,
    /// `options` entries.
    pub options: Vec<String>,
    /// `search` domains.
    pub search_domains: Vec<String>,
}

impl Dns {
    /// The resolv.conf these settings make.
    pub fn resolv_conf(&self) -> String {
        let mut text = String::new();
        for server in &self.nameservers {
            text.push_str(&format!("nameserver {server}\n"));
        }
        if !self.search_domains.is_empty() {
            text.push_str(&format!("search {}\n", self.search_domains.join(" ")));
        }
        if !self.options.is_empty() {
            text.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        text
    }
}

/// What the configuration file sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileSettings {
    /// The state directory.
    pub root: Option<PathBuf>,
    /// `debug`: more detail in errors and logs.
    pub debug: bool,
    /// Steps run at once.
    pub parallelism: Option<usize>,
    /// Garbage collection after builds; `None` when `gc = false`.
    pub gc: Option<Vec<GcPolicy>>,
    /// `insecure-entitlements`: what builds may be granted.
    pub insecure_entitlements: Option<Vec<String>>,
    /// `networkMode`: `none` isolates steps that choose no network; `host`/`auto` do not.
    pub isolated_network: Option<bool>,
    /// `binary`: the OCI runtime.
    pub runtime: Option<PathBuf>,
    /// `snapshotter`: `overlayfs`, `native` or `auto`.
    pub snapshotter: Option<String>,
    /// `defaultCgroupParent`: where RUN steps' cgroups go.
    pub cgroup_parent: Option<String>,
    /// `[registry."host"]` sections.
    pub registries: BTreeMap<String, kiln_registry::HostOptions>,
    /// `[dns]`.
    pub dns: Option<Dns>,
    /// `[grpc]` (used by `kilnd`).
    pub grpc: GrpcSettings,
    /// `worker.oci.platforms`: the worker's platforms instead of those detected.
    pub platforms: Vec<Platform>,
    /// Unknown keys, and keys for parts kiln does not have yet: one line each, for the
    /// user to see.
    pub notices: Vec<String>,
}

/// BuildKit's default policies for a storage budget: old cache mounts and local
/// sources first, then anything unused for 60 days, then the least recently used.
pub fn default_policies(keep: u64) -> Vec<GcPolicy> {
    let day = 24 * 3600;
    vec![
        GcPolicy {
            keep_bytes: 512_000_000,
            keep_duration: Some(Duration::from_secs(2 * day)),
            filters: [
                "type==source.local",
                "type==exec.cachemount",
                "type==source.git.checkout",
            ]
            .map(str::to_owned)
            .to_vec(),
            ..GcPolicy::default()
        },
        GcPolicy {
            keep_duration: Some(Duration::from_secs(60 * day)),
            ..GcPolicy::default()
        },
        GcPolicy {
            all: true,
            keep_bytes: keep,
            ..GcPolicy::default()
        },
    ]
}

/// Reads `path` (buildkitd.toml's format). Unknown keys and keys for parts kiln has
/// not built become notices; a value of the wrong kind is an error naming its key.
pub fn read(path: &Path) -> Result<FileSettings, Error> {
    let text = fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("reading the configuration {}: {e}", path.display())))?;
    let at =
        |key: &str, message: String| Error::Usage(format!("{}: {key}: {message}", path.display()));
    let mut notices = Vec::new();
    let deserializer = toml::Deserializer::parse(&text)
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    let file: ConfigFile = serde_ignored::deserialize(deserializer, |key| {
        notices.push(format!("unknown key {key} (ignored)"));
    })
    .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    let mut not_yet = |key: &str, set: bool| {
        if set {
            notices.push(format!("{key} is not used by kiln yet (ignored)"));
        }
    };
    let oci = &file.worker.oci;
    not_yet("trace", file.trace.is_some());
    let grpc = file.grpc.as_ref().map_or_else(GrpcSettings::default, |g| {
        let tls = g.tls.as_ref();
        GrpcSettings {
            addresses: g.address.clone(),
            uid: g.uid,
            gid: g.gid,
            tls_cert: tls.and_then(|t| t.cert.clone()),
            tls_key: tls.and_then(|t| t.key.clone()),
            tls_ca: tls.and_then(|t| t.ca.clone()),
        }
    });
    not_yet(
        "grpc.debugAddress",
        file.grpc
            .as_ref()
            .is_some_and(|g| g.debug_address.is_some()),
    );
    not_yet("[otel]", file.otel.is_some());
    not_yet("[cdi]", file.cdi.is_some());
    not_yet("[frontend]", file.frontend.is_some());
    not_yet("[log]", file.log.is_some());
    not_yet("[system]", file.system.is_some());
    not_yet("[history]", file.history.is_some());
    not_yet("[worker.containerd]", file.worker.containerd.is_some());
    not_yet("worker.oci.rootless", oci.rootless == Some(true));
    not_yet(
        "worker.oci.noProcessSandbox",
        oci.no_process_sandbox == Some(true),
    );
    not_yet(
        "worker.oci.apparmor-profile",
        oci.apparmor_profile.is_some(),
    );
    not_yet("worker.oci.selinux", oci.selinux == Some(true));
    not_yet(
        "worker.oci CNI settings",
        oci.cni_binary_dir.is_some()
            || oci.cni_config_path.is_some()
            || oci.cni_pool_size.is_some(),
    );
    not_yet("worker.oci.labels", !oci.labels.is_empty());
    if let Some(history) = &file.history {
        if let Some(age) = &history.max_age {
            age.duration()
                .map_err(|e| at("history.maxAge", e.to_string()))?;
        }
        let _ = history.max_entries;
    }
    if oci.enabled == Some(false) {
        return Err(at(
            "worker.oci.enabled",
            "kiln has only the OCI worker; it cannot be disabled".to_owned(),
        ));
    }
    let platforms = oci
        .platforms
        .iter()
        .map(|platform| {
            platform
                .parse::<Platform>()
                .map_err(|e| at("worker.oci.platforms", format!("{platform:?}: {e}")))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let snapshotter = match oci.snapshotter.as_deref() {
        None => None,
        Some(name @ ("overlayfs" | "native" | "auto")) => Some(name.to_owned()),
        Some(other) => {
            return Err(at(
                "worker.oci.snapshotter",
                format!("{other:?}: use overlayfs, native or auto"),
            ));
        }
    };
    let size = |key: &str, size: &Option<Size>, number_unit: u64| {
        size.as_ref()
            .map(|s| s.bytes(number_unit))
            .transpose()
            .map_err(|e| at(key, e.to_string()))
    };
    let gc = if oci.gc == Some(false) {
        None
    } else if oci.gcpolicy.is_empty() {
        // 10 GB unless said otherwise (`gckeepstorage` in MB when a number).
        let reserved = match size("worker.oci.reservedSpace", &oci.reserved_space, 1)? {
            Some(bytes) => bytes,
            None => size("worker.oci.gckeepstorage", &oci.gckeepstorage, 1_000_000)?
                .unwrap_or(10_000_000_000),
        };
        let mut policies = default_policies(reserved);
        if let Some(last) = policies.last_mut() {
            last.max_used = size("worker.oci.maxUsedSpace", &oci.max_used_space, 1)?;
            last.min_free = size("worker.oci.minFreeSpace", &oci.min_free_space, 1)?;
        }
        Some(policies)
    } else {
        let mut policies = Vec::new();
        for (i, policy) in oci.gcpolicy.iter().enumerate() {
            let key = |name: &str| format!("worker.oci.gcpolicy[{i}].{name}");
            let keep_bytes = match size(&key("reservedSpace"), &policy.reserved_space, 1)? {
                Some(bytes) => bytes,
                None => size(&key("keepBytes"), &policy.keep_bytes, 1)?.unwrap_or(0),
            };
            for filter in &policy.filters {
                PruneFilter::parse(filter).map_err(|e| at(&key("filters"), e.to_string()))?;
            }
            policies.push(GcPolicy {
                all: policy.all,
                keep_bytes,
                max_used: size(&key("maxUsedSpace"), &policy.max_used_space, 1)?,
                min_free: size(&key("minFreeSpace"), &policy.min_free_space, 1)?,
                keep_duration: policy
                    .keep_duration
                    .as_ref()
                    .map(Age::duration)
                    .transpose()
                    .map_err(|e| at(&key("keepDuration"), e.to_string()))?,
                filters: policy.filters.clone(),
            });
        }
        Some(policies)
    };
    let isolated_network = match oci.network_mode.as_deref() {
        None => None,
        Some("none") => Some(true),
        Some("host" | "auto") => Some(false),
        Some("cni") => {
            return Err(at(
                "worker.oci.networkMode",
                "cni is not supported: use host, auto or none".to_owned(),
            ));
        }
        Some(other) => {
            return Err(at(
                "worker.oci.networkMode",
                format!("{other:?}: use host, auto or none"),
            ));
        }
    };
    if let Some(entitlements) = &file.insecure_entitlements {
        for entitlement in entitlements {
            if !matches!(entitlement.as_str(), "network.host" | "security.insecure") {
                return Err(at(
                    "insecure-entitlements",
                    format!("{entitlement:?}: use network.host or security.insecure"),
                ));
            }
        }
    }
    let mut registries = BTreeMap::new();
    for (host, registry) in &file.registry {
        let key = format!("registry.{host:?}");
        let read = |file: &PathBuf| {
            fs::read(file).map_err(|e| at(&key, format!("{}: {e}", file.display())))
        };
        for mirror in &registry.mirrors {
            if mirror.contains("://") || mirror.is_empty() {
                return Err(at(
                    &format!("{key}.mirrors"),
                    format!(
                        "{mirror:?}: give a host[:port], without a scheme (set http = true in that host's section for plain HTTP)"
                    ),
                ));
            }
        }
        // Certificates are read here, so that a missing one is named with its key.
        let ca_pem = registry.ca.iter().map(read).collect::<Result<_, _>>()?;
        let mut client_pems = Vec::new();
        for pair in &registry.keypair {
            client_pems.push((read(&pair.cert)?, read(&pair.key)?));
        }
        registries.insert(
            host.clone(),
            kiln_registry::HostOptions {
                mirrors: registry.mirrors.clone(),
                plain_http: registry.http,
                skip_verify: registry.insecure,
                ca_pem,
                // The first key pair is the client certificate offered.
                client_pem: client_pems.into_iter().next(),
            },
        );
    }
    Ok(FileSettings {
        platforms,
        root: file.root,
        debug: file.debug.unwrap_or(false),
        parallelism: oci.max_parallelism,
        gc,
        insecure_entitlements: file.insecure_entitlements,
        isolated_network,
        runtime: oci.binary.clone(),
        snapshotter,
        cgroup_parent: oci.default_cgroup_parent.clone().filter(|p| !p.is_empty()),
        registries,
        dns: file.dns.map(|d| Dns {
            nameservers: d.nameservers,
            options: d.options,
            search_domains: d.search_domains,
        }),
        grpc,
        notices,
    })
}

/// The configuration file to read, if any: `path` (`--config`), else `$KILN_CONFIG`,
/// else `/etc/kiln/kilnd.toml` for root or `~/.config/kiln/kilnd.toml` (or
/// `$XDG_CONFIG_HOME/kiln/kilnd.toml`) for others, when it exists; the places
/// buildkitd looks, with kiln's name.
pub fn default_path(root_user: bool) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KILN_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let file = if root_user {
        PathBuf::from("/etc/kiln/kilnd.toml")
    } else {
        std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?
            .join("kiln/kilnd.toml")
    };
    file.is_file().then_some(file)
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// State directory (`/var/lib/kiln` for root).
    pub root: PathBuf,
    /// The OCI runtime binary.
    pub runtime: PathBuf,
    /// How many steps run at once.
    pub parallelism: usize,
    /// Garbage collection after each build (`None`: off).
    pub gc: Option<Vec<GcPolicy>>,
    /// Entitlements builds may be granted (`insecure-entitlements`).
    pub insecure_entitlements: Vec<String>,
    /// Whether steps that choose no network get their own namespace (`networkMode =
    /// "none"`) rather than the host's.
    pub isolated_network: bool,
    /// `defaultCgroupParent`: the cgroup RUN steps are placed under.
    pub cgroup_parent: Option<String>,
    /// `[dns]`: RUN steps' resolv.conf instead of the host's.
    pub dns: Option<Dns>,
    /// `snapshotter`: `overlayfs`, `native` or `auto` (overlay when it can be mounted).
    pub snapshotter: String,
    /// `[registry."host"]`: mirrors, plain HTTP, TLS settings.
    pub registries: BTreeMap<String, kiln_registry::HostOptions>,
    /// `[grpc]`: where `kilnd` listens.
    pub grpc: GrpcSettings,
    /// `debug`: more detail in logs.
    pub debug: bool,
    /// `worker.oci.platforms`: the platforms the worker shows instead of those detected
    /// (the native one and those an emulator runs).
    pub platforms: Vec<Platform>,
    /// What the configuration file had that kiln does not use: for the user to see.
    pub notices: Vec<String>,
}

impl EngineConfig {
    /// The default state directory: `/var/lib/kiln` as root, else `$XDG_DATA_HOME/kiln`
    /// (or `~/.local/share/kiln`); `KILN_ROOT` overrides both.
    pub fn default_root() -> PathBuf {
        if let Some(root) = std::env::var_os("KILN_ROOT") {
            return PathBuf::from(root);
        }
        if running_as_root() {
            return PathBuf::from("/var/lib/kiln");
        }
        std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("kiln")
    }
}

/// Whether kiln runs as root (its real user id), which chooses the default paths.
fn running_as_root() -> bool {
    rustix::process::getuid().is_root()
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            root: Self::default_root(),
            runtime: PathBuf::from("runc"),
            parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()),
            gc: None,
            // The embedded engine runs as its user: what that user asks for with --allow.
            insecure_entitlements: vec!["network.host".to_owned(), "security.insecure".to_owned()],
            isolated_network: false,
            cgroup_parent: None,
            dns: None,
            registries: BTreeMap::new(),
            grpc: GrpcSettings::default(),
            debug: false,
            snapshotter: "auto".to_owned(),
            platforms: Vec::new(),
            notices: Vec::new(),
        }
    }
}

impl EngineConfig {
    /// The defaults, then the configuration file: `path` when given (`--config`), else
    /// `$KILN_CONFIG`, else `/etc/kiln/kilnd.toml` (root) or
    /// `~/.config/kiln/kilnd.toml`; `KILN_ROOT` still chooses the state directory.
    pub fn load(path: Option<&Path>) -> Result<Self, Error> {
        Self::load_over(Self::default(), path)
    }

    /// As [`EngineConfig::load`], for a daemon: it grants builds no insecure
    /// entitlement unless its configuration permits one (buildkitd's default).
    pub fn load_for_daemon(path: Option<&Path>) -> Result<Self, Error> {
        let defaults = Self {
            insecure_entitlements: Vec::new(),
            ..Self::default()
        };
        Self::load_over(defaults, path)
    }

    fn load_over(mut config: Self, path: Option<&Path>) -> Result<Self, Error> {
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| default_path(running_as_root()));
        if let Some(path) = path {
            let settings = read(&path)?;
            config.notices = settings
                .notices
                .iter()
                .map(|n| format!("{}: {n}", path.display()))
                .collect();
            if let Some(runtime) = settings.runtime {
                config.runtime = runtime;
            }
            if let Some(snapshotter) = settings.snapshotter {
                config.snapshotter = snapshotter;
            }
            config.cgroup_parent = settings.cgroup_parent;
            config.dns = settings.dns;
            config.registries = settings.registries;
            config.grpc = settings.grpc;
            config.debug = settings.debug;
            config.platforms = settings.platforms;
            if let (Some(root), None) = (settings.root, std::env::var_os("KILN_ROOT")) {
                config.root = root;
            }
            if let Some(parallelism) = settings.parallelism {
                config.parallelism = parallelism.max(1);
            }
            config.gc = settings.gc;
            if let Some(entitlements) = settings.insecure_entitlements {
                config.insecure_entitlements = entitlements;
            }
            if let Some(isolated) = settings.isolated_network {
                config.isolated_network = isolated;
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildkitd_toml_policies() {
        let dir = std::env::temp_dir().join(format!("kiln-config-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kiln.toml");
        fs::write(
            &path,
            r#"
root = "/var/lib/kiln-test"
[worker.oci]
  max-parallelism = 3
  [[worker.oci.gcpolicy]]
    keepBytes = "512MB"
    keepDuration = "48h"
    filters = ["type==source.local", "type==exec.cachemount"]
  [[worker.oci.gcpolicy]]
    all = true
    keepBytes = 1024000000
"#,
        )
        .unwrap();
        let settings = read(&path).unwrap();
        assert_eq!(settings.root, Some(PathBuf::from("/var/lib/kiln-test")));
        assert_eq!(settings.parallelism, Some(3));
        let gc = settings.gc.unwrap();
        assert_eq!(gc[0].keep_bytes, 512_000_000);
        assert_eq!(gc[0].keep_duration, Some(Duration::from_secs(48 * 3600)));
        assert_eq!(gc[0].prunes(0, 0).unwrap().len(), 2);
        assert!(gc[1].all && gc[1].keep_bytes == 1_024_000_000);

        fs::write(
            &path,
            "insecure-entitlements = [\"network.host\"]\n[worker.oci]\ngc = false\nnetworkMode = \"none\"\n",
        )
        .unwrap();
        let settings = read(&path).unwrap();
        assert_eq!(settings.gc, None);
        assert_eq!(settings.isolated_network, Some(true));
        assert_eq!(
            settings.insecure_entitlements,
            Some(vec!["network.host".to_owned()])
        );
        fs::write(&path, "[worker.oci]\ngckeepstorage = 9000\n").unwrap();
        assert_eq!(
            read(&path).unwrap().gc.unwrap()[2].keep_bytes,
            9_000_000_000
        );
        fs::write(
            &path,
            r#"
debug = true
bogus = 1
[grpc]
  address = ["tcp://127.0.0.1:1234"]
[history]
  maxAge = 172800
[dns]
  nameservers = ["127.0.0.53"]
  searchDomains = ["example.test"]
  options = ["edns0"]
[worker.oci]
  binary = "/usr/sbin/runc"
  snapshotter = "native"
  defaultCgroupParent = "builds"
  maxUsedSpace = "20GB"
  unknownThing = "x"
[registry."docker.io"]
  mirrors = ["127.0.0.1:5000"]
[registry."127.0.0.1:5000"]
  http = true
"#,
        )
        .unwrap();
        let settings = read(&path).unwrap();
        assert!(settings.debug);
        assert_eq!(settings.runtime, Some(PathBuf::from("/usr/sbin/runc")));
        assert_eq!(settings.snapshotter.as_deref(), Some("native"));
        assert_eq!(settings.cgroup_parent.as_deref(), Some("builds"));
        assert_eq!(
            settings.dns.unwrap().resolv_conf(),
            "nameserver 127.0.0.53\nsearch example.test\noptions edns0\n"
        );
        assert_eq!(settings.registries["docker.io"].mirrors, ["127.0.0.1:5000"]);
        assert_eq!(settings.grpc.addresses, ["tcp://127.0.0.1:1234"]);
        assert!(settings.registries["127.0.0.1:5000"].plain_http);
        let notices = settings.notices.join("\n");
        for expected in [
            "unknown key bogus",
            "unknown key worker.oci.unknownThing",
            "[history] is not used",
        ] {
            assert!(notices.contains(expected), "{expected} not in {notices}");
        }
        let gc = settings.gc.unwrap();
        let last = gc.last().unwrap();
        assert_eq!(last.max_used, Some(20_000_000_000));
        // maxUsedSpace bounds the cache, never below the reserved space ...
        assert_eq!(last.budget(0, u64::MAX / 4), 20_000_000_000);
        // ... and minFreeSpace tightens it on a nearly full disk.
        let tight = GcPolicy {
            keep_bytes: 1_000,
            min_free: Some(5_000),
            ..GcPolicy::default()
        };
        assert_eq!(tight.budget(8_000, 2_000), 5_000);
        assert_eq!(tight.budget(1_000, 100), 1_000);

        // Wrong values name their key.
        for (text, key) in [
            (
                "[worker.oci]\nsnapshotter = \"zfs\"\n",
                "worker.oci.snapshotter",
            ),
            (
                "[worker.oci]\nnetworkMode = \"bridge\"\n",
                "worker.oci.networkMode",
            ),
            (
                "[[worker.oci.gcpolicy]]\nkeepBytes = \"lots\"\n",
                "worker.oci.gcpolicy[0].keepBytes",
            ),
            (
                "[[worker.oci.gcpolicy]]\nfilters = [\"colour==red\"]\n",
                "worker.oci.gcpolicy[0].filters",
            ),
            (
                "insecure-entitlements = [\"root\"]\n",
                "insecure-entitlements",
            ),
            (
                "[registry.\"r.test\"]\nca = [\"/nonexistent.pem\"]\n",
                "registry",
            ),
            (
                "[registry.\"r.test\"]\nmirrors = [\"https://m.test\"]\n",
                "mirrors",
            ),
            (
                "[worker.oci]\nmax-parallelism = \"four\"\n",
                "max-parallelism",
            ),
        ] {
            fs::write(&path, text).unwrap();
            let error = read(&path).unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
        fs::write(&path, "[worker.oci\n").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("kiln.toml"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
