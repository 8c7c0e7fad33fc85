//! Bake files: HCL (and HCL's JSON form) definitions with variables, functions,
//! inheritance and matrices, resolved to fully specified targets, as `docker buildx
//! bake` resolves them. [`resolve`] is the whole pipeline; its result prints as
//! `bake --print` does. [`list`] gives what `bake --list` shows.
//!
//! Plain data in, plain data out: this crate knows nothing of LLB or the engine.

mod calls;
mod compose;
mod convert;
mod error;
mod eval;
mod files;
mod funcs;
mod glob;
mod json;
mod list;
mod model;
mod options;
mod specs;
mod target;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use error::Error;
pub use list::{ListedGroup, ListedTarget, ListedVariable, Listing, TargetRow, go_json_string};
pub use target::{PrintedGroup, Resolved};

/// What `kiln bake` was asked.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `-f` files, in order (empty: the default lookup).
    pub files: Vec<String>,
    /// The directory files are looked up and resolved in.
    pub dir: PathBuf,
    /// The environment (variables override `variable` defaults).
    pub env: BTreeMap<String, String>,
    /// `--set` overrides.
    pub sets: Vec<String>,
    /// Targets or groups (names or patterns) to resolve; empty means `default`.
    pub targets: Vec<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`.
    pub pull: bool,
}

/// Resolves a bake request to its targets and groups.
pub fn resolve(request: &Request) -> Result<Resolved, Error> {
    let (definition, _) = definition(request)?;
    target::resolve(&definition, request)
}

/// Everything the request's files define, as `bake --list` shows it: all targets,
/// groups and variables (the requested targets, `--set` and the like play no part).
pub fn list(request: &Request) -> Result<Listing, Error> {
    let (definition, compose_only) = definition(request)?;
    list::listing(&definition, compose_only)
}

/// The files read and evaluated; and whether they were all Compose files.
fn definition(request: &Request) -> Result<(eval::Definition, bool), Error> {
    let sources = files::load(request)?;
    let mut compose_env = match fs_err::read_to_string(request.dir.join(".env")) {
        Ok(text) => compose::parse_dotenv(&text),
        Err(_) => BTreeMap::new(),
    };
    compose_env.extend(request.env.clone());
    let definition = eval::Definition::parse(&sources, &request.env, &compose_env)?;
    let compose_only = sources
        .iter()
        .all(|s| s.name.ends_with(".yml") || s.name.ends_with(".yaml"));
    Ok((definition, compose_only))
}

/// A cache entry's type and attributes.
pub type CacheEntryParts = (String, BTreeMap<String, String>);

/// `--cache-from`/`--cache-to` values as buildx's `buildflags.ParseCacheEntry` reads
/// them (CSV `type=…,key=value`, or a CSV list of image references for the registry
/// backend): each entry's type and attributes.
pub fn parse_cache_entries(values: &[String]) -> Result<Vec<CacheEntryParts>, String> {
    Ok(model::CacheEntry::parse_list(values)?
        .into_iter()
        .map(|entry| (entry.kind, entry.attrs))
        .collect())
}
