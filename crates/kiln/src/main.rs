//! `kiln`: the command line. Parses arguments (`args`), then runs one command
//! (`commands`) on a `Box<dyn kiln_api::Builder>` that a driver (`driver`) opens: the
//! embedded engine, or a BuildKit-compatible daemon.
//!
//! Only `driver/embedded.rs` names `kiln_engine`; every other file reaches a builder
//! through `kiln_api::Builder`, so a daemon and the embedded engine behave alike.

mod args;
mod commands;
mod docker;
mod driver;
mod gotemplate;
mod metadata;
mod outputs;
mod progress;

use std::process::ExitCode;

use clap::Parser as _;

/// What the docker CLI asks a plugin before running it (`docker kiln …`).
const PLUGIN_METADATA: &str = r#"{"SchemaVersion":"0.1.0","Vendor":"kiln","Version":"0.1.0","ShortDescription":"Build with kiln (BuildKit-compatible builder)"}"#;

fn main() -> ExitCode {
    kiln_api::memory::use_one_malloc_arena();
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Installed as the docker CLI plugin `docker-kiln`: the CLI asks for metadata, then
    // runs `docker-kiln kiln ARGS…`.
    if argv
        .get(1)
        .is_some_and(|a| a == "docker-cli-plugin-metadata")
    {
        println!("{PLUGIN_METADATA}");
        return ExitCode::SUCCESS;
    }
    if argv.get(1).is_some_and(|a| a == "kiln") {
        argv.remove(1);
    }
    let cli = args::Cli::parse_from(argv);
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`kiln … | head`) is the reader's choice, not an error.
        Err(err)
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        // Already reported (build checks that fired): only the exit status is left.
        Err(err) if err.downcast_ref::<commands::Reported>().is_some() => {
            let status = err.downcast_ref::<commands::Reported>().map_or(1, |r| r.0);
            ExitCode::from(status)
        }
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line (`kiln_oci::report::chain`).
pub(crate) fn error_chain(err: &anyhow::Error) -> String {
    kiln_oci::report::chain(err.as_ref())
}
