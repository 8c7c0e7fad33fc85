//! `State::marshal`: the graph to a `Definition`, as BuildKit's `State.Marshal` writes it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kiln_oci::Platform;

use super::{Node, OpKind, Output, SourceMap, State};
use crate::{Digest, caps, pb, wire};

/// Settings applied while marshalling.
#[derive(Debug, Clone, Default)]
pub struct MarshalOptions {
    /// The platform of ops that name none (default: the host's).
    pub platform: Option<Platform>,
    /// The `local.unique` id of local sources without a session (default: random, as
    /// BuildKit does, so that two clients never share a transfer).
    pub local_unique_id: Option<String>,
}

/// A random 25-character base-36 id, like BuildKit's `identity.NewID`.
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let mut n: u128 = 0;
    for salt in 0..2u64 {
        let mut hasher = state.build_hasher();
        hasher.write_u64(salt);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        n = (n << 64) | u128::from(hasher.finish());
    }
    let mut out = Vec::with_capacity(25);
    for _ in 0..25 {
        let digit = (n % 36) as u8;
        n /= 36;
        out.push(if digit < 10 {
            b'0' + digit
        } else {
            b'a' + digit - 10
        });
    }
    String::from_utf8(out).unwrap_or_default()
}

fn to_pb_platform(p: &Platform) -> pb::Platform {
    pb::Platform {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        variant: p.variant.clone(),
        os_version: p.os_version.clone(),
        os_features: p.os_features.clone(),
    }
}

/// BuildKit's `mergeMetadata`: later descriptions and caps add to earlier ones.
fn merge_metadata(into: &mut pb::OpMetadata, from: &pb::OpMetadata) {
    into.ignore_cache |= from.ignore_cache;
    into.description
        .extend(from.description.iter().map(|(k, v)| (k.clone(), v.clone())));
    if from.export_cache.is_some() {
        into.export_cache = from.export_cache;
    }
    into.caps
        .extend(from.caps.iter().map(|(k, v)| (k.clone(), *v)));
    if from.progress_group.is_some() {
        into.progress_group = from.progress_group.clone();
    }
}

struct Marshaller {
    default_platform: Platform,
    local_unique_id: String,
    def: Vec<Vec<u8>>,
    written: HashSet<Digest>,
    digests: HashMap<*const Node, Digest>,
    metadata: BTreeMap<String, pb::OpMetadata>,
    source_maps: Vec<Arc<SourceMap>>,
    locations: BTreeMap<String, Vec<pb::Location>>,
}

impl Marshaller {
    fn input(&self, output: &Output) -> pb::Input {
        let digest = self
            .digests
            .get(&Arc::as_ptr(&output.node))
            .map(ToString::to_string)
            .unwrap_or_default();
        pb::Input {
            digest,
            index: output.index,
        }
    }

    /// Marshals `root` and everything under it, inputs first (iteratively: graphs can be
    /// thousands of ops deep).
    fn visit(&mut self, root: &Arc<Node>) {
        let mut stack: Vec<(Arc<Node>, bool)> = vec![(Arc::clone(root), false)];
        while let Some((node, inputs_done)) = stack.pop() {
            if self.digests.contains_key(&Arc::as_ptr(&node)) {
                continue;
            }
            if inputs_done {
                self.write(&node);
                continue;
            }
            let inputs = node.inputs();
            stack.push((node, true));
            for input in inputs.iter().rev() {
                if !self.digests.contains_key(&Arc::as_ptr(&input.node)) {
                    stack.push((Arc::clone(&input.node), false));
                }
            }
        }
    }

    fn write(&mut self, node: &Arc<Node>) {
        if let OpKind::Definition { definition, result } = &node.kind {
            self.write_definition(definition, *result);
            self.digests.insert(Arc::as_ptr(node), *result);
            return;
        }
        let mut metadata = node.options.metadata.clone();
        let op = self.to_op(node, &mut metadata);
        let bytes = wire::encode_op(&op);
        let digest = Digest::of(&bytes);
        merge_metadata(
            self.metadata.entry(digest.to_string()).or_default(),
            &metadata,
        );
        for location in &node.options.locations {
            let index = match self
                .source_maps
                .iter()
                .position(|m| Arc::ptr_eq(m, &location.source) || **m == *location.source)
            {
                Some(i) => i,
                None => {
                    self.source_maps.push(Arc::clone(&location.source));
                    self.source_maps.len() - 1
                }
            };
            self.locations
                .entry(digest.to_string())
                .or_default()
                .push(pb::Location {
                    source_index: index as i32,
                    ranges: location.ranges.clone(),
                });
        }
        if self.written.insert(digest) {
            self.def.push(bytes);
        }
        self.digests.insert(Arc::as_ptr(node), digest);
    }

    /// Every op of a definition made elsewhere but its terminal, bytes and metadata
    /// unchanged. (Its source locations point into another file and are left out.)
    fn write_definition(&mut self, definition: &crate::LoadedDefinition, result: Digest) {
        let terminal = definition.terminal().map(|t| t.digest);
        for vertex in &definition.vertices {
            if Some(vertex.digest) == terminal && vertex.digest != result {
                continue;
            }
            if let Some(metadata) = &vertex.metadata {
                merge_metadata(
                    self.metadata.entry(vertex.digest.to_string()).or_default(),
                    metadata,
                );
            }
            if self.written.insert(vertex.digest) {
                self.def.push(vertex.bytes.clone());
            }
        }
    }

    fn to_op(&self, node: &Node, metadata: &mut pb::OpMetadata) -> pb::Op {
        use pb::op::Op as Kind;
        let platform = node
            .options
            .platform
            .as_ref()
            .unwrap_or(&self.default_platform);
        let mut op = pb::Op {
            inputs: Vec::new(),
            platform: Some(to_pb_platform(platform)),
            constraints: Some(pb::WorkerConstraints {
                filter: node.options.worker_constraints.clone(),
            }),
            op: None,
        };
        match &node.kind {
            OpKind::Source(source) => {
                let mut attrs = source.attrs.clone();
                if source.needs_unique_id() && !attrs.contains_key("local.unique") {
                    attrs.insert("local.unique".to_owned(), self.local_unique_id.clone());
                    metadata
                        .caps
                        .insert(caps::SOURCE_LOCAL_UNIQUE.to_owned(), true);
                }
                if !source.platform_specific() {
                    op.platform = None;
                }
                op.op = Some(Kind::Source(pb::SourceOp {
                    identifier: source.identifier.clone(),
                    attrs,
                }));
            }
            OpKind::Exec(exec) => {
                let inputs = &mut op.inputs;
                let exec = exec.to_pb(|output| {
                    let input = self.input(output);
                    match inputs.iter().position(|i| *i == input) {
                        Some(i) => i as i64,
                        None => {
                            inputs.push(input);
                            inputs.len() as i64 - 1
                        }
                    }
                });
                op.op = Some(Kind::Exec(exec));
            }
            OpKind::File(file) => {
                let (inputs, file) = file.to_pb(|output| self.input(output));
                op.inputs = inputs;
                op.platform = None;
                op.op = Some(Kind::File(file));
            }
            OpKind::Merge(outputs) => {
                op.inputs = outputs.iter().map(|o| self.input(o)).collect();
                op.platform = None;
                op.op = Some(Kind::Merge(pb::MergeOp {
                    inputs: (0..outputs.len() as i64)
                        .map(|input| pb::MergeInput { input })
                        .collect(),
                }));
            }
            OpKind::Diff { lower, upper } => {
                let mut index = |o: &Option<Output>| match o {
                    Some(o) => {
                        op.inputs.push(self.input(o));
                        op.inputs.len() as i64 - 1
                    }
                    None => -1,
                };
                let lower = index(lower);
                let upper = index(upper);
                op.platform = None;
                op.op = Some(Kind::Diff(pb::DiffOp {
                    lower: Some(pb::LowerDiffInput { input: lower }),
                    upper: Some(pb::UpperDiffInput { input: upper }),
                }));
            }
            OpKind::Definition { .. } => unreachable!("written by write_definition"),
        }
        op
    }
}

impl State {
    /// Marshals the graph that produces this state into a `Definition`: every distinct op
    /// once, inputs before the ops that use them, then the terminal op pointing at the
    /// result; metadata per op and source locations. Scratch gives an empty definition.
    pub fn marshal(&self, options: &MarshalOptions) -> pb::Definition {
        let Some(output) = &self.output else {
            return pb::Definition::default();
        };
        let mut m = Marshaller {
            default_platform: options.platform.clone().unwrap_or_else(Platform::host),
            local_unique_id: options.local_unique_id.clone().unwrap_or_else(new_id),
            def: Vec::new(),
            written: HashSet::new(),
            digests: HashMap::new(),
            metadata: BTreeMap::new(),
            source_maps: Vec::new(),
            locations: BTreeMap::new(),
        };
        m.visit(&output.node);
        let terminal = pb::Op {
            inputs: vec![m.input(output)],
            ..pb::Op::default()
        };
        let bytes = wire::encode_op(&terminal);
        let digest = Digest::of(&bytes);
        m.def.push(bytes);
        let mut terminal_metadata = pb::OpMetadata::default();
        for cap in [caps::CONSTRAINTS, caps::PLATFORM] {
            terminal_metadata.caps.insert(cap.to_owned(), true);
        }
        for md in m.metadata.values() {
            if md.ignore_cache {
                terminal_metadata
                    .caps
                    .insert(caps::META_IGNORE_CACHE.to_owned(), true);
            }
            if !md.description.is_empty() {
                terminal_metadata
                    .caps
                    .insert(caps::META_DESCRIPTION.to_owned(), true);
            }
            if md.export_cache.is_some() {
                terminal_metadata
                    .caps
                    .insert(caps::META_EXPORT_CACHE.to_owned(), true);
            }
        }
        m.metadata.insert(digest.to_string(), terminal_metadata);
        let source = pb::Source {
            locations: m
                .locations
                .into_iter()
                .map(|(digest, locations)| (digest, pb::Locations { locations }))
                .collect(),
            infos: m
                .source_maps
                .iter()
                .map(|s| pb::SourceInfo {
                    filename: s.filename.clone(),
                    data: s.data.clone(),
                    definition: None,
                    language: s.language.clone(),
                })
                .collect(),
        };
        pb::Definition {
            def: m.def,
            metadata: m.metadata,
            source: Some(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::new_id;

    #[test]
    fn ids_look_like_buildkits() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 25);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        assert_ne!(a, b);
    }
}
