//! Entry point: parse the command line and hand over to a command.

mod agent;
mod cli;
mod commands;
mod events;
mod failpoint;
mod identity;
mod logging;
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
    // glibc gives each thread that allocates its own malloc arena (64 MiB reserved, pages
    // kept after free); the agent's threads mostly hand buffers to each other, so two
    // arenas keep resident memory near what is live instead of per-thread high-water marks.
    //
    // A fixed mmap threshold (which also fixes the trim threshold at 128 KiB): by default
    // glibc raises the mmap threshold to the size of each large block freed, and the trim
    // threshold to twice that, so after the first gzip-compressed export (zlib-rs allocates
    // a 372 KiB deflate state per stream) such blocks are carved from the arenas and the
    // freed space stays resident. Fixed, they are mapped and unmapped with each export:
    // peak resident memory 2 MiB lower, for an mmap/munmap pair per large block.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
    let cli = cli::Cli::parse();
    commands::dispatch(cli)
}
