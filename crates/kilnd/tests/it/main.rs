//! kilnd as its clients see it: a gRPC client of our own for the calls any client
//! makes, and the real `buildctl` v0.24 and `docker buildx` v0.28 (built from their
//! sources outside the repository, found through `KILN_BUILDCTL`/`KILN_BUILDX` or PATH;
//! skipped with a note when absent).

mod crash;
mod daemon;
mod gateway;
mod kiln_cli;
mod oracle;
mod remote_contexts;
mod soak;
mod support;
