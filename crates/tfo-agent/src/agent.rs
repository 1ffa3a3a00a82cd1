//! Agent wiring: builds the pipeline from a config, runs it, and handles signals
//! (SIGTERM/SIGINT: stop collecting, flush, exit; SIGHUP: reload the config file).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tfo_collectors::{
    Collector, HostPaths, Metric, NodeCollector, NodeOptions, PatternFilter, SystemCollector,
    SystemOptions,
};
use tfo_config::{Config, Loaded};
use tfo_exporter::encode::MetricsEncoder;
use tfo_exporter::tls::TlsSettings;
use tfo_exporter::{Exporter, ExporterSettings};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::events::{DropReason, Stats};
use crate::identity::{Identity, VERSION};
use crate::pipeline::buffer::Buffer;
use crate::pipeline::disk::{DiskBuffer, DiskSettings};
use crate::pipeline::export::{ExportLoop, RetryPolicy};
use crate::pipeline::{collect, queue::Queue};
use crate::platform::{self, Control};
use crate::serve;

/// A runtime failure (exit code 1).
#[derive(Debug)]
pub struct RunError(pub String);

/// A collector and its interval.
pub type Scheduled = (Box<dyn Collector>, Duration);

pub fn host_paths(cfg: &Config) -> HostPaths {
    HostPaths::from_root(&cfg.collectors.root_path)
}

/// The collectors this build can run, with their intervals, and one warning per collector
/// that is enabled in the config but not part of this build.
pub fn build_collectors(cfg: &Config) -> (Vec<Scheduled>, Vec<String>) {
    let paths = host_paths(cfg);
    let c = &cfg.collectors;
    let mut out: Vec<Scheduled> = Vec::new();
    if c.system.enabled {
        let opts = SystemOptions {
            cpu: c.system.cpu,
            memory: c.system.memory,
            disk: c.system.disk,
            network: c.system.network,
        };
        out.push((
            Box::new(SystemCollector::new(paths.clone(), opts)),
            c.system.interval,
        ));
    }
    let mut warnings = Vec::new();
    if c.node_exporter.enabled {
        match NodeCollector::new(paths.clone(), node_options(&c.node_exporter)) {
            Ok(n) => out.push((Box::new(n), c.node_exporter.interval)),
            // Patterns are checked by config validation; this is a second line of defence.
            Err(e) => warnings.push(format!("collectors.node_exporter is not started: {e}")),
        }
    }
    for (name, enabled) in [
        ("kubernetes", c.kubernetes.enabled),
        ("ebpf", c.ebpf.enabled),
        ("process", c.process.enabled),
        ("logs", c.logs.enabled),
    ] {
        if enabled {
            warnings.push(format!(
                "collectors.{name} is enabled but not available in this build; it will not run"
            ));
        }
    }
    (out, warnings)
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

/// Warnings about features configured on but not in this build, said once at start.
pub fn unavailable_feature_warnings(cfg: &Config) -> Vec<String> {
    let mut w = build_collectors(cfg).1;
    if cfg.heartbeat.enabled && cfg.telemetryflow.api_endpoint.is_none() {
        w.push(
            "heartbeat.enabled is true but telemetryflow.api_endpoint (TELEMETRYFLOW_API_ENDPOINT) \
             is not set: platform registration, heartbeat and remote config are off"
                .into(),
        );
    }
    w
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

/// Whether `dir` exists and is writable, or could be created.
fn writable(dir: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let mut p = dir;
    loop {
        if p.exists() {
            let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
                return false;
            };
            // SAFETY: access reads the NUL-terminated path we pass.
            return unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0;
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
}

fn open_buffer(cfg: &Config, stats: &Arc<Stats>) -> Result<Buffer, RunError> {
    let b = &cfg.buffer;
    let memory = (b.memory_limit_mb as usize).saturating_mul(1 << 20);
    if !b.enabled {
        tracing::info!(
            memory_limit_mb = b.memory_limit_mb,
            "buffer.enabled is false: data waits in a bounded memory queue; what is queued at exit is counted as dropped"
        );
        return Ok(Buffer::Memory(Queue::new(
            memory,
            cfg.exporter.otlp.batch_size,
            stats.clone(),
        )));
    }
    let settings = DiskSettings {
        dir: buffer_dir(cfg),
        max_bytes: b.max_size_mb.saturating_mul(1 << 20),
        memory_bytes: memory as u64,
        fsync: match b.fsync {
            tfo_config::FsyncMode::Always => tfo_buffer::FsyncMode::Always,
            tfo_config::FsyncMode::Interval => tfo_buffer::FsyncMode::Interval(b.fsync_interval),
            tfo_config::FsyncMode::Never => tfo_buffer::FsyncMode::Never,
        },
        // Metrics: drop the oldest unless `block` is asked for explicitly.
        block_when_full: b.when_full == tfo_config::WhenFull::Block,
        max_age: b.max_age,
    };
    let disk = DiskBuffer::open(&settings, tfo_exporter::Signal::Metrics, stats.clone())
        .map_err(RunError)?;
    tracing::info!(path = %disk.dir().display(), max_size_mb = b.max_size_mb, fsync = ?b.fsync, "disk buffer open");
    Ok(Buffer::Disk(Box::new(disk)))
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

/// One generation of the pipeline; replaced whole on reload, while the buffer is kept.
struct Pipeline {
    cancel: CancellationToken,
    collectors: Vec<JoinHandle<()>>,
    exporter: Option<JoinHandle<ExportLoop>>,
}

/// What a config needs that can fail: built before the running pipeline is stopped, so a
/// reload with a bad endpoint or TLS file keeps the old one.
struct Prepared {
    identity: Identity,
    exporter: Option<Exporter>,
}

fn prepare(cfg: &Config) -> Result<Prepared, RunError> {
    let identity = Identity::resolve(cfg, &host_paths(cfg));
    let otlp = &cfg.exporter.otlp;
    let exporter = if otlp.enabled {
        let settings = exporter_settings(cfg, &identity);
        let exp = match cfg.telemetryflow.protocol {
            tfo_config::Protocol::Grpc => Exporter::grpc(&settings),
            tfo_config::Protocol::Http => Exporter::http(&settings),
        }
        .map_err(|e| RunError(e.0))?;
        if cfg.telemetryflow.tls.enabled && cfg.telemetryflow.tls.skip_verify {
            tracing::warn!(
                "telemetryflow.tls.skip_verify is true: the collector's certificate is NOT verified"
            );
        }
        tracing::info!(target = %exp.target(), batch_size = otlp.batch_size, flush_interval = ?otlp.flush_interval, "exporting OTLP");
        Some(exp)
    } else {
        tracing::warn!("exporter.otlp.enabled is false: collected data is counted and discarded");
        None
    };
    Ok(Prepared { identity, exporter })
}

/// The node collector's last cycle, for `/metrics` under node_exporter's names.
pub type NodeSnapshot = Arc<std::sync::Mutex<Vec<Metric>>>;

fn start(
    cfg: &Config,
    prepared: Prepared,
    buffer: &Arc<Buffer>,
    stats: &Arc<Stats>,
    node_view: &NodeSnapshot,
) -> Pipeline {
    let Prepared { identity, exporter } = prepared;
    let otlp = &cfg.exporter.otlp;
    buffer.set_batch_items(otlp.batch_size);
    let cancel = CancellationToken::new();
    let encoder = Arc::new(MetricsEncoder::new(
        identity.resource_attributes(cfg),
        VERSION,
        otlp.batch_size,
    ));
    let (collectors, _) = build_collectors(cfg);
    if collectors.is_empty() {
        tracing::warn!("no collector is enabled: nothing will be collected");
    }
    let mut handles = Vec::new();
    for (c, interval) in collectors {
        tracing::info!(collector = c.name(), interval = ?interval, "collector started");
        let keep = (c.name() == "node_exporter" && cfg.prometheus.expose_node_metrics)
            .then(|| node_view.clone());
        handles.push(collect::spawn(
            c,
            interval,
            keep,
            encoder.clone(),
            buffer.clone(),
            stats.clone(),
            cancel.clone(),
        ));
    }
    let exporter = exporter.map(|exporter| {
        let lp = ExportLoop {
            exporter,
            buffer: buffer.clone(),
            stats: stats.clone(),
            batch_size: otlp.batch_size,
            flush_interval: otlp.flush_interval,
            retry: RetryPolicy {
                enabled: cfg.telemetryflow.retry.enabled,
                max_attempts: cfg.telemetryflow.retry.max_attempts,
                initial_interval: cfg.telemetryflow.retry.initial_interval,
                max_interval: cfg.telemetryflow.retry.max_interval,
            },
        };
        tokio::spawn(lp.run(cancel.clone()))
    });
    if exporter.is_none() {
        stats.set_exporter_state("disabled", None);
        // Nothing will ever drain the buffer: discard and count on a timer instead.
        let (q, c) = (buffer.clone(), cancel.clone());
        handles.push(tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! { _ = c.cancelled() => return, _ = t.tick() => {} }
                q.discard_all(DropReason::Rejected, "exporter.otlp.enabled is false");
            }
        }));
    }
    tracing::info!(agent_id = %identity.agent_id, agent_name = %identity.agent_name, "agent running");
    Pipeline {
        cancel,
        collectors: handles,
        exporter,
    }
}

impl Pipeline {
    /// Stops collecting and returns the export loop (if any) for a final flush.
    async fn stop(self) -> Option<ExportLoop> {
        self.cancel.cancel();
        for h in self.collectors {
            let _ = h.await;
        }
        match self.exporter {
            Some(h) => h.await.ok(),
            None => None,
        }
    }
}

pub async fn run(loaded: Loaded, config_path: Option<PathBuf>) -> Result<(), RunError> {
    let mut cfg = loaded.config;
    match &loaded.source {
        Some(p) => tracing::info!(config = %p.display(), version = VERSION, "starting tfo-agent"),
        None => tracing::info!(
            version = VERSION,
            "starting tfo-agent with built-in defaults (no config file found)"
        ),
    }
    for w in loaded
        .warnings
        .iter()
        .chain(unavailable_feature_warnings(&cfg).iter())
    {
        tracing::warn!("{w}");
    }
    let stats = Arc::new(Stats::default());
    let buffer = Arc::new(open_buffer(&cfg, &stats)?);
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| RunError(format!("signal handler: {e}")))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| RunError(format!("signal handler: {e}")))?;
    let mut hup =
        signal(SignalKind::hangup()).map_err(|e| RunError(format!("signal handler: {e}")))?;
    let endpoints = CancellationToken::new();
    let node_view: NodeSnapshot = Arc::default();
    serve_endpoints(&cfg, &stats, &node_view, &endpoints).await?;
    // Buffer upkeep (max_age, corruption found while reading, gauges), independent of reloads.
    let upkeep = {
        let (b, s, c) = (buffer.clone(), stats.clone(), endpoints.clone());
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! { _ = c.cancelled() => return, _ = t.tick() => {} }
                let (b2, s2) = (b.clone(), s.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    b2.maintain();
                    b2.publish(&s2);
                })
                .await;
            }
        })
    };
    let mut pipeline = start(&cfg, prepare(&cfg)?, &buffer, &stats, &node_view);
    let reload_path = config_path.or(loaded.source);
    let (control_tx, mut control_rx) = tokio::sync::mpsc::channel::<Control>(4);
    let (interval_tx, interval_rx) = tokio::sync::watch::channel(cfg.heartbeat.interval);
    let shared = Arc::new(platform::Shared::default());
    let platform_task = spawn_platform(&cfg, &stats, &shared, control_tx, interval_rx, &endpoints)?;
    loop {
        tokio::select! {
            Some(msg) = control_rx.recv() => {
                let (new_cfg, what) = match msg {
                    Control::IdAssigned => (cfg.clone(), "agent id assigned by the platform"),
                    Control::Remote { version, config } => {
                        match tfo_config::remote::merge_remote(&cfg, &config) {
                            Err(e) => {
                                tracing::error!(error = %e, version = ?version, "remote configuration refused; the running configuration stays");
                                *shared.remote_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                                continue;
                            }
                            Ok(m) => {
                                *shared.remote_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                                if m.changed.is_empty() {
                                    tracing::info!(version = ?version, "remote configuration matches the running one");
                                    continue;
                                }
                                tracing::info!(version = ?version, changed = ?m.changed, "applying remote configuration");
                                if m.changed.iter().any(|p| p.starts_with("buffer.") || p.starts_with("prometheus.") || p.starts_with("health.")) {
                                    tracing::warn!("remote changes to buffer, prometheus or health settings take effect at the next restart");
                                }
                                (m.config, "remote configuration applied")
                            }
                        }
                    }
                };
                let prepared = match prepare(&new_cfg) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = %e.0, "{what}: cannot be applied; the running configuration stays");
                        *shared.remote_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.0);
                        continue;
                    }
                };
                let _ = pipeline.stop().await;
                cfg = new_cfg;
                let _ = interval_tx.send(cfg.heartbeat.interval);
                pipeline = start(&cfg, prepared, &buffer, &stats, &node_view);
                tracing::info!("{what}");
            }
            _ = term.recv() => { tracing::info!("SIGTERM received; stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT received; stopping"); break; }
            _ = hup.recv() => {
                let Some(path) = reload_path.as_deref() else {
                    tracing::warn!("SIGHUP received but the agent runs on built-in defaults; nothing to reload");
                    continue;
                };
                match tfo_config::load(Some(path)) {
                    Err(e) => tracing::error!(error = %e, "config reload rejected; the running configuration stays"),
                    Ok(new) => {
                        let prepared = match prepare(&new.config) {
                            Ok(p) => p,
                            Err(e) => {
                                tracing::error!(error = %e.0, "config reload rejected; the running configuration stays");
                                continue;
                            }
                        };
                        for w in &new.warnings { tracing::warn!("{w}"); }
                        if new.config.buffer != cfg.buffer {
                            tracing::warn!("buffer settings changed; they take effect at the next restart");
                        }
                        let _ = pipeline.stop().await;
                        cfg = new.config;
                        pipeline = start(&cfg, prepared, &buffer, &stats, &node_view);
                        tracing::info!(config = %path.display(), "configuration reloaded");
                    }
                }
            }
        }
    }
    stats.set_stopping();
    let deadline = tokio::time::Instant::now() + cfg.agent.shutdown_timeout;
    if let Some(exp) = pipeline.stop().await {
        exp.final_flush(deadline).await;
    }
    endpoints.cancel();
    let _ = upkeep.await;
    if let Some(t) = platform_task {
        let _ = t.await;
    }
    {
        let b = buffer.clone();
        let _ = tokio::task::spawn_blocking(move || b.shutdown()).await;
    }
    tracing::info!(
        exported = stats.counter("tfo_agent_exported_items_total", "signal=\"metrics\""),
        dropped = stats.dropped_total(),
        last_export_unix = stats.last_export_unix(),
        "tfo-agent stopped"
    );
    Ok(())
}

/// Starts the platform loop when heartbeat is on and a platform is configured.
fn spawn_platform(
    cfg: &Config,
    stats: &Arc<Stats>,
    shared: &Arc<platform::Shared>,
    control: tokio::sync::mpsc::Sender<Control>,
    interval: tokio::sync::watch::Receiver<Duration>,
    cancel: &CancellationToken,
) -> Result<Option<JoinHandle<()>>, RunError> {
    if !cfg.heartbeat.enabled {
        return Ok(None);
    }
    let identity = Identity::resolve(cfg, &host_paths(cfg));
    let Some(settings) = platform::settings(cfg, &identity.agent_name) else {
        return Ok(None);
    };
    let client = tfo_platform::PlatformClient::new(&settings)
        .map_err(|e| RunError(format!("telemetryflow.api_endpoint: {}", e.0)))?;
    tracing::info!(endpoint = %settings.base_url, interval = ?cfg.heartbeat.interval, "platform registration and heartbeat on");
    let p = platform::Platform {
        client,
        data_dir: data_dir(cfg),
        configured_id: cfg.agent.id.clone(),
        agent_name: identity.agent_name.clone(),
        hostname: identity.hostname.clone(),
        root: cfg.collectors.root_path.clone(),
        tags: cfg.agent.tags.clone().into_iter().collect(),
        include_system_info: cfg.heartbeat.include_system_info,
        cloud_metadata: cfg.heartbeat.cloud_metadata,
        remote_enabled: cfg.remote_config.enabled,
        stats: stats.clone(),
        shared: shared.clone(),
        control,
        interval,
        running_id: identity.agent_id.clone(),
    };
    Ok(Some(tokio::spawn(p.run(cancel.clone()))))
}

/// Binds the self-metrics and health listeners; a port that cannot be bound is a startup
/// error naming the key. They live for the whole process (a reload does not move them).
async fn serve_endpoints(
    cfg: &Config,
    stats: &Arc<Stats>,
    node_view: &NodeSnapshot,
    cancel: &CancellationToken,
) -> Result<(), RunError> {
    if cfg.prometheus.enabled {
        let extra: Option<serve::ExtraMetrics> = cfg.prometheus.expose_node_metrics.then(|| {
            let view = node_view.clone();
            Arc::new(move |out: &mut String| {
                let m = view.lock().unwrap_or_else(|p| p.into_inner());
                tfo_collectors::render_node_exporter(&m, out);
            }) as serve::ExtraMetrics
        });
        let site = serve::Site::Metrics {
            path: cfg.prometheus.path.clone(),
            stats: stats.clone(),
            extra,
        };
        let addr = serve::bind(
            "prometheus.listen_address",
            &cfg.prometheus.listen_address,
            site,
            cancel.clone(),
        )
        .await
        .map_err(RunError)?;
        tracing::info!(address = %addr, path = %cfg.prometheus.path, "serving self-metrics");
    }
    if cfg.health.enabled {
        let site = serve::Site::Health {
            stats: stats.clone(),
        };
        let addr = serve::bind(
            "health.listen_address",
            &cfg.health.listen_address,
            site,
            cancel.clone(),
        )
        .await
        .map_err(RunError)?;
        tracing::info!(address = %addr, "serving health checks at /, /healthz and /readyz");
    }
    Ok(())
}
