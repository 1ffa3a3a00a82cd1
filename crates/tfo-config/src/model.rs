//! The configuration types and their defaults.
//!
//! Every section is `#[serde(default, deny_unknown_fields)]`: a key may be left out (it takes
//! the default below) but a misspelt key is an error. A section written with no body
//! (`collectors:` followed by nothing) also means "all defaults".
//!
//! The `Serialize` impls are redacted: secrets print as `[REDACTED]` and OTLP header values
//! whose name looks sensitive are replaced too, so serializing a `Config` is always safe to show.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration;
use crate::secret::{REDACTED, Secret};

/// Deserialize a section, treating an explicit YAML null (an empty section) as its default.
fn section<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// The whole agent configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[serde(deserialize_with = "section")]
    pub telemetryflow: TelemetryFlow,
    #[serde(deserialize_with = "section")]
    pub agent: Agent,
    #[serde(deserialize_with = "section")]
    pub heartbeat: Heartbeat,
    #[serde(deserialize_with = "section")]
    pub collectors: Collectors,
    #[serde(deserialize_with = "section")]
    pub receivers: Receivers,
    #[serde(deserialize_with = "section")]
    pub exporter: Exporter,
    #[serde(deserialize_with = "section")]
    pub buffer: Buffer,
    #[serde(deserialize_with = "section")]
    pub logging: Logging,
    #[serde(deserialize_with = "section")]
    pub prometheus: Prometheus,
    #[serde(deserialize_with = "section")]
    pub health: Health,
    #[serde(deserialize_with = "section")]
    pub remote_config: RemoteConfig,
}

/// Connection to the TelemetryFlow collector and platform, and credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryFlow {
    /// API key id (`tfk_…`); not secret, shown when the config is printed.
    pub api_key_id: Option<String>,
    /// API key secret (`tfs_…`); always redacted.
    pub api_key_secret: Option<Secret>,
    /// OTLP collector address, `host:port` (or a URL).
    pub endpoint: String,
    pub protocol: Protocol,
    #[serde(with = "duration")]
    pub timeout: Duration,
    #[serde(deserialize_with = "section")]
    pub tls: Tls,
    #[serde(deserialize_with = "section")]
    pub retry: Retry,
    /// Base URL of the platform REST API (registration, heartbeat, remote config).
    pub api_endpoint: Option<String>,
}

impl Default for TelemetryFlow {
    fn default() -> Self {
        TelemetryFlow {
            api_key_id: None,
            api_key_secret: None,
            endpoint: "localhost:4317".to_string(),
            protocol: Protocol::Grpc,
            timeout: Duration::from_secs(30),
            tls: Tls::default(),
            retry: Retry::default(),
            api_endpoint: None,
        }
    }
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OTLP/gRPC (port 4317).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318).
    Http,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    pub enabled: bool,
    /// Do not verify the server certificate. Produces a load warning.
    pub skip_verify: bool,
    pub ca_file: Option<PathBuf>,
    /// Client certificate (mTLS); requires `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Client key (mTLS); requires `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Override the name checked against the server certificate.
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retry {
    pub enabled: bool,
    pub max_attempts: u32,
    #[serde(with = "duration")]
    pub initial_interval: Duration,
    #[serde(with = "duration")]
    pub max_interval: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            enabled: true,
            max_attempts: 3,
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Agent {
    /// Agent id; when unset the agent generates/persists one.
    pub id: Option<String>,
    /// Display name; when unset the agent uses the host name.
    pub name: Option<String>,
    /// Free-form tags added to every resource (e.g. `environment`, `region`).
    pub tags: BTreeMap<String, String>,
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    pub data_dir: PathBuf,
}

impl Default for Agent {
    fn default() -> Self {
        Agent {
            id: None,
            name: None,
            tags: BTreeMap::new(),
            shutdown_timeout: Duration::from_secs(10),
            data_dir: PathBuf::from("/var/lib/tfo-agent"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Heartbeat {
    pub enabled: bool,
    #[serde(with = "duration")]
    pub interval: Duration,
    pub include_system_info: bool,
    /// Ask the cloud instance metadata services (AWS, GCP, Azure) once at start.
    pub cloud_metadata: bool,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            enabled: true,
            interval: Duration::from_secs(60),
            include_system_info: true,
            cloud_metadata: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Collectors {
    /// Where the host's `/proc`, `/sys`, … are mounted (e.g. `/host` in a container).
    pub root_path: PathBuf,
    #[serde(deserialize_with = "section")]
    pub system: SystemCollector,
    #[serde(deserialize_with = "section")]
    pub node_exporter: NodeExporter,
    #[serde(deserialize_with = "section")]
    pub kubernetes: Kubernetes,
    #[serde(deserialize_with = "section")]
    pub ebpf: Ebpf,
    #[serde(deserialize_with = "section")]
    pub process: ProcessCollector,
    #[serde(deserialize_with = "section")]
    pub logs: LogsCollector,
}

impl Default for Collectors {
    fn default() -> Self {
        Collectors {
            root_path: PathBuf::from("/"),
            system: SystemCollector::default(),
            node_exporter: NodeExporter::default(),
            kubernetes: Kubernetes::default(),
            ebpf: Ebpf::default(),
            process: ProcessCollector::default(),
            logs: LogsCollector::default(),
        }
    }
}

const FIFTEEN_SECONDS: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SystemCollector {
    pub enabled: bool,
    #[serde(with = "duration")]
    pub interval: Duration,
    pub cpu: bool,
    pub memory: bool,
    pub disk: bool,
    pub network: bool,
}

impl Default for SystemCollector {
    fn default() -> Self {
        SystemCollector {
            enabled: true,
            interval: FIFTEEN_SECONDS,
            cpu: true,
            memory: true,
            disk: true,
            network: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeExporter {
    pub enabled: bool,
    #[serde(with = "duration")]
    pub interval: Duration,
    pub cpu: bool,
    pub memory: bool,
    pub disk_io: bool,
    pub filesystem: bool,
    pub network: bool,
    pub load_avg: bool,
    pub thermal: bool,
    pub pressure: bool,
    pub vmstat: bool,
    pub sockstat: bool,
    pub netstat: bool,
    pub entropy: bool,
    pub filefd: bool,
    pub conntrack: bool,
    pub hwmon: bool,
    pub timex: bool,
    /// Per-CPU frequency from cpufreq: one sysfs read per CPU per cycle, so off by default.
    pub cpu_frequency: bool,
    /// Per-CPU thermal throttle counters: four sysfs reads per CPU per cycle, off by default.
    pub cpu_throttles: bool,
    // Name filters in node_exporter's regex syntax (unanchored). Unset: node_exporter's
    // default; an empty string: no filter.
    pub disk_devices_include: Option<String>,
    pub disk_devices_exclude: Option<String>,
    pub mount_points_include: Option<String>,
    pub mount_points_exclude: Option<String>,
    pub fs_types_include: Option<String>,
    pub fs_types_exclude: Option<String>,
    pub network_interfaces_include: Option<String>,
    pub network_interfaces_exclude: Option<String>,
}

impl Default for NodeExporter {
    fn default() -> Self {
        NodeExporter {
            enabled: true,
            interval: FIFTEEN_SECONDS,
            cpu: true,
            memory: true,
            disk_io: true,
            filesystem: true,
            network: true,
            load_avg: true,
            thermal: true,
            pressure: true,
            vmstat: true,
            sockstat: true,
            netstat: true,
            entropy: true,
            filefd: true,
            conntrack: true,
            hwmon: true,
            timex: true,
            cpu_frequency: false,
            cpu_throttles: false,
            disk_devices_include: None,
            disk_devices_exclude: None,
            mount_points_include: None,
            mount_points_exclude: None,
            fs_types_include: None,
            fs_types_exclude: None,
            network_interfaces_include: None,
            network_interfaces_exclude: None,
        }
    }
}

/// `collectors.kubernetes`. Pods and the agent's own Node are watched by every agent (pods
/// of its node only, unless `node_local_pods` is off); cluster-wide state (workloads,
/// services, namespaces, quotas, events) by the one agent holding the Lease, so a
/// DaemonSet of N nodes reports it once. See `docs/kubernetes.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Kubernetes {
    pub enabled: bool,
    #[serde(with = "duration")]
    pub interval: Duration,
    pub collect_pods: bool,
    pub collect_nodes: bool,
    /// Workloads: deployments, replica sets, stateful sets, daemon sets, jobs, cron jobs.
    pub collect_deployments: bool,
    /// Services and their endpoint slices.
    pub collect_services: bool,
    /// Namespaces and resource quotas.
    pub collect_namespaces: bool,
    /// Kubernetes Events, exported as OTLP log records.
    pub collect_events: bool,
    pub exclude_namespaces: Vec<String>,
    /// Path to a kubeconfig; empty means in-cluster configuration.
    pub kubeconfig_path: String,
    /// `k8s.cluster.name` on everything the agent exports; empty: `agent.tags.cluster`,
    /// then `$CLUSTER_NAME`.
    pub cluster_name: String,
    /// This agent's node; empty: `$NODE_NAME`, then `$HOSTNAME`.
    pub node_name: String,
    /// Watch only the pods scheduled on this node (a DaemonSet); off: every pod (a
    /// single Deployment replica watching the whole cluster).
    pub node_local_pods: bool,
    pub leader_election: LeaderElection,
}

impl Default for Kubernetes {
    fn default() -> Self {
        Kubernetes {
            enabled: false,
            interval: Duration::from_secs(30),
            collect_pods: true,
            collect_nodes: true,
            collect_deployments: true,
            collect_services: true,
            collect_namespaces: true,
            collect_events: true,
            exclude_namespaces: Vec::new(),
            kubeconfig_path: String::new(),
            cluster_name: String::new(),
            node_name: String::new(),
            node_local_pods: true,
            leader_election: LeaderElection::default(),
        }
    }
}

/// `collectors.kubernetes.leader_election`: which agent reports cluster-wide state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeaderElection {
    /// Off: this agent reports cluster-wide state unconditionally (one replica only).
    pub enabled: bool,
    pub lease_name: String,
    /// Empty: `$POD_NAMESPACE`, then `default`.
    pub lease_namespace: String,
    /// How long a lease holds without renewal: the longest a dead leader is waited for.
    #[serde(with = "duration")]
    pub lease_duration: Duration,
    /// A leader that could not renew for this long stops reporting (before another can
    /// take over, so two never report at once).
    #[serde(with = "duration")]
    pub renew_deadline: Duration,
    /// How often the leader renews and the others try to acquire.
    #[serde(with = "duration")]
    pub retry_period: Duration,
}

impl Default for LeaderElection {
    fn default() -> Self {
        LeaderElection {
            enabled: true,
            lease_name: "tfo-agent-cluster".into(),
            lease_namespace: String::new(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ebpf {
    pub enabled: bool,
    #[serde(with = "duration")]
    pub interval: Duration,
    pub collect_syscalls: bool,
    pub collect_network: bool,
    pub collect_file_io: bool,
    /// Context switches, wakeups, run-queue latency, migrations.
    pub collect_scheduler: bool,
    /// Page faults (user, kernel, major), OOM kills.
    pub collect_memory: bool,
    /// TCP state transitions.
    pub collect_tcp_events: bool,
    /// Entry-to-exit latency of syscalls and file I/O (`ebpf.syscall.latency_ns`,
    /// `ebpf.fileio.latency_ns`): attaches `tp_btf/sys_enter` too, about doubling the cost
    /// per syscall. Off: counts, errors and bytes from `tp_btf/sys_exit` alone.
    pub syscall_latency: bool,
    /// Process names (comm) whose events are dropped in the kernel; the agent itself always is.
    pub exclude_processes: Vec<String>,
    /// A directory on bpffs to pin the programs and maps under while the agent runs
    /// (`bpftool prog show pinned ...`); empty: no pinning.
    pub pin_path: String,
    /// Kernel BTF when `/sys/kernel/btf/vmlinux` is missing; empty: that file.
    pub btf_path: String,
    /// Flow metrics from Cilium's Hubble observer API; independent of the programs.
    #[serde(deserialize_with = "section")]
    pub hubble: Hubble,
}

/// `collectors.ebpf.hubble`: the Hubble flow metrics client (crate `tfo-hubble`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hubble {
    pub enabled: bool,
    /// `unix:///path` (the node's Hubble socket) or `host:port` (Hubble Relay).
    pub address: String,
    #[serde(deserialize_with = "section")]
    pub tls: HubbleTls,
    /// Split flow series by source and destination namespace (more series).
    pub namespaces: bool,
    /// Most series per metric; flows beyond go to the `_other` series.
    pub max_series: usize,
}

impl Default for Hubble {
    fn default() -> Self {
        Hubble {
            enabled: false,
            address: "unix:///var/run/cilium/hubble.sock".into(),
            tls: HubbleTls::default(),
            namespaces: false,
            max_series: 1000,
        }
    }
}

/// TLS to Hubble Relay (TCP addresses only).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubbleTls {
    pub enabled: bool,
    /// CA bundle for Relay's certificate; unset: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (mTLS); requires `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Client key (mTLS); requires `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Name to verify instead of the address's host (Relay: `*.hubble-relay.cilium.io`).
    pub server_name: Option<String>,
}

impl Default for Ebpf {
    fn default() -> Self {
        Ebpf {
            enabled: false,
            interval: FIFTEEN_SECONDS,
            collect_syscalls: true,
            collect_network: true,
            collect_file_io: true,
            collect_scheduler: true,
            collect_memory: true,
            collect_tcp_events: true,
            syscall_latency: false,
            exclude_processes: Vec::new(),
            pin_path: String::new(),
            btf_path: String::new(),
            hubble: Hubble::default(),
        }
    }
}

/// `collectors.process`: per-process metrics (crate `tfo-collectors`, `process`). Each
/// key's meaning is in `docs/configuration.md`; the checks are in `checks.rs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessCollector {
    pub enabled: bool,
    #[serde(with = "duration")]
    pub interval: Duration,
    /// Executable names to report (the seed's list); empty: every process.
    pub processes: Vec<String>,
    /// Executable names never reported.
    pub exclude_processes: Vec<String>,
    /// Regexes; when set, only processes whose command line matches one are reported.
    pub include_command_lines: Vec<String>,
    /// Regexes; processes whose command line matches one are not reported.
    pub exclude_command_lines: Vec<String>,
    /// Owners (user names or uids) to report; empty: every owner.
    pub users: Vec<String>,
    /// Owners never reported.
    pub exclude_users: Vec<String>,
    /// Report kernel threads too.
    pub kernel_threads: bool,
    /// Only the N heaviest processes by `top_by`; 0: no ranking.
    pub top_n: usize,
    pub top_by: ProcessTopBy,
    /// Most processes reported per cycle; the rest are counted as overflow.
    pub max_processes: usize,
    /// `process.disk.io` (reads /proc/<pid>/io).
    pub disk_io: bool,
    /// `process.cpu.utilization`.
    pub cpu_utilization: bool,
    /// `process.thread.count`.
    pub threads: bool,
    /// `process.paging.faults`.
    pub paging_faults: bool,
    /// `process.uptime`.
    pub uptime: bool,
    /// `process.unix.file_descriptor.count` (lists /proc/<pid>/fd).
    pub file_descriptors: bool,
    /// `process.context_switches` (reads /proc/<pid>/status).
    pub context_switches: bool,
    /// The `process.command_line` attribute.
    pub command_line: bool,
    /// Regexes whose matches in the command line are replaced by `***`.
    pub redact_patterns: Vec<String>,
    /// Where the numbers of /proc/<pid>/stat and io come from.
    pub source: ProcessSource,
}

/// The default `collectors.process.redact_patterns`: values of arguments and variables
/// whose name says secret, and passwords in URLs. The collector's own default
/// (`tfo_collectors::process::DEFAULT_REDACT_PATTERNS`) is the same list (tested).
pub const DEFAULT_REDACT_PATTERNS: &[&str] = &[
    r"(?i)(?:pass(?:word|wd)?|pwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credentials?|auth)[a-z0-9_-]*[=:]\s*(\S+)",
    r"(?i)(?:^|\s)--?[a-z0-9_-]*(?:pass(?:word|wd)?|pwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credentials?|auth)[a-z0-9_-]*\s+(\S+)",
    r"://[^:/@\s]+:([^@\s]+)@",
];

impl Default for ProcessCollector {
    fn default() -> Self {
        ProcessCollector {
            enabled: false,
            interval: Duration::from_secs(30),
            processes: Vec::new(),
            exclude_processes: Vec::new(),
            include_command_lines: Vec::new(),
            exclude_command_lines: Vec::new(),
            users: Vec::new(),
            exclude_users: Vec::new(),
            kernel_threads: false,
            top_n: 0,
            top_by: ProcessTopBy::Cpu,
            max_processes: 1000,
            disk_io: true,
            cpu_utilization: false,
            threads: false,
            paging_faults: false,
            uptime: false,
            file_descriptors: false,
            context_switches: false,
            command_line: false,
            redact_patterns: DEFAULT_REDACT_PATTERNS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            source: ProcessSource::Auto,
        }
    }
}

/// `collectors.process.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessSource {
    /// The eBPF task iterator (one read for every process) when it loads, else the files.
    #[default]
    Auto,
    /// The /proc/<pid>/stat and io files only.
    Procfs,
}

/// `collectors.process.top_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessTopBy {
    /// CPU time used since the previous cycle.
    #[default]
    Cpu,
    /// Resident memory.
    Memory,
}

/// `collectors.logs`: the file tailer (crate `tfo-logs`). Each key's meaning is in
/// `docs/configuration.md`; the checks are in `checks.rs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsCollector {
    pub enabled: bool,
    /// Absolute glob patterns of files to tail (`*`, `?`, `[a-z]`, `{a,b}`, `**`).
    pub paths: Vec<String>,
    /// Glob patterns of files never to tail; a pattern without `/` matches the file name.
    pub exclude_paths: Vec<String>,
    /// Regexes; when any is set, only records matching one of them are kept.
    pub include_patterns: Vec<String>,
    /// Regexes; records matching any of them are dropped (counted as `excluded`).
    pub exclude_patterns: Vec<String>,
    /// Where a file without a checkpoint starts when it is found at the first start.
    pub start_at: LogStartAt,
    /// How often the globs are re-evaluated and idle files checked for new data.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// Longest record in bytes; longer lines are split into pieces of at most this size.
    pub max_line_bytes: usize,
    /// Bound on the file descriptors the tailer holds open at once.
    pub max_open_files: usize,
    pub encoding: LogEncoding,
    #[serde(deserialize_with = "section")]
    pub multiline: LogMultiline,
    pub format: LogFileFormat,
    /// Static attributes added to every log record.
    pub attributes: BTreeMap<String, String>,
    /// Add `log.file.path` (the full path) besides `log.file.name`.
    pub include_file_path: bool,
}

impl Default for LogsCollector {
    fn default() -> Self {
        LogsCollector {
            enabled: false,
            paths: Vec::new(),
            exclude_paths: Vec::new(),
            include_patterns: Vec::new(),
            exclude_patterns: Vec::new(),
            start_at: LogStartAt::End,
            poll_interval: Duration::from_millis(250),
            max_line_bytes: 1024 * 1024,
            max_open_files: 512,
            encoding: LogEncoding::Utf8,
            multiline: LogMultiline::default(),
            format: LogFileFormat::Auto,
            attributes: BTreeMap::new(),
            include_file_path: false,
        }
    }
}

/// `collectors.logs.start_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStartAt {
    /// Files found at the first start are read from their end (only new lines).
    #[default]
    End,
    /// Files found at the first start are read from their beginning.
    Beginning,
}

/// `collectors.logs.encoding`: only UTF-8; invalid bytes become U+FFFD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LogEncoding {
    #[default]
    #[serde(rename = "utf-8", alias = "utf8")]
    Utf8,
}

/// `collectors.logs.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFileFormat {
    /// Detected per file from its first line.
    #[default]
    Auto,
    Raw,
    Json,
    /// Container runtime interface (containerd, CRI-O) log files.
    Cri,
    /// Docker's `json-file` logging driver.
    Docker,
}

/// `collectors.logs.multiline`: join lines into one record. At most one pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogMultiline {
    /// A line matching this regex starts a new record; other lines continue the current one.
    pub start_pattern: Option<String>,
    /// A line matching this regex ends the current record.
    pub end_pattern: Option<String>,
    /// A pending record is emitted after this long without a new line.
    #[serde(with = "duration")]
    pub timeout: Duration,
}

impl Default for LogMultiline {
    fn default() -> Self {
        LogMultiline {
            start_pattern: None,
            end_pattern: None,
            timeout: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Exporter {
    #[serde(deserialize_with = "section")]
    pub otlp: Otlp,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Otlp {
    pub enabled: bool,
    /// The metrics, spans or log records waiting that start a request before
    /// `flush_interval` (>= 1): a trigger, like the OpenTelemetry Collector's
    /// `send_batch_size`, not a cap.
    pub batch_size: usize,
    /// Most OTLP metrics (or spans) per export request and per stored record; 0: no count
    /// limit (a request takes what is waiting, up to 3 MiB).
    pub max_batch_size: usize,
    /// Most log records per logs export request, and per record the log collector
    /// stores (>= 1); a logs request also stops at 240 KiB of encoded log records.
    pub logs_batch_size: usize,
    #[serde(with = "duration")]
    pub flush_interval: Duration,
    pub compression: Compression,
    pub endpoint_version: EndpointVersion,
    /// Extra request headers. Values of headers whose name contains auth, secret, token, key
    /// or password are redacted when printed or serialized.
    #[serde(serialize_with = "serialize_headers_redacted")]
    pub headers: BTreeMap<String, String>,
}

impl Default for Otlp {
    fn default() -> Self {
        Otlp {
            enabled: true,
            batch_size: 100,
            max_batch_size: 0,
            logs_batch_size: 4096,
            flush_interval: Duration::from_secs(10),
            compression: Compression::Gzip,
            endpoint_version: EndpointVersion::V2,
            headers: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for Otlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Otlp")
            .field("enabled", &self.enabled)
            .field("batch_size", &self.batch_size)
            .field("max_batch_size", &self.max_batch_size)
            .field("logs_batch_size", &self.logs_batch_size)
            .field("flush_interval", &self.flush_interval)
            .field("compression", &self.compression)
            .field("endpoint_version", &self.endpoint_version)
            .field("headers", &redacted_headers(&self.headers))
            .finish()
    }
}

/// Whether a header (or any key) name looks like it carries a credential.
pub fn is_sensitive_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "auth",
        "secret",
        "token",
        "key",
        "password",
        "passwd",
        "cookie",
        "cred",
        "session",
        "signature",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// The headers with sensitive values replaced by `[REDACTED]` (empty values stay empty).
pub fn redacted_headers(headers: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    headers
        .iter()
        .map(|(k, v)| {
            let shown = if is_sensitive_name(k) && !v.is_empty() {
                REDACTED
            } else {
                v.as_str()
            };
            (k.as_str(), shown)
        })
        .collect()
}

fn serialize_headers_redacted<S: Serializer>(
    headers: &BTreeMap<String, String>,
    ser: S,
) -> Result<S::Ok, S::Error> {
    redacted_headers(headers).serialize(ser)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

/// Which OTLP/HTTP path family to use: `/v1/...` (OpenTelemetry) or `/v2/...` (TelemetryFlow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointVersion {
    V1,
    #[default]
    V2,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Buffer {
    pub enabled: bool,
    pub path: PathBuf,
    /// Bound on the on-disk buffer, MiB.
    pub max_size_mb: u64,
    /// Bound on the in-memory tail, MiB.
    pub memory_limit_mb: u64,
    pub fsync: FsyncMode,
    /// How often `fsync: interval` syncs the log.
    #[serde(with = "duration")]
    pub fsync_interval: Duration,
    pub when_full: WhenFull,
    /// Records older than this are discarded (counted as `max_age`).
    #[serde(with = "duration")]
    pub max_age: Duration,
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer {
            enabled: true,
            path: PathBuf::from("/var/lib/tfo-agent/buffer"),
            max_size_mb: 500,
            memory_limit_mb: 64,
            fsync: FsyncMode::Interval,
            fsync_interval: Duration::from_secs(1),
            when_full: WhenFull::Auto,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// When the disk log is synced to stable storage (a process crash loses nothing in any mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    /// After every append.
    Always,
    /// At most `fsync_interval` after an append.
    #[default]
    Interval,
    /// Left to the kernel.
    Never,
}

/// What an append does when the buffer is at `max_size_mb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// `drop_oldest` for metrics, `block` for logs.
    #[default]
    Auto,
    /// Discard the oldest records (counted as `full`).
    DropOldest,
    /// Stop the producer until there is room (backpressure).
    Block,
}

/// The agent's own Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Prometheus {
    pub enabled: bool,
    pub listen_address: String,
    pub path: String,
    /// Also serve the node exporter collector's metrics under node_exporter's names.
    pub expose_node_metrics: bool,
}

impl Default for Prometheus {
    fn default() -> Self {
        Prometheus {
            enabled: true,
            listen_address: "127.0.0.1:8888".to_string(),
            path: "/metrics".to_string(),
            expose_node_metrics: false,
        }
    }
}

/// Listeners that take telemetry from local applications (`receivers.*`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Receivers {
    #[serde(deserialize_with = "section")]
    pub otlp: OtlpReceiver,
}

/// The local OTLP receiver: applications send OTLP to the agent, which forwards it through
/// its buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpReceiver {
    pub enabled: bool,
    #[serde(deserialize_with = "section")]
    pub grpc: GrpcListener,
    #[serde(deserialize_with = "section")]
    pub http: HttpListener,
    /// Largest request accepted, decompressed, in MiB (gRPC message or HTTP body).
    pub max_recv_msg_size_mb: u64,
    #[serde(deserialize_with = "section")]
    pub auth: ReceiverAuth,
}

impl Default for OtlpReceiver {
    fn default() -> Self {
        OtlpReceiver {
            enabled: false,
            grpc: GrpcListener::default(),
            http: HttpListener::default(),
            max_recv_msg_size_mb: 4,
            auth: ReceiverAuth::default(),
        }
    }
}

impl OtlpReceiver {
    /// Each transport's listen address key, whether it is enabled, and its address.
    pub fn listeners(&self) -> [(&'static str, bool, &str); 2] {
        [
            (
                "receivers.otlp.grpc.listen_address",
                self.grpc.enabled,
                &self.grpc.listen_address,
            ),
            (
                "receivers.otlp.http.listen_address",
                self.http.enabled,
                &self.http.listen_address,
            ),
        ]
    }
}

/// One transport of the OTLP receiver, with its default port (the OTLP ones, on loopback
/// as the OpenTelemetry Collector binds since v0.104).
macro_rules! listener {
    ($name:ident, $default:literal) => {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            pub enabled: bool,
            pub listen_address: String,
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    enabled: true,
                    listen_address: $default.to_string(),
                }
            }
        }
    };
}
listener!(GrpcListener, "127.0.0.1:4317");
listener!(HttpListener, "127.0.0.1:4318");

/// Credentials a client of the OTLP receiver must present (none when all are unset): a
/// bearer token (`Authorization: Bearer …`) or the TelemetryFlow key pair headers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverAuth {
    pub bearer_token: Option<Secret>,
    pub api_key_id: Option<String>,
    pub api_key_secret: Option<Secret>,
}

impl ReceiverAuth {
    /// Whether any credential is configured (requests without one are refused).
    pub fn required(&self) -> bool {
        self.bearer_token.as_ref().is_some_and(|s| !s.is_empty())
            || self.api_key_secret.as_ref().is_some_and(|s| !s.is_empty())
    }
}

/// Liveness and readiness endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Health {
    pub enabled: bool,
    pub listen_address: String,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            enabled: true,
            listen_address: "127.0.0.1:13133".to_string(),
        }
    }
}

/// Configuration pushed by the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    pub enabled: bool,
    /// Accept remote changes to the sensitive keys ([`crate::remote::SENSITIVE`]); the
    /// [`crate::remote::LOCKED`] keys are refused regardless.
    pub allow_sensitive: bool,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            enabled: true,
            allow_sensitive: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Logging {
    /// One of `trace`, `debug`, `info`, `warn`, `error` (normalized to lowercase on load).
    pub level: String,
    pub format: LogFormat,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            level: "info".to_string(),
            format: LogFormat::Text,
        }
    }
}

/// Allowed values of `logging.level`.
pub const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
