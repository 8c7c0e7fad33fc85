//! Solving a definition: each vertex keyed, looked up in the local cache (and in
//! remote caches, lazily), run when nothing has it, and recorded.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_llb::{LoadedDefinition, pb};
use kiln_registry::RegistryClient;
use kiln_solver::cache_key::{self, Link};
use kiln_solver::keys::VertexKey;
use kiln_solver::lazy;

use crate::remote_cache::{self, CacheImport, ImportedResult, SolvedRecord};

type Outputs = lazy::Outputs<Ref>;
use crate::{
    CACHE_TABLE, Error, LocalContexts, Ref, Secrets, Worker, cache_map, fsutil, names, op_platform,
    ops, sha256_hex, source, usage,
};

/// Progress of a solve, in BuildKit's model.
#[derive(Debug, Clone)]
pub enum Event {
    /// A vertex started.
    Started {
        /// Its digest.
        digest: String,
        /// Its name.
        name: String,
    },
    /// A vertex's result came from the cache.
    Cached {
        /// Its digest.
        digest: String,
        /// Its name.
        name: String,
    },
    /// A vertex finished.
    Done {
        /// Its digest.
        digest: String,
        /// How long it took.
        duration: Duration,
    },
    /// A vertex failed.
    Failed {
        /// Its digest.
        digest: String,
        /// Why.
        error: String,
        /// How long it ran.
        duration: Duration,
    },
    /// Output of a running process.
    Log {
        /// The vertex's digest.
        digest: String,
        /// The bytes.
        data: Vec<u8>,
    },
}

/// Options of one solve.
pub struct SolveOptions<'a> {
    /// Ignore cached results (they are still recorded).
    pub no_cache: bool,
    /// Where progress goes.
    pub progress: &'a (dyn Fn(Event) + Sync),
    /// The client's local directories.
    pub contexts: &'a dyn LocalContexts,
    /// The client's secrets and ssh agents.
    pub secrets: &'a dyn Secrets,
    /// Entitlements granted to this build (`network.host`, `security.insecure`).
    pub entitlements: &'a [String],
    /// This build's own cancellation (its client went away): nothing new starts and
    /// running steps are killed; the worker's own flag cancels every build.
    pub cancelled: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// The registry client acting for this build's client (its credentials); the
    /// worker's own when `None`.
    pub registry: Option<&'a RegistryClient>,
    /// Remote caches to import results from (`--cache-from`), in order.
    pub imports: &'a [Arc<dyn CacheImport>],
    /// Where this solve's cache records go, for a cache export (`--cache-to`).
    pub records: Option<&'a Mutex<Vec<SolvedRecord>>>,
    /// Whether the caller reads the result's content (an export does). When it does
    /// not, a result that a remote cache holds is only looked up, never fetched, as
    /// BuildKit leaves an imported result lazy under `--output type=cacheonly`.
    pub result_needed: bool,
}

/// One solve's state: its ops, options, and the outputs of the vertices visited.
struct Solve<'s, 'a> {
    ops: &'s [&'s kiln_llb::Vertex],
    /// Each op's name for progress and errors, by index.
    names: Vec<String>,
    options: &'s SolveOptions<'a>,
    fresh_caches: ops::exec::FreshCaches,
    visited: Mutex<Vec<Option<Arc<Outputs>>>>,
    /// Vertices whose progress was shown (cached or run).
    reported: Mutex<Vec<bool>>,
    /// Imports that failed (warned about once).
    failed_imports: Mutex<Vec<bool>>,
    /// Imports whose reading was shown.
    announced: Mutex<Vec<bool>>,
    /// How many more steps may run now (steps made on demand run outside the
    /// scheduler's threads).
    free_slots: kiln_solver::Slots,
}

/// An error of a vertex, with its name for the user; a write that found no space
/// left (ENOSPC, EDQUOT, wherever in the chain of causes) also names the state
/// directory, whose filesystem is what ran full.
fn vertex_error(name: &str, vertex: &kiln_llb::Vertex, error: Error, state: &Path) -> Error {
    let error = match error {
        Error::Vertex { .. } | Error::NoSpace { .. } => return error,
        error if no_space_left(&error) => Error::NoSpace {
            state: state.to_path_buf(),
            source: Box::new(error),
        },
        error => error,
    };
    Error::Vertex {
        name: name.to_owned(),
        digest: vertex.digest.to_string(),
        source: Box::new(error),
    }
}

/// Whether an error comes from a write that found no space: its message ends with the
/// OS's (the store, redb and fs-err each wrap the `io::Error` their own way).
fn no_space_left(error: &Error) -> bool {
    let message = kiln_oci::report::chain(error);
    message.contains("(os error 28)") || message.contains("(os error 122)")
}

/// Per by-key record of a vertex (its inputs linked by key), the content records its
/// content-keyed inputs were keyed by, so that a later build can key it without making
/// those inputs.
const CONTENT_LINKS_TABLE: &str = "content-links";

impl Worker {
    fn cached(&self, key: &str) -> Option<Vec<Ref>> {
        let bytes = self.db.get(CACHE_TABLE, key).ok().flatten()?;
        let refs: Vec<Ref> = serde_json::from_slice(&bytes).ok()?;
        // A record whose layers are gone (pruned, or a crash mid-write) is no record.
        refs.iter()
            .all(|r| {
                r.chain
                    .iter()
                    .all(|id| self.snapshots.layer_dir(*id).is_dir())
            })
            .then_some(refs)
    }

    /// Runs a definition and returns the result it asks for (`None` for an empty one).
    pub fn solve(
        &self,
        definition: &LoadedDefinition,
        options: &SolveOptions<'_>,
    ) -> Result<Option<Ref>, Error> {
        let Some((result_digest, result_index)) = definition.result()? else {
            return Ok(None);
        };
        let _reuse = usage::ReuseWriter(self);
        let ops: Vec<&kiln_llb::Vertex> = definition
            .vertices
            .iter()
            .filter(|v| v.op.op.is_some())
            .collect();
        let position: HashMap<String, usize> = ops
            .iter()
            .enumerate()
            .map(|(i, v)| (v.digest.to_string(), i))
            .collect();
        let graph: Vec<kiln_solver::Vertex> = ops
            .iter()
            .map(|v| kiln_solver::Vertex {
                inputs: v
                    .op
                    .inputs
                    .iter()
                    .filter_map(|i| position.get(&i.digest).copied())
                    .collect(),
            })
            .collect();
        let target = *position.get(&result_digest.to_string()).ok_or_else(|| {
            Error::Unsupported("the result names no op of the definition".to_owned())
        })?;
        let solve = Solve {
            names: names::vertex_names(&ops, &position),
            ops: &ops,
            options,
            fresh_caches: ops::exec::FreshCaches::default(),
            visited: Mutex::new(vec![None; ops.len()]),
            reported: Mutex::new(vec![false; ops.len()]),
            failed_imports: Mutex::new(vec![false; options.imports.len()]),
            announced: Mutex::new(vec![false; options.imports.len()]),
            free_slots: kiln_solver::Slots::new(self.config.parallelism),
        };
        let results = kiln_solver::solve(
            &graph,
            &[target],
            self.config.parallelism,
            |i, inputs: Vec<Arc<Outputs>>| {
                let vertex = ops[i];
                let resolved: Vec<(Arc<Outputs>, usize)> = vertex
                    .op
                    .inputs
                    .iter()
                    .zip(inputs)
                    .map(|(input, outputs)| (outputs, input.index as usize))
                    .collect();
                let outputs = self
                    .visit(&solve, i, resolved)
                    .map_err(|e| vertex_error(&solve.names[i], vertex, e, &self.config.root))?;
                let outputs = Arc::new(outputs);
                solve.visited.lock().unwrap_or_else(|e| e.into_inner())[i] =
                    Some(Arc::clone(&outputs));
                Ok::<_, Error>(outputs)
            },
        )
        .map_err(|failed| failed.error)?;
        let outputs = results[target]
            .clone()
            .ok_or_else(|| Error::Unsupported("the result was not solved".to_owned()))?;
        let refs = if options.result_needed {
            self.materialize(&solve, &outputs)?
        } else {
            self.locate(&solve, &outputs)?
        };
        // Steps skipped because a later step's result was reused are cached too.
        let visited = solve.visited.lock().unwrap_or_else(|e| e.into_inner());
        let reported = solve.reported.lock().unwrap_or_else(|e| e.into_inner());
        for (i, outputs) in visited.iter().enumerate() {
            if outputs.is_some() && !reported[i] {
                (options.progress)(Event::Cached {
                    digest: ops[i].digest.to_string(),
                    name: solve.names[i].clone(),
                });
            }
        }
        if let Some(records) = options.records {
            let mut records = records.lock().unwrap_or_else(|e| e.into_inner());
            for outputs in visited.iter().flatten() {
                records.extend(remote_cache::records(outputs));
            }
        }
        Ok(Some(
            refs.get(result_index as usize).cloned().unwrap_or_default(),
        ))
    }

    /// Notes that a vertex's progress was shown (cached or run).
    fn reported(solve: &Solve<'_, '_>, vertex: usize) {
        solve.reported.lock().unwrap_or_else(|e| e.into_inner())[vertex] = true;
    }

    /// A vertex with its inputs' outputs: its keys, and its result when the local cache
    /// has it or nothing can spare running it; with a remote cache a vertex is otherwise
    /// left to be made when a user needs it.
    fn visit(
        &self,
        solve: &Solve<'_, '_>,
        index: usize,
        inputs: Vec<(Arc<Outputs>, usize)>,
    ) -> Result<Outputs, Error> {
        use pb::op::Op;
        let vertex = solve.ops[index];
        let options = solve.options;
        // Before the cache: a step's result is not granted to a build that may not run it.
        if let Some(Op::Exec(exec)) = &vertex.op.op {
            ops::exec::check_entitlements(exec, options.entitlements)?;
        }
        self.check_cancelled(options)?;
        let local_source =
            matches!(&vertex.op.op, Some(Op::Source(s)) if s.identifier.starts_with("local://"));
        let (key, context_scan) = self.vertex_key(solve, vertex, &inputs)?;
        let ignore_cache =
            options.no_cache || vertex.metadata.as_ref().is_some_and(|m| m.ignore_cache);
        let vertex_key = key.output(0);
        if !ignore_cache {
            if let Some(refs) = self.cached(&vertex_key) {
                usage::note_reuse(self, &refs);
                Self::reported(solve, index);
                (options.progress)(Event::Cached {
                    digest: vertex.digest.to_string(),
                    name: solve.names[index].clone(),
                });
                return Ok(Outputs::made(index, key, refs, !local_source));
            }
        }
        if options.imports.is_empty() || local_source || ignore_cache {
            let resolved = self.materialize_inputs(solve, &inputs)?;
            let refs = self.execute(solve, index, &key, &resolved, context_scan)?;
            return Ok(Outputs::made(index, key, refs, !local_source));
        }
        // With an import, the remote cache is asked only when this vertex's content is
        // needed: a step whose user is answered (by either cache) is never fetched.
        let count = remote_cache::output_count(&vertex.op);
        Ok(Outputs::pending(index, key, count, inputs, !local_source))
    }

    /// The first remote cache holding every output's result.
    fn remote_lookup(
        &self,
        solve: &Solve<'_, '_>,
        keys: &[String],
    ) -> Option<(usize, Vec<ImportedResult>)> {
        for (i, import) in solve.options.imports.iter().enumerate() {
            // The first lookup waits for the cache to be read: shown as its own step,
            // as BuildKit shows it.
            let first = !std::mem::replace(
                &mut solve.announced.lock().unwrap_or_else(|e| e.into_inner())[i],
                true,
            );
            let step = format!("importing cache manifest from {}", import.name());
            let digest = format!("sha256:{}", sha256_hex(&[step.as_bytes()]));
            let started = Instant::now();
            if first {
                (solve.options.progress)(Event::Started {
                    digest: digest.clone(),
                    name: step,
                });
            }
            let found: Result<Option<Vec<ImportedResult>>, _> = keys
                .iter()
                .map(|key| import.lookup(key))
                .collect::<Result<Option<Vec<_>>, _>>();
            if first {
                (solve.options.progress)(Event::Done {
                    digest,
                    duration: started.elapsed(),
                });
            }
            match found {
                Ok(Some(results)) => return Some((i, results)),
                Ok(None) => {}
                Err(error) => {
                    let mut failed = solve
                        .failed_imports
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    if !std::mem::replace(&mut failed[i], true) {
                        self.warn(format!(
                            "importing cache from {} failed, building without it: {error}",
                            import.name()
                        ));
                    }
                }
            }
        }
        None
    }

    /// A vertex's result, made now if it is not yet: imported from the remote cache that
    /// holds it, else run on its inputs (made first).
    fn materialize(&self, solve: &Solve<'_, '_>, outputs: &Outputs) -> Result<Vec<Ref>, Error> {
        outputs.get_or_make(|| {
            let vertex = solve.ops[outputs.vertex];
            let inputs = outputs.pending.as_ref().ok_or_else(|| {
                Error::Unsupported("a vertex neither made nor pending".to_owned())
            })?;
            if let Some((import, results)) = self.remote_lookup(solve, &outputs.keys) {
                let name = solve.options.imports[import].name();
                Self::report_imported(solve, outputs.vertex, name);
                match self.import(solve, outputs, import, &results) {
                    Ok(refs) => return Ok(refs),
                    Err(error) => self.warn(format!(
                        "{}: the result in {name} cannot be used, running the step: {error}",
                        solve.names[outputs.vertex],
                    )),
                }
            }
            self.materialize_inputs(solve, inputs)
                .and_then(|inputs| self.execute(solve, outputs.vertex, &outputs.key, &inputs, None))
                .map_err(|e| {
                    vertex_error(&solve.names[outputs.vertex], vertex, e, &self.config.root)
                })
        })
    }

    /// Shows a vertex as cached, found in the remote cache `name`.
    fn report_imported(solve: &Solve<'_, '_>, vertex: usize, name: &str) {
        Self::reported(solve, vertex);
        let op = solve.ops[vertex];
        let digest = op.digest.to_string();
        (solve.options.progress)(Event::Log {
            digest: digest.clone(),
            data: format!("cache hit in {name}\n").into_bytes(),
        });
        (solve.options.progress)(Event::Cached {
            digest,
            name: solve.names[vertex].clone(),
        });
    }

    /// A result whose content nobody reads: as made when it is, else only looked up
    /// in the remote caches (refs without layers, nothing fetched), else made.
    fn locate(&self, solve: &Solve<'_, '_>, outputs: &Outputs) -> Result<Vec<Ref>, Error> {
        if !outputs.is_made() && outputs.pending.is_some() {
            if let Some((import, _)) = self.remote_lookup(solve, &outputs.keys) {
                let name = solve.options.imports[import].name();
                Self::report_imported(solve, outputs.vertex, name);
                return Ok((0..outputs.keys.len())
                    .map(|index| outputs.pick(index, &[]))
                    .collect());
            }
        }
        self.materialize(solve, outputs)
    }

    /// The refs of a vertex's inputs, made (side by side) where they are not yet.
    fn materialize_inputs(
        &self,
        solve: &Solve<'_, '_>,
        inputs: &[(Arc<Outputs>, usize)],
    ) -> Result<Vec<Ref>, Error> {
        let pick =
            |(outputs, index): &(Arc<Outputs>, usize), refs: Vec<Ref>| outputs.pick(*index, &refs);
        let pending = inputs.iter().filter(|(o, _)| !o.is_made()).count();
        if pending <= 1 {
            return inputs
                .iter()
                .map(|input| Ok(pick(input, self.materialize(solve, &input.0)?)))
                .collect();
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = inputs
                .iter()
                .map(|input| scope.spawn(move || self.materialize(solve, &input.0)))
                .collect();
            handles
                .into_iter()
                .zip(inputs)
                .map(|(handle, input)| {
                    let refs = handle.join().unwrap_or_else(|_| {
                        Err(Error::Unsupported("making an input panicked".to_owned()))
                    })?;
                    Ok(pick(input, refs))
                })
                .collect()
        })
    }

    /// A vertex's results imported from a remote cache: their layers fetched (verified)
    /// and unpacked, and recorded in the local cache.
    fn import(
        &self,
        solve: &Solve<'_, '_>,
        outputs: &Outputs,
        import: usize,
        results: &[ImportedResult],
    ) -> Result<Vec<Ref>, Error> {
        let cache = &solve.options.imports[import];
        let fetch = |layer: &kiln_oci::Descriptor, out: &mut dyn std::io::Write| {
            cache.fetch(layer, out).map_err(|e| {
                Error::Source(format!(
                    "fetching {} from {}: {e}",
                    layer.digest,
                    cache.name()
                ))
            })
        };
        let mut refs = Vec::with_capacity(results.len());
        for (index, result) in results.iter().enumerate() {
            let mut made = source::image::unpack_layers(self, &result.layers, &fetch)?;
            // The image made of it is as old as it was, as after the original build.
            if let (Some(created), Some(top)) = (result.created, made.chain.last()) {
                let _ = fsutil::set_times(&self.snapshots.layer_dir(*top), created, 0);
            }
            made.key = outputs.key_of(index);
            refs.push(made);
        }
        usage::record_made(
            self,
            &outputs.key.output(0),
            &refs,
            (usage::REGULAR, &solve.names[outputs.vertex]),
        )?;
        Ok(refs)
    }

    /// Fails when this build or every build was cancelled: nothing new starts.
    fn check_cancelled(&self, options: &SolveOptions<'_>) -> Result<(), Error> {
        let this_build_cancelled = options
            .cancelled
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed));
        if this_build_cancelled
            || self
                .executor
                .cancellation()
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(Error::Exec(kiln_exec::Error::Cancelled));
        }
        Ok(())
    }

    /// How a vertex is keyed. Sources compute their own content keys (image digest,
    /// context checksum; a context's walk is kept for its load); other ops are their
    /// cache map's description plus, per input, its key or the checksum of what the op
    /// selects from it (which makes that input first).
    fn vertex_key(
        &self,
        solve: &Solve<'_, '_>,
        vertex: &kiln_llb::Vertex,
        inputs: &[(Arc<Outputs>, usize)],
    ) -> Result<(VertexKey, Option<source::local::Scan>), Error> {
        use pb::op::Op;
        if let Some(Op::Source(source)) = &vertex.op.op {
            let (key, scan) =
                self.source_key(source, op_platform(&vertex.op).as_ref(), solve.options)?;
            let key = VertexKey::source(cache_key::digest_of(
                format!("buildkit.source.v0:{key}").as_bytes(),
            ));
            return Ok((key, scan));
        }
        let map = cache_map::of(&vertex.op, &self.config.platform)?;
        // Each input by its key, with the op's selector (BuildKit's fast key).
        let by_key: Vec<Link> = map
            .deps
            .iter()
            .zip(inputs)
            .map(|(dep, input)| Link {
                selector: dep.selector.clone(),
                key: input.0.key_of(input.1),
            })
            .collect();
        // An input not made yet (left for a remote cache) is not made for its checksum
        // when a cache knows it by its key: a record matched by its inputs' keys (here,
        // or in a remote cache, as BuildKit's fast key) says which content they had.
        let content_keyed: Vec<bool> = map.deps.iter().map(|dep| dep.content.is_some()).collect();
        let unmade_content_input = content_keyed
            .iter()
            .zip(inputs)
            .any(|(read_by_content, input)| *read_by_content && !input.0.is_made());
        let content_deps = content_keyed.contains(&true);
        let by_key_record = content_deps
            .then(|| cache_key::record_key(&cache_key::root_key(&map.digest, 0), &by_key));
        if let (true, Some(record)) = (unmade_content_input, &by_key_record) {
            if let Some(key) = self.known_content_links(solve, record).and_then(|known| {
                VertexKey::with_content(&map.digest, &content_keyed, &by_key, known)
            }) {
                self.remember_content_links(record, &key.content_links())?;
                return Ok((key, None));
            }
        }
        // An input read by content is keyed by its content's record alone: a rebuild
        // after an edit elsewhere in it hits. Its key link is exported beside it.
        let mut known = Vec::with_capacity(inputs.len());
        for (dep, input) in map.deps.iter().zip(inputs) {
            known.push(match &dep.content {
                None => None,
                Some(selectors) => {
                    let refs = self.materialize(solve, &input.0)?;
                    let input_ref = refs.get(input.1).cloned().unwrap_or_default();
                    Some(self.content_checksum(&input_ref, selectors)?)
                }
            });
        }
        if let Some(record) = &by_key_record {
            self.remember_content_links(record, &known)?;
        }
        let key = VertexKey::with_content(&map.digest, &content_keyed, &by_key, known).ok_or_else(
            || Error::Unsupported("a content-keyed input without its checksum".to_owned()),
        )?;
        Ok((key, None))
    }

    /// Per input of the vertex whose by-key record is `record`, the content record it
    /// was keyed by: as this store remembers it, else as a remote cache has it.
    fn known_content_links(
        &self,
        solve: &Solve<'_, '_>,
        record: &str,
    ) -> Option<Vec<Option<String>>> {
        if let Some(known) = self
            .db
            .get(CONTENT_LINKS_TABLE, record)
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        {
            return Some(known);
        }
        solve
            .options
            .imports
            .iter()
            .find_map(|import| import.content_links(record).ok().flatten())
    }

    /// Remembers which content records a vertex's inputs were keyed by (written only
    /// when new, so a rebuild writes nothing).
    fn remember_content_links(&self, record: &str, known: &[Option<String>]) -> Result<(), Error> {
        let bytes = serde_json::to_vec(known).unwrap_or_default();
        if self.db.get(CONTENT_LINKS_TABLE, record)?.as_deref() != Some(bytes.as_slice()) {
            self.db.put(CONTENT_LINKS_TABLE, record, &bytes)?;
        }
        Ok(())
    }

    /// Runs a vertex on its inputs' refs (unless another build made it meanwhile) and
    /// records its results in the local cache.
    fn execute(
        &self,
        solve: &Solve<'_, '_>,
        index: usize,
        key: &VertexKey,
        inputs: &[Ref],
        mut context_scan: Option<source::local::Scan>,
    ) -> Result<Vec<Ref>, Error> {
        use pb::op::Op;
        let vertex = solve.ops[index];
        let options = solve.options;
        self.check_cancelled(options)?;
        let digest = vertex.digest.to_string();
        let name = solve.names[index].clone();
        let ignore_cache =
            options.no_cache || vertex.metadata.as_ref().is_some_and(|m| m.ignore_cache);
        let vertex_key = key.output(0);
        let platform = op_platform(&vertex.op);
        // Builds running at once share a step: the later one waits for the first's
        // result and then finds it in the cache.
        let running = self.lock(&format!("vertex {vertex_key}"));
        let _running = running.lock().unwrap_or_else(|e| e.into_inner());
        Self::reported(solve, index);
        if !ignore_cache {
            if let Some(refs) = self.cached(&vertex_key) {
                usage::note_reuse(self, &refs);
                (options.progress)(Event::Cached { digest, name });
                return Ok(refs);
            }
        }
        let _slot = solve.free_slots.take();
        (options.progress)(Event::Started {
            digest: digest.clone(),
            name: name.clone(),
        });
        let started = Instant::now();
        let log = |data: &[u8]| {
            (options.progress)(Event::Log {
                digest: digest.clone(),
                data: data.to_vec(),
            })
        };
        let mut run = || -> Result<Vec<Ref>, Error> {
            Ok(match &vertex.op.op {
                Some(Op::Source(source)) => vec![self.run_source(
                    source,
                    platform.as_ref(),
                    options,
                    context_scan.take(),
                    &log,
                )?],
                Some(Op::File(file)) => ops::file::run(self, file, inputs)?,
                Some(Op::Exec(exec)) => ops::exec::run(
                    self,
                    &digest,
                    exec,
                    inputs,
                    options,
                    ignore_cache.then_some(&solve.fresh_caches),
                    platform.as_ref(),
                    &log,
                )?,
                Some(Op::Merge(merge)) => vec![ops::merge(merge, inputs)],
                Some(Op::Diff(diff)) => vec![ops::diff::run(self, diff, inputs)?],
                Some(Op::Build(_)) => {
                    return Err(Error::Unsupported(
                        "build ops are not supported yet".to_owned(),
                    ));
                }
                None => return Err(Error::Unsupported("an op without content".to_owned())),
            })
        };
        let mut refs = match run() {
            Ok(refs) => refs,
            Err(error) => {
                (options.progress)(Event::Failed {
                    digest: digest.clone(),
                    error: kiln_oci::report::chain(&error),
                    duration: started.elapsed(),
                });
                return Err(error);
            }
        };
        for (index, r) in refs.iter_mut().enumerate() {
            r.key = key.output(index);
        }
        let kind = match &vertex.op.op {
            Some(Op::Source(source)) if source.identifier.starts_with("local://") => {
                usage::SOURCE_LOCAL
            }
            _ => usage::REGULAR,
        };
        usage::record_made(self, &vertex_key, &refs, (kind, &name))?;
        (options.progress)(Event::Done {
            digest,
            duration: started.elapsed(),
        });
        Ok(refs)
    }
}
