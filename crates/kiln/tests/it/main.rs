//! Integration tests of the `kiln` binary: one binary, one module per command.

mod build;
mod dump_llb;
