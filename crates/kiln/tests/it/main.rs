//! Integration tests of the `kiln` binary: one binary, one module per command.

mod bake;
mod build;
mod builders;
mod cache_keys;
mod config;
mod context;
mod copy_owners;
mod crash;
mod dockerfile_errors;
mod dump_llb;
mod exec_mounts;
mod export;
mod imagetools;
mod layering;
mod layers;
mod multi_platform;
mod remote_cache;
mod run;
mod support;
