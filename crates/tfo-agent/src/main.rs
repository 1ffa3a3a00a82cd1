//! Entry point: parse the command line and hand over to a command.

mod agent;
mod cli;
mod commands;
mod events;
mod failpoint;
mod identity;
mod logging;
mod pipeline;
mod platform;
mod preflight;
mod registry;
mod self_metrics;
mod serve;
mod settings;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // glibc gives each thread that allocates its own malloc arena (64 MiB reserved, pages
    // kept after free); the agent's threads mostly hand buffers to each other, so two
    // arenas keep resident memory near what is live instead of per-thread high-water marks.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let cli = cli::Cli::parse();
    commands::dispatch(cli)
}
