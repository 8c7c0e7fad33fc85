//! Integration tests of kiln-dockerfile: one binary, one module per feature.

mod checks;
mod conformance;
mod conversion;
mod instructions;
mod llb_convert;
mod named_contexts;
mod no_panic;
