//! The agent's lifecycle: start the pipeline from a config, keep its tasks alive, swap
//! them on reload, and stop within `agent.shutdown_timeout`.
//!
//! The pipeline has, per signal, one buffer and one export task; interval collectors feed
//! the metrics buffer from async tasks, streaming sources (the log collector) feed their
//! signal's buffer from threads of their own.
//!
//! Three rules shape this module:
//! - **Signals stay responsive.** Nothing in the main loop waits on the network or on a
//!   backlog: a reload builds the new exporter first, stops the old export tasks (which give
//!   their in-flight batches back at once) and starts new ones; collectors keep their
//!   schedule and sources keep running unless their own settings changed (a source being
//!   replaced is waited for at most [`SOURCE_STOP`]).
//! - **Stopping is bounded.** SIGTERM stops collection (a source waiting for room in a full
//!   buffer is released and saves its checkpoints), flushes for at most
//!   `agent.shutdown_timeout` while the collector answers (not at all while it is
//!   unreachable) and leaves the rest in the disk log for the next start.
//! - **A dead task is restarted.** A collector, source or export task that ends without
//!   being asked to (a panic) is rebuilt within a second, counted in
//!   `tfo_agent_task_restarts_total`; `/healthz` fails while one cannot be restarted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use tfo_collectors::Metric;
use tfo_config::{Config, Loaded};
use tfo_exporter::encode::{LOGS_REQUEST_BYTES, MAX_REQUEST_BYTES, MetricsEncoder};
use tfo_exporter::{Exporter, Signal};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::events::Stats;
use crate::identity::{Identity, VERSION};
use crate::pipeline::export::{ExportLoop, ExportRuntime};
use crate::pipeline::stream::{self, Encoding, Shared};
use crate::pipeline::{self, Buffers, collect};
use crate::platform::{self, Control};
use crate::receiver::{self, Receiver};
use crate::{preflight, registry, self_metrics, serve, settings};

/// A runtime failure (exit code 1).
#[derive(Debug)]
pub struct RunError(pub String);

/// The node collector's last cycle, for `/metrics` under node_exporter's names.
pub type NodeSnapshot = Arc<std::sync::Mutex<Vec<Metric>>>;

/// How often dead tasks are looked for besides when one signals its end
/// ([`pipeline::ENDED`]): a safety net, not the way restarts are found.
const SUPERVISE_EVERY: Duration = Duration::from_secs(10);

/// After a task signals its end, how long the supervisor waits before it looks: the signal
/// comes from the task's last moments, a little before its handle reports it finished.
const SUPERVISE_SETTLE: Duration = Duration::from_millis(20);

/// How long a reload waits for a replaced source's thread to stop (it is released from a
/// full buffer at once; only a hung file system call can hold it).
const SOURCE_STOP: Duration = Duration::from_secs(5);

/// What a config needs that can fail: built before anything running is touched, so a
/// reload with a bad endpoint or TLS file keeps the old pipeline.
struct Prepared {
    identity: Identity,
    exporter: Option<Exporter>,
    /// The logs' own exporter, built on the logs export runtime (when there is one).
    logs_exporter: Option<Exporter>,
    /// The traces' own exporter (with a traces buffer), on the export runtime.
    traces_exporter: Option<Exporter>,
}

fn prepare(cfg: &Config, env: &Env) -> Result<Prepared, RunError> {
    let identity = Identity::resolve(cfg, &settings::host_paths(cfg));
    let exporter = env
        .export_runtime
        .enter(|| preflight::build_exporter(cfg, &identity))
        .map_err(RunError)?;
    let logs_exporter = match (&env.logs_runtime, &exporter) {
        (Some(rt), Some(_)) => Some(
            rt.enter(|| preflight::build_transport(cfg, &identity))
                .map_err(RunError)?,
        ),
        _ => None,
    };
    let traces_exporter = match (&env.buffers.traces, &exporter) {
        (Some(_), Some(_)) => Some(
            env.export_runtime
                .enter(|| preflight::build_transport(cfg, &identity))
                .map_err(RunError)?,
        ),
        _ => None,
    };
    Ok(Prepared {
        identity,
        exporter,
        logs_exporter,
        traces_exporter,
    })
}

/// What the collectors depend on: when it is unchanged by a reload, they keep running.
#[derive(PartialEq)]
struct CollectorInputs {
    collectors: tfo_config::Collectors,
    resource: Vec<KeyValue>,
    batch_size: usize,
    metrics_per_record: usize,
    expose_node_metrics: bool,
}

impl CollectorInputs {
    fn of(cfg: &Config, identity: &Identity) -> Self {
        CollectorInputs {
            collectors: cfg.collectors.clone(),
            resource: identity.resource_attributes(cfg),
            batch_size: cfg.exporter.otlp.batch_size,
            metrics_per_record: settings::metrics_per_request(&cfg.exporter.otlp),
            expose_node_metrics: cfg.prometheus.expose_node_metrics,
        }
    }
}

/// The interval collection tasks of one configuration.
struct Collection {
    inputs: CollectorInputs,
    encoder: Arc<MetricsEncoder>,
    cancel: CancellationToken,
    /// One per interval: the collectors that run on its thread.
    tasks: Vec<(Vec<&'static str>, JoinHandle<()>)>,
}

/// The export task of one signal (none when `exporter.otlp.enabled` is false: data then
/// stays buffered, up to the buffer's bound, until export is enabled again).
struct Export {
    signal: Signal,
    /// The runtime the task runs on (the export runtime, or the logs export runtime).
    runtime: tokio::runtime::Handle,
    cancel: CancellationToken,
    task: JoinHandle<ExportLoop>,
}

/// Shared handles every generation of the pipeline uses.
struct Env {
    buffers: Buffers,
    stats: Arc<Stats>,
    node_view: NodeSnapshot,
    /// What streaming sources encode with (resource, bounds); a reload updates it in place.
    encoding: Arc<Shared<Encoding>>,
    /// Where the export tasks of metrics and traces run, and their connections.
    export_runtime: ExportRuntime,
    /// Where the logs' export task runs (with a logs buffer).
    logs_runtime: Option<ExportRuntime>,
}

/// The running pipeline: collection, sources and export, replaced part by part on reload.
struct Pipeline {
    /// The configuration the running parts were built from.
    cfg: Config,
    collection: Collection,
    sources: Vec<stream::Handle>,
    exports: Vec<Export>,
}

impl Env {
    /// Starts the collectors of one interval on one thread (see [`collect`]).
    fn spawn_group(
        &self,
        cfg: &Config,
        encoder: &Arc<MetricsEncoder>,
        cancel: &CancellationToken,
        interval: Duration,
        collectors: Vec<Box<dyn tfo_collectors::Collector>>,
    ) -> (Vec<&'static str>, JoinHandle<()>) {
        let names: Vec<&'static str> = collectors.iter().map(|c| c.name()).collect();
        for name in &names {
            tracing::info!(collector = name, interval = ?interval, "collector started");
        }
        let members = collectors
            .into_iter()
            .map(|c| collect::Member {
                keep_last: (c.name() == "node_exporter" && cfg.prometheus.expose_node_metrics)
                    .then(|| self.node_view.clone()),
                collector: c,
            })
            .collect();
        let rebuild_cfg = cfg.clone();
        let task = collect::spawn(
            members,
            interval,
            encoder.clone(),
            self.buffers.metrics.clone(),
            self.stats.clone(),
            Box::new(move |name| registry::rebuild(&rebuild_cfg, name).map(|(c, _)| c)),
            cancel.clone(),
        );
        (names, task)
    }

    fn start_collection(&self, cfg: &Config, identity: &Identity) -> Collection {
        let inputs = CollectorInputs::of(cfg, identity);
        for (_, b) in self.buffers.all() {
            b.set_batch_units(inputs.batch_size);
        }
        let encoder = Arc::new(MetricsEncoder::new(
            inputs.resource.clone(),
            VERSION,
            inputs.metrics_per_record,
        ));
        let cancel = CancellationToken::new();
        let (collectors, _) = registry::build_collectors(cfg);
        if collectors.is_empty() && registry::build_sources(cfg).0.is_empty() {
            tracing::warn!("no collector is enabled: nothing will be collected");
        }
        let tasks = registry::by_interval(collectors)
            .into_iter()
            .map(|(interval, group)| self.spawn_group(cfg, &encoder, &cancel, interval, group))
            .collect();
        Collection {
            inputs,
            encoder,
            cancel,
            tasks,
        }
    }

    fn encoding(&self, cfg: &Config, identity: &Identity) -> Encoding {
        Encoding {
            resource: identity.resource_attributes(cfg),
            metrics_per_record: settings::metrics_per_request(&cfg.exporter.otlp),
            logs_batch_size: cfg.exporter.otlp.logs_batch_size,
            record_bytes: self.buffers.logs_record_bytes,
        }
    }

    /// Starts a streaming source on its thread, if its signal has a buffer.
    fn spawn_source(&self, s: registry::Streamed) -> Option<stream::Handle> {
        let Some(buffer) = self.buffers.get(s.signal) else {
            tracing::warn!(
                collector = s.name,
                "collectors.{} was enabled after start; it starts at the next restart (the buffer is split between signals when the agent starts)",
                s.name
            );
            return None;
        };
        match stream::spawn(
            s.name,
            s.source,
            buffer.clone(),
            self.buffers.metrics.clone(),
            self.stats.clone(),
            self.encoding.clone(),
        ) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::error!(collector = s.name, error = %e, "cannot start the collector's thread");
                self.stats.task_dead(&format!("collector/{}", s.name));
                None
            }
        }
    }

    fn start_sources(&self, cfg: &Config) -> Vec<stream::Handle> {
        let (sources, _) = registry::build_sources(cfg);
        sources
            .into_iter()
            .filter_map(|s| self.spawn_source(s))
            .collect()
    }

    fn start_export(&self, cfg: &Config, signal: Signal, exporter: Exporter) -> Option<Export> {
        let buffer = self.buffers.get(signal)?.clone();
        let runtime = match (signal, &self.logs_runtime) {
            (Signal::Logs, Some(rt)) => rt.handle().clone(),
            _ => self.export_runtime.handle().clone(),
        };
        let otlp = &cfg.exporter.otlp;
        let (batch_size, max_bytes) = match signal {
            Signal::Logs => (otlp.logs_batch_size, LOGS_REQUEST_BYTES),
            Signal::Metrics | Signal::Traces => {
                (settings::metrics_per_request(otlp), MAX_REQUEST_BYTES)
            }
        };
        let lp = ExportLoop {
            exporter,
            buffer,
            stats: self.stats.clone(),
            batch_size,
            max_bytes,
            flush_interval: otlp.flush_interval,
            retry: settings::retry_policy(cfg),
        };
        let cancel = CancellationToken::new();
        self.stats.track_exporter(signal);
        let c = cancel.clone();
        let task = runtime.spawn(async move {
            let _end = pipeline::OnEnd;
            lp.run(c).await
        });
        Some(Export {
            signal,
            runtime,
            cancel,
            task,
        })
    }

    /// One export task per signal that has a buffer: metrics and traces on the export
    /// runtime, logs on their own runtime with their own exporter.
    fn start_exports(&self, cfg: &Config, p: &mut Prepared) -> Vec<Export> {
        let Some(exporter) = p.exporter.take() else {
            self.stats.set_exporter_disabled();
            return Vec::new();
        };
        let mut out: Vec<Export> = self
            .start_export(cfg, Signal::Metrics, exporter)
            .into_iter()
            .collect();
        if let Some(e) = p.logs_exporter.take() {
            out.extend(self.start_export(cfg, Signal::Logs, e));
        }
        if let Some(e) = p.traces_exporter.take() {
            out.extend(self.start_export(cfg, Signal::Traces, e));
        }
        out
    }

    fn start(&self, cfg: &Config, mut p: Prepared) -> Pipeline {
        self.encoding.set(self.encoding(cfg, &p.identity));
        let collection = self.start_collection(cfg, &p.identity);
        let sources = self.start_sources(cfg);
        let exports = self.start_exports(cfg, &mut p);
        tracing::info!(agent_id = %p.identity.agent_id, agent_name = %p.identity.agent_name, "agent running");
        Pipeline {
            cfg: cfg.clone(),
            collection,
            sources,
            exports,
        }
    }
}

impl Export {
    /// Stops the export task. It never waits on the network: an in-flight request is
    /// abandoned and its batch given back to the buffer, to be sent again first.
    async fn stop(self) -> Option<ExportLoop> {
        self.cancel.cancel();
        self.task.await.ok()
    }
}

impl Pipeline {
    /// Applies a new configuration without draining: the exporter is replaced at once, the
    /// collectors and sources only when their own inputs changed (a replaced collector's
    /// current cycle still lands in the buffer; a replaced source saves its checkpoints).
    async fn swap(&mut self, env: &Env, cfg: &Config, mut p: Prepared) {
        let was_running = self.running();
        for old in std::mem::take(&mut self.exports) {
            old.stop().await;
        }
        let inputs = CollectorInputs::of(cfg, &p.identity);
        if inputs != self.collection.inputs {
            // A producer of the old generation waiting for room (`when_full: block`)
            // returns with its record kept, instead of outliving its generation.
            env.buffers.metrics.close_producers();
            self.collection.cancel.cancel();
            self.collection = env.start_collection(cfg, &p.identity);
            env.buffers.metrics.open_producers();
        }
        // Resource and bounds reach running sources without a restart.
        let encoding = env.encoding(cfg, &p.identity);
        if *env.encoding.get() != encoding {
            env.encoding.set(encoding);
        }
        for name in registry::source_names() {
            if !registry::source_changed(name, &self.cfg, cfg) {
                continue;
            }
            if let Some(i) = self.sources.iter().position(|h| h.name == name) {
                let old = self.sources.remove(i);
                tracing::info!(
                    collector = name,
                    "settings changed; restarting the collector"
                );
                old.join(SOURCE_STOP, true).await;
            }
            if let Some(s) = registry::rebuild_source(cfg, name)
                && let Some(h) = env.spawn_source(s)
            {
                self.sources.push(h);
            }
        }
        self.exports = env.start_exports(cfg, &mut p);
        self.cfg = cfg.clone();
        let running = self.running();
        for gone in was_running.difference(&running) {
            env.stats.forget_collector(gone);
        }
    }

    /// The collectors and sources running now, by name.
    fn running(&self) -> std::collections::BTreeSet<&'static str> {
        let collectors = self
            .collection
            .tasks
            .iter()
            .flat_map(|(n, _)| n.iter().copied());
        collectors
            .chain(self.sources.iter().map(|h| h.name))
            .collect()
    }

    /// Restarts tasks that ended without being cancelled (a panic). Returns an error only
    /// when an export task cannot be rebuilt.
    async fn supervise(&mut self, env: &Env, cfg: &Config) -> Result<(), RunError> {
        let mut i = 0;
        while i < self.collection.tasks.len() {
            let (names, task) = &self.collection.tasks[i];
            if !task.is_finished() || self.collection.cancel.is_cancelled() {
                i += 1;
                continue;
            }
            // The thread itself failed (a panic outside any collector, or it could not be
            // created): every collector of the group is started again.
            let names = names.clone();
            let mut group = Vec::new();
            let mut interval = None;
            for name in names {
                let label = format!("collector/{name}");
                match registry::rebuild(cfg, name) {
                    Some((c, every)) => {
                        env.stats.task_restarted(&label);
                        interval = Some(every);
                        group.push(c);
                    }
                    None => env.stats.task_dead(&label),
                }
            }
            match interval {
                Some(interval) => {
                    let enc = self.collection.encoder.clone();
                    let cancel = self.collection.cancel.clone();
                    self.collection.tasks[i] = env.spawn_group(cfg, &enc, &cancel, interval, group);
                    i += 1;
                }
                None => {
                    self.collection.tasks.remove(i);
                }
            }
        }
        let mut i = 0;
        while i < self.sources.len() {
            if !self.sources[i].died() {
                i += 1;
                continue;
            }
            let dead = self.sources.remove(i);
            let name = dead.name;
            let label = format!("collector/{name}");
            // Finished already: this only collects the thread and reopens the buffer.
            dead.join(SOURCE_STOP, true).await;
            match registry::rebuild_source(cfg, name).and_then(|s| env.spawn_source(s)) {
                Some(h) => {
                    env.stats.task_restarted(&label);
                    self.sources.insert(i, h);
                    i += 1;
                }
                None => env.stats.task_dead(&label),
            }
        }
        let died: Vec<Signal> = self
            .exports
            .iter()
            .filter(|e| e.task.is_finished() && !e.cancel.is_cancelled())
            .map(|e| e.signal)
            .collect();
        for signal in died {
            env.stats.task_restarted("export");
            self.exports.retain(|e| e.signal != signal);
            let Some(buffer) = env.buffers.get(signal) else {
                continue;
            };
            buffer.rewind_reader();
            let p = prepare(cfg, env).map_err(|e| {
                env.stats.task_dead("export");
                RunError(format!(
                    "the export task died and cannot be rebuilt: {}",
                    e.0
                ))
            })?;
            let exporter = match signal {
                Signal::Metrics => p.exporter,
                Signal::Logs => p.logs_exporter,
                Signal::Traces => p.traces_exporter,
            };
            if let Some(exporter) = exporter
                && let Some(e) = env.start_export(cfg, signal, exporter)
            {
                self.exports.push(e);
            }
        }
        Ok(())
    }

    /// Stops collecting, then flushes what the collector will take until `deadline`.
    async fn stop(self, env: &Env, deadline: Instant) {
        self.collection.cancel.cancel();
        env.buffers.metrics.close_producers();
        // Sources waiting for room in a full buffer are released now; each saves its
        // checkpoints (positions of records not in the disk log are read again next time).
        for h in &self.sources {
            h.request_stop();
        }
        // A cycle already running finishes into the buffer (bounded by the deadline).
        for (_, t) in self.collection.tasks {
            let _ = tokio::time::timeout_at(deadline, t).await;
        }
        for h in self.sources {
            let left = deadline.saturating_duration_since(Instant::now());
            h.join(left.max(Duration::from_millis(100)), false).await;
        }
        let mut loops = Vec::new();
        for export in self.exports {
            let runtime = export.runtime.clone();
            let signal = export.signal;
            if let Some(lp) = export.stop().await {
                // Retrying an unreachable collector until the deadline only delays the
                // exit; each signal decides on its own state (one can be refused while
                // the other is delivered).
                let state = env.stats.exporter_health(signal).state;
                if matches!(state, "outage" | "refused") {
                    tracing::info!(
                        signal = signal.as_str(),
                        exporter = state,
                        "the collector is not accepting data; not flushing at shutdown"
                    );
                    continue;
                }
                loops.push((runtime, lp));
            }
        }
        // Every signal flushes at once, each on its runtime, until the deadline.
        let flushes: Vec<_> = loops
            .into_iter()
            .map(|(rt, lp)| rt.spawn(async move { lp.final_flush(deadline).await }))
            .collect();
        for f in flushes {
            let _ = f.await;
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
        .chain(preflight::warnings(&cfg).iter())
    {
        tracing::warn!("{w}");
    }
    let stats = Arc::new(Stats::default());
    stats.set(self_metrics::CONFIG_LAST_RELOAD_OK, String::new(), 1.0);
    let buffers = pipeline::open_buffers(&cfg, &stats).map_err(RunError)?;
    let export_runtime = ExportRuntime::start("tfo-export")
        .map_err(|e| RunError(format!("cannot start the export thread: {e}")))?;
    let logs_runtime = match &buffers.logs {
        None => None,
        Some(_) => Some(
            ExportRuntime::start("tfo-logs-export")
                .map_err(|e| RunError(format!("cannot start the logs export thread: {e}")))?,
        ),
    };
    let env = Env {
        buffers,
        stats: stats.clone(),
        node_view: Arc::default(),
        encoding: Arc::new(Shared::new(Encoding {
            resource: Vec::new(),
            metrics_per_record: settings::metrics_per_request(&cfg.exporter.otlp),
            logs_batch_size: cfg.exporter.otlp.logs_batch_size,
            record_bytes: tfo_exporter::encode::MAX_RECORD_BYTES,
        })),
        export_runtime,
        logs_runtime,
    };
    let sig = |k| signal(k).map_err(|e| RunError(format!("signal handler: {e}")));
    let (mut term, mut int, mut hup) = (
        sig(SignalKind::terminate())?,
        sig(SignalKind::interrupt())?,
        sig(SignalKind::hangup())?,
    );
    let endpoints = CancellationToken::new();
    serve_endpoints(&cfg, &stats, &env.node_view, &endpoints).await?;
    let upkeep = spawn_upkeep(&env, &endpoints)?;
    let prepared = prepare(&cfg, &env)?;
    let receiver = start_receiver(&cfg, &env, &prepared.identity).await?;
    let mut pipeline = env.start(&cfg, prepared);
    let reload_path = config_path.or(loaded.source);
    let (control_tx, mut control_rx) = tokio::sync::mpsc::channel::<Control>(4);
    let (interval_tx, interval_rx) = tokio::sync::watch::channel(cfg.heartbeat.interval);
    let shared = Arc::new(platform::Shared::default());
    let mut platform = PlatformTask::spawn(&cfg, &stats, &shared, &control_tx, &interval_rx)?;
    // The last remote document that applied, re-applied over the file on SIGHUP so a reload
    // does not silently revert what the platform set.
    let mut remote: Option<serde_json::Value> = None;
    let mut supervise = tokio::time::interval(SUPERVISE_EVERY);
    supervise.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The new configuration, the log line for it, and where it came from.
        let (new_cfg, what, source) = tokio::select! {
            Some(msg) = control_rx.recv() => match msg {
                Control::IdAssigned => (cfg.clone(), "agent id assigned by the platform", "identity"),
                Control::Remote { version, config } => {
                    let Some(merged) = merge_remote(&cfg, &config, version.as_deref(), &shared, &stats) else { continue };
                    remote = Some(config);
                    (merged, "remote configuration applied", "remote")
                }
            },
            _ = term.recv() => { tracing::info!("SIGTERM received; stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT received; stopping"); break; }
            _ = hup.recv() => {
                let Some(path) = reload_path.as_deref() else {
                    tracing::warn!("SIGHUP received but the agent runs on built-in defaults; nothing to reload");
                    continue;
                };
                let new = match tfo_config::load(Some(path)) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!(error = %e, "config reload rejected; the running configuration stays");
                        reloaded(&stats, "file", false);
                        continue;
                    }
                };
                for w in &new.warnings { tracing::warn!("{w}"); }
                let mut new_cfg = new.config;
                if let Some(r) = &remote {
                    match tfo_config::remote::merge_remote(&new_cfg, r) {
                        Ok(m) => new_cfg = m.config,
                        Err(e) => tracing::warn!(error = %e, "the last remote configuration no longer applies over the reloaded file; using the file alone"),
                    }
                }
                (new_cfg, "configuration reloaded", "file")
            }
            // A task that signalled its end, or the safety-net scan.
            _ = async {
                tokio::select! {
                    _ = pipeline::ENDED.notified() => tokio::time::sleep(SUPERVISE_SETTLE).await,
                    _ = supervise.tick() => {}
                }
            } => {
                pipeline.supervise(&env, &cfg).await?;
                platform.supervise(&cfg, &stats, &shared, &control_tx, &interval_rx)?;
                continue;
            }
        };
        let prepared = match prepare(&new_cfg, &env) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e.0, "{what}: cannot be applied; the running configuration stays");
                if source == "remote" {
                    shared.set_remote_error(Some(e.0));
                }
                reloaded(&stats, source, false);
                continue;
            }
        };
        let at_restart: Vec<&str> = [
            ("buffer", new_cfg.buffer != cfg.buffer),
            ("prometheus", new_cfg.prometheus != cfg.prometheus),
            ("health", new_cfg.health != cfg.health),
            ("logging", new_cfg.logging != cfg.logging),
        ]
        .into_iter()
        .filter_map(|(k, changed)| changed.then_some(k))
        .collect();
        if !at_restart.is_empty() {
            tracing::warn!(
                sections = at_restart.join(", "),
                "changes under these sections take effect at the next restart; the rest applies now"
            );
        }
        let (old_r, new_r) = (&cfg.receivers.otlp, &new_cfg.receivers.otlp);
        if (
            old_r.enabled,
            &old_r.grpc,
            &old_r.http,
            old_r.max_recv_msg_size_mb,
        ) != (
            new_r.enabled,
            &new_r.grpc,
            &new_r.http,
            new_r.max_recv_msg_size_mb,
        ) {
            tracing::warn!(
                "receivers.otlp: enabled, listeners and max_recv_msg_size_mb take effect at the next restart (auth applies now)"
            );
        }
        if let Some(r) = &receiver {
            r.ingest
                .set_settings(receiver_settings(&new_cfg, &env, &prepared.identity));
        }
        pipeline.swap(&env, &new_cfg, prepared).await;
        if PlatformTask::inputs_changed(&cfg, &new_cfg) {
            platform.stop();
            platform = PlatformTask::spawn(&new_cfg, &stats, &shared, &control_tx, &interval_rx)?;
            if platform.task.is_none() {
                // No heartbeat any more: no "last heartbeat" either.
                stats.forget_gauge(crate::self_metrics::LAST_HEARTBEAT);
            }
        }
        cfg = new_cfg;
        let _ = interval_tx.send(cfg.heartbeat.interval);
        tracing::info!("{what}");
        reloaded(&stats, source, true);
    }
    shutdown(env, pipeline, platform, receiver, &endpoints, upkeep, &cfg).await;
    Ok(())
}

/// Counts a reload (the log line is the caller's) and keeps the outcome of the last one,
/// so a refused file or remote document shows on `/metrics`, not only in the log.
fn reloaded(stats: &Stats, source: &'static str, ok: bool) {
    use crate::self_metrics as sm;
    let result = if ok { "success" } else { "failure" };
    stats.add(
        sm::CONFIG_RELOADS,
        format!("source=\"{source}\",result=\"{result}\""),
        1,
    );
    stats.set(
        sm::CONFIG_LAST_RELOAD_OK,
        String::new(),
        if ok { 1.0 } else { 0.0 },
    );
}

fn receiver_settings(cfg: &Config, env: &Env, identity: &Identity) -> receiver::Settings {
    receiver::Settings::of(
        cfg,
        &identity.resource_attributes(cfg),
        env.buffers.logs_record_bytes,
    )
}

/// The OTLP receiver, when enabled; a listener that cannot be bound is a start-up error
/// naming its key.
async fn start_receiver(
    cfg: &Config,
    env: &Env,
    identity: &Identity,
) -> Result<Option<Receiver>, RunError> {
    if !cfg.receivers.otlp.enabled {
        return Ok(None);
    }
    let settings = receiver_settings(cfg, env, identity);
    Receiver::start(cfg, &env.buffers, &env.stats, settings)
        .await
        .map(Some)
        .map_err(RunError)
}

/// Validates and merges a remote document; `None` (logged, reported in the next
/// heartbeat) when it is refused or changes nothing.
fn merge_remote(
    cfg: &Config,
    doc: &serde_json::Value,
    version: Option<&str>,
    shared: &platform::Shared,
    stats: &Stats,
) -> Option<Config> {
    match tfo_config::remote::merge_remote(cfg, doc) {
        Err(e) => {
            tracing::error!(error = %e, version = ?version, "remote configuration refused; the running configuration stays");
            shared.set_remote_error(Some(e.to_string()));
            reloaded(stats, "remote", false);
            None
        }
        Ok(m) => {
            shared.set_remote_error(None);
            if m.changed.is_empty() {
                tracing::info!(version = ?version, "remote configuration matches the running one");
                return None;
            }
            tracing::info!(version = ?version, changed = ?m.changed, "applying remote configuration");
            Some(m.config)
        }
    }
}

/// Stops everything within `agent.shutdown_timeout`. Should a step hang anyway (a wedged
/// filesystem), a watchdog ends the process: everything appended to the disk log is already
/// in the kernel, so exiting loses nothing that was made durable.
async fn shutdown(
    env: Env,
    pipeline: Pipeline,
    platform: PlatformTask,
    receiver: Option<Receiver>,
    endpoints: &CancellationToken,
    upkeep: JoinHandle<()>,
    cfg: &Config,
) {
    env.stats.set_stopping();
    let timeout = cfg.agent.shutdown_timeout;
    let deadline = Instant::now() + timeout;
    let grace = timeout.saturating_add(Duration::from_secs(5));
    std::thread::Builder::new()
        .name("tfo-shutdown-watchdog".into())
        .spawn(move || {
            std::thread::sleep(grace);
            tracing::error!(
                after = ?grace,
                "shutdown did not finish within agent.shutdown_timeout + 5s; exiting now"
            );
            std::process::exit(1);
        })
        .ok();
    platform.stop();
    // Clients are told to retry from now on; requests being stored finish first.
    if let Some(r) = receiver {
        r.stop(timeout / 2).await;
    }
    pipeline.stop(&env, deadline).await;
    endpoints.cancel();
    let _ = upkeep.await;
    for (_, b) in env.buffers.all() {
        let b = b.clone();
        let _ = tokio::task::spawn_blocking(move || b.shutdown()).await;
    }
    let Env {
        stats,
        export_runtime,
        logs_runtime,
        ..
    } = env;
    export_runtime.shutdown(Duration::from_secs(2)).await;
    if let Some(rt) = logs_runtime {
        rt.shutdown(Duration::from_secs(2)).await;
    }
    let stats = &stats;
    tracing::info!(
        exported = stats.counter(self_metrics::EXPORTED_ITEMS, "signal=\"metrics\""),
        exported_logs = stats.counter(self_metrics::EXPORTED_ITEMS, "signal=\"logs\""),
        dropped = stats.dropped_total(),
        last_export_unix = stats.last_export_unix(),
        "tfo-agent stopped"
    );
}

/// Buffer upkeep (max_age, corruption found while reading, gauges), independent of
/// reloads: once a second on a thread of its own, because it touches the disk.
fn spawn_upkeep(env: &Env, cancel: &CancellationToken) -> Result<JoinHandle<()>, RunError> {
    let buffers: Vec<_> = env.buffers.all().map(|(_, b)| b.clone()).collect();
    let stats = env.stats.clone();
    let panicked = env.stats.clone();
    pipeline::ticker::spawn(
        "upkeep",
        Duration::from_secs(1),
        cancel.clone(),
        move || {
            for b in &buffers {
                b.maintain();
                b.publish(&stats);
            }
        },
        move |why| {
            tracing::error!(error = why, "buffer upkeep panicked");
            panicked.task_dead("upkeep");
        },
    )
    .map_err(|e| RunError(format!("cannot start the buffer upkeep thread: {e}")))
}

/// The platform loop (registration, heartbeat, remote config) when one is configured.
struct PlatformTask {
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl PlatformTask {
    fn spawn(
        cfg: &Config,
        stats: &Arc<Stats>,
        shared: &Arc<platform::Shared>,
        control: &tokio::sync::mpsc::Sender<Control>,
        interval: &tokio::sync::watch::Receiver<Duration>,
    ) -> Result<PlatformTask, RunError> {
        let cancel = CancellationToken::new();
        let task = if cfg.heartbeat.enabled {
            platform::spawn(
                cfg,
                stats,
                shared,
                control.clone(),
                interval.clone(),
                &cancel,
            )?
        } else {
            None
        };
        Ok(PlatformTask { cancel, task })
    }

    /// Whether a new config changes what the platform loop was built from.
    fn inputs_changed(old: &Config, new: &Config) -> bool {
        old.telemetryflow != new.telemetryflow
            || old.agent != new.agent
            || old.remote_config != new.remote_config
            || old.collectors.root_path != new.collectors.root_path
            || old.heartbeat.enabled != new.heartbeat.enabled
            || old.heartbeat.include_system_info != new.heartbeat.include_system_info
            || old.heartbeat.cloud_metadata != new.heartbeat.cloud_metadata
    }

    fn stop(&self) {
        self.cancel.cancel();
    }

    /// The platform loop only ends when cancelled; if it ended otherwise, start it again.
    fn supervise(
        &mut self,
        cfg: &Config,
        stats: &Arc<Stats>,
        shared: &Arc<platform::Shared>,
        control: &tokio::sync::mpsc::Sender<Control>,
        interval: &tokio::sync::watch::Receiver<Duration>,
    ) -> Result<(), RunError> {
        let died = self.task.as_ref().is_some_and(|t| t.is_finished());
        if died && !self.cancel.is_cancelled() {
            stats.task_restarted("platform");
            *self = Self::spawn(cfg, stats, shared, control, interval)?;
        }
        Ok(())
    }
}

/// Binds the self-metrics and health listeners. They live for the whole process (a reload
/// does not move them). A configured address that cannot be bound is a start-up error
/// naming the key; the built-in default address (8888 and 13133 are also the OpenTelemetry
/// Collector's defaults) only warns, and the agent runs without that endpoint.
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
        let default = tfo_config::Prometheus::default().listen_address;
        let key = "prometheus.listen_address";
        if let Some(addr) =
            bind(key, &cfg.prometheus.listen_address, &default, site, cancel).await?
        {
            tracing::info!(address = %addr, path = %cfg.prometheus.path, "serving self-metrics");
        }
    }
    if cfg.health.enabled {
        let site = serve::Site::Health {
            stats: stats.clone(),
        };
        let default = tfo_config::Health::default().listen_address;
        let key = "health.listen_address";
        if let Some(addr) = bind(key, &cfg.health.listen_address, &default, site, cancel).await? {
            tracing::info!(address = %addr, "serving health checks at /, /healthz and /readyz");
        }
    }
    Ok(())
}

async fn bind(
    key: &str,
    addr: &str,
    default: &str,
    site: serve::Site,
    cancel: &CancellationToken,
) -> Result<Option<std::net::SocketAddr>, RunError> {
    match serve::bind(key, addr, site, cancel.clone()).await {
        Ok(a) => Ok(Some(a)),
        Err(e) if addr == default => {
            tracing::warn!(
                "{e}; running without this endpoint (set {key} to a free address, or `enabled: false` to silence this)"
            );
            Ok(None)
        }
        Err(e) => Err(RunError(e)),
    }
}
