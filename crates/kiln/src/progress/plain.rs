//! BuildKit's plain progress: `#N [stage 1/2] RUN …`, `#N 0.123 output`, `#N DONE 0.1s`,
//! `#N CACHED`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use kiln_engine::Event;

/// Prints events as they come; safe to share between the solver's threads.
pub(crate) struct Plain {
    start: Instant,
    quiet: bool,
    state: Mutex<HashMap<String, usize>>,
}

impl Plain {
    pub(crate) fn new(quiet: bool) -> Self {
        Self {
            start: Instant::now(),
            quiet,
            state: Mutex::new(HashMap::new()),
        }
    }

    fn number(&self, digest: &str) -> usize {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let next = state.len() + 1;
        *state.entry(digest.to_owned()).or_insert(next)
    }

    pub(crate) fn event(&self, event: Event) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = match event {
            Event::Started { digest, name } => {
                let n = self.number(&digest);
                writeln!(err, "#{n} {name}")
            }
            Event::Cached { digest, name } => {
                let n = self.number(&digest);
                writeln!(err, "#{n} {name}\n#{n} CACHED")
            }
            Event::Done { digest, duration } => {
                let n = self.number(&digest);
                writeln!(err, "#{n} DONE {:.1}s", duration.as_secs_f64())
            }
            Event::Log { digest, data } => {
                let n = self.number(&digest);
                let elapsed = self.start.elapsed().as_secs_f64();
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
