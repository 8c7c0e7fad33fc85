//! Parses a Dockerfile and prints BuildKit's AST dump, its warnings and directives.
//!
//! Usage: `cargo run -p kiln-dockerfile --example dump -- [Dockerfile]` (default `Dockerfile`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Dockerfile".to_owned());
    let source = match fs_err::read(&path) {
        Ok(source) => source,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    match kiln_dockerfile::parser::parse(&source) {
        Ok(dockerfile) => {
            println!("{}", dockerfile.dump());
            for warning in &dockerfile.warnings {
                eprintln!(
                    "warning: {path}:{}: {}",
                    warning.location.start.line, warning.short
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {path}: {err}");
            ExitCode::FAILURE
        }
    }
}
