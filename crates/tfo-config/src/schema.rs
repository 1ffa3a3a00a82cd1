//! A flat description of every configuration key: its dotted path and kind.
//!
//! Used to tell the user what is allowed in error messages (valid keys of a section, the type
//! or values a key takes). Tests check that this table, the `Config` types, the example
//! `configs/tfo-agent.yaml` and `docs/configuration.md` all list the same keys.
//! [`DURATION_RANGES`] gives the bounds of every duration key.

use std::time::Duration;

/// The kind of value a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Section,
    Bool,
    String,
    OptString,
    Secret,
    Path,
    OptPath,
    Duration,
    U32,
    U64,
    Usize,
    StringList,
    StringMap,
    Enum(&'static [&'static str]),
}

impl Kind {
    /// Human description of what the key accepts.
    pub fn allowed(self) -> String {
        match self {
            Kind::Section => "a mapping of keys".to_string(),
            Kind::Bool => "true, false".to_string(),
            Kind::String | Kind::Secret => "a string".to_string(),
            Kind::OptString => "a string, or empty/null for unset".to_string(),
            Kind::Path => "a file system path".to_string(),
            Kind::OptPath => "a file system path, or null for unset".to_string(),
            Kind::Duration => crate::duration::DURATION_ALLOWED.to_string(),
            Kind::U32 => format!("a whole number from 0 to {}", u32::MAX),
            Kind::U64 | Kind::Usize => "a whole number (0 or more)".to_string(),
            Kind::StringList => "a list of strings".to_string(),
            Kind::StringMap => "a mapping of string keys to string values".to_string(),
            Kind::Enum(values) => values.join(", "),
        }
    }
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub path: &'static str,
    pub kind: Kind,
}

const fn k(path: &'static str, kind: Kind) -> Key {
    Key { path, kind }
}

pub const PROTOCOLS: &[&str] = &["grpc", "http"];
pub const COMPRESSIONS: &[&str] = &["gzip", "none"];
pub const ENDPOINT_VERSIONS: &[&str] = &["v1", "v2"];
pub const LOG_FORMATS: &[&str] = &["text", "json"];
pub const FSYNC_MODES: &[&str] = &["always", "interval", "never"];
pub const WHEN_FULL: &[&str] = &["auto", "drop_oldest", "block"];
pub const PROCESS_TOP_BY: &[&str] = &["cpu", "memory"];
pub const PROCESS_SOURCES: &[&str] = &["auto", "procfs"];
pub const LOG_START_AT: &[&str] = &["end", "beginning"];
pub const LOG_ENCODINGS: &[&str] = &["utf-8"];
pub const LOG_FILE_FORMATS: &[&str] = &["auto", "raw", "json", "cri", "docker"];

/// Every key, sections before their children, in declaration order.
pub const KEYS: &[Key] = &[
    k("telemetryflow", Kind::Section),
    k("telemetryflow.api_key_id", Kind::OptString),
    k("telemetryflow.api_key_secret", Kind::Secret),
    k("telemetryflow.endpoint", Kind::String),
    k("telemetryflow.protocol", Kind::Enum(PROTOCOLS)),
    k("telemetryflow.timeout", Kind::Duration),
    k("telemetryflow.tls", Kind::Section),
    k("telemetryflow.tls.enabled", Kind::Bool),
    k("telemetryflow.tls.skip_verify", Kind::Bool),
    k("telemetryflow.tls.ca_file", Kind::OptPath),
    k("telemetryflow.tls.cert_file", Kind::OptPath),
    k("telemetryflow.tls.key_file", Kind::OptPath),
    k("telemetryflow.tls.server_name", Kind::OptString),
    k("telemetryflow.retry", Kind::Section),
    k("telemetryflow.retry.enabled", Kind::Bool),
    k("telemetryflow.retry.max_attempts", Kind::U32),
    k("telemetryflow.retry.initial_interval", Kind::Duration),
    k("telemetryflow.retry.max_interval", Kind::Duration),
    k("telemetryflow.api_endpoint", Kind::OptString),
    k("agent", Kind::Section),
    k("agent.id", Kind::OptString),
    k("agent.name", Kind::OptString),
    k("agent.tags", Kind::StringMap),
    k("agent.shutdown_timeout", Kind::Duration),
    k("agent.data_dir", Kind::Path),
    k("heartbeat", Kind::Section),
    k("heartbeat.enabled", Kind::Bool),
    k("heartbeat.interval", Kind::Duration),
    k("heartbeat.include_system_info", Kind::Bool),
    k("heartbeat.cloud_metadata", Kind::Bool),
    k("collectors", Kind::Section),
    k("collectors.root_path", Kind::Path),
    k("collectors.system", Kind::Section),
    k("collectors.system.enabled", Kind::Bool),
    k("collectors.system.interval", Kind::Duration),
    k("collectors.system.cpu", Kind::Bool),
    k("collectors.system.memory", Kind::Bool),
    k("collectors.system.disk", Kind::Bool),
    k("collectors.system.network", Kind::Bool),
    k("collectors.node_exporter", Kind::Section),
    k("collectors.node_exporter.enabled", Kind::Bool),
    k("collectors.node_exporter.interval", Kind::Duration),
    k("collectors.node_exporter.cpu", Kind::Bool),
    k("collectors.node_exporter.memory", Kind::Bool),
    k("collectors.node_exporter.disk_io", Kind::Bool),
    k("collectors.node_exporter.filesystem", Kind::Bool),
    k("collectors.node_exporter.network", Kind::Bool),
    k("collectors.node_exporter.load_avg", Kind::Bool),
    k("collectors.node_exporter.thermal", Kind::Bool),
    k("collectors.node_exporter.pressure", Kind::Bool),
    k("collectors.node_exporter.vmstat", Kind::Bool),
    k("collectors.node_exporter.sockstat", Kind::Bool),
    k("collectors.node_exporter.netstat", Kind::Bool),
    k("collectors.node_exporter.entropy", Kind::Bool),
    k("collectors.node_exporter.filefd", Kind::Bool),
    k("collectors.node_exporter.conntrack", Kind::Bool),
    k("collectors.node_exporter.hwmon", Kind::Bool),
    k("collectors.node_exporter.timex", Kind::Bool),
    k("collectors.node_exporter.cpu_frequency", Kind::Bool),
    k("collectors.node_exporter.cpu_throttles", Kind::Bool),
    k(
        "collectors.node_exporter.disk_devices_include",
        Kind::OptString,
    ),
    k(
        "collectors.node_exporter.disk_devices_exclude",
        Kind::OptString,
    ),
    k(
        "collectors.node_exporter.mount_points_include",
        Kind::OptString,
    ),
    k(
        "collectors.node_exporter.mount_points_exclude",
        Kind::OptString,
    ),
    k("collectors.node_exporter.fs_types_include", Kind::OptString),
    k("collectors.node_exporter.fs_types_exclude", Kind::OptString),
    k(
        "collectors.node_exporter.network_interfaces_include",
        Kind::OptString,
    ),
    k(
        "collectors.node_exporter.network_interfaces_exclude",
        Kind::OptString,
    ),
    k("collectors.kubernetes", Kind::Section),
    k("collectors.kubernetes.enabled", Kind::Bool),
    k("collectors.kubernetes.interval", Kind::Duration),
    k("collectors.kubernetes.collect_pods", Kind::Bool),
    k("collectors.kubernetes.collect_nodes", Kind::Bool),
    k("collectors.kubernetes.collect_deployments", Kind::Bool),
    k("collectors.kubernetes.exclude_namespaces", Kind::StringList),
    k("collectors.kubernetes.collect_services", Kind::Bool),
    k("collectors.kubernetes.collect_namespaces", Kind::Bool),
    k("collectors.kubernetes.collect_events", Kind::Bool),
    k("collectors.kubernetes.kubeconfig_path", Kind::String),
    k("collectors.kubernetes.cluster_name", Kind::String),
    k("collectors.kubernetes.node_name", Kind::String),
    k("collectors.kubernetes.node_local_pods", Kind::Bool),
    k("collectors.kubernetes.leader_election", Kind::Section),
    k("collectors.kubernetes.leader_election.enabled", Kind::Bool),
    k(
        "collectors.kubernetes.leader_election.lease_name",
        Kind::String,
    ),
    k(
        "collectors.kubernetes.leader_election.lease_namespace",
        Kind::String,
    ),
    k(
        "collectors.kubernetes.leader_election.lease_duration",
        Kind::Duration,
    ),
    k(
        "collectors.kubernetes.leader_election.renew_deadline",
        Kind::Duration,
    ),
    k(
        "collectors.kubernetes.leader_election.retry_period",
        Kind::Duration,
    ),
    k("collectors.ebpf", Kind::Section),
    k("collectors.ebpf.enabled", Kind::Bool),
    k("collectors.ebpf.interval", Kind::Duration),
    k("collectors.ebpf.collect_syscalls", Kind::Bool),
    k("collectors.ebpf.collect_network", Kind::Bool),
    k("collectors.ebpf.collect_file_io", Kind::Bool),
    k("collectors.ebpf.collect_scheduler", Kind::Bool),
    k("collectors.ebpf.collect_memory", Kind::Bool),
    k("collectors.ebpf.collect_tcp_events", Kind::Bool),
    k("collectors.ebpf.syscall_latency", Kind::Bool),
    k("collectors.ebpf.exclude_processes", Kind::StringList),
    k("collectors.ebpf.pin_path", Kind::String),
    k("collectors.ebpf.btf_path", Kind::String),
    k("collectors.ebpf.hubble", Kind::Section),
    k("collectors.ebpf.hubble.enabled", Kind::Bool),
    k("collectors.ebpf.hubble.address", Kind::String),
    k("collectors.ebpf.hubble.tls", Kind::Section),
    k("collectors.ebpf.hubble.tls.enabled", Kind::Bool),
    k("collectors.ebpf.hubble.tls.ca_file", Kind::OptPath),
    k("collectors.ebpf.hubble.tls.cert_file", Kind::OptPath),
    k("collectors.ebpf.hubble.tls.key_file", Kind::OptPath),
    k("collectors.ebpf.hubble.tls.server_name", Kind::OptString),
    k("collectors.ebpf.hubble.namespaces", Kind::Bool),
    k("collectors.ebpf.hubble.max_series", Kind::Usize),
    k("collectors.process", Kind::Section),
    k("collectors.process.enabled", Kind::Bool),
    k("collectors.process.interval", Kind::Duration),
    k("collectors.process.processes", Kind::StringList),
    k("collectors.process.exclude_processes", Kind::StringList),
    k("collectors.process.include_command_lines", Kind::StringList),
    k("collectors.process.exclude_command_lines", Kind::StringList),
    k("collectors.process.users", Kind::StringList),
    k("collectors.process.exclude_users", Kind::StringList),
    k("collectors.process.kernel_threads", Kind::Bool),
    k("collectors.process.top_n", Kind::Usize),
    k("collectors.process.top_by", Kind::Enum(PROCESS_TOP_BY)),
    k("collectors.process.max_processes", Kind::Usize),
    k("collectors.process.disk_io", Kind::Bool),
    k("collectors.process.cpu_utilization", Kind::Bool),
    k("collectors.process.threads", Kind::Bool),
    k("collectors.process.paging_faults", Kind::Bool),
    k("collectors.process.uptime", Kind::Bool),
    k("collectors.process.file_descriptors", Kind::Bool),
    k("collectors.process.context_switches", Kind::Bool),
    k("collectors.process.command_line", Kind::Bool),
    k("collectors.process.redact_patterns", Kind::StringList),
    k("collectors.process.source", Kind::Enum(PROCESS_SOURCES)),
    k("collectors.logs", Kind::Section),
    k("collectors.logs.enabled", Kind::Bool),
    k("collectors.logs.paths", Kind::StringList),
    k("collectors.logs.exclude_paths", Kind::StringList),
    k("collectors.logs.include_patterns", Kind::StringList),
    k("collectors.logs.exclude_patterns", Kind::StringList),
    k("collectors.logs.start_at", Kind::Enum(LOG_START_AT)),
    k("collectors.logs.poll_interval", Kind::Duration),
    k("collectors.logs.max_line_bytes", Kind::Usize),
    k("collectors.logs.max_open_files", Kind::Usize),
    k("collectors.logs.encoding", Kind::Enum(LOG_ENCODINGS)),
    k("collectors.logs.multiline", Kind::Section),
    k("collectors.logs.multiline.start_pattern", Kind::OptString),
    k("collectors.logs.multiline.end_pattern", Kind::OptString),
    k("collectors.logs.multiline.timeout", Kind::Duration),
    k("collectors.logs.format", Kind::Enum(LOG_FILE_FORMATS)),
    k("collectors.logs.attributes", Kind::StringMap),
    k("collectors.logs.include_file_path", Kind::Bool),
    k("exporter", Kind::Section),
    k("exporter.otlp", Kind::Section),
    k("exporter.otlp.enabled", Kind::Bool),
    k("exporter.otlp.batch_size", Kind::Usize),
    k("exporter.otlp.max_batch_size", Kind::Usize),
    k("exporter.otlp.logs_batch_size", Kind::Usize),
    k("exporter.otlp.flush_interval", Kind::Duration),
    k("exporter.otlp.compression", Kind::Enum(COMPRESSIONS)),
    k(
        "exporter.otlp.endpoint_version",
        Kind::Enum(ENDPOINT_VERSIONS),
    ),
    k("exporter.otlp.headers", Kind::StringMap),
    k("buffer", Kind::Section),
    k("buffer.enabled", Kind::Bool),
    k("buffer.path", Kind::Path),
    k("buffer.max_size_mb", Kind::U64),
    k("buffer.memory_limit_mb", Kind::U64),
    k("buffer.fsync", Kind::Enum(FSYNC_MODES)),
    k("buffer.fsync_interval", Kind::Duration),
    k("buffer.when_full", Kind::Enum(WHEN_FULL)),
    k("buffer.max_age", Kind::Duration),
    k("receivers", Kind::Section),
    k("receivers.otlp", Kind::Section),
    k("receivers.otlp.enabled", Kind::Bool),
    k("receivers.otlp.grpc", Kind::Section),
    k("receivers.otlp.grpc.enabled", Kind::Bool),
    k("receivers.otlp.grpc.listen_address", Kind::String),
    k("receivers.otlp.http", Kind::Section),
    k("receivers.otlp.http.enabled", Kind::Bool),
    k("receivers.otlp.http.listen_address", Kind::String),
    k("receivers.otlp.max_recv_msg_size_mb", Kind::U64),
    k("receivers.otlp.auth", Kind::Section),
    k("receivers.otlp.auth.bearer_token", Kind::Secret),
    k("receivers.otlp.auth.api_key_id", Kind::OptString),
    k("receivers.otlp.auth.api_key_secret", Kind::Secret),
    k("logging", Kind::Section),
    k("logging.level", Kind::Enum(crate::model::LOG_LEVELS)),
    k("logging.format", Kind::Enum(LOG_FORMATS)),
    k("prometheus", Kind::Section),
    k("prometheus.enabled", Kind::Bool),
    k("prometheus.listen_address", Kind::String),
    k("prometheus.path", Kind::String),
    k("prometheus.expose_node_metrics", Kind::Bool),
    k("health", Kind::Section),
    k("health.enabled", Kind::Bool),
    k("health.listen_address", Kind::String),
    k("remote_config", Kind::Section),
    k("remote_config.enabled", Kind::Bool),
    k("remote_config.allow_sensitive", Kind::Bool),
];

/// The values a duration key accepts, in the file and from a remote config.
///
/// This table is the single source for the checks ([`crate::Config::validate`], the remote
/// merge) and for the ranges table in `docs/configuration.md` ([`duration_ranges_markdown`];
/// a test keeps the two equal).
#[derive(Debug, Clone, Copy)]
pub struct DurationRange {
    pub path: &'static str,
    /// Smallest value allowed anywhere (inclusive).
    pub min: Duration,
    /// Largest value allowed anywhere (inclusive).
    pub max: Duration,
    /// A stricter lower bound for values set by a remote config, so the platform cannot make
    /// the agent poll, flush or heartbeat in a tight loop. `None`: same as `min`.
    pub remote_min: Option<Duration>,
    /// Reads the value from a config.
    pub get: fn(&crate::Config) -> Duration,
    /// Why the bounds are what they are (shown in the docs).
    pub note: &'static str,
}

impl DurationRange {
    /// The lower bound for a value set by a remote config.
    pub fn remote_floor(&self) -> Duration {
        self.remote_min.map_or(self.min, |r| r.max(self.min))
    }

    /// What the key accepts, for the `allowed:` part of errors.
    pub fn allowed(&self) -> String {
        format!(
            "a duration {}, e.g. 15s, 1.5m, 1h30m (units h, m, s, ms, us, ns; a bare number is seconds)",
            self.describe()
        )
    }

    /// `from 1s to 24h`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "from {} to {}",
            crate::duration::format_duration(self.min),
            crate::duration::format_duration(self.max)
        )
    }
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn range(
    path: &'static str,
    min: Duration,
    max: Duration,
    remote_min: Option<Duration>,
    get: fn(&crate::Config) -> Duration,
    note: &'static str,
) -> DurationRange {
    DurationRange {
        path,
        min,
        max,
        remote_min,
        get,
        note,
    }
}

const COLLECTOR_NOTE: &str = "below 1s only for tests and benchmarks";

/// Every duration key with its bounds (a test checks that each `Kind::Duration` key of
/// [`KEYS`] is here exactly once).
pub const DURATION_RANGES: &[DurationRange] = &[
    range(
        "telemetryflow.timeout",
        SECOND,
        Duration::from_secs(600),
        None,
        |c| c.telemetryflow.timeout,
        "per export request",
    ),
    range(
        "telemetryflow.retry.initial_interval",
        ms(10),
        Duration::from_secs(300),
        None,
        |c| c.telemetryflow.retry.initial_interval,
        "also <= `max_interval`",
    ),
    range(
        "telemetryflow.retry.max_interval",
        ms(10),
        HOUR,
        None,
        |c| c.telemetryflow.retry.max_interval,
        "also >= `initial_interval`",
    ),
    range(
        "agent.shutdown_timeout",
        Duration::ZERO,
        Duration::from_secs(600),
        None,
        |c| c.agent.shutdown_timeout,
        "time allowed to flush on shutdown; 0 allowed",
    ),
    range(
        "heartbeat.interval",
        SECOND,
        DAY,
        Some(Duration::from_secs(5)),
        |c| c.heartbeat.interval,
        "",
    ),
    range(
        "collectors.system.interval",
        ms(10),
        DAY,
        Some(SECOND),
        |c| c.collectors.system.interval,
        COLLECTOR_NOTE,
    ),
    range(
        "collectors.node_exporter.interval",
        ms(10),
        DAY,
        Some(SECOND),
        |c| c.collectors.node_exporter.interval,
        COLLECTOR_NOTE,
    ),
    range(
        "collectors.kubernetes.interval",
        SECOND,
        DAY,
        Some(SECOND),
        |c| c.collectors.kubernetes.interval,
        "each cycle reports the watched objects; the watches themselves are continuous",
    ),
    range(
        "collectors.kubernetes.leader_election.lease_duration",
        SECOND,
        HOUR,
        None,
        |c| c.collectors.kubernetes.leader_election.lease_duration,
        "a dead leader is replaced within this plus `retry_period`",
    ),
    range(
        "collectors.kubernetes.leader_election.renew_deadline",
        ms(500),
        HOUR,
        None,
        |c| c.collectors.kubernetes.leader_election.renew_deadline,
        "must be less than `lease_duration`",
    ),
    range(
        "collectors.kubernetes.leader_election.retry_period",
        ms(100),
        MINUTE,
        None,
        |c| c.collectors.kubernetes.leader_election.retry_period,
        "must be less than `renew_deadline`",
    ),
    range(
        "collectors.ebpf.interval",
        ms(10),
        DAY,
        Some(SECOND),
        |c| c.collectors.ebpf.interval,
        COLLECTOR_NOTE,
    ),
    range(
        "collectors.process.interval",
        ms(10),
        DAY,
        Some(SECOND),
        |c| c.collectors.process.interval,
        COLLECTOR_NOTE,
    ),
    range(
        "collectors.logs.poll_interval",
        ms(10),
        MINUTE,
        Some(ms(100)),
        |c| c.collectors.logs.poll_interval,
        "how often globs are re-read and idle files checked; a busy file is read without waiting",
    ),
    range(
        "collectors.logs.multiline.timeout",
        ms(10),
        MINUTE,
        None,
        |c| c.collectors.logs.multiline.timeout,
        "a pending multiline record is sent after this long without a new line",
    ),
    range(
        "exporter.otlp.flush_interval",
        ms(100),
        HOUR,
        Some(ms(100)),
        |c| c.exporter.otlp.flush_interval,
        "",
    ),
    range(
        "buffer.fsync_interval",
        ms(10),
        MINUTE,
        None,
        |c| c.buffer.fsync_interval,
        "what a power loss can cost with `fsync: interval`",
    ),
    range(
        "buffer.max_age",
        MINUTE,
        Duration::from_secs(30 * 24 * 3600),
        None,
        |c| c.buffer.max_age,
        "720h is 30 days; how long an outage the buffer rides out",
    ),
];

/// The range of the duration key at `path`, if it is one.
pub fn duration_range(path: &str) -> Option<&'static DurationRange> {
    DURATION_RANGES.iter().find(|r| r.path == path)
}

/// The ranges as the Markdown table in `docs/configuration.md`.
pub fn duration_ranges_markdown() -> String {
    let f = crate::duration::format_duration;
    let mut out = String::from(
        "| Key | Minimum | Maximum | From a remote config | Notes |\n|---|---|---|---|---|\n",
    );
    for r in DURATION_RANGES {
        let remote = if crate::remote::is_locked(r.path) {
            "never (locked)".to_string()
        } else if crate::remote::is_sensitive(r.path) {
            format!("`{}` or more, with `allow_sensitive`", f(r.remote_floor()))
        } else {
            format!("`{}` or more", f(r.remote_floor()))
        };
        out.push_str(&format!(
            "| `{}` | `{}` | `{}` | {remote} | {} |\n",
            r.path,
            f(r.min),
            f(r.max),
            r.note
        ));
    }
    out
}

/// The key at `path`, if any.
pub fn lookup(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.path == path)
}

/// Keys directly under `section` (`""` for the top level), as short names.
pub fn children(section: &str) -> Vec<&'static str> {
    KEYS.iter()
        .filter_map(|key| {
            let rest = if section.is_empty() {
                key.path
            } else {
                key.path.strip_prefix(section)?.strip_prefix('.')?
            };
            (!rest.contains('.')).then_some(rest)
        })
        .collect()
}

/// Whether values under `path` are free-form (map entries of `agent.tags`, `exporter.otlp.headers`).
pub fn is_free_form(path: &str) -> bool {
    KEYS.iter().any(|key| {
        key.kind == Kind::StringMap
            && path
                .strip_prefix(key.path)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_lists_direct_keys() {
        assert_eq!(
            children(""),
            [
                "telemetryflow",
                "agent",
                "heartbeat",
                "collectors",
                "exporter",
                "buffer",
                "receivers",
                "logging",
                "prometheus",
                "health",
                "remote_config"
            ]
        );
        assert_eq!(children("exporter"), ["otlp"]);
        assert_eq!(
            children("collectors.process"),
            [
                "enabled",
                "interval",
                "processes",
                "exclude_processes",
                "include_command_lines",
                "exclude_command_lines",
                "users",
                "exclude_users",
                "kernel_threads",
                "top_n",
                "top_by",
                "max_processes",
                "disk_io",
                "cpu_utilization",
                "threads",
                "paging_faults",
                "uptime",
                "file_descriptors",
                "context_switches",
                "command_line",
                "redact_patterns",
                "source"
            ]
        );
    }

    #[test]
    fn free_form_maps() {
        assert!(is_free_form("agent.tags.environment"));
        assert!(!is_free_form("agent.tags"));
        assert!(!is_free_form("agent.name"));
    }
}
