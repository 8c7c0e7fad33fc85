//! Integration tests of kiln-dockerfile: one binary, one module per feature.

mod conformance;
mod instructions;
mod no_panic;
