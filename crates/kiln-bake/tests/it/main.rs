//! kiln-bake's tests, one binary: Bake files resolved end to end (`resolve`) and what
//! `bake --list` shows of them (`list`).

mod list;
mod resolve;
