//! `kiln`: the command line. Parses arguments (`args`), then runs one command
//! (`commands`): `build` and `debug dump-llb` so far.

mod args;
mod commands;
mod docker;
mod driver;
mod metadata;
mod outputs;
mod progress;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
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
        Err(err) if err.downcast_ref::<commands::Reported>().is_some() => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
