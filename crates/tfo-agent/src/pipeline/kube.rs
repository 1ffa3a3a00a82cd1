//! The Kubernetes collector as a streaming source: on a thread of its own with a
//! current-thread runtime, it keeps the watches of `tfo-kube` running (this node's pods and
//! Node on every agent; cluster-wide kinds and Events only while this agent holds the
//! Lease), and every `collectors.kubernetes.interval` maps a snapshot of the stores to OTLP
//! metrics (one resource per object) into the metrics buffer. Events go to the logs buffer
//! as they arrive and are acknowledged to the de-duplicator once they are stored, so a new
//! leader does not export them again.
//!
//! The API server being unreachable or refusing one resource never stops the agent: the
//! collector reports not-ready, logs and counts, and retries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::resource::v1::Resource;
use tfo_collectors::kubernetes as mapping;
use tfo_collectors::kubernetes::events::EventMetrics;
use tfo_config::Config;
use tfo_exporter::encode::{LOGS_REQUEST_BYTES, LogsEncoder, MetricsEncoder};
use tfo_kube::events::{self as kevents, EventKey, EventsConfig, EventsHandle};
use tfo_kube::lease::{LeaderElector, LeaseConfig, LeaseHandle};
use tfo_kube::model::Event as KubeEvent;
use tfo_kube::store::{Collect, ResourceStatus, Scope, Stores};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::buffer::Pushed;
use super::stream::{Context, Source};
use crate::events::{Event, Stats};
use crate::identity::VERSION;
use crate::self_metrics as sm;
use crate::settings;

/// How often a failed client configuration (no kubeconfig, no service account) is retried.
const CLIENT_RETRY: Duration = Duration::from_secs(30);
/// Most events written as one batch; they arrive one by one from the watch.
const EVENTS_PER_BATCH: usize = 512;
/// Objects mapped, encoded and stored at a time in a cycle.
const OBJECTS_PER_PART: usize = 500;
/// How often self-metrics and readiness follow the watches between cycles.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// What the source runs with, taken from the config without I/O.
#[derive(Debug, Clone)]
pub struct KubeSource {
    kubeconfig: String,
    interval: Duration,
    scope: Scope,
    election: Option<LeaseConfig>,
    events: Option<EventsConfig>,
}

impl KubeSource {
    pub fn from_config(cfg: &Config) -> Result<KubeSource, String> {
        let k = &cfg.collectors.kubernetes;
        let node = settings::kube_node_name(cfg);
        let le = &k.leader_election;
        let election = if le.enabled {
            let identity = node.clone().ok_or_else(|| {
                "leader election needs this agent's node name: set collectors.kubernetes.node_name \
                 or NODE_NAME (the downward API's spec.nodeName), or turn leader_election off"
                    .to_string()
            })?;
            let mut lc = LeaseConfig::new(
                le.lease_name.clone(),
                settings::kube_lease_namespace(cfg),
                identity,
            );
            lc.lease_duration = le.lease_duration;
            lc.renew_deadline = le.renew_deadline;
            lc.retry_period = le.retry_period;
            lc.validate()
                .map_err(|e| format!("collectors.kubernetes.leader_election: {e}"))?;
            Some(lc)
        } else {
            None
        };
        Ok(KubeSource {
            kubeconfig: k.kubeconfig_path.clone(),
            interval: k.interval,
            scope: Scope {
                node,
                node_local_pods: k.node_local_pods,
                collect: Collect {
                    pods: k.collect_pods,
                    nodes: k.collect_nodes,
                    workloads: k.collect_deployments,
                    services: k.collect_services,
                    namespaces: k.collect_namespaces,
                },
                exclude_namespaces: k.exclude_namespaces.clone(),
            },
            election,
            events: k.collect_events.then(|| EventsConfig {
                exclude_namespaces: k.exclude_namespaces.clone(),
                ..EventsConfig::default()
            }),
        })
    }
}

impl Source for KubeSource {
    fn run(self: Box<Self>, ctx: Context) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                ctx.stats.emit(Event::KubeError {
                    kind: "start",
                    error: &format!("cannot start the collector's runtime: {e}"),
                });
                return;
            }
        };
        rt.block_on(self.main(ctx));
    }
}

/// The cluster-wide half, running while this agent leads (or always without election).
struct Leading {
    events: Option<(EventsHandle, mpsc::Receiver<KubeEvent>)>,
}

impl KubeSource {
    async fn main(self, ctx: Context) {
        let ctx = Arc::new(ctx);
        let cancel = CancellationToken::new();
        // The agent stops us through a condvar; the runtime needs a future.
        let watch_stop = {
            let (ctx, cancel) = (ctx.clone(), cancel.clone());
            tokio::spawn(async move {
                while !ctx.stop.is_stopped() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                cancel.cancel();
            })
        };
        let Some(client) = self.client(&ctx, &cancel).await else {
            return;
        };
        tracing::info!(
            collector = "kubernetes",
            node = self.scope.node.as_deref().unwrap_or(""),
            node_local_pods = self.scope.node_local_pods,
            leader_election = self.election.is_some(),
            "kubernetes collector started"
        );
        let stores = Stores::start(client.clone(), self.scope.clone());
        let mut lease: Option<LeaseHandle> = None;
        let mut elector = None;
        if let Some(lc) = &self.election {
            let el = LeaderElector::new(client.clone(), lc.clone());
            lease = Some(el.handle());
            let c = cancel.clone();
            elector = Some(tokio::spawn(el.run(async move { c.cancelled().await })));
        }
        let mut leader_rx = lease.as_ref().map(|l| l.subscribe());
        let mut leading: Option<Leading> = None;
        if lease.is_none() {
            leading = Some(self.lead(&stores, &client, None));
        }
        let mut publisher = Publisher::default();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        let mut seen = EventMetrics::new(unix_nanos());
        loop {
            let events_rx = leading
                .as_mut()
                .and_then(|l| l.events.as_mut())
                .map(|(_, rx)| rx);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticker.tick() => {
                    self.cycle(&ctx, &stores, leading.is_some(), &seen).await;
                }
                _ = publish.tick() => {
                    publisher.publish(&ctx.stats, &stores, lease.as_ref(), leading.as_ref());
                }
                changed = async {
                    match leader_rx.as_mut() {
                        Some(rx) => rx.changed().await.map(|_| *rx.borrow_and_update()),
                        None => std::future::pending().await,
                    }
                } => {
                    let Ok(now_leader) = changed else { continue };
                    if now_leader && leading.is_none() {
                        tracing::info!(collector = "kubernetes", "this agent now reports cluster-wide state (it holds the lease)");
                        leading = Some(self.lead(&stores, &client, lease.clone()));
                        // A new events watcher counts from zero.
                        publisher.forget(sm::KUBE_EVENTS);
                    } else if !now_leader && leading.is_some() {
                        tracing::info!(collector = "kubernetes", "this agent no longer holds the lease; cluster-wide state is left to the new holder");
                        stores.stop_cluster_wide();
                        leading = None;
                        seen = EventMetrics::new(unix_nanos());
                    }
                }
                first = async {
                    match events_rx {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let Some(first) = first else {
                        // The watcher ended (it is restarted with the next leadership).
                        if let Some(l) = leading.as_mut() { l.events = None; }
                        continue;
                    };
                    let (handle, rx) = leading.as_mut().and_then(|l| l.events.as_mut()).expect("receiving");
                    let mut batch = vec![first];
                    while batch.len() < EVENTS_PER_BATCH {
                        match rx.try_recv() {
                            Ok(e) => batch.push(e),
                            Err(_) => break,
                        }
                    }
                    for e in &batch {
                        seen.record(e);
                    }
                    if let Some(keys) = self.store_events(&ctx, batch).await {
                        handle.ack(&keys);
                    }
                }
            }
        }
        // Release the lease at once so another agent takes over without waiting for it to
        // expire; bounded, the agent's stop waits for this thread.
        drop(leading);
        if let Some(el) = elector {
            let _ = tokio::time::timeout(Duration::from_secs(2), el).await;
        }
        watch_stop.abort();
    }

    /// Builds the API client, retrying until it works or the agent stops.
    async fn client(&self, ctx: &Context, cancel: &CancellationToken) -> Option<tfo_kube::Client> {
        let mut reported = false;
        loop {
            match tfo_kube::client::build_client(&self.kubeconfig).await {
                Ok(c) => return Some(c),
                Err(e) => {
                    // Not ready: /readyz lists the collector among those down.
                    ctx.stats.set(sm::KUBE_API_UP, String::new(), 0.0);
                    ctx.stats.set(
                        sm::COLLECTOR_UP,
                        "collector=\"kubernetes\"".to_string(),
                        0.0,
                    );
                    if !reported {
                        reported = true;
                        ctx.stats.emit(Event::KubeError {
                            kind: "client",
                            error: &format!(
                                "{e}; retrying every {}s (set collectors.kubernetes.kubeconfig_path outside a cluster)",
                                CLIENT_RETRY.as_secs()
                            ),
                        });
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(CLIENT_RETRY) => {}
            }
        }
    }

    fn lead(
        &self,
        stores: &Stores,
        client: &tfo_kube::Client,
        lease: Option<LeaseHandle>,
    ) -> Leading {
        stores.start_cluster_wide();
        let events = self
            .events
            .clone()
            .map(|cfg| kevents::spawn(client.clone(), cfg, lease));
        Leading { events }
    }

    /// One collection cycle: the stores' snapshot as metrics, into the metrics buffer.
    /// Mapped, encoded and stored in parts of [`OBJECTS_PER_PART`] objects, so the peak is
    /// one part, not the whole cluster's data points.
    async fn cycle(&self, ctx: &Arc<Context>, stores: &Stores, leading: bool, seen: &EventMetrics) {
        let started = Instant::now();
        let snap = stores.snapshot();
        let now = unix_nanos();
        let events = if leading && self.events.is_some() {
            seen.collect(now)
        } else {
            Vec::new()
        };
        let encoding = ctx.encoding.get();
        let ctx2 = ctx.clone();
        let pods_cluster_wide = !self.scope.node_local_pods;
        let job = tokio::task::spawn_blocking(move || {
            let enc = MetricsEncoder::new(
                encoding.resource.clone(),
                VERSION,
                encoding.metrics_per_record,
            );
            let mut points = 0;
            let mut records = Vec::new();
            let mut store = |groups: Vec<(Vec<KeyValue>, Vec<Metric>)>| {
                points += enc.encode_groups(groups, &mut records);
                for r in records.drain(..) {
                    ctx2.metrics.push(r);
                }
            };
            let view = mapping::Snapshot {
                pods: &snap.pods,
                pods_cluster_wide,
                nodes: &snap.nodes,
                namespaces: &snap.namespaces,
                deployments: &snap.deployments,
                replicasets: &snap.replica_sets,
                statefulsets: &snap.stateful_sets,
                daemonsets: &snap.daemon_sets,
                jobs: &snap.jobs,
                cronjobs: &snap.cron_jobs,
                services: &snap.services,
                endpoint_slices: &snap.endpoint_slices,
                quotas: &snap.resource_quotas,
            };
            mapping::collect_in_parts(&view, now, OBJECTS_PER_PART, |part| {
                store(part.into_iter().map(Into::into).collect())
            });
            if !events.is_empty() {
                store(events);
            }
            drop(snap);
            release_freed_memory();
            points
        });
        let points = job.await.unwrap_or(0);
        let errors = stores
            .status()
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s,
                    ResourceStatus::Forbidden { .. } | ResourceStatus::Failing { .. }
                )
            })
            .count();
        ctx.stats.emit(Event::CollectorRan {
            collector: "kubernetes",
            duration: started.elapsed(),
            points,
            errors,
            disconnected: false,
            connection_failures: 0,
        });
    }

    /// Writes events as log records to the logs buffer; the keys of those stored (on disk,
    /// or in memory when the buffer runs without disk) come back to be acknowledged.
    async fn store_events(
        &self,
        ctx: &Arc<Context>,
        batch: Vec<KubeEvent>,
    ) -> Option<Vec<EventKey>> {
        let encoding = ctx.encoding.get();
        let ctx2 = ctx.clone();
        let job = tokio::task::spawn_blocking(move || {
            let now = unix_nanos();
            let base = encoding.resource.clone();
            let mut logs: Vec<(Arc<Resource>, LogRecord)> = Vec::with_capacity(batch.len());
            let mut keys = Vec::with_capacity(batch.len());
            for e in &batch {
                let (attrs, rec) = mapping::events::log_record(e, now);
                let mut resource = base.clone();
                resource.retain(|kv| !attrs.iter().any(|a| a.key == kv.key));
                resource.extend(attrs);
                logs.push((
                    Arc::new(Resource {
                        attributes: resource,
                        ..Default::default()
                    }),
                    rec,
                ));
                keys.push(EventKey::of(e));
            }
            let enc = LogsEncoder::new(VERSION, encoding.logs_batch_size)
                .with_max_bytes(encoding.record_bytes.min(LOGS_REQUEST_BYTES));
            let mut records = Vec::new();
            enc.encode(logs, &mut records);
            let mut stored = 0usize;
            for r in records {
                let n = r.items as usize;
                if let Pushed::Returned = ctx2.buffer.push_or_return(r) {
                    // Stopping with a full buffer: what is not stored is not acknowledged,
                    // so the next leader exports it.
                    break;
                }
                stored += n;
            }
            keys.truncate(stored);
            keys
        });
        job.await.ok()
    }
}

/// Returns the heap the cycle used to the kernel. A large cluster's cycle allocates tens of
/// MiB for a moment; glibc keeps freed memory in its arenas, so without this the process
/// would stay at its peak (measured: 146 MiB resident between cycles for 10,000 pods,
/// 26 MiB after a trim).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Follows the watches' counters into the agent's self-metrics (deltas for counters).
#[derive(Default)]
struct Publisher {
    last: BTreeMap<(String, &'static str), u64>,
    relists_seen: u64,
}

impl Publisher {
    fn forget(&mut self, name: &'static str) {
        self.last.retain(|(_, n), _| *n != name);
    }

    fn counter(&mut self, stats: &Stats, name: &'static str, labels: String, now: u64) {
        let prev = self.last.insert((labels.clone(), name), now).unwrap_or(0);
        if now > prev {
            stats.add(name, labels, now - prev);
        }
    }

    fn publish(
        &mut self,
        stats: &Stats,
        stores: &Stores,
        lease: Option<&LeaseHandle>,
        leading: Option<&Leading>,
    ) {
        let mut all_up = true;
        for (kind, status) in stores.status() {
            let r = format!("resource=\"{}\"", sm::escape(&kind.rbac_name()));
            let up = match status {
                ResourceStatus::Stopped => continue,
                ResourceStatus::Ready => 1.0,
                _ => 0.0,
            };
            if up == 0.0 {
                all_up = false;
            }
            stats.set(sm::KUBE_RESOURCE_UP, r, up);
        }
        stats.set(
            sm::KUBE_API_UP,
            String::new(),
            if all_up { 1.0 } else { 0.0 },
        );
        let all = stores.stats();
        // A relist builds the new store beside the old one from pages of raw JSON; once it
        // is swapped in, give the freed pages back (measured: 36-69 MiB resident after
        // relists of 10,000 pods, against 25 MiB in use).
        let relists: u64 = all.iter().map(|(_, s)| s.relists).sum();
        if relists != self.relists_seen {
            self.relists_seen = relists;
            release_freed_memory();
        }
        for (kind, s) in all {
            let res = sm::escape(&kind.rbac_name());
            stats.set(
                sm::KUBE_OBJECTS,
                format!("resource=\"{res}\""),
                s.objects as f64,
            );
            self.counter(
                stats,
                sm::KUBE_RELISTS,
                format!("resource=\"{res}\""),
                s.relists,
            );
            for (kind, n) in [
                ("expired", s.expired),
                ("forbidden", s.forbidden),
                ("transport", s.transport),
                ("decode", s.decode),
                ("other", s.other),
            ] {
                self.counter(
                    stats,
                    sm::KUBE_WATCH_ERRORS,
                    format!("resource=\"{res}\",kind=\"{kind}\""),
                    n,
                );
            }
            for (reason, n) in [("malformed", s.malformed), ("excluded", s.excluded)] {
                self.counter(
                    stats,
                    sm::KUBE_OBJECTS_SKIPPED,
                    format!("resource=\"{res}\",reason=\"{reason}\""),
                    n,
                );
            }
        }
        if let Some(l) = lease {
            stats.set(
                sm::KUBE_LEADER,
                String::new(),
                if l.is_leader() { 1.0 } else { 0.0 },
            );
            let s = l.stats();
            self.counter(
                stats,
                sm::KUBE_LEASE_EVENTS,
                "kind=\"acquired\"".into(),
                s.acquired,
            );
            self.counter(stats, sm::KUBE_LEASE_EVENTS, "kind=\"lost\"".into(), s.lost);
            self.counter(
                stats,
                sm::KUBE_LEASE_EVENTS,
                "kind=\"renew_failure\"".into(),
                s.renew_failures,
            );
            self.counter(
                stats,
                sm::KUBE_LEASE_EVENTS,
                "kind=\"conflict\"".into(),
                s.conflicts,
            );
            self.counter(
                stats,
                sm::KUBE_LEASE_EVENTS,
                "kind=\"api_error\"".into(),
                s.api_errors,
            );
        } else {
            stats.set(sm::KUBE_LEADER, String::new(), 1.0);
        }
        if let Some((h, _)) = leading.and_then(|l| l.events.as_ref()) {
            let s = h.stats();
            for (outcome, n) in [
                ("exported", s.emitted),
                ("duplicate", s.duplicates),
                ("before_watermark", s.before_watermark),
                ("too_old", s.too_old),
                ("excluded", s.excluded),
            ] {
                self.counter(stats, sm::KUBE_EVENTS, format!("outcome=\"{outcome}\""), n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let mut c = Config::default();
        let k = &mut c.collectors.kubernetes;
        k.enabled = true;
        k.node_name = "node-a".into();
        k.leader_election.lease_namespace = "telemetryflow".into();
        c
    }

    #[test]
    fn the_config_maps_to_scope_election_and_events() {
        let s = KubeSource::from_config(&cfg()).unwrap();
        assert_eq!(s.scope.node.as_deref(), Some("node-a"));
        assert!(s.scope.node_local_pods);
        let lc = s.election.expect("leader election on by default");
        assert_eq!(
            (
                lc.name.as_str(),
                lc.namespace.as_str(),
                lc.identity.as_str()
            ),
            ("tfo-agent-cluster", "telemetryflow", "node-a")
        );
        assert_eq!(lc.lease_duration, Duration::from_secs(15));
        assert!(s.events.is_some());

        let mut c = cfg();
        c.collectors.kubernetes.collect_events = false;
        c.collectors.kubernetes.leader_election.enabled = false;
        c.collectors.kubernetes.exclude_namespaces = vec!["kube-system".into()];
        let s = KubeSource::from_config(&c).unwrap();
        assert!(s.election.is_none() && s.events.is_none());
        assert_eq!(s.scope.exclude_namespaces, ["kube-system"]);
    }

    #[test]
    fn building_does_no_io_and_events_choose_the_logs_buffer() {
        let c = cfg();
        let (sources, warnings) = crate::registry::build_sources(&c);
        assert!(warnings.is_empty(), "{warnings:?}");
        let k = sources.iter().find(|s| s.name == "kubernetes").unwrap();
        assert_eq!(k.signal, tfo_exporter::Signal::Logs);
        let mut c = cfg();
        c.collectors.kubernetes.collect_events = false;
        let (sources, _) = crate::registry::build_sources(&c);
        let k = sources.iter().find(|s| s.name == "kubernetes").unwrap();
        assert_eq!(k.signal, tfo_exporter::Signal::Metrics);
    }
}
