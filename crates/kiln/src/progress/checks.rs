//! Build-check warnings as buildx prints them: a one-line-each summary after a build,
//! and the full form (rule, link, message, Dockerfile excerpt) for `--check`.

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

/// `--check`: the verdict, then each warning in full. Returns whether any fired.
pub(crate) fn print_report(checks: &[CheckWarning]) -> bool {
    match checks.len() {
        0 => println!("Check complete, no warnings found."),
        1 => println!("Check complete, 1 warning has been found!"),
        n => println!("Check complete, {n} warnings have been found!"),
    }
    for check in checks {
        println!("\nWARNING: {} - {}", check.rule, check.url);
        println!("{}", check.message);
        print!("{}", check.excerpt);
    }
    !checks.is_empty()
}
