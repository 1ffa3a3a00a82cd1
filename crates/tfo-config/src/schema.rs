//! A flat description of every configuration key: its dotted path and kind.
//!
//! Used to tell the user what is allowed in error messages (valid keys of a section, the type
//! or values a key takes). Tests check that this table, the `Config` types, the example
//! `configs/tfo-agent.yaml` and `docs/configuration.md` all list the same keys.

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
    k("collectors.kubernetes.kubeconfig_path", Kind::String),
    k("collectors.ebpf", Kind::Section),
    k("collectors.ebpf.enabled", Kind::Bool),
    k("collectors.ebpf.interval", Kind::Duration),
    k("collectors.ebpf.collect_syscalls", Kind::Bool),
    k("collectors.ebpf.collect_network", Kind::Bool),
    k("collectors.ebpf.collect_file_io", Kind::Bool),
    k("collectors.ebpf.exclude_processes", Kind::StringList),
    k("collectors.process", Kind::Section),
    k("collectors.process.enabled", Kind::Bool),
    k("collectors.process.interval", Kind::Duration),
    k("collectors.logs", Kind::Section),
    k("collectors.logs.enabled", Kind::Bool),
    k("collectors.logs.paths", Kind::StringList),
    k("exporter", Kind::Section),
    k("exporter.otlp", Kind::Section),
    k("exporter.otlp.enabled", Kind::Bool),
    k("exporter.otlp.batch_size", Kind::Usize),
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
                "logging",
                "prometheus",
                "health",
                "remote_config"
            ]
        );
        assert_eq!(children("exporter"), ["otlp"]);
        assert_eq!(children("collectors.process"), ["enabled", "interval"]);
    }

    #[test]
    fn free_form_maps() {
        assert!(is_free_form("agent.tags.environment"));
        assert!(!is_free_form("agent.tags"));
        assert!(!is_free_form("agent.name"));
    }
}
