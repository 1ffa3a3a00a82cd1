//! The agent's own metrics (`tfo_agent_*`): the table every counter and gauge must be in,
//! and the Prometheus text rendering of [`Stats`](crate::events::Stats).
//!
//! The table is the source of truth for names, types, labels and help; `docs/self-metrics.md`
//! is generated from it (a test fails when it is stale), and [`Stats`](crate::events::Stats)
//! refuses names that are not in it, so a metric cannot be emitted without being documented.

use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

#[derive(Debug, Clone, Copy)]
pub struct SelfMetric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn counter(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> SelfMetric {
    SelfMetric {
        name,
        kind: Kind::Counter,
        labels,
        help,
    }
}

const fn gauge(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> SelfMetric {
    SelfMetric {
        name,
        kind: Kind::Gauge,
        labels,
        help,
    }
}

pub const BUILD_INFO: &str = "tfo_agent_build_info";
pub const START_TIME: &str = "tfo_agent_start_time_seconds";
pub const UPTIME: &str = "tfo_agent_uptime_seconds";
pub const COLLECTOR_RUNS: &str = "tfo_agent_collector_runs_total";
pub const COLLECTOR_DURATION: &str = "tfo_agent_collector_duration_seconds";
pub const COLLECTOR_ERRORS: &str = "tfo_agent_collector_errors_total";
pub const COLLECTOR_SERIES: &str = "tfo_agent_collector_series";
pub const COLLECTOR_UP: &str = "tfo_agent_collector_up";
pub const COLLECTOR_SKIPPED: &str = "tfo_agent_collector_skipped_total";
pub const EXPORTED_ITEMS: &str = "tfo_agent_exported_items_total";
pub const EXPORT_REQUESTS: &str = "tfo_agent_export_requests_total";
pub const EXPORT_RETRIES: &str = "tfo_agent_export_retries_total";
pub const LAST_EXPORT: &str = "tfo_agent_last_export_timestamp_seconds";
pub const DROPPED_ITEMS: &str = "tfo_agent_dropped_items_total";
pub const BUFFER_BYTES: &str = "tfo_agent_buffer_bytes";
pub const BUFFER_RECORDS: &str = "tfo_agent_buffer_records";
pub const BUFFER_OLDEST_AGE: &str = "tfo_agent_buffer_oldest_record_age_seconds";
pub const BUFFER_DROPPED_RECORDS: &str = "tfo_agent_buffer_dropped_records_total";
pub const BUFFER_REPLAYED: &str = "tfo_agent_buffer_replayed_records_total";
pub const BUFFER_DEGRADED: &str = "tfo_agent_buffer_degraded";
pub const BUFFER_BACKPRESSURE: &str = "tfo_agent_buffer_backpressure_seconds_total";
pub const BUFFER_IO_ERRORS: &str = "tfo_agent_buffer_io_errors_total";
pub const BUFFER_SEGMENT_SYNCS: &str = "tfo_agent_buffer_segment_syncs_total";
pub const BUFFER_SYNCS_SKIPPED: &str = "tfo_agent_buffer_syncs_skipped_total";
pub const LOGS_FILES_WATCHED: &str = "tfo_agent_logs_files_watched";
pub const LOGS_FILES_OPEN: &str = "tfo_agent_logs_files_open";
pub const LOGS_FILES_IGNORED: &str = "tfo_agent_logs_files_ignored";
pub const LOGS_READ_BYTES: &str = "tfo_agent_logs_read_bytes_total";
pub const LOGS_READ_LINES: &str = "tfo_agent_logs_read_lines_total";
pub const LOGS_RECORDS: &str = "tfo_agent_logs_records_total";
pub const LOGS_RECORDS_DROPPED: &str = "tfo_agent_logs_records_dropped_total";
pub const LOGS_BYTES_LOST: &str = "tfo_agent_logs_bytes_lost_total";
pub const LOGS_LINES_SPLIT: &str = "tfo_agent_logs_lines_split_total";
pub const LOGS_DECODE: &str = "tfo_agent_logs_decode_events_total";
pub const LOGS_FILE_EVENTS: &str = "tfo_agent_logs_file_events_total";
pub const LOGS_ERRORS: &str = "tfo_agent_logs_errors_total";
pub const LOGS_CHECKPOINT_LAG: &str = "tfo_agent_logs_checkpoint_lag_bytes";
pub const KUBE_API_UP: &str = "tfo_agent_kubernetes_api_up";
pub const KUBE_RESOURCE_UP: &str = "tfo_agent_kubernetes_resource_up";
pub const KUBE_OBJECTS: &str = "tfo_agent_kubernetes_objects";
pub const KUBE_RELISTS: &str = "tfo_agent_kubernetes_relists_total";
pub const KUBE_WATCH_ERRORS: &str = "tfo_agent_kubernetes_watch_errors_total";
pub const KUBE_OBJECTS_SKIPPED: &str = "tfo_agent_kubernetes_objects_skipped_total";
pub const KUBE_LEADER: &str = "tfo_agent_kubernetes_leader";
pub const KUBE_LEASE_EVENTS: &str = "tfo_agent_kubernetes_lease_events_total";
pub const KUBE_EVENTS: &str = "tfo_agent_kubernetes_events_total";
pub const KUBE_ERRORS: &str = "tfo_agent_kubernetes_errors_total";

/// Counters kept in microseconds (so they stay integers) and rendered in seconds.
pub const MICROSECOND_COUNTERS: &[&str] = &[PROCESS_CPU, BUFFER_BACKPRESSURE];
pub const RECEIVER_ITEMS: &str = "tfo_agent_receiver_accepted_items_total";
pub const RECEIVER_REFUSED: &str = "tfo_agent_receiver_refused_items_total";
pub const RECEIVER_REQUESTS: &str = "tfo_agent_receiver_requests_total";
pub const HEARTBEATS: &str = "tfo_agent_heartbeat_requests_total";
pub const LAST_HEARTBEAT: &str = "tfo_agent_heartbeat_last_success_timestamp_seconds";
pub const PROCESS_CPU: &str = "tfo_agent_process_cpu_seconds_total";
pub const PROCESS_RSS: &str = "tfo_agent_process_resident_memory_bytes";
pub const TASK_RESTARTS: &str = "tfo_agent_task_restarts_total";
pub const CONFIG_RELOADS: &str = "tfo_agent_config_reloads_total";
pub const CONFIG_LAST_RELOAD_OK: &str = "tfo_agent_config_last_reload_successful";

/// Every self-metric. Order is the order of the `/metrics` output.
pub const TABLE: &[SelfMetric] = &[
    gauge(
        BUILD_INFO,
        &["version", "os", "arch"],
        "Always 1; the labels describe the running build.",
    ),
    gauge(
        START_TIME,
        &[],
        "Unix time the agent process started, in seconds.",
    ),
    gauge(UPTIME, &[], "Seconds since the agent process started."),
    counter(
        COLLECTOR_RUNS,
        &["collector"],
        "Collection cycles completed, by collector.",
    ),
    gauge(
        COLLECTOR_DURATION,
        &["collector"],
        "Wall-clock duration of the last collection cycle, in seconds.",
    ),
    counter(
        COLLECTOR_ERRORS,
        &["collector"],
        "Partial failures during collection (a file that could not be read or parsed; the affected metrics are skipped for that cycle), and for ebpf.hubble every failed connection attempt or broken flow stream. Each is counted; the same error text is logged at WARN at most every 10 minutes per collector.",
    ),
    gauge(
        COLLECTOR_SERIES,
        &["collector"],
        "Data points produced by the last collection cycle.",
    ),
    gauge(
        COLLECTOR_UP,
        &["collector"],
        "1 if the last cycle produced data, 0 if it produced none and failed, or (ebpf.hubble) while the flow stream is not open. /readyz lists the collectors at 0 under collectors_down. The per-collector gauges go away when a reload turns the collector off.",
    ),
    counter(
        COLLECTOR_SKIPPED,
        &["collector", "reason"],
        "Items a collector left out of a cycle, by reason. Process collector: vanished (a process exited between two reads; not an error), permission_denied (a process's io, fd or status file the agent may not read: another user's process without CAP_SYS_PTRACE / CAP_DAC_READ_SEARCH, or hidepid; that process's other metrics are still sent), overflow (processes beyond collectors.process.max_processes). Logged at most once per 10 minutes per reason.",
    ),
    counter(
        EXPORTED_ITEMS,
        &["signal"],
        "Data points (metrics) or log records accepted by the collector.",
    ),
    counter(
        EXPORT_REQUESTS,
        &["signal", "outcome"],
        "Export requests by outcome: success, outage (collector unreachable or shedding load), refused (the endpoint refuses this agent: credentials, path or redirect), retryable, too_large (split and sent again), permanent.",
    ),
    counter(
        EXPORT_RETRIES,
        &["signal", "class"],
        "Retries scheduled after a failed export, by failure class (outage, refused, retryable).",
    ),
    gauge(
        LAST_EXPORT,
        &["signal"],
        "Unix time of the last successful export, in seconds (0: none yet).",
    ),
    counter(
        DROPPED_ITEMS,
        &["signal", "reason"],
        "Data discarded, by reason: full, max_age, rejected, too_large, max_retries, corrupt, disk_error, shutdown.",
    ),
    gauge(
        BUFFER_BYTES,
        &["signal"],
        "Bytes the buffer holds: its segment files on disk plus records kept in memory (the memory queue when the disk buffer is off). The newest segment file stays until it is full, even when all of it was delivered, so this is not zero after a backlog is sent: tfo_agent_buffer_records counts what still waits.",
    ),
    gauge(
        BUFFER_RECORDS,
        &["signal"],
        "Encoded requests waiting in the buffer.",
    ),
    gauge(
        BUFFER_OLDEST_AGE,
        &["signal"],
        "Age of the oldest record waiting in the buffer, in seconds (0: empty).",
    ),
    counter(
        BUFFER_DROPPED_RECORDS,
        &["signal", "reason"],
        "Encoded requests discarded by the disk buffer, by reason (full, max_age, corrupt, disk_error, shutdown). Their data points are in tfo_agent_dropped_items_total when known.",
    ),
    counter(
        BUFFER_REPLAYED,
        &["signal"],
        "Records read back from the disk log after a restart or an outage.",
    ),
    gauge(
        BUFFER_DEGRADED,
        &["signal"],
        "1 while the disk buffer cannot be written (full or read-only file system, I/O error) and new data waits in the memory fallback; 0 otherwise.",
    ),
    counter(
        BUFFER_BACKPRESSURE,
        &["signal"],
        "Seconds producers spent waiting for room in a full buffer (when_full: block; always for logs): the log collector stops reading meanwhile, nothing is dropped.",
    ),
    counter(
        BUFFER_IO_ERRORS,
        &["signal", "op"],
        "Disk-buffer housekeeping that failed and is retried, by operation: sync (fdatasync of a segment or the directory; fsync: interval), ledger (writing the acknowledged position: until it works, a restart may send acknowledged records again), delete (removing a fully acknowledged segment: its space stays in use). Nothing is lost; each streak is logged once as a warning.",
    ),
    counter(
        BUFFER_SEGMENT_SYNCS,
        &["signal"],
        "Segment files flushed to disk with fdatasync by the interval sync (fsync: interval) or on close.",
    ),
    counter(
        BUFFER_SYNCS_SKIPPED,
        &["signal"],
        "Interval syncs that flushed nothing because every record written since the last one was already acknowledged (delivered, or dropped and counted).",
    ),
    gauge(
        LOGS_FILES_WATCHED,
        &[],
        "Log files followed (matched by collectors.logs.paths, or rotated away and still being read). Absent while the log collector is off.",
    ),
    gauge(
        LOGS_FILES_OPEN,
        &[],
        "File descriptors the log collector holds (at most collectors.logs.max_open_files). Absent while the log collector is off.",
    ),
    gauge(
        LOGS_FILES_IGNORED,
        &[],
        "Matching log files ignored in the last glob round because 100,000 files were already followed. Absent while the log collector is off.",
    ),
    counter(LOGS_READ_BYTES, &[], "Bytes read from log files."),
    counter(
        LOGS_READ_LINES,
        &[],
        "Lines read from log files (before multiline and partial-line joins and filters).",
    ),
    counter(
        LOGS_RECORDS,
        &[],
        "Log records produced by the log collector (after joins and filters), handed to the buffer.",
    ),
    counter(
        LOGS_RECORDS_DROPPED,
        &["reason"],
        "Log records not sent on purpose, by reason: excluded (collectors.logs.include_patterns / exclude_patterns).",
    ),
    counter(
        LOGS_BYTES_LOST,
        &["reason"],
        "Log file bytes lost before they could be read, by reason: truncated (a file was truncated before the agent read that part, and no copy of it was found).",
    ),
    counter(
        LOGS_LINES_SPLIT,
        &[],
        "Cuts made in lines (or joined records) longer than collectors.logs.max_line_bytes; each piece is sent as its own record.",
    ),
    counter(
        LOGS_DECODE,
        &["kind"],
        "Log records altered while decoding, by kind: invalid_utf8 (bytes replaced by U+FFFD), parse_error (not in the file's format, sent raw), multiline_timeout (a multiline record sent after collectors.logs.multiline.timeout).",
    ),
    counter(
        LOGS_FILE_EVENTS,
        &["kind"],
        "Log file changes followed, by kind: rotation (renamed or deleted while read), truncation, copy (recognised as a copy of a file being read, not read twice).",
    ),
    counter(
        LOGS_ERRORS,
        &["kind"],
        "Log collector errors, by kind: permission_denied, not_a_directory, too_many_open_files, io, checkpoint, start. A path that keeps failing counts once until it works again.",
    ),
    gauge(
        LOGS_CHECKPOINT_LAG,
        &[],
        "Bytes read from log files whose records are not yet durable in the buffer (not yet committed to the checkpoint): what a crash would read again. Absent while the log collector is off.",
    ),
    gauge(
        KUBE_API_UP,
        &[],
        "1 while every watched Kubernetes resource is listed and watched; 0 while the API server is unreachable, refuses a resource or the client cannot be configured. Absent while the Kubernetes collector is off.",
    ),
    gauge(
        KUBE_RESOURCE_UP,
        &["resource"],
        "1 while a Kubernetes resource's store is complete and watched; 0 while it is syncing, forbidden (RBAC) or failing. Cluster-wide resources appear only on the lease holder.",
    ),
    gauge(
        KUBE_OBJECTS,
        &["resource"],
        "Kubernetes objects held in the collector's store, by resource.",
    ),
    counter(
        KUBE_RELISTS,
        &["resource"],
        "Complete lists of a Kubernetes resource: the first and every relist (after a 410 Gone, a restart of the watch or a change of leader).",
    ),
    counter(
        KUBE_WATCH_ERRORS,
        &["resource", "kind"],
        "Kubernetes list/watch failures by resource and kind: expired (410 Gone, relisted), forbidden (RBAC; retried every 5 minutes), transport, decode, other (retried with backoff).",
    ),
    counter(
        KUBE_OBJECTS_SKIPPED,
        &["resource", "reason"],
        "Kubernetes objects not stored, by reason: malformed (did not parse; the watch goes on), excluded (collectors.kubernetes.exclude_namespaces).",
    ),
    gauge(
        KUBE_LEADER,
        &[],
        "1 while this agent reports cluster-wide Kubernetes state (it holds the lease, or leader election is off); 0 otherwise. Absent while the Kubernetes collector is off.",
    ),
    counter(
        KUBE_LEASE_EVENTS,
        &["kind"],
        "Leader election events: acquired, lost (stepped down or taken over), renew_failure, conflict (another writer updated the Lease first), api_error.",
    ),
    counter(
        KUBE_EVENTS,
        &["outcome"],
        "Kubernetes Events seen by the lease holder, by outcome: exported (as a log record), duplicate (same count already exported, e.g. after a relist), before_watermark (exported by an earlier leader), too_old (before the first-start lookback), excluded (namespace excluded).",
    ),
    counter(
        KUBE_ERRORS,
        &["kind"],
        "Kubernetes collector errors outside the watches, by kind: client (no kubeconfig or in-cluster credentials; retried every 30 s), start.",
    ),
    counter(
        RECEIVER_ITEMS,
        &["signal"],
        "Items (data points, log records, spans) the OTLP receiver stored in the buffer before answering success.",
    ),
    counter(
        RECEIVER_REFUSED,
        &["signal", "reason"],
        "Items the OTLP receiver did not take, by reason: full (buffer full; the client was told to retry), stopping, throttled (too many requests at once), invalid_items (rejected by partial success), no_buffer. Requests refused before decoding (unauthenticated, invalid, too_large) count in tfo_agent_receiver_requests_total only.",
    ),
    counter(
        RECEIVER_REQUESTS,
        &["transport", "signal", "status"],
        "OTLP receiver requests by transport (grpc, http), signal and status: ok, partial (some items rejected), full, stopping, throttled, unauthenticated, invalid, too_large, no_buffer. gRPC requests tonic refuses before decoding (oversized, undecodable) are not counted.",
    ),
    counter(
        HEARTBEATS,
        &["outcome"],
        "Platform heartbeat requests by outcome (success, failure).",
    ),
    gauge(
        LAST_HEARTBEAT,
        &[],
        "Unix time of the last successful heartbeat, in seconds (0: none yet; absent while the heartbeat does not run: heartbeat.enabled off or no telemetryflow.api_endpoint).",
    ),
    counter(
        PROCESS_CPU,
        &[],
        "CPU time (user + system) used by the agent process, in seconds.",
    ),
    gauge(
        PROCESS_RSS,
        &[],
        "Resident memory of the agent process, in bytes.",
    ),
    counter(
        TASK_RESTARTS,
        &["task"],
        "Internal tasks (collector/<name>, export, platform) that ended unexpectedly and were started again.",
    ),
    counter(
        CONFIG_RELOADS,
        &["source", "result"],
        "Configuration changes tried, by source (file: SIGHUP; remote: the platform's remote config; identity: an agent id assigned by the platform) and result (success, failure: refused, the running configuration stays).",
    ),
    gauge(
        CONFIG_LAST_RELOAD_OK,
        &[],
        "1 if the last configuration change applied (or none was tried since start), 0 if it was refused: the running configuration is not what the file or the platform says.",
    ),
];

pub fn lookup(name: &str) -> Option<&'static SelfMetric> {
    TABLE.iter().find(|m| m.name == name)
}

/// Renders one family: HELP, TYPE, then `name{labels} value` per series. A counter without
/// labels and without a value yet is rendered as 0 so dashboards see it from the start; a
/// gauge is not (see below).
pub fn render_family(out: &mut String, m: &SelfMetric, series: &[(&str, f64)]) {
    let kind = match m.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
    };
    let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
    let _ = writeln!(out, "# TYPE {} {kind}", m.name);
    // A counter nobody added to is 0. A gauge nobody set has no value: its collector or
    // client is not running, and a 0 would read as "down" (`kubernetes_api_up`) or "never"
    // to an alert on an agent that does not use it.
    if series.is_empty() && m.labels.is_empty() && m.kind == Kind::Counter {
        let _ = writeln!(out, "{} 0", m.name);
    }
    for (labels, v) in series {
        if labels.is_empty() {
            let _ = writeln!(out, "{} {}", m.name, fmt_value(*v));
        } else {
            let _ = writeln!(out, "{}{{{labels}}} {}", m.name, fmt_value(*v));
        }
    }
}

fn fmt_value(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Escapes a label value for the text exposition format.
pub fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// `docs/self-metrics.md`, generated from [`TABLE`].
#[cfg(test)]
pub fn markdown() -> String {
    let mut s = String::from(
        "# Agent self-metrics\n\n\
         Generated from `crates/tfo-agent/src/self_metrics.rs` by \
         `UPDATE_DOCS=1 cargo test -p tfo-agent self_metrics_doc`; do not edit by hand.\n\n\
         Served at `prometheus.listen_address` + `prometheus.path` (default \
         `http://127.0.0.1:8888/metrics`) in the Prometheus text format. With \
         `prometheus.expose_node_metrics: true` the same page also carries the node exporter \
         collector's metrics under node_exporter's names (see [metrics.md](metrics.md)).\n\n\
         | Name | Type | Labels | Description |\n|---|---|---|---|\n",
    );
    for m in TABLE {
        let kind = match m.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let labels = if m.labels.is_empty() {
            "".to_string()
        } else {
            m.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(s, "| `{}` | {kind} | {labels} | {} |", m.name, m.help);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for m in TABLE {
            assert!(seen.insert(m.name), "duplicate {}", m.name);
            assert!(m.name.starts_with("tfo_agent_"), "{}", m.name);
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
        }
    }

    #[test]
    fn self_metrics_doc() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/self-metrics.md");
        let want = markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/self-metrics.md is stale: run UPDATE_DOCS=1 cargo test -p tfo-agent self_metrics_doc"
        );
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
