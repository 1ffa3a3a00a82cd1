//! What the receiver does to a decoded `Export*ServiceRequest` before it is stored, the
//! same for the three signals: drop the items the OTLP spec calls invalid (reported as
//! partial success), add the agent's resource attributes where the application did not
//! set them, split a request larger than a record into several, and count its items.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tfo_exporter::encode::point_count;
use tfo_exporter::{Record, Signal};

/// One signal's request type, as the receiver handles it.
pub trait Otlp:
    Message + Default + Clone + serde::de::DeserializeOwned + Send + Sync + 'static
{
    const SIGNAL: Signal;
    /// How [`super::wire`] forwards the request without decoding it, if it can.
    const WIRE: Option<&'static super::wire::Shape>;
    type Response: Message + serde::Serialize + Default + Send + 'static;

    /// Removes the items the OTLP spec calls invalid; how many (in items) and why.
    fn drop_invalid(&mut self) -> (u64, String);
    /// Adds `attrs` to every resource, each only where the resource has no such key.
    fn merge_resource(&mut self, attrs: &[KeyValue]);
    /// (items, units): what the buffer and the exporter count (see [`Record`]).
    fn counts(&self) -> (u32, u32);
    /// Requests of at most about `max_bytes` each, with the same content.
    fn split(self, max_bytes: usize) -> Vec<Self>;
    /// The answer, with partial success when items were rejected.
    fn response(rejected: u64, message: String) -> Self::Response;
}

/// Adds each of `attrs` whose key `resource` does not have: the application's own values win.
pub fn merge_attributes(resource: &mut Resource, attrs: &[KeyValue]) {
    let have = resource.attributes.len();
    for a in attrs {
        if !resource.attributes[..have].iter().any(|b| b.key == a.key) {
            resource.attributes.push(a.clone());
        }
    }
}

/// The records `req` is stored as: one, or several when it is larger than `max_bytes`.
/// Parts without any item are not stored.
pub fn records<T: Otlp>(req: T, max_bytes: usize) -> Vec<Record> {
    let parts = if req.encoded_len() > max_bytes {
        req.split(max_bytes)
    } else {
        vec![req]
    };
    parts
        .into_iter()
        .filter_map(|p| {
            let (items, units) = p.counts();
            (items > 0 || units > 0).then(|| Record {
                signal: T::SIGNAL,
                items,
                units,
                body: p.encode_to_vec().into(),
                stored: bytes::Bytes::new(),
            })
        })
        .collect()
}

/// The parts of the request types the generic code needs: resources, their scopes, the
/// scopes' items (spans, log records, metrics).
macro_rules! shape {
    ($req:ty, $res:ident, $scopes:ident, $items:ident) => {
        fn merge_resource(&mut self, attrs: &[KeyValue]) {
            for r in &mut self.$res {
                merge_attributes(r.resource.get_or_insert_with(Default::default), attrs);
            }
        }

        fn split(self, max_bytes: usize) -> Vec<Self> {
            // Item by item, with the resource and scope of each part copied: exact enough
            // (a part may exceed `max_bytes` by one item's framing), and only for requests
            // larger than a record.
            let mut out = Vec::new();
            let mut cur = <$req>::default();
            let mut size = 0usize;
            for mut r in self.$res {
                let scopes = std::mem::take(&mut r.$scopes);
                let r_len = r.encoded_len() + 8;
                let mut rr = r.clone();
                for mut s in scopes {
                    let items = std::mem::take(&mut s.$items);
                    let s_len = s.encoded_len() + 8;
                    let mut ss = s.clone();
                    for it in items {
                        let l = it.encoded_len() + 8;
                        if size > 0 && size + l > max_bytes {
                            if !ss.$items.is_empty() {
                                rr.$scopes.push(std::mem::replace(&mut ss, s.clone()));
                            }
                            if !rr.$scopes.is_empty() {
                                cur.$res.push(std::mem::replace(&mut rr, r.clone()));
                            }
                            out.push(std::mem::take(&mut cur));
                            size = 0;
                        }
                        if rr.$scopes.is_empty() && ss.$items.is_empty() {
                            size += r_len;
                        }
                        if ss.$items.is_empty() {
                            size += s_len;
                        }
                        ss.$items.push(it);
                        size += l;
                    }
                    if !ss.$items.is_empty() {
                        rr.$scopes.push(ss);
                    }
                }
                if !rr.$scopes.is_empty() {
                    cur.$res.push(rr);
                }
            }
            if !cur.$res.is_empty() {
                out.push(cur);
            }
            out
        }
    };
}

impl Otlp for ExportTraceServiceRequest {
    const SIGNAL: Signal = Signal::Traces;
    const WIRE: Option<&'static super::wire::Shape> = Some(&super::wire::TRACES);
    type Response = ExportTraceServiceResponse;

    shape!(
        ExportTraceServiceRequest,
        resource_spans,
        scope_spans,
        spans
    );

    fn drop_invalid(&mut self) -> (u64, String) {
        let mut n = 0u64;
        for r in &mut self.resource_spans {
            for s in &mut r.scope_spans {
                s.spans.retain(|sp| {
                    let ok = sp.trace_id.len() == 16 && sp.span_id.len() == 8;
                    n += u64::from(!ok);
                    ok
                });
            }
        }
        let why = if n > 0 {
            format!("{n} spans without a 16-byte trace_id and an 8-byte span_id were rejected")
        } else {
            String::new()
        };
        (n, why)
    }

    fn counts(&self) -> (u32, u32) {
        let n: usize = self
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        (n, n)
    }

    fn response(rejected: u64, message: String) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: (rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: rejected as i64,
                error_message: message,
            }),
        }
    }
}

impl Otlp for ExportLogsServiceRequest {
    const SIGNAL: Signal = Signal::Logs;
    const WIRE: Option<&'static super::wire::Shape> = Some(&super::wire::LOGS);
    type Response = ExportLogsServiceResponse;

    shape!(
        ExportLogsServiceRequest,
        resource_logs,
        scope_logs,
        log_records
    );

    fn drop_invalid(&mut self) -> (u64, String) {
        let mut n = 0u64;
        for r in &mut self.resource_logs {
            for s in &mut r.scope_logs {
                s.log_records.retain(|l| {
                    let ok = matches!(l.trace_id.len(), 0 | 16) && matches!(l.span_id.len(), 0 | 8);
                    n += u64::from(!ok);
                    ok
                });
            }
        }
        let why = if n > 0 {
            format!(
                "{n} log records with a trace_id other than 16 bytes or a span_id other than 8 were rejected"
            )
        } else {
            String::new()
        };
        (n, why)
    }

    fn counts(&self) -> (u32, u32) {
        let n: usize = self
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        (n, n)
    }

    fn response(rejected: u64, message: String) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: (rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: rejected as i64,
                error_message: message,
            }),
        }
    }
}

impl Otlp for ExportMetricsServiceRequest {
    const SIGNAL: Signal = Signal::Metrics;
    // Metrics count data points of five kinds: decoded.
    const WIRE: Option<&'static super::wire::Shape> = None;
    type Response = ExportMetricsServiceResponse;

    shape!(
        ExportMetricsServiceRequest,
        resource_metrics,
        scope_metrics,
        metrics
    );

    fn drop_invalid(&mut self) -> (u64, String) {
        let mut n = 0u64;
        for r in &mut self.resource_metrics {
            for s in &mut r.scope_metrics {
                s.metrics.retain(|m| {
                    let ok = !m.name.is_empty() && m.data.is_some();
                    if !ok {
                        n += point_count(m).max(1) as u64;
                    }
                    ok
                });
            }
        }
        let why = if n > 0 {
            format!("{n} data points of metrics without a name or data were rejected")
        } else {
            String::new()
        };
        (n, why)
    }

    fn counts(&self) -> (u32, u32) {
        let (mut items, mut units) = (0usize, 0usize);
        for m in self
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
        {
            items += point_count(m);
            units += 1;
        }
        (
            u32::try_from(items).unwrap_or(u32::MAX),
            u32::try_from(units).unwrap_or(u32::MAX),
        )
    }

    fn response(rejected: u64, message: String) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: (rejected > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected as i64,
                error_message: message,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn spans(n: usize, name_len: usize) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "app"), kv("host.name", "pod-1")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: (0..n)
                        .map(|i| Span {
                            trace_id: vec![1; 16],
                            span_id: (i as u64).to_be_bytes().to_vec(),
                            name: "x".repeat(name_len),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn the_application_keeps_its_resource_attributes() {
        let mut req = spans(1, 1);
        req.merge_resource(&[kv("host.name", "node-a"), kv("k8s.node.name", "node-a")]);
        let attrs = &req.resource_spans[0].resource.as_ref().unwrap().attributes;
        assert_eq!(
            attrs,
            &vec![
                kv("service.name", "app"),
                kv("host.name", "pod-1"),
                kv("k8s.node.name", "node-a")
            ]
        );
    }

    #[test]
    fn large_requests_split_into_records_with_every_span_once() {
        let req = spans(1000, 200);
        let whole = req.encoded_len();
        let recs = records(req, 20_000);
        assert!(recs.len() >= whole / 20_000, "{}", recs.len());
        let mut ids = Vec::new();
        for r in &recs {
            assert!(r.body.len() <= 20_000 + 300, "{}", r.body.len());
            let part = ExportTraceServiceRequest::decode(r.body.clone()).unwrap();
            assert_eq!(part.counts().0, r.items);
            let rs = &part.resource_spans[0];
            assert_eq!(rs.resource.as_ref().unwrap().attributes.len(), 2);
            ids.extend(rs.scope_spans[0].spans.iter().map(|s| s.span_id.clone()));
        }
        let want: Vec<Vec<u8>> = (0..1000u64).map(|i| i.to_be_bytes().to_vec()).collect();
        assert_eq!(ids, want);
    }

    #[test]
    fn invalid_spans_are_rejected_and_the_rest_kept() {
        let mut req = spans(3, 1);
        req.resource_spans[0].scope_spans[0].spans[1].trace_id = vec![0; 3];
        let (n, why) = req.drop_invalid();
        assert_eq!(n, 1);
        assert!(why.contains("trace_id"));
        assert_eq!(req.counts(), (2, 2));
        let resp = ExportTraceServiceRequest::response(n, why);
        assert_eq!(resp.partial_success.unwrap().rejected_spans, 1);
    }
}
