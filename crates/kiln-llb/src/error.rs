//! Errors of LLB decoding, encoding and building.

use thiserror::Error;

/// What can go wrong with an LLB definition.
#[derive(Debug, Error)]
pub enum Error {
    /// Bytes that are not a protobuf `pb.Definition` or `pb.Op`.
    #[error("invalid LLB {what}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The protobuf error.
        #[source]
        source: prost::DecodeError,
    },
    /// A digest string that is not `sha256:<64 hex>`.
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    /// An op input that names no op in the definition.
    #[error("op {op} refers to missing input {input}")]
    MissingInput {
        /// The op with the dangling input.
        op: String,
        /// The digest it names.
        input: String,
    },
    /// A definition whose ops form a cycle.
    #[error("LLB definition has a cycle through {0}")]
    Cycle(String),
    /// A definition without a terminal op.
    #[error("LLB definition has no terminal op")]
    NoTerminal,
}
