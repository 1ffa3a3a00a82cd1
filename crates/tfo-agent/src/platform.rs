//! The platform client loop: register once, heartbeat every `heartbeat.interval` (with a
//! few percent of jitter so fleets do not synchronise), and fetch remote configuration at
//! start and whenever a heartbeat reply carries a new `config_version`.
//!
//! It runs beside the pipeline and never blocks it: a platform that is down or refuses the
//! agent only produces logged, counted failures, while collection and export go on. Remote
//! documents are handed to the main loop ([`Control::Remote`]), which validates and applies
//! them like a reload; the outcome comes back through [`Shared::remote_error`] and is
//! reported in the next heartbeat.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tfo_config::Config;
use tfo_platform::{
    AgentHealth, CloudMetadataSettings, CollectorOptions, HeartbeatBody, IdStore, PlatformClient,
    PlatformError, PlatformSettings, RegisterRequest, SystemInfoCollector, TlsSettings, jittered,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::agent::RunError;
use crate::events::Stats;
use crate::identity::{Identity, VERSION};
use crate::self_metrics;
use crate::settings;

/// Messages from the platform loop to the main loop.
pub enum Control {
    /// A remote configuration document (the `config` object) and its version.
    Remote {
        version: Option<String>,
        config: serde_json::Value,
    },
    /// The platform assigned an agent id that differs from the running one.
    IdAssigned,
}

/// State shared between the platform loop and the rest of the agent.
#[derive(Default)]
pub struct Shared {
    /// Why the last remote configuration was refused, if it was.
    pub remote_error: Mutex<Option<String>>,
}

impl Shared {
    pub fn set_remote_error(&self, e: Option<String>) {
        *self.remote_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }
}

/// What `tfo-agent status` reads: `<data_dir>/state.json`, rewritten after each heartbeat.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LocalState {
    pub agent_id: Option<String>,
    pub last_heartbeat_unix: Option<u64>,
    pub last_heartbeat_error: Option<String>,
    pub last_export_unix: Option<u64>,
    pub config_version: Option<String>,
}

pub const STATE_FILE: &str = "state.json";

/// How long to wait before registering again after the platform refused the agent.
const REFUSED_REGISTRATION_RETRY: Duration = Duration::from_secs(300);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Platform client settings from the config; `None` when no platform is configured.
pub fn settings(cfg: &Config, agent_name: &str) -> Option<PlatformSettings> {
    let base = cfg.telemetryflow.api_endpoint.clone()?;
    let tf = &cfg.telemetryflow;
    let mut s = PlatformSettings::new(base, agent_name, VERSION);
    s.api_key_id = tf.api_key_id.clone();
    s.api_key_secret = tf.api_key_secret.as_ref().map(|k| k.expose().to_string());
    s.timeout = tf.timeout;
    s.retry_initial_interval = tf.retry.initial_interval;
    s.retry_max_interval = tf.retry.max_interval;
    s.tls = tf.tls.enabled.then(|| TlsSettings {
        ca_file: tf.tls.ca_file.clone(),
        cert_file: tf.tls.cert_file.clone(),
        key_file: tf.tls.key_file.clone(),
        server_name: tf.tls.server_name.clone(),
        skip_verify: tf.tls.skip_verify,
    });
    Some(s)
}

/// Starts the platform loop when heartbeat is on and a platform is configured.
pub fn spawn(
    cfg: &Config,
    stats: &Arc<Stats>,
    shared: &Arc<Shared>,
    control: mpsc::Sender<Control>,
    interval: watch::Receiver<Duration>,
    cancel: &CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, RunError> {
    if !cfg.heartbeat.enabled {
        return Ok(None);
    }
    let identity = Identity::resolve(cfg, &settings::host_paths(cfg));
    let Some(platform) = settings(cfg, &identity.agent_name) else {
        return Ok(None);
    };
    let client = PlatformClient::new(&platform)
        .map_err(|e| RunError(format!("telemetryflow.api_endpoint: {}", e.0)))?;
    tracing::info!(endpoint = %platform.base_url, interval = ?cfg.heartbeat.interval, "platform registration and heartbeat on");
    let p = Platform {
        client,
        data_dir: settings::data_dir(cfg),
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
    let c = cancel.clone();
    Ok(Some(tokio::spawn(async move {
        let _end = crate::pipeline::OnEnd;
        p.run(c).await
    })))
}

pub struct Platform {
    pub client: PlatformClient,
    pub data_dir: PathBuf,
    pub configured_id: Option<String>,
    pub agent_name: String,
    pub hostname: String,
    pub root: PathBuf,
    pub tags: std::collections::BTreeMap<String, String>,
    pub include_system_info: bool,
    pub cloud_metadata: bool,
    pub remote_enabled: bool,
    pub stats: Arc<Stats>,
    pub shared: Arc<Shared>,
    pub control: mpsc::Sender<Control>,
    /// The heartbeat interval; the main loop updates it when a remote config changes it.
    pub interval: watch::Receiver<Duration>,
    /// The running agent id (OTLP identity), to notice when the platform assigns another.
    pub running_id: String,
}

impl Platform {
    pub async fn run(mut self, cancel: CancellationToken) {
        // 0 until the first heartbeat succeeds (absent when the heartbeat does not run, so
        // an alert on its age does not fire on agents without a platform).
        if self.stats.gauge(self_metrics::LAST_HEARTBEAT, "").is_none() {
            self.stats
                .set(self_metrics::LAST_HEARTBEAT, String::new(), 0.0);
        }
        let store = IdStore::new(&self.data_dir);
        let initial = store
            .initial_id(self.configured_id.as_deref())
            .ok()
            .flatten()
            .map(|(id, _)| id);
        let req = RegisterRequest::from_host(
            &self.root,
            &self.agent_name,
            VERSION,
            initial.clone(),
            Some(&self.hostname),
            self.tags.clone(),
        );
        // A refused registration (bad key, wrong URL) is retried slowly for as long as the
        // agent runs: the operator fixes the platform side without restarting every agent.
        let mut refused_before = false;
        let reply = loop {
            let registered = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.client.register_with_retry(&req, None, |n| {
                    tracing::debug!(attempt = n.attempt, retry_in_ms = n.delay.as_millis() as u64, error = %n.error, "platform registration failed; retrying");
                }) => r,
            };
            match registered {
                Ok(r) => break r,
                Err(e) => {
                    self.count("failure");
                    let wait = jittered(REFUSED_REGISTRATION_RETRY, 0.1);
                    if !refused_before {
                        tracing::error!(error = %e, retry_in_s = wait.as_secs(), "platform registration refused; retrying every few minutes (collection and export continue). Check telemetryflow.api_key_id / api_key_secret and telemetryflow.api_endpoint");
                        refused_before = true;
                    } else {
                        tracing::debug!(error = %e, "platform registration still refused");
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        };
        if refused_before {
            tracing::info!("platform registration accepted after earlier refusals");
        }
        let mut agent_id = match store.adopt(self.configured_id.as_deref(), &reply.agent_id) {
            Ok((id, source)) => {
                tracing::info!(agent_id = %id, source = ?source, "registered with the platform");
                id
            }
            Err(e) => {
                tracing::error!(error = %e, data_dir = %self.data_dir.display(), "cannot persist the agent id; it is used for this run only");
                self.configured_id.clone().unwrap_or(reply.agent_id.clone())
            }
        };
        if agent_id != self.running_id {
            let _ = self.control.send(Control::IdAssigned).await;
        }
        let mut applied_version: Option<String> = None;
        if self.remote_enabled {
            self.fetch_config(&agent_id, &mut applied_version).await;
        }

        let mut collector = SystemInfoCollector::new(&self.root, {
            let mut o = CollectorOptions::new(&self.agent_name, VERSION);
            o.include_system_info = self.include_system_info;
            o.hostname = Some(self.hostname.clone());
            o
        });
        collector.set_agent_id(Some(agent_id.clone()));
        if self.cloud_metadata {
            let cloud = CloudMetadataSettings::default();
            collector.set_cloud(tfo_platform::detect_cloud(&cloud, collector.cloud_hint()).await);
        }
        let mut slot = Some(collector);
        loop {
            let wait = jittered(*self.interval.borrow(), 0.05);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.interval.changed() => continue,
            }
            let Some(mut c) = slot.take() else { return };
            let health = self.health();
            // /proc scans and statvfs: off the async workers.
            let Ok((c, info)) = tokio::task::spawn_blocking(move || {
                let info = c.collect(health);
                (c, info)
            })
            .await
            else {
                tracing::error!("heartbeat payload task failed; heartbeats stop");
                return;
            };
            slot = Some(c);
            let body = HeartbeatBody { system_info: info };
            match self.client.heartbeat(&agent_id, &body).await {
                Ok(reply) => {
                    self.count("success");
                    self.stats.set(
                        self_metrics::LAST_HEARTBEAT,
                        String::new(),
                        unix_now() as f64,
                    );
                    self.write_state(&agent_id, None, applied_version.clone());
                    if self.remote_enabled
                        && reply.config_version.is_some()
                        && reply.config_version != applied_version
                    {
                        self.fetch_config(&agent_id, &mut applied_version).await;
                    }
                }
                Err(e) => {
                    self.count("failure");
                    tracing::warn!(error = %e, "heartbeat failed; the next one is at the usual interval");
                    self.write_state(&agent_id, Some(e.to_string()), applied_version.clone());
                    // The platform forgot this agent: register again unless the id is
                    // pinned by configuration.
                    if e.status() == Some(404) && self.configured_id.is_none() {
                        match self.client.register(&req).await {
                            Ok(r) => match store.adopt(None, &r.agent_id) {
                                Ok((id, _)) => {
                                    tracing::info!(agent_id = %id, "registered again after the platform answered 404");
                                    if id != agent_id {
                                        agent_id = id;
                                        if let Some(c) = slot.as_mut() {
                                            c.set_agent_id(Some(agent_id.clone()));
                                        }
                                        let _ = self.control.send(Control::IdAssigned).await;
                                    }
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "cannot persist the new agent id")
                                }
                            },
                            Err(e) => tracing::warn!(error = %e, "registration after 404 failed"),
                        }
                    }
                }
            }
        }
    }

    async fn fetch_config(&self, agent_id: &str, applied: &mut Option<String>) {
        match self.client.fetch_config(agent_id).await {
            Ok(rc) => {
                if rc.config.is_empty() {
                    *applied = rc.version;
                    return;
                }
                tracing::info!(version = ?rc.version, "remote configuration received");
                let _ = self
                    .control
                    .send(Control::Remote {
                        version: rc.version.clone(),
                        config: serde_json::Value::Object(rc.config),
                    })
                    .await;
                // Marked as seen whether or not it applies: a refused version is reported in
                // the heartbeat and not fetched again until the platform changes it.
                *applied = rc.version;
            }
            Err(e) => log_config_error(&e),
        }
    }

    fn count(&self, outcome: &str) {
        self.stats.add(
            self_metrics::HEARTBEATS,
            format!("outcome=\"{outcome}\""),
            1,
        );
    }

    /// The buffer gauges read here are refreshed every second by the agent's upkeep task.
    fn health(&self) -> AgentHealth {
        let r = self.stats.readiness();
        let gauge = |name: &str| {
            self.stats
                .gauges_of(name)
                .iter()
                .map(|(_, v)| *v as u64)
                .sum::<u64>()
        };
        let mut dropped = std::collections::BTreeMap::new();
        for (labels, v) in self.stats.counters_of(self_metrics::DROPPED_ITEMS) {
            let reason = labels
                .split("reason=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("unknown")
                .to_string();
            *dropped.entry(reason).or_insert(0) += v;
        }
        AgentHealth {
            buffer_records: gauge(self_metrics::BUFFER_RECORDS),
            buffer_bytes: gauge(self_metrics::BUFFER_BYTES),
            dropped,
            last_export_unix_ms: (r.last_export_unix > 0).then(|| r.last_export_unix as i64 * 1000),
            // The worst signal's state: one refused signal is what the operator must see.
            exporter_state: r.exporter_state.to_string(),
            remote_config_error: self
                .shared
                .remote_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    fn write_state(&self, agent_id: &str, error: Option<String>, version: Option<String>) {
        let last = self.stats.last_export_unix();
        let st = LocalState {
            agent_id: Some(agent_id.to_string()),
            last_heartbeat_unix: if error.is_none() {
                Some(unix_now())
            } else {
                read_state(&self.data_dir).and_then(|s| s.last_heartbeat_unix)
            },
            last_heartbeat_error: error,
            last_export_unix: (last > 0).then_some(last),
            config_version: version,
        };
        // fsync and rename: on the blocking pool, never on an async worker.
        let path = self.data_dir.join(STATE_FILE);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = write_atomic(&path, &st) {
                tracing::debug!(error = %e, "cannot write the local state file");
            }
        });
    }
}

fn log_config_error(e: &PlatformError) {
    tracing::warn!(error = %e, "cannot fetch the remote configuration; the running one stays");
}

pub fn read_state(data_dir: &Path) -> Option<LocalState> {
    let text = std::fs::read(data_dir.join(STATE_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

fn write_atomic(path: &Path, st: &LocalState) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(st).unwrap_or_default())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
