//! Internal events: every error, drop and export outcome is one `Event`, which is both
//! logged and counted here, so `/metrics` and the logs can never disagree.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tfo_exporter::{FailureClass, Signal};

use crate::self_metrics;

/// Why data was discarded. Every discard carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// The queue was full; the oldest records made room.
    Full,
    /// The collector refused the data (permanent error or partial success).
    Rejected,
    /// Retryable errors exhausted `telemetryflow.retry.max_attempts`.
    MaxRetries,
    /// Still queued in memory when the agent stopped or the shutdown timeout passed.
    Shutdown,
    /// Older than `buffer.max_age`.
    MaxAge,
    /// Damaged in the disk buffer (checksum or framing).
    Corrupt,
    /// The disk buffer could not take it (full file system, read-only, I/O error) and the
    /// memory fallback could not keep it either.
    DiskError,
    /// The collector refused a request of a single record as too large (HTTP 413, a gRPC
    /// message-size limit): splitting cannot help.
    TooLarge,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Full => "full",
            DropReason::Rejected => "rejected",
            DropReason::MaxRetries => "max_retries",
            DropReason::Shutdown => "shutdown",
            DropReason::MaxAge => "max_age",
            DropReason::Corrupt => "corrupt",
            DropReason::DiskError => "disk_error",
            DropReason::TooLarge => "too_large",
        }
    }
}

pub enum Event<'a> {
    CollectorRan {
        collector: &'a str,
        duration: Duration,
        points: usize,
        /// Partial failures of this cycle (already reported as `CollectorError`).
        errors: usize,
        /// The collector's source connection is down (see `CollectReport::disconnected`).
        disconnected: bool,
        /// Connection failures since the last cycle, logged by the collector's client and
        /// counted here.
        connection_failures: u64,
    },
    CollectorError {
        collector: &'a str,
        error: &'a dyn std::fmt::Display,
    },
    /// A collector left `items` out of a cycle for `reason` (one event per reason per cycle).
    CollectorSkipped {
        collector: &'a str,
        reason: &'static str,
        items: u64,
    },
    Dropped {
        signal: Signal,
        reason: DropReason,
        items: u64,
        detail: &'a str,
    },
    /// The disk buffer discarded records; `items` are the data points among them whose
    /// count is known (see pipeline/disk.rs).
    BufferDropped {
        signal: Signal,
        reason: DropReason,
        records: u64,
        items: u64,
        detail: &'a str,
    },
    Exported {
        signal: Signal,
        items: u64,
    },
    ExportFailed {
        signal: Signal,
        class: Option<FailureClass>,
        reason: &'a str,
        retry_in: Option<Duration>,
    },
    /// The collector refused a request as too large; `split_to` records per request are
    /// tried next (0: a single record, which is dropped). `quiet`: not the first time.
    ExportTooLarge {
        signal: Signal,
        records: usize,
        split_to: usize,
        reason: &'a str,
        quiet: bool,
    },
    /// The log collector could not list, open or read a path, or keep its checkpoints
    /// (`kind`: a `tfo_logs::ErrorKind` label, or `start`).
    LogsError {
        kind: &'a str,
        path: &'a std::path::Path,
        error: &'a str,
    },
    /// The Kubernetes collector could not do something outside its watches (the watches
    /// log and count their own failures).
    KubeError {
        kind: &'static str,
        error: &'a str,
    },
    /// Log records the log collector did not send on purpose (`excluded` by the filters).
    LogsRecordsDropped {
        reason: &'static str,
        records: u64,
    },
    /// Log file bytes lost before they were read (`truncated`).
    LogsBytesLost {
        reason: &'static str,
        bytes: u64,
    },
    /// Lines longer than `max_line_bytes` were cut (nothing is lost: each piece is sent).
    LogsLinesSplit {
        cuts: u64,
    },
    /// The OTLP receiver stored a request (`items` of it; `rejected` invalid ones were not,
    /// and the client was told so by a partial success).
    ReceiverAccepted {
        transport: &'static str,
        signal: Signal,
        items: u64,
        rejected: u64,
        detail: &'a str,
    },
    /// The OTLP receiver did not take a request (`items`: 0 when it was not decoded); the
    /// client was told why, and to retry when `reason` is full, stopping or throttled.
    ReceiverRefused {
        transport: &'static str,
        signal: Signal,
        items: u64,
        reason: &'static str,
        detail: &'a str,
    },
}

/// How often the OTLP receiver logs a refusal of one reason at WARN.
const RECEIVER_LOG_EVERY: Duration = Duration::from_secs(10);

/// Counters and gauges behind `/metrics`, the readiness report and the shutdown summary.
/// Keys are a [`self_metrics::TABLE`] name and a rendered Prometheus label string; the label
/// sets are small and fixed (signals × reasons, collectors).
pub struct Stats {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    gauges: Mutex<BTreeMap<(&'static str, String), f64>>,
    last_export_unix: AtomicU64,
    started: SystemTime,
    /// Set by the first completed collection cycle.
    collecting: AtomicBool,
    /// Set when shutdown begins: readiness turns false so load balancers stop sending.
    stopping: AtomicBool,
    /// Each signal's exporter state: metrics and logs go to the collector separately and
    /// can fail separately (a collector without a logs service refuses logs while it
    /// takes metrics), so each has its own state, change lines and shutdown decision.
    exporters: Mutex<[SignalExport; 3]>,
    /// Internal tasks that died and could not be started again; `/healthz` fails while
    /// this is not empty.
    dead_tasks: Mutex<Vec<String>>,
    /// When the OTLP receiver last logged a refusal at WARN, by reason.
    receiver_logged: Mutex<BTreeMap<&'static str, std::time::Instant>>,
    /// When each (collector, skip reason) was last logged at WARN (Unix seconds).
    skips_logged: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// When each (collector, error text) was last logged at WARN.
    errors_logged: Mutex<BTreeMap<(String, String), u64>>,
}

/// One signal's exporter state, and when its last export-failure line at WARN was logged
/// (Unix seconds, for the periodic summary).
struct SignalExport {
    health: ExporterHealth,
    summary_at: u64,
    /// False until the signal's export reports anything (or the exporter is disabled):
    /// a signal the agent does not export stays out of the readiness report.
    seen: bool,
}

fn slot(signal: Signal) -> usize {
    match signal {
        Signal::Metrics => 0,
        Signal::Logs => 1,
        Signal::Traces => 2,
    }
}

/// How bad an exporter state is, for the one state that sums up all signals (readiness
/// status, heartbeat): the worst wins; a signal still starting does not hide one that works.
fn severity(state: &str) -> u8 {
    match state {
        "disabled" => 0,
        "starting" => 1,
        "ok" => 2,
        "retrying" => 3,
        "rejecting" => 4,
        "outage" => 5,
        "refused" => 6,
        _ => 3,
    }
}

/// A collector's skips of one reason are logged at WARN at most this often (seconds).
const SKIP_WARN_EVERY_S: u64 = 600;
/// Keys remembered for rate limiting: texts that vary (a pid, a count) must not grow it.
const MAX_WARN_KEYS: usize = 1024;

/// Whether `key` may be logged at WARN now: the first time, then at most every
/// [`SKIP_WARN_EVERY_S`]. `logged` holds when each key last was (Unix seconds).
fn warn_due<K: Ord>(logged: &Mutex<BTreeMap<K, u64>>, key: K) -> bool {
    let now = unix_now() as u64;
    let mut m = logged.lock().unwrap_or_else(|p| p.into_inner());
    if m.len() >= MAX_WARN_KEYS && !m.contains_key(&key) {
        m.clear();
    }
    let last = m.entry(key).or_insert(0);
    let due = *last == 0 || now.saturating_sub(*last) >= SKIP_WARN_EVERY_S;
    if due {
        *last = now.max(1);
    }
    due
}

/// While export keeps failing, a WARN summary at most this often (seconds).
const SUMMARY_EVERY_S: u64 = 60;

/// The exporter's condition as readiness reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExporterHealth {
    /// `starting`, `ok`, `outage`, `refused`, `retrying`, `rejecting`, `disabled`.
    pub state: &'static str,
    /// The last failure, when `state` is not `ok`.
    pub last_error: Option<String>,
    /// Unix seconds of the last state change.
    pub since: u64,
}

/// What `/readyz` answers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// `starting`, `stopping`, or `ready` followed by what is wrong while it still serves:
    /// `, exporter degraded`, `, collectors down`, `, buffer degraded`.
    pub status: String,
    pub collecting: bool,
    /// The metrics exporter (kept under this name for compatibility; see `exporters`).
    pub exporter: ExporterHealth,
    /// Each exported signal's exporter state, by signal name (`metrics`, `logs`).
    pub exporters: BTreeMap<&'static str, ExporterHealth>,
    /// The worst state among the signals (what the heartbeat reports).
    pub exporter_state: &'static str,
    pub last_export_unix: u64,
    pub dropped_items: u64,
    /// Collectors whose last cycle produced nothing and failed.
    pub collectors_down: Vec<String>,
    /// Signals whose disk buffer cannot be written (new data waits in memory, not durable).
    pub buffers_degraded: Vec<String>,
}

impl Readiness {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            counters: Mutex::new(BTreeMap::new()),
            gauges: Mutex::new(BTreeMap::new()),
            last_export_unix: AtomicU64::new(0),
            started: SystemTime::now(),
            collecting: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            exporters: Mutex::new(Signal::ALL.map(|s| SignalExport {
                health: ExporterHealth {
                    state: "starting",
                    last_error: None,
                    since: unix_now() as u64,
                },
                summary_at: 0,
                // Metrics are always exported (unless disabled): reported from the start.
                seen: s == Signal::Metrics,
            })),
            dead_tasks: Mutex::new(Vec::new()),
            receiver_logged: Mutex::new(BTreeMap::new()),
            skips_logged: Mutex::new(BTreeMap::new()),
            errors_logged: Mutex::new(BTreeMap::new()),
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl Stats {
    pub fn add(&self, name: &'static str, labels: String, v: u64) {
        debug_assert!(
            self_metrics::lookup(name).is_some(),
            "{name} is not in the self-metric table"
        );
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry((name, labels)).or_insert(0) += v;
    }

    pub fn set(&self, name: &'static str, labels: String, v: f64) {
        debug_assert!(
            self_metrics::lookup(name).is_some(),
            "{name} is not in the self-metric table"
        );
        let mut g = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        g.insert((name, labels), v);
    }

    /// Value of one counter, for tests and the shutdown summary.
    pub fn counter(&self, name: &str, labels: &str) -> u64 {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.iter()
            .filter(|((n, l), _)| *n == name && l == labels)
            .map(|(_, v)| *v)
            .sum()
    }

    /// Drops the gauges of a collector that no longer runs (a reload turned it off): its
    /// last `collector_up` would otherwise stay in `/metrics` and `/readyz` for good, and
    /// so would the Kubernetes or log collector's own gauges. Counters stay: they only
    /// ever grow.
    pub fn forget_collector(&self, collector: &str) {
        let label = format!("collector=\"{}\"", self_metrics::escape(collector));
        let family = match collector {
            "kubernetes" => Some("tfo_agent_kubernetes_"),
            "logs" => Some("tfo_agent_logs_"),
            _ => None,
        };
        self.gauges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(name, labels), _| {
                *labels != label && !family.is_some_and(|f| name.starts_with(f))
            });
    }

    /// Drops every series of one gauge (what it measured stopped running).
    pub fn forget_gauge(&self, name: &str) {
        self.gauges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(n, _), _| *n != name);
    }

    /// Value of one gauge, if it was ever set.
    pub fn gauge(&self, name: &str, labels: &str) -> Option<f64> {
        let g = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        g.iter()
            .find(|((n, l), _)| *n == name && l == labels)
            .map(|(_, v)| *v)
    }

    /// Every series of a counter, as (labels, value).
    pub fn counters_of(&self, name: &str) -> Vec<(String, u64)> {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.iter()
            .filter(|((n, _), _)| *n == name)
            .map(|((_, l), v)| (l.clone(), *v))
            .collect()
    }

    /// Every series of a gauge, as (labels, value).
    pub fn gauges_of(&self, name: &str) -> Vec<(String, f64)> {
        let g = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        g.iter()
            .filter(|((n, _), _)| *n == name)
            .map(|((_, l), v)| (l.clone(), *v))
            .collect()
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed().unwrap_or_default()
    }

    /// A task ended unexpectedly and was started again.
    pub fn task_restarted(&self, task: &str) {
        tracing::error!(task, "internal task ended unexpectedly; started again");
        self.add(
            self_metrics::TASK_RESTARTS,
            format!("task=\"{}\"", self_metrics::escape(task)),
            1,
        );
    }

    /// A task ended unexpectedly and cannot be started again: liveness fails.
    pub fn task_dead(&self, task: &str) {
        tracing::error!(
            task,
            "internal task ended unexpectedly and cannot be started again"
        );
        let mut d = self.dead_tasks.lock().unwrap_or_else(|p| p.into_inner());
        if !d.iter().any(|t| t == task) {
            d.push(task.to_string());
        }
    }

    /// Tasks that died for good (empty when the agent is alive).
    pub fn dead_tasks(&self) -> Vec<String> {
        self.dead_tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_stopping(&self) {
        if !self.stopping.swap(true, Ordering::Relaxed) {
            crate::notify::send("STOPPING=1");
        }
    }

    /// Records one signal's exporter state; the reason is kept for the readiness report.
    /// Returns the previous state and when it began, if the state changed.
    pub fn set_exporter_state(
        &self,
        signal: Signal,
        state: &'static str,
        error: Option<&str>,
    ) -> Option<(&'static str, u64)> {
        let mut all = self.exporters.lock().unwrap_or_else(|p| p.into_inner());
        let s = &mut all[slot(signal)];
        s.seen = true;
        let e = &mut s.health;
        let changed = (e.state != state).then_some((e.state, e.since));
        if changed.is_some() {
            e.since = unix_now() as u64;
        }
        e.state = state;
        e.last_error = error.map(str::to_string);
        changed
    }

    /// The signal's export task runs: readiness reports its state from now on.
    pub fn track_exporter(&self, signal: Signal) {
        self.exporters.lock().unwrap_or_else(|p| p.into_inner())[slot(signal)].seen = true;
        // "None yet" reads 0, so an alert on the export's age fires for an agent that has
        // never exported, instead of seeing no series at all.
        let l = format!("signal=\"{}\"", signal.as_str());
        if self.gauge(self_metrics::LAST_EXPORT, &l).is_none() {
            self.set(self_metrics::LAST_EXPORT, l, 0.0);
        }
    }

    /// The exporter is switched off: every signal is `disabled`.
    pub fn set_exporter_disabled(&self) {
        for signal in Signal::ALL {
            self.set_exporter_state(signal, "disabled", None);
        }
    }

    /// One signal's exporter state.
    pub fn exporter_health(&self, signal: Signal) -> ExporterHealth {
        self.exporters.lock().unwrap_or_else(|p| p.into_inner())[slot(signal)]
            .health
            .clone()
    }

    pub fn readiness(&self) -> Readiness {
        let collecting = self.collecting.load(Ordering::Relaxed);
        let stopping = self.stopping.load(Ordering::Relaxed);
        let (exporter, exporters) = {
            let all = self.exporters.lock().unwrap_or_else(|p| p.into_inner());
            let per: BTreeMap<&'static str, ExporterHealth> = Signal::ALL
                .iter()
                .filter(|s| all[slot(**s)].seen)
                .map(|s| (s.as_str(), all[slot(*s)].health.clone()))
                .collect();
            (all[slot(Signal::Metrics)].health.clone(), per)
        };
        let exporter_state = exporters
            .values()
            .map(|h| h.state)
            .max_by_key(|s| severity(s))
            .unwrap_or(exporter.state);
        let collectors_down = self.label_values_where(self_metrics::COLLECTOR_UP, "collector", 0.0);
        let buffers_degraded =
            self.label_values_where(self_metrics::BUFFER_DEGRADED, "signal", 1.0);
        let ready = collecting && !stopping;
        let status = if stopping {
            "stopping".to_string()
        } else if !collecting {
            "starting".to_string()
        } else {
            // Still ready (the agent serves and buffers what it can), but each kind of
            // trouble is named, so a dashboard of statuses shows it.
            let mut s = String::from("ready");
            if severity(exporter_state) > severity("ok") {
                s.push_str(", exporter degraded");
            }
            if !collectors_down.is_empty() {
                s.push_str(", collectors down");
            }
            if !buffers_degraded.is_empty() {
                s.push_str(", buffer degraded");
            }
            s
        };
        Readiness {
            ready,
            status,
            collecting,
            exporter,
            exporters,
            exporter_state,
            last_export_unix: self.last_export_unix(),
            dropped_items: self.dropped_total(),
            collectors_down,
            buffers_degraded,
        }
    }

    /// The values of the one label `key` of a gauge's series that read `value`.
    fn label_values_where(&self, gauge: &str, key: &str, value: f64) -> Vec<String> {
        let prefix = format!("{key}=\"");
        self.gauges_of(gauge)
            .into_iter()
            .filter(|(_, v)| *v == value)
            .map(|(l, _)| {
                l.trim_start_matches(prefix.as_str())
                    .trim_end_matches('"')
                    .to_string()
            })
            .collect()
    }

    pub fn dropped_total(&self) -> u64 {
        self.counters_of(self_metrics::DROPPED_ITEMS)
            .iter()
            .map(|(_, v)| v)
            .sum()
    }

    pub fn last_export_unix(&self) -> u64 {
        self.last_export_unix.load(Ordering::Relaxed)
    }

    /// The whole self-metric page in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let started = self
            .started
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        self.set(self_metrics::START_TIME, String::new(), started);
        self.set(
            self_metrics::UPTIME,
            String::new(),
            (unix_now() - started).max(0.0),
        );
        self.set(
            self_metrics::BUILD_INFO,
            format!(
                "version=\"{}\",os=\"{}\",arch=\"{}\"",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                crate::identity::host_arch()
            ),
            1.0,
        );
        if let Some((cpu, rss)) = process_usage() {
            let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            // Stored in microseconds so the counter stays an integer.
            c.insert(
                (self_metrics::PROCESS_CPU, String::new()),
                (cpu * 1e6) as u64,
            );
            drop(c);
            self.set(self_metrics::PROCESS_RSS, String::new(), rss);
        }
        for m in self_metrics::TABLE {
            let series: Vec<(String, f64)> = match m.kind {
                self_metrics::Kind::Counter => self
                    .counters_of(m.name)
                    .into_iter()
                    .map(|(l, v)| {
                        let v = if self_metrics::MICROSECOND_COUNTERS.contains(&m.name) {
                            v as f64 / 1e6
                        } else {
                            v as f64
                        };
                        (l, v)
                    })
                    .collect(),
                self_metrics::Kind::Gauge => self.gauges_of(m.name),
            };
            let refs: Vec<(&str, f64)> = series.iter().map(|(l, v)| (l.as_str(), *v)).collect();
            self_metrics::render_family(out, m, &refs);
        }
    }

    /// Whether a receiver refusal with this reason may be logged at WARN now (at most one
    /// per reason per [`RECEIVER_LOG_EVERY`]; a client retrying in a loop would flood the log).
    fn receiver_log_due(&self, reason: &'static str) -> bool {
        let mut m = self
            .receiver_logged
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        match m.get(reason) {
            Some(t) if now.duration_since(*t) < RECEIVER_LOG_EVERY => false,
            _ => {
                m.insert(reason, now);
                true
            }
        }
    }

    /// Logs and counts one event.
    pub fn emit(&self, e: Event<'_>) {
        match e {
            Event::CollectorRan {
                collector,
                duration,
                points,
                errors,
                disconnected,
                connection_failures,
            } => {
                tracing::debug!(
                    collector,
                    points,
                    duration_ms = duration.as_secs_f64() * 1e3,
                    "collected"
                );
                let l = format!("collector=\"{}\"", self_metrics::escape(collector));
                self.add(self_metrics::COLLECTOR_RUNS, l.clone(), 1);
                self.set(
                    self_metrics::COLLECTOR_DURATION,
                    l.clone(),
                    duration.as_secs_f64(),
                );
                self.set(self_metrics::COLLECTOR_SERIES, l.clone(), points as f64);
                if connection_failures > 0 {
                    self.add(
                        self_metrics::COLLECTOR_ERRORS,
                        l.clone(),
                        connection_failures,
                    );
                }
                let up = !disconnected && (points > 0 || errors == 0);
                if !self.collecting.swap(true, Ordering::Relaxed) {
                    crate::notify::send("READY=1");
                }
                self.set(self_metrics::COLLECTOR_UP, l, if up { 1.0 } else { 0.0 });
            }
            Event::CollectorError { collector, error } => {
                // The same failure every cycle (a missing file under a wrong root_path, a
                // module not loaded) is one WARN per 10 minutes, not one per cycle.
                let text = error.to_string();
                if warn_due(&self.errors_logged, (collector.to_string(), text.clone())) {
                    tracing::warn!(collector, error = %text, "collection error; the affected metrics are skipped this cycle (the same error is logged again at most every 10 minutes; each is counted in tfo_agent_collector_errors_total)");
                } else {
                    tracing::debug!(collector, error = %text, "collection error, again");
                }
                self.add(
                    self_metrics::COLLECTOR_ERRORS,
                    format!("collector=\"{}\"", self_metrics::escape(collector)),
                    1,
                );
            }
            Event::CollectorSkipped {
                collector,
                reason,
                items,
            } => {
                self.add(
                    self_metrics::COLLECTOR_SKIPPED,
                    format!(
                        "collector=\"{}\",reason=\"{reason}\"",
                        self_metrics::escape(collector)
                    ),
                    items,
                );
                // Processes exiting mid-read are normal: never above DEBUG.
                let warn = reason != "vanished"
                    && warn_due(&self.skips_logged, (collector.to_string(), reason));
                let hint = match reason {
                    "permission_denied" => {
                        "files of other users' processes need CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (or root); their other metrics are still sent"
                    }
                    "overflow" => "raise collectors.process.max_processes or narrow the filters",
                    _ => "",
                };
                if warn {
                    tracing::warn!(
                        collector,
                        reason,
                        items,
                        hint,
                        "items skipped this cycle (logged at most every 10 minutes; counted in tfo_agent_collector_skipped_total)"
                    );
                } else {
                    tracing::debug!(collector, reason, items, "items skipped this cycle");
                }
            }
            Event::LogsError { kind, path, error } => {
                tracing::warn!(
                    collector = "logs",
                    kind,
                    path = %path.display(),
                    error,
                    "log collector error; the path is retried at every poll"
                );
                self.add(self_metrics::LOGS_ERRORS, format!("kind=\"{kind}\""), 1);
            }
            Event::KubeError { kind, error } => {
                tracing::warn!(
                    collector = "kubernetes",
                    kind,
                    error,
                    "kubernetes collector error"
                );
                self.add(self_metrics::KUBE_ERRORS, format!("kind=\"{kind}\""), 1);
            }
            Event::LogsRecordsDropped { reason, records } => {
                // A filter the operator configured: not worth a warning per poll.
                tracing::debug!(
                    collector = "logs",
                    reason,
                    records,
                    "log records not sent (filtered)"
                );
                self.add(
                    self_metrics::LOGS_RECORDS_DROPPED,
                    format!("reason=\"{reason}\""),
                    records,
                );
            }
            Event::LogsBytesLost { reason, bytes } => {
                tracing::warn!(
                    collector = "logs",
                    reason,
                    bytes,
                    "log data lost before it was read: a file was truncated before the agent reached that part and no copy of it was found"
                );
                self.add(
                    self_metrics::LOGS_BYTES_LOST,
                    format!("reason=\"{reason}\""),
                    bytes,
                );
            }
            Event::ReceiverAccepted {
                transport,
                signal,
                items,
                rejected,
                detail,
            } => {
                let sig = signal.as_str();
                self.add(
                    self_metrics::RECEIVER_ITEMS,
                    format!("signal=\"{sig}\""),
                    items,
                );
                let status = if rejected > 0 {
                    self.add(
                        self_metrics::RECEIVER_REFUSED,
                        format!("signal=\"{sig}\",reason=\"invalid_items\""),
                        rejected,
                    );
                    if self.receiver_log_due("invalid_items") {
                        tracing::warn!(
                            transport,
                            signal = sig,
                            rejected,
                            detail,
                            "OTLP receiver: invalid items rejected (partial success; at most one such line per 10 s)"
                        );
                    }
                    "partial"
                } else {
                    "ok"
                };
                self.add(
                    self_metrics::RECEIVER_REQUESTS,
                    format!("transport=\"{transport}\",signal=\"{sig}\",status=\"{status}\""),
                    1,
                );
            }
            Event::ReceiverRefused {
                transport,
                signal,
                items,
                reason,
                detail,
            } => {
                let sig = signal.as_str();
                if self.receiver_log_due(reason) {
                    tracing::warn!(
                        transport,
                        signal = sig,
                        reason,
                        items,
                        detail,
                        "OTLP receiver refused a request (at most one line per reason per 10 s; all are counted)"
                    );
                } else {
                    tracing::debug!(
                        transport,
                        signal = sig,
                        reason,
                        detail,
                        "OTLP receiver refused a request"
                    );
                }
                if items > 0 {
                    self.add(
                        self_metrics::RECEIVER_REFUSED,
                        format!("signal=\"{sig}\",reason=\"{reason}\""),
                        items,
                    );
                }
                self.add(
                    self_metrics::RECEIVER_REQUESTS,
                    format!("transport=\"{transport}\",signal=\"{sig}\",status=\"{reason}\""),
                    1,
                );
            }
            Event::LogsLinesSplit { cuts } => {
                tracing::debug!(
                    collector = "logs",
                    cuts,
                    "lines longer than collectors.logs.max_line_bytes split into pieces"
                );
                self.add(self_metrics::LOGS_LINES_SPLIT, String::new(), cuts);
            }
            Event::Dropped {
                signal,
                reason,
                items,
                detail,
            } => {
                tracing::warn!(
                    signal = signal.as_str(),
                    reason = reason.as_str(),
                    items,
                    detail,
                    "dropped telemetry"
                );
                self.add(
                    self_metrics::DROPPED_ITEMS,
                    format!(
                        "signal=\"{}\",reason=\"{}\"",
                        signal.as_str(),
                        reason.as_str()
                    ),
                    items,
                );
            }
            Event::BufferDropped {
                signal,
                reason,
                records,
                items,
                detail,
            } => {
                tracing::warn!(
                    signal = signal.as_str(),
                    reason = reason.as_str(),
                    records,
                    items,
                    detail,
                    "dropped telemetry"
                );
                let l = format!(
                    "signal=\"{}\",reason=\"{}\"",
                    signal.as_str(),
                    reason.as_str()
                );
                self.add(self_metrics::BUFFER_DROPPED_RECORDS, l.clone(), records);
                if items > 0 {
                    self.add(self_metrics::DROPPED_ITEMS, l, items);
                }
            }
            Event::Exported { signal, items } => {
                tracing::debug!(signal = signal.as_str(), items, "exported");
                self.add(
                    self_metrics::EXPORTED_ITEMS,
                    format!("signal=\"{}\"", signal.as_str()),
                    items,
                );
                self.add(
                    self_metrics::EXPORT_REQUESTS,
                    format!("signal=\"{}\",outcome=\"success\"", signal.as_str()),
                    1,
                );
                let now = unix_now();
                self.last_export_unix.store(now as u64, Ordering::Relaxed);
                if let Some((was, since)) = self.set_exporter_state(signal, "ok", None)
                    && was != "starting"
                    && was != "disabled"
                {
                    let backlog: f64 = self
                        .gauges_of(self_metrics::BUFFER_RECORDS)
                        .iter()
                        .map(|(_, v)| v)
                        .sum();
                    tracing::info!(
                        signal = signal.as_str(),
                        was,
                        failing_for_s = (now as u64).saturating_sub(since),
                        backlog_records = backlog as u64,
                        "export resumed; the backlog is being replayed"
                    );
                }
                self.set(
                    self_metrics::LAST_EXPORT,
                    format!("signal=\"{}\"", signal.as_str()),
                    now,
                );
            }
            Event::ExportTooLarge {
                signal,
                records,
                split_to,
                reason,
                quiet,
            } => {
                self.add(
                    self_metrics::EXPORT_REQUESTS,
                    format!("signal=\"{}\",outcome=\"too_large\"", signal.as_str()),
                    1,
                );
                if split_to == 0 {
                    // The drop that follows is its own WARN line.
                    tracing::debug!(
                        signal = signal.as_str(),
                        reason,
                        "a single record is too large for the collector"
                    );
                } else if quiet {
                    tracing::debug!(
                        signal = signal.as_str(),
                        records,
                        split_to,
                        reason,
                        "request too large; sending its records in smaller requests"
                    );
                } else {
                    tracing::warn!(
                        signal = signal.as_str(),
                        records,
                        split_to,
                        reason,
                        fix = match signal {
                            Signal::Logs => "lower exporter.otlp.logs_batch_size",
                            _ => "set exporter.otlp.max_batch_size (e.g. 100)",
                        },
                        "the collector refuses the request as too large; sending its records in smaller requests"
                    );
                }
            }
            Event::ExportFailed {
                signal,
                class,
                reason,
                retry_in,
            } => {
                let (outcome, state) = match class {
                    Some(FailureClass::Outage) => ("outage", "outage"),
                    Some(FailureClass::Refused) => ("refused", "refused"),
                    Some(FailureClass::Transient) => ("retryable", "retrying"),
                    None => ("permanent", "rejecting"),
                };
                let changed = self.set_exporter_state(signal, state, Some(reason));
                if retry_in.is_some() {
                    self.add(
                        self_metrics::EXPORT_RETRIES,
                        format!("signal=\"{}\",class=\"{outcome}\"", signal.as_str()),
                        1,
                    );
                }
                let retry_in_ms = retry_in.map(|d| d.as_millis() as u64);
                // One line per change of state at WARN (with the fix, for a refusal); the
                // retries themselves at DEBUG, summarised once a minute while it lasts.
                if changed.is_some() || retry_in.is_none() {
                    let msg = match (outcome, retry_in) {
                        ("outage", _) => {
                            "collector unreachable; data is kept in the buffer and sent when it returns"
                        }
                        ("refused", _) => {
                            "the collector refuses this agent; data is kept in the buffer and retried at telemetryflow.retry.max_interval"
                        }
                        (_, Some(_)) => "export failed; will retry",
                        _ => "export failed",
                    };
                    tracing::warn!(
                        signal = signal.as_str(),
                        outcome,
                        reason,
                        retry_in_ms,
                        "{msg}"
                    );
                    self.exporters.lock().unwrap_or_else(|p| p.into_inner())[slot(signal)]
                        .summary_at = unix_now() as u64;
                } else {
                    tracing::debug!(
                        signal = signal.as_str(),
                        outcome,
                        reason,
                        retry_in_ms,
                        "export retry"
                    );
                    let now = unix_now() as u64;
                    let due = {
                        let mut all = self.exporters.lock().unwrap_or_else(|p| p.into_inner());
                        let s = &mut all[slot(signal)];
                        let due = now.saturating_sub(s.summary_at) >= SUMMARY_EVERY_S;
                        if due {
                            s.summary_at = now;
                        }
                        due.then_some(s.health.since)
                    };
                    if let Some(since) = due {
                        tracing::warn!(
                            signal = signal.as_str(),
                            outcome,
                            reason,
                            failing_for_s = now.saturating_sub(since),
                            "export still failing; data is kept in the buffer"
                        );
                    }
                }
                self.add(
                    self_metrics::EXPORT_REQUESTS,
                    format!("signal=\"{}\",outcome=\"{outcome}\"", signal.as_str()),
                    1,
                );
            }
        }
    }
}

/// CPU seconds (user + system) and resident bytes of this process, from /proc/self/stat.
fn process_usage() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15, rss 24.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let rss_pages: f64 = f.get(21)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let (tck, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if tck <= 0 || page <= 0 {
        return None;
    }
    Some(((utime + stime) / tck as f64, rss_pages * page as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log lines written while `f` runs (text, no colour).
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        use std::sync::Arc;
        let sink = Sink::default();
        let w = sink.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .finish();
        tracing::subscriber::with_default(sub, f);
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_repeated_collection_error_is_logged_once_and_counted_each_time() {
        let s = Stats::default();
        let out = logged(|| {
            for _ in 0..5 {
                s.emit(Event::CollectorError {
                    collector: "system",
                    error: &"/nope/proc/stat: No such file or directory",
                });
            }
            s.emit(Event::CollectorError {
                collector: "system",
                error: &"/nope/proc/meminfo: No such file or directory",
            });
        });
        assert_eq!(out.matches("/nope/proc/stat").count(), 1, "{out}");
        assert_eq!(out.matches("/nope/proc/meminfo").count(), 1, "{out}");
        assert_eq!(
            s.counter(self_metrics::COLLECTOR_ERRORS, "collector=\"system\""),
            6
        );
    }

    #[test]
    fn each_signal_has_its_own_exporter_state() {
        let s = Stats::default();
        let out = logged(|| {
            // Metrics delivered, logs refused, alternating request by request.
            for _ in 0..5 {
                s.emit(Event::Exported {
                    signal: Signal::Metrics,
                    items: 1,
                });
                s.emit(Event::ExportFailed {
                    signal: Signal::Logs,
                    class: Some(FailureClass::Refused),
                    reason: "HTTP 404",
                    retry_in: Some(Duration::from_secs(30)),
                });
            }
        });
        let refused = out.matches("the collector refuses this agent").count();
        assert_eq!(refused, 1, "one refused line for logs:\n{out}");
        assert!(
            out.contains("signal=\"logs\"") || out.contains("signal=logs"),
            "{out}"
        );
        assert_eq!(out.matches("export resumed").count(), 0, "{out}");

        let r = s.readiness();
        assert_eq!(r.exporter.state, "ok", "metrics keep the compatible field");
        assert_eq!(r.exporters["metrics"].state, "ok");
        assert_eq!(r.exporters["logs"].state, "refused");
        assert_eq!(r.exporters["logs"].last_error.as_deref(), Some("HTTP 404"));
        assert_eq!(r.exporter_state, "refused", "the worst signal wins");
        assert_eq!(s.exporter_health(Signal::Metrics).state, "ok");
        assert_eq!(s.exporter_health(Signal::Logs).state, "refused");

        // Both recover: one resumed line for logs only (metrics never failed).
        let out = logged(|| {
            for _ in 0..3 {
                s.emit(Event::Exported {
                    signal: Signal::Logs,
                    items: 1,
                });
                s.emit(Event::Exported {
                    signal: Signal::Metrics,
                    items: 1,
                });
            }
        });
        assert_eq!(out.matches("export resumed").count(), 1, "{out}");
        assert!(
            out.contains("was=\"refused\"") || out.contains("was=refused"),
            "{out}"
        );
        assert_eq!(s.readiness().exporter_state, "ok");

        // An outage on metrics while logs are delivered: one outage line.
        let out = logged(|| {
            for _ in 0..4 {
                s.emit(Event::ExportFailed {
                    signal: Signal::Metrics,
                    class: Some(FailureClass::Outage),
                    reason: "connection refused",
                    retry_in: Some(Duration::from_secs(1)),
                });
                s.emit(Event::Exported {
                    signal: Signal::Logs,
                    items: 1,
                });
            }
        });
        assert_eq!(out.matches("collector unreachable").count(), 1, "{out}");
        assert_eq!(out.matches("export resumed").count(), 0, "{out}");
        let r = s.readiness();
        assert_eq!(r.exporter.state, "outage");
        assert_eq!(r.status, "starting", "no collection cycle yet");
    }

    #[test]
    fn readiness_names_each_kind_of_trouble_and_stays_ready() {
        let s = Stats::default();
        let ran = |collector, points, errors| Event::CollectorRan {
            collector,
            duration: Duration::from_millis(1),
            points,
            errors,
            disconnected: false,
            connection_failures: 0,
        };
        s.emit(ran("system", 10, 0));
        s.set_exporter_state(Signal::Metrics, "ok", None);
        let r = s.readiness();
        assert_eq!((r.ready, r.status.as_str()), (true, "ready"));
        s.emit(ran("node_exporter", 0, 3));
        s.set(
            self_metrics::BUFFER_DEGRADED,
            "signal=\"metrics\"".into(),
            1.0,
        );
        let r = s.readiness();
        assert!(r.ready, "collector or disk trouble does not fail readiness");
        assert_eq!(r.status, "ready, collectors down, buffer degraded");
        assert_eq!(r.collectors_down, ["node_exporter"]);
        assert_eq!(r.buffers_degraded, ["metrics"]);
        assert_eq!(r.to_json()["buffers_degraded"][0], "metrics");
    }

    #[test]
    fn a_signal_that_is_not_exported_is_not_reported() {
        let s = Stats::default();
        let r = s.readiness();
        assert_eq!(r.exporters.keys().copied().collect::<Vec<_>>(), ["metrics"]);
        assert_eq!(r.exporter_state, "starting");
        s.track_exporter(Signal::Logs);
        assert_eq!(
            s.gauge(self_metrics::LAST_EXPORT, "signal=\"logs\""),
            Some(0.0),
            "an exported signal reads 0 until its first export"
        );
        assert_eq!(s.readiness().exporters.len(), 2);
        s.set_exporter_disabled();
        assert_eq!(s.readiness().exporter_state, "disabled");
    }

    #[test]
    fn render_is_complete_and_labelled() {
        let s = Stats::default();
        s.emit(Event::Dropped {
            signal: Signal::Metrics,
            reason: DropReason::Full,
            items: 7,
            detail: "test",
        });
        s.emit(Event::CollectorRan {
            collector: "system",
            duration: Duration::from_millis(3),
            points: 10,
            errors: 0,
            disconnected: false,
            connection_failures: 0,
        });
        let mut out = String::new();
        s.render(&mut out);
        assert!(
            out.contains("tfo_agent_dropped_items_total{signal=\"metrics\",reason=\"full\"} 7\n")
        );
        assert!(out.contains("tfo_agent_collector_up{collector=\"system\"} 1\n"));
        assert!(out.contains("# TYPE tfo_agent_process_cpu_seconds_total counter\n"));
        for m in self_metrics::TABLE {
            assert!(
                out.contains(&format!("# TYPE {} ", m.name)),
                "{} missing",
                m.name
            );
        }
        let rss = s.gauge(self_metrics::PROCESS_RSS, "").unwrap_or(0.0);
        assert!(rss > 1e6, "resident memory {rss}");
        // Nothing runs the Kubernetes collector or the heartbeat here: their gauges have
        // no value (a 0 would look like an outage), while an untouched counter is 0.
        let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        for absent in [
            self_metrics::KUBE_API_UP,
            self_metrics::KUBE_LEADER,
            self_metrics::LAST_HEARTBEAT,
            self_metrics::LOGS_FILES_WATCHED,
        ] {
            assert!(
                !lines.iter().any(|l| l.starts_with(&format!("{absent} "))),
                "{absent} has a value:\n{out}"
            );
        }
        assert!(lines.contains(&"tfo_agent_logs_records_total 0"), "{out}");
    }
}
