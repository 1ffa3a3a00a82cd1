//! The encoder: wraps collected metrics with the agent's resource and scope and serialises
//! them into `ExportMetricsServiceRequest` records of at most `batch_size` data points.
//!
//! Records are cut at the encoder, not at send time, so that a record is the unit of
//! buffering, acknowledgement and retry, and a replayed backlog keeps to `batch_size`.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, Histogram, Metric, ResourceMetrics, ScopeMetrics, Sum, Summary,
    metric,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::{Record, Signal};

pub struct MetricsEncoder {
    resource: Resource,
    scope: InstrumentationScope,
    max_points: usize,
}

impl MetricsEncoder {
    pub fn new(resource_attributes: Vec<KeyValue>, scope_version: &str, max_points: usize) -> Self {
        MetricsEncoder {
            resource: Resource {
                attributes: resource_attributes,
                ..Default::default()
            },
            scope: InstrumentationScope {
                name: "tfo-agent".to_string(),
                version: scope_version.to_string(),
                ..Default::default()
            },
            max_points: max_points.max(1),
        }
    }

    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// Encodes `metrics` into records appended to `out`; returns the data points encoded.
    /// A metric with more points than fit in the current record is split across records,
    /// keeping its name, type and unit on every part.
    pub fn encode(&self, metrics: Vec<Metric>, out: &mut Vec<Record>) -> usize {
        let mut total = 0;
        let mut chunk: Vec<Metric> = Vec::new();
        let mut in_chunk = 0usize;
        for mut m in metrics {
            loop {
                let n = point_count(&m);
                if n == 0 {
                    break;
                }
                let room = self.max_points - in_chunk;
                if n <= room {
                    in_chunk += n;
                    chunk.push(m);
                    break;
                }
                let head = split_off_front(&mut m, room);
                in_chunk += room;
                chunk.push(head);
                total += in_chunk;
                out.push(self.record(std::mem::take(&mut chunk), in_chunk));
                in_chunk = 0;
            }
            if in_chunk == self.max_points {
                total += in_chunk;
                out.push(self.record(std::mem::take(&mut chunk), in_chunk));
                in_chunk = 0;
            }
        }
        if in_chunk > 0 {
            total += in_chunk;
            out.push(self.record(chunk, in_chunk));
        }
        total
    }

    fn record(&self, metrics: Vec<Metric>, points: usize) -> Record {
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(self.scope.clone()),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        Record {
            signal: Signal::Metrics,
            items: points as u32,
            body: Bytes::from(req.encode_to_vec()),
        }
    }
}

fn point_count(m: &Metric) -> usize {
    match &m.data {
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

/// Moves the first `k` data points of `m` into a new metric with the same descriptor.
fn split_off_front(m: &mut Metric, k: usize) -> Metric {
    fn take<T>(v: &mut Vec<T>, k: usize) -> Vec<T> {
        let rest = v.split_off(k);
        std::mem::replace(v, rest)
    }
    let data = match &mut m.data {
        Some(metric::Data::Gauge(g)) => metric::Data::Gauge(Gauge {
            data_points: take(&mut g.data_points, k),
        }),
        Some(metric::Data::Sum(s)) => metric::Data::Sum(Sum {
            data_points: take(&mut s.data_points, k),
            aggregation_temporality: s.aggregation_temporality,
            is_monotonic: s.is_monotonic,
        }),
        Some(metric::Data::Histogram(h)) => metric::Data::Histogram(Histogram {
            data_points: take(&mut h.data_points, k),
            aggregation_temporality: h.aggregation_temporality,
        }),
        Some(metric::Data::ExponentialHistogram(h)) => {
            metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: take(&mut h.data_points, k),
                aggregation_temporality: h.aggregation_temporality,
            })
        }
        Some(metric::Data::Summary(s)) => metric::Data::Summary(Summary {
            data_points: take(&mut s.data_points, k),
        }),
        None => return m.clone(),
    };
    Metric {
        name: m.name.clone(),
        description: m.description.clone(),
        unit: m.unit.clone(),
        metadata: m.metadata.clone(),
        data: Some(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, NumberDataPoint};

    fn sum_metric(name: &str, n: usize) -> Metric {
        Metric {
            name: name.into(),
            unit: "By".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: (0..n)
                    .map(|i| NumberDataPoint {
                        time_unix_nano: i as u64,
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        }
    }

    fn decode(r: &Record) -> Vec<Metric> {
        let req = ExportMetricsServiceRequest::decode(r.body.clone()).unwrap();
        req.resource_metrics
            .into_iter()
            .flat_map(|rm| rm.scope_metrics)
            .flat_map(|sm| sm.metrics)
            .collect()
    }

    #[test]
    fn records_respect_batch_size_and_keep_every_point_in_order() {
        let enc = MetricsEncoder::new(vec![], "1", 100);
        let mut out = Vec::new();
        let n = enc.encode(
            vec![
                sum_metric("a", 30),
                sum_metric("b", 250),
                sum_metric("c", 5),
            ],
            &mut out,
        );
        assert_eq!(n, 285);
        assert_eq!(
            out.iter().map(|r| r.items).collect::<Vec<_>>(),
            vec![100, 100, 85]
        );
        let mut seen = Vec::new();
        for r in &out {
            let ms = decode(r);
            let pts: usize = ms.iter().map(point_count).sum();
            assert_eq!(pts as u32, r.items);
            for m in ms {
                let Some(metric::Data::Sum(s)) = &m.data else {
                    panic!("type lost")
                };
                assert!(s.is_monotonic);
                assert_eq!(
                    s.aggregation_temporality,
                    AggregationTemporality::Cumulative as i32
                );
                assert_eq!(m.unit, "By");
                for p in &s.data_points {
                    seen.push((m.name.clone(), p.time_unix_nano));
                }
            }
        }
        let want: Vec<_> = [("a", 30), ("b", 250), ("c", 5)]
            .iter()
            .flat_map(|(n, k)| (0..*k).map(move |i| (n.to_string(), i as u64)))
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn concatenated_records_decode_as_one_request() {
        let enc = MetricsEncoder::new(vec![], "1", 10);
        let mut out = Vec::new();
        enc.encode(vec![sum_metric("a", 25)], &mut out);
        let mut joined = Vec::new();
        for r in &out {
            joined.extend_from_slice(&r.body);
        }
        let req = ExportMetricsServiceRequest::decode(&joined[..]).unwrap();
        assert_eq!(req.resource_metrics.len(), 3);
    }

    #[test]
    fn empty_input_makes_no_record() {
        let enc = MetricsEncoder::new(vec![], "1", 10);
        let mut out = Vec::new();
        assert_eq!(enc.encode(vec![sum_metric("a", 0)], &mut out), 0);
        assert!(out.is_empty());
    }
}
