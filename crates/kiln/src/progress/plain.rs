//! BuildKit's plain progress: `#N [stage 1/2] RUN …`, `#N 0.123 output` (seconds since
//! the step started), `#N DONE 0.1s`, `#N CACHED`, `#N ERROR: …`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use kiln_api::build::Event;

/// Prints events as they come; safe to share between the solver's threads.
#[derive(Default)]
pub(crate) struct Plain {
    /// Each vertex's number and start.
    steps: Mutex<HashMap<String, (usize, Instant)>>,
}

impl Plain {
    fn step(&self, digest: &str) -> (usize, Instant) {
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        let next = steps.len() + 1;
        *steps
            .entry(digest.to_owned())
            .or_insert((next, Instant::now()))
    }

    pub(crate) fn event(&self, event: Event) {
        let mut err = std::io::stderr().lock();
        let _ = match event {
            Event::Started { digest, name } => {
                let (n, _) = self.step(&digest);
                writeln!(err, "#{n} {name}")
            }
            Event::Cached { digest, name } => {
                let (n, _) = self.step(&digest);
                writeln!(err, "#{n} {name}\n#{n} CACHED")
            }
            Event::Done { digest, duration } => {
                let (n, _) = self.step(&digest);
                writeln!(err, "#{n} DONE {:.1}s", duration.as_secs_f64())
            }
            Event::Failed { digest, error, .. } => {
                let (n, _) = self.step(&digest);
                writeln!(err, "#{n} ERROR: {error}")
            }
            Event::Log { digest, data } => {
                let (n, started) = self.step(&digest);
                let elapsed = started.elapsed().as_secs_f64();
                let text = String::from_utf8_lossy(&data);
                let mut result = Ok(());
                for line in text.lines() {
                    result = writeln!(err, "#{n} {elapsed:.3} {line}");
                }
                result
            }
        };
    }
}
