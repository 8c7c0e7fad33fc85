//! The narrow waist: LLB ops in BuildKit's wire format, deterministic encoding and
//! digests, capabilities, and the `State` builder API.
//!
//! - [`pb`]: BuildKit's protobuf messages (`Definition`, `Op`, `ExecOp`, `FileOp`, …),
//!   from `bollard-buildkit-proto`.
//! - [`wire`]: BuildKit's exact encoding, so that a vertex's [`Digest`] (the sha256 of
//!   its encoded `Op`) is the one BuildKit computes.
//! - [`LoadedDefinition`]: a decoded definition checked to be a DAG, as the engine reads it.
//! - [`json`]: the ops as protobuf JSON, for `kiln debug dump-llb` and tests.
//! - [`State`]: the builder API (BuildKit's `client/llb`): sources, `run`, file actions,
//!   `merge`, `diff`, metadata carried forward, and [`State::marshal`].
//! - [`patterns`] and [`local`]: what a local source and a copy's filters select (Docker's
//!   path patterns; fsutil's filtered walk of a client directory). Both the embedded
//!   engine (reading a context) and a remote client (sending one through its session)
//!   use them, so the two select the same files; ARCHITECTURE.md's "source scheme" row
//!   still points at the worker for how a source is *loaded*.
//!
//! This crate must not depend on the engine: frontends build LLB with it, and only
//! `kiln-worker` reads it on the engine side. It carries prost messages only, no gRPC.

pub mod caps;
mod definition;
mod digest;
mod error;
pub mod git_ref;
pub mod json;
pub mod local;
pub mod patterns;
mod state;
pub mod wire;

/// BuildKit's LLB protobuf messages (`solver/pb/ops.proto`).
pub use bollard_buildkit_proto::pb;

pub use definition::{LoadedDefinition, Vertex};
pub use digest::Digest;
pub use error::Error;
pub use git_ref::{GitRef, GitRefError};
pub use kiln_oci::Platform;
pub use state::{
    CacheSharing, ChownOpt, CopyOptions, ExecState, FileAction, GitOptions, HttpOptions,
    ImageOptions, LocalOptions, MarshalOptions, Mount, NetMode, OciLayoutOptions, OpOptions,
    Output, ResolveMode, Run, SecretEnv, SecretMount, SecurityMode, SourceLocation, SourceMap,
    SshMount, State, StateMeta, UserOpt,
};
