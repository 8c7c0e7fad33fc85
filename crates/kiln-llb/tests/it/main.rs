//! Integration tests of kiln-llb: one binary, one module per feature.

mod builder;
mod conformance;
mod local;
mod properties;
