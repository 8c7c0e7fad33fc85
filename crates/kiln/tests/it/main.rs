//! Integration tests of the `kiln` binary: one binary, one module per command.

mod dump_llb;
