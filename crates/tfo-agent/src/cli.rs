//! Command-line interface. A bare `tfo-agent` runs the agent.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  tfo-agent config validate                      check the config the search finds
  tfo-agent -c configs/development.yaml run      run with a given config (Ctrl-C stops)
  tfo-agent collect                              collect once and print; nothing is sent
  tfo-agent collect --logs /var/log/syslog       the log records the agent would send for a file
  tfo-agent buffer status                        what waits in the disk buffer
  tfo-agent health                               is the running agent alive (exit 0/1)
  tfo-agent version --json

Exit codes: 0 success, 1 runtime failure, 2 configuration or usage error.";

#[derive(Debug, Parser)]
#[command(
    name = "tfo-agent",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TFO_GIT_COMMIT"), ")"),
    about = "TelemetryFlow Agent: host telemetry to OTLP, with a disk-safe pipeline",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// Config file (default: searched for, see --help)
    ///
    /// Without -c the first that exists of ./tfo-agent.yaml, ./configs/tfo-agent.yaml,
    /// /etc/tfo-agent/tfo-agent.yaml, ~/.tfo-agent/tfo-agent.yaml is used; if none does,
    /// the built-in defaults (configs/tfo-agent.yaml lists them).
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log level, overriding logging.level
    #[arg(long, global = true, value_name = "LEVEL",
          value_parser = PossibleValuesParser::new(["trace", "debug", "info", "warn", "error"]))]
    pub log_level: Option<String>,
    /// Log format, overriding logging.format
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: collect, buffer and export until stopped (the default; alias `start`)
    #[command(alias = "start")]
    Run,
    /// Check or print the configuration
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Collect once from every enabled collector and print the metrics (nothing is sent)
    Collect {
        /// Accepted for compatibility; collecting once is the only mode
        #[arg(long, hide = true)]
        once: bool,
        /// Instead of metrics, print the log records the log collector would send for these
        /// files (read from the beginning with the collectors.logs settings; no checkpoint
        /// is written)
        #[arg(long, value_name = "FILE", num_args = 1..)]
        logs: Vec<PathBuf>,
        /// Output format
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Inspect the disk buffer (read-only; works while the agent is stopped)
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Buffer {
        #[command(subcommand)]
        action: BufferAction,
    },
    /// Show this agent's id, last heartbeat and export, buffer and the platform's view
    Status {
        /// Output format: `table` (alias `text`) for people, `json` for scripts
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Ask the running agent's health listener (health.listen_address): exit 0 when
    /// /healthz (or, with --ready, /readyz) answers 200, else 1. For container HEALTHCHECKs.
    Health {
        /// Check readiness (/readyz: the first collection has run) instead of liveness
        #[arg(long)]
        ready: bool,
    },
    /// Print version, platform and the git commit it was built from
    Version {
        /// Print JSON (name, version, os, arch, git_commit)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Check the configuration; errors name the key path, file and line (exit 2)
    Validate,
    /// Print the effective configuration (defaults, env and expansion applied; secrets redacted)
    Show {
        /// Output format
        #[arg(long, value_enum, default_value_t = ShowFormat::Yaml)]
        format: ShowFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum BufferAction {
    /// Records, bytes, oldest record age and damage found, per signal
    Status {
        /// Buffer directory (default: buffer.path from the configuration)
        #[arg(long, value_name = "DIR")]
        path: Option<std::path::PathBuf>,
        /// Output format
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ShowFormat {
    Yaml,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    #[value(alias = "text")]
    Table,
    Json,
}
