//! The collection stage: one task per collector on its own interval. The collector itself
//! runs on the blocking pool, so a slow filesystem or a large /proc never stalls another
//! collector or the exporter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tfo_collectors::Collector;
use tfo_exporter::encode::MetricsEncoder;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::buffer::Buffer;
use crate::events::{Event, Stats};

pub fn spawn(
    collector: Box<dyn Collector>,
    interval: Duration,
    keep_last: Option<Arc<std::sync::Mutex<Vec<tfo_collectors::Metric>>>>,
    encoder: Arc<MetricsEncoder>,
    buffer: Arc<Buffer>,
    stats: Arc<Stats>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let name = collector.name();
        let mut slot = Some(collector);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let Some(mut c) = slot.take() else { return };
            let (enc, buf, keep) = (encoder.clone(), buffer.clone(), keep_last.clone());
            // Collect, encode and append on the blocking pool: appends may fsync
            // (`buffer.fsync: always`) or wait for room (`when_full: block`).
            let job = tokio::task::spawn_blocking(move || {
                if crate::failpoint::fire("collector_panic") {
                    panic!("failpoint collector_panic");
                }
                let start = Instant::now();
                let (mut metrics, mut encoded) = (Vec::new(), Vec::new());
                let report = c.collect_encoded(&mut metrics, &mut encoded);
                let took = start.elapsed();
                let stamp = cycle_time(&metrics);
                if let Some(keep) = keep {
                    *keep.lock().unwrap_or_else(|p| p.into_inner()) = metrics.clone();
                }
                let mut records = Vec::new();
                let encoded = encoded.into_iter().map(|e| (e.body, e.points)).collect();
                let points = enc.encode_mixed(metrics, encoded, &mut records);
                let n = records.len();
                for r in records {
                    buf.push(r);
                }
                if n > 0 {
                    tracing::debug!(
                        collector = c.name(),
                        time_unix_nano = stamp,
                        records = n,
                        "cycle buffered"
                    );
                }
                (c, points, report, took)
            });
            let (c, points, report, took) = match job.await {
                Ok(v) => v,
                Err(e) => {
                    stats.emit(Event::CollectorError {
                        collector: name,
                        error: &format!("collector task failed: {e}"),
                    });
                    return;
                }
            };
            slot = Some(c);
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
    })
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
