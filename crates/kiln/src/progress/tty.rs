//! BuildKit's live terminal view: a header with the elapsed time and step count, one
//! line per step with its timer, the last lines of output under running steps, redrawn
//! in place several times a second; failed steps' output repeated at the end.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kiln_api::build::Event;

/// Output lines kept under a running step.
const TAIL: usize = 6;
/// Output lines repeated for a failed step.
const ERROR_TAIL: usize = 10;

#[derive(Debug)]
enum Status {
    Running,
    Cached,
    Done(Duration),
    Failed(Duration),
}

#[derive(Debug)]
struct Step {
    name: String,
    started: Instant,
    status: Status,
    /// Last complete output lines, with the seconds since the step started.
    tail: VecDeque<(f64, String)>,
    /// An output line not yet ended by a newline.
    partial: String,
}

#[derive(Debug, Default)]
struct View {
    steps: Vec<Step>,
    by_digest: HashMap<String, usize>,
    /// Lines drawn last time (the cursor goes back up over them).
    drawn: usize,
}

/// The live view; `finish` draws the last frame.
pub(crate) struct Tty {
    start: Instant,
    view: Arc<Mutex<View>>,
    stop: Arc<AtomicBool>,
    painter: Mutex<Option<JoinHandle<()>>>,
}

/// The terminal's width and height (80×24 when unknown).
fn terminal_size() -> (usize, usize) {
    rustix::termios::tcgetwinsize(std::io::stderr())
        .ok()
        .filter(|w| w.ws_col > 0 && w.ws_row > 0)
        .map_or((80, 24), |w| (usize::from(w.ws_col), usize::from(w.ws_row)))
}

/// `text` cut to `width` characters.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    text.chars()
        .take(width.saturating_sub(1))
        .collect::<String>()
        + "…"
}

impl View {
    fn step(&mut self, digest: &str, name: Option<&str>) -> &mut Step {
        let index = match self.by_digest.get(digest) {
            Some(&i) => i,
            None => {
                self.steps.push(Step {
                    name: name.unwrap_or(digest).to_owned(),
                    started: Instant::now(),
                    status: Status::Running,
                    tail: VecDeque::new(),
                    partial: String::new(),
                });
                self.by_digest
                    .insert(digest.to_owned(), self.steps.len() - 1);
                self.steps.len() - 1
            }
        };
        &mut self.steps[index]
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Started { digest, name } => {
                let step = self.step(&digest, Some(&name));
                step.started = Instant::now();
                step.status = Status::Running;
            }
            Event::Cached { digest, name } => {
                self.step(&digest, Some(&name)).status = Status::Cached
            }
            Event::Done { digest, duration } => {
                self.step(&digest, None).status = Status::Done(duration);
            }
            Event::Failed {
                digest, duration, ..
            } => self.step(&digest, None).status = Status::Failed(duration),
            Event::Log { digest, data } => {
                let step = self.step(&digest, None);
                let at = step.started.elapsed().as_secs_f64();
                step.partial.push_str(&String::from_utf8_lossy(&data));
                while let Some(end) = step.partial.find('\n') {
                    let line: String = step.partial.drain(..=end).collect();
                    step.tail.push_back((at, line.trim_end().to_owned()));
                    if step.tail.len() > ERROR_TAIL {
                        step.tail.pop_front();
                    }
                }
            }
        }
    }

    /// The frame's lines.
    fn render(
        &self,
        elapsed: Duration,
        width: usize,
        height: usize,
        finished: bool,
    ) -> Vec<String> {
        let complete = self
            .steps
            .iter()
            .filter(|s| !matches!(s.status, Status::Running))
            .count();
        let mut lines = vec![format!(
            "[+] Building {:.1}s ({complete}/{}){}",
            elapsed.as_secs_f64(),
            self.steps.len(),
            if finished { " FINISHED" } else { "" }
        )];
        let mut body = Vec::new();
        for step in &self.steps {
            let (prefix, seconds) = match step.status {
                Status::Running => ("", step.started.elapsed()),
                Status::Cached => ("CACHED ", Duration::ZERO),
                Status::Done(d) => ("", d),
                Status::Failed(d) => ("ERROR ", d),
            };
            let timer = format!("{:.1}s", seconds.as_secs_f64());
            let text = fit(
                &format!(" => {prefix}{}", step.name),
                width.saturating_sub(timer.len() + 1),
            );
            let pad = width.saturating_sub(text.chars().count() + timer.len());
            body.push(format!("{text}{}{timer}", " ".repeat(pad)));
            if matches!(step.status, Status::Running) {
                let skip = step.tail.len().saturating_sub(TAIL);
                for (_, line) in step.tail.iter().skip(skip) {
                    body.push(fit(&format!(" => => # {line}"), width));
                }
            }
        }
        // Keep the newest lines when the terminal is too short for all.
        let room = height.saturating_sub(2).max(1);
        let skip = body.len().saturating_sub(room);
        lines.extend(body.into_iter().skip(skip));
        lines
    }
}

impl Tty {
    pub(crate) fn start() -> Self {
        let tty = Self {
            start: Instant::now(),
            view: Arc::new(Mutex::new(View::default())),
            stop: Arc::new(AtomicBool::new(false)),
            painter: Mutex::new(None),
        };
        let (view, stop, start) = (tty.view.clone(), tty.stop.clone(), tty.start);
        let painter = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                draw(&view, start.elapsed(), false);
                std::thread::sleep(Duration::from_millis(120));
            }
        });
        *tty.painter.lock().unwrap_or_else(|e| e.into_inner()) = Some(painter);
        tty
    }

    pub(crate) fn event(&self, event: Event) {
        self.view
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .apply(event);
    }

    /// Stops redrawing, draws the last frame and repeats failed steps' output.
    pub(crate) fn finish(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(painter) = self
            .painter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = painter.join();
        }
        draw(&self.view, self.start.elapsed(), true);
        let view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        for step in view
            .steps
            .iter()
            .filter(|s| matches!(s.status, Status::Failed(_)))
        {
            let _ = writeln!(err, "------\n > {}:", step.name);
            for (at, line) in &step.tail {
                let _ = writeln!(err, "{at:.3} {line}");
            }
            let _ = writeln!(err, "------");
        }
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Redraws the frame over the previous one.
fn draw(view: &Mutex<View>, elapsed: Duration, finished: bool) {
    let mut view = view.lock().unwrap_or_else(|e| e.into_inner());
    let (width, height) = terminal_size();
    let lines = view.render(elapsed, width, height, finished);
    let mut frame = String::new();
    if view.drawn > 0 {
        frame.push_str(&format!("\x1b[{}A", view.drawn));
    }
    for line in &lines {
        frame.push_str("\x1b[2K");
        frame.push_str(line);
        frame.push('\n');
    }
    // Clear what the previous, longer frame left below.
    if view.drawn > lines.len() {
        frame.push_str("\x1b[J");
    }
    view.drawn = lines.len();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(frame.as_bytes());
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_shows_steps_timers_and_output_tails() {
        let mut view = View::default();
        view.apply(Event::Cached {
            digest: "a".into(),
            name: "[1/3] FROM base".into(),
        });
        view.apply(Event::Started {
            digest: "b".into(),
            name: "[2/3] RUN make".into(),
        });
        for i in 0..8 {
            view.apply(Event::Log {
                digest: "b".into(),
                data: format!("line {i}\n").into_bytes(),
            });
        }
        let lines = view.render(Duration::from_millis(1500), 60, 40, false);
        assert_eq!(lines[0], "[+] Building 1.5s (1/2)");
        assert!(lines[1].starts_with(" => CACHED [1/3] FROM base"));
        assert!(lines[1].ends_with("0.0s") && lines[1].chars().count() == 60);
        assert!(lines[2].starts_with(" => [2/3] RUN make"));
        assert_eq!(lines[3], " => => # line 2");
        assert_eq!(lines.last().unwrap(), " => => # line 7");

        view.apply(Event::Done {
            digest: "b".into(),
            duration: Duration::from_millis(2300),
        });
        let lines = view.render(Duration::from_secs(3), 60, 40, true);
        assert_eq!(lines[0], "[+] Building 3.0s (2/2) FINISHED");
        assert_eq!(lines.len(), 3);
        assert!(lines[2].ends_with("2.3s"));
        // A short terminal keeps the newest lines.
        assert_eq!(view.render(Duration::ZERO, 60, 3, true).len(), 2);
    }
}
