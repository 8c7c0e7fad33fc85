//! Build-check warnings as buildx prints them after a build: one line each (`--check`
//! prints them in full: `commands::call`).

use kiln_api::build::CheckWarning;

/// After a build: ` N warnings found:` and one line per warning.
pub(crate) fn print_summary(checks: &[CheckWarning]) {
    if checks.is_empty() {
        return;
    }
    let plural = if checks.len() == 1 { "" } else { "s" };
    eprintln!("\n {} warning{plural} found:", checks.len());
    for check in checks {
        eprintln!(" - {}: {} (line {})", check.rule, check.message, check.line);
    }
}
