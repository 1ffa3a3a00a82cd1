//! End-to-end export throughput: encode data points and deliver them over OTLP/gRPC to a
//! loopback receiver that decodes every request. The agent side runs on one
//! current-thread runtime (one core); the receiver has its own thread.
//!
//! `cargo bench -p tfo-exporter --bench export` prints data points per second
//! (`BENCH_CYCLES`, default 100 cycles of 10,000 points in 157 metrics per configuration)
//! for a few request sizes in metrics (64 points each here; `max_batch_size`, whose default
//! 0 means no count limit: the whole cycle in one request, shown as `whole`), with and
//! without gzip (gzip is the default).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, Sum, metric, number_data_point,
};
use tfo_exporter::encode::MetricsEncoder;
use tfo_exporter::{Exporter, ExporterSettings, Outcome, Record};

struct Sink(Arc<AtomicU64>);

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let n: usize = req
            .get_ref()
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| match &m.data {
                Some(metric::Data::Sum(s)) => s.data_points.len(),
                _ => 0,
            })
            .sum();
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// Collector-shaped input: per-cpu, per-state counters with two attributes each.
fn cycle(points: usize, t: u64) -> Vec<Metric> {
    let per_metric = 64;
    (0..points.div_ceil(per_metric))
        .map(|m| Metric {
            name: format!("system.bench.metric_{m}"),
            unit: "s".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: (0..per_metric)
                    .map(|i| NumberDataPoint {
                        attributes: vec![kv("cpu", &format!("cpu{i}")), kv("state", "user")],
                        start_time_unix_nano: 1,
                        time_unix_nano: t,
                        value: Some(number_data_point::Value::AsDouble(i as f64 * 1.5)),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        })
        .collect()
}

/// CPU time of the calling thread. The agent side runs entirely on this thread (a
/// current-thread runtime), so points per CPU-second is the throughput of one core,
/// independent of how long the receiver takes to decode.
fn thread_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_THREAD is Linux-specific.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let received = Arc::new(AtomicU64::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let r2 = received.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .add_service(
                    MetricsServiceServer::new(Sink(r2))
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                        .max_decoding_message_size(256 << 20),
                )
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
                .await
                .unwrap();
        });
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // 10,000 points per cycle; BENCH_CYCLES cycles per configuration.
    let cycles: usize = std::env::var("BENCH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    {
        let enc = MetricsEncoder::new(vec![kv("host.name", "bench")], "0", 100);
        let mut inputs: Vec<Vec<Metric>> =
            (0..cycles).map(|t| cycle(10_000, t as u64 + 1)).collect();
        let start = Instant::now();
        let mut n = 0;
        while let Some(input) = inputs.pop() {
            let mut recs = Vec::new();
            n += enc.encode(input, &mut recs);
        }
        println!(
            "encode only (batch 100 metrics): {:.0} points/s",
            n as f64 / start.elapsed().as_secs_f64()
        );
    }
    println!(
        "{:>10} {:>6} {:>16} {:>14} {:>16}",
        "batch", "gzip", "points/s", "MB/s (raw)", "points/CPU-s"
    );
    for gzip in [false, true] {
        for batch in [10usize, 100, 1_000, usize::MAX] {
            let settings = ExporterSettings {
                endpoint: addr.to_string(),
                gzip,
                timeout: Duration::from_secs(10),
                tls: None,
                headers: vec![("x-telemetryflow-key-id".into(), "tfk_bench".into())],
                http_path_version: "v2",
                user_agent: "bench".into(),
            };
            let (pps, mbps, per_cpu) = rt.block_on(async {
                let exp = Exporter::grpc(&settings).unwrap();
                let enc = MetricsEncoder::new(vec![kv("host.name", "bench")], "0", batch);
                // Inputs are built before the clock starts: collectors build their metrics
                // anyway; this measures encoding and delivery.
                let mut inputs: Vec<Vec<Metric>> =
                    (0..cycles).map(|t| cycle(10_000, t as u64 + 1)).collect();
                let before = received.load(Ordering::Relaxed);
                let start = Instant::now();
                let cpu0 = thread_cpu_seconds();
                let (mut sent, mut bytes) = (0u64, 0u64);
                while let Some(input) = inputs.pop() {
                    let mut recs: Vec<Record> = Vec::new();
                    enc.encode(input, &mut recs);
                    for r in recs {
                        bytes += r.body.len() as u64;
                        match exp.send(r.signal, r.body).await {
                            Outcome::Delivered { .. } => sent += r.items as u64,
                            other => panic!("export failed: {other:?}"),
                        }
                    }
                }
                let secs = start.elapsed().as_secs_f64();
                assert_eq!(
                    received.load(Ordering::Relaxed) - before,
                    sent,
                    "receiver count differs"
                );
                let cpu = thread_cpu_seconds() - cpu0;
                (
                    sent as f64 / secs,
                    bytes as f64 / secs / 1e6,
                    sent as f64 / cpu,
                )
            });
            let label = if batch == usize::MAX {
                "whole".to_string()
            } else {
                batch.to_string()
            };
            println!("{label:>10} {gzip:>6} {pps:>16.0} {mbps:>14.1} {per_cpu:>16.0}");
        }
    }
}
