//! The engine's configuration file, in buildkitd.toml's shape so an existing file
//! works: `root`, and under `[worker.oci]` `max-parallelism`, `gc`, `gckeepstorage`
//! and `[[worker.oci.gcpolicy]]` (`all`, `keepBytes`, `keepDuration`, `filters`).
//! Read from `$KILN_CONFIG`, else `/etc/kiln/kiln.toml` when it exists.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fs_err as fs;
use kiln_worker::{PruneFilter, PruneOptions};
use serde::Deserialize;

use crate::Error;

/// One garbage-collection rule: among the records its filters select, those unused
/// for `keep_duration` go, then the least recently used until `keep_bytes` remain.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcPolicy {
    /// Every record, internal ones included.
    pub all: bool,
    /// Bytes to keep (0: no limit by size).
    pub keep_bytes: u64,
    /// Records unused for longer than this go.
    pub keep_duration: Option<Duration>,
    /// `type==…` and other prune filters.
    pub filters: Vec<String>,
}

impl GcPolicy {
    /// The prune runs this policy makes: records past their duration, then by size.
    pub(crate) fn prunes(&self) -> Result<Vec<PruneOptions>, Error> {
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
        if self.keep_bytes > 0 {
            runs.push(PruneOptions {
                all: self.all,
                keep_storage: self.keep_bytes,
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
fn parse_size(text: &str) -> Option<u64> {
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
    keep_bytes: Option<Size>,
    keep_duration: Option<Age>,
    #[serde(default)]
    filters: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct OciWorkerFile {
    max_parallelism: Option<usize>,
    #[serde(rename = "networkMode")]
    network_mode: Option<String>,
    gc: Option<bool>,
    gckeepstorage: Option<Size>,
    #[serde(default)]
    gcpolicy: Vec<PolicyFile>,
}

#[derive(Debug, Default, Deserialize)]
struct WorkersFile {
    #[serde(default)]
    oci: OciWorkerFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ConfigFile {
    root: Option<PathBuf>,
    insecure_entitlements: Option<Vec<String>>,
    #[serde(default)]
    worker: WorkersFile,
}

/// What the configuration file sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileSettings {
    /// The state directory.
    pub root: Option<PathBuf>,
    /// Steps run at once.
    pub parallelism: Option<usize>,
    /// Garbage collection after builds; `None` when `gc = false`.
    pub gc: Option<Vec<GcPolicy>>,
    /// `insecure-entitlements`: what builds may be granted.
    pub insecure_entitlements: Option<Vec<String>>,
    /// `networkMode`: `none` isolates steps that choose no network; `host`/`auto` do not.
    pub isolated_network: Option<bool>,
}

/// BuildKit's default policies for a storage budget: old cache mounts and local
/// sources first, then anything unused for 60 days, then the least recently used.
fn default_policies(keep: u64) -> Vec<GcPolicy> {
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

/// Reads `path` (buildkitd.toml's format).
pub fn read(path: &Path) -> Result<FileSettings, Error> {
    let text = fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("reading the configuration {}: {e}", path.display())))?;
    let file: ConfigFile =
        toml::from_str(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    let oci = &file.worker.oci;
    let gc = if oci.gc == Some(false) {
        None
    } else if oci.gcpolicy.is_empty() {
        // 10 GB unless said otherwise (`gckeepstorage` in MB when a number).
        let keep = match &oci.gckeepstorage {
            Some(size) => size.bytes(1_000_000)?,
            None => 10_000_000_000,
        };
        Some(default_policies(keep))
    } else {
        let mut policies = Vec::new();
        for policy in &oci.gcpolicy {
            policies.push(GcPolicy {
                all: policy.all,
                keep_bytes: match &policy.keep_bytes {
                    Some(size) => size.bytes(1)?,
                    None => 0,
                },
                keep_duration: policy
                    .keep_duration
                    .as_ref()
                    .map(Age::duration)
                    .transpose()?,
                filters: policy.filters.clone(),
            });
        }
        Some(policies)
    };
    let isolated_network = match oci.network_mode.as_deref() {
        None => None,
        Some("none") => Some(true),
        Some("host" | "auto") => Some(false),
        Some(other) => {
            return Err(Error::Usage(format!(
                "{}: networkMode {other:?}: use host, auto or none",
                path.display()
            )));
        }
    };
    Ok(FileSettings {
        root: file.root,
        parallelism: oci.max_parallelism,
        gc,
        insecure_entitlements: file.insecure_entitlements,
        isolated_network,
    })
}

/// The configuration file to read, if any.
pub fn default_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KILN_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let system = PathBuf::from("/etc/kiln/kiln.toml");
    system.is_file().then_some(system)
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
        assert_eq!(gc[0].prunes().unwrap().len(), 2);
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
        fs::write(&path, "[worker.oci\n").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("kiln.toml"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
