//! From the config to the settings of each stage: host paths, state and buffer
//! directories (with the per-user fallback), node collector options, exporter settings and
//! retry policy. Pure mapping, no I/O beyond checking whether a directory is writable.

use std::path::PathBuf;
use std::time::Duration;

use tfo_collectors::{HostPaths, NodeOptions, PatternFilter, ProcessOptions, ProcessSource, TopBy};
use tfo_config::Config;
use tfo_exporter::tls::TlsSettings;
use tfo_exporter::{ExporterSettings, Signal};

use crate::identity::Identity;
use crate::pipeline::disk::DiskSettings;
use crate::pipeline::export::RetryPolicy;

pub fn host_paths(cfg: &Config) -> HostPaths {
    HostPaths::from_root(&cfg.collectors.root_path)
}

/// The process collector's options from `collectors.process`.
pub fn process_options(p: &tfo_config::ProcessCollector) -> ProcessOptions {
    ProcessOptions {
        processes: p.processes.clone(),
        exclude_processes: p.exclude_processes.clone(),
        include_command_lines: p.include_command_lines.clone(),
        exclude_command_lines: p.exclude_command_lines.clone(),
        users: p.users.clone(),
        exclude_users: p.exclude_users.clone(),
        kernel_threads: p.kernel_threads,
        top_n: p.top_n,
        top_by: match p.top_by {
            tfo_config::ProcessTopBy::Cpu => TopBy::Cpu,
            tfo_config::ProcessTopBy::Memory => TopBy::Memory,
        },
        max_processes: p.max_processes,
        disk_io: p.disk_io,
        cpu_utilization: p.cpu_utilization,
        threads: p.threads,
        paging_faults: p.paging_faults,
        uptime: p.uptime,
        file_descriptors: p.file_descriptors,
        context_switches: p.context_switches,
        command_line: p.command_line,
        redact_patterns: p.redact_patterns.clone(),
        source: match p.source {
            tfo_config::ProcessSource::Auto => ProcessSource::Auto,
            tfo_config::ProcessSource::Procfs => ProcessSource::Procfs,
        },
    }
}

/// The node collector's options from `collectors.node_exporter`. An unset filter keeps
/// node_exporter's default; an empty one filters nothing.
pub fn node_options(n: &tfo_config::NodeExporter) -> NodeOptions {
    let d = NodeOptions::default();
    let filter = |inc: &Option<String>, exc: &Option<String>, def: &PatternFilter| PatternFilter {
        include: inc.clone().or_else(|| def.include.clone()),
        exclude: exc.clone().or_else(|| def.exclude.clone()),
    };
    NodeOptions {
        cpu: n.cpu,
        cpu_frequency: n.cpu_frequency,
        cpu_throttles: n.cpu_throttles,
        memory: n.memory,
        disk_io: n.disk_io,
        filesystem: n.filesystem,
        network: n.network,
        load_avg: n.load_avg,
        thermal: n.thermal,
        pressure: n.pressure,
        vmstat: n.vmstat,
        sockstat: n.sockstat,
        netstat: n.netstat,
        entropy: n.entropy,
        filefd: n.filefd,
        conntrack: n.conntrack,
        hwmon: n.hwmon,
        timex: n.timex,
        disk_devices: filter(
            &n.disk_devices_include,
            &n.disk_devices_exclude,
            &d.disk_devices,
        ),
        mount_points: filter(
            &n.mount_points_include,
            &n.mount_points_exclude,
            &d.mount_points,
        ),
        fs_types: filter(&n.fs_types_include, &n.fs_types_exclude, &d.fs_types),
        network_interfaces: filter(
            &n.network_interfaces_include,
            &n.network_interfaces_exclude,
            &d.network_interfaces,
        ),
    }
}

/// The buffer directory: `buffer.path`, or, when that is the default, not writable and
/// the agent is not root, a per-user state directory (said in the log).
pub fn buffer_dir(cfg: &Config) -> PathBuf {
    user_fallback(
        &cfg.buffer.path,
        &tfo_config::Buffer::default().path,
        "buffer",
    )
}

/// The agent's state directory (`agent.data_dir`: persisted agent id, state.json), with the
/// same per-user fallback as the buffer.
pub fn data_dir(cfg: &Config) -> PathBuf {
    user_fallback(
        &cfg.agent.data_dir,
        &tfo_config::Agent::default().data_dir,
        "",
    )
}

fn user_fallback(configured: &std::path::Path, default: &std::path::Path, leaf: &str) -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root || configured != default || writable(configured) {
        return configured.to_path_buf();
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")));
    match state {
        Some(s) => {
            let mut dir = s.join("tfo-agent");
            if !leaf.is_empty() {
                dir = dir.join(leaf);
            }
            tracing::info!(
                path = %dir.display(),
                "{} is not writable by this user; using a per-user directory",
                configured.display()
            );
            dir
        }
        None => configured.to_path_buf(),
    }
}

/// Whether files can be created in `dir`, or in its nearest existing ancestor when it does
/// not exist yet (it would be created there). Tried for real, with a file created and
/// removed at once: permission bits say nothing about read-only mounts or /proc, and root
/// passes every `access(2)` check.
pub fn writable(dir: &std::path::Path) -> bool {
    let mut p = dir;
    while !p.exists() {
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
    if !p.is_dir() {
        return false;
    }
    let probe = p.join(format!(".tfo-agent-probe.{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

pub fn exporter_settings(cfg: &Config, identity: &Identity) -> ExporterSettings {
    let tf = &cfg.telemetryflow;
    let mut headers = Vec::new();
    if let Some(id) = tf.api_key_id.as_deref().filter(|s| !s.is_empty()) {
        headers.push(("X-TelemetryFlow-Key-ID".to_string(), id.to_string()));
    }
    if let Some(secret) = tf
        .api_key_secret
        .as_ref()
        .filter(|s| !s.expose().is_empty())
    {
        headers.push((
            "X-TelemetryFlow-Key-Secret".to_string(),
            secret.expose().to_string(),
        ));
    }
    headers.push((
        "X-TelemetryFlow-Agent-ID".to_string(),
        identity.agent_id.clone(),
    ));
    for (k, v) in &cfg.exporter.otlp.headers {
        headers.retain(|(hk, _)| !hk.eq_ignore_ascii_case(k));
        headers.push((k.clone(), v.clone()));
    }
    ExporterSettings {
        endpoint: tf.endpoint.clone(),
        gzip: matches!(cfg.exporter.otlp.compression, tfo_config::Compression::Gzip),
        timeout: tf.timeout,
        tls: tf.tls.enabled.then(|| TlsSettings {
            ca_file: tf.tls.ca_file.clone(),
            cert_file: tf.tls.cert_file.clone(),
            key_file: tf.tls.key_file.clone(),
            server_name: tf.tls.server_name.clone(),
            skip_verify: tf.tls.skip_verify,
        }),
        headers,
        http_path_version: match cfg.exporter.otlp.endpoint_version {
            tfo_config::EndpointVersion::V1 => "v1",
            tfo_config::EndpointVersion::V2 => "v2",
        },
        user_agent: crate::identity::user_agent(),
    }
}

/// Most metrics (or spans) per export request and per stored metrics record:
/// `exporter.otlp.max_batch_size`, or no count limit when it is 0 (the byte bounds still
/// apply). `batch_size` is only the trigger: a cycle of a few hundred metrics goes out as
/// one request instead of one per hundred, each of which costs a gRPC round trip, HTTP/2
/// framing and wake-ups (about a fifth of the agent's CPU at one cycle a second).
pub fn metrics_per_request(otlp: &tfo_config::Otlp) -> usize {
    match otlp.max_batch_size {
        0 => usize::MAX,
        n => n,
    }
}

pub fn retry_policy(cfg: &Config) -> RetryPolicy {
    let r = &cfg.telemetryflow.retry;
    RetryPolicy {
        enabled: r.enabled,
        max_attempts: r.max_attempts,
        initial_interval: r.initial_interval,
        max_interval: r.max_interval,
    }
}

/// How often the log collector's state is written: its checkpoint file, and the logs
/// buffer's ledger (acknowledgements). What a `kill -9` makes the agent read or send again
/// is what was committed or acknowledged during this interval, plus the batch in flight.
/// A checkpoint write is two fsyncs on a small file, a ledger write a 20-byte overwrite.
pub const LOGS_STATE_INTERVAL: Duration = Duration::from_millis(250);

/// Which buffers beside metrics (always open) are in use, decided when the agent starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Active {
    pub logs: bool,
    pub traces: bool,
}

impl Active {
    /// Logs: the log collector or Kubernetes events are enabled, the OTLP receiver is (it
    /// takes logs), or an earlier run left logs in `buffer.path/logs`. Traces: the OTLP
    /// receiver is enabled, or an earlier run left traces.
    pub fn of(cfg: &Config) -> Active {
        let receiver = cfg.receivers.otlp.enabled;
        Active {
            logs: cfg.collectors.logs.enabled
                || kube_events(cfg)
                || receiver
                || backlog(cfg, Signal::Logs),
            traces: receiver || backlog(cfg, Signal::Traces),
        }
    }

    pub fn has(self, signal: Signal) -> bool {
        match signal {
            Signal::Metrics => true,
            Signal::Logs => self.logs,
            Signal::Traces => self.traces,
        }
    }
}

/// Which part of `buffer.max_size_mb` and `buffer.memory_limit_mb` a signal's buffer gets.
///
/// The bounds are totals across signals, split when the agent starts into equal shares
/// among the signals in use (metrics also get the remainder): while only metrics are
/// buffered they get everything; with logs, halves; with logs and traces (the OTLP
/// receiver), thirds. Fixed shares, so a log or trace flood can never push metrics out
/// and a metrics backlog can never stall a producer that blocks.
pub fn buffer_share(total_bytes: u64, signal: Signal, active: Active) -> u64 {
    if !active.has(signal) {
        return 0;
    }
    let n = 1 + u64::from(active.logs) + u64::from(active.traces);
    let share = total_bytes / n;
    match signal {
        Signal::Metrics => total_bytes - share * (n - 1),
        _ => share,
    }
}

/// Whether an earlier run left records of `signal` in its disk buffer (they must still be
/// delivered).
fn backlog(cfg: &Config, signal: Signal) -> bool {
    if !cfg.buffer.enabled {
        return false;
    }
    let dir = buffer_dir(cfg).join(signal.as_str());
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.path().extension().is_some_and(|x| x == "seg")
                && e.metadata().is_ok_and(|m| m.len() > 0)
        })
    })
}

/// The disk buffer settings of one signal: its share of the bounds (see [`buffer_share`]);
/// metrics follow `buffer.when_full`, logs and traces always block (backpressure: the log
/// collector stops reading, the OTLP receiver asks its clients to retry; nothing is dropped).
pub fn disk_settings(cfg: &Config, signal: Signal, active: Active) -> DiskSettings {
    let b = &cfg.buffer;
    DiskSettings {
        dir: buffer_dir(cfg),
        max_bytes: buffer_share(b.max_size_mb.saturating_mul(1 << 20), signal, active),
        memory_bytes: buffer_share(b.memory_limit_mb.saturating_mul(1 << 20), signal, active),
        fsync: match b.fsync {
            tfo_config::FsyncMode::Always => tfo_buffer::FsyncMode::Always,
            tfo_config::FsyncMode::Interval => tfo_buffer::FsyncMode::Interval(b.fsync_interval),
            tfo_config::FsyncMode::Never => tfo_buffer::FsyncMode::Never,
        },
        // Metrics: drop the oldest unless `block` is asked for explicitly.
        block_when_full: signal != Signal::Metrics || b.when_full == tfo_config::WhenFull::Block,
        max_age: b.max_age,
        ledger_interval: match signal {
            Signal::Metrics => Duration::from_secs(1),
            Signal::Logs | Signal::Traces => LOGS_STATE_INTERVAL,
        },
    }
}

/// The log collector's tailer settings from `collectors.logs` (the keys have the same
/// names; `encoding`, `attributes` and `include_file_path` belong to the record conversion).
pub fn tailer_config(l: &tfo_config::LogsCollector) -> tfo_logs::TailerConfig {
    tfo_logs::TailerConfig {
        paths: l.paths.clone(),
        exclude_paths: l.exclude_paths.clone(),
        include_patterns: l.include_patterns.clone(),
        exclude_patterns: l.exclude_patterns.clone(),
        start_at: match l.start_at {
            tfo_config::LogStartAt::End => tfo_logs::StartAt::End,
            tfo_config::LogStartAt::Beginning => tfo_logs::StartAt::Beginning,
        },
        poll_interval: l.poll_interval,
        max_line_bytes: l.max_line_bytes,
        max_open_files: l.max_open_files,
        multiline: tfo_logs::Multiline {
            start_pattern: l.multiline.start_pattern.clone(),
            end_pattern: l.multiline.end_pattern.clone(),
            timeout: l.multiline.timeout,
        },
        format: match l.format {
            tfo_config::LogFileFormat::Auto => tfo_logs::Format::Auto,
            tfo_config::LogFileFormat::Raw => tfo_logs::Format::Raw,
            tfo_config::LogFileFormat::Json => tfo_logs::Format::Json,
            tfo_config::LogFileFormat::Cri => tfo_logs::Format::Cri,
            tfo_config::LogFileFormat::Docker => tfo_logs::Format::Docker,
        },
        checkpoint_interval: LOGS_STATE_INTERVAL,
        ..tfo_logs::TailerConfig::default()
    }
}

/// Where the log collector keeps its checkpoints: `agent.data_dir/logs`.
pub fn logs_checkpoint_dir(cfg: &Config) -> PathBuf {
    data_dir(cfg).join("logs")
}

/// Whether the Kubernetes collector exports Events (through the logs buffer).
pub fn kube_events(cfg: &Config) -> bool {
    let k = &cfg.collectors.kubernetes;
    k.enabled && k.collect_events
}

/// Whether the agent runs in Kubernetes: its collector is on, or the kubelet gave this
/// container the API server's address (set in every pod).
pub fn in_kubernetes(cfg: &Config) -> bool {
    cfg.collectors.kubernetes.enabled || env_nonempty("KUBERNETES_SERVICE_HOST").is_some()
}

/// This agent's node: `collectors.kubernetes.node_name`, then `$NODE_NAME` (the downward
/// API), then `$HOSTNAME` (the node's name in a hostNetwork pod, as the DaemonSet sets it).
pub fn kube_node_name(cfg: &Config) -> Option<String> {
    nonempty(&cfg.collectors.kubernetes.node_name)
        .or_else(|| env_nonempty("NODE_NAME"))
        .or_else(|| env_nonempty("HOSTNAME"))
}

/// `k8s.cluster.name`: `collectors.kubernetes.cluster_name`, then the `cluster` tag (the
/// seed's configs set it), then `$CLUSTER_NAME`.
pub fn kube_cluster_name(cfg: &Config) -> Option<String> {
    nonempty(&cfg.collectors.kubernetes.cluster_name)
        .or_else(|| cfg.agent.tags.get("cluster").and_then(|c| nonempty(c)))
        .or_else(|| env_nonempty("CLUSTER_NAME"))
}

/// The namespace of the leader election Lease: configured, then `$POD_NAMESPACE`, then
/// `default`.
pub fn kube_lease_namespace(cfg: &Config) -> String {
    nonempty(&cfg.collectors.kubernetes.leader_election.lease_namespace)
        .or_else(|| env_nonempty("POD_NAMESPACE"))
        .unwrap_or_else(|| "default".to_string())
}

fn nonempty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

pub fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().and_then(|v| nonempty(&v))
}

/// The eBPF collector: its programs load at its first cycle, so building it does no I/O and
/// needs no privilege (`config validate` builds it too).
pub fn ebpf_collector(cfg: &Config) -> tfo_collectors::ebpf::EbpfCollector {
    let e = &cfg.collectors.ebpf;
    let opts = tfo_ebpf::Options {
        syscalls: e.collect_syscalls,
        network: e.collect_network,
        file_io: e.collect_file_io,
        scheduler: e.collect_scheduler,
        memory: e.collect_memory,
        tcp_events: e.collect_tcp_events,
        syscall_latency: e.syscall_latency,
        exclude_processes: e.exclude_processes.clone(),
        exclude_self: true,
        btf_path: nonempty(&e.btf_path).map(PathBuf::from),
        pin_path: nonempty(&e.pin_path).map(PathBuf::from),
    };
    let categories = tfo_collectors::ebpf::EbpfOptions {
        syscalls: opts.syscalls,
        network: opts.network,
        file_io: opts.file_io,
        scheduler: opts.scheduler,
        memory: opts.memory,
        tcp_events: opts.tcp_events,
        syscall_latency: opts.syscall_latency,
    };
    let mut loader: Option<tfo_ebpf::Loader> = None;
    let source = Box::new(move || {
        let l = loader.get_or_insert_with(|| {
            let (l, programs) = tfo_ebpf::Loader::start(opts.clone());
            let attached = programs.iter().filter(|p| p.attached).count();
            tracing::info!(
                collector = "ebpf",
                attached,
                programs = programs.len(),
                "eBPF programs loaded"
            );
            l
        });
        Some(l.snapshot())
    });
    tfo_collectors::ebpf::EbpfCollector::new(source, categories).with_start_time(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    )
}

/// The client options of `collectors.ebpf.hubble`, checked without I/O.
pub fn hubble_client_options(cfg: &Config) -> Result<tfo_hubble::client::ClientOptions, String> {
    let h = &cfg.collectors.ebpf.hubble;
    let address = tfo_hubble::client::Address::parse(&h.address)?;
    let tls = h.tls.enabled.then(|| tfo_hubble::client::TlsOptions {
        ca_file: h.tls.ca_file.clone(),
        cert_file: h.tls.cert_file.clone(),
        key_file: h.tls.key_file.clone(),
        server_name: h.tls.server_name.clone(),
    });
    if tls.is_some() && matches!(address, tfo_hubble::client::Address::Unix(_)) {
        return Err("TLS is enabled but the address is a Unix socket".into());
    }
    let mut opts = tfo_hubble::client::ClientOptions::new(address, tls);
    // Tests shorten the retry periods; never below 10 ms.
    if let Some(ms) = env_nonempty("TFO_HUBBLE_RETRY_MS").and_then(|v| v.parse::<u64>().ok()) {
        let d = std::time::Duration::from_millis(ms.max(10));
        opts.retry_missing = d;
        opts.backoff_initial = d;
        opts.backoff_max = d;
    }
    Ok(opts)
}

/// The Hubble collector: its client starts on a thread of its own at the first cycle (so
/// building it does no I/O, for `config validate`) and stops when the collector is dropped.
/// Its counters start when the client starts and live as long as the collector.
pub fn hubble_collector(cfg: &Config) -> Result<tfo_collectors::hubble::HubbleCollector, String> {
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};
    use tfo_collectors::hubble::{Link, Reading};
    use tfo_hubble::aggregate::{AggOptions, Aggregator};

    struct Running {
        agg: Arc<Mutex<Aggregator>>,
        status: Arc<tfo_hubble::client::Status>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: std::thread::JoinHandle<()>,
    }
    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(s) = self.stop.take() {
                let _ = s.send(());
            }
        }
    }

    let opts = hubble_client_options(cfg)?;
    let h = &cfg.collectors.ebpf.hubble;
    let agg_opts = AggOptions {
        namespaces: h.namespaces,
        max_series: h.max_series,
    };
    let mut running: Option<Running> = None;
    // Failures of clients that are gone (their thread ended: a panic, or a runtime that
    // could not start), so the total the collector sees never goes back.
    let mut ended_failures = 0u64;
    let source = Box::new(move || {
        let mut restarted = false;
        if running.as_ref().is_some_and(|r| r.thread.is_finished()) {
            if let Some(r) = running.take() {
                ended_failures += r.status.failures.load(Ordering::Relaxed) + 1;
            }
            tracing::warn!(
                collector = "ebpf.hubble",
                "the Hubble client stopped; starting it again"
            );
            restarted = true;
        }
        if running.is_none() {
            let start = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let agg = Arc::new(Mutex::new(Aggregator::new(agg_opts, start)));
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let status = Arc::new(tfo_hubble::client::Status::default());
            let (a, o, st) = (agg.clone(), opts.clone(), status.clone());
            let spawned = std::thread::Builder::new()
                .name("tfo-hubble".into())
                .spawn(move || {
                    if crate::failpoint::fire("hubble_client_exit") {
                        return;
                    }
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(collector = "ebpf.hubble", error = %e, "cannot start the Hubble client's runtime");
                            return;
                        }
                    };
                    rt.block_on(tfo_hubble::client::run(o, a, st, async {
                        let _ = rx.await;
                    }));
                });
            let thread = match spawned {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(collector = "ebpf.hubble", error = %e, "cannot start the Hubble client thread");
                    ended_failures += 1;
                    return Reading {
                        snapshot: None,
                        link: Link::Down,
                        failures: ended_failures,
                    };
                }
            };
            running = Some(Running {
                agg,
                status,
                stop: Some(tx),
                thread,
            });
        }
        let Some(r) = running.as_ref() else {
            return Reading::default();
        };
        let own = r.status.failures.load(Ordering::Relaxed);
        let link = if restarted {
            Link::Down
        } else if r.status.connected() {
            Link::Open
        } else if own > 0 {
            Link::Down
        } else {
            Link::Connecting
        };
        Reading {
            snapshot: Some(r.agg.lock().unwrap_or_else(|p| p.into_inner()).snapshot()),
            link,
            failures: ended_failures + own,
        }
    });
    Ok(tfo_collectors::hubble::HubbleCollector::new(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_defaults_are_the_collectors_own() {
        // Two lists kept in two crates (tfo-config has no collector dependency): equal.
        let from_config = process_options(&tfo_config::ProcessCollector::default());
        assert_eq!(from_config, ProcessOptions::default());
    }

    #[test]
    fn buffer_shares_add_up_to_the_total() {
        let mib = 1u64 << 20;
        let none = Active::default();
        assert_eq!(buffer_share(500 * mib, Signal::Metrics, none), 500 * mib);
        assert_eq!(buffer_share(500 * mib, Signal::Logs, none), 0);
        assert_eq!(buffer_share(500 * mib, Signal::Traces, none), 0);
        let logs = Active {
            logs: true,
            traces: false,
        };
        let all = Active {
            logs: true,
            traces: true,
        };
        for total in [1, 2, 3, 500, 501] {
            let t = total * mib + total;
            for active in [logs, all] {
                let shares: Vec<u64> = Signal::ALL
                    .iter()
                    .map(|s| buffer_share(t, *s, active))
                    .collect();
                assert_eq!(shares.iter().sum::<u64>(), t, "{total}");
                let used: Vec<u64> = shares.into_iter().filter(|s| *s > 0).collect();
                let (lo, hi) = (used.iter().min().unwrap(), used.iter().max().unwrap());
                assert!(hi - lo < used.len() as u64, "{total}: {used:?}");
            }
        }
    }
}
