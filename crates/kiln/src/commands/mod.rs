//! What each command does, one module per command.

mod bake;
mod bake_list;
mod build;
mod builders;
mod cache;
mod call;
mod dump_llb;
mod history;
mod imagetools;

use crate::args::history::HistoryCommand;
use crate::args::imagetools::ImagetoolsCommand;
use crate::args::{Cli, Command, debug::DebugCommand};

/// A failure already reported to the user (e.g. `--check` found warnings): the process
/// only exits with this status (non-zero).
#[derive(Debug)]
pub(crate) struct Reported(pub(crate) u8);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reported")
    }
}

impl std::error::Error for Reported {}

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(path) = cli.config {
        crate::driver::embedded::use_config_file(path);
    }
    match cli.command {
        Command::Build(args) => build::run(&args),
        Command::Bake(args) => bake::run(&args),
        Command::Du(args) => cache::du(&args),
        Command::History(HistoryCommand::Ls(args)) => history::ls(&args),
        Command::Prune(args) => cache::prune(&args),
        Command::Ls(args) => builders::ls(&args),
        Command::Inspect(args) => builders::inspect(&args),
        Command::Debug(DebugCommand::DumpLlb(args)) => dump_llb::run(&args),
        Command::Debug(DebugCommand::BuildLlb(args)) => dump_llb::build(&args),
        Command::Imagetools(ImagetoolsCommand::Create(args)) => imagetools::create(&args),
        Command::Imagetools(ImagetoolsCommand::Inspect(args)) => imagetools::inspect(&args),
    }
}
