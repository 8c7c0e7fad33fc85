//! Wire types and front door: BuildKit's protobuf and gRPC services (`Control`,
//! `LLBBridge`, the session services), and the session transport both ends use.
//!
//! The types are BuildKit's own (from `bollard-buildkit-proto`, wire-compatible with
//! v0.24), re-exported as [`proto`]. A session is HTTP/2 carried inside the byte
//! messages of the `Control.Session` stream, with the *client* as the gRPC server:
//! [`session::duplex`] turns that stream into one byte pipe, and [`session::channel`]
//! turns the pipe into a gRPC channel the daemon calls the client's services on.
//!
//! It also holds the front door itself: the [`Builder`] trait every driver implements,
//! its plain request and result types ([`build`]), and [`remote::RemoteBuilder`], the
//! `Builder` that drives a daemon, and [`context`]: build contexts named by URL (git,
//! http, a session upload), fetched where the build runs. This crate depends on no
//! engine crate.

pub mod build;
pub mod builder;
pub mod client;
pub mod context;
pub mod history;
pub mod memory;
pub mod remote;
pub mod session;
pub mod subrequests;

pub use builder::{Builder, BuilderInfo, Error, GcPolicyInfo};
/// An error and its causes on one line (for `kilnd`, which names no crate below this one).
pub use kiln_oci::report::chain as error_chain;

pub use bollard_buildkit_proto as proto;
/// Go's value syntaxes (the attributes on the wire are written in them).
pub use kiln_oci::go;
