//! Test support, a dev-dependency only: what every test binary of the workspace shares.
//!
//! - [`skip`]: a real-part test that cannot run here says why; under `CI=true` that is
//!   a failure (CI machines have every part), elsewhere it is counted in
//!   `$KILN_SKIP_LOG` so that `.ci/run` can print how many tests skipped.
//! - [`conformance_dir`]: the shared conformance data (`KILN_CONFORMANCE_DIR`, relative
//!   to the workspace root, by default `../shared/conformance`).
//! - [`report_suite`]: the `<suite>: N passed, M failed` line of a conformance runner.
//!
//! It depends on no kiln crate, so any crate's tests may use it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the tests run under CI (`CI=true`), where nothing may be skipped.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Marks the running test as skipped because `reason` (what is missing). Under CI this
/// panics: a skipped real-part test must not count as passed there. Elsewhere it prints
/// `skipped: REASON` and appends the test's name to `$KILN_SKIP_LOG`, if set.
pub fn skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    assert!(
        !under_ci(),
        "{test} cannot run: {reason} (CI=true: a real-part test must not skip)"
    );
    println!("skipped: {reason}");
    if let Some(log) = std::env::var_os("KILN_SKIP_LOG") {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{test}: {reason}");
        }
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    fs_err::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether `bin` is on `PATH`.
pub fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

/// The conformance data set `set` (`dockerfile`, `llb`, `bake`, `e2e`), or `None` after a
/// [`skip`] when it is absent.
pub fn conformance_dir(set: &str) -> Option<PathBuf> {
    let data = std::env::var_os("KILN_CONFORMANCE_DIR")
        .map_or_else(|| PathBuf::from("../shared/conformance"), PathBuf::from);
    let dir = workspace_root().join(data).join(set);
    if dir.is_dir() {
        Some(dir)
    } else {
        skip(&format!("conformance data {} not found", dir.display()));
        None
    }
}

/// Prints each failure and the suite line `<suite>: N passed, M failed`, then fails the
/// test if any case failed.
pub fn report_suite(suite: &str, passed: usize, failures: &[String]) {
    for failure in failures {
        println!("  FAIL {failure}");
    }
    println!("{suite}: {passed} passed, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{suite}: {} case(s) failed",
        failures.len()
    );
}
