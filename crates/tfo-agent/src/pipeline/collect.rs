//! The collection stage: one task per collector on its own interval. The collector itself
//! runs on the blocking pool, so a slow filesystem or a large /proc never stalls another
//! collector or the exporter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tfo_collectors::Collector;
use tfo_exporter::encode::MetricsEncoder;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::queue::Queue;
use crate::events::{Event, Stats};

pub fn spawn(
    collector: Box<dyn Collector>,
    interval: Duration,
    encoder: Arc<MetricsEncoder>,
    queue: Arc<Queue>,
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
            let job = tokio::task::spawn_blocking(move || {
                let start = Instant::now();
                let mut metrics = Vec::new();
                let report = c.collect(&mut metrics);
                (c, metrics, report, start.elapsed())
            });
            let (c, metrics, report, took) = match job.await {
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
            let mut records = Vec::new();
            let points = encoder.encode(metrics, &mut records);
            stats.emit(Event::CollectorRan {
                collector: name,
                duration: took,
                points,
                errors: report.errors.len(),
            });
            for r in records {
                queue.push(r);
            }
        }
    })
}
