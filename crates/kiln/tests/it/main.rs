//! Integration tests of the `kiln` binary: one binary, one module per command.

mod bake;
mod build;
mod builders;
mod cache_keys;
mod calls;
mod cloud_cache;
mod config;
mod context;
mod copy_owners;
mod crash;
mod disk_full;
mod dockerfile_errors;
mod dump_llb;
mod escapes;
mod exec_mounts;
mod export;
mod history;
mod imagetools;
mod layering;
mod layers;
mod multi_platform;
mod registry_faults;
mod remote_cache;
mod run;
mod support;
