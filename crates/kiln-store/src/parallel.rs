//! Transfers of blobs a few at a time (pulls, pushes, cache uploads).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `call` on every item, `width` at a time on scoped threads. The first error
/// stops the items not started yet and is returned; a thread that panicked counts as
/// the error `panicked` makes.
pub fn for_each_at_once<T: Sync, E: Send>(
    items: &[T],
    width: usize,
    call: impl Fn(&T) -> Result<(), E> + Sync,
    panicked: impl Fn() -> E,
) -> Result<(), E> {
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(None);
    let fail = |e: E| {
        next.store(items.len(), Ordering::SeqCst);
        failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(e);
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..width.min(items.len()))
            .map(|_| {
                scope.spawn(|| {
                    while let Some(item) = items.get(next.fetch_add(1, Ordering::SeqCst)) {
                        if let Err(e) = call(item) {
                            fail(e);
                            break;
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            if worker.join().is_err() {
                fail(panicked());
            }
        }
    });
    match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_runs_and_the_first_error_stops_the_rest() {
        let seen = Mutex::new(Vec::new());
        let all: Result<(), ()> = for_each_at_once(
            &[1, 2, 3, 4, 5],
            3,
            |n| {
                seen.lock().unwrap().push(*n);
                Ok(())
            },
            || (),
        );
        assert!(all.is_ok());
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, [1, 2, 3, 4, 5]);

        let started = AtomicUsize::new(0);
        let failed = for_each_at_once(
            &(0..100).collect::<Vec<_>>(),
            1,
            |n| {
                started.fetch_add(1, Ordering::SeqCst);
                if *n == 2 {
                    Err(format!("item {n}"))
                } else {
                    Ok(())
                }
            },
            || "panicked".to_owned(),
        );
        assert_eq!(failed, Err("item 2".to_owned()));
        assert_eq!(started.load(Ordering::SeqCst), 3);
    }
}
