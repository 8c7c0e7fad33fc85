//! Build history: one record per build a builder ran (BuildKit's `BuildHistoryRecord`,
//! in kiln's shape). The engine keeps them; kilnd serves them through
//! `ListenBuildHistory`, where `docker buildx history ls` reads them.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::build::Event;
use crate::proto::google::protobuf::Timestamp;
use crate::proto::google::rpc::Status;
use crate::proto::moby::buildkit::v1 as control;

/// A build the builder ran or is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// The build's id (BuildKit's `Ref`).
    pub id: String,
    /// The frontend it ran (`dockerfile.v0`; empty for an LLB definition).
    pub frontend: String,
    /// The frontend's attributes (`filename`, `target`, `build-arg:NAME` …).
    pub frontend_attrs: BTreeMap<String, String>,
    /// Its exporters: type and attributes.
    pub exporters: Vec<(String, BTreeMap<String, String>)>,
    /// When it started.
    pub created_at: SystemTime,
    /// When it ended; `None` while it runs.
    pub completed_at: Option<SystemTime>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// What its exporters answered (`containerimage.digest` …).
    pub exporter_response: BTreeMap<String, String>,
    /// Its steps.
    pub steps: StepCounts,
    /// Kept when older records are let go.
    pub pinned: bool,
    /// The context directory and Dockerfile as the build named them, when the builder
    /// knows them (buildx keeps these on the client, as its "local state"): what a
    /// record's name is made of.
    #[serde(default)]
    pub local_paths: Option<(String, String)>,
}

impl HistoryRecord {
    /// A build starting now.
    pub fn started(id: String, frontend: &str, frontend_attrs: BTreeMap<String, String>) -> Self {
        Self {
            id,
            frontend: frontend.to_owned(),
            frontend_attrs,
            exporters: Vec::new(),
            created_at: SystemTime::now(),
            completed_at: None,
            error: None,
            exporter_response: BTreeMap::new(),
            steps: StepCounts::default(),
            pinned: false,
            local_paths: None,
        }
    }
}

impl HistoryRecord {
    /// The record as BuildKit sends it.
    pub fn to_proto(&self) -> control::BuildHistoryRecord {
        control::BuildHistoryRecord {
            r#ref: self.id.clone(),
            frontend: self.frontend.clone(),
            frontend_attrs: self.frontend_attrs.clone().into_iter().collect(),
            exporters: self
                .exporters
                .iter()
                .map(|(kind, attrs)| control::Exporter {
                    r#type: kind.clone(),
                    attrs: attrs.clone().into_iter().collect(),
                })
                .collect(),
            error: self.error.as_ref().map(|message| Status {
                // gRPC's `Unknown`, as BuildKit records a build's error.
                code: 2,
                message: message.clone(),
                details: Vec::new(),
            }),
            created_at: Some(timestamp(self.created_at)),
            completed_at: self.completed_at.map(timestamp),
            exporter_response: self.exporter_response.clone().into_iter().collect(),
            pinned: self.pinned,
            num_cached_steps: to_i32(self.steps.cached),
            num_total_steps: to_i32(self.steps.total),
            num_completed_steps: to_i32(self.steps.completed),
            ..control::BuildHistoryRecord::default()
        }
    }

    /// A record as BuildKit sends it.
    pub fn from_proto(record: control::BuildHistoryRecord) -> Self {
        let count = |n: i32| u32::try_from(n).unwrap_or(0);
        Self {
            id: record.r#ref,
            frontend: record.frontend,
            frontend_attrs: record.frontend_attrs.into_iter().collect(),
            exporters: record
                .exporters
                .into_iter()
                .map(|e| (e.r#type, e.attrs.into_iter().collect()))
                .collect(),
            created_at: record
                .created_at
                .map_or(SystemTime::UNIX_EPOCH, system_time),
            completed_at: record.completed_at.map(system_time),
            error: record.error.map(|status| status.message),
            exporter_response: record.exporter_response.into_iter().collect(),
            steps: StepCounts {
                total: count(record.num_total_steps),
                completed: count(record.num_completed_steps),
                cached: count(record.num_cached_steps),
            },
            pinned: record.pinned,
            local_paths: None,
        }
    }
}

impl HistoryRecord {
    /// The record's name as `docker buildx history ls` makes it (buildx's `buildName`):
    /// `BUILDKIT_BUILD_NAME`, else the context or the Dockerfile's path (shortened),
    /// with the target in parentheses.
    pub fn name(&self) -> String {
        let attr = |key: &str| self.frontend_attrs.get(key).map(String::as_str);
        if let Some(name) = attr("build-arg:BUILDKIT_BUILD_NAME").filter(|n| !n.is_empty()) {
            return name.to_owned();
        }
        let context_path = match (attr("context"), attr("vcs:localdir:context")) {
            (Some(context), _) => context.to_owned(),
            (None, Some(dir)) if dir != "." => dir.to_owned(),
            _ => String::new(),
        };
        let mut dockerfile_path = attr("filename")
            .filter(|f| *f != "Dockerfile")
            .unwrap_or_default()
            .to_owned();
        if let Some(dir) = attr("vcs:localdir:dockerfile").filter(|d| *d != ".") {
            dockerfile_path = crate::go::join_path(&[dir, &dockerfile_path]);
        }
        let mut local_path = "";
        if let Some((local, dockerfile)) = &self.local_paths {
            if !local.is_empty() && local != "-" {
                local_path = local;
            }
            if !dockerfile.is_empty() && dockerfile != "-" && dockerfile != "Dockerfile" {
                dockerfile_path = dockerfile.clone();
            }
        }
        const DEFAULT_FILENAME: &str = "/Dockerfile";
        let default_filename =
            dockerfile_path.ends_with(DEFAULT_FILENAME) || dockerfile_path.is_empty();
        let dockerfile_path = dockerfile_path
            .strip_suffix(DEFAULT_FILENAME)
            .unwrap_or(&dockerfile_path);
        let mut name = if dockerfile_path.starts_with(local_path)
            && dockerfile_path.len() > local_path.len()
        {
            // The Dockerfile is inside the context: its path from the context's name.
            let from = local_path.rfind('/').map_or(0, |i| i + 1);
            dockerfile_path[from..].to_owned()
        } else {
            let path = if dockerfile_path.is_empty() {
                local_path
            } else {
                dockerfile_path
            };
            match path.rfind('/') {
                _ if path.is_empty() => String::new(),
                Some(slash) if !default_filename => crate::go::join_path(&[
                    crate::go::base_path(&path[..slash]),
                    &path[slash + 1..],
                ]),
                Some(slash) => path[slash + 1..].to_owned(),
                None if !default_filename => {
                    crate::go::join_path(&[crate::go::base_path(path), path])
                }
                None => path.to_owned(),
            }
        };
        if !context_path.is_empty() {
            name = context_path;
        }
        if let Some(target) = attr("target").filter(|t| !t.is_empty()) {
            name = if name.is_empty() {
                target.to_owned()
            } else {
                format!("{name} ({target})")
            };
        }
        match attr("vcs:source") {
            Some(source) if name.is_empty() => source.to_owned(),
            _ => name,
        }
    }
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A time as protobuf's `Timestamp`.
pub fn timestamp(time: SystemTime) -> Timestamp {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

fn system_time(timestamp: Timestamp) -> SystemTime {
    SystemTime::UNIX_EPOCH
        + std::time::Duration::new(
            u64::try_from(timestamp.seconds).unwrap_or(0),
            u32::try_from(timestamp.nanos).unwrap_or(0),
        )
}

/// How many steps a build had, and how they went (BuildKit's `NumTotalSteps`,
/// `NumCompletedSteps`, `NumCachedSteps`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCounts {
    /// Every step seen.
    pub total: u32,
    /// Steps that finished, cached ones included.
    pub completed: u32,
    /// Steps found in the cache.
    pub cached: u32,
}

/// Counts a build's steps from its progress events.
#[derive(Debug, Default)]
pub struct StepCounter {
    seen: HashSet<String>,
    ended: HashSet<String>,
    counts: StepCounts,
}

impl StepCounter {
    /// Takes one event into the counts.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::Started { digest, .. } => {
                if self.seen.insert(digest.clone()) {
                    self.counts.total += 1;
                }
            }
            Event::Cached { digest, .. } => {
                if self.seen.insert(digest.clone()) {
                    self.counts.total += 1;
                }
                if self.ended.insert(digest.clone()) {
                    self.counts.cached += 1;
                    self.counts.completed += 1;
                }
            }
            Event::Done { digest, .. } => {
                if self.ended.insert(digest.clone()) {
                    self.counts.completed += 1;
                }
            }
            // A step that failed ended too (BuildKit counts it as completed).
            Event::Failed { digest, .. } => {
                if self.ended.insert(digest.clone()) {
                    self.counts.completed += 1;
                }
            }
            Event::Log { .. } => {}
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> StepCounts {
        self.counts.clone()
    }
}

/// A new build id: 25 characters of base 36, like BuildKit's `identity.NewID`.
pub fn new_build_id() -> String {
    let mut bytes = [0u8; 25];
    if let Ok(mut urandom) = fs_err::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut urandom, &mut bytes);
    }
    bytes
        .iter()
        .map(|b| char::from_digit(u32::from(*b) % 36, 36).unwrap_or('0'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_counted_once_each() {
        let mut counter = StepCounter::default();
        let started = |d: &str| Event::Started {
            digest: d.to_owned(),
            name: d.to_owned(),
        };
        let done = |d: &str| Event::Done {
            digest: d.to_owned(),
            duration: std::time::Duration::ZERO,
        };
        for event in [
            started("a"),
            started("a"),
            done("a"),
            Event::Cached {
                digest: "b".to_owned(),
                name: "b".to_owned(),
            },
            started("c"),
        ] {
            counter.observe(&event);
        }
        assert_eq!(
            counter.counts(),
            StepCounts {
                total: 3,
                completed: 2,
                cached: 1
            }
        );
        let id = new_build_id();
        assert_eq!(id.len(), 25);
        assert_ne!(id, new_build_id());
    }

    /// Names as buildx's `history ls` makes them.
    #[test]
    fn records_are_named_as_buildx_names_them() {
        let named = |attrs: &[(&str, &str)], local: Option<(&str, &str)>| {
            let mut record = HistoryRecord::started(
                String::new(),
                "dockerfile.v0",
                attrs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
            record.local_paths = local.map(|(l, d)| (l.to_owned(), d.to_owned()));
            record.name()
        };
        let ctx = Some(("/tmp/hx/ctx", "/tmp/hx/ctx/Dockerfile"));
        assert_eq!(named(&[("filename", "Dockerfile")], ctx), "ctx");
        assert_eq!(
            named(
                &[("filename", "ctx2.Dockerfile")],
                Some(("/tmp/hx/ctx", "/tmp/hx/ctx2.Dockerfile"))
            ),
            "ctx2.Dockerfile"
        );
        assert_eq!(
            named(
                &[("target", "app")],
                Some(("/w/proj", "/w/proj/build/Dockerfile"))
            ),
            "proj/build (app)"
        );
        assert_eq!(
            named(&[("filename", "ctx2.Dockerfile")], None),
            "ctx2.Dockerfile"
        );
        assert_eq!(
            named(&[("context", "https://github.com/a/b.git#main")], ctx),
            "https://github.com/a/b.git#main"
        );
        assert_eq!(
            named(
                &[("build-arg:BUILDKIT_BUILD_NAME", "mine"), ("target", "x")],
                ctx
            ),
            "mine"
        );
        assert_eq!(named(&[], None), "");
    }

    #[test]
    fn a_record_goes_through_buildkits_shape_unchanged() {
        let mut record = HistoryRecord::started(
            new_build_id(),
            "dockerfile.v0",
            BTreeMap::from([("target".to_owned(), "app".to_owned())]),
        );
        record.completed_at = Some(record.created_at + std::time::Duration::from_millis(1500));
        record.error = Some("failed to solve".to_owned());
        record.exporters = vec![("local".to_owned(), BTreeMap::new())];
        record.steps.total = 4;
        assert_eq!(HistoryRecord::from_proto(record.to_proto()), record);
    }
}
