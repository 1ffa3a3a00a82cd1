//! Entry point: parse the command line and hand over to a command.

mod agent;
mod cli;
mod commands;
mod events;
mod identity;
mod logging;
mod pipeline;
mod self_metrics;
mod serve;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    commands::dispatch(cli)
}
