//! Structured logging to stderr, text or JSON. Secrets never reach a log line because
//! config secrets are a redacting type and exporter headers are never logged.

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Transport crates whose info and debug events are per-connection noise: they log at
/// warn at most, whatever the agent's level.
const QUIET: [&str; 7] = [
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "rustls",
    "reqwest",
];

/// `level` is one of trace, debug, info, warn, error (clap and config validation check it);
/// anything else falls back to info.
pub fn init(level: &str, json: bool) {
    let level = level.parse::<LevelFilter>().unwrap_or(LevelFilter::INFO);
    // A plain target-prefix filter: the agent only ever needs "level, with these crates
    // quieter", which does not need EnvFilter's regex-backed span and field matching.
    let filter = Targets::new()
        .with_default(level)
        .with_targets(QUIET.map(|t| (t, level.min(LevelFilter::WARN))));
    // The builder's own level filter (info unless set) applies on top of `filter`.
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(colour())
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .finish()
            .with(filter)
            .try_init()
    } else {
        builder.finish().with(filter).try_init()
    };
}

/// Colour (ANSI escapes) in text logs only when stderr is a terminal and `NO_COLOR` is not
/// set (https://no-color.org: present and not empty): a file, a pipe or journald gets
/// plain text.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
