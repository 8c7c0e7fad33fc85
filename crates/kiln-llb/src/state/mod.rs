//! The builder API, after BuildKit's `client/llb`: immutable [`State`]s made from
//! sources, `run`, file actions, `merge` and `diff`, carrying metadata (env, dir, user,
//! platform, network, security, …) forward, and [`State::marshal`] to a `Definition`.
//!
//! A state is a cheap handle: an optional output of a vertex (none means `scratch`) and
//! its metadata. Vertices are shared by reference, so a graph is built once however often
//! its states are cloned. Marshalling walks the graph from the result, inputs first, and
//! writes each distinct op once; the encoding is BuildKit's, so digests are BuildKit's,
//! and they do not depend on the order in which the graph was built.

mod exec;
mod file;
mod marshal;
mod source;

pub(crate) use kiln_oci::go::clean_path;
use std::sync::Arc;

use kiln_oci::Platform;

use crate::pb;

pub use self::exec::{
    CacheSharing, ExecState, Mount, NetMode, Run, SecretEnv, SecretMount, SecurityMode, SshMount,
};
pub use self::file::{ChownOpt, CopyOptions, FileAction, UserOpt};
pub use self::marshal::MarshalOptions;
pub use self::source::{
    GitOptions, HttpOptions, ImageOptions, LocalOptions, OciLayoutOptions, ResolveMode,
};

/// A place in a Dockerfile (or any source) an op came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMap {
    /// The file's name, e.g. `Dockerfile`.
    pub filename: String,
    /// Its language, e.g. `Dockerfile`.
    pub language: String,
    /// Its content.
    pub data: Vec<u8>,
}

/// Ranges of one source file that produced an op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    /// The file, shared by all ops from it.
    pub source: Arc<SourceMap>,
    /// The ranges (1-based lines, 0-based characters as BuildKit records them).
    pub ranges: Vec<pb::Range>,
}

/// Per-op options: BuildKit's `Constraints` (platform, worker constraints, metadata and
/// source locations).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpOptions {
    /// The platform the op is for; when unset, the state's or the marshal default.
    pub platform: Option<Platform>,
    /// Worker constraint filters.
    pub worker_constraints: Vec<String>,
    /// Metadata: custom name, description, ignore-cache, progress group, caps.
    pub metadata: pb::OpMetadata,
    /// Where in the source the op came from.
    pub locations: Vec<SourceLocation>,
}

impl OpOptions {
    /// Sets `llb.customname`, the name progress displays show.
    pub fn custom_name(mut self, name: impl Into<String>) -> Self {
        self.metadata
            .description
            .insert("llb.customname".to_owned(), name.into());
        self
    }

    /// Adds a description entry.
    pub fn description(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.description.insert(key.into(), value.into());
        self
    }

    /// Never take this op's result from the cache.
    pub fn ignore_cache(mut self) -> Self {
        self.metadata.ignore_cache = true;
        self
    }

    /// Groups ops under one line in progress displays.
    pub fn progress_group(
        mut self,
        id: impl Into<String>,
        name: impl Into<String>,
        weak: bool,
    ) -> Self {
        self.metadata.progress_group = Some(pb::ProgressGroup {
            id: id.into(),
            name: name.into(),
            weak,
        });
        self
    }

    /// Records where the op came from.
    pub fn location(mut self, source: &Arc<SourceMap>, ranges: Vec<pb::Range>) -> Self {
        self.locations.push(SourceLocation {
            source: Arc::clone(source),
            ranges,
        });
        self
    }

    /// Pins the op's platform.
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    pub(crate) fn add_cap(&mut self, cap: &str) {
        self.metadata.caps.insert(cap.to_owned(), true);
    }
}

/// What a vertex does.
#[derive(Debug)]
pub(crate) enum OpKind {
    Source(source::SourceSpec),
    Exec(Box<exec::ExecSpec>),
    File(file::FileSpec),
    Merge(Vec<Output>),
    Diff {
        lower: Option<Output>,
        upper: Option<Output>,
    },
    /// The ops of a definition made elsewhere (BuildKit's `DefinitionOp`), written
    /// as they are; this vertex stands for its result.
    Definition {
        definition: Arc<crate::LoadedDefinition>,
        result: crate::Digest,
    },
}

/// A vertex of the graph under construction.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) kind: OpKind,
    pub(crate) options: OpOptions,
}

impl Node {
    /// The outputs this vertex reads, in BuildKit's order, without repeats.
    fn inputs(&self) -> Vec<Output> {
        let mut inputs: Vec<Output> = Vec::new();
        let mut push = |o: &Option<Output>| {
            if let Some(o) = o
                && !inputs
                    .iter()
                    .any(|i| Arc::ptr_eq(&i.node, &o.node) && i.index == o.index)
            {
                inputs.push(o.clone());
            }
        };
        match &self.kind {
            OpKind::Source(_) | OpKind::Definition { .. } => {}
            OpKind::Exec(e) => e.mounts.iter().for_each(|m| push(&m.source)),
            OpKind::File(f) => f.inputs().iter().for_each(|o| push(&Some(o.clone()))),
            OpKind::Merge(list) => list.iter().for_each(|o| push(&Some(o.clone()))),
            OpKind::Diff { lower, upper } => {
                push(lower);
                push(upper);
            }
        }
        inputs
    }
}

/// One output of a vertex.
#[derive(Debug, Clone)]
pub struct Output {
    pub(crate) node: Arc<Node>,
    pub(crate) index: i64,
}

/// Metadata a state carries forward to the ops built on it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateMeta {
    /// Environment, in first-definition order.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub dir: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Target platform.
    pub platform: Option<Platform>,
    /// Network mode for `run`.
    pub network: NetMode,
    /// Security mode for `run`.
    pub security: SecurityMode,
    /// Hostname for `run`.
    pub hostname: Option<String>,
    /// Extra `/etc/hosts` entries for `run`.
    pub extra_hosts: Vec<(String, String)>,
    /// Resource limits for `run`.
    pub ulimits: Vec<pb::Ulimit>,
    /// cgroup parent for `run`.
    pub cgroup_parent: Option<String>,
}

/// A filesystem state plus the metadata carried with it; `scratch` when it has no output.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub(crate) output: Option<Output>,
    pub(crate) meta: Arc<StateMeta>,
}

impl State {
    /// The empty filesystem.
    pub fn scratch() -> Self {
        Self::default()
    }

    pub(crate) fn from_node(node: Node, index: i64) -> Self {
        Self {
            output: Some(Output {
                node: Arc::new(node),
                index,
            }),
            meta: Arc::default(),
        }
    }

    /// The result of a definition made elsewhere (a frontend input, BuildKit's
    /// `NewDefinitionOp`): marshalled, its ops appear unchanged and keep their digests.
    /// An empty definition is `scratch`.
    pub fn from_definition(definition: crate::LoadedDefinition) -> Result<Self, crate::Error> {
        let Some((result, index)) = definition.result()? else {
            return Ok(Self::scratch());
        };
        Ok(Self::from_node(
            Node {
                kind: OpKind::Definition {
                    definition: Arc::new(definition),
                    result,
                },
                options: OpOptions::default(),
            },
            index,
        ))
    }

    /// Whether this is `scratch` (no vertex).
    pub fn is_scratch(&self) -> bool {
        self.output.is_none()
    }

    /// The metadata carried by this state.
    pub fn meta(&self) -> &StateMeta {
        &self.meta
    }

    /// The same metadata on another filesystem (BuildKit's `WithOutput`).
    pub fn with_output_of(&self, other: &State) -> Self {
        Self {
            output: other.output.clone(),
            meta: Arc::clone(&self.meta),
        }
    }

    fn map_meta(&self, f: impl FnOnce(&mut StateMeta)) -> Self {
        let mut meta = (*self.meta).clone();
        f(&mut meta);
        Self {
            output: self.output.clone(),
            meta: Arc::new(meta),
        }
    }

    /// Sets an environment variable. A variable set again moves to the end, as in
    /// BuildKit's `EnvList` (the order is that of the last assignments).
    pub fn add_env(&self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        self.map_meta(|m| {
            m.env.retain(|(k, _)| *k != key);
            m.env.push((key, value));
        })
    }

    /// Removes an environment variable.
    pub fn del_env(&self, key: &str) -> Self {
        self.map_meta(|m| m.env.retain(|(k, _)| k != key))
    }

    /// The value of an environment variable.
    pub fn get_env(&self, key: &str) -> Option<&str> {
        self.meta
            .env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets the working directory; a relative path is joined to the current one (and
    /// cleaned), an absolute one is kept as written, as BuildKit does.
    pub fn dir(&self, dir: &str) -> Self {
        let joined = if dir.starts_with('/') {
            dir.to_owned()
        } else {
            clean_path(&format!(
                "{}/{dir}",
                self.meta.dir.as_deref().unwrap_or("/")
            ))
        };
        self.map_meta(|m| m.dir = Some(joined))
    }

    /// Sets the user.
    pub fn user(&self, user: impl Into<String>) -> Self {
        let user = user.into();
        self.map_meta(|m| m.user = Some(user))
    }

    /// Sets the target platform.
    pub fn platform(&self, platform: Platform) -> Self {
        self.map_meta(|m| m.platform = Some(platform))
    }

    /// Sets the network mode of later `run`s.
    pub fn network(&self, network: NetMode) -> Self {
        self.map_meta(|m| m.network = network)
    }

    /// Sets the security mode of later `run`s.
    pub fn security(&self, security: SecurityMode) -> Self {
        self.map_meta(|m| m.security = security)
    }

    /// Sets the hostname of later `run`s.
    pub fn hostname(&self, hostname: impl Into<String>) -> Self {
        let hostname = hostname.into();
        self.map_meta(|m| m.hostname = Some(hostname))
    }

    /// Adds an `/etc/hosts` entry for later `run`s.
    pub fn add_extra_host(&self, host: impl Into<String>, ip: impl Into<String>) -> Self {
        let entry = (host.into(), ip.into());
        self.map_meta(|m| m.extra_hosts.push(entry))
    }

    /// Adds a resource limit for later `run`s.
    pub fn add_ulimit(&self, name: impl Into<String>, soft: i64, hard: i64) -> Self {
        let limit = pb::Ulimit {
            name: name.into(),
            soft,
            hard,
        };
        self.map_meta(|m| m.ulimits.push(limit))
    }

    /// Sets the cgroup parent of later `run`s.
    pub fn cgroup_parent(&self, parent: impl Into<String>) -> Self {
        let parent = parent.into();
        self.map_meta(|m| m.cgroup_parent = Some(parent))
    }

    /// Merges states: their filesystems layered in order (BuildKit's `llb.Merge`).
    /// Scratch inputs are dropped; one input left is returned as it is.
    pub fn merge(states: &[State], mut options: OpOptions) -> State {
        let inputs: Vec<&State> = states.iter().filter(|s| !s.is_scratch()).collect();
        match inputs.as_slice() {
            [] => State::scratch(),
            [one] => (*one).clone(),
            _ => {
                options.add_cap(crate::caps::MERGE_OP);
                let outputs = inputs.iter().filter_map(|s| s.output.clone()).collect();
                let merged = State::from_node(
                    Node {
                        kind: OpKind::Merge(outputs),
                        options,
                    },
                    0,
                );
                inputs[0].with_output_of(&merged)
            }
        }
    }

    /// The changes that turn `lower` into `upper` (BuildKit's `llb.Diff`).
    pub fn diff(lower: &State, upper: &State, mut options: OpOptions) -> State {
        if lower.is_scratch() {
            return upper.clone();
        }
        options.add_cap(crate::caps::DIFF_OP);
        let diff = State::from_node(
            Node {
                kind: OpKind::Diff {
                    lower: lower.output.clone(),
                    upper: upper.output.clone(),
                },
                options,
            },
            0,
        );
        lower.with_output_of(&diff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_carries_forward() {
        let s = State::scratch()
            .add_env("A", "1")
            .add_env("B", "2")
            .add_env("A", "3")
            .dir("/app")
            .dir("src")
            .user("me");
        assert_eq!(
            s.meta().env,
            [
                ("B".to_owned(), "2".to_owned()),
                ("A".to_owned(), "3".to_owned())
            ]
        );
        assert_eq!(s.meta().dir.as_deref(), Some("/app/src"));
        assert_eq!(s.del_env("A").get_env("A"), None);
        assert_eq!(s.get_env("B"), Some("2"));
    }

    /// A definition made elsewhere, built on: its ops keep their bytes and digests,
    /// and the new op reads its result.
    #[test]
    fn a_definition_made_elsewhere_is_built_on_unchanged() {
        let wire_of = |state: &State| {
            crate::wire::encode_definition(&state.marshal(&MarshalOptions::default()))
        };
        let base = State::image("busybox:latest", ImageOptions::default()).file(
            FileAction::mkdir("/made", 0o755, false, None, None),
            OpOptions::default(),
        );
        let elsewhere = crate::LoadedDefinition::decode(&wire_of(&base)).unwrap();
        let (result, _) = elsewhere.result().unwrap().unwrap();
        let input = State::from_definition(elsewhere.clone()).unwrap();
        let built = input.file(
            FileAction::mkdir("/more", 0o755, false, None, None),
            OpOptions::default(),
        );
        let loaded = crate::LoadedDefinition::decode(&wire_of(&built)).unwrap();
        for vertex in elsewhere.vertices.iter().filter(|v| v.op.op.is_some()) {
            assert!(
                loaded.get(&vertex.digest).is_some(),
                "{} is missing",
                vertex.digest
            );
        }
        let (top, _) = loaded.result().unwrap().unwrap();
        let inputs = &loaded.get(&top).unwrap().op.inputs;
        assert_eq!(inputs[0].digest, result.to_string());
        // Elsewhere's terminal is not carried over: one terminal, the new one.
        assert_eq!(
            loaded.vertices.iter().filter(|v| v.op.op.is_none()).count(),
            1
        );
        let empty = crate::LoadedDefinition::decode(&[]).unwrap();
        assert!(State::from_definition(empty).unwrap().is_scratch());
    }
}
