//! What each command does, one module per command.

mod bake;
mod build;
mod dump_llb;

use crate::args::{Cli, Command, debug::DebugCommand};

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(args) => build::run(&args),
        Command::Bake(args) => bake::run(&args),
        Command::Debug(DebugCommand::DumpLlb(args)) => dump_llb::run(&args),
    }
}
