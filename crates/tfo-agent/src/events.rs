//! Internal events: every error, drop and export outcome is one `Event`, which is both
//! logged and counted here, so `/metrics` and the logs can never disagree.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tfo_exporter::{FailureClass, Signal};

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
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Full => "full",
            DropReason::Rejected => "rejected",
            DropReason::MaxRetries => "max_retries",
            DropReason::Shutdown => "shutdown",
        }
    }
}

pub enum Event<'a> {
    CollectorRan {
        collector: &'a str,
        duration: Duration,
        points: usize,
    },
    CollectorError {
        collector: &'a str,
        error: &'a dyn std::fmt::Display,
    },
    Dropped {
        signal: Signal,
        reason: DropReason,
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
}

/// Counters behind `/metrics` and the shutdown summary. Keys are label sets rendered as
/// Prometheus label strings; the sets are small and fixed (signals × reasons).
pub struct Stats {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    gauges: Mutex<BTreeMap<(&'static str, String), f64>>,
    last_export_unix: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            counters: Mutex::new(BTreeMap::new()),
            gauges: Mutex::new(BTreeMap::new()),
            last_export_unix: AtomicU64::new(0),
        }
    }
}

impl Stats {
    fn add(&self, name: &'static str, labels: String, v: u64) {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry((name, labels)).or_insert(0) += v;
    }

    fn set(&self, name: &'static str, labels: String, v: f64) {
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

    pub fn dropped_total(&self) -> u64 {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.iter()
            .filter(|((n, _), _)| *n == "tfo_agent_dropped_items_total")
            .map(|(_, v)| *v)
            .sum()
    }

    pub fn last_export_unix(&self) -> u64 {
        self.last_export_unix.load(Ordering::Relaxed)
    }

    /// Logs and counts one event.
    pub fn emit(&self, e: Event<'_>) {
        match e {
            Event::CollectorRan {
                collector,
                duration,
                points,
            } => {
                tracing::debug!(
                    collector,
                    points,
                    duration_ms = duration.as_secs_f64() * 1e3,
                    "collected"
                );
                let l = format!("collector=\"{collector}\"");
                self.add("tfo_agent_collector_runs_total", l.clone(), 1);
                self.set(
                    "tfo_agent_collector_duration_seconds",
                    l.clone(),
                    duration.as_secs_f64(),
                );
                self.set("tfo_agent_collector_series", l, points as f64);
            }
            Event::CollectorError { collector, error } => {
                tracing::warn!(collector, error = %error, "collection error; the affected metrics are skipped this cycle");
                self.add(
                    "tfo_agent_collector_errors_total",
                    format!("collector=\"{collector}\""),
                    1,
                );
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
                    "tfo_agent_dropped_items_total",
                    format!(
                        "signal=\"{}\",reason=\"{}\"",
                        signal.as_str(),
                        reason.as_str()
                    ),
                    items,
                );
            }
            Event::Exported { signal, items } => {
                tracing::debug!(signal = signal.as_str(), items, "exported");
                self.add(
                    "tfo_agent_exported_items_total",
                    format!("signal=\"{}\"", signal.as_str()),
                    items,
                );
                self.add(
                    "tfo_agent_export_requests_total",
                    format!("signal=\"{}\",outcome=\"success\"", signal.as_str()),
                    1,
                );
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                self.last_export_unix.store(now, Ordering::Relaxed);
            }
            Event::ExportFailed {
                signal,
                class,
                reason,
                retry_in,
            } => {
                let outcome = match class {
                    Some(FailureClass::Outage) => "outage",
                    Some(FailureClass::Transient) => "retryable",
                    None => "permanent",
                };
                match retry_in {
                    Some(d) => tracing::warn!(
                        signal = signal.as_str(),
                        outcome,
                        reason,
                        retry_in_ms = d.as_millis() as u64,
                        "export failed; will retry"
                    ),
                    None => {
                        tracing::warn!(signal = signal.as_str(), outcome, reason, "export failed")
                    }
                }
                self.add(
                    "tfo_agent_export_requests_total",
                    format!("signal=\"{}\",outcome=\"{outcome}\"", signal.as_str()),
                    1,
                );
            }
        }
    }
}
