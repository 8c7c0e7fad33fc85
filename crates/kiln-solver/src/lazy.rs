//! A solve's results as its vertices' users see them: every output's key at once, and
//! its content only once made.
//!
//! With a remote cache to import from, a vertex the local cache cannot answer is not
//! made when visited: its keys are passed on to its users ([`Outputs::pending`]), and it
//! is made (imported from the first remote cache holding it, else run) only when a user
//! needs its content, or when it is the result. So a step whose user hits a cache is
//! neither run, fetched nor looked up.

use std::sync::{Arc, Mutex};

use crate::keys::VertexKey;

/// The result of one output as the worker makes it.
pub trait Output: Clone + Send + Sync {
    /// Its key.
    fn key(&self) -> &str;
    /// A result known by its key alone, without content (one a remote cache holds and
    /// nobody fetched).
    fn unmade(key: String) -> Self;
}

/// The outputs of one vertex: the key of each, and their results once made.
pub struct Outputs<R> {
    /// The vertex (its index in the solve).
    pub vertex: usize,
    /// How it is keyed.
    pub key: VertexKey,
    /// Each output's key.
    pub keys: Vec<String>,
    made: Mutex<Option<Vec<R>>>,
    /// What making it needs when it is not made yet: its inputs (each with the output
    /// it reads).
    pub pending: Option<Vec<(Arc<Outputs<R>>, usize)>>,
    /// Whether its records may be exported (a result keyed by what only this store
    /// knows, a local context, is not).
    pub exportable: bool,
}

impl<R: Output> Outputs<R> {
    /// Outputs made now (run, or found in the local cache).
    pub fn made(vertex: usize, key: VertexKey, results: Vec<R>, exportable: bool) -> Self {
        Self {
            vertex,
            keys: results.iter().map(|r| r.key().to_owned()).collect(),
            key,
            made: Mutex::new(Some(results)),
            pending: None,
            exportable,
        }
    }

    /// `count` outputs left to be made from `inputs` when a user needs them.
    pub fn pending(
        vertex: usize,
        key: VertexKey,
        count: usize,
        inputs: Vec<(Arc<Outputs<R>>, usize)>,
        exportable: bool,
    ) -> Self {
        Self {
            vertex,
            keys: (0..count).map(|i| key.output(i)).collect(),
            key,
            made: Mutex::new(None),
            pending: Some(inputs),
            exportable,
        }
    }

    /// The key of output `index` (known whether or not it is made).
    pub fn key_of(&self, index: usize) -> String {
        self.keys
            .get(index)
            .cloned()
            .unwrap_or_else(|| self.key.output(index))
    }

    /// The results, when made.
    pub fn results(&self) -> Option<Vec<R>> {
        self.slot().clone()
    }

    /// Whether the results are made.
    pub fn is_made(&self) -> bool {
        self.slot().is_some()
    }

    /// Output `index` of `results` (these outputs' results), or that output known by
    /// its key alone when `results` lacks it.
    pub fn pick(&self, index: usize, results: &[R]) -> R {
        results
            .get(index)
            .cloned()
            .unwrap_or_else(|| R::unmade(self.key_of(index)))
    }

    /// The results, made by `make` unless they are already; users asking at once wait
    /// for one `make`.
    pub fn get_or_make<E>(&self, make: impl FnOnce() -> Result<Vec<R>, E>) -> Result<Vec<R>, E> {
        let mut made = self.slot();
        if let Some(results) = &*made {
            return Ok(results.clone());
        }
        let results = make()?;
        *made = Some(results.clone());
        Ok(results)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Vec<R>>> {
        self.made.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Made(String);

    impl Output for Made {
        fn key(&self) -> &str {
            &self.0
        }
        fn unmade(key: String) -> Self {
            Made(format!("unmade {key}"))
        }
    }

    fn key() -> VertexKey {
        VertexKey::source("sha256:source".to_owned())
    }

    #[test]
    fn pending_outputs_are_made_once_by_their_first_user() {
        let outputs: Outputs<Made> = Outputs::pending(0, key(), 2, Vec::new(), true);
        assert_eq!(outputs.keys, [key().output(0), key().output(1)]);
        assert!(!outputs.is_made());
        let makes = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    let made = outputs
                        .get_or_make(|| {
                            makes.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            Ok::<_, ()>(vec![Made("a".into()), Made("b".into())])
                        })
                        .unwrap();
                    assert_eq!(made.len(), 2);
                });
            }
        });
        assert_eq!(makes.load(Ordering::SeqCst), 1);
        assert!(outputs.is_made());
    }

    #[test]
    fn a_failed_make_leaves_them_pending() {
        let outputs: Outputs<Made> = Outputs::pending(0, key(), 1, Vec::new(), true);
        assert_eq!(outputs.get_or_make(|| Err("cut")), Err("cut"));
        assert!(!outputs.is_made());
    }

    #[test]
    fn a_missing_output_is_known_by_its_key() {
        let outputs = Outputs::made(0, key(), vec![Made("k0".into())], true);
        assert_eq!(outputs.keys, ["k0"]);
        let results = outputs.results().unwrap();
        assert_eq!(outputs.pick(0, &results), Made("k0".into()));
        assert_eq!(
            outputs.pick(1, &results),
            Made(format!("unmade {}", key().output(1)))
        );
    }
}
