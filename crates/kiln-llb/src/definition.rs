//! A decoded `Definition`: its ops by digest, checked to form a DAG with one terminal.

use std::collections::{BTreeMap, HashMap};

use crate::digest::Digest;
use crate::error::Error;
use crate::{pb, wire};

/// One vertex of a definition: the op, its exact bytes and its digest.
#[derive(Debug, Clone)]
pub struct Vertex {
    /// The sha256 of `bytes`.
    pub digest: Digest,
    /// The op as decoded.
    pub op: pb::Op,
    /// The op's bytes as they appeared in the definition.
    pub bytes: Vec<u8>,
    /// Its metadata entry, if any.
    pub metadata: Option<pb::OpMetadata>,
}

/// A definition whose ops were decoded and whose inputs all resolve.
#[derive(Debug, Clone)]
pub struct LoadedDefinition {
    /// The vertices in definition order (inputs before their users, terminal last).
    pub vertices: Vec<Vertex>,
    /// Index into `vertices` by digest.
    index: HashMap<Digest, usize>,
    /// The definition as decoded.
    pub definition: pb::Definition,
}

impl LoadedDefinition {
    /// Decodes a definition and checks it: every `def` entry is an op, every input names
    /// an op of the definition, and there is no cycle. An empty definition (an empty
    /// build, e.g. `FROM scratch` with metadata only) has no vertices.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_definition(wire::decode_definition(bytes)?)
    }

    /// Like [`LoadedDefinition::decode`], from a decoded definition.
    pub fn from_definition(definition: pb::Definition) -> Result<Self, Error> {
        let mut vertices = Vec::with_capacity(definition.def.len());
        let mut index = HashMap::with_capacity(definition.def.len());
        for bytes in &definition.def {
            let op = wire::decode_op(bytes)?;
            let digest = Digest::of(bytes);
            let metadata = definition.metadata.get(&digest.to_string()).cloned();
            index.entry(digest).or_insert(vertices.len());
            vertices.push(Vertex {
                digest,
                op,
                bytes: bytes.clone(),
                metadata,
            });
        }
        let loaded = Self {
            vertices,
            index,
            definition,
        };
        loaded.check_graph()?;
        Ok(loaded)
    }

    fn check_graph(&self) -> Result<(), Error> {
        for vertex in &self.vertices {
            for input in &vertex.op.inputs {
                let known = input
                    .digest
                    .parse::<Digest>()
                    .ok()
                    .is_some_and(|d| self.index.contains_key(&d));
                if !known {
                    return Err(Error::MissingInput {
                        op: vertex.digest.to_string(),
                        input: input.digest.clone(),
                    });
                }
            }
        }
        // Depth-first search with colours: grey = on the current path.
        #[derive(Clone, Copy, PartialEq)]
        enum Colour {
            White,
            Grey,
            Black,
        }
        let mut colour = vec![Colour::White; self.vertices.len()];
        for start in 0..self.vertices.len() {
            if colour[start] != Colour::White {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            colour[start] = Colour::Grey;
            while let Some((node, next_input)) = stack.pop() {
                let inputs = &self.vertices[node].op.inputs;
                if next_input == inputs.len() {
                    colour[node] = Colour::Black;
                    continue;
                }
                stack.push((node, next_input + 1));
                let child = self.position(&inputs[next_input].digest).unwrap_or(node);
                match colour[child] {
                    Colour::Grey => {
                        return Err(Error::Cycle(self.vertices[child].digest.to_string()));
                    }
                    Colour::White => {
                        colour[child] = Colour::Grey;
                        stack.push((child, 0));
                    }
                    Colour::Black => {}
                }
            }
        }
        Ok(())
    }

    fn position(&self, digest: &str) -> Option<usize> {
        self.index.get(&digest.parse::<Digest>().ok()?).copied()
    }

    /// The vertex with this digest.
    pub fn get(&self, digest: &Digest) -> Option<&Vertex> {
        self.index.get(digest).map(|&i| &self.vertices[i])
    }

    /// The terminal vertex (the last op, which only points at the result), if any.
    pub fn terminal(&self) -> Option<&Vertex> {
        self.vertices.last()
    }

    /// The result the definition asks for: the terminal op's one input, as
    /// `(digest, output index)`. `None` for an empty definition.
    pub fn result(&self) -> Result<Option<(Digest, i64)>, Error> {
        let Some(terminal) = self.terminal() else {
            return Ok(None);
        };
        match terminal.op.inputs.as_slice() {
            [input] if terminal.op.op.is_none() => Ok(Some((input.digest.parse()?, input.index))),
            _ => Err(Error::NoTerminal),
        }
    }

    /// The source locations recorded for a vertex.
    pub fn locations(&self, digest: &Digest) -> Option<&pb::Locations> {
        self.definition
            .source
            .as_ref()?
            .locations
            .get(&digest.to_string())
    }

    /// Every distinct digest with its vertex, sorted by digest.
    pub fn by_digest(&self) -> BTreeMap<Digest, &Vertex> {
        self.vertices.iter().map(|v| (v.digest, v)).collect()
    }
}
