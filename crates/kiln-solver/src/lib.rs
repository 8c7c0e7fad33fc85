//! Generic content-addressed scheduling: a DAG of opaque vertices, each run once after
//! its inputs, independent ones in parallel up to a bound, the first failure stopping
//! the rest; the keys results are cached by; and the lazy results of a solve whose
//! vertices are made only when a user needs their content.
//!
//! The solver never sees LLB: `kiln-worker` turns ops into vertices and decides what
//! running one means (its cache map, the local store's lookups, snapshots, exec). The
//! solver gives the shape of a key ([`keys::VertexKey`]: op digest plus one link per
//! input, by the input's key or by the checksum of what the op reads of it) and its
//! digests ([`cache_key`], BuildKit's), which an importer of exported cache records
//! computes too.

pub mod cache_key;
pub mod keys;
pub mod lazy;
mod scheduler;

pub use scheduler::{Failed, Slot, Slots, Vertex, solve};
