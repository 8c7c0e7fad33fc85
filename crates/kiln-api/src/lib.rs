//! Wire types and front door: BuildKit's protobuf and gRPC services (`Control`,
//! `LLBBridge`, the session services), and the session transport both ends use.
//!
//! The types are BuildKit's own (from `bollard-buildkit-proto`, wire-compatible with
//! v0.24), re-exported as [`proto`]. A session is HTTP/2 carried inside the byte
//! messages of the `Control.Session` stream, with the *client* as the gRPC server:
//! [`session::duplex`] turns that stream into one byte pipe, and [`session::channel`]
//! turns the pipe into a gRPC channel the daemon calls the client's services on.
//!
//! This crate depends on no engine crate: the daemon and the CLI's remote driver use it.

pub mod client;
pub mod session;

pub use bollard_buildkit_proto as proto;
