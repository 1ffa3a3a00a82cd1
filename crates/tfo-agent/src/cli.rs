//! Command-line interface. A bare `tfo-agent` runs the agent.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tfo-agent",
    version,
    about = "TelemetryFlow Agent: host telemetry to OTLP, with a disk-safe pipeline"
)]
pub struct Cli {
    /// Config file (default: ./tfo-agent.yaml, ./configs/tfo-agent.yaml,
    /// /etc/tfo-agent/tfo-agent.yaml, ~/.tfo-agent/tfo-agent.yaml, else built-in defaults)
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log level, overriding logging.level: trace, debug, info, warn, error
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format, overriding logging.format
    #[arg(long, global = true, value_enum)]
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
    /// Run the agent (the default)
    #[command(alias = "start")]
    Run,
    /// Inspect the configuration
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Collect from every enabled collector once and print the result (nothing is exported)
    Collect {
        /// Collect once and exit (the only mode)
        #[arg(long, required = true)]
        once: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Inspect the disk buffer (works while the agent is stopped; changes nothing)
    Buffer {
        #[command(subcommand)]
        action: BufferAction,
    },
    /// Local state (agent id, last heartbeat, last export, buffer) and the platform's view
    Status {
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Print the version
    Version {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Check the configuration and report errors with key path and line
    Validate,
    /// Print the effective configuration (defaults, env and expansion applied; secrets redacted)
    Show {
        #[arg(long, value_enum, default_value_t = ShowFormat::Yaml)]
        format: ShowFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum BufferAction {
    /// Records, bytes, oldest record age and damage found, per signal
    Status {
        /// Buffer directory (default: buffer.path from the configuration)
        #[arg(long)]
        path: Option<std::path::PathBuf>,
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
    Table,
    Json,
}
