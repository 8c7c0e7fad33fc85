//! The DAG runner: each vertex once, after its inputs, independent ones in parallel up
//! to a bound, the first failure stopping the rest; and [`Slots`], the same bound for
//! work started outside the runner's threads.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

/// A vertex: the indices of the vertices it reads.
#[derive(Debug, Clone, Default)]
pub struct Vertex {
    /// Indices into the graph of this vertex's inputs (each must come earlier or later,
    /// but the graph must be acyclic).
    pub inputs: Vec<usize>,
}

/// A vertex that failed, with its error.
#[derive(Debug)]
pub struct Failed<E> {
    /// Which vertex.
    pub vertex: usize,
    /// Why.
    pub error: E,
}

struct State<T, E> {
    results: Vec<Option<T>>,
    pending_inputs: Vec<usize>,
    ready: VecDeque<usize>,
    running: usize,
    done: usize,
    failure: Option<Failed<E>>,
}

/// Runs every vertex needed for `targets`, inputs first, with at most `parallelism`
/// running at once. `run(i, inputs)` computes vertex `i` from its inputs' results (in
/// `Vertex::inputs` order). Returns all results (`None` for vertices not needed), or
/// the first failure; vertices not started when something fails are never started.
pub fn solve<T, E, F>(
    graph: &[Vertex],
    targets: &[usize],
    parallelism: usize,
    run: F,
) -> Result<Vec<Option<T>>, Failed<E>>
where
    T: Clone + Send,
    E: Send,
    F: Fn(usize, Vec<T>) -> Result<T, E> + Sync,
{
    // Only what the targets need.
    let mut needed = vec![false; graph.len()];
    let mut stack: Vec<usize> = targets.to_vec();
    while let Some(v) = stack.pop() {
        if !std::mem::replace(&mut needed[v], true) {
            stack.extend(graph[v].inputs.iter().copied());
        }
    }
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); graph.len()];
    let mut pending_inputs = vec![0; graph.len()];
    for (v, vertex) in graph.iter().enumerate().filter(|(v, _)| needed[*v]) {
        let mut distinct = vertex.inputs.clone();
        distinct.sort_unstable();
        distinct.dedup();
        pending_inputs[v] = distinct.len();
        for input in distinct {
            users[input].push(v);
        }
    }
    let total = needed.iter().filter(|n| **n).count();
    let ready: VecDeque<usize> = (0..graph.len())
        .filter(|v| needed[*v] && pending_inputs[*v] == 0)
        .collect();
    let state = Mutex::new(State {
        results: (0..graph.len()).map(|_| None).collect(),
        pending_inputs,
        ready,
        running: 0,
        done: 0,
        failure: None,
    });
    let wake = Condvar::new();
    let workers = parallelism.clamp(1, total.max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let (vertex, inputs) = {
                        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                        loop {
                            if s.failure.is_some() || s.done == total {
                                wake.notify_all();
                                return;
                            }
                            if let Some(v) = s.ready.pop_front() {
                                let inputs: Vec<T> = graph[v]
                                    .inputs
                                    .iter()
                                    .map(|i| s.results[*i].clone().expect("inputs run first"))
                                    .collect();
                                s.running += 1;
                                break (v, inputs);
                            }
                            s = wake.wait(s).unwrap_or_else(|e| e.into_inner());
                        }
                    };
                    let outcome = run(vertex, inputs);
                    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                    s.running -= 1;
                    match outcome {
                        Ok(result) => {
                            s.results[vertex] = Some(result);
                            s.done += 1;
                            for &user in &users[vertex] {
                                s.pending_inputs[user] -= 1;
                                if s.pending_inputs[user] == 0 {
                                    s.ready.push_back(user);
                                }
                            }
                        }
                        Err(error) => {
                            if s.failure.is_none() {
                                s.failure = Some(Failed { vertex, error });
                            }
                        }
                    }
                    wake.notify_all();
                }
            });
        }
    });
    let state = state.into_inner().unwrap_or_else(|e| e.into_inner());
    match state.failure {
        Some(failure) => Err(failure),
        None => Ok(state.results),
    }
}

/// How many more steps may run now: steps made on demand (a lazily made input) run
/// outside [`solve`]'s bounded threads, so they take a slot here.
pub struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A slot taken from [`Slots`], given back when dropped.
pub struct Slot<'a>(&'a Slots);

impl Slots {
    /// `count` slots (at least one).
    pub fn new(count: usize) -> Self {
        Self {
            free: Mutex::new(count.max(1)),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free slot and takes it.
    pub fn take(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn v(inputs: &[usize]) -> Vertex {
        Vertex {
            inputs: inputs.to_vec(),
        }
    }

    #[test]
    fn runs_inputs_first_and_only_what_is_needed() {
        // 0 -> 1 -> 3, 2 -> 3, 4 unused
        let graph = [v(&[]), v(&[0]), v(&[]), v(&[1, 2]), v(&[])];
        let calls = AtomicUsize::new(0);
        let results = solve(&graph, &[3], 4, |i, inputs: Vec<u64>| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(inputs.iter().sum::<u64>() + i as u64)
        })
        .unwrap();
        assert_eq!(results[3], Some(1 + 2 + 3));
        assert_eq!(results[4], None);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn independent_vertices_run_in_parallel() {
        // Both inputs wait for each other: this only finishes if they run side by side.
        let graph = [v(&[]), v(&[]), v(&[0, 1])];
        let barrier = std::sync::Barrier::new(2);
        solve(&graph, &[2], 2, |i, _: Vec<()>| {
            if i < 2 {
                barrier.wait();
            }
            Ok::<_, ()>(())
        })
        .unwrap();
    }

    #[test]
    fn a_failure_stops_the_rest() {
        let graph = [v(&[]), v(&[0]), v(&[1])];
        let calls = AtomicUsize::new(0);
        let err = solve(&graph, &[2], 1, |i, _: Vec<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            if i == 1 { Err("boom") } else { Ok(()) }
        })
        .unwrap_err();
        assert_eq!((err.vertex, err.error), (1, "boom"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn parallelism_is_bounded() {
        let graph: Vec<Vertex> = (0..8).map(|_| v(&[])).collect();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let targets: Vec<usize> = (0..8).collect();
        solve(&graph, &targets, 3, |_, _: Vec<()>| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, ()>(())
        })
        .unwrap();
        assert!(peak.load(Ordering::SeqCst) <= 3);
    }

    #[test]
    fn a_slot_is_given_back_when_dropped() {
        let slots = Slots::new(1);
        let first = slots.take();
        let waited = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _second = slots.take();
                waited.store(1, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(waited.load(Ordering::SeqCst), 0, "the only slot is taken");
            drop(first);
        });
        assert_eq!(waited.load(Ordering::SeqCst), 1);
    }
}
