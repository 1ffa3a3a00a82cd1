//! The collection stage: each interval collector on a thread of its own ([`ticker`]).
//! Each cycle collects, encodes and appends to the buffer, so a slow filesystem or a large
//! /proc never stalls another collector or the exporter, and an append that fsyncs
//! (`buffer.fsync: always`) or waits for room (`when_full: block`) holds only its own
//! collector. A collector that panics is reported and its task ends; the agent counts it
//! and starts the collector again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tfo_collectors::Collector;
use tfo_exporter::encode::MetricsEncoder;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::buffer::Buffer;
use super::ticker;
use crate::events::{Event, Stats};

/// Where a collector's cycles go, and what it reports to.
struct Sink {
    keep_last: Option<Arc<std::sync::Mutex<Vec<tfo_collectors::Metric>>>>,
    encoder: Arc<MetricsEncoder>,
    buffer: Arc<Buffer>,
    stats: Arc<Stats>,
}

pub fn spawn(
    mut collector: Box<dyn Collector>,
    interval: Duration,
    keep_last: Option<Arc<std::sync::Mutex<Vec<tfo_collectors::Metric>>>>,
    encoder: Arc<MetricsEncoder>,
    buffer: Arc<Buffer>,
    stats: Arc<Stats>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let name = collector.name();
    let sink = Sink {
        keep_last,
        encoder,
        buffer,
        stats: stats.clone(),
    };
    let panicked = stats.clone();
    let spawned = ticker::spawn(
        name,
        interval,
        cancel,
        move || cycle(&mut *collector, &sink),
        move |why| {
            panicked.emit(Event::CollectorError {
                collector: name,
                error: &format!("collector task failed: {why}"),
            })
        },
    );
    spawned.unwrap_or_else(|e| {
        stats.emit(Event::CollectorError {
            collector: name,
            error: &format!("cannot start the collector's thread: {e}"),
        });
        // Ends at once: the supervisor counts it and tries again.
        tokio::spawn(async {})
    })
}

/// One cycle: collect, encode, append, report.
fn cycle(c: &mut dyn Collector, sink: &Sink) {
    if crate::failpoint::fire("collector_panic") {
        panic!("failpoint collector_panic");
    }
    let name = c.name();
    let start = Instant::now();
    let (mut metrics, mut encoded) = (Vec::new(), Vec::new());
    let report = c.collect_encoded(&mut metrics, &mut encoded);
    let took = start.elapsed();
    let stamp = cycle_time(&metrics);
    if let Some(keep) = &sink.keep_last {
        *keep.lock().unwrap_or_else(|p| p.into_inner()) = metrics.clone();
    }
    let mut records = Vec::new();
    let encoded = encoded.into_iter().map(|e| (e.body, e.points)).collect();
    let points = sink.encoder.encode_mixed(metrics, encoded, &mut records);
    let n = records.len();
    for r in records {
        sink.buffer.push(r);
    }
    if n > 0 {
        tracing::debug!(
            collector = name,
            time_unix_nano = stamp,
            records = n,
            "cycle buffered"
        );
    }
    let stats = &sink.stats;
    for err in &report.errors {
        stats.emit(Event::CollectorError {
            collector: name,
            error: err,
        });
    }
    for &(reason, items) in &report.skipped {
        stats.emit(Event::CollectorSkipped {
            collector: name,
            reason,
            items,
        });
    }
    stats.emit(Event::CollectorRan {
        collector: name,
        duration: took,
        points,
        errors: report.errors.len(),
    });
}

/// The time of a cycle: collectors stamp every point of a cycle with the same time.
fn cycle_time(metrics: &[tfo_collectors::Metric]) -> u64 {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    metrics
        .iter()
        .find_map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.first().map(|p| p.time_unix_nano),
            Some(Data::Sum(s)) => s.data_points.first().map(|p| p.time_unix_nano),
            _ => None,
        })
        .unwrap_or(0)
}
