//! Entry point: parse the command line and hand over to a command.

mod agent;
mod cli;
mod commands;
mod events;
mod failpoint;
mod identity;
mod logging;
mod memory;
mod notify;
mod pipeline;
mod platform;
mod preflight;
mod receiver;
mod registry;
mod self_metrics;
mod serve;
mod settings;

use clap::Parser;

fn main() -> std::process::ExitCode {
    memory::tune();
    let cli = cli::Cli::parse();
    commands::dispatch(cli)
}
