//! The collection stage: interval collectors on threads of their own ([`ticker`]), one
//! thread per interval. The collectors that share an interval run back to back on it and
//! their cycle goes out as one encoding, one set of buffer records and so (usually) one
//! export request: with the default `system` and `node_exporter` both at 15 s, two threads
//! waking at the same instant cost two wake-ups, two appends and two requests per cycle,
//! about a fifth of the agent's CPU at a 1 s interval. A slow collector delays the others
//! of its interval by its own duration (reported in `tfo_agent_collector_duration_seconds`)
//! but never another interval's collectors or the exporter.
//!
//! Files that several collectors of a group read (/proc/stat, /proc/meminfo, ...) are read
//! once per cycle ([`tfo_collectors::SharedReads`]).
//!
//! Each cycle collects, encodes and appends to the buffer. An append that fsyncs
//! (`buffer.fsync: always`) or waits for room (`when_full: block`) holds only this thread.
//! A collector that panics is reported, left out of that cycle, and replaced by a fresh
//! instance on the same thread (counted as a restart of `collector/<name>`); a panic
//! outside any collector ends the thread, and the agent starts the group again.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tfo_collectors::{CollectReport, Collector, EncodedMetric, Metric};
use tfo_exporter::encode::MetricsEncoder;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::buffer::Buffer;
use super::ticker;
use crate::events::{Event, Stats};

/// Where a collector's last cycle is kept for a local view (`prometheus.expose_node_metrics`).
pub type KeepLast = Arc<std::sync::Mutex<Vec<Metric>>>;

/// One collector of a group.
pub struct Member {
    pub collector: Box<dyn Collector>,
    pub keep_last: Option<KeepLast>,
}

/// Builds a collector again by name after it panicked (`None`: it cannot be).
pub type Rebuild = Box<dyn Fn(&'static str) -> Option<Box<dyn Collector>> + Send>;

/// Where a group's cycles go, and what it reports to.
struct Sink {
    encoder: Arc<MetricsEncoder>,
    buffer: Arc<Buffer>,
    stats: Arc<Stats>,
    rebuild: Rebuild,
    /// Cancelled when a reload replaced this group: a cycle that was running then still
    /// lands in the buffer, but no longer sets the collectors' gauges, which the reload
    /// drops for collectors that were turned off.
    retired: CancellationToken,
}

/// The name of a group's thread: the collector's own when it runs alone.
fn group_name(members: &[Member], interval: Duration) -> String {
    match members {
        [one] => one.collector.name().to_string(),
        _ => {
            let ms = interval.as_millis();
            if ms.is_multiple_of(1000) {
                format!("collect-{}s", ms / 1000)
            } else {
                format!("collect-{ms}ms")
            }
        }
    }
}

/// Starts the collectors of one interval on one thread.
pub fn spawn(
    mut members: Vec<Member>,
    interval: Duration,
    encoder: Arc<MetricsEncoder>,
    buffer: Arc<Buffer>,
    stats: Arc<Stats>,
    rebuild: Rebuild,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let names: Vec<&'static str> = members.iter().map(|m| m.collector.name()).collect();
    let name = group_name(&members, interval);
    let sink = Sink {
        encoder,
        buffer,
        stats: stats.clone(),
        rebuild,
        retired: cancel.clone(),
    };
    let panicked = stats.clone();
    let on_panic_names = names.clone();
    let spawned = ticker::spawn(
        &name,
        interval,
        cancel,
        move || cycle(&mut members, &sink),
        move |why| {
            for collector in on_panic_names {
                panicked.emit(Event::CollectorError {
                    collector,
                    error: &format!("collection thread failed: {why}"),
                })
            }
        },
    );
    spawned.unwrap_or_else(|e| {
        for collector in names {
            stats.emit(Event::CollectorError {
                collector,
                error: &format!("cannot start the collector's thread: {e}"),
            });
        }
        // Ends at once: the supervisor counts it and tries again.
        tokio::spawn(async {})
    })
}

/// What one member's collection gave, reported after the cycle is buffered.
struct Ran {
    collector: &'static str,
    took: Duration,
    points: usize,
    /// The cycle's timestamp, for the debug log (0 when it is off).
    stamp: u64,
    report: CollectReport,
}

/// One cycle of a group: collect each member, encode them together, append, report.
fn cycle(members: &mut Vec<Member>, sink: &Sink) {
    let (mut metrics, mut encoded): (Vec<Metric>, Vec<EncodedMetric>) = (Vec::new(), Vec::new());
    let mut ran = Vec::with_capacity(members.len());
    let mut failed = Vec::new();
    // The files several members read (/proc/stat, meminfo, ...) are read once per cycle.
    let shared = (members.len() > 1).then(tfo_collectors::SharedReads::begin);
    for (i, m) in members.iter_mut().enumerate() {
        let name = m.collector.name();
        let (m0, e0) = (metrics.len(), encoded.len());
        let start = Instant::now();
        let c = &mut m.collector;
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if crate::failpoint::fire("collector_panic") {
                panic!("failpoint collector_panic");
            }
            c.collect_encoded(&mut metrics, &mut encoded)
        }));
        let took = start.elapsed();
        match r {
            Ok(report) => {
                let points = metrics[m0..]
                    .iter()
                    .map(tfo_exporter::encode::point_count)
                    .sum::<usize>()
                    + encoded[e0..].iter().map(|e| e.points).sum::<usize>();
                if let Some(keep) = &m.keep_last {
                    let mut view = metrics[m0..].to_vec();
                    view.extend(encoded[e0..].iter().filter_map(|e| e.decode().ok()));
                    *keep.lock().unwrap_or_else(|p| p.into_inner()) = view;
                }
                let stamp = if tracing::enabled!(tracing::Level::DEBUG) {
                    cycle_time(&metrics[m0..], &encoded[e0..])
                } else {
                    0
                };
                ran.push(Ran {
                    collector: name,
                    took,
                    points,
                    stamp,
                    report,
                });
            }
            Err(p) => {
                // What it appended before panicking may be half a cycle: left out.
                metrics.truncate(m0);
                encoded.truncate(e0);
                sink.stats.emit(Event::CollectorError {
                    collector: name,
                    error: &format!(
                        "collector task failed: {}",
                        ticker::panic_message(p.as_ref())
                    ),
                });
                failed.push(i);
            }
        }
    }
    drop(shared);
    let mut records = Vec::new();
    let encoded = encoded.into_iter().map(|e| (e.body, e.points)).collect();
    sink.encoder.encode_mixed(metrics, encoded, &mut records);
    let n = records.len();
    for r in records {
        sink.buffer.push(r);
    }
    if n > 0 {
        for r in &ran {
            tracing::debug!(
                collector = r.collector,
                time_unix_nano = r.stamp,
                records = n,
                "cycle buffered"
            );
        }
    }
    let stats = &sink.stats;
    for r in &ran {
        for err in &r.report.errors {
            stats.emit(Event::CollectorError {
                collector: r.collector,
                error: err,
            });
        }
        for &(reason, items) in &r.report.skipped {
            stats.emit(Event::CollectorSkipped {
                collector: r.collector,
                reason,
                items,
            });
        }
        if sink.retired.is_cancelled() {
            continue;
        }
        stats.emit(Event::CollectorRan {
            collector: r.collector,
            duration: r.took,
            points: r.points,
            errors: r.report.errors.len(),
            disconnected: r.report.disconnected,
            connection_failures: r.report.connection_failures,
        });
    }
    // A collector that panicked may have left its state half-updated: a fresh instance
    // takes its place from the next cycle.
    for i in failed.into_iter().rev() {
        let name = members[i].collector.name();
        let label = format!("collector/{name}");
        match (sink.rebuild)(name) {
            Some(c) => {
                stats.task_restarted(&label);
                members[i].collector = c;
            }
            None => {
                stats.task_dead(&label);
                // Its last cycle is not served as if it were still collecting.
                if let Some(keep) = members.remove(i).keep_last {
                    keep.lock().unwrap_or_else(|p| p.into_inner()).clear();
                }
            }
        }
    }
    if crate::failpoint::fire("collect_thread_panic") {
        panic!("failpoint collect_thread_panic");
    }
}

/// The time of a cycle: collectors stamp every point of a cycle with the same time.
fn cycle_time(metrics: &[Metric], encoded: &[EncodedMetric]) -> u64 {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let first = |m: &Metric| match &m.data {
        Some(Data::Gauge(g)) => g.data_points.first().map(|p| p.time_unix_nano),
        Some(Data::Sum(s)) => s.data_points.first().map(|p| p.time_unix_nano),
        _ => None,
    };
    metrics
        .iter()
        .find_map(first)
        .or_else(|| {
            encoded
                .first()
                .and_then(|e| e.decode().ok())
                .and_then(|m| first(&m))
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tfo_exporter::Signal;

    use super::*;
    use crate::pipeline::queue::Queue;
    use crate::self_metrics;

    /// A collector giving one gauge named after it per cycle; `panics_on` cycle numbers
    /// (counted across instances by `cycles`) panic instead.
    struct Fake {
        name: &'static str,
        cycles: Arc<AtomicUsize>,
        panics_on: usize,
    }

    impl Collector for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        fn collect(&mut self, out: &mut Vec<Metric>) -> CollectReport {
            let n = self.cycles.fetch_add(1, Ordering::SeqCst) + 1;
            if n == self.panics_on {
                panic!("fake {} panics", self.name);
            }
            let def = tfo_collectors::MetricDef::new(
                self.name,
                tfo_collectors::MetricKind::Gauge,
                tfo_collectors::ValueType::Int,
                "1",
                &[],
                "",
                "",
            );
            out.push(def.build(vec![Default::default()]));
            CollectReport::default()
        }
    }

    fn fake(name: &'static str, cycles: &Arc<AtomicUsize>, panics_on: usize) -> Box<dyn Collector> {
        Box::new(Fake {
            name,
            cycles: cycles.clone(),
            panics_on,
        })
    }

    fn names_in(buffer: &Buffer) -> Vec<Vec<String>> {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use prost::Message;
        let batch = buffer.next_batch(usize::MAX, usize::MAX);
        batch
            .records
            .iter()
            .map(|r| {
                let req = ExportMetricsServiceRequest::decode(r.body.as_ref()).unwrap();
                req.resource_metrics
                    .iter()
                    .flat_map(|rm| &rm.scope_metrics)
                    .flat_map(|sm| &sm.metrics)
                    .map(|m| m.name.clone())
                    .collect()
            })
            .collect()
    }

    /// A group's cycle is one record; a member that panics is left out of that cycle,
    /// counted, and replaced, while the other members' data still goes out.
    #[test]
    fn a_group_cycle_is_one_record_and_a_panicking_member_is_replaced() {
        let stats = Arc::new(Stats::default());
        let buffer = Arc::new(Buffer::Memory(Queue::new(
            Signal::Metrics,
            1 << 20,
            1,
            stats.clone(),
        )));
        let (a, b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let rebuilt = b.clone();
        let sink = Sink {
            encoder: Arc::new(MetricsEncoder::new(Vec::new(), "test", 100)),
            buffer: buffer.clone(),
            stats: stats.clone(),
            rebuild: Box::new(move |name| Some(fake(name, &rebuilt, 0))),
            retired: CancellationToken::new(),
        };
        let mut members = vec![
            Member {
                collector: fake("a", &a, 0),
                keep_last: None,
            },
            Member {
                collector: fake("b", &b, 2),
                keep_last: None,
            },
        ];
        cycle(&mut members, &sink);
        assert_eq!(names_in(&buffer), vec![vec!["a", "b"]]);
        cycle(&mut members, &sink);
        assert_eq!(names_in(&buffer), vec![vec!["a"]], "b panicked: left out");
        let restarts = self_metrics::TASK_RESTARTS;
        assert_eq!(stats.counter(restarts, "task=\"collector/b\""), 1);
        assert_eq!(stats.counter(restarts, "task=\"collector/a\""), 0);
        cycle(&mut members, &sink);
        assert_eq!(names_in(&buffer), vec![vec!["a", "b"]], "b replaced");
        let runs = self_metrics::COLLECTOR_RUNS;
        assert_eq!(stats.counter(runs, "collector=\"a\""), 3);
        assert_eq!(stats.counter(runs, "collector=\"b\""), 2);
    }

    #[test]
    fn a_group_thread_is_named_for_its_interval() {
        let c = Arc::new(AtomicUsize::new(0));
        let one = |n| Member {
            collector: fake(n, &c, 0),
            keep_last: None,
        };
        assert_eq!(
            group_name(&[one("system")], Duration::from_secs(1)),
            "system"
        );
        let two = [one("system"), one("node_exporter")];
        assert_eq!(group_name(&two, Duration::from_secs(15)), "collect-15s");
        assert_eq!(
            group_name(&two, Duration::from_millis(1500)),
            "collect-1500ms"
        );
    }
}
